using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// libtorch's oneDNN switch and the check behind it. On CPUs where oneDNN's narrow convolutions compute wrong
/// gradients (seen on an AMD EPYC with AVX-512 BF16), the library turns oneDNN off; the gradients are then right.
/// </summary>
[TestClass]
public sealed class OneDnnTests
{
    private static double Cosine(Tensor a, Tensor b)
    {
        var x = a.to(ScalarType.Float64).flatten();
        var y = b.to(ScalarType.Float64).flatten();
        return x.dot(y).item<double>() / (x.norm().item<double>() * y.norm().item<double>());
    }

    [TestMethod]
    public void NarrowConvolutionGradients_MatchFloat64_AfterInitialize()
    {
        // What every test and every MedSegContext relies on: after TorchRuntime.Initialize, a float32 3×3 convolution
        // with few output channels back-propagates as float64 does (shapes the check does not use).
        TorchRuntime.Initialize();
        using var scope = NewDisposeScope();
        using var gen = new Generator(7);
        foreach (var (cin, cout) in new[] { (3, 8), (64, 15), (16, 2), (8, 32) })
        {
            var x = SeededRandom.Randn([2, cin, 24, 24], ScalarType.Float64, CPU, gen);
            var w = SeededRandom.Randn([cout, cin, 3, 3], ScalarType.Float64, CPU, gen).mul_(Scalars.S(0.1));
            var g = SeededRandom.Randn([2, cout, 24, 24], ScalarType.Float64, CPU, gen);
            Tensor Grad(ScalarType t)
            {
                var xi = x.to(t).requires_grad_(true);
                nn.functional.conv2d(xi, w.to(t), padding: [1, 1]).mul(g.to(t)).sum().backward();
                return xi.grad!;
            }
            double cos = Cosine(Grad(ScalarType.Float32), Grad(ScalarType.Float64));
            Assert.IsTrue(cos > 0.9999, $"{cin} → {cout}: input-gradient cosine {cos:F5} to float64 (oneDNN {(OneDnn.Enabled ? "on" : "off")}; check: {OneDnn.Check.Message})");
        }
    }

    [TestMethod]
    public void Switch_RoundTripsThroughLibtorch()
    {
        Assert.IsTrue(OneDnn.IsSupported, "libtorch's at::Context entry points are reachable on Linux");
        bool was = OneDnn.Enabled;
        try
        {
            OneDnn.Enabled = !was;
            Assert.AreEqual(!was, OneDnn.Enabled);
        }
        finally { OneDnn.Enabled = was; }
        Assert.AreEqual(was, OneDnn.Enabled);
        // Initialize turned it off exactly where the check failed (MEDSEG_ONEDNN unset in the test run).
        if (Environment.GetEnvironmentVariable("MEDSEG_ONEDNN") is null) Assert.AreEqual(!OneDnn.Check.Passed, OneDnn.TurnedOff);
        if (OneDnn.TurnedOff) Assert.IsFalse(OneDnn.NnpackEnabled, "NNPACK goes off with oneDNN");
        bool nnpack = OneDnn.NnpackEnabled;
        try
        {
            OneDnn.NnpackEnabled = !nnpack;
            Assert.AreEqual(!nnpack, OneDnn.NnpackEnabled);
        }
        finally { OneDnn.NnpackEnabled = nnpack; }
    }

    [TestMethod]
    public void Setting_OverridesTheCheck_AndBadValuesAreClearErrors()
    {
        int checks = 0;
        OneDnnCheck Failing() { checks++; return new OneDnnCheck(false, "wrong"); }
        Assert.IsFalse(OneDnn.Wanted(null, Failing));
        Assert.IsFalse(OneDnn.Wanted("auto", Failing));
        Assert.AreEqual(2, checks);
        Assert.IsTrue(OneDnn.Wanted("on", Failing));
        Assert.IsFalse(OneDnn.Wanted("off", () => new OneDnnCheck(true, "right")));
        Assert.IsTrue(OneDnn.Wanted(" AUTO ", () => new OneDnnCheck(true, "right")));
        Assert.AreEqual(2, checks, "on and off do not run the check");
        var e = Assert.ThrowsException<InvalidOperationException>(() => OneDnn.Wanted("maybe", Failing));
        StringAssert.Contains(e.Message, "MEDSEG_ONEDNN='maybe'");
    }
}
