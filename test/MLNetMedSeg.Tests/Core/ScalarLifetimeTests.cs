using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// TorchSharp 0.107 frees a Scalar's native value in its finalizer, and a temporary Scalar (the implicit conversion in
/// <c>t.mul(0.5)</c>, the one inside <c>t * 255</c>) is unreachable while libtorch still reads it: a use-after-free when
/// another thread's garbage collection runs the finalizer then. <see cref="Scalars"/> keeps the scalars alive; these
/// tests hold the shipped assemblies to it and check that <c>S(...)</c> changes no dtype and no value.
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
                $"MLNetMedSeg.Core.Scalars, or torch.tensor(v) for a tensor):{Environment.NewLine}{ScalarConversionScanner.Describe(sites)}");
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
        public static Tensor Kept(Tensor t) => (S(1.0) - t * S(2)).clamp(S(0), S(1)).mul(S(0.5f)).pow(S(2L));
    }

    [TestMethod]
    public void ScanReportsEveryKindOfTemporaryScalar()
    {
        var sites = ScalarConversionScanner.Scan(typeof(ScalarLifetimeTests).Assembly.Location);
        string Of(string method) => $"MLNetMedSeg.Tests.Core.ScalarLifetimeTests+Offenders::{method}";
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

    /// <summary>Each thread has its own ring: scalars made on others never evict this thread's.</summary>
    [TestMethod]
    public void ThreadsKeepTheirOwnScalarsUnderGarbageCollection()
    {
        using var stop = new CancellationTokenSource();
        var collector = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested) { GC.Collect(); GC.WaitForPendingFinalizers(); }
        });
        try
        {
            Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, worker =>
            {
                using var x = arange(S(0), S(64), ScalarType.Float32);
                var mine = S(worker + 0.25);
                for (int i = 0; i < 2000; i++)
                {
                    using var scope = NewDisposeScope();
                    var y = ((x + S(i)) * S(2) - S(2 * i)) / S(2.0);   // == x
                    Assert.IsTrue(y.eq(x).all().ToBoolean(), $"worker {worker}, step {i}");
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
