using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// TorchSharp 0.107 frees a Scalar's native value in its finalizer, and a temporary Scalar (the implicit conversion in
/// <c>t.mul(0.5)</c>, the one inside <c>t * 255</c>) is unreachable while libtorch still reads it: a use-after-free when
/// another thread's garbage collection runs the finalizer then. <see cref="Scalars"/> keeps the scalars alive; these
/// tests hold the shipped assemblies to it and check that <c>S(...)</c> changes no dtype and no value. TorchSharp's own
/// methods make such temporaries too (<c>a + b</c> passes an implicit alpha of 1): <see cref="TorchSharpScalarTemporaries"/>
/// finds them in TorchSharp.dll's IL, the scan fails on our calls to them, and the kept-Scalar helpers that replace
/// them are checked to give the originals' results bit for bit.
/// </summary>
[TestClass]
public sealed class ScalarLifetimeTests
{
    /// <summary>The library and the MSTest helpers never make a temporary Scalar (the CLI: MLNetMedSeg.Cli.Tests).</summary>
    [TestMethod]
    public void ShippedAssembliesMakeNoTemporaryScalars()
    {
        foreach (var assembly in new[] { typeof(Scalars).Assembly, typeof(MLNetMedSeg.Testing.MetricsAssert).Assembly })
        {
            var sites = ScalarConversionScanner.Scan(assembly.Location);
            Assert.AreEqual(0, sites.Count,
                $"{assembly.GetName().Name} hands numbers to TorchSharp through temporary Scalars (write S(v) from " +
                "MLNetMedSeg.Core.Scalars, or torch.tensor(v) for a tensor), or calls TorchSharp methods that make one inside " +
                "(write a.Plus(b), S(v).Minus(t), x.pow(S(2)), arange(S(0), S(n), S(1), …), x.leaky_relu(S(slope)), " +
                "LeakyReLUModule(slope), Softplus(x), t.DoubleValue(), t.add_(u, S(1)); see Core/Scalars.Operations.cs):" +
                $"{Environment.NewLine}{ScalarConversionScanner.Describe(sites)}");
        }
    }

    // What the scan must catch: never called, only read as IL by the next test.
    private static class Offenders
    {
        public static Tensor TimesInt(Tensor t) => t * 2;
        public static Tensor OneMinus(Tensor t) => 1.0 - t;
        public static Tensor MulDouble(Tensor t) => t.mul(0.5);
        public static Tensor Clamp(Tensor t) => t.clamp(0, 1);
        public static Tensor FromNumber() => torch.where(ones(2).gt(S(0)), 1.0, ones(2));
        public static Func<Tensor, Tensor> InLambda() => t => t.pow(2);
        public static Tensor AfterSwitch(Tensor t, int k)
        {
            switch (k)   // an IL switch: its jump table must be stepped over exactly
            {
                case 0: t = t.neg(); break;
                case 1: t = t.abs(); break;
                case 2: t = t.exp(); break;
                case 3: t = t.sin(); break;
            }
            return t * 3L;
        }
        public static Tensor Kept(Tensor t) => S(1.0).Minus(t * S(2)).clamp(S(0), S(1)).mul(S(0.5f)).pow(S(2L));

        // TorchSharp methods that make a temporary Scalar inside themselves.
        public static Tensor PlusTensors(Tensor a, Tensor b) => a + b;
        public static Tensor AddWithoutAlpha(Tensor a, Tensor b) => a.add(b);
        public static Tensor PlusKeptScalar(Tensor t) => t + S(1);
        public static Tensor KeptScalarMinus(Tensor t) => S(1) - t;
        public static Tensor AddInPlace(Tensor a, Tensor b) => a.add_(b);
        public static Tensor Square(Tensor t) => t.square();
        public static Tensor ArangeStop() => arange(S(4), ScalarType.Float32);
        public static double Value(Tensor t) => t.ToDouble();
        public static Tensor LeakyRelu(Tensor t) => nn.functional.leaky_relu(t, 0.2);
        public static nn.Module<Tensor, Tensor> LeakyReluModule() => nn.LeakyReLU(0.2);
        public static Tensor Softplus(Tensor t) => nn.functional.softplus(t);
        public static nn.Module<Tensor, Tensor> Norm() => nn.BatchNorm2d(4);
        public static optim.Optimizer NewAdam(Tensor p) => optim.Adam([new TorchSharp.Modules.Parameter(p)]);
        // Constructing our kept-Scalar subclasses (newobj of our types; their ctors' base(…) calls are exempt).
        public static object KeptModules(Tensor p) => (Layers.BatchNorm2d(4), MLNetMedSeg.Core.Optimizers.Adam([new TorchSharp.Modules.Parameter(p)]),
            new OverridesStep([new TorchSharp.Modules.Parameter(p)]));

        // A subclass that inherits TorchSharp's step: its base(…) call is what exposes Adam.step, so it is reported.
        public sealed class InheritsStep(IEnumerable<TorchSharp.Modules.Parameter> parameters) : TorchSharp.Modules.Adam(parameters);

        // A subclass with its own step: its base(…) call is not reported; its step is scanned as ours.
        public sealed class OverridesStep(IEnumerable<TorchSharp.Modules.Parameter> parameters) : TorchSharp.Modules.Adam(parameters)
        {
            public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(_ => { }, closure);
        }
        public static Tensor KeptForms(Tensor a, Tensor b) =>
            a.Plus(b).Plus(S(1)).add_(b, S(1)).add_(S(2), S(1)).pow(S(2)).leaky_relu(S(0.2))
                .mul(S(1).Minus(a)).mul(arange(S(0), S(4), S(1), ScalarType.Float32)).mul(S(a.DoubleValue()))
                .mul(Scalars.Softplus(b)).mul(LeakyReLUModule(0.2).call(b));
    }

    [TestMethod]
    public void ScanReportsEveryKindOfTemporaryScalar()
    {
        var sites = ScalarConversionScanner.Scan(typeof(ScalarLifetimeTests).Assembly.Location);
        string Of(string method) => method.Contains("::", StringComparison.Ordinal)
            ? $"MLNetMedSeg.Tests.Core.ScalarLifetimeTests+Offenders+{method}"
            : $"MLNetMedSeg.Tests.Core.ScalarLifetimeTests+Offenders::{method}";
        string[] Callees(string method) => sites.Where(s => s.Method == Of(method)).Select(s => s.Callee).ToArray();

        CollectionAssert.AreEqual(new[] { "TorchSharp.torch.Tensor::op_Multiply(TorchSharp.torch.Tensor, Int32)" }, Callees("TimesInt"));
        CollectionAssert.AreEqual(new[] { "TorchSharp.torch.Tensor::op_Subtraction(Double, TorchSharp.torch.Tensor)" }, Callees("OneMinus"));
        CollectionAssert.AreEqual(new[] { "TorchSharp.Scalar::op_Implicit(Double)" }, Callees("MulDouble"));
        CollectionAssert.AreEqual(new[] { "TorchSharp.Scalar::op_Implicit(Int32)", "TorchSharp.Scalar::op_Implicit(Int32)" }, Callees("Clamp"));
        CollectionAssert.AreEqual(new[] { "TorchSharp.torch.Tensor::op_Implicit(Double)" }, Callees("FromNumber"));
        Assert.IsTrue(sites.Any(s => s.Method.StartsWith("MLNetMedSeg.Tests.Core.ScalarLifetimeTests+Offenders+<>c::<InLambda>", StringComparison.Ordinal)
                                     && s.Callee == "TorchSharp.Scalar::op_Implicit(Int32)"), "a lambda's body is a method of its own");
        CollectionAssert.AreEqual(new[] { "TorchSharp.torch.Tensor::op_Multiply(TorchSharp.torch.Tensor, Int64)" }, Callees("AfterSwitch"));
        Assert.AreEqual(0, Callees("Kept").Length, "S(...) makes no temporary Scalar");
        var site = sites.First(s => s.Method == Of("TimesInt"));
        Assert.IsNotNull(site.Source, "the PDB gives the line");
        StringAssert.StartsWith(site.Source, "ScalarLifetimeTests.cs:");

        var text = ScalarConversionScanner.Describe(sites.Where(s => s.Method == Of("Clamp")));
        StringAssert.Contains(text, "ScalarLifetimeTests+Offenders::Clamp (2): TorchSharp.Scalar::op_Implicit(Int32) ScalarLifetimeTests.cs:");

        // Temporaries made inside TorchSharp: reported with the chain of calls down to the conversion.
        const string T = "TorchSharp.torch.Tensor";
        CollectionAssert.AreEqual(new[] { $"{T}::op_Addition({T}, {T})" }, Callees("PlusTensors"));
        CollectionAssert.AreEqual(new[] { $"{T}::add({T})" }, Callees("AddWithoutAlpha"));
        CollectionAssert.AreEqual(new[] { $"{T}::op_Addition({T}, TorchSharp.Scalar)" }, Callees("PlusKeptScalar"));
        CollectionAssert.AreEqual(new[] { $"{T}::op_Subtraction(TorchSharp.Scalar, {T})" }, Callees("KeptScalarMinus"));
        CollectionAssert.AreEqual(new[] { $"{T}::add_({T})" }, Callees("AddInPlace"));
        CollectionAssert.AreEqual(new[] { $"{T}::square()" }, Callees("Square"));
        CollectionAssert.AreEqual(new[] { "TorchSharp.torch::arange(TorchSharp.Scalar, System.Nullable`1<TorchSharp.torch.ScalarType>, TorchSharp.torch.Device, Boolean)" },
            Callees("ArangeStop"));
        CollectionAssert.AreEqual(new[] { $"TorchSharp.TensorExtensionMethods::ToDouble({T})" }, Callees("Value"));
        CollectionAssert.AreEqual(new[] { $"TorchSharp.torch.nn.functional::leaky_relu({T}, Double, Boolean)" }, Callees("LeakyRelu"));
        CollectionAssert.AreEqual(new[] { "TorchSharp.torch.nn::LeakyReLU(Double, Boolean)" }, Callees("LeakyReluModule"));
        CollectionAssert.AreEqual(new[] { $"TorchSharp.torch.nn.functional::softplus({T}, Double, Double)" }, Callees("Softplus"));
        CollectionAssert.AreEqual(new[] { "TorchSharp.torch.nn::BatchNorm2d(Int64, Double, Double, Boolean, Boolean, TorchSharp.torch.Device, System.Nullable`1<TorchSharp.torch.ScalarType>)" },
            Callees("Norm"), "BatchNorm2d's training-mode forward makes a temporary (Layers.BatchNorm2d keeps it)");
        Assert.AreEqual(1, Callees("NewAdam").Length, "Adam's step makes temporaries (Optimizers.Adam keeps them)");
        StringAssert.StartsWith(Callees("NewAdam")[0], "TorchSharp.torch.optim::Adam(");
        StringAssert.Contains(sites.Single(s => s.Method == Of("NewAdam")).Inside, "Adam::step(");
        Assert.AreEqual(0, Callees("KeptModules").Length, "our kept-Scalar BatchNorm and optimizers make none");
        CollectionAssert.AreEqual(new[] { "TorchSharp.Modules.Adam::.ctor(System.Collections.Generic.IEnumerable`1<TorchSharp.Modules.Parameter>, Double, Double, Double, Double, Double, Boolean, Boolean)" },
            Callees("InheritsStep::.ctor"), "a subclass inheriting step exposes it through its base(…) call");
        Assert.AreEqual(0, Callees("OverridesStep::.ctor").Length, "a subclass overriding step: its base(…) call is no exposure");
        Assert.AreEqual(0, Callees("KeptForms").Length, "the kept-Scalar forms make no temporary Scalar");
        var plus = sites.Single(s => s.Method == Of("PlusTensors"));
        StringAssert.Contains(plus.Inside, "Tensor::add(Tensor)");
        StringAssert.Contains(plus.Inside, "Scalar::op_Implicit(Int32)");
        StringAssert.Contains(ScalarConversionScanner.Describe([plus]), "[inside TorchSharp: calls Tensor::add(Tensor): ");
        StringAssert.Contains(sites.Single(s => s.Method == Of("LeakyReluModule")).Inside, "LeakyReLU::forward(Tensor) is called through the base class");

        var all = ScalarConversionScanner.ScanWithoutAllowlist(typeof(ScalarLifetimeTests).Assembly.Location);
        Assert.IsTrue(all.Any(s => s.Method == Of("Norm") && s.Callee.StartsWith("TorchSharp.torch.nn::BatchNorm2d(", StringComparison.Ordinal)),
            "making a BatchNorm2d is reported (its training-mode forward makes a temporary)");
    }

    /// <summary>The set read from TorchSharp.dll holds the methods known to make a temporary and none of their kept-Scalar forms.</summary>
    [TestMethod]
    public void TorchSharpsTemporariesAreFoundInItsIL()
    {
        var set = TorchSharpScalarTemporaries.ForLoadedTorchSharp;
        bool Has(string keyPrefix) => set.Methods.Any(k => k.StartsWith(keyPrefix, StringComparison.Ordinal));
        const string T = "TorchSharp.torch+Tensor";
        string[] made =
        [
            $"{T}::add({T})", $"{T}::add(TorchSharp.Scalar)", $"{T}::add_({T})", $"{T}::add_(TorchSharp.Scalar)",
            $"{T}::op_Addition({T}, {T})", $"{T}::op_Addition({T}, TorchSharp.Scalar)", $"{T}::op_Subtraction(TorchSharp.Scalar, {T})",
            $"{T}::op_Multiply({T}, Int32)", $"{T}::square()", $"{T}::softplus(Double, Double)",
            "TorchSharp.torch::arange(TorchSharp.Scalar, System.Nullable`1<", "TorchSharp.torch::arange(TorchSharp.Scalar, TorchSharp.Scalar, System.Nullable`1<",
            $"TorchSharp.torch+nn+functional::leaky_relu({T}, Double, Boolean)", $"TorchSharp.torch+nn+functional::softplus({T}, Double, Double)",
            $"TorchSharp.TensorExtensionMethods::ToDouble({T})", $"TorchSharp.TensorExtensionMethods::ToBoolean({T})",
            "TorchSharp.torch+nn::LeakyReLU(Double, Boolean)", "TorchSharp.torch+nn::BatchNorm2d(", "TorchSharp.torch+optim::Adam(",
            "TorchSharp.Modules.BatchNorm::forward(", "TorchSharp.Modules.Adam::step(",
        ];
        foreach (var key in made) Assert.IsTrue(Has(key), $"{key} makes a temporary Scalar ({set.Count} methods found)");
        string[] clean =
        [
            $"{T}::add({T}, TorchSharp.Scalar)", $"{T}::add(TorchSharp.Scalar, TorchSharp.Scalar)", $"{T}::add_({T}, TorchSharp.Scalar)",
            $"{T}::add_(TorchSharp.Scalar, TorchSharp.Scalar)", $"{T}::op_Subtraction({T}, {T})", $"{T}::op_Multiply({T}, {T})",
            $"{T}::pow(TorchSharp.Scalar)", $"{T}::mul(TorchSharp.Scalar)", $"{T}::negative()", $"{T}::leaky_relu(TorchSharp.Scalar)",
            $"{T}::softplus1(", $"{T}::ToScalar()", "TorchSharp.Scalar::op_Implicit(", "TorchSharp.ScalarExtensionMethods::",
            "TorchSharp.torch::arange(TorchSharp.Scalar, TorchSharp.Scalar, TorchSharp.Scalar, System.Nullable`1<",
            "TorchSharp.torch+nn::Conv2d(", "TorchSharp.torch+nn::ReLU(", "TorchSharp.torch+nn::Sequential(", "TorchSharp.torch+nn::Linear(",
            "TorchSharp.torch+nn+Module`2::call(", "TorchSharp.torch+nn+functional::interpolate(", "TorchSharp.torch+optim+lr_scheduler::",
            "TorchSharp.torch+nn+functional::hardshrink(",   // converts its double, but keeps the Scalar in a using
        ];
        foreach (var key in clean)
        {
            var found = set.Methods.FirstOrDefault(k => k.StartsWith(key, StringComparison.Ordinal));
            Assert.IsNull(found, $"{key} keeps its Scalars, but the scan says: {found} {(found is null ? "" : set.Why(found))}");
        }
    }

    /// <summary>Each allowlist entry still names a method TorchSharp makes a temporary in: a fixed TorchSharp retires the entry.</summary>
    [TestMethod]
    public void AllowlistEntriesAreStillNeeded()
    {
        var set = TorchSharpScalarTemporaries.ForLoadedTorchSharp;
        foreach (var entry in ScalarConversionScanner.Allowlist)
        {
            Assert.IsFalse(string.IsNullOrWhiteSpace(entry.Why), entry.CalleePrefix);
            Assert.IsTrue(set.Methods.Any(k => k.Replace('+', '.').StartsWith(entry.CalleePrefix, StringComparison.Ordinal)),
                $"TorchSharp no longer makes a temporary Scalar in {entry.CalleePrefix}…: remove it from ScalarConversionScanner.Allowlist");
        }
    }

    /// <summary>S(v) is v.ToScalar(), what the implicit conversion calls: same scalar type, same result dtype, same bits.</summary>
    [TestMethod]
    public void SMatchesTheImplicitConversion()
    {
        using var scope = NewDisposeScope();
        using (Scalar viaConversion = 0.25) Assert.AreEqual(viaConversion.Type, S(0.25).Type, "double");
        using (Scalar viaConversion = 0.25f) Assert.AreEqual(viaConversion.Type, S(0.25f).Type, "float");
        using (Scalar viaConversion = 255) Assert.AreEqual(viaConversion.Type, S(255).Type, "int");
        using (Scalar viaConversion = 3L) Assert.AreEqual(viaConversion.Type, S(3L).Type, "long");
        using (Scalar viaConversion = true) Assert.AreEqual(viaConversion.Type, S(true).Type, "bool");
        Assert.AreEqual(0.1f, S(0.1f).ToSingle());
        Assert.AreEqual(0.1, S(0.1).ToDouble());
        Assert.AreEqual(long.MaxValue, S(long.MaxValue).ToInt64());
        Assert.IsTrue(S(true).ToBoolean());

        var tensors = new[]
        {
            arange(S(0), S(12), ScalarType.Int64).to(ScalarType.Byte).mul_(S(21)),
            arange(S(-6), S(6), ScalarType.Int64).mul_(S(1_000_000_007L)),
            linspace(-3.7, 4.1, 12, ScalarType.Float32),
            linspace(-3.7, 4.1, 12, ScalarType.Float64),
        };
        void Same(string what, Tensor expected, Tensor actual)
        {
            Assert.AreEqual(expected.dtype, actual.dtype, what);
            CollectionAssert.AreEqual(expected.shape, actual.shape, what);
            CollectionAssert.AreEqual(expected.contiguous().bytes.ToArray(), actual.contiguous().bytes.ToArray(), $"{what}: values differ");
        }
        // The implicit forms make the very temporaries this fixes: no garbage collection while they run.
        bool noGc = GC.TryStartNoGCRegion(16 << 20);
        try
        {
            foreach (var t in tensors) Compare(t);
            var flags = tensor(new[] { true, false, true });
            Same("bool.eq(true)", flags.eq(true), flags.eq(S(true)));
        }
        finally
        {
            if (noGc && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        }

        void Compare(Tensor t)
        {
            string d = t.dtype.ToString();
            Same($"{d} * 255", t * 255, t * S(255));
            Same($"{d} * 3L", t * 3L, t * S(3L));
            Same($"{d} * 0.1f", t * 0.1f, t * S(0.1f));
            Same($"{d} * 0.1", t * 0.1, t * S(0.1));
            Same($"1 - {d}", 1 - t, S(1) - t);
            Same($"0.3 - {d}", 0.3 - t, S(0.3) - t);
            Same($"{d} / 3", t / 3, t / S(3));
            Same($"{d} / 2.5", t / 2.5, t / S(2.5));
            Same($"2.5 / {d}", 2.5 / t, S(2.5) / t);
            Same($"{d} + 7", t + 7, t + S(7));
            Same($"{d} % 5", t % 5, t % S(5));
            Same($"{d}.clamp(0, 100)", t.clamp(0, 100), t.clamp(S(0), S(100)));
            Same($"{d}.pow(2)", t.pow(2), t.pow(S(2)));
            Same($"{d}.pow(0.5f)", t.abs().pow(0.5f), t.abs().pow(S(0.5f)));
            Same($"{d}.ge(0.5)", t.ge(0.5), t.ge(S(0.5)));
            Same($"{d}.masked_fill(9)", t.masked_fill(t.gt(S(2)), 9), t.masked_fill(t.gt(S(2)), S(9)));
        }
    }

    /// <summary>
    /// Each kept-Scalar form gives the result of the TorchSharp call it replaces bit for bit (same dtype, same bytes; the
    /// gradients too where a graph is built), on random float32/float64/int64 data.
    /// </summary>
    [TestMethod]
    public void HelpersMatchTheOriginalCalls()
    {
        using var scope = NewDisposeScope();
        Assert.IsTrue(SoftplusKeepsItsScalars, "TorchSharp's private Tensor.softplus1(Scalar, Scalar) is there (else Softplus falls back to the exposed overload)");
        var g = new Generator(1234);
        var f32 = randn([3, 5], generator: g).mul_(S(12));
        var inputs = new[]
        {
            f32, randn([3, 5], ScalarType.Float64, generator: g).mul_(S(30)), randint(-50, 50, [3, 5], generator: g),
        };
        var others = inputs.Select(t => t.dtype == ScalarType.Int64 ? randint(-50, 50, [3, 5], generator: g) : randn([3, 5], t.dtype, generator: g)).ToArray();
        void Same(string what, Tensor expected, Tensor actual)
        {
            Assert.AreEqual(expected.dtype, actual.dtype, what);
            CollectionAssert.AreEqual(expected.shape, actual.shape, what);
            CollectionAssert.AreEqual(expected.contiguous().bytes.ToArray(), actual.contiguous().bytes.ToArray(), $"{what}: values differ");
        }
        bool noGc = GC.TryStartNoGCRegion(16 << 20);   // the original forms make the temporaries in question
        try
        {
            for (int i = 0; i < inputs.Length; i++)
            {
                var (a, b) = (inputs[i], others[i]);
                string d = a.dtype.ToString();
                Same($"{d} a + b", a + b, a.Plus(b));
                Same($"{d} a.add(b)", a.add(b), a.Plus(b));
                Same($"{d} a + S(3)", a + S(3), a.Plus(S(3)));
                Same($"{d} a + S(0.25)", a + S(0.25), a.Plus(S(0.25)));
                Same($"{d} a.add(S(2.5f))", a.add(S(2.5f)), a.Plus(S(2.5f)));
                Same($"{d} S(1) - a", S(1) - a, S(1).Minus(a));
                Same($"{d} S(0.3) - a", S(0.3) - a, S(0.3).Minus(a));
                Same($"{d} a.add_(b)", a.clone().add_(b), a.clone().add_(b, S(1)));
                Same($"{d} a.add_(S(7))", a.clone().add_(S(7)), a.clone().add_(S(7), S(1)));
                Same($"{d} a.square()", a.square(), a.pow(S(2)));
                Same($"{d} a.sum().ToDouble()", tensor(a.sum().ToDouble()), tensor(a.sum().DoubleValue()));
                Same($"{d} a.max().ToSingle()", tensor(a.max().ToSingle()), tensor(a.max().SingleValue()));
                Same($"{d} a.min().ToInt64()", tensor(a.min().ToInt64()), tensor(a.min().Int64Value()));
                Same($"{d} a.gt(0).any().ToBoolean()", tensor(a.gt(S(0)).any().ToBoolean()), tensor(a.gt(S(0)).any().BooleanValue()));
                if (a.dtype == ScalarType.Int64) continue;
                Same($"{d} leaky_relu(a, 0.2)", nn.functional.leaky_relu(a, 0.2), a.leaky_relu(S(0.2)));
                using (var module = nn.LeakyReLU(0.2))
                    Same($"{d} nn.LeakyReLU(0.2)", module.call(a), LeakyReLUModule(0.2).call(a));
                Same($"{d} softplus(a)", nn.functional.softplus(a), Softplus(a));
                Same($"{d} softplus(a, 2, 5)", nn.functional.softplus(a, 2, 5), Softplus(a, 2, 5));
                Same($"{d} a.softplus()", a.softplus(), Softplus(a));
                Same($"{d} a.sum().ToDouble()", tensor(a.sum().ToDouble()), tensor(a.sum().DoubleValue()));
            }
            foreach (var dtype in new ScalarType?[] { null, ScalarType.Float32, ScalarType.Int64, ScalarType.Float64 })
            {
                Same($"arange(S(7), {dtype})", arange(S(7), dtype), arange(S(0), S(7), S(1), dtype));
                Same($"arange(S(2), S(9), {dtype})", arange(S(2), S(9), dtype), arange(S(2), S(9), S(1), dtype));
                if (dtype != ScalarType.Int64) Same($"arange(S(5.5), {dtype})", arange(S(5.5), dtype), arange(S(0), S(5.5), S(1), dtype));
            }

            // Gradients through the helpers: the same autograd graph.
            Tensor[] Grads(Func<Tensor, Tensor, Tensor> f)
            {
                var x = f32.clone().requires_grad_(true);
                var y = others[0].clone().requires_grad_(true);
                f(x, y).sum().backward();
                return [x.grad!.clone(), y.grad!.clone()];
            }
            void SameGrads(string what, Func<Tensor, Tensor, Tensor> original, Func<Tensor, Tensor, Tensor> kept)
            {
                var (e, k) = (Grads(original), Grads(kept));
                for (int j = 0; j < e.Length; j++) Same($"{what}: gradient {j}", e[j], k[j]);
            }
            SameGrads("softplus", (x, y) => nn.functional.softplus(x * y), (x, y) => Softplus(x * y));
            SameGrads("x + y, 1 - x", (x, y) => (x + y) * (S(1) - x), (x, y) => x.Plus(y) * S(1).Minus(x));
            SameGrads("leaky_relu, square", (x, y) => nn.functional.leaky_relu(x, 0.2) * y.square(), (x, y) => x.leaky_relu(S(0.2)) * y.pow(S(2)));
        }
        finally
        {
            if (noGc && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        }
    }

    /// <summary>LeakyReLUModule is parameter-less like nn.LeakyReLU: a network's state dict keeps its names and shapes.</summary>
    [TestMethod]
    public void LeakyReLUModuleLeavesStateDictsAsTheyWere()
    {
        using var scope = NewDisposeScope();
        using var original = nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.2), nn.Linear(4, 2));
        using var kept = nn.Sequential(nn.Linear(3, 4), LeakyReLUModule(0.2), nn.Linear(4, 2));
        CollectionAssert.AreEqual(original.state_dict().Keys.ToArray(), kept.state_dict().Keys.ToArray());
        Assert.AreEqual(0, LeakyReLUModule(0.2).parameters().Count());
    }

    [TestMethod]
    public void TheRingDisposesWhatItEvictsAndNothingElse()
    {
        var first = S(1.5);
        Assert.AreEqual(1.5, first.ToDouble());
        for (int i = 0; i < RingSize - 1; i++) _ = S(i);
        Assert.AreEqual(1.5, first.ToDouble(), $"alive while {RingSize - 1} newer scalars share the ring");
        var fresh = S(2.5);   // takes first's slot
        Assert.ThrowsException<InvalidOperationException>(() => first.ToDouble(), "evicted: disposed");
        Assert.AreEqual(2.5, fresh.ToDouble());
        using var scope = NewDisposeScope();
        Assert.IsTrue(ones(3).mul(fresh).eq(full([3], S(2.5f))).all().ToBoolean(), "a fresh one is usable");
    }

    /// <summary>
    /// Each thread has its own ring: scalars made on others never evict this thread's, and a collection forced by another
    /// thread never frees one in use. The test's own code makes no temporary Scalar either (checked first): with
    /// <c>x + S(i)</c>, TorchSharp's operator passes an implicit alpha that the collector thread can free mid-call, and
    /// the failure would be the test's own.
    /// </summary>
    [TestMethod]
    public void ThreadsKeepTheirOwnScalarsUnderGarbageCollection()
    {
        var own = ScalarConversionScanner.Scan(typeof(ScalarLifetimeTests).Assembly.Location)
            .Where(s => s.Method.Contains($"<{nameof(ThreadsKeepTheirOwnScalarsUnderGarbageCollection)}>", StringComparison.Ordinal)
                        || s.Method.EndsWith($"::{nameof(ThreadsKeepTheirOwnScalarsUnderGarbageCollection)}", StringComparison.Ordinal))
            .ToList();
        Assert.AreEqual(0, own.Count, $"this test makes temporary Scalars itself:{Environment.NewLine}{ScalarConversionScanner.Describe(own)}");

        using var stop = new CancellationTokenSource();
        var collector = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        });
        try
        {
            Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, worker =>
            {
                using var x = arange(S(0), S(64), S(1), ScalarType.Float32);
                var mine = S(worker + 0.25);
                for (int i = 0; i < 20000; i++)
                {
                    using var scope = NewDisposeScope();
                    var y = (x.Plus(S(i)) * S(2)).Plus(S(-2 * i)) / S(2.0);   // == x
                    Assert.IsTrue(y.eq(x).all().BooleanValue(), $"worker {worker}, step {i}");
                    if (i < RingSize / 8)
                        Assert.AreEqual(worker + 0.25, mine.ToDouble(), "other threads' scalars do not evict this thread's");
                }
            });
        }
        finally
        {
            stop.Cancel();
            collector.Wait();
        }
    }
}
