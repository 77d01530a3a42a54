using MLNetMedSeg.Augmentation.Classic;
using static MLNetMedSeg.Tests.Augmentation.Classic.AugBatch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Augmentation.Classic;

[TestClass]
public sealed class GeometricAugmentationTests
{
    [TestMethod]
    public void FlipsKeepBinaryMasksExactlyAlignedAndEachSampleIsOneOfTheFourFlips()
    {
        using var scope = torch.NewDisposeScope();
        var (images, masks) = Binary(16, 20, 24);
        using var g = new Generator(7);
        var (oi, om) = new FlipAugmentation().Apply(images, masks, g);
        Assert.IsTrue(Same(DecodeBinary(oi), om), "image foreground must equal mask foreground after flips");
        Assert.IsTrue((om.eq(S(0.0)) | om.eq(S(1.0))).all().ToBoolean(), "masks stay binary");
        var seen = new HashSet<string>();
        for (long i = 0; i < 16; i++)
        {
            var x = images.narrow(0, i, 1);
            var y = oi.narrow(0, i, 1);
            var variants = new (string, Tensor)[] { ("id", x), ("h", x.flip(3)), ("v", x.flip(2)), ("hv", x.flip(2, 3)) };
            var match = variants.Where(v => v.Item2.IsEqual(y)).Select(v => v.Item1).ToList();
            Assert.AreEqual(1, match.Count, $"sample {i} must be exactly one flip of its input");
            seen.Add(match[0]);
            var mx = masks.narrow(0, i, 1);
            var my = om.narrow(0, i, 1);
            var mv = match[0] switch { "id" => mx, "h" => mx.flip(3), "v" => mx.flip(2), _ => mx.flip(2, 3) };
            Assert.IsTrue(mv.IsEqual(my), $"sample {i}: the mask got the image's flip");
        }
        Assert.AreEqual(4, seen.Count, "16 samples at p=0.5/0.5 should show all four flip combinations for this seed");
    }

    [TestMethod]
    public void FlipsMoveInt64ClassMasksWithTheirImages()
    {
        using var scope = torch.NewDisposeScope();
        var (images, masks) = Classes(12, 16, 18);
        using var g = new Generator(3);
        var (oi, om) = new FlipAugmentation().Apply(images, masks, g);
        Assert.AreEqual(ScalarType.Int64, om.dtype);
        Assert.IsTrue(Same(DecodeClasses(oi), om));
        Assert.IsFalse(om.IsEqual(masks), "some sample must have been flipped");
    }

    [TestMethod]
    public void FlipFrequenciesMatchTheirProbabilities()
    {
        using var scope = torch.NewDisposeScope();
        const int n = 1000;
        // 2x2 images 0,1 / 2,3: a horizontal flip swaps columns (value 0 -> position of 1), a vertical one rows.
        var img = torch.tensor(Enumerable.Range(0, n).SelectMany(_ => new[] { 0f, 0.25f, 0.5f, 0.75f }).ToArray(), [n, 1, 2, 2]);
        var msk = torch.zeros([n, 1, 2, 2]);
        using var g = new Generator(11);
        var (oi, _) = new FlipAugmentation(new FlipOptions { HorizontalProbability = 0.3, VerticalProbability = 0.8 }).Apply(img, msk, g);
        var v = F(oi);
        int hCount = 0, vCount = 0;
        for (int i = 0; i < n; i++)
        {
            float topLeft = v[4 * i];
            if (topLeft == 0.25f || topLeft == 0.75f) hCount++;
            if (topLeft == 0.5f || topLeft == 0.75f) vCount++;
        }
        Assert.AreEqual(0.3, hCount / (double)n, 0.05, "horizontal flip rate");
        Assert.AreEqual(0.8, vCount / (double)n, 0.05, "vertical flip rate");

        using var g0 = new Generator(11);
        var (never, _) = new FlipAugmentation(new FlipOptions { HorizontalProbability = 0, VerticalProbability = 0 }).Apply(img, msk, g0);
        Assert.IsTrue(never.IsEqual(img), "p = 0 never flips");
    }

    [TestMethod]
    public void CutMixPastesTheSameBoxIntoImageAndMaskFromTheDrawnSource()
    {
        using var scope = torch.NewDisposeScope();
        const int n = 10, h = 32, w = 28;
        var (images, masks) = Binary(n, h, w);
        var cutmix = new CutMix(new CutMixOptions { Probability = 1 });
        using var g1 = new Generator(5);
        using var g2 = new Generator(5);
        var boxes = cutmix.SampleBoxes(n, h, w, g1);
        var (oi, om) = cutmix.Apply(images, masks, g2);
        Assert.IsTrue(Same(DecodeBinary(oi), om), "image foreground must equal mask foreground after CutMix");
        var a = F(images); var b = F(oi); var ma = F(masks); var mb = F(om);
        int pasted = 0;
        for (int i = 0; i < n; i++)
        {
            var box = boxes[i];
            Assert.IsTrue(box.Applied);
            for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                bool inside = y >= box.Y0 && y < box.Y1 && x >= box.X0 && x < box.X1;
                long src = inside ? box.Source : i;
                for (int c = 0; c < 3; c++)
                    Assert.AreEqual(a[((src * 3 + c) * h + y) * w + x], b[((i * 3 + c) * h + y) * w + x], $"sample {i} ({y},{x}) ch {c}");
                Assert.AreEqual(ma[(src * h + y) * w + x], mb[(i * h + y) * w + x], $"mask sample {i} ({y},{x})");
                if (inside && src != i) pasted++;
            }
        }
        Assert.IsTrue(pasted > 0, "some box content must come from another sample");
        CollectionAssert.AreEquivalent(Enumerable.Range(0, n).Select(i => (long)i).ToArray(), boxes.Select(x => x.Source).ToArray(),
            "sources form a permutation of the batch");
    }

    [TestMethod]
    public void CutMixMovesInt64ClassMasks()
    {
        using var scope = torch.NewDisposeScope();
        var (images, masks) = Classes(8, 20, 20);
        using var g = new Generator(9);
        var (oi, om) = new CutMix(new CutMixOptions { Probability = 1 }).Apply(images, masks, g);
        Assert.AreEqual(ScalarType.Int64, om.dtype);
        Assert.IsTrue(Same(DecodeClasses(oi), om));
        Assert.IsFalse(om.IsEqual(masks));
    }

    [TestMethod]
    public void CutMixBoxStatisticsFollowTheBetaPrior()
    {
        using var g = new Generator(21);
        const int n = 4000, side = 64;
        var boxes = new CutMix(new CutMixOptions { Probability = 1 }).SampleBoxes(n, side, side, g);
        var lam = boxes.Select(b => b.Lambda).ToArray();
        double mean = lam.Average(), var = lam.Select(l => (l - mean) * (l - mean)).Average();
        Assert.AreEqual(0.5, mean, 0.02, "Beta(1,1) mean");
        Assert.AreEqual(1.0 / 12, var, 0.006, "Beta(1,1) variance");
        // Box side fraction s = sqrt(1-λ) with a uniform centre, clipped: E[clipped length | s] = s - s²/4 per axis,
        // so E[area] = ∫0^1 (√u - u/4)² du = 1/2 - 1/5 + 1/48 = 0.3208.
        double area = boxes.Average(b => b.Area / (double)(side * side));
        Assert.AreEqual(0.3208, area, 0.02, "mean clipped box area fraction");

        foreach (var (alpha, expectedVar) in new[] { (0.5, 1.0 / 8), (2.0, 1.0 / 20) })
        {
            using var ga = new Generator(22);
            var l2 = new CutMix(new CutMixOptions { Alpha = alpha, Probability = 1 }).SampleBoxes(n, side, side, ga).Select(b => b.Lambda).ToArray();
            double m2 = l2.Average(), v2 = l2.Select(l => (l - m2) * (l - m2)).Average();
            Assert.AreEqual(0.5, m2, 0.02, $"Beta({alpha},{alpha}) mean");
            Assert.AreEqual(expectedVar, v2, 0.1 * expectedVar, $"Beta({alpha},{alpha}) variance 1/(4(2α+1))");
            Assert.IsTrue(l2.All(l => l >= 0 && l <= 1));
        }

        using var gp = new Generator(23);
        var applied = new CutMix().SampleBoxes(n, side, side, gp).Count(b => b.Applied) / (double)n;
        Assert.AreEqual(0.5, applied, 0.03, "default probability 0.5");
    }

    [TestMethod]
    public void ElasticKeepsBinaryMasksAlignedWithTheWarpedImage()
    {
        using var scope = torch.NewDisposeScope();
        var (images, masks) = Binary(8, 48, 40);
        using var g = new Generator(4);
        var (oi, om) = new ElasticTransform().Apply(images, masks, g);
        Assert.IsTrue((om.eq(S(0.0)) | om.eq(S(1.0))).all().ToBoolean(), "masks stay binary (nearest sampling)");
        double agree = DecodeBinary(oi).eq(om).to(ScalarType.Float32).mean().ToSingle();
        Assert.IsTrue(agree >= 0.99, $"image/mask agreement {agree:P2} < 99%");
        Assert.IsFalse(om.IsEqual(masks), "the warp must move some mask pixels");
        Assert.IsTrue(oi.min().ToSingle() >= 0 && oi.max().ToSingle() <= 1, "bilinear with border padding stays in range");
    }

    [TestMethod]
    public void ElasticWarpsClassMasksToExistingClassesOnly()
    {
        using var scope = torch.NewDisposeScope();
        var (images, masks) = Classes(6, 40, 40);
        using var g = new Generator(8);
        var (oi, om) = new ElasticTransform(new ElasticTransformOptions { Alpha = 60, Sigma = 4 }).Apply(images, masks, g);
        Assert.AreEqual(ScalarType.Int64, om.dtype);
        Assert.IsTrue(((om >= S(0L)) & (om <= S(3L))).all().ToBoolean());
        Assert.IsFalse(om.IsEqual(masks));
        // Nearest and bilinear sampling agree except near class boundaries.
        double agree = DecodeClasses(oi).eq(om).to(ScalarType.Float32).mean().ToSingle();
        Assert.IsTrue(agree >= 0.97, $"class agreement {agree:P2}");
    }

    [TestMethod]
    public void ElasticDisplacementHasTheSmoothedUniformStandardDeviation()
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(13);
        const double sigma = 4, alpha = 34;
        var d = new ElasticTransform(new ElasticTransformOptions { Alpha = alpha, Sigma = sigma }).SampleDisplacement(16, 64, 64, g);
        CollectionAssert.AreEqual(new long[] { 16, 2, 64, 64 }, d.shape);
        // Interior (beyond the 3σ kernel radius): Var = Var(U(-1,1)) * (Σ k_i²)² with Σ k_i² ≈ 1/(2σ√π) for a Gaussian.
        double sumK2 = 1 / (2 * sigma * Math.Sqrt(Math.PI));
        double expected = alpha * Math.Sqrt(1.0 / 3) * sumK2;
        double std = d.narrow(2, 12, 40).narrow(3, 12, 40).std().ToSingle();
        Assert.AreEqual(expected, std, 0.15 * expected, $"displacement std {std:F3} vs {expected:F3} px");
        double mean = d.mean().ToSingle();
        Assert.AreEqual(0, mean, 0.2);
    }

    [TestMethod]
    public void ElasticFieldIsTheUniformNoiseBlurredWithAZeroPaddedGaussian()
    {
        using var scope = torch.NewDisposeScope();
        const double sigma = 1.5, alpha = 3;
        using var g1 = new Generator(17);
        var d = new ElasticTransform(new ElasticTransformOptions { Alpha = alpha, Sigma = sigma }).SampleDisplacement(3, 11, 13, g1);
        using var g2 = new Generator(17);
        var noise = torch.rand([3, 2, 11, 13], ScalarType.Float32, torch.CPU, generator: g2) * S(2.0) - S(1.0);
        // Reference: a direct 2-D convolution with the 11x11 (radius ⌈3σ⌉ = 5) normalised Gaussian, zero padding.
        const int r = 5;
        var k = new float[2 * r + 1, 2 * r + 1];
        double sum = 0;
        for (int y = -r; y <= r; y++) for (int x = -r; x <= r; x++) sum += Math.Exp(-0.5 * (x * x + y * y) / (sigma * sigma));
        var flat = new float[(2 * r + 1) * (2 * r + 1)];
        for (int y = -r; y <= r; y++) for (int x = -r; x <= r; x++)
            flat[(y + r) * (2 * r + 1) + x + r] = (float)(Math.Exp(-0.5 * (x * x + y * y) / (sigma * sigma)) / sum);
        var kernel = torch.tensor(flat, [1, 1, 2 * r + 1, 2 * r + 1]).expand(2, 1, 2 * r + 1, 2 * r + 1).contiguous();
        var expected = torch.nn.functional.conv2d(noise, kernel, padding: [r, r], groups: 2) * S(alpha);
        Assert.IsTrue(d.allclose(expected, 1e-4, 1e-5), "separable banded blur = zero-padded 2-D Gaussian convolution");
    }

    [TestMethod]
    public void ElasticWithZeroProbabilityOrAlphaIsTheIdentity()
    {
        using var scope = torch.NewDisposeScope();
        var (images, masks) = Binary(4, 16, 16);
        using var g = new Generator(1);
        var (oi, om) = new ElasticTransform(new ElasticTransformOptions { Probability = 0 }).Apply(images, masks, g);
        Assert.IsTrue(oi.IsEqual(images) && om.IsEqual(masks));
        var (zi, zm) = new ElasticTransform(new ElasticTransformOptions { Alpha = 0 }).Apply(images, masks, g);
        Assert.IsTrue(zi.allclose(images, 1e-5, 1e-5), "a zero field resamples at the pixel centres");
        Assert.IsTrue(zm.IsEqual(masks));
    }
}
