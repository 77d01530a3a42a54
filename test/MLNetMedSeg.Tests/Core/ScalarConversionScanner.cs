using System.Collections.Immutable;
using System.Reflection;
using System.Reflection.Emit;
using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;

namespace MLNetMedSeg.Tests.Core;

/// <summary>One call, in a method's IL, that makes a TorchSharp Scalar nobody keeps alive (see <see cref="MLNetMedSeg.Core.Scalars"/>).</summary>
/// <param name="Method">The calling method, <c>Namespace.Type+Nested::Name</c> (compiler-generated lambdas keep their generated names).</param>
/// <param name="Callee">What it calls, e.g. <c>TorchSharp.Scalar::op_Implicit(Double)</c>.</param>
/// <param name="ILOffset">The call's offset in the method body.</param>
/// <param name="Source">file:line from the portable PDB beside the assembly, or null without one.</param>
internal sealed record ScalarConversionSite(string Method, string Callee, int ILOffset, string? Source)
{
    public override string ToString() => $"{Method}: {Callee} at IL_{ILOffset:x4}{(Source is null ? "" : $" ({Source})")}";
}

/// <summary>
/// Reads an assembly's IL (System.Reflection.Metadata, nothing loaded or run) and lists every call that hands a number
/// to TorchSharp through a temporary Scalar: <c>TorchSharp.Scalar</c>'s conversion operators (<c>t.mul(0.5)</c>,
/// <c>t.clamp(0, 1)</c>), and the <c>Tensor</c> operators that take a number (<c>t * 255</c>, <c>1 - t</c>, which call
/// <c>left.mul(right)</c> with an implicit Scalar) or convert one (<c>Tensor</c>'s implicit conversion from a number,
/// a hidden <c>torch.tensor(v)</c>). Code must write <c>S(v)</c> (<see cref="MLNetMedSeg.Core.Scalars"/>) or <c>torch.tensor(v)</c> instead.
/// </summary>
internal static class ScalarConversionScanner
{
    private const string ScalarName = "TorchSharp.Scalar";
    private const string TensorName = "TorchSharp.torch+Tensor";

    /// <summary>The number types whose conversion to Scalar (or Tensor operator overloads) a call may take.</summary>
    private static readonly HashSet<string> NumberTypes =
    [
        "Boolean", "Byte", "SByte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64", "Single", "Double",
        "System.Half", "TorchSharp.BFloat16", "System.Numerics.Complex",
    ];

    /// <summary>Operand sizes of every IL opcode, from <see cref="OpCodes"/> (one-byte codes by value, two-byte 0xFExx).</summary>
    private static readonly Dictionary<ushort, OperandType> Operands = typeof(OpCodes)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!)
        .ToDictionary(o => (ushort)o.Value, o => o.OperandType);

    /// <summary>Every offending call in the assembly at <paramref name="assemblyPath"/>, in metadata order.</summary>
    public static IReadOnlyList<ScalarConversionSite> Scan(string assemblyPath) => Scan(assemblyPath, Callee);

    /// <summary>
    /// Every seeded draw in the assembly that does not go through <see cref="MLNetMedSeg.Core.SeededRandom"/>: a call of a
    /// TorchSharp method that takes a <c>Generator</c> (torch.rand/randn/randint/randperm/…, Tensor.uniform_/normal_/…).
    /// TorchSharp's generators are CPU generators whatever device they are made with, so such a call fails on CUDA tensors.
    /// </summary>
    public static IReadOnlyList<ScalarConversionSite> ScanSeededDraws(string assemblyPath) =>
        Scan(assemblyPath, GeneratorCallee).Where(s => !s.Method.StartsWith("MLNetMedSeg.Core.SeededRandom", StringComparison.Ordinal)).ToList();

    private static IReadOnlyList<ScalarConversionSite> Scan(string assemblyPath, Func<MetadataReader, EntityHandle, string?> rule)
    {
        using var stream = File.OpenRead(assemblyPath);
        using var pe = new PEReader(stream);
        var md = pe.GetMetadataReader();
        using var pdb = OpenPdb(assemblyPath);
        var pdbReader = pdb?.GetMetadataReader();
        var sites = new List<ScalarConversionSite>();
        foreach (var typeHandle in md.TypeDefinitions)
        {
            var type = md.GetTypeDefinition(typeHandle);
            foreach (var methodHandle in type.GetMethods())
            {
                var method = md.GetMethodDefinition(methodHandle);
                if (method.RelativeVirtualAddress == 0) continue;   // abstract, extern
                var body = pe.GetMethodBody(method.RelativeVirtualAddress);
                foreach (var (offset, callee) in OffendingCalls(md, body.GetILReader(), rule))
                {
                    sites.Add(new ScalarConversionSite($"{TypeName(md, typeHandle)}::{md.GetString(method.Name)}", callee, offset,
                        pdbReader is null ? null : SourceOf(pdbReader, methodHandle, offset)));
                }
            }
        }
        return sites;
    }

    /// <summary>The sites grouped per method, one line each, for a failure message.</summary>
    public static string Describe(IEnumerable<ScalarConversionSite> sites) => string.Join(Environment.NewLine,
        sites.GroupBy(s => s.Method).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"  {g.Key} ({g.Count()}): " + string.Join("; ", g.Select(s => $"{s.Callee}{(s.Source is null ? "" : $" {s.Source}")}"))));

    private static IEnumerable<(int Offset, string Callee)> OffendingCalls(MetadataReader md, BlobReader il, Func<MetadataReader, EntityHandle, string?> rule)
    {
        var found = new List<(int, string)>();
        while (il.RemainingBytes > 0)
        {
            int offset = il.Offset;
            ushort code = il.ReadByte();
            if (code == 0xFE) code = (ushort)(0xFE00 | il.ReadByte());
            if (!Operands.TryGetValue(code, out var operand))
                throw new BadImageFormatException($"unknown IL opcode 0x{code:x} at IL_{offset:x4}");
            switch (operand)
            {
                case OperandType.InlineMethod:   // call, callvirt, newobj, ldftn, ldvirtftn, jmp
                    var callee = rule(md, MetadataTokens.EntityHandle(il.ReadInt32()));
                    if (callee is not null) found.Add((offset, callee));
                    break;
                case OperandType.InlineSwitch:
                    int targets = il.ReadInt32();   // read first: Offset += ReadInt32() would add to the offset before the read
                    il.Offset += 4 * targets;
                    break;
                default:
                    il.Offset += OperandSize(operand);
                    break;
            }
        }
        return found;
    }

    private static int OperandSize(OperandType operand) => operand switch
    {
        OperandType.InlineNone => 0,
        OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
        OperandType.InlineVar => 2,
        OperandType.InlineI8 or OperandType.InlineR => 8,
        _ => 4,   // branch targets, int32, float32, and every token
    };

    /// <summary><c>Type::Name(Params)</c> when <paramref name="handle"/> is an offending TorchSharp method, else null.</summary>
    private static string? Callee(MetadataReader md, EntityHandle handle)
    {
        if (handle.Kind == HandleKind.MethodSpecification)
            handle = md.GetMethodSpecification((MethodSpecificationHandle)handle).Method;
        if (handle.Kind != HandleKind.MemberReference) return null;   // our own methods; TorchSharp's are references
        var member = md.GetMemberReference((MemberReferenceHandle)handle);
        if (member.GetKind() != MemberReferenceKind.Method || member.Parent.Kind != HandleKind.TypeReference) return null;
        string type = TypeName(md, (TypeReferenceHandle)member.Parent);
        string name = md.GetString(member.Name);
        bool scalarConversion = type == ScalarName && name is "op_Implicit" or "op_Explicit";
        bool tensorOperator = type == TensorName && name.StartsWith("op_", StringComparison.Ordinal);
        if (!scalarConversion && !tensorOperator) return null;
        var parameters = member.DecodeMethodSignature(new TypeNames(), null).ParameterTypes;
        if (tensorOperator && !parameters.Any(NumberTypes.Contains)) return null;   // Tensor ⊕ Tensor, Tensor ⊕ Scalar
        return $"{type}::{name}({string.Join(", ", parameters)})".Replace('+', '.');
    }

    /// <summary><c>Type::Name(Params)</c> when <paramref name="handle"/> is a TorchSharp method taking a Generator, else null.</summary>
    private static string? GeneratorCallee(MetadataReader md, EntityHandle handle)
    {
        if (handle.Kind == HandleKind.MethodSpecification)
            handle = md.GetMethodSpecification((MethodSpecificationHandle)handle).Method;
        if (handle.Kind != HandleKind.MemberReference) return null;
        var member = md.GetMemberReference((MemberReferenceHandle)handle);
        if (member.GetKind() != MemberReferenceKind.Method || member.Parent.Kind != HandleKind.TypeReference) return null;
        string type = TypeName(md, (TypeReferenceHandle)member.Parent);
        if (!type.StartsWith("TorchSharp.", StringComparison.Ordinal)) return null;
        var parameters = member.DecodeMethodSignature(new TypeNames(), null).ParameterTypes;
        if (!parameters.Contains("TorchSharp.torch+Generator")) return null;
        return $"{type}::{md.GetString(member.Name)}({string.Join(", ", parameters)})".Replace('+', '.');
    }

    private static string TypeName(MetadataReader md, TypeReferenceHandle handle)
    {
        var type = md.GetTypeReference(handle);
        string name = md.GetString(type.Name);
        if (type.ResolutionScope.Kind == HandleKind.TypeReference)
            return TypeName(md, (TypeReferenceHandle)type.ResolutionScope) + "+" + name;
        string ns = md.GetString(type.Namespace);
        return ns.Length == 0 ? name : ns + "." + name;
    }

    private static string TypeName(MetadataReader md, TypeDefinitionHandle handle)
    {
        var type = md.GetTypeDefinition(handle);
        string name = md.GetString(type.Name);
        var outer = type.GetDeclaringType();
        if (!outer.IsNil) return TypeName(md, outer) + "+" + name;
        string ns = md.GetString(type.Namespace);
        return ns.Length == 0 ? name : ns + "." + name;
    }

    private static MetadataReaderProvider? OpenPdb(string assemblyPath)
    {
        string path = Path.ChangeExtension(assemblyPath, ".pdb");
        if (!File.Exists(path)) return null;
        try
        {
            return MetadataReaderProvider.FromPortablePdbStream(File.OpenRead(path));
        }
        catch (BadImageFormatException)
        {
            return null;   // a Windows PDB: no source lines
        }
    }

    /// <summary>file:line of the last visible sequence point at or before <paramref name="offset"/>.</summary>
    private static string? SourceOf(MetadataReader pdb, MethodDefinitionHandle method, int offset)
    {
        var info = pdb.GetMethodDebugInformation(method);
        SequencePoint? best = null;
        foreach (var point in info.GetSequencePoints())
        {
            if (point.Offset > offset) break;
            if (!point.IsHidden) best = point;
        }
        if (best is not { } p) return null;
        return $"{Path.GetFileName(pdb.GetString(pdb.GetDocument(p.Document).Name))}:{p.StartLine}";
    }

    /// <summary>Signature types as names: primitives by their <see cref="PrimitiveTypeCode"/>, others by full name.</summary>
    private sealed class TypeNames : ISignatureTypeProvider<string, object?>
    {
        public string GetPrimitiveType(PrimitiveTypeCode typeCode) => typeCode.ToString();
        public string GetTypeFromDefinition(MetadataReader reader, TypeDefinitionHandle handle, byte rawTypeKind) => TypeName(reader, handle);
        public string GetTypeFromReference(MetadataReader reader, TypeReferenceHandle handle, byte rawTypeKind) => TypeName(reader, handle);
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
