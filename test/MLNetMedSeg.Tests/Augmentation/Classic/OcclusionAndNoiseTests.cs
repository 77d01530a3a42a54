using MLNetMedSeg.Augmentation.Classic;
using static MLNetMedSeg.Tests.Augmentation.Classic.AugBatch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Augmentation.Classic;

[TestClass]
public sealed class OcclusionAndNoiseTests
{
    [TestMethod]
    public void CutOutZeroesOneClippedSquarePerSampleAndLeavesMasksUnchanged()
    {
        using var scope = torch.NewDisposeScope();
        const int n = 24, h = 40, w = 48;
        var (images, masks) = Binary(n, h, w);
        using var g = new Generator(31);
        var (oi, om) = new CutOut().Apply(images, masks, g);
        Assert.IsTrue(om.IsEqual(masks), "CutOut leaves the mask unchanged");
        var a = F(images); var b = F(oi);
        const int side = 20; // 0.5 * min(40, 48)
        bool sawClipped = false;
        for (int i = 0; i < n; i++)
        {
            var changed = Changed(a, b, i, 3, h, w);
            var (y0, y1, x0, x1, count) = Bounds(changed);
            Assert.IsTrue(count > 0, $"sample {i}: default probability 1 always cuts");
            Assert.AreEqual((y1 - y0) * (x1 - x0), count, $"sample {i}: the changed pixels form one rectangle");
            Assert.IsTrue(y1 - y0 <= side && x1 - x0 <= side, $"sample {i}: hole larger than the side");
            if (y1 - y0 < side) Assert.IsTrue(y0 == 0 || y1 == h, $"sample {i}: a short hole must be clipped by the border");
            if (x1 - x0 < side) Assert.IsTrue(x0 == 0 || x1 == w, $"sample {i}: a narrow hole must be clipped by the border");
            sawClipped |= y1 - y0 < side || x1 - x0 < side;
            for (int c = 0; c < 3; c++)
            for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
                Assert.AreEqual(0f, b[((i * 3 + c) * h + y) * w + x]);
        }
        Assert.IsTrue(sawClipped, "centres are uniform over the image, so some holes are clipped");
    }

    [TestMethod]
    public void CutOutMeanFillAndSeveralHoles()
    {
        using var scope = torch.NewDisposeScope();
        const int n = 6, h = 32, w = 32;
        var (images, masks) = Binary(n, h, w);
        using var g = new Generator(32);
        var (oi, om) = new CutOut(new CutOutOptions { Fill = CutOutFill.Mean, SideFraction = 0.25 }).Apply(images, masks, g);
        Assert.IsTrue(om.IsEqual(masks));
        var mean = F(images.mean([2L, 3L]));
        var a = F(images); var b = F(oi);
        for (int i = 0; i < n; i++)
        {
            var (y0, y1, x0, x1, count) = Bounds(Changed(a, b, i, 3, h, w));
            Assert.AreEqual((y1 - y0) * (x1 - x0), count);
            for (int c = 0; c < 3; c++)
                Assert.AreEqual(mean[i * 3 + c], b[((i * 3 + c) * h + y0) * w + x0], 1e-6, $"sample {i} ch {c} filled with its mean");
        }

        using var g2 = new Generator(33);
        var (mi, _) = new CutOut(new CutOutOptions { Holes = 3, SideFraction = 0.125 }).Apply(images, masks, g2);
        var bm = F(mi);
        for (int i = 0; i < n; i++)
        {
            var changed = Changed(a, bm, i, 3, h, w);
            int count = Bounds(changed).count;
            Assert.IsTrue(count > 0 && count <= 3 * 16, $"sample {i}: three 4x4 holes cover 1..48 pixels, got {count}");
        }
    }

    [TestMethod]
    public void RandomErasingFillsOneRectangleWithinTheAreaAndAspectRangesAndKeepsMasks()
    {
        using var scope = torch.NewDisposeScope();
        const int n = 40, h = 48, w = 48;
        var (images, masks) = Binary(n, h, w);
        using var g = new Generator(41);
        var (oi, om) = new RandomErasing(new RandomErasingOptions { Probability = 1 }).Apply(images, masks, g);
        Assert.IsTrue(om.IsEqual(masks), "Random Erasing leaves the mask unchanged");
        Assert.IsTrue(oi.min().ToSingle() >= 0 && oi.max().ToSingle() <= 1, "random values in [0,1]");
        var a = F(images); var b = F(oi);
        for (int i = 0; i < n; i++)
        {
            var (y0, y1, x0, x1, count) = Bounds(Changed(a, b, i, 3, h, w));
            int eh = y1 - y0, ew = x1 - x0;
            Assert.AreEqual(eh * ew, count, $"sample {i}: one rectangle");
            // Each side is the drawn real side rounded to whole pixels (±0.5), so the drawn area/aspect lie within
            // these bounds of the observed rectangle.
            double hw = h * w;
            Assert.IsTrue((eh + 0.5) * (ew + 0.5) >= 0.02 * hw && (eh - 0.5) * (ew - 0.5) <= 0.33 * hw,
                $"sample {i}: area {count} px outside [0.02, 0.33] of {hw}");
            Assert.IsTrue((eh + 0.5) / (ew - 0.5) >= 0.3 && (eh - 0.5) / (ew + 0.5) <= 3.3,
                $"sample {i}: aspect {eh}/{ew} outside [0.3, 3.3]");
        }

        using var g2 = new Generator(42);
        var (big, bigMasks) = Binary(400, 16, 16);
        var (hi, _) = new RandomErasing().Apply(big, bigMasks, g2);
        var diff = (hi - big).abs().sum([1L, 2L, 3L]) > S(0);
        double rate = diff.to(ScalarType.Float32).mean().ToSingle();
        Assert.AreEqual(0.5, rate, 0.07, "default erasing probability 0.5");
    }

    [TestMethod]
    public void GaussianNoiseHasTheConfiguredStandardDeviationAndKeepsMasks()
    {
        using var scope = torch.NewDisposeScope();
        var images = torch.full([8, 3, 32, 32], S(0.5), ScalarType.Float32);
        var masks = torch.ones([8, 1, 32, 32]);
        using var g = new Generator(51);
        var (oi, om) = new GaussianNoise(new GaussianNoiseOptions { Sigma = 0.1, Probability = 1 }).Apply(images, masks, g);
        Assert.IsTrue(om.IsEqual(masks));
        var noise = oi - S(0.5);
        Assert.AreEqual(0.1, noise.std().ToSingle(), 0.004, "σ = 0.1 (clamping at 5σ is negligible)");
        Assert.AreEqual(0.0, noise.mean().ToSingle(), 0.003);

        using var g2 = new Generator(52);
        var (ci, _) = new GaussianNoise().Apply(images, masks, g2);
        Assert.IsTrue(ci.min().ToSingle() >= 0 && ci.max().ToSingle() <= 1, "clamped to [0,1]");
        Assert.IsTrue(ci.eq(S(0.0)).any().ToBoolean() && ci.eq(S(1.0)).any().ToBoolean(), "σ = 0.5 hits both clamps");

        var many = torch.full([400, 1, 4, 4], S(0.5), ScalarType.Float32);
        var manyMasks = torch.zeros([400, 1, 4, 4]);
        using var g3 = new Generator(53);
        var choices = new[] { 0.05, 0.2 };
        var (mi, _) = new GaussianNoise(new GaussianNoiseOptions { SigmaChoices = choices }).Apply(many, manyMasks, g3);
        var per = F((mi - S(0.5)).abs().amax([1L, 2L, 3L]));
        double noisy = per.Count(v => v > 0) / 400.0;
        Assert.AreEqual(0.5, noisy, 0.07, "default probability 0.5 (half the batch clean)");
        var wide = torch.full([2, 1, 64, 64], S(0.5), ScalarType.Float32);
        using var g4 = new Generator(54);
        var (wi, _) = new GaussianNoise(new GaussianNoiseOptions { SigmaChoices = choices, Probability = 1 }).Apply(wide, torch.zeros([2, 1, 64, 64]), g4);
        var stds = F((wi - S(0.5)).std([1L, 2L, 3L]));
        foreach (var s in stds)
            Assert.IsTrue(choices.Any(c => Math.Abs(c - s) < 0.15 * c), $"per-sample std {s:F3} is one of the choices");
    }
}
