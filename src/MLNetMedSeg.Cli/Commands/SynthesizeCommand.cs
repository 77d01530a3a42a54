using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Clustering;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Synthesis;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Imaging;
using TorchSharp;
using static MLNetMedSeg.Core.Scalars;
using DataViewSchema = Microsoft.ML.DataViewSchema;
using IDataView = Microsoft.ML.IDataView;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg synthesize --data DIR --method joint|repaint|styled [--per-image 3] [--clusters 20 | --no-clusters] [--size N]
/// [--epochs N | --train-steps N] [--model GEN.zip | --save-model GEN.zip] --out OUTDIR</c>: paper 004's synthetic pairs (Saragih et al.,
/// §3.2). The real pairs of DIR (images/ + masks/, resized to N×N) are optionally clustered (<c>ClusterImages</c>:
/// ImageNet ResNet-18 features of image and mask, KMeans), a joint image + mask diffusion model is trained — one per
/// cluster, or one on all data — (or loaded with --model), and then
/// <list type="bullet">
/// <item><c>joint</c>: --per-image pairs are sampled from the model of each real image's cluster (image and mask
/// generated together);</item>
/// <item><c>repaint</c>: each real image is inpainted --per-image times under its dilated mask (RePaint); the new pair is
/// (inpainted image, original mask). --model may also be a mask-conditioned image diffusion model ('medseg generate',
/// 'medseg dasp');</item>
/// <item><c>styled</c>: repaint, then each inpainted image styled towards its original (paper 004 step 4, Appendix
/// A.1.2: guided reverse steps with Table A.3's content and style losses; --style-steps, --style-skip).</item>
/// </list>
/// Writes OUTDIR/images/ID_J.png, OUTDIR/masks/ID_J.png (0/255) for real image ID and sample J, OUTDIR/grid.png (up to
/// 16 pairs, mask | image) and OUTDIR/quality.json (<c>ml.MedSeg().CreateImageQualityEvaluator</c>: Fréchet ResNet-18
/// distance and MS-SSIM diversity of the written images against the --data images at the same size, plus counts).
/// --save-model writes the fitted clustering stage (when used) and the diffusion model as one ML.NET model
/// (<c>ml.MedSeg().SaveModel</c>); --model reads it back and trains nothing. Same seed → same files: joint samples use
/// the model's saved sampling seed (from --seed at training), RePaint's noise the --seed of the run.
/// </summary>
internal static class SynthesizeCommand
{
    internal static readonly string[] Methods = ["joint", "repaint", "styled"];

    /// <summary>The column names of the real data and of the cluster index.</summary>
    private const string Cluster = "Cluster", Inpainted = "InpaintedImage", Styled = "StyledImage";

    public static Command Create(CliConsole console)
    {
        var data = new Option<string>("--data") { Description = "the real pairs: a folder with images/ and masks/ (matched by file stem)", Required = true };
        var method = new Option<string>("--method")
        {
            Description = "joint: sample image + mask pairs from the joint diffusion model; repaint: inpaint each real image under its dilated mask " +
                          "(pair = inpainted image + original mask); styled: repaint, then style (paper 004 step 4)",
            Required = true,
        };
        method.AcceptOnlyFromAmong(Methods);
        var perImage = new Option<int>("--per-image") { Description = "synthetic pairs per real image (paper 004: 3)", DefaultValueFactory = _ => 3 };
        var clusters = new Option<int?>("--clusters") { Description = "cluster the real pairs into this many groups and train one diffusion model per cluster (default 20, the paper's)" };
        var noClusters = new Option<bool>("--no-clusters") { Description = "one diffusion model on all the data (the paper's Full-Diff)" };
        var size = new Option<int?>("--size") { Description = "images and masks are resized to size×size pixels (default 64; with --model: the model's size)" };
        var epochs = new Option<int>("--epochs") { Description = "training epochs of each diffusion model", DefaultValueFactory = _ => 20 };
        var trainSteps = new Option<int?>("--train-steps") { Description = "optimizer steps of each diffusion model instead of --epochs: every cluster's model gets the same number whatever its size (the paper: 110,000 each)" };
        var batch = new Option<int>("--batch") { Description = "training batch size", DefaultValueFactory = _ => 8 };
        var lr = new Option<double>("--lr") { Description = "Adam learning rate of the diffusion models (Table A.1: 1e-4)", DefaultValueFactory = _ => new JointDiffusionOptions().LearningRate };
        var width = new Option<int>("--width") { Description = "base channels of the diffusion U-Net (Table A.1: 256; CPU default 32)", DefaultValueFactory = _ => new JointDiffusionOptions().Network.BaseChannels };
        var steps = new Option<int>("--diffusion-steps") { Description = "diffusion steps T (Table A.1: 1000)", DefaultValueFactory = _ => 1000 };
        var sampleSteps = new Option<int?>("--sample-steps") { Description = "joint: respaced DDIM sampling steps (default min(50, --diffusion-steps); Table A.1's respacing: 200)" };
        var styleSteps = new Option<int?>("--style-steps") { Description = "styled: the styling's reverse schedule, the model's respaced to this many steps (the paper: 200; default min(20, the model's diffusion steps))" };
        var styleSkip = new Option<int?>("--style-skip") { Description = "styled: steps of that schedule skipped, i.e. how far the inpainted image is noised before the guided steps (the paper: 80 of 200; default 40% of --style-steps)" };
        var repaintSteps = new Option<int?>("--repaint-steps") { Description = "repaint: RePaint's T, the model's schedule respaced to this many steps (RePaint: 250; default min(100, the model's diffusion steps))" };
        var jumpLength = new Option<int>("--jump-length") { Description = "repaint: jump length (Table A.2: 10)", DefaultValueFactory = _ => 10 };
        var jumps = new Option<int>("--jump-resamplings") { Description = "repaint: jump resamplings, jump_n_sample (Table A.2: 5)", DefaultValueFactory = _ => 5 };
        var dilation = new Option<int?>("--dilation") { Description = "repaint: mask dilation radius in px (paper: 20 px at 256 px; default: that fraction of --size)" };
        var featureSize = new Option<int>("--feature-size") { Description = "side of the ResNet-18's input for clustering and quality.json (224: its training size)", DefaultValueFactory = _ => 224 };
        var pairs = new Option<int>("--pairs") { Description = "image pairs averaged for MS-SSIM per set in quality.json", DefaultValueFactory = _ => 500 };
        var seed = new Option<int>("--seed") { Description = "seed of every random choice (clusters, weights, batches, sampling noise)", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var checkpoints = new Option<string?>("--checkpoints") { Description = "resume checkpoints of the diffusion training (one subfolder per cluster); running the same command again continues" };
        var saveModel = new Option<string?>("--save-model") { Description = "write the fitted clustering stage and diffusion model(s) to this .zip" };
        var model = new Option<string?>("--model") { Description = "synthesize with this .zip (written by --save-model; for repaint also 'medseg generate'/'medseg dasp' models) instead of training" };
        var output = new Option<string>("--out") { Description = "output folder (images/, masks/, grid.png, quality.json)", Required = true };
        var cmd = new Command("synthesize", "paper 004's synthetic pairs: joint image + mask diffusion (per cluster or on all data), RePaint inpainting of real images, styling")
        {
            data, method, perImage, clusters, noClusters, size, epochs, trainSteps, batch, lr, width, steps, sampleSteps, repaintSteps, styleSteps, styleSkip, jumpLength, jumps, dilation,
            featureSize, pairs, seed, device, checkpoints, saveModel, model, output,
        };
        cmd.SetAction((parse, ct) => console.Invoke(() =>
        {
            var s = new Settings
            {
                Data = parse.GetRequiredValue(data), Method = parse.GetRequiredValue(method), PerImage = parse.GetValue(perImage),
                Clusters = parse.GetValue(noClusters) ? null : parse.GetValue(clusters) ?? 20, Size = parse.GetValue(size),
                Epochs = parse.GetValue(epochs), TrainSteps = parse.GetValue(trainSteps), Batch = parse.GetValue(batch), LearningRate = parse.GetValue(lr), Width = parse.GetValue(width),
                DiffusionSteps = parse.GetValue(steps), SampleSteps = parse.GetValue(sampleSteps) ?? Math.Min(50, parse.GetValue(steps)), RePaintSteps = parse.GetValue(repaintSteps),
                StyleSteps = parse.GetValue(styleSteps), StyleSkip = parse.GetValue(styleSkip), JumpLength = parse.GetValue(jumpLength), JumpResamplings = parse.GetValue(jumps), Dilation = parse.GetValue(dilation),
                FeatureSize = parse.GetValue(featureSize), MsSsimPairs = parse.GetValue(pairs), Seed = parse.GetValue(seed),
                Checkpoints = parse.GetValue(checkpoints), SaveModel = parse.GetValue(saveModel), Model = parse.GetValue(model),
                Output = parse.GetRequiredValue(output),
            };
            if (parse.GetValue(noClusters) && parse.GetValue(clusters) is not null)
                throw new ArgumentException("use either --clusters N (one model per cluster) or --no-clusters (one model), not both");
            s.Validate();
            var ml = MLNetRun.CreateContext(console, s.Seed, parse.GetValue(device)!, ct);
            return Run(ml, console, s, ct);
        }, ct));
        return cmd;
    }

    /// <summary>The options of one run.</summary>
    internal sealed class Settings
    {
        public string Data { get; set; } = "";
        public string Method { get; set; } = "joint";
        public int PerImage { get; set; } = 3;
        public int? Clusters { get; set; }
        public int? Size { get; set; }
        public int Epochs { get; set; } = 20;
        public int? TrainSteps { get; set; }
        public int Batch { get; set; } = 8;
        public double LearningRate { get; set; } = 1e-4;
        public int Width { get; set; } = 32;
        public int DiffusionSteps { get; set; } = 1000;
        public int SampleSteps { get; set; } = 50;
        public int? RePaintSteps { get; set; }
        public int? StyleSteps { get; set; }
        public int? StyleSkip { get; set; }
        public int JumpLength { get; set; } = 10;
        public int JumpResamplings { get; set; } = 5;
        public int? Dilation { get; set; }
        public int FeatureSize { get; set; } = 224;
        public int MsSsimPairs { get; set; } = 500;
        public int Seed { get; set; }
        public string? Checkpoints { get; set; }
        public string? SaveModel { get; set; }
        public string? Model { get; set; }
        public string Output { get; set; } = "";

        public bool Inpaints => Method is "repaint" or "styled";

        /// <summary>Checks what can be checked without reading anything; errors name the option.</summary>
        public void Validate()
        {
            if (Array.IndexOf(Methods, Method) < 0) throw new ArgumentException($"unknown --method '{Method}' (use {string.Join(", ", Methods)})");
            if (StyleSteps is < 2) throw new ArgumentOutOfRangeException("--style-steps", StyleSteps, "--style-steps must be at least 2");
            if (StyleSkip is < 0) throw new ArgumentOutOfRangeException("--style-skip", StyleSkip, "--style-skip must be ≥ 0");
            if (PerImage < 1) throw new ArgumentOutOfRangeException("--per-image", PerImage, "--per-image must be at least 1");
            if (Clusters is < 1) throw new ArgumentOutOfRangeException("--clusters", Clusters, "--clusters must be at least 1");
            if (Model is not null && SaveModel is not null) throw new ArgumentException("use either --model (load a model) or --save-model (train and save one), not both");
            if (Model is not null && Checkpoints is not null) throw new ArgumentException("--checkpoints is a training option; with --model nothing is trained");
            if (Checkpoints is "") throw new ArgumentException("--checkpoints must name a folder");
            if (Size is int n && (n < 16 || n % 4 != 0)) throw new ArgumentOutOfRangeException("--size", n, "--size must be a multiple of 4 and at least 16");
            if (Epochs < 1) throw new ArgumentOutOfRangeException("--epochs", Epochs, "--epochs must be at least 1");
            if (TrainSteps is < 1) throw new ArgumentOutOfRangeException("--train-steps", TrainSteps, "--train-steps must be at least 1");
            if (Batch < 1) throw new ArgumentOutOfRangeException("--batch", Batch, "--batch must be at least 1");
            if (!(LearningRate > 0 && double.IsFinite(LearningRate))) throw new ArgumentOutOfRangeException("--lr", LearningRate, "--lr must be a positive number");
            if (Width < 8 || Width % 8 != 0) throw new ArgumentOutOfRangeException("--width", Width, "--width must be a multiple of 8 (the U-Net's 8 GroupNorm groups)");
            if (DiffusionSteps < 2) throw new ArgumentOutOfRangeException("--diffusion-steps", DiffusionSteps, "--diffusion-steps must be at least 2");
            if (SampleSteps < 1 || SampleSteps > DiffusionSteps)
                throw new ArgumentOutOfRangeException("--sample-steps", SampleSteps, $"--sample-steps must be in 1..--diffusion-steps ({DiffusionSteps})");
            if (RePaintSteps is < 1) throw new ArgumentOutOfRangeException("--repaint-steps", RePaintSteps, "--repaint-steps must be at least 1");
            if (JumpLength < 1) throw new ArgumentOutOfRangeException("--jump-length", JumpLength, "--jump-length must be at least 1");
            if (JumpResamplings < 1) throw new ArgumentOutOfRangeException("--jump-resamplings", JumpResamplings, "--jump-resamplings must be at least 1");
            if (Dilation is < 0) throw new ArgumentOutOfRangeException("--dilation", Dilation, "--dilation must be ≥ 0");
            if (FeatureSize < 32) throw new ArgumentOutOfRangeException("--feature-size", FeatureSize, "--feature-size must be at least 32");
            if (MsSsimPairs < 1) throw new ArgumentOutOfRangeException("--pairs", MsSsimPairs, "--pairs must be at least 1");
        }
    }

    /// <summary>The fitted (or loaded) models of a run: the clustering stage (or null) and the diffusion model.</summary>
    private sealed record Models(ClusterImagesTransformer? Clusterer, StageTransformer Diffusion);

    private static int Run(MLContext ml, CliConsole console, Settings s, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var pairsView = MLNetRun.LoadPairs(ml, s.Data);
        long count = MLNetRun.CountRows(pairsView);
        if (count == 0) throw new InvalidDataException($"the data folder '{s.Data}' holds no image/mask pairs (images/ and masks/ matched by file stem)");
        if (count < 2) throw new InvalidDataException($"the data folder '{s.Data}' holds {count} pair; quality.json (a covariance, pairwise MS-SSIM) needs at least 2 real images");

        ITransformer? loaded = null;
        ClusterImagesTransformer? trainedClusterer = null;
        JointDiffusionTransformer? trainedJoint = null;
        try
        {
            Models models;
            int n;
            if (s.Model is { } path)
            {
                loaded = MLNetRun.LoadModel(ml, path, out _);
                models = FindModels(loaded, path, s.Method);
                n = ModelSize(models.Diffusion);
                if (s.Size is int given && given != n)
                    throw new ArgumentException($"--size {given} differs from the model's {n} px ('{path}'); leave out --size with --model");
                console.Err.WriteLine($"loaded {Describe(models)} from {path}");
            }
            else
            {
                if (s.Clusters is int k && k > count)
                    throw new ArgumentOutOfRangeException("--clusters", k,
                        $"--clusters {k} is more than the {count} images in '{s.Data}'; use at most {count} clusters, or --no-clusters");
                n = s.Size ?? 64;
                models = default!;
            }

            var bar = MLNetRun.AttachProgressBar(ml, console);
            var real = MLNetRun.LoadImages(ml, pairsView, n, n).Append(MLNetRun.LoadMasks(ml, n, n)).Append(MLNetRun.SelectIdImageMask(ml)).Fit(pairsView).Transform(pairsView);
            // The real pairs once in memory as float tensors (Id, Image [3,n,n], Mask [1,n,n]): every stage below reads them.
            var realTensors = MLNetData.ToMLNet(ml, MLNetData.AsLibraryView(real), [MLNetRun.Id, MLNetRun.Image, MLNetRun.Mask], ct);

            if (s.Model is null)
            {
                if (s.Clusters is int k)
                {
                    console.Err.WriteLine($"clustering {count} pairs into {k} clusters (ResNet-18 features of image and mask at {s.FeatureSize} px, KMeans)");
                    trainedClusterer = ml.MedSeg().Transforms.ClusterImages(new ClusterImagesOptions
                    {
                        OutputColumnName = Cluster, ImageColumnName = MLNetRun.Image, MaskColumnName = MLNetRun.Mask, NumberOfClusters = k,
                        FeatureInputSize = s.FeatureSize,
                    }).Fit(realTensors);
                    console.Err.WriteLine($"cluster sizes: {string.Join(", ", trainedClusterer.ClusterSizes)}");
                }
                var train = WithClusters(ml, realTensors, trainedClusterer, ct);
                trainedJoint = TrainJoint(ml, console, s, n, train, trainedClusterer is not null);
                bar.Complete();
                models = new Models(trainedClusterer, trainedJoint);
                if (s.SaveModel is { } save)
                {
                    var chain = trainedClusterer is null ? new TransformerChain<ITransformer>(trainedJoint) : new TransformerChain<ITransformer>(trainedClusterer, trainedJoint);
                    ml.MedSeg().SaveModel(chain, realTensors.Schema, save);
                    console.Err.WriteLine($"model written to {save}");
                }
            }

            var input = WithClusters(ml, realTensors, models.Clusterer, ct);
            string outDir = s.Output, imageDir = Path.Combine(outDir, "images"), maskDir = Path.Combine(outDir, "masks");
            Directory.CreateDirectory(imageDir);
            Directory.CreateDirectory(maskDir);
            int written = s.Inpaints
                ? WriteRePaint(ml, console, s, models.Diffusion, input, n, outDir, ct)
                : WriteJoint(console, s, (JointDiffusionTransformer)models.Diffusion, input, outDir, ct);

            var quality = Quality(ml, s, real, imageDir, n, written, models);
            string qualityPath = Path.Combine(outDir, "quality.json");
            EvaluateCommand.WriteAtomic(qualityPath, quality.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"synthesized {written} pairs ({s.Method}, {s.PerImage} per real image, {n}x{n}) in {clock.Elapsed.TotalSeconds:F0} s: {imageDir}, {maskDir}, {Path.Combine(outDir, "grid.png")}"));
            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Fréchet ResNet-18 distance {(double)quality["frechet_resnet18"]!:F4}, MS-SSIM {(double)quality["ms_ssim"]!:F4} (real {(double)quality["ms_ssim_real"]!:F4}) → {qualityPath}"));
            return 0;
        }
        finally
        {
            trainedJoint?.Dispose();
            trainedClusterer?.Dispose();
            (loaded as IDisposable)?.Dispose();
        }
    }

    /// <summary>The real tensors with the cluster column added (in memory), or as they are without a clusterer.</summary>
    private static IDataView WithClusters(MLContext ml, IDataView realTensors, ClusterImagesTransformer? clusterer, CancellationToken ct) =>
        clusterer is null ? realTensors
            : MLNetData.ToMLNet(ml, MLNetData.AsLibraryView(clusterer.Transform(realTensors)), [MLNetRun.Id, MLNetRun.Image, MLNetRun.Mask, clusterer.Options.OutputColumnName], ct);

    /// <summary>Trains the joint image + mask diffusion model(s) at n px (one per cluster when <paramref name="perCluster"/>).</summary>
    private static JointDiffusionTransformer TrainJoint(MLContext ml, CliConsole console, Settings s, int n, IDataView train, bool perCluster)
    {
        var o = new JointDiffusionOptions
        {
            ImageColumn = MLNetRun.Image, MaskColumn = MLNetRun.Mask, ClusterColumnName = perCluster ? Cluster : null, Epochs = s.Epochs, TrainingSteps = s.TrainSteps, BatchSize = s.Batch,
            LearningRate = s.LearningRate, TimeSteps = s.DiffusionSteps, SampleSteps = s.SampleSteps, SamplesPerRow = s.PerImage, CheckpointFolder = s.Checkpoints,
            EpochCompleted = r => console.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"joint diffusion{(r.Cluster is null ? "" : $" [cluster {r.Cluster}]")} epoch {r.Epoch}: loss {r.Loss:F4} ({r.Seconds:F1} s)")),
        };
        o.Network.BaseChannels = s.Width;
        o.Network.ImageSize = n;
        o.Network.AttentionResolutions = [n / 4];
        console.Err.WriteLine($"training the joint image + mask diffusion model{(perCluster ? " of each cluster" : " on all pairs")} at {n}x{n}, {(s.TrainSteps is int ts ? $"{ts} steps each" : $"{s.Epochs} epochs")}");
        if (s.Checkpoints is { } ck) console.Err.WriteLine($"checkpoints: {ck} (a run resumes after the last finished epoch)");
        return ml.MedSeg().Generation.JointDiffusion(o).Fit(train);
    }

    /// <summary>
    /// joint: for real row r (cluster c) and sample j &lt; --per-image, the pair the model of c draws with the noise of
    /// (r, j) — what the model's Transform gives as output row r·k + j. Writes them as ID_J.png and the grid.
    /// </summary>
    private static int WriteJoint(CliConsole console, Settings s, JointDiffusionTransformer joint, IDataView input, string outDir, CancellationToken ct)
    {
        var rows = RealRows(input, joint.Options.ClusterColumnName);
        int k = s.PerImage, total = rows.Count * k, done = 0;
        var grid = new GridWriter();
        try
        {
            // Rows of one cluster are sampled together, a few real images at a time.
            foreach (var group in rows.Select((r, i) => (r.Id, r.Cluster, Row: (long)i)).GroupBy(r => r.Cluster))
                foreach (var chunk in group.Chunk(Math.Max(1, 8 / k)))
                {
                    ct.ThrowIfCancellationRequested();
                    var ids = chunk.SelectMany(r => Enumerable.Range(0, k).Select(j => (r.Row, j))).ToArray();
                    using var scope = torch.NewDisposeScope();
                    var (images, masks) = JointDiffusionTransformer.Split(joint.SampleModelSpace(group.Key, ids));
                    images = images.cpu();
                    masks = masks.cpu();
                    for (int t = 0; t < ids.Length; t++)
                    {
                        string name = $"{rows[(int)ids[t].Row].Id}_{ids[t].j}";
                        Write(outDir, name, images[t], masks[t], grid);
                    }
                    done += ids.Length;
                    console.Err.WriteLine($"synthesized {done}/{total}");
                }
            grid.Write(Path.Combine(outDir, "grid.png"));
            return done;
        }
        finally
        {
            grid.Dispose();
        }
    }

    /// <summary>repaint (and styled): RePaint every real image --per-image times under its dilated mask; the pair's mask is the original.</summary>
    private static int WriteRePaint(MLContext ml, CliConsole console, Settings s, StageTransformer diffusion, IDataView input, int n, string outDir, CancellationToken ct)
    {
        int dilation = s.Dilation ?? Math.Max(1, (int)Math.Round(20.0 * n / 256));
        int timeSteps = diffusion is JointDiffusionTransformer j ? j.Options.TimeSteps : ((ImageDiffusionTransformer)diffusion).Options.TimeSteps;
        int repaintSteps = s.RePaintSteps ?? Math.Min(100, timeSteps);
        if (repaintSteps > timeSteps)
            throw new ArgumentOutOfRangeException("--repaint-steps", repaintSteps, $"--repaint-steps ({repaintSteps}) must not exceed the model's diffusion steps ({timeSteps})");
        var options = new RePaintOptions
        {
            ImageColumn = MLNetRun.Image, MaskColumn = MLNetRun.Mask, OutputColumn = Inpainted, SamplesPerImage = s.PerImage, DilationPixels = dilation,
            SampleSteps = repaintSteps, JumpLength = s.JumpLength, JumpResamplings = s.JumpResamplings,
        };
        console.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"inpainting each real image {s.PerImage} times (RePaint: T = {repaintSteps}, jump length {s.JumpLength}, {s.JumpResamplings} resamplings; mask dilated by {dilation} px)"));
        using var repaint = ml.MedSeg().Generation.RePaint(diffusion, options).Fit(input);
        IDataView output = repaint.Transform(input);
        string imageColumn = Inpainted;
        StyleTransformer? styler = null;
        if (s.Method == "styled")
        {
            // Paper 004 step 4 (Appendix A.1.2): each inpainted image is styled towards its original (Table A.3's weights).
            int styleSteps = s.StyleSteps ?? Math.Min(20, timeSteps);
            if (styleSteps > timeSteps)
                throw new ArgumentOutOfRangeException("--style-steps", styleSteps, $"--style-steps ({styleSteps}) must not exceed the model's diffusion steps ({timeSteps})");
            int skip = s.StyleSkip ?? (int)Math.Round(0.4 * styleSteps);
            if (skip >= styleSteps) throw new ArgumentOutOfRangeException("--style-skip", skip, $"--style-skip must be below --style-steps ({styleSteps})");
            var so = new StyleOptions
            {
                SourceColumn = Inpainted, TargetColumn = MLNetRun.Image, MaskColumn = MLNetRun.Mask, OutputColumn = Styled,
                SampleSteps = styleSteps, SkipSteps = skip,
            };
            console.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"styling each inpainted image towards its original ({styleSteps} steps, {skip} skipped; Table A.3's loss weights)"));
            styler = ml.MedSeg().Generation.Style(diffusion, so).Fit(output);
            output = styler.Transform(output);
            imageColumn = Styled;
        }
        using var ownedStyler = styler;
        int k = s.PerImage, done = 0;
        long total = MLNetRun.CountRows(input) * k;
        var view = MLNetData.AsLibraryView(output);
        var grid = new GridWriter();
        try
        {
            var sc = view.Schema;
            using var cur = view.GetRowCursor([sc[MLNetRun.Id], sc[MLNetRun.Mask], sc[imageColumn]]);
            long position = 0;
            while (cur.MoveNext())
            {
                ct.ThrowIfCancellationRequested();
                using var scope = torch.NewDisposeScope();
                string name = $"{cur.GetText(MLNetRun.Id)}_{position % k}";
                Write(outDir, name, cur.GetTensor(imageColumn), cur.GetTensor(MLNetRun.Mask), grid);
                position++;
                done++;
                if (done % 8 == 0 || done == total) console.Err.WriteLine($"synthesized {done}/{total}");
            }
            grid.Write(Path.Combine(outDir, "grid.png"));
            return done;
        }
        finally
        {
            grid.Dispose();
        }
    }

    /// <summary>Writes one pair: images/NAME.png and masks/NAME.png (0/255); keeps it for the grid.</summary>
    private static void Write(string outDir, string name, torch.Tensor image, torch.Tensor mask, GridWriter grid)
    {
        var binary = mask.ge(S(0.5)).to(torch.ScalarType.Float32);
        ImageIO.WritePng(Path.Combine(outDir, "masks", name + ".png"), binary);
        ImageIO.WritePng(Path.Combine(outDir, "images", name + ".png"), image);
        grid.Add(binary, image);
    }

    /// <summary>The first 16 pairs (mask | image), tiled 4 per row into grid.png.</summary>
    private sealed class GridWriter : IDisposable
    {
        private readonly List<torch.Tensor> _tiles = [];

        public void Add(torch.Tensor mask, torch.Tensor image)
        {
            if (_tiles.Count < 16) _tiles.Add(SampleGrid.Pairs(mask.unsqueeze(0), image.unsqueeze(0)).DetachFromDisposeScope());
        }

        public void Write(string path)
        {
            if (_tiles.Count == 0) return;
            using var scope = torch.NewDisposeScope();
            SampleGrid.Write(path, torch.cat(_tiles.ToArray(), 0), Math.Min(4, _tiles.Count));
        }

        public void Dispose()
        {
            foreach (var t in _tiles) t.Dispose();
        }
    }

    /// <summary>The ids (and cluster keys) of the real rows, in order.</summary>
    private static List<(string Id, string? Cluster)> RealRows(IDataView input, string? clusterColumn)
    {
        var view = MLNetData.AsLibraryView(input);
        var cols = clusterColumn is null ? new[] { view.Schema[MLNetRun.Id] } : [view.Schema[MLNetRun.Id], view.Schema[clusterColumn]];
        var rows = new List<(string, string?)>();
        using var cur = view.GetRowCursor(cols);
        while (cur.MoveNext())
            rows.Add((cur.GetText(MLNetRun.Id), clusterColumn is null ? null : ClusterKeys.Key(cur.GetValue(view.Schema[clusterColumn]), clusterColumn)));
        return rows;
    }

    /// <summary>
    /// quality.json: the written images (read back from the PNG files, as <c>medseg quality</c> reads them) against the
    /// real --data images at n px, by <c>ml.MedSeg().CreateImageQualityEvaluator</c>; with the run's settings and counts.
    /// </summary>
    private static JsonObject Quality(MLContext ml, Settings s, IDataView real, string imageDir, int n, int written, Models models)
    {
        var files = Directory.EnumerateFiles(imageDir, "*.png").Order(StringComparer.Ordinal)
            .Select(f => new ImageFile { ImagePath = Path.GetFullPath(f) }).ToList();
        var generated = ml.Transforms.LoadImages(MLNetRun.Image, null, MLNetRun.ImagePath).Fit(ml.Data.LoadFromEnumerable(files)).Transform(ml.Data.LoadFromEnumerable(files));
        var options = new ImageQualityOptions { ImageSize = n, FeatureInputSize = s.FeatureSize, MsSsimPairs = s.MsSsimPairs };
        using var evaluator = ml.MedSeg().CreateImageQualityEvaluator(real, MLNetRun.Image, options);
        var result = evaluator.Evaluate(generated, MLNetRun.Image);
        var json = JsonNode.Parse(result.ToJson())!.AsObject();
        json["method"] = s.Method;
        json["per_image"] = s.PerImage;
        json["pairs_written"] = written;
        json["clusters"] = models.Clusterer?.NumberOfClusters is int k ? k : null;
        json["model"] = Describe(models);
        json["size"] = n;
        json["seed"] = s.Seed;
        json["real"] = Path.GetFullPath(s.Data);
        json["generated"] = Path.GetFullPath(s.Output);
        return json;
    }

    private sealed class ImageFile
    {
        public string ImagePath { get; set; } = "";
    }

    private static string Describe(Models m) => m.Diffusion switch
    {
        JointDiffusionTransformer j when j.Clusters.Count > 0 => $"joint diffusion, one model per cluster ({j.Clusters.Count} models)",
        JointDiffusionTransformer => "joint diffusion, one model on all data",
        _ => "mask-conditioned image diffusion",
    };

    /// <summary>
    /// The clustering stage and diffusion model of a loaded file: a JointDiffusion model (after a ClusterImages stage when
    /// it has one model per cluster) — or, for repaint, a mask-conditioned ImageDiffusion model ('medseg generate', 'medseg
    /// dasp'). Anything else is an error naming the file and its stages.
    /// </summary>
    private static Models FindModels(ITransformer loaded, string path, string method)
    {
        var stages = MLNetRun.Stages(loaded);
        string list = string.Join(", ", stages.Select(t => t.GetType().Name));
        var clusterer = stages.OfType<ClusterImagesTransformer>().LastOrDefault();
        StageTransformer? diffusion = stages.OfType<JointDiffusionTransformer>().LastOrDefault();
        if (diffusion is null && method != "joint")
            diffusion = (StageTransformer?)stages.OfType<ImageDiffusionTransformer>().LastOrDefault() ?? stages.OfType<Dasp.DaspTransformer>().LastOrDefault()?.ImageDiffusion;
        if (diffusion is null)
            throw new InvalidDataException(method == "joint"
                ? $"model '{path}' holds no joint image + mask diffusion model (its stages: {list}); --method joint needs one written by 'medseg synthesize --save-model'"
                : $"model '{path}' holds no joint diffusion or image diffusion model (its stages: {list})");
        if (diffusion is JointDiffusionTransformer j && j.Options.ClusterColumnName is { } cc)
        {
            if (clusterer is null)
                throw new InvalidDataException($"model '{path}' has one diffusion model per cluster but no ClusterImages stage to assign the real images to clusters (its stages: {list})");
            if (clusterer.Options.OutputColumnName != cc)
                throw new InvalidDataException($"model '{path}': the clustering stage writes '{clusterer.Options.OutputColumnName}' but the diffusion models are keyed by '{cc}'");
        }
        else clusterer = null;
        return new Models(clusterer, diffusion);
    }

    /// <summary>The image side a diffusion model was trained at.</summary>
    private static int ModelSize(StageTransformer diffusion) => diffusion switch
    {
        JointDiffusionTransformer j => j.Options.Height,
        ImageDiffusionTransformer i => i.Network.Options.ImageSize,
        _ => throw new InvalidOperationException("unreachable"),
    };
}
