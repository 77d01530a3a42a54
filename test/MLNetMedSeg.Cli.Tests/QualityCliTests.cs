using System.Text.Json.Nodes;
using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Cli.Tests;

/// <summary><c>medseg quality</c>: valid JSON with the metrics and counts; a set against itself; bad folders named.</summary>
[TestClass]
public sealed class QualityCliTests : CliTestBase
{
    [TestMethod]
    public void WritesValidJson()
    {
        string real = Path.Combine(_dir, "real"), generated = Path.Combine(_dir, "gen");
        MakeData(real, 6, seed: 1);                          // a data folder: real/images, real/masks
        MakeData(generated, 5, seed: 2, new DiscSpec(Noise: 80));  // read through gen/images, as 'medseg generate' writes
        string json = Path.Combine(_dir, "out", "quality.json");
        var (code, stdout, stderr) = Medseg("quality", "--real", real, "--generated", generated, "--out", json,
            "--size", "32", "--feature-size", "32", "--pairs", "8", "--seed", "3");
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "Fréchet ResNet-18 distance");
        var q = JsonNode.Parse(File.ReadAllText(json))!;
        double frechet = (double)q["frechet_resnet18"]!, ms = (double)q["ms_ssim"]!, msReal = (double)q["ms_ssim_real"]!;
        Assert.IsTrue(double.IsFinite(frechet) && frechet > 0, $"frechet_resnet18 {frechet}");
        Assert.IsTrue(ms > 0 && ms < 1 && msReal > 0 && msReal < 1, $"ms_ssim {ms}, ms_ssim_real {msReal}");
        Assert.AreEqual((6, 5), ((int)q["real_count"]!, (int)q["generated_count"]!));
        Assert.AreEqual(8, (int)q["ms_ssim_pairs"]!, "5·4/2 = 10 pairs exist; 8 are sampled");
        Assert.AreEqual(8, (int)q["ms_ssim_pairs_real"]!);
        Assert.AreEqual((32, 32), ((int)q["image_height"]!, (int)q["image_width"]!));
        Assert.AreEqual("png", (string)q["real_formats"]![0]!);
        Assert.IsFalse(stderr.Contains("warning"), stderr);

        // The real folder against itself: distance ~0, equal diversity; the same seed → the same file.
        string self = Path.Combine(_dir, "self.json");
        (code, _, stderr) = Medseg("quality", "--real", Path.Combine(real, "images"), "--generated", real, "--out", self,
            "--size", "32", "--feature-size", "32", "--pairs", "100");
        Assert.AreEqual(0, code, stderr);
        var s = JsonNode.Parse(File.ReadAllText(self))!;
        Assert.IsTrue((double)s["frechet_resnet18"]! < 1e-6, $"{s["frechet_resnet18"]}");
        Assert.AreEqual((double)s["ms_ssim_real"]!, (double)s["ms_ssim"]!, 1e-12);
        Assert.AreEqual(15, (int)s["ms_ssim_pairs"]!, "all 6·5/2 pairs");
    }

    [TestMethod]
    public void TiffAndDifferentFormats()
    {
        string real = Path.Combine(_dir, "real"), generated = Path.Combine(_dir, "gen"), jpeg = Path.Combine(_dir, "jpeg");
        MakeData(real, 4, seed: 1);
        Directory.CreateDirectory(generated);
        Directory.CreateDirectory(jpeg);
        foreach (var f in Directory.GetFiles(Path.Combine(real, "images")))
        {
            using var image = ImageIO.ReadTensor(f);
            ImageIO.WriteTiff(Path.Combine(generated, Path.GetFileNameWithoutExtension(f) + ".tif"), image);
            ImageIO.WriteJpeg(Path.Combine(jpeg, Path.GetFileNameWithoutExtension(f) + ".jpg"), image, quality: 60);
        }
        // The same pixels as lossless TIFF: both sets then go through the library's loader; distance ~0, a format warning.
        string json = Path.Combine(_dir, "tiff.json");
        var (code, _, stderr) = Medseg("quality", "--real", real, "--generated", generated, "--out", json, "--size", "32", "--feature-size", "32");
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stderr, "warning: the real images are png files, the generated ones tiff");
        var q = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.IsTrue((double)q["frechet_resnet18"]! < 1e-6, $"lossless copies: {q["frechet_resnet18"]}");
        Assert.AreEqual("tiff", (string)q["generated_formats"]![0]!);
        // The same pixels through JPEG at quality 60: the compression alone moves the distance off 0.
        (code, _, stderr) = Medseg("quality", "--real", real, "--generated", jpeg, "--out", json, "--size", "32", "--feature-size", "32");
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stderr, "the generated ones jpeg");
        Assert.IsTrue((double)JsonNode.Parse(File.ReadAllText(json))!["frechet_resnet18"]! > 1e-3);
    }

    [TestMethod]
    public void BadFoldersAreNamed()
    {
        string real = Path.Combine(_dir, "real"), empty = Path.Combine(_dir, "empty");
        MakeData(real, 3, seed: 1);
        Directory.CreateDirectory(empty);
        File.WriteAllText(Path.Combine(empty, "notes.txt"), "no images here");
        var (code, _, stderr) = Medseg("quality", "--real", real, "--generated", empty, "--out", Path.Combine(_dir, "q.json"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, $"the generated folder '{empty}' holds no image files");
        (code, _, stderr) = Medseg("quality", "--real", Path.Combine(_dir, "nope"), "--generated", real, "--out", Path.Combine(_dir, "q.json"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "the real folder");
        StringAssert.Contains(stderr, "nope");
        (code, _, stderr) = Medseg("quality", "--real", real, "--out", Path.Combine(_dir, "q.json"));
        Assert.AreEqual(2, code, "--generated is required");
        Assert.IsFalse(File.Exists(Path.Combine(_dir, "q.json")));
    }
}
