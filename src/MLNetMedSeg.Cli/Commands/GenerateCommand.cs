using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Imaging;
using TorchSharp;
using static MLNetMedSeg.Core.Scalars;
using IDataView = Microsoft.ML.IDataView;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg generate --data DIR --size N --epochs N [--mask-steps N] [--image-steps N] [--sampler ddpm|ddim]
/// [--sample-steps N] [--mask-lr X] [--image-lr X] [--checkpoints CKDIR] [--sample-grid-every N] --count K --out OUTDIR [--save-model GEN.zip | --model GEN.zip]</c>:
/// DASP's pair generation
/// (paper 000, §3.1–3.2). Trains a Bernoulli mask diffusion model and a mask-conditioned image diffusion model on
/// DIR/images + DIR/masks resized to N×N (or loads both from GEN.zip), then samples K masks from noise and an image for
/// each, and writes OUTDIR/masks/pairNNNN.png (0/255), OUTDIR/images/pairNNNN.png and OUTDIR/grid.png (mask | image
/// pairs). The generator model file is an ML.NET model holding both stages as one transformer chain (masks, then
/// images for them) over an input with one text column, Id. --model also takes a model written by <c>medseg dasp</c>
/// (its DASP stage holds both diffusion models), so the demo's generators can be drawn from and checked too.
/// With <c>--checkpoints CKDIR</c> each model writes a resume checkpoint after every epoch (CKDIR/mask-diffusion,
/// CKDIR/image-diffusion): the same command run again continues each model after its last finished epoch (a model
/// already trained for --epochs trains no further step), and a larger --epochs trains on from there — the result is
/// the model an uninterrupted run would give.
/// </summary>
internal static class GenerateCommand
{
    internal static readonly string[] Samplers = ["ddim", "ddpm"];

    public static Command Create(CliConsole console)
    {
        var data = new Option<string?>("--data") { Description = "training folder with images/ and masks/ (matched by file stem); not used with --model" };
        var size = new Option<int>("--size") { Description = "images and masks are resized to size×size pixels (a multiple of 4, ≥ 16)", DefaultValueFactory = _ => 64 };
        var epochs = new Option<int>("--epochs") { Description = "training epochs of each model", DefaultValueFactory = _ => 20 };
        var maskSteps = new Option<int>("--mask-steps") { Description = "diffusion steps T of the mask model (Bernoulli; DASP: 1000)", DefaultValueFactory = _ => 1000 };
        var imageSteps = new Option<int>("--image-steps") { Description = "diffusion steps T' of the image model (Gaussian; DASP: 1000)", DefaultValueFactory = _ => 1000 };
        var sampler = new Option<string>("--sampler") { Description = "image sampler: ddim (deterministic, η = 0) or ddpm", DefaultValueFactory = _ => "ddim" };
        sampler.AcceptOnlyFromAmong(Samplers);
        var sampleSteps = new Option<int>("--sample-steps") { Description = "respaced sampling steps of both models", DefaultValueFactory = _ => 50 };
        var count = new Option<int>("--count") { Description = "number of (mask, image) pairs to generate", Required = true };
        var batch = new Option<int>("--batch") { Description = "training batch size of both models", DefaultValueFactory = _ => 16 };
        var seed = new Option<int>("--seed") { Description = "seed of every random choice (weights, batches, noise, samples)", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var output = new Option<string>("--out") { Description = "output folder (images/, masks/, grid.png)", Required = true };
        var saveModel = new Option<string?>("--save-model") { Description = "write the trained generator (both models) to this .zip" };
        var model = new Option<string?>("--model") { Description = "generate with this generator .zip instead of training" };
        var maskLr = new Option<double>("--mask-lr") { Description = "Adam learning rate of the mask diffusion model", DefaultValueFactory = _ => new MaskDiffusionOptions().LearningRate };
        var imageLr = new Option<double>("--image-lr") { Description = "Adam learning rate of the image diffusion model (ADM's 1e-4; CPU-length runs learn faster with a few times more)", DefaultValueFactory = _ => new ImageDiffusionOptions().LearningRate };
        var checkpoints = new Option<string?>("--checkpoints")
        {
            Description = "resume checkpoints, one folder per model (DIR/mask-diffusion, DIR/image-diffusion), written after every epoch; " +
                          "running the same command again continues where it stopped (a larger --epochs trains on)",
        };
        var gridEvery = new Option<int>("--sample-grid-every")
        {
            Description = "write each model's sample grid every N epochs (and after training) to CKDIR/<model>/grids, or OUTDIR/training-grids/<model> " +
                          "without --checkpoints; 0 (the default): none. Keep it the same when resuming from checkpoints",
            DefaultValueFactory = _ => 0,
        };
        var cmd = new Command("generate", "train (or load) the mask and image diffusion models and generate synthetic image/mask pairs")
        {
            data, size, epochs, maskSteps, imageSteps, sampler, sampleSteps, count, batch, seed, device, output, saveModel, model, checkpoints, gridEvery, maskLr, imageLr,
        };
        cmd.SetAction((parse, ct) => console.Invoke(() =>
        {
            int k = parse.GetValue(count);
            if (k < 1) throw new ArgumentOutOfRangeException("--count", k, "--count must be at least 1");
            string? modelPath = parse.GetValue(model), savePath = parse.GetValue(saveModel);
            if (modelPath is not null && savePath is not null) throw new ArgumentException("use either --model (load a generator) or --save-model (train and save one), not both");
            if (modelPath is not null && parse.GetValue(data) is not null) throw new ArgumentException("--data trains new models; with --model nothing is trained (leave out --data)");
            string? checkpointDir = parse.GetValue(checkpoints);
            int every = parse.GetValue(gridEvery);
            if (modelPath is not null && (checkpointDir is not null || every != 0))
                throw new ArgumentException("--checkpoints and --sample-grid-every are training options; with --model nothing is trained");
            if (checkpointDir is "") throw new ArgumentException("--checkpoints must name a folder");
            if (every < 0) throw new ArgumentOutOfRangeException("--sample-grid-every", every, "--sample-grid-every must be ≥ 0");
            var ml = MLNetRun.CreateContext(console, parse.GetValue(seed), parse.GetValue(device)!, ct);
            // Ctrl-C / SIGTERM stop training at the next step (an ML.NET Fit takes no token); with --checkpoints the
            // last finished epoch is kept and the same command resumes from it.
            var clock = Stopwatch.StartNew();

            ITransformer generator;
            if (modelPath is not null) generator = MLNetRun.LoadModel(ml, modelPath, out _);
            else
            {
                string dir = parse.GetValue(data) ?? throw new ArgumentException("--data is required to train (or pass --model GEN.zip)");
                var folders = new TrainingFolders(checkpointDir, every, parse.GetRequiredValue(output));
                foreach (var (name, lr) in new[] { ("--mask-lr", parse.GetValue(maskLr)), ("--image-lr", parse.GetValue(imageLr)) })
                    if (!(lr > 0 && double.IsFinite(lr))) throw new ArgumentOutOfRangeException(name, lr, $"{name} must be a positive number");
                generator = Train(ml, console, dir, parse.GetValue(size), parse.GetValue(epochs), parse.GetValue(maskSteps), parse.GetValue(imageSteps),
                    parse.GetValue(sampler)!, parse.GetValue(sampleSteps), parse.GetValue(batch), parse.GetValue(maskLr), parse.GetValue(imageLr), folders, ct);
            }
            try
            {
                var input = ml.Data.LoadFromEnumerable(Enumerable.Range(0, k).Select(i => new IdRow { Id = $"pair{i:D4}" }).ToList());
                _ = Stages(generator, modelPath, out var checkedCopy); // names a file that is no generator before anything is written
                checkedCopy?.Dispose();
                if (savePath is not null)
                {
                    ml.MedSeg().SaveModel(generator, input.Schema, savePath);
                    console.Err.WriteLine($"generator written to {savePath}");
                }
                string outDir = parse.GetRequiredValue(output);
                WritePairs(generator, input, outDir, k, console, ct);
                console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"generated {k} pairs in {clock.Elapsed.TotalSeconds:F0} s: {Path.Combine(outDir, "images")}, {Path.Combine(outDir, "masks")}, {Path.Combine(outDir, "grid.png")}"));
                return 0;
            }
            finally
            {
                (generator as IDisposable)?.Dispose();
            }
        }, ct));
        return cmd;
    }

    /// <summary>Where training writes its checkpoints and sample grids.</summary>
    /// <param name="Checkpoints">The --checkpoints folder (null: no checkpoints).</param>
    /// <param name="GridEvery">The --sample-grid-every epochs (0: no grids).</param>
    /// <param name="Output">The --out folder (grids go there without checkpoints).</param>
    internal sealed record TrainingFolders(string? Checkpoints, int GridEvery, string Output)
    {
        /// <summary>The names of the two models' sub-folders.</summary>
        public const string MaskModel = "mask-diffusion", ImageModel = "image-diffusion";

        /// <summary>The checkpoint folder of one model, or null.</summary>
        public string? CheckpointFolder(string model) => Checkpoints is null ? null : Path.Combine(Checkpoints, model);

        /// <summary>The sample-grid folder of one model, or null when no grids are asked for.</summary>
        public string? GridFolder(string model) => GridEvery <= 0 ? null
            : Checkpoints is null ? Path.Combine(Output, "training-grids", model) : Path.Combine(Checkpoints, model, "grids");
    }

    /// <summary>Trains (or resumes) both models; returns the chain (mask diffusion → image diffusion conditioned on its masks).</summary>
    private static TransformerChain<ImageDiffusionTransformer> Train(MLContext ml, CliConsole console, string dir, int n, int epochs,
        int maskSteps, int imageSteps, string sampler, int sampleSteps, int batch, double maskLr, double imageLr, TrainingFolders folders, CancellationToken ct)
    {
        if (n < 16 || n % 4 != 0) throw new ArgumentOutOfRangeException("--size", n, "--size must be a multiple of 4 and at least 16");
        if (epochs < 1) throw new ArgumentOutOfRangeException("--epochs", epochs, "--epochs must be at least 1");
        if (sampleSteps < 1 || sampleSteps > Math.Min(maskSteps, imageSteps))
            throw new ArgumentOutOfRangeException("--sample-steps", sampleSteps, $"--sample-steps must be in 1..min(--mask-steps, --image-steps) = {Math.Min(maskSteps, imageSteps)}");
        var bar = MLNetRun.AttachProgressBar(ml, console);
        var pairs = MLNetRun.LoadPairs(ml, dir);
        var train = MLNetRun.LoadImages(ml, pairs, n, n).Append(MLNetRun.LoadMasks(ml, n, n)).Append(MLNetRun.SelectIdImageMask(ml)).Fit(pairs).Transform(pairs);
        console.Err.WriteLine($"training the mask and image diffusion models at {n}x{n} on {MLNetRun.CountRows(pairs)} pairs, {epochs} epochs each");
        if (folders.Checkpoints is { } ck)
            console.Err.WriteLine($"checkpoints: {Path.Combine(ck, TrainingFolders.MaskModel)}, {Path.Combine(ck, TrainingFolders.ImageModel)} (a run resumes after the last finished epoch)");

        var maskOptions = new MaskDiffusionOptions
        {
            Steps = maskSteps, SampleSteps = sampleSteps, Epochs = epochs, BatchSize = batch, LearningRate = maskLr,
            EpochCompleted = r => console.Err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"mask diffusion epoch {r.Epoch}: loss {r.Loss:F4} ({r.Seconds:F1} s)")),
            CheckpointFolder = folders.CheckpointFolder(TrainingFolders.MaskModel),
            SampleGridFolder = folders.GridFolder(TrainingFolders.MaskModel), SampleGridEvery = Math.Max(0, folders.GridEvery),
        };
        maskOptions.Network.ImageSize = n;
        maskOptions.Network.AttentionResolutions = [n / 4];
        var imageOptions = new ImageDiffusionOptions
        {
            TimeSteps = imageSteps, SampleSteps = sampleSteps, Epochs = epochs, BatchSize = batch, ConditionColumn = "SyntheticMask", LearningRate = imageLr,
            Sampler = sampler == "ddpm" ? GaussianSamplerKind.Ddpm : GaussianSamplerKind.Ddim,
            EpochCompleted = r => console.Err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"image diffusion epoch {r.Epoch}: loss {r.Loss:F4} ({r.Seconds:F1} s)")),
            CheckpointFolder = folders.CheckpointFolder(TrainingFolders.ImageModel),
            SampleGridFolder = folders.GridFolder(TrainingFolders.ImageModel), SampleGridEvery = Math.Max(0, folders.GridEvery),
        };
        imageOptions.Network.ImageSize = n;
        imageOptions.Network.AttentionResolutions = [n / 4];
        MaskDiffusionTransformer? masks = null;
        ImageDiffusionTransformer? images = null;
        try
        {
            ct.ThrowIfCancellationRequested();
            masks = ml.MedSeg().Generation.MaskDiffusion(maskOptions).Fit(train);
            ct.ThrowIfCancellationRequested();
            images = ml.MedSeg().Generation.ImageDiffusion(imageOptions).Fit(train);
            bar.Complete();
            var chain = new TransformerChain<ImageDiffusionTransformer>(masks, images);
            masks = null;
            images = null;
            return chain;
        }
        finally
        {
            masks?.Dispose();
            images?.Dispose();
        }
    }

    /// <summary>Writes masks/ and images/ (one PNG per pair, named by Id) and grid.png (up to 16 pairs, mask | image).</summary>
    private static void WritePairs(ITransformer generator, IDataView input, string outDir, int k, CliConsole console, CancellationToken ct)
    {
        string imageDir = Path.Combine(outDir, "images"), maskDir = Path.Combine(outDir, "masks");
        Directory.CreateDirectory(imageDir);
        Directory.CreateDirectory(maskDir);
        // In an ML.NET chain the mask diffusion is an augmenter (it hands its masks to a trainer and adds no column):
        // to draw pairs for their own sake, the two models run on the library's view of the ids.
        var (masks, images) = Stages(generator, null, out var owned);
        using var ownedImages = owned;
        var output = images.Transform(masks.Transform(MLNetData.AsLibraryView(input)));
        var grid = new List<Tensor>();
        try
        {
            var s = output.Schema;
            using var cur = output.GetRowCursor([s["Id"], s["SyntheticMask"], s["SyntheticImage"]]);
            int done = 0;
            while (cur.MoveNext())
            {
                ct.ThrowIfCancellationRequested();
                using var scope = torch.NewDisposeScope();
                string id = cur.GetText("Id");
                var mask = cur.GetTensor("SyntheticMask");
                var image = cur.GetTensor("SyntheticImage");
                ImageIO.WritePng(Path.Combine(maskDir, id + ".png"), mask.ge(S(0.5)).to(ScalarType.Float32));
                ImageIO.WritePng(Path.Combine(imageDir, id + ".png"), image);
                if (grid.Count < 16) grid.Add(SampleGrid.Pairs(mask.unsqueeze(0), image.unsqueeze(0)).DetachFromDisposeScope());
                done++;
                if (done % 8 == 0 || done == k) console.Err.WriteLine($"generated {done}/{k}");
            }
            using var gs = torch.NewDisposeScope();
            var tiles = torch.cat(grid.ToArray(), 0);
            SampleGrid.Write(Path.Combine(outDir, "grid.png"), tiles, Math.Min(4, grid.Count));
        }
        finally
        {
            foreach (var t in grid) t.Dispose();
        }
    }

    /// <summary>
    /// The mask diffusion and the image diffusion of a generator chain written by 'medseg generate', or of a DASP model
    /// written by 'medseg dasp' (its DaspTransformer holds both; its image model conditions on the real masks' column,
    /// so a copy of it conditioned on the generated masks is made — <paramref name="owned"/> is that copy, to dispose).
    /// </summary>
    internal static (MaskDiffusionTransformer Masks, ImageDiffusionTransformer Images) Stages(ITransformer generator, string? path, out IDisposable? owned)
    {
        owned = null;
        var stages = generator as IEnumerable<ITransformer> ?? [generator];
        var masks = stages.OfType<MaskDiffusionTransformer>().LastOrDefault();
        var images = stages.OfType<ImageDiffusionTransformer>().LastOrDefault();
        if ((masks is null || images is null) && stages.OfType<Dasp.DaspTransformer>().LastOrDefault() is { MaskDiffusion: { } dm } dasp)
        {
            masks = dm;
            images = dasp.ImageDiffusion;
        }
        if (masks is null || images is null)
            throw new InvalidDataException($"the generator model{(path is null ? "" : $" '{path}'")} holds no {(masks is null ? "mask diffusion" : "image diffusion")} (its stages: {string.Join(", ", stages.Select(t => t.GetType().Name))}); it was not written by 'medseg generate' or 'medseg dasp'");
        string maskColumn = masks.Options.OutputColumn;
        if (images.Options.ConditionColumn != maskColumn)
        {
            var o = images.Options;
            o.ConditionColumn = maskColumn;
            var net = new DiffusionUNet(images.Network.Options);
            try
            {
                using (torch.no_grad())
                {
                    var source = images.Network.state_dict();
                    foreach (var (k, v) in net.state_dict()) v.copy_(source[k]);
                }
                images = new ImageDiffusionTransformer(images.Context, o, net, images.History);
            }
            catch
            {
                net.Dispose();
                throw;
            }
            owned = images;
        }
        return (masks, images);
    }

    /// <summary>One row of the generator's input: the id of the pair to draw.</summary>
    private sealed class IdRow
    {
        public string Id { get; set; } = "";
    }
}
