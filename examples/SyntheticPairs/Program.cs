using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using MLNetMedSeg.Core;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using static TorchSharp.torch;
using ConsoleProgressBar = MLNetMedSeg.Pipeline.ConsoleProgressBar;
using static MLNetMedSeg.Core.Scalars;

// DASP's generative half (paper 000, §3.1–3.2) on the shipped Kvasir-SEG sample (data/kvasir-seg-sample, 120 pairs),
// on ML.NET: an 80/20 split by seed (ml.Data.TrainTestSplit); on the 80 % train split, a Bernoulli mask diffusion model
// (masks from noise) and a mask-conditioned image diffusion model (an image for each mask) at 64 px; then `count`
// generated pairs and two quality figures:
//  * Dice of a real-data segmenter on the generated pairs: a quick U-Net trained on the real train split predicts each
//    generated image, scored against the mask the image was generated for (and, for reference, on the real 20 % test
//    split) — high when the images are polyp-like and sit where their masks say;
//  * diversity as mean pairwise MS-SSIM (paper 004, Table 2; lower = more diverse) of the generated images (and masks)
//    next to the real train images (and masks).
// Writes runs/<name>/: pairs.png (mask | image), quality.json, grids/ (sample grids during training), generated/.
// Usage: dotnet run --project examples/SyntheticPairs -c Release -- [--size 64] [--mask-epochs 40] [--image-epochs 20]
//   [--seg-epochs 15] [--count 32] [--sample-steps 50] [--pairs 256] [--seed 1] [--threads N]
//   [--data DIR (with images/ and masks/)] [--out runs] [--name synthetic-pairs] [--device cpu|cuda]
var opt = new Dictionary<string, string>
{
    ["size"] = "64", ["mask-epochs"] = "40", ["image-epochs"] = "20", ["seg-epochs"] = "15", ["count"] = "32",
    ["sample-steps"] = "50", ["pairs"] = "256", ["seed"] = "1", ["threads"] = "", ["data"] = Path.Combine("data", "kvasir-seg-sample"),
    ["out"] = "runs", ["name"] = "synthetic-pairs", ["device"] = "cpu",
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
    int I(string k) => int.Parse(opt[k], inv);
    int size = I("size"), count = I("count"), seed = I("seed"), sampleSteps = I("sample-steps"), pairs = I("pairs");
    if (size < 16 || size % 4 != 0) throw new ArgumentException("--size must be a multiple of 4 and at least 16");
    if (count < 1) throw new ArgumentException("--count must be at least 1");
    string runDir = Path.Combine(opt["out"], opt["name"]);
    Directory.CreateDirectory(runDir);

    // The MLContext seeds every stage (a hash of this seed and the stage's name) and chooses the device (CUDA through
    // GpuDeviceId, with no silent fallback to the CPU); libtorch's thread count is process-wide.
    var ml = new MLContext(seed);
    var device = Devices.Parse(opt["device"]);
    if (device.type == DeviceType.CUDA)
    {
        ml.GpuDeviceId = Math.Max(0, (int)device.index);
        ml.FallbackToCpu = false;
    }
    TorchRuntime.Initialize();
    if (opt["threads"].Length > 0)
    {
        int t = I("threads");
        if (t < 1) throw new ArgumentException("--threads must be at least 1");
        torch.set_num_threads(t);
    }
    var bar = new ConsoleProgressBar();
    ml.MedSeg().Progress = bar;
    // Ctrl+C stops the training and sampling loops at their next step (an OperationCanceledException, caught below)
    // rather than ending the process in the middle of one; a second Ctrl+C ends it at once.
    Console.CancelKeyPress += (_, e) => { if (!Cancel.IsCancellationRequested) { e.Cancel = true; Cancel.Cancel(); } };
    ml.MedSeg().CancellationToken = Cancel.Token;
    ml.Log += (_, e) =>
    {
        if (e.Kind == ChannelMessageKind.Warning) Console.Error.WriteLine($"warning: {e.RawMessage}");
        else if (e.Kind == ChannelMessageKind.Info && e.Source.Contains("ImageDiffusion", StringComparison.Ordinal)
                 && e.RawMessage.StartsWith("epoch ", StringComparison.Ordinal) && e.RawMessage.Contains("done", StringComparison.Ordinal))
            Console.WriteLine($"image diffusion {e.RawMessage}");
    };
    Console.WriteLine($"MLNetMedSeg synthetic pairs: {size}x{size}, mask diffusion {opt["mask-epochs"]} epochs, image diffusion {opt["image-epochs"]} epochs, " +
                      $"{count} pairs, device {MLContextBridge.DeviceFor(ml)}, {torch.get_num_threads()} threads, libtorch {torch.__version__}");
    var total = Stopwatch.StartNew();

    // Text columns Id, ImagePath, MaskPath, split 80/20 by the seed; then ImagePath → Image (MLImage, stretched to
    // size×size: Fill, as LoadMasks stretches the masks) and MaskPath → Mask (float [1,size,size] in {0,1}).
    IDataView pairPaths = ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(opt["data"], "images"), Path.Combine(opt["data"], "masks"));
    var split = ml.Data.TrainTestSplit(pairPaths, testFraction: 0.2, seed: seed);
    var loadPairs = ml.Transforms.LoadImages("Image", null, "ImagePath")
        .Append(ml.Transforms.ResizeImages("Image", size, size, resizing: ImageResizingEstimator.ResizingKind.Fill))
        .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", size, size))
        .Append(ml.Transforms.SelectColumns("Id", "Image", "Mask"))
        .Fit(split.TrainSet);
    IDataView train = loadPairs.Transform(split.TrainSet), test = loadPairs.Transform(split.TestSet);
    long trainCount = CountRows(train), testCount = CountRows(test);
    Console.WriteLine($"data: {CountRows(pairPaths)} pairs from {opt["data"]} → train {trainCount}, test {testCount}");

    // 1. Mask diffusion (DASP §3.1): the stage's defaults (a light ADM U-Net, T = 1000, cosine β, BCE on the flip noise).
    // ml.MedSeg().Generation.MaskDiffusion gives the stage the MLContext's settings (seed, device, log, progress).
    var maskOptions = new MaskDiffusionOptions
    {
        Epochs = I("mask-epochs"), SampleSteps = sampleSteps, SampleGridFolder = Path.Combine(runDir, "grids", "masks"), SampleGridEvery = 10,
        EpochCompleted = r => Console.WriteLine($"mask diffusion  epoch {r.Epoch,3}: loss {r.Loss:F4} ({r.Seconds:F1} s)"),
    };
    maskOptions.Network.ImageSize = size;
    maskOptions.Network.AttentionResolutions = [size / 4];
    var clock = Stopwatch.StartNew();
    using var masks = ml.MedSeg().Generation.MaskDiffusion(maskOptions).Fit(train);
    double maskSeconds = clock.Elapsed.TotalSeconds;

    // 2. Image diffusion conditioned on the mask (DASP §3.2): the stage's defaults, DDIM sampling, through
    // ml.MedSeg().Generation.ImageDiffusion.
    var imageOptions = new ImageDiffusionOptions
    {
        Epochs = I("image-epochs"), SampleSteps = sampleSteps, ConditionColumn = "SyntheticMask", SampleGridFolder = Path.Combine(runDir, "grids", "images"),
        SampleGridEvery = 10,
    };
    imageOptions.Network.ImageSize = size;
    imageOptions.Network.AttentionResolutions = [size / 4];
    clock.Restart();
    using var images = ml.MedSeg().Generation.ImageDiffusion(imageOptions).Fit(train);
    double imageSeconds = clock.Elapsed.TotalSeconds;

    // 3. Generate: masks from noise, then an image for each (the chain a `medseg generate` model holds), read once.
    clock.Restart();
    var ids = ml.Data.LoadFromEnumerable(Enumerable.Range(0, count).Select(i => new IdRow { Id = $"pair{i:D4}" }).ToList());
    // On an ML.NET data view the mask diffusion is an augmenter (it hands generated masks to a segmentation trainer
    // downstream and adds no column ML.NET sees); GeneratePairs draws the pairs for their own sake.
    var generatedView = ml.MedSeg().Generation.GeneratePairs(masks, images, ids);
    var genMasks = MLNetData.ReadTensors(generatedView, "SyntheticMask");
    var genImages = MLNetData.ReadTensors(generatedView, "SyntheticImage");
    double sampleSeconds = clock.Elapsed.TotalSeconds;
    bar.Complete();
    string generatedDir = Path.Combine(runDir, "generated");
    Directory.CreateDirectory(Path.Combine(generatedDir, "images"));
    Directory.CreateDirectory(Path.Combine(generatedDir, "masks"));
    for (int i = 0; i < count; i++)
    {
        MLNetMedSeg.Imaging.ImageIO.WritePng(Path.Combine(generatedDir, "images", $"pair{i:D4}.png"), genImages[i]);
        MLNetMedSeg.Imaging.ImageIO.WritePng(Path.Combine(generatedDir, "masks", $"pair{i:D4}.png"), genMasks[i]);
    }
    using (var s = torch.NewDisposeScope())
    {
        int shown = Math.Min(count, 16);
        var tiles = SampleGrid.Pairs(torch.stack(genMasks.Take(shown).ToArray()), torch.stack(genImages.Take(shown).ToArray()));
        SampleGrid.Write(Path.Combine(runDir, "pairs.png"), tiles, 4);
    }

    // 4. A quick real-data segmenter (U-Net, 16–128 channels) trained on the real train split.
    clock.Restart();
    var segOptions = new SegmentationTrainerOptions
    {
        Network = new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.UNet, InChannels = 3, Classes = 1, EncoderDepth = 4, EncoderWidths = [16, 32, 64, 128] },
        Epochs = I("seg-epochs"), BatchSize = 16, LearningRate = 1e-3,
        EpochCompleted = r => Console.WriteLine($"segmenter       epoch {r.Epoch,3}: loss {r.TrainLoss:F4} ({r.Seconds:F1} s)"),
    };
    using var segmenter = ml.MedSeg().Trainers.Segmentation(segOptions).Fit(train);
    double segSeconds = clock.Elapsed.TotalSeconds;
    var realResult = ml.MedSeg().Evaluate(segmenter.Transform(test), "Mask", "Probability");
    // The generated pairs as an ML.NET data view: Image float [3,size,size], Mask float [1,size,size].
    var generatedSchema = SchemaDefinition.Create(typeof(GeneratedPair));
    generatedSchema[nameof(GeneratedPair.Image)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 3, size, size);
    generatedSchema[nameof(GeneratedPair.Mask)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, 1, size, size);
    var generated = ml.Data.LoadFromEnumerable(Enumerable.Range(0, count).Select(i => new GeneratedPair
    {
        Id = $"pair{i:D4}", Image = genImages[i].ToArray<float>(), Mask = genMasks[i].ToArray<float>(),
    }).ToList(), generatedSchema);
    var genResult = ml.MedSeg().Evaluate(segmenter.Transform(generated), "Mask", "Probability");

    // 5. Diversity: mean pairwise MS-SSIM (3 scales at 64 px, see MsSsim), the same number of random pairs for each set.
    var realImages = MLNetData.ReadTensors(train, "Image");
    var realMasks = MLNetData.ReadTensors(train, "Mask");
    double Diversity(List<Tensor> set, string what)
    {
        using var s = torch.NewDisposeScope();
        using var g = new Generator(MLNetMedSeg.Core.Seeds.Mix((ulong)seed, "ms-ssim " + what, 0));
        return MsSsim.MeanPairwise(torch.stack(set.ToArray()), pairs, g);
    }
    double realImageMsSsim = Diversity(realImages, "real images"), genImageMsSsim = Diversity(genImages, "generated images");
    double realMaskMsSsim = Diversity(realMasks, "real masks"), genMaskMsSsim = Diversity(genMasks, "generated masks");
    double Fraction(List<Tensor> set) => set.Average(t => t.mean().DoubleValue());

    var quality = new
    {
        size, trainPairs = realImages.Count, testPairs = testCount, generatedPairs = count, seed, threads = torch.get_num_threads(),
        settings = new
        {
            maskEpochs = maskOptions.Epochs, maskSteps = maskOptions.Steps, imageEpochs = imageOptions.Epochs, imageSteps = imageOptions.TimeSteps,
            sampleSteps, imageSampler = imageOptions.Sampler.ToString(), segmenterEpochs = segOptions.Epochs, msSsimPairs = pairs,
        },
        seconds = new { maskDiffusion = Math.Round(maskSeconds, 1), imageDiffusion = Math.Round(imageSeconds, 1), sampling = Math.Round(sampleSeconds, 1), segmenter = Math.Round(segSeconds, 1), total = Math.Round(total.Elapsed.TotalSeconds, 1) },
        segmenter = new { realTestDice = realResult.MeanDice, realTestIoU = realResult.MeanIoU, generatedDice = genResult.MeanDice, generatedIoU = genResult.MeanIoU },
        msSsim = new { realImages = realImageMsSsim, generatedImages = genImageMsSsim, realMasks = realMaskMsSsim, generatedMasks = genMaskMsSsim },
        foregroundFraction = new { real = Fraction(realMasks), generated = Fraction(genMasks) },
    };
    File.WriteAllText(Path.Combine(runDir, "quality.json"), JsonSerializer.Serialize(quality, new JsonSerializerOptions { WriteIndented = true }));
    foreach (var t in genMasks.Concat(genImages).Concat(realImages).Concat(realMasks)) t.Dispose();

    Console.WriteLine();
    Console.WriteLine($"real-data U-Net: mDice {realResult.MeanDice:F4} on the real test split, {genResult.MeanDice:F4} on the {count} generated pairs (mIoU {realResult.MeanIoU:F4} / {genResult.MeanIoU:F4})");
    Console.WriteLine($"MS-SSIM diversity (mean of {pairs} random pairs; lower = more diverse): images real {realImageMsSsim:F4} vs generated {genImageMsSsim:F4}; masks real {realMaskMsSsim:F4} vs generated {genMaskMsSsim:F4}");
    Console.WriteLine($"foreground fraction: real {quality.foregroundFraction.real:F3}, generated {quality.foregroundFraction.generated:F3}");
    Console.WriteLine($"time: mask diffusion {maskSeconds:F0} s, image diffusion {imageSeconds:F0} s, sampling {sampleSeconds:F0} s, segmenter {segSeconds:F0} s, total {total.Elapsed.TotalSeconds:F0} s");
    Console.WriteLine($"wrote {runDir}/: pairs.png (mask | image), quality.json, grids/, generated/");
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

/// <summary>One row of the generators' input: the id of the pair to draw.</summary>
internal sealed class IdRow
{
    public string Id { get; set; } = "";
}

/// <summary>A generated pair as an ML.NET row (the vector dimensions are set in the schema definition).</summary>
internal sealed class GeneratedPair
{
    public string Id { get; set; } = "";
    public float[] Image { get; set; } = [];
    public float[] Mask { get; set; } = [];
}

static partial class Program
{
    /// <summary>Cancelled by Ctrl+C; every stage of the run's MLContext watches it.</summary>
    internal static readonly CancellationTokenSource Cancel = new();
}
