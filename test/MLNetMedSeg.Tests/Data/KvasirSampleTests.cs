using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Data;

/// <summary>The shipped sample (data/kvasir-seg-sample), found by walking up from the test assembly to the repository root.</summary>
[TestClass]
public sealed class KvasirSampleTests
{
    private static string SampleDir() => Path.Combine(TestPaths.RepositoryRoot(), "data", "kvasir-seg-sample");

    [TestMethod]
    public void SampleHas120MatchedBinaryPairsOf128()
    {
        string dir = SampleDir();
        var view = DataViews.LoadImagesAndMasks(new MedSegContext(seed: 1), Path.Combine(dir, "images"), Path.Combine(dir, "masks"),
            new ImageMaskLoaderOptions { StrictBinaryMasks = true });
        Assert.AreEqual(120L, view.GetRowCount());
        Assert.IsTrue(view.Pairs.All(p => p.ImagePath.EndsWith(".jpg") && p.MaskPath.EndsWith(".png")));
        double foreground = 0;
        using (var cur = view.GetRowCursor("Image", "Mask"))
            while (cur.MoveNext())
            {
                using var scope = torch.NewDisposeScope();
                var img = cur.GetTensor("Image");
                var mask = cur.GetTensor("Mask");
                CollectionAssert.AreEqual(new long[] { 3, 128, 128 }, img.shape);
                CollectionAssert.AreEqual(new long[] { 1, 128, 128 }, mask.shape);
                Assert.IsTrue(img.min().ToSingle() >= 0 && img.max().ToSingle() <= 1);
                foreground += mask.mean().ToSingle();
            }
        Assert.AreEqual(0L, view.NonBinaryMaskPixels, "the shipped masks are exactly 0/255");
        Assert.AreEqual(120, view.MasksRead);
        double meanForeground = foreground / 120;
        Assert.IsTrue(meanForeground is > 0.05 and < 0.35, $"mean polyp fraction {meanForeground} (Kvasir-SEG: about 0.15)");
        long bytes = Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).Sum(f => new FileInfo(f).Length);
        Assert.IsTrue(bytes < 3_000_000, $"the sample is {bytes} bytes");
    }
}
