using TorchSharp;
using System.Text.Json;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// A saveable, fast SDEdit stand-in for the CLI tests (DaspCliTests use the real image diffusion): Gaussian noise of
/// standard deviation 0.01·depth, then two passes of a border-normalised 3×3 box blur.
/// </summary>
internal sealed class BlurGenerator : ISdEditor, ITransformer
{
    public const string LoaderSignature = "TEST.CLI_BLUR_GENERATOR";

    static BlurGenerator() => ModelLoaderRegistry.Register(LoaderSignature, 1, _ => new BlurGenerator());

    public int ImageChannels => 3;

    public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, Generator? generator = null)
    {
        using var scope = torch.NewDisposeScope();
        using var grad = torch.set_grad_enabled(differentiable && torch.is_grad_enabled());
        var x = images.add(torch.randn(images.shape, images.dtype, images.device, generator: generator).mul(0.01 * depth));
        for (int k = 0; k < 2; k++) x = torch.nn.functional.avg_pool2d(x, [3, 3], [1, 1], [1, 1], count_include_pad: false);
        return x.clamp(0, 1).MoveToOuterDisposeScope();
    }

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inputSchema;

    public IDataView Transform(IDataView input) => input;

    public void Save(ModelSaveContext context) => context.WriteHeader(LoaderSignature, 1, 1);
}

[TestClass]
public sealed class AttackCliTests : CliTestBase
{
    /// <summary>
    /// A model file as 'medseg train' writes it (image resize to 16×16, then the segmenter), with a tiny U-Net trained
    /// for a few epochs through the library (the CLI's default U-Net is too large for a quick test).
    /// </summary>
    private string TrainModel(string data)
    {
        var ctx = new MedSegContext(seed: 1);
        var pairs = ctx.Data.LoadImagesAndMasks(Path.Combine(data, "images"), Path.Combine(data, "masks"), new ImageMaskLoaderOptions { ImageChannels = 3 });
        using var train = ctx.Data.Cache(ctx.Data.Resize(16, 16).Fit(pairs).Transform(pairs));
        using var segmenter = ctx.Segmentation.Trainer(new SegmentationTrainerOptions
        {
            Network = new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.UNet, InChannels = 3, Classes = 1, EncoderDepth = 2, EncoderWidths = [4, 8] },
            Epochs = 5, BatchSize = 3, LearningRate = 3e-2,
        }).Fit(train);
        var resize = ctx.Data.Resize(16, 16, maskColumn: null).Fit(pairs);
        using var model = new TransformerChain<SegmentationTransformer>([(resize, TransformerScope.Everything), (segmenter, TransformerScope.Everything)]);
        string path = Path.Combine(_dir, "model.zip");
        ctx.Model.Save(model, DataViewSchema.Create(("Id", TextColumnType.Instance), ("Image", TensorColumnType.Image(3))), path);
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

        string gen = Path.Combine(_dir, "gen.zip");
        new MedSegContext(0).Model.Save(new BlurGenerator(), DataViewSchema.Create(("Image", TensorColumnType.Image(3))), gen);
        (code, var stdout, stderr) = Medseg("attack", "--model", model, "--data", data, "--method", "dasp", "--steps", "2", "--generator", gen, "--out", outDir);
        Assert.AreEqual(0, code, stderr);
        StringAssert.StartsWith(stdout, "dasp: clean mIoU");
        Assert.AreEqual(3, Directory.GetFiles(Path.Combine(outDir, "images")).Length);
        var options = Report(outDir).GetProperty("options");
        Assert.AreEqual(2, options.GetProperty("Steps").GetInt32());
        Assert.AreEqual(3, options.GetProperty("SdEditDepth").GetInt32());
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
    }
}
