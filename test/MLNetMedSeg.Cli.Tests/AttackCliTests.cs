using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using LoadMaskTransformer = MLNetMedSeg.Data.Transforms.LoadMaskTransformer;

namespace MLNetMedSeg.Cli.Tests;

[TestClass]
public sealed class AttackCliTests : CliTestBase
{
    private static IDataView Pairs(MLContext ml, string data) =>
        ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(data, "images"), Path.Combine(data, "masks"));

    /// <summary>ImagePath → Image (16×16, stretched as 'medseg train' does), MaskPath → Mask.</summary>
    private static EstimatorChain<LoadMaskTransformer> Load16(MLContext ml) =>
        ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 16, 16, resizing: ImageResizingEstimator.ResizingKind.Fill))
            .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", 16, 16));

    /// <summary>
    /// A model file as 'medseg train' writes it (LoadImages → ResizeImages to 16×16 → segmenter), made the way an
    /// application makes one with the ML.NET API, with a tiny U-Net (the CLI's default U-Net is too large for a quick test).
    /// </summary>
    private string TrainModel(string data)
    {
        var ml = new MLContext(seed: 1);
        var pairs = Pairs(ml, data);
        using var fitted = Load16(ml).Append(ml.MedSeg().Trainers.Segmentation(new SegmentationTrainerOptions
        {
            Network = new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.UNet, InChannels = 3, Classes = 1, EncoderDepth = 2, EncoderWidths = [4, 8] },
            Epochs = 5, BatchSize = 3, LearningRate = 3e-2,
        })).Fit(pairs);
        var model = new TransformerChain<SegmentationTransformer>(fitted.Where(t => t is not LoadMaskTransformer).ToArray());
        string path = Path.Combine(_dir, "model.zip");
        ml.MedSeg().SaveModel(model, pairs.Schema, path);
        return path;
    }

    /// <summary>An ML.NET model holding a tiny image diffusion stage (1 epoch, 20 steps): an SDEdit generator for --generator.</summary>
    private string GeneratorModel(string data)
    {
        var ml = new MLContext(seed: 2);
        var prepared = Load16(ml).Fit(Pairs(ml, data)).Transform(Pairs(ml, data));
        var options = new ImageDiffusionOptions
        {
            Network = new DiffusionUNetOptions { BaseChannels = 8, HeadChannels = 8, GroupNormGroups = 8, ChannelMultipliers = [1, 2], AttentionResolutions = [], ImageSize = 16 },
            TimeSteps = 20, SampleSteps = 4, Epochs = 1, BatchSize = 4,
        };
        using var diffusion = new ImageDiffusionEstimator(MLContextBridge.ContextFor(ml, "ImageDiffusion"), options).Fit(prepared);
        string path = Path.Combine(_dir, "gen.zip");
        ml.MedSeg().SaveModel(new TransformerChain<ImageDiffusionTransformer>(diffusion), prepared.Schema, path);
        return path;
    }

    private static JsonElement Report(string outDir) => JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "attack.json"))).RootElement;

    [TestMethod]
    public void Attack_Fgsm_WritesPairsAndScores()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 6, seed: 2);
        string model = TrainModel(data);
        string outDir = Path.Combine(_dir, "fgsm");
        var (code, stdout, stderr) = Medseg("attack", "--model", model, "--data", data, "--method", "fgsm", "--eps", "8/255", "--out", outDir);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "6 pairs written");
        var images = Directory.GetFiles(Path.Combine(outDir, "images")).Select(Path.GetFileName).Order().ToArray();
        var masks = Directory.GetFiles(Path.Combine(outDir, "masks")).Select(Path.GetFileName).Order().ToArray();
        CollectionAssert.AreEqual(Enumerable.Range(0, 6).Select(i => $"case{i:D2}.png").ToArray(), images);
        CollectionAssert.AreEqual(images, masks);
        var img = ImageIO.Read(Path.Combine(outDir, "images", "case00.png"));
        Assert.AreEqual((16, 16, 3), (img.Width, img.Height, img.Channels), "pairs at the model's input size");
        var m = ImageIO.Read(Path.Combine(outDir, "masks", "case00.png"));
        Assert.IsTrue(m.Pixels8!.All(v => v is 0 or 255) && m.Pixels8!.Any(v => v == 255), "binary 0/255 masks");

        var report = Report(outDir);
        Assert.AreEqual("fgsm", report.GetProperty("method").GetString());
        Assert.AreEqual(6, report.GetProperty("images").GetInt32());
        Assert.AreEqual(8.0 / 255, report.GetProperty("options").GetProperty("Epsilon").GetDouble(), 1e-12);
        foreach (var set in new[] { "clean", "attacked" })
            foreach (var metric in new[] { "mIoU", "mDice" })
                Assert.IsTrue(report.GetProperty(set).GetProperty(metric).GetDouble() is >= 0 and <= 1, $"{set} {metric}");
        Assert.IsTrue(report.GetProperty("attacked").GetProperty("mDice").GetDouble() <= report.GetProperty("clean").GetProperty("mDice").GetDouble() + 1e-9,
            "FGSM does not help the model");
        CollectionAssert.AreEqual(new[] { 16, 16 }, report.GetProperty("size").EnumerateArray().Select(e => e.GetInt32()).ToArray());

        // 'attack' scores the clean images through the library's views and the segmenter itself; 'evaluate' through
        // the ML.NET model's Transform and ml.MedSeg().Evaluate. Same model, same pairs: the same clean scores.
        string json = Path.Combine(_dir, "eval.json");
        (code, _, stderr) = Medseg("evaluate", "--model", model, "--data", data, "--out", json);
        Assert.AreEqual(0, code, stderr);
        using var eval = JsonDocument.Parse(File.ReadAllText(json));
        Assert.AreEqual(eval.RootElement.GetProperty("mIoU").GetDouble(), report.GetProperty("clean").GetProperty("mIoU").GetDouble(), 1e-6);
        Assert.AreEqual(eval.RootElement.GetProperty("mDice").GetDouble(), report.GetProperty("clean").GetProperty("mDice").GetDouble(), 1e-6);
    }

    [TestMethod]
    public void Attack_Dasp_UsesTheGeneratorModel()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 3, seed: 3);
        string model = TrainModel(data);
        string outDir = Path.Combine(_dir, "dasp");

        var (code, _, stderr) = Medseg("attack", "--model", model, "--data", data, "--method", "dasp", "--out", outDir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--generator");

        (code, _, stderr) = Medseg("attack", "--model", model, "--data", data, "--method", "dasp", "--generator", model, "--out", outDir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "ISdEditor");

        string gen = GeneratorModel(data);
        (code, _, stderr) = Medseg("attack", "--model", gen, "--data", data, "--method", "fgsm", "--out", outDir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "holds no segmentation model");
        (code, var stdout, stderr) = Medseg("attack", "--model", model, "--data", data, "--method", "dasp", "--steps", "2", "--sdedit-steps", "10",
            "--generator", gen, "--out", outDir);
        Assert.AreEqual(0, code, stderr);
        StringAssert.StartsWith(stdout, "dasp: clean mIoU");
        Assert.AreEqual(3, Directory.GetFiles(Path.Combine(outDir, "images")).Length);
        var options = Report(outDir).GetProperty("options");
        Assert.AreEqual(2, options.GetProperty("Steps").GetInt32());
        Assert.AreEqual(3, options.GetProperty("SdEditDepth").GetInt32());
        Assert.AreEqual((int)DiffPgdGradient.Full, options.GetProperty("Gradient").GetInt32(), "DASP's Eq. 9 gradient by default");
    }

    [TestMethod]
    public void Attack_RejectsBadArguments()
    {
        Assert.AreEqual(2, Medseg("attack", "--model", "m.zip", "--data", _dir, "--method", "cw", "--out", _dir).code);
        var (code, _, stderr) = Medseg("attack", "--model", Path.Combine(_dir, "none.zip"), "--data", _dir, "--method", "pgd", "--out", _dir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "none.zip");
        (code, _, stderr) = Medseg("attack", "--model", "m.zip", "--data", _dir, "--method", "pgd", "--eps", "16", "--out", _dir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--eps");
        (code, _, stderr) = Medseg("attack", "--model", "m.zip", "--data", _dir, "--method", "dasp", "--diffpgd-gradient", "sideways", "--out", _dir);
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(stderr, "--diffpgd-gradient");
    }
}
