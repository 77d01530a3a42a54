using MLNetMedSeg.Evaluation;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Evaluation;

[TestClass]
public sealed class MsSsimTests
{
    /// <summary>
    /// Deterministic test images (float64 formula, then float32), the same as <c>pattern()</c> in
    /// build/tools/msssim_reference.py: v = clamp(0.5 + 0.3·sin(0.21i + 0.13j + c + 0.7n + shift) + 0.15·cos(0.05·i·j/(1 + shift) + n), 0, 1).
    /// </summary>
    internal static Tensor Pattern(int n, int c, int h, int w, double shift)
    {
        var v = new float[n * c * h * w];
        int k = 0;
        for (int b = 0; b < n; b++)
            for (int ch = 0; ch < c; ch++)
                for (int i = 0; i < h; i++)
                    for (int j = 0; j < w; j++)
                        v[k++] = (float)Math.Clamp(0.5 + 0.3 * Math.Sin(0.21 * i + 0.13 * j + ch + 0.7 * b + shift) + 0.15 * Math.Cos(0.05 * i * j / (1 + shift) + b), 0, 1);
        return torch.tensor(v, [n, c, h, w]);
    }

    /// <summary>
    /// Reference values from build/tools/msssim_reference.py (an independent float64 PyTorch implementation of
    /// pytorch_msssim's definition plus the documented small-image rule), run with /usr/bin/python3 (torch 1.13):
    /// <code>
    /// (2, 1, 64, 64) (3, 11, 1.5) ['0.7529559732', '0.7518045712']
    /// (1, 3, 200, 180) (5, 11, 1.5) ['0.8349927525']
    /// (2, 1, 8, 8) (1, 7, 0.9545454545454546) ['0.8308418066', '0.9711068887']
    /// (1, 1, 161, 170) (5, 11, 1.5) ['0.8371324570']
    /// (1, 1, 37, 41) (2, 11, 1.5) ['0.4440080833']
    /// </code>
    /// The inputs are float32 here and float64 there, hence the 1e-6 tolerance.
    /// </summary>
    [TestMethod]
    [DataRow(2, 1, 64, 64, 3, new[] { 0.7529559732, 0.7518045712 })]
    [DataRow(1, 3, 200, 180, 5, new[] { 0.8349927525 })]
    [DataRow(2, 1, 8, 8, 1, new[] { 0.8308418066, 0.9711068887 })]
    [DataRow(1, 1, 161, 170, 5, new[] { 0.8371324570 })]
    [DataRow(1, 1, 37, 41, 2, new[] { 0.4440080833 })]
    public void MatchesThePythonReference(int n, int c, int h, int w, int scales, double[] expected)
    {
        using var scope = torch.NewDisposeScope();
        Assert.AreEqual(scales, MsSsim.ScalesFor(h, w).Scales);
        var v = MsSsim.Compute(Pattern(n, c, h, w, 0), Pattern(n, c, h, w, 0.4));
        Assert.AreEqual(ScalarType.Float64, v.dtype);
        var got = v.ToArray<double>();
        Assert.AreEqual(expected.Length, got.Length);
        for (int i = 0; i < got.Length; i++) Assert.AreEqual(expected[i], got[i], 1e-6, $"image {i}");
    }

    [TestMethod]
    public void SmallImageRule()
    {
        Assert.AreEqual((5, 11, 1.5), MsSsim.ScalesFor(256, 256));
        Assert.AreEqual((5, 11, 1.5), MsSsim.ScalesFor(161, 161)); // 161 → 81 → 41 → 21 → 11
        Assert.AreEqual((4, 11, 1.5), MsSsim.ScalesFor(160, 300)); // 160 → 80 → 40 → 20 → 10 < 11
        Assert.AreEqual((3, 11, 1.5), MsSsim.ScalesFor(64, 64));
        Assert.AreEqual((1, 11, 1.5), MsSsim.ScalesFor(11, 20));
        var (m, win, sigma) = MsSsim.ScalesFor(8, 8);
        Assert.AreEqual((1, 7), (m, win));
        Assert.AreEqual(1.5 * 7 / 11, sigma, 1e-15);
    }

    [TestMethod]
    public void IdentityIsOneAndDissimilarityIsLower()
    {
        using var scope = torch.NewDisposeScope();
        var a = Pattern(3, 3, 64, 48, 0);
        var same = MsSsim.Compute(a, a.clone()).ToArray<double>();
        foreach (var s in same) Assert.AreEqual(1.0, s, 1e-12);
        using var g = new Generator(1);
        var noisy = (a + torch.randn(a.shape, generator: g) * S(0.2)).clamp(S(0), S(1));
        var vs = MsSsim.Compute(a, noisy).ToArray<double>();
        foreach (var s in vs) Assert.IsTrue(s is > 0 and < 0.95, $"MS-SSIM of a noisy copy {s}");
        // [C,H,W] works as a batch of one.
        Assert.AreEqual(1.0, MsSsim.Compute(a[0], a[0]).ToDouble(), 1e-12);
        Assert.ThrowsException<ArgumentException>(() => MsSsim.Compute(a, a.narrow(3, 0, 40)));
    }

    [TestMethod]
    public void MeanPairwiseIsSeededAndRanksDiversity()
    {
        using var scope = torch.NewDisposeScope();
        // Near-copies of one image (low diversity) vs different images (high diversity).
        using var g0 = new Generator(2);
        var basis = Pattern(1, 1, 32, 32, 0);
        var copies = (basis.expand(8, 1, 32, 32) + torch.randn([8, 1, 32, 32], generator: g0) * S(0.01)).clamp(S(0), S(1));
        var varied = torch.cat(Enumerable.Range(0, 8).Select(k => Pattern(1, 1, 32, 32, k * 0.9)).ToArray(), 0);
        using var g1 = new Generator(9);
        double low = MsSsim.MeanPairwise(copies, 40, g1);
        using var g2 = new Generator(9);
        double high = MsSsim.MeanPairwise(varied, 40, g2);
        Assert.IsTrue(low > 0.9, $"copies {low}");
        Assert.IsTrue(high < low - 0.2, $"varied {high} vs copies {low}");
        using var g3 = new Generator(9);
        Assert.AreEqual(high, MsSsim.MeanPairwise(varied, 40, g3), 0, "same seed, same pairs");
        // Never a pair of an image with itself: two images, so every pair is (0,1) or (1,0).
        var two = varied.narrow(0, 0, 2);
        using var g4 = new Generator(4);
        Assert.AreEqual(MsSsim.Compute(two[0], two[1]).ToDouble(), MsSsim.MeanPairwise(two, 10, g4), 1e-12);
        using var g5 = new Generator(4);
        Assert.ThrowsException<ArgumentException>(() => MsSsim.MeanPairwise(basis, 3, g5));
    }
}
