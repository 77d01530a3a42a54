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
        // BatchNorm2d: its forward runs `num_batches_tracked.add_(1)` (an implicit int Scalar) in training mode only
        // (TorchSharp's BatchNorm.forward: `if (training && track_running_stats)`); in eval mode, which is how every
        // prediction runs (the transformers call eval() on their network), it makes none. The module stays TorchSharp's:
        // its parameters and buffers (weight, bias, running_mean, running_var, num_batches_tracked) are what every saved
        // model holds, and our own module would have to re-implement BatchNorm's training statistics.
        new("TorchSharp.torch.nn::BatchNorm2d(", null, "training-mode forward: num_batches_tracked.add_(1)"),
        // The optimizers: constructing one is flagged because its step() (called through Optimizer.step) makes
        // temporaries, e.g. Adam/AdamW `exp_avg.mul_(beta1).add_(grad, alpha: 1 - beta1)` and RMSProp
        // `square_avg.mul_(alpha).addcmul_(grad, grad, value: 1 - alpha)`. step() runs in training only; keeping its
        // Scalars would mean re-implementing TorchSharp's update rules (weight decay, amsgrad, maximize, …) ourselves.
        new("TorchSharp.torch.optim::Adam(", null, "step(): per-parameter update with implicit Scalars (training only)"),
        new("TorchSharp.torch.optim::AdamW(", null, "step(): per-parameter update with implicit Scalars (training only)"),
        new("TorchSharp.torch.optim::RMSProp(", null, "step(): per-parameter update with implicit Scalars (training only)"),
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
                foreach (var (offset, (callee, inside)) in OffendingCalls(md, body.GetILReader(), rule))
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
        Func<MetadataReader, EntityHandle, (string Callee, string? Inside)?> rule)
    {
        foreach (var instruction in TorchSharpScalarTemporaries.IL.Decode(il))
        {
            // call, callvirt, newobj, ldftn, ldvirtftn, jmp
            if (instruction.Token is { } token && rule(md, token) is { } call) yield return (instruction.Offset, call);
        }
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
