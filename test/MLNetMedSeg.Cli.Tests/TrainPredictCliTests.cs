using System.Text.Json;
using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>The train → info → predict → evaluate round trip on a tiny synthetic data folder.</summary>
[TestClass]
public sealed class TrainPredictCliTests : CliTestBase
{
    [TestMethod]
    public void TrainInfoPredictEvaluate()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 10, seed: 4);
        string model = Path.Combine(_dir, "model.zip");

        var (code, stdout, stderr) = Medseg("train", "--data", data, "--backbone", "unet", "--size", "16", "--epochs", "2",
            "--batch", "4", "--augment", "basic", "--seed", "3", "--out", model);
        Assert.AreEqual(0, code, stderr);
        Assert.IsTrue(File.Exists(model));
        StringAssert.Contains(stdout, "trained 2 epochs");
        StringAssert.Contains(stderr, "epoch 2:");

        (code, stdout, stderr) = Medseg("info", "--model", model);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "MEDSEG.RESIZE");
        StringAssert.Contains(stdout, "UNet");

        string pred = Path.Combine(_dir, "pred");
        (code, stdout, stderr) = Medseg("predict", "--model", model, "--images", Path.Combine(data, "images"), "--out", pred);
        Assert.AreEqual(0, code, stderr);
        var files = Directory.GetFiles(pred).Select(Path.GetFileName).Order().ToArray();
        Assert.AreEqual(10, files.Length);
        Assert.AreEqual("case00.png", files[0]);
        var m = ImageIO.Read(Path.Combine(pred, "case00.png"));
        Assert.AreEqual((24, 20, 1), (m.Width, m.Height, m.Channels), "masks come back at the image's own size");
        Assert.IsTrue(m.Pixels8!.All(v => v is 0 or 255), "binary 0/255 masks");

        string json = Path.Combine(_dir, "eval.json");
        (code, stdout, stderr) = Medseg("evaluate", "--model", model, "--data", data, "--out", json);
        Assert.AreEqual(0, code, stderr);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.AreEqual(10, doc.RootElement.GetProperty("imageCount").GetInt32());
        double miou = doc.RootElement.GetProperty("mIoU").GetDouble();
        Assert.IsTrue(miou is >= 0 and <= 1);

        // the masks written by predict, scored by evaluate --pred/--gt, give the same per-image convention
        string json2 = Path.Combine(_dir, "eval2.json");
        (code, _, stderr) = Medseg("evaluate", "--pred", pred, "--gt", Path.Combine(data, "masks"), "--out", json2);
        Assert.AreEqual(0, code, stderr);
        using var doc2 = JsonDocument.Parse(File.ReadAllText(json2));
        Assert.AreEqual(miou, doc2.RootElement.GetProperty("mIoU").GetDouble(), 1e-9,
            "evaluating the model and evaluating its written masks agree");
    }

    [TestMethod]
    public void TrainRejectsBadArguments()
    {
        Assert.AreEqual(2, Medseg("train", "--data", _dir, "--backbone", "resnet", "--out", "m.zip").code);
        Assert.AreEqual(2, Medseg("train", "--data", _dir, "--augment", "mixup", "--out", "m.zip").code);
        var (code, _, stderr) = Medseg("train", "--data", Path.Combine(_dir, "nope"), "--out", Path.Combine(_dir, "m.zip"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "nope");
        (code, _, stderr) = Medseg("evaluate", "--model", "m.zip", "--pred", "p", "--out", "x.json");
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "either --model and --data, or --pred and --gt");
    }
}
