using MLNetMedSeg.Cli.Commands;
using System.Text.Json;
using Microsoft.ML;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Segmentation.Cdal;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// <c>medseg train --backbone cdal</c> → info → predict → evaluate at 16×16: the model file is an ML.NET chain ending in a
/// <see cref="CdalTransformer"/>, and the verbs that read a Probability column use it as they use a U-Net's.
/// </summary>
[TestClass]
public sealed class CdalCliTests : CliTestBase
{
    [TestMethod]
    public void TrainCdal_ThenInfoPredictEvaluate()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 10, seed: 5);
        string model = Path.Combine(_dir, "cdal.zip");

        var (code, stdout, stderr) = Medseg("train", "--data", data, "--backbone", "cdal", "--size", "16", "--epochs", "2", "--batch", "3",
            "--timesteps", "2", "--samples", "2", "--attention-scale", "8", "--latent-dim", "20", "--seed", "3", "--out", model);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "trained 2 epochs");
        StringAssert.Contains(stderr, "training cdal (T = 2, 2 samples, attention 8², latent 20) at 16x16 on 9 pairs, validating on 1");
        StringAssert.Contains(stderr, "epoch 2: generator loss");
        StringAssert.Contains(stderr, "validation mDice");

        var ml = new MLContext();
        var loaded = ml.Model.Load(model, out var inputSchema);
        Assert.AreEqual("ImagePath", string.Join(",", inputSchema.Select(c => c.Name)));
        var chain = ((IEnumerable<ITransformer>)loaded).ToList();
        var cdal = (CdalTransformer)chain[^1];
        Assert.AreEqual(2, cdal.Options.Cdal.Samples);
        Assert.AreEqual(8, cdal.Options.Cdal.AttentionScale);
        Assert.AreEqual(20, cdal.Options.Cdal.LatentDim);
        Assert.AreEqual(16, cdal.Options.Cdal.ImageSize);

        (code, stdout, stderr) = Medseg("info", model);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "3. CdalTransformer (MLNetMedSeg)");
        StringAssert.Contains(stdout, "adds   Probability: Vector<Single, 1, 16, 16>, Predicted: Vector<Single, 1, 16, 16>");
        StringAssert.Contains(stdout, "entry  MEDSEG.CDAL");
        long parameters = cdal.Network.parameters().Sum(p => p.numel());
        StringAssert.Contains(stdout, $"network CdalGeneratorNetwork: {parameters:N0} trainable parameters");

        string pred = Path.Combine(_dir, "pred");
        (code, _, stderr) = Medseg("predict", "--model", model, "--images", Path.Combine(data, "images"), "--out", pred);
        Assert.AreEqual(0, code, stderr);
        Assert.AreEqual(10, Directory.GetFiles(pred).Length);
        var m = ImageIO.Read(Path.Combine(pred, "case00.png"));
        Assert.AreEqual((24, 20, 1), (m.Width, m.Height, m.Channels), "masks come back at the image's own size");
        Assert.IsTrue(m.Pixels8!.All(v => v is 0 or 255), "binary 0/255 masks");

        string json = Path.Combine(_dir, "eval.json");
        (code, _, stderr) = Medseg("evaluate", "--model", model, "--data", data, "--out", json);
        Assert.AreEqual(0, code, stderr);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.AreEqual(10, doc.RootElement.GetProperty("imageCount").GetInt32());
        // The same scores as an application computes from the loaded model.
        var pairs = ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(data, "images"), Path.Combine(data, "masks"));
        var withMasks = ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", 16, 16).Fit(pairs).Transform(pairs);
        var expected = ml.MedSeg().Evaluate(loaded.Transform(withMasks));
        Assert.AreEqual(expected.MeanDice, doc.RootElement.GetProperty("mDice").GetDouble(), 1e-9);
        (loaded as IDisposable)?.Dispose();

        // The attacks take a cDAL model as they take a U-Net (its K-sample prediction, differentiated).
        string attacked = Path.Combine(_dir, "fgsm");
        (code, stdout, stderr) = Medseg("attack", "--model", model, "--data", data, "--method", "fgsm", "--eps", "8/255", "--out", attacked);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "10 pairs written");
        Assert.AreEqual(10, Directory.GetFiles(Path.Combine(attacked, "images")).Length);
    }

    [TestMethod]
    public void TrainCdal_BadOptions_NameTheOption()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 4, seed: 1);
        var (code, _, stderr) = Medseg("train", "--data", data, "--backbone", "cdal", "--size", "16", "--attention-scale", "32", "--out", Path.Combine(_dir, "m.zip"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(stderr, "--attention-scale");
        (code, _, stderr) = Medseg("train", "--data", data, "--backbone", "cdal", "--size", "16", "--encoder", "resnet18", "--out", Path.Combine(_dir, "m.zip"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(stderr, "--encoder");
        (code, _, stderr) = Medseg("train", "--data", data, "--backbone", "unet", "--size", "16", "--no-latent", "--out", Path.Combine(_dir, "m.zip"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(stderr, "--no-latent");
        Assert.IsFalse(File.Exists(Path.Combine(_dir, "m.zip")));
    }

    [TestMethod]
    public void AblationSwitches_ReachTheSavedModel()
    {
        // Table 1's "w/o latent" and "w/o attention" rows from the command line: the switches land in the options the
        // saved model carries (what they change in training is covered by the stage's tests).
        string data = Path.Combine(_dir, "data");
        MakeData(data, 4, seed: 2);
        string model = Path.Combine(_dir, "ablation.zip");
        var (code, _, stderr) = Medseg("train", "--data", data, "--backbone", "cdal", "--size", "16", "--epochs", "1", "--batch", "2",
            "--samples", "1", "--attention-scale", "8", "--latent-dim", "8", "--val-fraction", "0", "--no-latent", "--no-attention", "--out", model);
        Assert.AreEqual(0, code, stderr);
        var loaded = new MLContext().Model.Load(model, out _);
        var cdal = ((IEnumerable<ITransformer>)loaded).OfType<CdalTransformer>().Single();
        Assert.IsFalse(cdal.Options.Cdal.UseLatent);
        Assert.IsFalse(cdal.Options.Cdal.UseAttention);
        Assert.IsTrue(TrainCommand.CdalModel(2, 5, 8, 100, null, 16) is { UseLatent: true, UseAttention: true }, "the paper's full model by default");
    }
}
