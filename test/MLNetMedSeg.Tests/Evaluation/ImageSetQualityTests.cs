using Microsoft.ML;
using Microsoft.ML.Data;
using SchemaException = MLNetMedSeg.Data.SchemaException;
using MLNetMedSeg.Evaluation;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Evaluation;

/// <summary>
/// <c>ml.MedSeg().EvaluateImageQuality</c> (paper 004 §4.4, Tables 1–2): the Fréchet ResNet-18 distance of a set with
/// itself is ~0 and grows with added noise; MS-SSIM diversity of identical images is 1; sets of different sizes meet at
/// <see cref="ImageQualityOptions.ImageSize"/>; bad input is named.
/// </summary>
[TestClass]
public sealed class ImageSetQualityTests
{
    public sealed class Row32
    {
        [VectorType(3, 32, 32)] public float[] Image { get; set; } = [];
    }

    public sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    public sealed class Row24
    {
        [VectorType(3, 24, 24)] public float[] Generated { get; set; } = [];
    }

    /// <summary>n smooth random images (colour gradients and a disc), plus <paramref name="noise"/> × seeded Gaussian noise, clamped.</summary>
    private static float[][] Images(int n, int size, ulong seed, double noise = 0, ulong noiseSeed = 99)
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(seed);
        var yy = torch.linspace(0, 1, size).view(1, 1, size, 1);
        var xx = torch.linspace(0, 1, size).view(1, 1, 1, size);
        var c = torch.rand([n, 3, 3], generator: g);
        var centre = torch.rand([n, 2], generator: g) * S(0.6) + S(0.2);
        var disc = ((yy - centre[.., 0].view(n, 1, 1, 1)).square() + (xx - centre[.., 1].view(n, 1, 1, 1)).square()).lt(S(0.04)).to(ScalarType.Float32);
        var images = (c[.., .., 0].view(n, 3, 1, 1) * yy + c[.., .., 1].view(n, 3, 1, 1) * xx) * S(0.6) + S(0.2) * c[.., .., 2].view(n, 3, 1, 1) + S(0.3) * disc;
        if (noise > 0)
        {
            using var gn = new Generator(noiseSeed);
            images = images + S(noise) * torch.randn(images.shape, generator: gn);
        }
        images = images.clamp(S(0), S(1)).contiguous();
        return Enumerable.Range(0, n).Select(i => images[i].data<float>().ToArray()).ToArray();
    }

    private static IDataView Set(MLContext ml, float[][] images) => ml.Data.LoadFromEnumerable(images.Select(x => new Row32 { Image = x }).ToList());

    private static ImageQualityOptions Fast(int? size = null) => new() { FeatureInputSize = 64, MsSsimPairs = 200, ImageSize = size };

    [TestMethod]
    public void FrechetOfASetWithItselfIsZeroAndGrowsWithNoise()
    {
        var ml = new MLContext(seed: 1);
        var clean = Images(20, 32, 1);
        var real = Set(ml, clean);
        // Several generated sets against one real set (Table 1): one evaluator, the real set measured once.
        using var evaluator = ml.MedSeg().CreateImageQualityEvaluator(real, "Image", Fast());
        var same = evaluator.Evaluate(Set(ml, clean));
        Assert.IsTrue(same.FrechetResNet18 >= 0 && same.FrechetResNet18 < 1e-6, $"a set with itself: {same.FrechetResNet18}");
        Assert.AreEqual((20, 20), (same.RealCount, same.GeneratedCount));
        Assert.AreEqual(same.RealMsSsim, same.MsSsim, 1e-12, "the same set has the same diversity");
        double previous = same.FrechetResNet18;
        foreach (var sigma in new[] { 0.05, 0.15, 0.4 })
        {
            var q = evaluator.Evaluate(Set(ml, Images(20, 32, 1, sigma)));
            Assert.IsTrue(q.FrechetResNet18 > previous, $"noise σ = {sigma}: d² {q.FrechetResNet18} must exceed {previous}");
            Assert.AreEqual(same.RealMsSsim, q.RealMsSsim);
            previous = q.FrechetResNet18;
        }
        // Another draw from the same distribution is closer than the noisiest set.
        var other = evaluator.Evaluate(Set(ml, Images(20, 32, 2)));
        Assert.IsTrue(other.FrechetResNet18 < previous, $"same distribution {other.FrechetResNet18} vs σ = 0.4 {previous}");
    }

    [TestMethod]
    public void MsSsimOfIdenticalImagesIsOne()
    {
        var ml = new MLContext(seed: 2);
        var varied = Images(8, 32, 3);
        var identical = Enumerable.Repeat(varied[0], 6).ToArray();
        var q = ml.MedSeg().EvaluateImageQuality(Set(ml, varied), Set(ml, identical), "Image", options: Fast());
        Assert.AreEqual(1.0, q.MsSsim, 1e-9, "identical images");
        Assert.AreEqual(15, q.MsSsimPairs, "all 6·5/2 pairs when they are fewer than MsSsimPairs");
        Assert.AreEqual(28, q.RealMsSsimPairs);
        Assert.IsTrue(q.RealMsSsim < 0.99, $"varied images: {q.RealMsSsim}");
        // Sampled pairs (fewer asked for than exist): same seed → same value.
        var sampled = new ImageQualityOptions { FeatureInputSize = 32, MsSsimPairs = 10 };
        var s1 = new MLContext(seed: 5).MedSeg().EvaluateImageQuality(Set(ml, varied), Set(ml, varied), "Image", options: sampled);
        var s2 = new MLContext(seed: 5).MedSeg().EvaluateImageQuality(Set(ml, varied), Set(ml, varied), "Image", options: sampled);
        Assert.AreEqual(10, s1.MsSsimPairs);
        Assert.AreEqual(s1.MsSsim, s2.MsSsim);
        Assert.IsTrue(s1.MsSsim > 0 && s1.MsSsim < 1, $"{s1.MsSsim}");
    }

    [TestMethod]
    public void SetsOfDifferentSizesMeetAtImageSize()
    {
        var ml = new MLContext(seed: 3);
        var real = Set(ml, Images(6, 32, 4));
        var generated = ml.Data.LoadFromEnumerable(Images(5, 24, 5).Select(x => new Row24 { Generated = x }).ToList());
        var q = ml.MedSeg().EvaluateImageQuality(real, generated, "Image", "Generated", Fast(size: 24));
        Assert.AreEqual((24L, 24L), (q.ImageHeight, q.ImageWidth));
        Assert.IsTrue(double.IsFinite(q.FrechetResNet18) && q.FrechetResNet18 > 0);
        var json = System.Text.Json.Nodes.JsonNode.Parse(q.ToJson())!;
        foreach (var key in new[] { "frechet_resnet18", "ms_ssim", "ms_ssim_real", "real_count", "generated_count" })
            Assert.IsNotNull(json[key], key);
        Assert.AreEqual(5, (int)json["generated_count"]!);
        StringAssert.Contains((string)json["features"]!, "Not FID");
    }

    [TestMethod]
    public void BadInputIsNamed()
    {
        var ml = new MLContext(seed: 4);
        var real = Set(ml, Images(4, 32, 6));
        var missing = Assert.ThrowsException<SchemaException>(() => ml.MedSeg().EvaluateImageQuality(real, real, "Picture", options: Fast()));
        StringAssert.Contains(missing.Message, "'Picture'");
        var empty = Set(ml, []);
        StringAssert.Contains(Assert.ThrowsException<InvalidDataException>(() => ml.MedSeg().EvaluateImageQuality(real, empty, "Image", options: Fast())).Message, "generated set has no rows");
        StringAssert.Contains(Assert.ThrowsException<InvalidDataException>(() => ml.MedSeg().EvaluateImageQuality(Set(ml, Images(1, 32, 7)), real, "Image", options: Fast())).Message, "real set has 1 image");
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => ml.MedSeg().EvaluateImageQuality(real, real, "Image", options: new ImageQualityOptions { FeatureInputSize = 16 }));
        // Each set is measured at its own size when no ImageSize is given (MS-SSIM is within a set; the features bring
        // both to the network's input)...
        var other = ml.Data.LoadFromEnumerable(Images(3, 24, 8).Select(x => new Row24 { Generated = x }).ToList());
        var q = ml.MedSeg().EvaluateImageQuality(real, other, "Image", "Generated", Fast());
        Assert.AreEqual((24L, 24L), (q.ImageHeight, q.ImageWidth));
        // ... but within a set the images must share one: files of two sizes (MLImage from ML.NET's LoadImages) are named.
        string dir = Path.Combine(Path.GetTempPath(), $"quality-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        try
        {
            var files = new[] { (16, "a.png"), (20, "b.png") }.Select(f =>
            {
                var (side, name) = f;
                string path = Path.Combine(dir, name);
                MLNetMedSeg.Imaging.ImageIO.WritePng(path, Enumerable.Range(0, side * side * 3).Select(i => (byte)(i % 251)).ToArray(), side, side, 3);
                return new PathRow { ImagePath = path };
            }).ToList();
            var paths = ml.Data.LoadFromEnumerable(files);
            var loaded = ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(paths).Transform(paths);
            var mixed = Assert.ThrowsException<InvalidDataException>(() => ml.MedSeg().EvaluateImageQuality(loaded, real, "Image", options: Fast()));
            StringAssert.Contains(mixed.Message, "the real set's column 'Image', row 1: the image is 20×20 but the first one is 16×16");
            StringAssert.Contains(mixed.Message, "ImageSize");
            var fixedSize = ml.MedSeg().EvaluateImageQuality(loaded, real, "Image", options: Fast(size: 32));
            Assert.AreEqual(2, fixedSize.RealCount);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
