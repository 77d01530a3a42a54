using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// The TorchSharp methods that make a temporary <c>Scalar</c> inside themselves (<c>Tensor.add(Tensor)</c> passes an
/// implicit alpha of 1, <c>square()</c> calls <c>pow(2)</c>, <c>arange(stop)</c> an implicit start and step), computed
/// from TorchSharp.dll's IL when a test runs, so the set follows TorchSharp upgrades. A call to one of them is exposed to
/// the use-after-free <see cref="MLNetMedSeg.Core.Scalars"/> describes even when every number our code passes is an
/// <c>S(v)</c>: the temporary is TorchSharp's, unreachable while libtorch reads it.
/// </summary>
/// <remarks>
/// <para>
/// Rule, read per method body: a call that returns a <c>TorchSharp.Scalar</c> (<c>Scalar</c>'s conversion operators,
/// the <c>ToScalar()</c> extension methods, <c>Tensor.ToScalar()</c>, <c>new Scalar(…)</c>) makes a temporary unless its
/// result is returned (the caller owns it: such a method is a producer, judged where it is called), stored in a field
/// (kept alive by its holder), or stored in a local that the method disposes (<c>using</c>) or hands to
/// <c>GC.KeepAlive</c>. A method that makes a temporary is in the set; so is every TorchSharp method that calls, or makes
/// a delegate of, a method in the set (to a fixed point). A call is resolved to the method it names, not to overrides:
/// a module's <c>forward</c> is reached through <c>Module.call</c>'s virtual call, so a module type whose own
/// <c>forward</c> is in the set has its constructors put in the set (making the module is what exposes its forward), and
/// so has an optimizer or learning-rate scheduler whose own <c>step</c> is.
/// </para>
/// <para>
/// Conservative where it cannot tell: a branch that makes the temporary only in one mode (BatchNorm's
/// <c>num_batches_tracked.add_(1)</c> in training) puts the whole method in the set. Blind where TorchSharp dispatches
/// virtually other than to <c>forward</c> and <c>step</c> (an abstract or interface method has no body to read), and to
/// what happens in native code.
/// </para>
/// </remarks>
internal sealed class TorchSharpScalarTemporaries
{
    private const string ScalarName = "TorchSharp.Scalar";

    /// <summary>Method key (<see cref="Key"/>) → why it is in the set: the chain of calls down to the temporary.</summary>
    private readonly Dictionary<string, string> _why;

    /// <summary>Constructor key → the name of its type's override (<c>forward</c>, <c>step</c>) that put it in the set.</summary>
    private readonly Dictionary<string, string> _entries;

    private TorchSharpScalarTemporaries(Dictionary<string, string> why, Dictionary<string, string> entries) => (_why, _entries) = (why, entries);

    /// <summary>How many TorchSharp methods are in the set.</summary>
    public int Count => _why.Count;

    /// <summary>The keys of the set (<c>Type::Name(Params)</c>, see <see cref="Key"/>).</summary>
    public IEnumerable<string> Methods => _why.Keys;

    /// <summary>Why <paramref name="key"/> is in the set (a call chain), or null when it is not.</summary>
    public string? Why(string key) => _why.GetValueOrDefault(key);

    /// <summary>
    /// For a constructor in the set only because its type's own <c>forward</c> or <c>step</c> override is (a module or
    /// optimizer whose body makes no temporary): that override's name; else null (not in the set, or its body makes one).
    /// </summary>
    public string? ConstructorEntry(string key) => _entries.GetValueOrDefault(key);

    private static readonly Lazy<TorchSharpScalarTemporaries> Shipped = new(() => Load(typeof(TorchSharp.Scalar).Assembly.Location));

    /// <summary>The set for the TorchSharp.dll the tests run with (computed once per test run).</summary>
    public static TorchSharpScalarTemporaries ForLoadedTorchSharp => Shipped.Value;

    /// <summary>
    /// A method's key, the same from its definition in TorchSharp.dll and from a reference to it in another assembly:
    /// <c>Namespace.Type+Nested::Name`arity(Param, …)</c> (generic types without their arguments, type parameters as
    /// <c>!0</c>, method type parameters as <c>!!0</c>; the return type only for conversion operators, which differ by it).
    /// </summary>
    public static string Key(string type, string name, MethodSignature<string> signature)
    {
        string arity = signature.GenericParameterCount == 0 ? "" : "`" + signature.GenericParameterCount;
        string returns = name is "op_Implicit" or "op_Explicit" ? " : " + signature.ReturnType : "";
        return $"{type}::{name}{arity}({string.Join(", ", signature.ParameterTypes)}){returns}";
    }

    /// <summary>The key of a method reference in <paramref name="md"/> (another assembly's IL), or null when it names no method of a type.</summary>
    public static string? KeyOfReference(MetadataReader md, EntityHandle handle)
    {
        if (handle.Kind == HandleKind.MethodSpecification)
            handle = md.GetMethodSpecification((MethodSpecificationHandle)handle).Method;
        if (handle.Kind != HandleKind.MemberReference) return null;
        var member = md.GetMemberReference((MemberReferenceHandle)handle);
        if (member.GetKind() != MemberReferenceKind.Method) return null;
        string? type = member.Parent.Kind switch
        {
            HandleKind.TypeReference => Names.Of(md, (TypeReferenceHandle)member.Parent),
            HandleKind.TypeSpecification => GenericDefinitionName(md.GetTypeSpecification((TypeSpecificationHandle)member.Parent).DecodeSignature(Names.Instance, null)),
            HandleKind.TypeDefinition => Names.Of(md, (TypeDefinitionHandle)member.Parent),
            _ => null,
        };
        return type is null ? null : Key(type, md.GetString(member.Name), member.DecodeMethodSignature(Names.Instance, null));
    }

    /// <summary>Reads TorchSharp.dll at <paramref name="torchSharpPath"/> and computes the set.</summary>
    public static TorchSharpScalarTemporaries Load(string torchSharpPath)
    {
        using var stream = File.OpenRead(torchSharpPath);
        using var pe = new PEReader(stream);
        var md = pe.GetMetadataReader();

        // Every method definition by key; for a MemberReference to a generic TorchSharp type, the key finds the definition.
        var keys = new Dictionary<MethodDefinitionHandle, string>();
        var byKey = new Dictionary<string, MethodDefinitionHandle>();
        foreach (var typeHandle in md.TypeDefinitions)
        {
            string typeName = Names.Of(md, typeHandle);
            foreach (var methodHandle in md.GetTypeDefinition(typeHandle).GetMethods())
            {
                var method = md.GetMethodDefinition(methodHandle);
                string key = Key(typeName, md.GetString(method.Name), method.DecodeSignature(Names.Instance, null));
                keys[methodHandle] = key;
                byKey.TryAdd(key, methodHandle);
            }
        }
        MethodDefinitionHandle? Resolve(EntityHandle handle)
        {
            if (handle.Kind == HandleKind.MethodSpecification)
                handle = md.GetMethodSpecification((MethodSpecificationHandle)handle).Method;
            if (handle.Kind == HandleKind.MethodDefinition) return (MethodDefinitionHandle)handle;
            if (handle.Kind != HandleKind.MemberReference) return null;
            var member = md.GetMemberReference((MemberReferenceHandle)handle);
            if (member.GetKind() != MemberReferenceKind.Method || member.Parent.Kind != HandleKind.TypeSpecification) return null;
            var key = KeyOfReference(md, handle);   // a method of a generic TorchSharp type (external types never resolve)
            return key is not null && byKey.TryGetValue(key, out var def) ? def : null;
        }
        bool ReturnsScalar(EntityHandle handle)
        {
            if (handle.Kind == HandleKind.MethodSpecification)
                handle = md.GetMethodSpecification((MethodSpecificationHandle)handle).Method;
            return handle.Kind switch
            {
                HandleKind.MethodDefinition => md.GetMethodDefinition((MethodDefinitionHandle)handle) is var m
                    && (m.DecodeSignature(Names.Instance, null).ReturnType == ScalarName
                        || (md.GetString(m.Name) == ".ctor" && Names.Of(md, m.GetDeclaringType()) == ScalarName)),
                HandleKind.MemberReference => md.GetMemberReference((MemberReferenceHandle)handle) is var r
                    && r.GetKind() == MemberReferenceKind.Method && r.DecodeMethodSignature(Names.Instance, null).ReturnType == ScalarName,
                _ => false,
            };
        }

        // Per method: does it make a temporary itself (and with which call), and which TorchSharp methods does it call.
        var why = new Dictionary<MethodDefinitionHandle, string>();
        var entries = new Dictionary<MethodDefinitionHandle, string>();
        var callers = new Dictionary<MethodDefinitionHandle, List<MethodDefinitionHandle>>();
        foreach (var methodHandle in keys.Keys)
        {
            var method = md.GetMethodDefinition(methodHandle);
            if (method.RelativeVirtualAddress == 0) continue;
            var il = IL.Decode(pe.GetMethodBody(method.RelativeVirtualAddress).GetILReader());
            var kept = KeptLocals(md, il);
            for (int i = 0; i < il.Count; i++)
            {
                if (il[i].Token is not { } token) continue;
                if (il[i].IsCall && ReturnsScalar(token) && !why.ContainsKey(methodHandle))
                {
                    var next = i + 1 < il.Count ? il[i + 1] : default;
                    bool keptAlive = next.Code is IL.Ret or IL.Stfld or IL.Stsfld || (next.StoredLocal is { } local && kept.Contains(local));
                    if (!keptAlive) why[methodHandle] = $"makes a temporary Scalar ({Describe(md, token, keys)})";
                }
                if ((il[i].IsCall || il[i].Code is IL.Ldftn or IL.Ldvirtftn) && Resolve(token) is { } callee && callee != methodHandle)
                {
                    if (!callers.TryGetValue(callee, out var list)) callers[callee] = list = [];
                    list.Add(methodHandle);
                }
            }
        }

        // Callers of a method in the set are in the set (breadth first: each reason is a shortest chain).
        void Propagate()
        {
            var queue = new Queue<MethodDefinitionHandle>(why.Keys);
            while (queue.Count > 0)
            {
                var callee = queue.Dequeue();
                if (!callers.TryGetValue(callee, out var list)) continue;
                foreach (var caller in list)
                {
                    if (why.ContainsKey(caller)) continue;
                    why[caller] = $"calls {Short(keys[callee])}: {why[callee]}";
                    queue.Enqueue(caller);
                }
            }
        }
        // A type whose own forward (a module's) or step (an optimizer's) is in the set: its constructors are, since the
        // override is reached only through the base class's virtual call. Repeated to a fixed point (the set only grows).
        int before;
        do
        {
            before = why.Count;
            Propagate();
            foreach (var typeHandle in md.TypeDefinitions)
            {
                var type = md.GetTypeDefinition(typeHandle);
                var entry = type.GetMethods().FirstOrDefault(m =>
                    why.ContainsKey(m) && IsOverride(md.GetMethodDefinition(m)) && md.GetString(md.GetMethodDefinition(m).Name) is "forward" or "step");
                if (entry.IsNil) continue;
                foreach (var ctor in type.GetMethods().Where(m => md.GetString(md.GetMethodDefinition(m).Name) == ".ctor" && !why.ContainsKey(m)))
                {
                    why[ctor] = $"its {Short(keys[entry])} is called through the base class: {why[entry]}";
                    entries[ctor] = md.GetString(md.GetMethodDefinition(entry).Name);
                }
            }
        }
        while (why.Count != before);
        return new TorchSharpScalarTemporaries(why.ToDictionary(p => keys[p.Key], p => p.Value), entries.ToDictionary(p => keys[p.Key], p => p.Value));
    }

    /// <summary>Virtual and not a new slot: it overrides a base class's method (Module.forward, Optimizer.step).</summary>
    internal static bool IsOverride(MethodDefinition method) =>
        (method.Attributes & MethodAttributes.Virtual) != 0 && (method.Attributes & MethodAttributes.NewSlot) == 0
        && (method.Attributes & MethodAttributes.Abstract) == 0;

    /// <summary>Locals the method disposes (<c>ldloc n; [brfalse; ldloc n;] call(virt) Dispose</c>) or hands to <c>GC.KeepAlive</c>.</summary>
    private static HashSet<int> KeptLocals(MetadataReader md, List<IL.Instruction> il)
    {
        var kept = new HashSet<int>();
        for (int i = 0; i + 1 < il.Count; i++)
        {
            if (il[i].LoadedLocal is not { } local || !il[i + 1].IsCall || il[i + 1].Token is not { } token) continue;
            string name = token.Kind switch
            {
                HandleKind.MethodDefinition => md.GetString(md.GetMethodDefinition((MethodDefinitionHandle)token).Name),
                HandleKind.MemberReference => md.GetString(md.GetMemberReference((MemberReferenceHandle)token).Name),
                _ => "",
            };
            if (name is "Dispose" or "KeepAlive") kept.Add(local);
        }
        return kept;
    }

    private static string Describe(MetadataReader md, EntityHandle token, Dictionary<MethodDefinitionHandle, string> keys)
    {
        if (token.Kind == HandleKind.MethodSpecification)
            token = md.GetMethodSpecification((MethodSpecificationHandle)token).Method;
        return token.Kind == HandleKind.MethodDefinition ? Short(keys[(MethodDefinitionHandle)token]) : Short(KeyOfReference(md, token) ?? "?");
    }

    /// <summary>A key with TorchSharp's namespaces shortened, for messages.</summary>
    public static string Short(string key) => key.Replace("TorchSharp.torch+", "").Replace("TorchSharp.Modules.", "")
        .Replace("TorchSharp.", "").Replace("System.", "").Replace('+', '.');

    private static string GenericDefinitionName(string instantiation)
    {
        int lt = instantiation.IndexOf('<');
        return lt < 0 ? instantiation : instantiation[..lt];
    }

    /// <summary>A minimal IL decoder: opcodes, method tokens and local indices.</summary>
    internal static class IL
    {
        public const ushort Ret = 0x2A, Stfld = 0x7D, Stsfld = 0x80, Call = 0x28, Callvirt = 0x6F, Newobj = 0x73, Ldftn = 0xFE06, Ldvirtftn = 0xFE07;

        public readonly record struct Instruction(int Offset, ushort Code, EntityHandle? Token, int? LoadedLocal, int? StoredLocal)
        {
            public bool IsCall => Code is Call or Callvirt or Newobj;
        }

        private static readonly Dictionary<ushort, OperandType> Operands = typeof(OpCodes)
            .GetFields(BindingFlags.Public | BindingFlags.Static)
            .Select(f => (OpCode)f.GetValue(null)!)
            .ToDictionary(o => (ushort)o.Value, o => o.OperandType);

        public static List<Instruction> Decode(BlobReader il)
        {
            var list = new List<Instruction>();
            while (il.RemainingBytes > 0)
            {
                int offset = il.Offset;
                ushort code = il.ReadByte();
                if (code == 0xFE) code = (ushort)(0xFE00 | il.ReadByte());
                if (!Operands.TryGetValue(code, out var operand))
                    throw new BadImageFormatException($"unknown IL opcode 0x{code:x} at IL_{offset:x4}");
                EntityHandle? token = null;
                int? index = null;
                switch (operand)
                {
                    case OperandType.InlineMethod:
                        token = MetadataTokens.EntityHandle(il.ReadInt32());
                        break;
                    case OperandType.ShortInlineVar:
                        index = il.ReadByte();
                        break;
                    case OperandType.InlineVar:
                        index = il.ReadUInt16();
                        break;
                    case OperandType.InlineSwitch:
                        int targets = il.ReadInt32();
                        il.Offset += 4 * targets;
                        break;
                    case OperandType.InlineNone:
                        break;
                    case OperandType.ShortInlineBrTarget or OperandType.ShortInlineI:
                        il.Offset += 1;
                        break;
                    case OperandType.InlineI8 or OperandType.InlineR:
                        il.Offset += 8;
                        break;
                    default:
                        il.Offset += 4;
                        break;
                }
                int? loaded = code switch
                {
                    >= 0x06 and <= 0x09 => code - 0x06,   // ldloc.0-3
                    0x11 or 0xFE0C => index,              // ldloc.s, ldloc
                    _ => null,
                };
                int? stored = code switch
                {
                    >= 0x0A and <= 0x0D => code - 0x0A,   // stloc.0-3
                    0x13 or 0xFE0E => index,              // stloc.s, stloc
                    _ => null,
                };
                list.Add(new Instruction(offset, code, token, loaded, stored));
            }
            return list;
        }
    }

    /// <summary>Signature types as names: primitives by their <see cref="PrimitiveTypeCode"/>, others by full name (<c>Outer+Nested</c>).</summary>
    internal sealed class Names : ISignatureTypeProvider<string, object?>
    {
        public static readonly Names Instance = new();

        public static string Of(MetadataReader md, TypeReferenceHandle handle)
        {
            var type = md.GetTypeReference(handle);
            string name = md.GetString(type.Name);
            if (type.ResolutionScope.Kind == HandleKind.TypeReference)
                return Of(md, (TypeReferenceHandle)type.ResolutionScope) + "+" + name;
            string ns = md.GetString(type.Namespace);
            return ns.Length == 0 ? name : ns + "." + name;
        }

        public static string Of(MetadataReader md, TypeDefinitionHandle handle)
        {
            var type = md.GetTypeDefinition(handle);
            string name = md.GetString(type.Name);
            var outer = type.GetDeclaringType();
            if (!outer.IsNil) return Of(md, outer) + "+" + name;
            string ns = md.GetString(type.Namespace);
            return ns.Length == 0 ? name : ns + "." + name;
        }

        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode.ToString();
        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => Of(reader, handle);
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => Of(reader, handle);
        public string GetTypeFromSpecification(MetadataReader reader, object? context, TypeSpecificationHandle handle, byte rawTypeKind) =>
            reader.GetTypeSpecification(handle).DecodeSignature(this, context);
        public string GetSZArrayType(string elementType) => elementType + "[]";
        public string GetArrayType(string elementType, ArrayShape shape) => elementType + "[" + new string(',', shape.Rank - 1) + "]";
        public string GetByReferenceType(string elementType) => elementType + "&";
        public string GetPointerType(string elementType) => elementType + "*";
        public string GetPinnedType(string elementType) => elementType;
        public string GetGenericInstantiation(string genericType, ImmutableArray<string> typeArguments) => $"{genericType}<{string.Join(",", typeArguments)}>";
        public string GetGenericMethodParameter(object? context, int index) => "!!" + index;
        public string GetGenericTypeParameter(object? context, int index) => "!" + index;
        public string GetFunctionPointerType(MethodSignature<string> signature) => "fnptr";
        public string GetModifiedType(string modifier, string unmodifiedType, bool isRequired) => unmodifiedType;
    }
}
