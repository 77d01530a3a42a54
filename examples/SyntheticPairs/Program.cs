using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

// DASP's generative half (paper 000, §3.1–3.2) on the shipped Kvasir-SEG sample (data/kvasir-seg-sample, 120 pairs):
// an 80/20 split by seed; on the 80 % train split, a Bernoulli mask diffusion model (masks from noise) and a
// mask-conditioned image diffusion model (an image for each mask) at 64 px; then `count` generated pairs and two
// quality figures:
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
    string runDir = Path.Combine(opt["out"], opt["name"]);
    Directory.CreateDirectory(runDir);
    var ctx = new MedSegContext(seed, Devices.Parse(opt["device"]), opt["threads"].Length > 0 ? I("threads") : null);
    var bar = ConsoleProgressBar.AttachTo(ctx);
    ctx.Log += (_, e) =>
    {
        if (e.Level >= LogLevel.Warning) Console.Error.WriteLine($"warning: {e.Message}");
        else if (e.Source == "ImageDiffusion" && e.Message.StartsWith("epoch ", StringComparison.Ordinal) && e.Message.Contains("done", StringComparison.Ordinal))
            Console.WriteLine($"image diffusion {e.Message}");
    };
    Console.WriteLine($"MLNetMedSeg synthetic pairs: {size}x{size}, mask diffusion {opt["mask-epochs"]} epochs, image diffusion {opt["image-epochs"]} epochs, " +
                      $"{count} pairs, device {ctx.Device}, {ctx.Threads} threads, libtorch {torch.__version__}");
    var total = Stopwatch.StartNew();

    var data = ctx.Data.LoadImagesAndMasks(Path.Combine(opt["data"], "images"), Path.Combine(opt["data"], "masks"), new ImageMaskLoaderOptions { ImageChannels = 3 });
    var split = ctx.Data.TrainValidationTestSplit(data, 0.8, 0, seed);
    var resize = ctx.Data.Resize(size, size).Fit(data);
    using var train = ctx.Data.Cache(resize.Transform(split.Train));
    using var test = ctx.Data.Cache(resize.Transform(split.Test));
    Console.WriteLine($"data: {data.GetRowCount()} pairs from {opt["data"]} → train {train.CountRows()}, test {test.CountRows()}");

    // 1. Mask diffusion (DASP §3.1): the stage's defaults (a light ADM U-Net, T = 1000, cosine β, BCE on the flip noise).
    var maskOptions = new MaskDiffusionOptions
    {
        Epochs = I("mask-epochs"), SampleSteps = sampleSteps, SampleGridFolder = Path.Combine(runDir, "grids", "masks"), SampleGridEvery = 10,
        EpochCompleted = r => Console.WriteLine($"mask diffusion  epoch {r.Epoch,3}: loss {r.Loss:F4} ({r.Seconds:F1} s)"),
    };
    maskOptions.Network.ImageSize = size;
    maskOptions.Network.AttentionResolutions = [size / 4];
    var clock = Stopwatch.StartNew();
    using var masks = ctx.Generation.MaskDiffusion(maskOptions).Fit(train);
    double maskSeconds = clock.Elapsed.TotalSeconds;

    // 2. Image diffusion conditioned on the mask (DASP §3.2): the stage's defaults, DDIM sampling.
    var imageOptions = new ImageDiffusionOptions
    {
        Epochs = I("image-epochs"), SampleSteps = sampleSteps, ConditionColumn = "SyntheticMask", SampleGridFolder = Path.Combine(runDir, "grids", "images"),
        SampleGridEvery = 10,
    };
    imageOptions.Network.ImageSize = size;
    imageOptions.Network.AttentionResolutions = [size / 4];
    clock.Restart();
    using var images = ctx.Generation.ImageDiffusion(imageOptions).Fit(train);
    double imageSeconds = clock.Elapsed.TotalSeconds;

    // 3. Generate: masks from noise, then an image for each (the chain a `medseg generate` model holds).
    clock.Restart();
    using var ids = InMemoryDataView.Create(("Id", TextColumnType.Instance, Enumerable.Range(0, count).Select(i => $"pair{i:D4}").ToList()));
    var generatedView = images.Transform(masks.Transform(ids));
    var genMasks = new List<Tensor>();
    var genImages = new List<Tensor>();
    using (var cur = generatedView.GetRowCursor([generatedView.Schema["SyntheticMask"], generatedView.Schema["SyntheticImage"]]))
        while (cur.MoveNext())
        {
            genMasks.Add(cur.GetTensor("SyntheticMask").clone().DetachFromDisposeScope());
            genImages.Add(cur.GetTensor("SyntheticImage").clone().DetachFromDisposeScope());
        }
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
    using var segmenter = ctx.Segmentation.Trainer(segOptions).Fit(train);
    double segSeconds = clock.Elapsed.TotalSeconds;
    var realResult = ctx.Evaluation.EvaluateBinary(segmenter.Transform(test), "Mask", "Probability");
    using var generated = InMemoryDataView.Create(
        ("Id", TextColumnType.Instance, Enumerable.Range(0, count).Select(i => $"pair{i:D4}").ToList()),
        ("Image", TensorColumnType.Image(3, size, size), genImages.Select(t => t.clone()).ToList()),
        ("Mask", TensorColumnType.BinaryMask(size, size), genMasks.Select(t => t.clone()).ToList()));
    var genResult = ctx.Evaluation.EvaluateBinary(segmenter.Transform(generated), "Mask", "Probability");

    // 5. Diversity: mean pairwise MS-SSIM (3 scales at 64 px, see MsSsim), the same number of random pairs for each set.
    var realImages = new List<Tensor>();
    var realMasks = new List<Tensor>();
    using (var cur = train.GetRowCursor([train.Schema["Image"], train.Schema["Mask"]]))
        while (cur.MoveNext())
        {
            realImages.Add(cur.GetTensor("Image").clone().DetachFromDisposeScope());
            realMasks.Add(cur.GetTensor("Mask").clone().DetachFromDisposeScope());
        }
    double Diversity(List<Tensor> set, string what)
    {
        using var s = torch.NewDisposeScope();
        using var g = new Generator(MedSegContext.MixSeed((ulong)seed, "ms-ssim " + what, 0));
        return MsSsim.MeanPairwise(torch.stack(set.ToArray()), pairs, g);
    }
    double realImageMsSsim = Diversity(realImages, "real images"), genImageMsSsim = Diversity(genImages, "generated images");
    double realMaskMsSsim = Diversity(realMasks, "real masks"), genMaskMsSsim = Diversity(genMasks, "generated masks");
    double Fraction(List<Tensor> set) => set.Average(t => t.mean().ToDouble());

    var quality = new
    {
        size, trainPairs = realImages.Count, testPairs = test.CountRows(), generatedPairs = count, seed, threads = ctx.Threads,
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
