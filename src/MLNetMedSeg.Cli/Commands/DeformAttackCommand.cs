using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using MLNetMedSeg.Attacks;
using MLNetMedSeg.Attacks.Networks;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Dasp;
using MLNetMedSeg.Data;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using static MLNetMedSeg.Core.Scalars;
using DataViewSchema = Microsoft.ML.DataViewSchema;
using ITransformer = Microsoft.ML.ITransformer;
using LibDataView = MLNetMedSeg.Data.IDataView;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg deform-attack --model SEG.zip --data DIR --xi X [--epochs N] [--samples K] [--size N] --out OUTDIR</c>:
/// trains the VAE-GAN deformation attacker of paper 002 against the segmenter in SEG.zip (an ML.NET model file; held
/// fixed) on DIR/images (loaded with ML.NET's LoadImages and ResizeImages at --size, default the model's input size),
/// then attacks every image of DIR (or of --eval DIR2) k times and writes OUTDIR/attacked/ (I_DV), deformed-masks/ (the ground truth moved by D),
/// deformation/ (D as a flow colour wheel), intensity/ (V as a blue–white–red map), report.json (Dice before/after
/// per class, success rate at a 30% decrease, perceptibility p) and figure.png (rows of I₀, S_GT, S₀, I_DV, V, D, S_DV
/// as the paper's Fig. 2/3). Masks are binary for a binary segmenter, class-index PNGs (pixel value = class) otherwise.
/// </summary>
internal static class DeformAttackCommand
{
    internal static readonly string[] Variants = ["dv", "d", "v"];

    public static Command Create(CliConsole console)
    {
        var model = new Option<string>("--model") { Description = "a segmentation model written by 'medseg train' (held fixed)", Required = true };
        var data = new Option<string>("--data") { Description = "folder with images/ and masks/ (matched by file stem)", Required = true };
        var eval = new Option<string?>("--eval") { Description = "folder with images/ and masks/ to attack and score (default: --data)" };
        var xi = new Option<double>("--xi") { Description = "ξ, the target masked cross-entropy between S₀ and S_DV (Eq. 4; the paper sweeps 0.5–3)", Required = true };
        var epochs = new Option<int>("--epochs") { Description = "training epochs of the attacker", DefaultValueFactory = _ => 20 };
        var samples = new Option<int>("--samples") { Description = "attacks sampled per image", DefaultValueFactory = _ => 1 };
        var size = new Option<int?>("--size") { Description = "images are resized to size×size (default: the model's resize, else 64)" };
        var variant = new Option<string>("--variant") { Description = "dv: deformation and intensity (default); d: deformation only; v: intensity only", DefaultValueFactory = _ => "dv" };
        variant.AcceptOnlyFromAmong(Variants);
        var lr = new Option<double>("--lr") { Description = "RMSProp learning rate of generator and critic (paper: 1e-4)", DefaultValueFactory = _ => 1e-4 };
        var advWeight = new Option<double>("--adv-weight") { Description = "weight of the generator's adversarial term (Eq. 6: 1)", DefaultValueFactory = _ => 1.0 };
        var criticIterations = new Option<int>("--critic-iterations") { Description = "critic steps per generator step", DefaultValueFactory = _ => 1 };
        var batch = new Option<int>("--batch") { Description = "batch size", DefaultValueFactory = _ => 8 };
        var figureRows = new Option<int>("--figure-rows") { Description = "images shown in figure.png", DefaultValueFactory = _ => 4 };
        var seed = new Option<int>("--seed") { Description = "seed of every random choice", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var output = new Option<string>("--out") { Description = "output folder", Required = true };
        var cmd = new Command("deform-attack", "learn deformation + intensity attacks on a segmenter (VAE-GAN, Chen et al.): attacked images, deformed masks, report")
        {
            model, data, eval, xi, epochs, samples, size, variant, lr, advWeight, criticIterations, batch, figureRows, seed, device, output,
        };
        cmd.SetAction((parse, ct) => console.Invoke(() =>
        {
            var ml = MLNetRun.CreateContext(console, parse.GetValue(seed), parse.GetValue(device)!, ct);
            var bar = MLNetRun.AttachProgressBar(ml, console);
            string modelPath = parse.GetRequiredValue(model);
            var loaded = MLNetRun.LoadModel(ml, modelPath, out var modelInput);
            try
            {
                var stages = MLNetRun.Stages(loaded);
                IDifferentiableSegmenter? segmenter = stages.OfType<IDifferentiableSegmenter>().LastOrDefault() ?? stages.OfType<DaspTransformer>().LastOrDefault()?.Segmenter
                    ?? throw new ArgumentException($"'{modelPath}' holds no segmentation model (its stages: {string.Join(", ", stages.Select(s => s.GetType().Name))})");
                if (segmenter.ImageChannels != 3)
                    throw new ArgumentException($"'{modelPath}': its network takes {segmenter.ImageChannels}-channel images; 'deform-attack' loads RGB images (3 channels)");
                int n = parse.GetValue(size) ?? ModelImageSize(loaded, modelInput) ?? 64;
                if (n < 8) throw new ArgumentOutOfRangeException("--size", n, "--size must be at least 8");
                var o = new DeformationAttackOptions
                {
                    Xi = parse.GetValue(xi),
                    Epochs = parse.GetValue(epochs),
                    Samples = parse.GetValue(samples),
                    BatchSize = parse.GetValue(batch),
                    LearningRate = parse.GetValue(lr),
                    AdversarialWeight = parse.GetValue(advWeight),
                    CriticIterations = parse.GetValue(criticIterations),
                    Generator = new DeformationGeneratorOptions
                    {
                        InChannels = segmenter.ImageChannels,
                        Variant = ParseVariant(parse.GetValue(variant)!),
                    },
                    EpochCompleted = r => console.Err.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"epoch {r.Epoch}: generator {r.GeneratorLoss:F4}, critic {r.CriticLoss:F4}, masked CE {r.CrossEntropy:F4} ({r.Seconds:F1} s)")),
                };
                // Images at n×n (LoadImages, ResizeImages); masks binary for a binary segmenter, else class index = pixel value.
                var classes = segmenter.IsBinary ? null : Enumerable.Range(0, (int)segmenter.Classes).ToDictionary(v => v, v => (long)v);
                var raw = MLNetRun.LoadPairs(ml, parse.GetRequiredValue(data));
                var load = MLNetRun.LoadImages(ml, raw, n, n).Append(MLNetRun.LoadMasks(ml, n, n, classes)).Append(MLNetRun.SelectIdImageMask(ml)).Fit(raw);
                using var images = MLNetRun.Cache(load.Transform(raw), ct);
                using var evalImages = parse.GetValue(eval) is { } evalDir ? MLNetRun.Cache(load.Transform(MLNetRun.LoadPairs(ml, evalDir, "--eval")), ct) : null;
                console.Err.WriteLine($"training the attacker (ξ = {o.Xi.ToString(CultureInfo.InvariantCulture)}, {o.Generator.Variant}) at {n}x{n} on {images.CountRows()} images");
                var clock = Stopwatch.StartNew();
                using var attacker = ml.MedSeg().Augmentation.DeformationAttack(segmenter, o).Fit(images, ct);
                bar.Complete();
                var scored = evalImages ?? images;
                var report = attacker.Evaluate(scored, ct);
                string outDir = Path.GetFullPath(parse.GetRequiredValue(output));
                WriteOutputs(attacker, scored, outDir, parse.GetValue(figureRows), ct);
                EvaluateCommand.WriteAtomic(Path.Combine(outDir, "report.json"), report.ToJson());
                console.Out.WriteLine($"{report} ({clock.Elapsed.TotalSeconds:F0} s); written to {outDir}");
                return 0;
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
            }
        }, ct));
        return cmd;
    }

    private static DeformationAttackVariant ParseVariant(string s) => s switch
    {
        "dv" => DeformationAttackVariant.DeformationAndIntensity,
        "d" => DeformationAttackVariant.DeformationOnly,
        "v" => DeformationAttackVariant.IntensityOnly,
        _ => throw new ArgumentException($"unknown variant '{s}'; choose one of: {string.Join(", ", Variants)}"),
    };

    /// <summary>The size of the Image column the model's own stages make from an ImagePath (null when they make none).</summary>
    private static int? ModelImageSize(ITransformer model, DataViewSchema input)
    {
        try
        {
            return MLNetRun.ImageSize(model.GetOutputSchema(input), MLNetRun.Image) is var (h, _) ? h : null;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException)
        {
            return null;
        }
    }

    /// <summary>Per attack: the attacked image, deformed mask, D and V pictures; and the figure of the first rows.</summary>
    private static void WriteOutputs(DeformationAttackTransformer attacker, LibDataView images, string outDir, int figureRows, CancellationToken ct)
    {
        foreach (var sub in new[] { "attacked", "deformed-masks", "deformation", "intensity" }) Directory.CreateDirectory(Path.Combine(outDir, sub));
        var o = attacker.Options;
        var attacked = attacker.Transform(images);
        var figure = new List<IReadOnlyList<Tensor>>();
        int k = o.Samples;
        long row = 0;
        try
        {
            using var cursor = attacked.GetRowCursor(attacked.Schema);
            while (cursor.MoveNext())
            {
                ct.ThrowIfCancellationRequested();
                using var scope = torch.NewDisposeScope();
                string id = cursor.GetText(ImageMaskDataView.IdColumn);
                string name = k == 1 ? id : $"{id}_s{row % k}";
                var image = cursor.GetTensor(o.ImageColumn);
                var attack = cursor.GetTensor(o.AttackedImageColumn);
                var deformedMask = cursor.GetTensor(o.DeformedMaskColumn);
                var d = cursor.GetTensor(o.DeformationColumn);
                var v = cursor.GetTensor(o.IntensityColumn);
                ImageIO.WritePng(Path.Combine(outDir, "attacked", name + ".png"), attack.clamp(S(0), S(1)));
                ImageIO.WritePng(Path.Combine(outDir, "deformed-masks", name + ".png"), MaskPixels(deformedMask));
                ImageIO.WritePng(Path.Combine(outDir, "deformation", name + ".png"), AttackVisualization.Deformation(d));
                ImageIO.WritePng(Path.Combine(outDir, "intensity", name + ".png"), AttackVisualization.Intensity(v));
                if (figure.Count < figureRows && row % k == 0)
                {
                    var (_, s0) = attacker.Segmenter.Predict(image.unsqueeze(0));
                    var (_, sdv) = attacker.Segmenter.Predict(attack.unsqueeze(0));
                    var tiles = new List<Tensor>
                    {
                        AttackVisualization.Image(image), AttackVisualization.Mask(cursor.GetTensor(o.MaskColumn!)),
                        AttackVisualization.Mask(s0.squeeze(0)), AttackVisualization.Image(attack),
                        AttackVisualization.Intensity(v), AttackVisualization.Deformation(d), AttackVisualization.Mask(sdv.squeeze(0)),
                    };
                    foreach (var t in tiles) t.DetachFromDisposeScope();
                    figure.Add(tiles);
                }
                row++;
            }
            if (figure.Count > 0)
            {
                using var scope = torch.NewDisposeScope();
                ImageIO.WritePng(Path.Combine(outDir, "figure.png"), AttackVisualization.Grid(figure));
            }
        }
        finally
        {
            foreach (var t in figure.SelectMany(r => r)) t.Dispose();
        }
    }

    /// <summary>A mask as written: binary 0/255, or the class index as the pixel value.</summary>
    private static Tensor MaskPixels(Tensor mask) => mask.dim() == 3
        ? mask.ge(S(0.5)).to(ScalarType.Byte).mul(S(255))
        : mask.clamp(S(0), S(255)).to(ScalarType.Byte);
}
