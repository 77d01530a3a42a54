using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using MLNetMedSeg.Augmentation.Classic;
using MLNetMedSeg.Core;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using PolypSegmentation;
using ConsoleProgressBar = MLNetMedSeg.Pipeline.ConsoleProgressBar;
using LoadMaskTransformer = MLNetMedSeg.Data.Transforms.LoadMaskTransformer;

// Polyp segmentation on the shipped Kvasir-SEG sample (data/kvasir-seg-sample, 120 pairs at 128×128), the ML.NET way:
// LoadImageMaskPairs → an 80/10/10 split by seed (ml.MedSeg().Data.TrainValidationTestSplit) → LoadImages →
// ResizeImages → LoadMasks → Trainers.Segmentation with per-epoch validation (best epoch kept); the held-out test split
// is scored in the papers' convention (per-image mIoU/mDice at threshold 0.5) and runs/<name>/ written, with model.zip
// an ML.NET model (LoadImages → ResizeImages → segmenter, input column ImagePath) that `medseg info/evaluate/predict`,
// ml.Model.Load and examples/EnterpriseApp read.
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
catch (OperationCanceledException) when (Cancel.IsCancellationRequested)
{
    Console.Error.WriteLine("cancelled");
    return 130;
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
    if (size < 8) throw new ArgumentException("--size must be at least 8");
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

    // The MLContext seeds every stage (a hash of this seed and the stage's name) and chooses the device: a CUDA device
    // through GpuDeviceId, without a silent fallback to the CPU.
    var ml = new MLContext(seed);
    var device = Devices.Parse(opt["device"]);
    if (device.type == DeviceType.CUDA)
    {
        ml.GpuDeviceId = Math.Max(0, (int)device.index);
        ml.FallbackToCpu = false;
    }
    ml.Log += (_, e) => { if (e.Kind == ChannelMessageKind.Warning) Console.Error.WriteLine($"warning: {e.RawMessage}"); };
    var bar = new ConsoleProgressBar();
    ml.MedSeg().Progress = bar;
    // Ctrl+C stops the training and sampling loops at their next step (an OperationCanceledException, caught below)
    // rather than ending the process in the middle of one; a second Ctrl+C ends it at once.
    Console.CancelKeyPress += (_, e) => { if (!Cancel.IsCancellationRequested) { e.Cancel = true; Cancel.Cancel(); } };
    ml.MedSeg().CancellationToken = Cancel.Token;
    TorchRuntime.Initialize(); // allocator policy and MEDSEG_NUM_THREADS, before the thread count is printed
    Console.WriteLine($"MLNetMedSeg polyp segmentation: {opt["backbone"]}, {size}x{size}, {epochs} epochs, augmentation {ClassicAugmentations.ToName(augmentation)}, " +
                      $"device {MLContextBridge.DeviceFor(ml)}, {torch.get_num_threads()} threads, libtorch {torch.__version__}");

    // Text columns Id, ImagePath, MaskPath (matched by file name), split 80/10/10 by the seed.
    IDataView pairs = ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(opt["data"], "images"), Path.Combine(opt["data"], "masks"));
    var split = ml.MedSeg().Data.TrainValidationTestSplit(pairs, validationFraction: 0.1, testFraction: 0.1, seed: seed);

    // ImagePath → Image (MLImage, stretched to size×size: Fill, as LoadMasks stretches the masks), MaskPath → Mask
    // (float [1,size,size] in {0,1}, nearest resize).
    var images = ml.Transforms.LoadImages("Image", null, "ImagePath")
        .Append(ml.Transforms.ResizeImages("Image", size, size, resizing: ImageResizingEstimator.ResizingKind.Fill));
    var masks = ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", size, size);

    // The trainer's per-epoch validation: the validation pairs through the same transforms, which the trainer decodes
    // into memory once (not ml.Data.Cache: ML.NET's cache leaves the image column out).
    var validation = images.Append(masks).Fit(split.Validation).Transform(split.Validation);
    Console.WriteLine($"data: {CountRows(pairs)} pairs from {opt["data"]} → train {CountRows(split.Train)}, validation {CountRows(split.Validation)}, test {CountRows(split.Test)}");

    var options = new SegmentationTrainerOptions
    {
        Network = new SegmentationNetworkOptions { Architecture = arch, InChannels = 3, Classes = 1 },
        ImageColumn = "Image",
        MaskColumn = "Mask",
        Epochs = epochs,
        BatchSize = batch,
        LearningRate = double.Parse(opt["lr"], inv),
        Augmentation = augmentation,
        ValidationSet = validation,
        EpochCompleted = r => Console.WriteLine(
            $"epoch {r.Epoch,3}: train loss {r.TrainLoss:F4}  validation mDice {r.ValidationDice:F4}  ({r.Seconds:F1} s)"),
    };
    var pipeline = images.Append(masks).Append(ml.MedSeg().Trainers.Segmentation(options));
    var clock = Stopwatch.StartNew();
    using var fitted = pipeline.Fit(split.Train);
    bar.Complete();
    double trainSeconds = clock.Elapsed.TotalSeconds;
    var segmenter = fitted.LastTransformer;

    // Held-out test split, the papers' convention: per-image IoU/Dice at threshold 0.5, averaged over images.
    var scored = fitted.Transform(split.Test); // + Probability, Predicted: float [1,size,size]
    var result = ml.MedSeg().Evaluate(scored, labelColumnName: "Mask", scoreColumnName: "Probability");
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

    // The deployable ML.NET model: load and resize the image from its path, then segment (masks are not needed to
    // predict), as `medseg train` saves it. The chain shares its stages with `fitted`, which disposes them.
    var model = new TransformerChain<SegmentationTransformer>(fitted.Where(t => t is not LoadMaskTransformer).ToArray());
    var inputSchema = new DataViewSchema.Builder();
    inputSchema.AddColumn("ImagePath", TextDataViewType.Instance);
    ml.MedSeg().SaveModel(model, inputSchema.ToSchema(), Path.Combine(runDir, "model.zip"));

    Console.WriteLine();
    Console.Write(result.ToMarkdown());
    var best = segmenter.BestEpoch;
    Console.WriteLine($"test mIoU {result.MeanIoU:F4}  mDice {result.MeanDice:F4}  (best validation epoch {best?.Epoch}, trained in {trainSeconds:F0} s)");
    Console.WriteLine($"wrote {runDir}/: metrics.json, metrics.md, metrics.csv, {overlays.Count} overlays, " +
                      $"loss_curve.png (red: train loss, scaled {history.Min(h => h.TrainLoss):F3}–{history.Max(h => h.TrainLoss):F3}; blue: validation mDice on 0–1), model.zip");
    return 0;
}

// Rows of an ML.NET data view (a cursor over no columns: nothing is decoded).
static long CountRows(IDataView data)
{
    if (data.GetRowCount() is long n) return n;
    long count = 0;
    using var cursor = data.GetRowCursor([]);
    while (cursor.MoveNext()) count++;
    return count;
}

static partial class Program
{
    /// <summary>Cancelled by Ctrl+C; every stage of the run's MLContext watches it.</summary>
    internal static readonly CancellationTokenSource Cancel = new();
}
