using MLNetMedSeg.Augmentation;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Dasp;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using static MLNetMedSeg.Core.Scalars;
using ITransformer = Microsoft.ML.ITransformer;
using LibDataView = MLNetMedSeg.Data.IDataView;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg attack --model SEG.zip --data DIR --method fgsm|ifgsm|pgd|diffpgd|dasp [--eps E] [--steps K]
/// [--step-size G] [--generator GEN.zip] --out OUTDIR</c>: attacks the binary segmenter of an ML.NET model file
/// (<c>LoadImages → ResizeImages → segmenter</c>, as <c>medseg train</c> and <c>medseg dasp</c> write) on DIR/images +
/// DIR/masks, loaded by the model's own image stages and masks at that size, and writes the attacked pairs (OUTDIR/images/STEM.png, OUTDIR/masks/STEM.png as 0/255)
/// and OUTDIR/attack.json with the model's clean and attacked mIoU / mDice (per-image means, the papers' convention).
/// Amounts are in [0,1] pixel units and may be written as fractions ("16/255"). diffpgd and dasp need --generator, an
/// ML.NET model file holding a stage that implements <see cref="ISdEditor"/> (the conditional image diffusion stage:
/// <c>medseg generate --save-model</c> and <c>medseg dasp</c> write one).
/// </summary>
internal static class AttackCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Option<string>("--model") { Description = "a segmentation model file written by 'medseg train'", Required = true };
        var data = new Option<string>("--data") { Description = "folder with images/ and masks/ (matched by file stem) to attack", Required = true };
        var method = new Option<string>("--method") { Description = "attack: " + string.Join(", ", AdversarialAttackOptions.PresetNames), Required = true };
        method.AcceptOnlyFromAmong([.. AdversarialAttackOptions.PresetNames]);
        var eps = new Option<string?>("--eps") { Description = "ε in [0,1] units, e.g. 0.1 or 16/255: the FGSM step, or the PGD L∞ ball (default: the method's preset)" };
        var steps = new Option<int?>("--steps") { Description = "PGD / Diff-PGD steps K (default: the preset's, 10)" };
        var stepSize = new Option<string?>("--step-size") { Description = "PGD / Diff-PGD step γ in [0,1] units, e.g. 1/255 (default: the preset's)" };
        var generator = new Option<string?>("--generator") { Description = "model file with the image diffusion stage used for SDEdit (required by diffpgd and dasp)" };
        var depth = new Option<int?>("--sdedit-depth") { Description = "SDEdit depth T^s (default 3, DASP)" };
        var respacing = new Option<int?>("--sdedit-steps") { Description = "steps the diffusion schedule is respaced to for SDEdit (default 50)" };
        var gradient = new Option<string?>("--diffpgd-gradient")
        {
            Description = "Diff-PGD's gradient: full (through SDEdit, DASP Eq. 9 = Diff-PGD v1; default) or detached (at SDEdit's output, Diff-PGD v2, no backward pass through the denoiser)",
        };
        var batch = new Option<int>("--batch") { Description = "images attacked at once", DefaultValueFactory = _ => 8 };
        var seed = new Option<int>("--seed") { Description = "seed of the random starts and SDEdit noise", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var output = new Option<string>("--out") { Description = "folder for images/, masks/ and attack.json", Required = true };
        var cmd = new Command("attack", "attack a segmentation model (FGSM, Inverse FGSM, PGD, Diff-PGD, DASP) and write the attacked pairs and its clean vs attacked scores")
        {
            model, data, method, eps, steps, stepSize, generator, depth, respacing, gradient, batch, seed, device, output,
        };
        cmd.SetAction((parse, ct) => console.Invoke(() =>
        {
            var ml = MLNetRun.CreateContext(console, parse.GetValue(seed), parse.GetValue(device)!, ct);
            string name = parse.GetRequiredValue(method);
            var options = AdversarialAttackOptions.Preset(name);
            if (parse.GetValue(eps) is { } e) options.Epsilon = ParseAmount(e, "--eps");
            if (parse.GetValue(steps) is int k) options.Steps = k;
            if (parse.GetValue(stepSize) is { } g) options.StepSize = ParseAmount(g, "--step-size");
            if (parse.GetValue(depth) is int d) options.SdEditDepth = d;
            if (parse.GetValue(respacing) is int r) options.SdEditRespacing = r;
            if (parse.GetValue(gradient) is { } gf) options.Gradient = ParseGradient(gf);
            options.BatchSize = parse.GetValue(batch);
            options.Validate();
            string? generatorPath = parse.GetValue(generator);
            if (options.NeedsSdEditor && generatorPath is null)
                throw new ArgumentException($"--method {name} refines every step with SDEdit: give --generator, a model file with the image diffusion stage");

            string modelPath = parse.GetRequiredValue(model);
            var loaded = MLNetRun.LoadModel(ml, modelPath, out _);
            ITransformer? generatorModel = null;
            try
            {
                var (segmenter, imageStages) = MLNetRun.Segmenter(loaded, modelPath, "attack");
                if (!segmenter.IsBinary)
                    throw new ArgumentException($"model '{modelPath}' has a {segmenter.Classes}-class head; 'attack' reads binary masks and needs a binary segmenter");
                ISdEditor? sdEditor = null;
                if (generatorPath is not null)
                {
                    generatorModel = MLNetRun.LoadModel(ml, generatorPath, out _);
                    sdEditor = FindSdEditor(generatorModel, generatorPath);
                }
                // The pairs as the model sees them: its own image stages (LoadImages, ResizeImages), masks at that size.
                var images = imageStages.Transform(MLNetRun.LoadPairs(ml, parse.GetRequiredValue(data)));
                var (h, w) = MLNetRun.ImageSize(images.Schema, MLNetRun.Image)
                    ?? throw new ArgumentException($"model '{modelPath}' does not load images at one size before its segmenter (LoadImages and ResizeImages); 'attack' needs that size");
                using var pairs = MLNetRun.Cache(MLNetRun.LoadMasks(ml, h, w).Append(MLNetRun.SelectIdImageMask(ml)).Fit(images).Transform(images), ct);
                var clock = Stopwatch.StartNew();
                using var attacker = new AdversarialAttackEstimator(MLContextBridge.ContextFor(ml, "AdversarialAttack"), segmenter, options, sdEditor).Fit(pairs, ct);
                string outDir = parse.GetRequiredValue(output);
                var (clean, attacked, count) = Write(attacker, segmenter, pairs, outDir, options, ct);
                var report = new Dictionary<string, object?>
                {
                    ["method"] = name,
                    ["model"] = Path.GetFullPath(modelPath),
                    ["generator"] = generatorPath is null ? null : Path.GetFullPath(generatorPath),
                    ["images"] = count,
                    ["size"] = new[] { h, w },
                    ["seed"] = parse.GetValue(seed),
                    ["options"] = options,
                    ["clean"] = Scores(clean),
                    ["attacked"] = Scores(attacked),
                    ["seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 2),
                };
                string json = Path.Combine(outDir, "attack.json");
                EvaluateCommand.WriteAtomic(json, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true }));
                console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name}: clean mIoU {clean.MeanIoU:F4} mDice {clean.MeanDice:F4}; attacked mIoU {attacked.MeanIoU:F4} mDice {attacked.MeanDice:F4}; {count} pairs written to {outDir} ({clock.Elapsed.TotalSeconds:F1} s)"));
                return 0;
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
                (generatorModel as IDisposable)?.Dispose();
            }
        }, ct));
        return cmd;
    }

    private static Dictionary<string, double?> Scores(EvaluationResult r) => new()
    {
        ["mIoU"] = double.IsNaN(r.MeanIoU) ? null : r.MeanIoU,
        ["mDice"] = double.IsNaN(r.MeanDice) ? null : r.MeanDice,
    };

    /// <summary>Writes every attacked pair and scores the segmenter on the clean and the attacked images.</summary>
    private static (EvaluationResult Clean, EvaluationResult Attacked, int Count) Write(AdversarialAttackTransformer attacker, IDifferentiableSegmenter segmenter,
        LibDataView pairs, string outDir, AdversarialAttackOptions o, CancellationToken ct)
    {
        string images = Path.Combine(outDir, "images"), masks = Path.Combine(outDir, "masks");
        Directory.CreateDirectory(images);
        Directory.CreateDirectory(masks);
        var clean = SegmentationEvaluator.Binary(new EvaluationOptions { ComputeHd95 = false });
        var attacked = SegmentationEvaluator.Binary(new EvaluationOptions { ComputeHd95 = false });
        int count = 0;
        var view = attacker.Transform(pairs);
        using var cursor = view.GetRowCursor("Id", o.ImageColumn, o.MaskColumn, o.AttackedImageColumn);
        while (cursor.MoveNext())
        {
            ct.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            string id = cursor.GetText("Id");
            var x = cursor.GetTensor(o.ImageColumn);
            var y = cursor.GetTensor(o.MaskColumn);
            var xa = cursor.GetTensor(o.AttackedImageColumn);
            ImageIO.WritePng(Path.Combine(images, id + ".png"), xa);
            ImageIO.WritePng(Path.Combine(masks, id + ".png"), (y.ge(S(0.5)).to(ScalarType.Byte) * S(255)).cpu());
            var target = y.unsqueeze(0);
            clean.Add(segmenter.PredictProbabilities(x.unsqueeze(0)), target, [id]);
            attacked.Add(segmenter.PredictProbabilities(xa.unsqueeze(0)), target, [id]);
            count++;
        }
        if (count == 0) throw new InvalidOperationException("the data folder has no image/mask pairs");
        return (clean.GetResult(), attacked.GetResult(), count);
    }

    /// <summary>"full" or "detached" (--diffpgd-gradient) → the Diff-PGD gradient form.</summary>
    internal static DiffPgdGradient ParseGradient(string s) => s.Trim().ToLowerInvariant() switch
    {
        "full" => DiffPgdGradient.Full,
        "detached" => DiffPgdGradient.Detached,
        _ => throw new ArgumentException($"--diffpgd-gradient: '{s}' is not one of: full, detached"),
    };

    /// <summary>"0.1" or "16/255" → a value in (0, 1].</summary>
    internal static double ParseAmount(string s, string option)
    {
        static bool Number(string t, out double v) => double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out v);
        var parts = s.Split('/');
        double value = parts.Length switch
        {
            1 when Number(parts[0], out double v) => v,
            2 when Number(parts[0], out double a) && Number(parts[1], out double b) && b != 0 => a / b,
            _ => throw new ArgumentException($"{option} '{s}' is not a number or a fraction like 16/255"),
        };
        if (!(value > 0 && value <= 1)) throw new ArgumentOutOfRangeException(option, value, $"{option} must be in (0, 1] (pixel values are in [0,1]; 16/255 is 16 grey levels)");
        return value;
    }

    /// <summary>The stage of a loaded generator model that implements <see cref="ISdEditor"/> (the model itself or a chain stage).</summary>
    internal static ISdEditor FindSdEditor(ITransformer model, string path)
    {
        var stages = MLNetRun.Stages(model);
        if (stages.OfType<ISdEditor>().FirstOrDefault() is { } found) return found;
        if (stages.OfType<DaspTransformer>().FirstOrDefault() is { } flow) return flow.ImageDiffusion;
        throw new ArgumentException($"--generator '{path}': none of its stages ({string.Join(", ", stages.Select(s => s.GetType().Name))}) implements ISdEditor; give the image diffusion model");
    }
}
