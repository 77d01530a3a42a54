using System.Diagnostics;
using System.Globalization;
using MLNetMedSeg.Augmentation.Classic;
using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using TorchSharp.Modules;
using PolypSegmentation;

// Polyp segmentation on the shipped Kvasir-SEG sample (data/kvasir-seg-sample, 120 pairs at 128×128):
// 80/10/10 split by seed, resize, train a backbone with per-epoch validation (best epoch kept), evaluate on the
// held-out test split in the papers' convention (per-image mIoU/mDice at threshold 0.5) and write runs/<name>/.
// Usage: dotnet run --project examples/PolypSegmentation -c Release -- [--backbone unet|unetpp|linknet|deeplabv3plus]
//   [--size 64] [--epochs 25] [--batch 16] [--lr 1e-3] [--augment none|basic|cutmix|cutout|erase|elastic|noise]
//   [--seed 1] [--data DIR (with images/ and masks/)] [--out runs] [--name NAME] [--device cpu|cuda]
var opt = new Dictionary<string, string>
{
    ["backbone"] = "unet", ["size"] = "64", ["epochs"] = "25", ["batch"] = "16", ["lr"] = "1e-3", ["augment"] = "none",
    ["seed"] = "1", ["data"] = Path.Combine("data", "kvasir-seg-sample"), ["out"] = "runs", ["name"] = "", ["device"] = "cpu",
};
for (int k = 0; k < args.Length; k += 2)
{
    string key = args[k].TrimStart('-');
    if (!opt.ContainsKey(key) || k + 1 >= args.Length) { Console.Error.WriteLine($"error: unknown or incomplete option '{args[k]}'"); return 2; }
    opt[key] = args[k + 1];
}
try
{
    return Run(opt);
}
catch (Exception ex) when (ex is not OutOfMemoryException)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 1;
}

static int Run(Dictionary<string, string> opt)
{
    var inv = CultureInfo.InvariantCulture;
    int size = int.Parse(opt["size"], inv), epochs = int.Parse(opt["epochs"], inv), batch = int.Parse(opt["batch"], inv), seed = int.Parse(opt["seed"], inv);
    var arch = opt["backbone"] switch
    {
        "unet" => SegmentationArchitecture.UNet,
        "unetpp" => SegmentationArchitecture.UNetPlusPlus,
        "linknet" => SegmentationArchitecture.LinkNet,
        "deeplabv3plus" => SegmentationArchitecture.DeepLabV3Plus,
        var b => throw new ArgumentException($"unknown backbone '{b}' (unet, unetpp, linknet, deeplabv3plus)"),
    };
    var augmentation = ClassicAugmentations.Parse(opt["augment"]);
    string name = opt["name"].Length > 0 ? opt["name"] : $"{opt["backbone"]}-{ClassicAugmentations.ToName(augmentation)}-{size}px-seed{seed}";
    string runDir = Path.Combine(opt["out"], name);
    Directory.CreateDirectory(runDir);

    var ctx = new MedSegContext(seed, Devices.Parse(opt["device"]));
    var bar = ConsoleProgressBar.AttachTo(ctx);
    ctx.Log += (_, e) => { if (e.Level >= LogLevel.Warning) Console.Error.WriteLine($"warning: {e.Message}"); };
    Console.WriteLine($"MLNetMedSeg polyp segmentation: {opt["backbone"]}, {size}x{size}, {epochs} epochs, augmentation {ClassicAugmentations.ToName(augmentation)}, " +
                      $"device {ctx.Device}, {ctx.Threads} threads, libtorch {torch.__version__}");

    var data = ctx.Data.LoadImagesAndMasks(Path.Combine(opt["data"], "images"), Path.Combine(opt["data"], "masks"),
        new ImageMaskLoaderOptions { ImageChannels = 3 });
    var split = ctx.Data.TrainValidationTestSplit(data, 0.8, 0.1, seed);
    var resize = ctx.Data.Resize(size, size).Fit(data);
    using var train = ctx.Data.Cache(resize.Transform(split.Train));
    using var validation = ctx.Data.Cache(resize.Transform(split.Validation));
    using var test = ctx.Data.Cache(resize.Transform(split.Test));
    Console.WriteLine($"data: {data.GetRowCount()} pairs from {opt["data"]} → train {train.CountRows()}, validation {validation.CountRows()}, test {test.CountRows()}");

    var options = new SegmentationTrainerOptions
    {
        Network = new SegmentationNetworkOptions { Architecture = arch, InChannels = 3, Classes = 1 },
        Epochs = epochs,
        BatchSize = batch,
        LearningRate = double.Parse(opt["lr"], inv),
        Augmentation = augmentation,
        ValidationData = validation,
        EpochCompleted = r => Console.WriteLine(
            $"epoch {r.Epoch,3}: train loss {r.TrainLoss:F4}  validation mDice {r.ValidationDice:F4}  ({r.Seconds:F1} s)"),
    };
    var clock = Stopwatch.StartNew();
    using var segmenter = ctx.Segmentation.Trainer(options).Fit(train);
    bar.Complete();
    double trainSeconds = clock.Elapsed.TotalSeconds;

    // Held-out test split, the papers' convention: per-image IoU/Dice at threshold 0.5, averaged over images.
    var scored = segmenter.Transform(test);
    var result = ctx.Evaluation.EvaluateBinary(scored, "Mask", "Probability");
    File.WriteAllText(Path.Combine(runDir, "metrics.json"), result.ToJson());
    File.WriteAllText(Path.Combine(runDir, "metrics.md"), result.ToMarkdown());
    File.WriteAllText(Path.Combine(runDir, "metrics.csv"), result.ToCsv());
    var overlays = result.WriteOverlays(Path.Combine(runDir, "overlays"), scored, worst: 3, best: 3);

    var history = segmenter.History;
    LineChart.WritePng(Path.Combine(runDir, "loss_curve.png"), 480, 240,
    [
        (history.Select(h => h.TrainLoss).ToArray(), ((byte)200, (byte)40, (byte)40), null),
        (history.Select(h => h.ValidationDice ?? double.NaN).ToArray(), ((byte)30, (byte)90, (byte)200), (0.0, 1.0)),
    ]);

    // The deployable model: resize the image, then segment (masks are not needed to predict).
    using var model = new TransformerChain<SegmentationTransformer>([(ctx.Data.Resize(size, size, maskColumn: null).Fit(data), TransformerScope.Everything), (segmenter, TransformerScope.Everything)]);
    ctx.Model.Save(model, DataViewSchema.Create(("Id", TextColumnType.Instance), ("Image", TensorColumnType.Image(3))), Path.Combine(runDir, "model.zip"));

    Console.WriteLine();
    Console.Write(result.ToMarkdown());
    var best = segmenter.BestEpoch;
    Console.WriteLine($"test mIoU {result.MeanIoU:F4}  mDice {result.MeanDice:F4}  (best validation epoch {best?.Epoch}, trained in {trainSeconds:F0} s)");
    Console.WriteLine($"wrote {runDir}/: metrics.json, metrics.md, metrics.csv, {overlays.Count} overlays, " +
                      $"loss_curve.png (red: train loss, scaled {history.Min(h => h.TrainLoss):F3}–{history.Max(h => h.TrainLoss):F3}; blue: validation mDice on 0–1), model.zip");
    return 0;
}
