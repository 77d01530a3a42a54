using System.Reflection.Metadata;
using System.Reflection.Metadata.Ecma335;
using System.Reflection.PortableExecutable;
using Names = MLNetMedSeg.Tests.Core.TorchSharpScalarTemporaries.Names;

namespace MLNetMedSeg.Tests.Core;

/// <summary>One call, in a method's IL, that makes a TorchSharp Scalar nobody keeps alive (see <see cref="MLNetMedSeg.Core.Scalars"/>).</summary>
/// <param name="Method">The calling method, <c>Namespace.Type+Nested::Name</c> (compiler-generated lambdas keep their generated names).</param>
/// <param name="Callee">What it calls, e.g. <c>TorchSharp.Scalar::op_Implicit(Double)</c>.</param>
/// <param name="ILOffset">The call's offset in the method body.</param>
/// <param name="Source">file:line from the portable PDB beside the assembly, or null without one.</param>
/// <param name="Inside">When the temporary is made inside TorchSharp (<see cref="TorchSharpScalarTemporaries"/>): the callee's call chain down to it.</param>
internal sealed record ScalarConversionSite(string Method, string Callee, int ILOffset, string? Source, string? Inside = null)
{
    public override string ToString() => $"{Method}: {Callee} at IL_{ILOffset:x4}{(Source is null ? "" : $" ({Source})")}{(Inside is null ? "" : $" [inside TorchSharp: {Inside}]")}";
}

/// <summary>
/// A call to a TorchSharp method that makes a temporary Scalar inside TorchSharp which our code may still make: the
/// callee (as <see cref="ScalarConversionSite.Callee"/> starts), optionally only from one caller, and why it cannot be avoided.
/// </summary>
internal sealed record AllowedTemporary(string CalleePrefix, string? Caller, string Why)
{
    public bool Matches(ScalarConversionSite site) =>
        site.Callee.StartsWith(CalleePrefix, StringComparison.Ordinal) && (Caller is null || site.Method == Caller);
}

/// <summary>
/// Reads an assembly's IL (System.Reflection.Metadata, nothing loaded or run) and lists every call that hands a number
/// to TorchSharp through a temporary Scalar: <c>TorchSharp.Scalar</c>'s conversion operators (<c>t.mul(0.5)</c>,
/// <c>t.clamp(0, 1)</c>), and the <c>Tensor</c> operators that take a number (<c>t * 255</c>, <c>1 - t</c>, which call
/// <c>left.mul(right)</c> with an implicit Scalar) or convert one (<c>Tensor</c>'s implicit conversion from a number,
/// a hidden <c>torch.tensor(v)</c>), and every call of a TorchSharp method that makes a temporary Scalar inside itself
/// (<see cref="TorchSharpScalarTemporaries"/>: <c>a + b</c>, <c>a.add(b)</c>, <c>square()</c>, <c>arange(stop)</c>,
/// <c>t.ToDouble()</c>, <c>nn.LeakyReLU</c>, …) unless <see cref="Allowlist"/> names it. Code must write <c>S(v)</c>
/// (<see cref="MLNetMedSeg.Core.Scalars"/>) or <c>torch.tensor(v)</c> instead, and the kept-Scalar forms of the others
/// (<c>a.Plus(b)</c>, <c>x.pow(S(2))</c>, <c>arange(S(0), S(n), S(1), …)</c>, <c>t.DoubleValue()</c>, <c>LeakyReLUModule</c>, …).
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

    /// <summary>
    /// The calls into TorchSharp that make a temporary Scalar inside TorchSharp and that our shipped code may make, one by
    /// one with the reason it cannot be avoided. Everything else in <see cref="TorchSharpScalarTemporaries"/> is
    /// rewritten with kept Scalars (<see cref="MLNetMedSeg.Core.Scalars"/>). <c>AllowlistEntriesAreStillNeeded</c> fails
    /// when a TorchSharp release no longer makes one of these temporaries, so that the entry goes.
    /// </summary>
    public static readonly IReadOnlyList<AllowedTemporary> Allowlist =
    [
        // Scalars.Softplus calls TorchSharp's private Scalar overload softplus1(Scalar, Scalar) with kept Scalars; it
        // falls back to the public double overload only where a TorchSharp release lacks that private method
        // (ScalarLifetimeTests.HelpersMatchTheOriginalCalls asserts that 0.107 has it).
        new("TorchSharp.torch.Tensor::softplus(Double, Double)", "MLNetMedSeg.Core.Scalars::Softplus",
            "fallback for a TorchSharp without the private Scalar overload"),
    ];

    /// <summary>Every offending call in the assembly at <paramref name="assemblyPath"/>, in metadata order, less <see cref="Allowlist"/>.</summary>
    public static IReadOnlyList<ScalarConversionSite> Scan(string assemblyPath) =>
        Scan(assemblyPath, Callee).Where(s => !Allowlist.Any(a => a.Matches(s))).ToList();

    /// <summary>Every offending call in the assembly, the allowlisted ones included.</summary>
    public static IReadOnlyList<ScalarConversionSite> ScanWithoutAllowlist(string assemblyPath) => Scan(assemblyPath, Callee);

    /// <summary>
    /// Every seeded draw in the assembly that does not go through <see cref="MLNetMedSeg.Core.SeededRandom"/>: a call of a
    /// TorchSharp method that takes a <c>Generator</c> (torch.rand/randn/randint/randperm/…, Tensor.uniform_/normal_/…).
    /// TorchSharp's generators are CPU generators whatever device they are made with, so such a call fails on CUDA tensors.
    /// </summary>
    public static IReadOnlyList<ScalarConversionSite> ScanSeededDraws(string assemblyPath) =>
        Scan(assemblyPath, (md, handle) => GeneratorCallee(md, handle) is { } callee ? (callee, null) : null).Where(s => !s.Method.StartsWith("MLNetMedSeg.Core.SeededRandom", StringComparison.Ordinal)).ToList();

    private static IReadOnlyList<ScalarConversionSite> Scan(string assemblyPath, Func<MetadataReader, EntityHandle, (string Callee, string? Inside)?> rule)
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
                bool isConstructor = md.GetString(method.Name) == ".ctor";
                foreach (var (offset, (callee, inside)) in OffendingCalls(md, body.GetILReader(), rule,
                             instruction => isConstructor && IsBaseConstructorCallOfOverridingType(md, type, instruction)))
                {
                    sites.Add(new ScalarConversionSite($"{Names.Of(md, typeHandle)}::{md.GetString(method.Name)}", callee, offset,
                        pdbReader is null ? null : SourceOf(pdbReader, methodHandle, offset), inside));
                }
            }
        }
        return sites;
    }

    /// <summary>The sites grouped per method, one line each, for a failure message.</summary>
    public static string Describe(IEnumerable<ScalarConversionSite> sites) => string.Join(Environment.NewLine,
        sites.GroupBy(s => s.Method).OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => $"  {g.Key} ({g.Count()}): " + string.Join("; ", g.Select(s =>
                $"{s.Callee}{(s.Source is null ? "" : $" {s.Source}")}{(s.Inside is null ? "" : $" [inside TorchSharp: {s.Inside}]")}"))));

    private static IEnumerable<(int Offset, (string Callee, string? Inside) Call)> OffendingCalls(MetadataReader md, BlobReader il,
        Func<MetadataReader, EntityHandle, (string Callee, string? Inside)?> rule, Func<TorchSharpScalarTemporaries.IL.Instruction, bool> exempt)
    {
        foreach (var instruction in TorchSharpScalarTemporaries.IL.Decode(il))
        {
            // call, callvirt, newobj, ldftn, ldvirtftn, jmp
            if (instruction.Token is { } token && rule(md, token) is { } call && !exempt(instruction)) yield return (instruction.Offset, call);
        }
    }

    /// <summary>
    /// Whether <paramref name="instruction"/>, in a constructor of <paramref name="type"/>, is its <c>: base(…)</c> call
    /// to a TorchSharp constructor that is in <see cref="TorchSharpScalarTemporaries"/> only because that TorchSharp
    /// type's own <c>forward</c>/<c>step</c> override makes a temporary, while <paramref name="type"/> overrides that
    /// method itself (our kept-Scalar <c>KeptScalarAdam : Adam</c>, <c>KeptScalarBatchNorm2d : BatchNorm</c>, …).
    /// </summary>
    /// <remarks>
    /// A TorchSharp constructor is flagged for its type's forward/step because constructing the type is what later runs
    /// that method through the base class's virtual call. That holds for <c>newobj</c> of the TorchSharp type (the
    /// object <em>is</em> one) and for a <c>: base(…)</c> call from a subclass that inherits the method; it does not for
    /// a subclass that overrides it: the object's forward/step is then the subclass's own, scanned here like every other
    /// method of ours. So only <c>call</c> (never <c>newobj</c>) of such a constructor, from a constructor of a type that
    /// declares its own override of that very method, is exempt; a base constructor that makes a temporary in its own
    /// body (<see cref="TorchSharpScalarTemporaries.ConstructorEntry"/> is null for it) is still reported.
    /// </remarks>
    private static bool IsBaseConstructorCallOfOverridingType(MetadataReader md, TypeDefinition type, TorchSharpScalarTemporaries.IL.Instruction instruction)
    {
        if (instruction.Code != TorchSharpScalarTemporaries.IL.Call || instruction.Token is not { } token) return false;
        if (TorchSharpScalarTemporaries.KeyOfReference(md, token) is not { } key
            || TorchSharpScalarTemporaries.ForLoadedTorchSharp.ConstructorEntry(key) is not { } entry) return false;
        return type.GetMethods().Select(md.GetMethodDefinition).Any(m =>
            m.RelativeVirtualAddress != 0 && md.GetString(m.Name) == entry && TorchSharpScalarTemporaries.IsOverride(m));
    }

    /// <summary>
    /// <c>Type::Name(Params)</c> when <paramref name="handle"/> is an offending TorchSharp method (with, for one that
    /// makes its temporary inside TorchSharp, the call chain down to it), else null.
    /// </summary>
    private static (string Callee, string? Inside)? Callee(MetadataReader md, EntityHandle handle)
    {
        if (ConversionCallee(md, handle) is { } conversion) return (conversion, null);
        if (TorchSharpScalarTemporaries.KeyOfReference(md, handle) is not { } key
            || TorchSharpScalarTemporaries.ForLoadedTorchSharp.Why(key) is not { } why) return null;
        if (handle.Kind == HandleKind.MethodSpecification)
            handle = md.GetMethodSpecification((MethodSpecificationHandle)handle).Method;
        var member = md.GetMemberReference((MemberReferenceHandle)handle);
        string type = key[..key.IndexOf("::", StringComparison.Ordinal)];
        var parameters = member.DecodeMethodSignature(Names.Instance, null).ParameterTypes;
        return ($"{type}::{md.GetString(member.Name)}({string.Join(", ", parameters)})".Replace('+', '.'), why);
    }

    /// <summary><c>Type::Name(Params)</c> when <paramref name="handle"/> is a Scalar conversion or a Tensor operator with a number operand, else null.</summary>
    private static string? ConversionCallee(MetadataReader md, EntityHandle handle)
    {
        if (handle.Kind == HandleKind.MethodSpecification)
            handle = md.GetMethodSpecification((MethodSpecificationHandle)handle).Method;
        if (handle.Kind != HandleKind.MemberReference) return null;   // our own methods; TorchSharp's are references
        var member = md.GetMemberReference((MemberReferenceHandle)handle);
        if (member.GetKind() != MemberReferenceKind.Method || member.Parent.Kind != HandleKind.TypeReference) return null;
        string type = Names.Of(md, (TypeReferenceHandle)member.Parent);
        string name = md.GetString(member.Name);
        bool scalarConversion = type == ScalarName && name is "op_Implicit" or "op_Explicit";
        bool tensorOperator = type == TensorName && name.StartsWith("op_", StringComparison.Ordinal);
        if (!scalarConversion && !tensorOperator) return null;
        var parameters = member.DecodeMethodSignature(Names.Instance, null).ParameterTypes;
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
        string type = Names.Of(md, (TypeReferenceHandle)member.Parent);
        if (!type.StartsWith("TorchSharp.", StringComparison.Ordinal)) return null;
        var parameters = member.DecodeMethodSignature(Names.Instance, null).ParameterTypes;
        if (!parameters.Contains("TorchSharp.torch+Generator")) return null;
        return $"{type}::{md.GetString(member.Name)}({string.Join(", ", parameters)})".Replace('+', '.');
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
}
