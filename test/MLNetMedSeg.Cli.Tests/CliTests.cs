using System.Text.Json;
using Microsoft.ML;
using MLNetMedSeg.Data;
using MLNetMedSeg.Imaging;
using TorchSharp;
using MedSegContext = MLNetMedSeg.Pipeline.MedSegContext;

namespace MLNetMedSeg.Cli.Tests;

[TestClass]
public sealed class CliTests : CliTestBase
{
    /// <summary>Writes a 0/255 mask PNG of size 4×4 whose foreground is the given (row, col) pixels.</summary>
    private static void Mask(string path, params (int r, int c)[] on)
    {
        var px = new byte[16];
        foreach (var (r, c) in on) px[r * 4 + c] = 255;
        ImageIO.WritePng(path, px, 4, 4, 1);
    }

    [TestMethod]
    public void EvaluatePredAgainstGtWritesPapersMetrics()
    {
        string pred = Path.Combine(_dir, "pred"), gt = Path.Combine(_dir, "gt");
        Directory.CreateDirectory(pred);
        Directory.CreateDirectory(gt);
        // a: gt 4 pixels, pred 2 of them + 2 others → tp 2, fp 2, fn 2: IoU 2/6, Dice 4/8
        Mask(Path.Combine(gt, "a.png"), (0, 0), (0, 1), (1, 0), (1, 1));
        Mask(Path.Combine(pred, "a.png"), (0, 0), (0, 1), (3, 3), (3, 2));
        // b: perfect
        Mask(Path.Combine(gt, "b.png"), (2, 2));
        Mask(Path.Combine(pred, "b.png"), (2, 2));
        string json = Path.Combine(_dir, "out", "metrics.json");
        var (code, stdout, stderr) = Medseg("evaluate", "--pred", pred, "--gt", gt, "--out", json);
        Assert.AreEqual(0, code, stderr);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        Assert.AreEqual((2.0 / 6 + 1) / 2, root.GetProperty("mIoU").GetDouble(), 1e-12);
        Assert.AreEqual((4.0 / 8 + 1) / 2, root.GetProperty("mDice").GetDouble(), 1e-12);
        Assert.AreEqual(3.0 / 7, root.GetProperty("aggregate").GetProperty("micro").GetProperty("iou").GetDouble(), 1e-12);
        Assert.AreEqual("One", root.GetProperty("emptyMaskPolicy").GetString());
        Assert.AreEqual(2, root.GetProperty("images").GetArrayLength());
        StringAssert.Contains(stdout, "| IoU |");
    }

    [TestMethod]
    public void EvaluateReportsUnmatchedFilesAndExitsNonZero()
    {
        string pred = Path.Combine(_dir, "pred"), gt = Path.Combine(_dir, "gt");
        Directory.CreateDirectory(pred);
        Directory.CreateDirectory(gt);
        Mask(Path.Combine(gt, "a.png"), (0, 0));
        Mask(Path.Combine(pred, "zz.png"), (0, 0));
        var (code, _, stderr) = Medseg("evaluate", "--pred", pred, "--gt", gt, "--out", Path.Combine(_dir, "m.json"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "error:");
        StringAssert.Contains(stderr, "zz.png");
        Assert.IsFalse(File.Exists(Path.Combine(_dir, "m.json")));
    }

    [TestMethod]
    public void UsageErrorsExitWithTwo()
    {
        var (code, _, stderr) = Medseg("evaluate", "--pred", "x");
        Assert.AreEqual(2, code);
        StringAssert.Contains(stderr, "--out");
        (code, _, stderr) = Medseg("evaluate", "--pred", "x", "--out", "m.json");
        Assert.AreEqual(1, code, "--pred without --gt is an error the verb reports");
        StringAssert.Contains(stderr, "--pred and --gt");
        Assert.AreEqual(2, Medseg("evaluate", "--pred", "a", "--gt", "b", "--out", "c", "--empty-policy", "maybe").code);
        Assert.AreEqual(2, Medseg("no-such-verb").code);
    }

    [TestMethod]
    public void InfoDescribesStagesAndRejectsCorruptFiles()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 3, seed: 1);
        var ml = new MLContext(seed: 1);
        var pairs = ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(data, "images"), Path.Combine(data, "masks"));
        var model = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", imageWidth: 12, imageHeight: 8))
            .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", imageWidth: 12, imageHeight: 8))
            .Fit(pairs);
        string file = Path.Combine(_dir, "model.zip");
        ml.Model.Save(model, pairs.Schema, file);

        var (code, stdout, stderr) = Medseg("info", file);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "input schema Id: String, ImagePath: String, MaskPath: String");
        StringAssert.Contains(stdout, "1. ImageLoadingTransformer (Microsoft.ML.ImageAnalytics)");
        StringAssert.Contains(stdout, "2. ImageResizingTransformer (Microsoft.ML.ImageAnalytics)");
        StringAssert.Contains(stdout, "adds   Image: Image<8, 12>");
        StringAssert.Contains(stdout, "3. LoadMaskTransformer (MLNetMedSeg)");
        StringAssert.Contains(stdout, "adds   Mask: Vector<Single, 1, 8, 12>");
        StringAssert.Contains(stdout, "entry  MEDSEG.LOADMASK v1");
        StringAssert.Contains(stdout, "\"height\":8,\"width\":12");
        Assert.AreEqual(stdout, Medseg("info", "--model", file).stdout, "the argument and --model describe the same file");

        var bytes = File.ReadAllBytes(file);
        string truncated = Path.Combine(_dir, "truncated.zip");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        (code, _, stderr) = Medseg("info", truncated);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "truncated.zip");

        // A model file in the library's own earlier format is not an ML.NET model: a clear error naming the file and saying so.
        // (that format's layout: a zip whose manifest.json carries the magic "MLNetMedSeg.Model", and the stage entries)
        string oldFile = Path.Combine(_dir, "old-format.zip");
        using (var zip = System.IO.Compression.ZipFile.Open(oldFile, System.IO.Compression.ZipArchiveMode.Create))
        {
            using (var w = new StreamWriter(zip.CreateEntry("manifest.json").Open()))
                w.Write("{\n  \"magic\": \"MLNetMedSeg.Model\",\n  \"formatVersion\": 1,\n  \"root\": \"Model\"\n}");
            using (var w = new StreamWriter(zip.CreateEntry("Model/header.json").Open()))
                w.Write("{\"signature\": \"MEDSEG.RESIZE\", \"version\": 1}");
        }
        (code, _, stderr) = Medseg("info", oldFile);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "old-format.zip");
        StringAssert.Contains(stderr, "is a model file of an earlier MLNetMedSeg");
        StringAssert.Contains(stderr, "train or generate it again");

        (code, _, stderr) = Medseg("info", Path.Combine(_dir, "missing.zip"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "does not exist");
        (code, _, stderr) = Medseg("info");
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "give the model file");
    }
}
