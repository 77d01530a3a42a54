using MLNetMedSeg.Evaluation;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Evaluation;

/// <summary>
/// The generator checks' statistics: the Fréchet distance (closed forms, a set against itself, growth with noise,
/// rank-deficient covariances), the ImageNet ResNet-18 pooled features it is computed on ("Fréchet ResNet-18
/// distance"), and the two-sample Kolmogorov–Smirnov test.
/// </summary>
[TestClass]
public sealed class GeneratorMetricTests
{
    private static Tensor RandomFeatures(int n, int d, ulong seed, double scale = 1)
    {
        using var g = new Generator(seed);
        using var scope = torch.NewDisposeScope();
        // Correlated features: z·A + b, so that the covariance is not diagonal.
        var a = torch.randn([d, d], ScalarType.Float64, generator: g) / S(Math.Sqrt(d));
        var b = torch.randn([d], ScalarType.Float64, generator: g);
        return ((torch.randn([n, d], ScalarType.Float64, generator: g).matmul(a) + b) * S(scale)).MoveToOuterDisposeScope();
    }

    [TestMethod]
    public void DistanceOfASetWithItselfIsZero()
    {
        using var x = RandomFeatures(300, 12, 1);
        double d = FrechetDistance.Compute(x, x);
        Assert.IsTrue(d >= 0 && d < 1e-9, $"d² of a set with itself: {d}");
    }

    [TestMethod]
    public void DistanceGrowsWithNoise()
    {
        using var scope = torch.NewDisposeScope();
        var x = RandomFeatures(400, 16, 2);
        using var g = new Generator(3);
        var noise = torch.randn(x.shape, ScalarType.Float64, generator: g);
        var distances = new[] { 0.0, 0.1, 0.3, 1.0, 3.0 }.Select(s => FrechetDistance.Compute(x, x + S(s) * noise)).ToArray();
        Assert.IsTrue(distances[0] < 1e-9, $"no noise: {distances[0]}");
        for (int i = 1; i < distances.Length; i++)
            Assert.IsTrue(distances[i] > distances[i - 1], $"d² must grow with the noise: {string.Join(", ", distances)}");
        // Shifting every feature by c adds D·c² exactly (the covariance does not change).
        Assert.AreEqual(16 * 0.25, FrechetDistance.Compute(x, x + S(0.5)), 1e-9);
    }

    [TestMethod]
    public void MatchesClosedForms()
    {
        using var scope = torch.NewDisposeScope();
        // Diagonal covariances: d² = ‖μ₁ − μ₂‖² + Σ (√a_i − √b_i)².
        var m1 = torch.tensor(new double[] { 0, 1, 2 });
        var m2 = torch.tensor(new double[] { 1, 1, 0 });
        var a = new double[] { 1, 4, 9 };
        var b = new double[] { 4, 1, 0.25 };
        double expected = 1 + 0 + 4 + Enumerable.Range(0, 3).Sum(i => Math.Pow(Math.Sqrt(a[i]) - Math.Sqrt(b[i]), 2));
        Assert.AreEqual(expected, FrechetDistance.FromStatistics(m1, torch.diag(torch.tensor(a)), m2, torch.diag(torch.tensor(b))), 1e-9);

        // Σ₁ = I, Σ₂ full: d² = Tr(I + Σ₂ − 2Σ₂^{1/2}) = Σ (1 − √λ_i)² over Σ₂'s eigenvalues λ_i.
        var q = torch.linalg.qr(RandomFeatures(4, 4, 5)).Q;
        var lambda = torch.tensor(new double[] { 0.5, 2, 3, 7 });
        var s2 = q.matmul(torch.diag(lambda)).matmul(q.t());
        var zero = torch.zeros(4, ScalarType.Float64);
        double want = new[] { 0.5, 2, 3, 7 }.Sum(l => Math.Pow(1 - Math.Sqrt(l), 2));
        Assert.AreEqual(want, FrechetDistance.FromStatistics(zero, torch.eye(4, dtype: ScalarType.Float64), zero, s2), 1e-9);
        // Symmetric in its two arguments.
        Assert.AreEqual(want, FrechetDistance.FromStatistics(zero, s2, zero, torch.eye(4, dtype: ScalarType.Float64)), 1e-9);
    }

    [TestMethod]
    public void FewerSamplesThanDimensionsAndBadInput()
    {
        using var scope = torch.NewDisposeScope();
        var x = RandomFeatures(10, 64, 6);
        var y = RandomFeatures(12, 64, 7);
        double d = FrechetDistance.Compute(x, y);
        Assert.IsTrue(double.IsFinite(d) && d > 0, $"rank-deficient covariances: {d}");
        Assert.IsTrue(FrechetDistance.Compute(x, x) < 1e-8);
        var ex = Assert.ThrowsException<ArgumentException>(() => FrechetDistance.Compute(x, RandomFeatures(10, 8, 1)));
        StringAssert.Contains(ex.Message, "64 and 8");
        Assert.ThrowsException<ArgumentException>(() => FrechetDistance.Compute(x[..1], x));
        var bad = x.clone();
        bad[0, 0] = torch.tensor(double.NaN);
        StringAssert.Contains(Assert.ThrowsException<ArgumentException>(() => FrechetDistance.Compute(bad, x)).Message, "NaN");
    }

    /// <summary>
    /// Fréchet ResNet-18 distance on images: 512-d pooled features of the package's ImageNet ResNet-18; a set against
    /// itself is 0, and the distance grows as pixel noise is added to the images.
    /// </summary>
    [TestMethod]
    public void FrechetResNet18DistanceOfImages()
    {
        using var scope = torch.NewDisposeScope();
        using var features = new ImageNetFeatures(inputSize: 64);
        using var g = new Generator(11);
        // Smooth random images: colour gradients and a disc.
        int n = 24, size = 32;
        var yy = torch.linspace(0, 1, size).view(1, 1, size, 1);
        var xx = torch.linspace(0, 1, size).view(1, 1, 1, size);
        var c = torch.rand([n, 3, 3], generator: g);
        var images = (c[.., .., 0].view(n, 3, 1, 1) * yy + c[.., .., 1].view(n, 3, 1, 1) * xx) * S(0.7) + S(0.2) * c[.., .., 2].view(n, 3, 1, 1);
        var noise = torch.randn([n, 3, size, size], generator: g);
        var f0 = features.Compute(images, batchSize: 10);
        CollectionAssert.AreEqual(new long[] { n, 512 }, f0.shape);
        Assert.IsTrue(f0.isfinite().all().ToBoolean());
        Assert.IsTrue(FrechetDistance.Compute(f0, features.Compute(images, batchSize: 7)) < 1e-6, "same images (other batching) → 0");
        double previous = 0;
        foreach (var s in new[] { 0.05, 0.15, 0.4 })
        {
            double d = FrechetDistance.Compute(f0, features.Compute((images + S(s) * noise).clamp(S(0), S(1))));
            Assert.IsTrue(d > previous, $"noise {s}: d² {d} must exceed {previous}");
            previous = d;
        }
        Assert.ThrowsException<ArgumentException>(() => features.Compute(torch.zeros(2, 1, 32, 32)));
    }

    [TestMethod]
    public void KolmogorovDistributionKnownValues()
    {
        // Q_KS(λ) = 1 − K(λ): K(1) = 0.7300003283; the 5 % and 1 % critical values are 1.3581 and 1.6276.
        Assert.AreEqual(0.2699996717, KolmogorovSmirnov.KolmogorovQ(1.0), 1e-8);
        Assert.AreEqual(0.05, KolmogorovSmirnov.KolmogorovQ(1.3581), 2e-4);
        Assert.AreEqual(0.01, KolmogorovSmirnov.KolmogorovQ(1.6276), 2e-4);
        Assert.AreEqual(1.0, KolmogorovSmirnov.KolmogorovQ(0));
        Assert.IsTrue(KolmogorovSmirnov.KolmogorovQ(5) < 1e-20);
    }

    [TestMethod]
    public void TwoSampleTest()
    {
        // By hand: F₁ steps at 1, 2, 3, 4 (¼ each), F₂ at 3, 5, 6, 7; at x = 2: F₁ = ½, F₂ = 0; at x = 4: 1 vs ¼ → D = ¾.
        var r = KolmogorovSmirnov.TwoSample([1, 2, 3, 4], [3, 5, 6, 7]);
        Assert.AreEqual(0.75, r.Statistic, 1e-12);
        double ne = 2, sq = Math.Sqrt(ne);
        Assert.AreEqual(KolmogorovSmirnov.KolmogorovQ((sq + 0.12 + 0.11 / sq) * 0.75), r.PValue, 1e-12);
        Assert.AreEqual((4, 4), (r.Count1, r.Count2));

        // Ties: both functions step at a tied value before the gap is taken.
        Assert.AreEqual(0.0, KolmogorovSmirnov.TwoSample([1, 1, 2, 2], [1, 2]).Statistic, 1e-12);
        var same = KolmogorovSmirnov.TwoSample([0.1, 0.5, 0.3], [0.3, 0.1, 0.5]);
        Assert.AreEqual((0.0, 1.0), (same.Statistic, same.PValue));

        // Seeded normal samples: the same distribution is not rejected; a one-sd shift is.
        var rng = new Random(4);
        double Normal() => Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
        var a = Enumerable.Range(0, 300).Select(_ => Normal()).ToArray();
        var b = Enumerable.Range(0, 200).Select(_ => Normal()).ToArray();
        var c = Enumerable.Range(0, 200).Select(_ => Normal() + 1).ToArray();
        Assert.IsTrue(KolmogorovSmirnov.TwoSample(a, b).PValue > 0.05, $"same distribution: {KolmogorovSmirnov.TwoSample(a, b)}");
        var shifted = KolmogorovSmirnov.TwoSample(a, c);
        Assert.IsTrue(shifted.Statistic > 0.3 && shifted.PValue < 1e-8, $"shifted by one sd: {shifted}");

        Assert.ThrowsException<ArgumentException>(() => KolmogorovSmirnov.TwoSample([], [1.0]));
        Assert.ThrowsException<ArgumentException>(() => KolmogorovSmirnov.TwoSample([double.NaN], [1.0]));
    }
}
