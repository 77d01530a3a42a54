using MLNetMedSeg.Core;
using System.CommandLine;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg evaluate --model MODEL.zip --data DIR --out METRICS.json</c> scores a trained model on DIR/images +
/// DIR/masks at each image's own size (probabilities resized back bilinearly); <c>medseg evaluate --pred DIR --gt DIR
/// --out METRICS.json</c> scores binary masks produced elsewhere against ground truth (matched by file stem; foreground
/// = value ≥ threshold × full scale). Both print the metrics table and write the JSON (mIoU and mDice in the papers'
/// per-image convention, micro and macro scores, per-image rows, the empty-mask policy).
/// </summary>
internal static class EvaluateCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Option<string?>("--model") { Description = "a model file written by 'medseg train' (with --data)" };
        var data = new Option<string?>("--data") { Description = "folder with images/ and masks/ to score the model on (with --model)" };
        var pred = new Option<string?>("--pred") { Description = "folder of predicted binary masks, 0/255 images (with --gt)" };
        var gt = new Option<string?>("--gt") { Description = "folder of ground-truth masks, matched to --pred by file stem (with --pred)" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N (with --model)", DefaultValueFactory = _ => "cpu" };
        var output = new Option<string>("--out") { Description = "where to write the metrics JSON", Required = true };
        var threshold = new Option<double>("--threshold") { Description = "foreground threshold as a fraction of full scale", DefaultValueFactory = _ => 0.5 };
        var policy = new Option<string>("--empty-policy")
        {
            Description = "score when both masks of an image are empty: one (default), zero, or ignore (left out of the means)",
            DefaultValueFactory = _ => "one",
        };
        policy.AcceptOnlyFromAmong("one", "zero", "ignore");
        var csv = new Option<string?>("--csv") { Description = "also write the per-image metrics as CSV here" };
        var cmd = new Command("evaluate", "score a model, or predicted masks, against ground truth: mIoU, mDice, precision, recall, HD95, ...")
        {
            model, data, pred, gt, device, output, threshold, policy, csv,
        };
        cmd.SetAction((parse, ct) => Task.FromResult(console.Guard(() =>
        {
            var options = new EvaluationOptions
            {
                Threshold = parse.GetValue(threshold),
                EmptyMaskPolicy = ParsePolicy(parse.GetValue(policy)!),
            };
            string? modelPath = parse.GetValue(model), dataDir = parse.GetValue(data), predDir = parse.GetValue(pred), gtDir = parse.GetValue(gt);
            bool modelMode = modelPath is not null || dataDir is not null;
            bool maskMode = predDir is not null || gtDir is not null;
            if (modelMode == maskMode || (modelMode && (modelPath is null || dataDir is null)) || (maskMode && (predDir is null || gtDir is null)))
                throw new ArgumentException("give either --model and --data, or --pred and --gt");
            var ctx = new MedSegContext(seed: 0, device: Devices.Parse(parse.GetValue(device)!));
            ctx.Log += (_, e) => { if (e.Level >= LogLevel.Warning) console.Err.WriteLine($"warning: {e.Message}"); };
            EvaluationResult result;
            if (maskMode)
            {
                // Predictions are read as one-channel images in [0,1] and thresholded by the evaluator; the ground truth
                // goes through the mask loader (thresholded at the same fraction of full scale).
                var pairs = ctx.Data.LoadImagesAndMasks(predDir!, gtDir!,
                    new ImageMaskLoaderOptions { ImageChannels = 1, MaskThreshold = options.Threshold });
                result = ctx.Evaluation.EvaluateBinary(pairs, "Mask", "Image", options);
            }
            else result = EvaluateModel(ctx, modelPath!, dataDir!, options, ct);
            WriteResult(console, result, parse.GetRequiredValue(output), parse.GetValue(csv));
            return 0;
        }, ct)));
        return cmd;
    }

    private static EvaluationResult EvaluateModel(MedSegContext ctx, string modelPath, string dataDir, EvaluationOptions options, CancellationToken ct)
    {
        if (!File.Exists(modelPath)) throw new FileNotFoundException($"model file '{modelPath}' does not exist");
        var loaded = ctx.Model.Load(modelPath, out _);
        try
        {
            var data = TrainCommand.Load(ctx, dataDir, new ImageMaskLoaderOptions { ImageChannels = 3 });
            var evaluator = SegmentationEvaluator.Binary(options);
            foreach (var (id, probability, mask) in ModelScoring.ProbabilitiesAtOriginalSize(loaded, data, "Mask", ct))
            {
                using var scope = torch.NewDisposeScope();
                scope.Attach(probability);
                scope.Attach(mask);
                evaluator.Add(probability.unsqueeze(0), mask.unsqueeze(0), [id]);
            }
            return evaluator.GetResult();
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    internal static EmptyMaskPolicy ParsePolicy(string s) => s switch
    {
        "one" => EmptyMaskPolicy.One,
        "zero" => EmptyMaskPolicy.Zero,
        "ignore" => EmptyMaskPolicy.Ignore,
        _ => throw new ArgumentException($"unknown empty-mask policy '{s}' (one, zero, ignore)"),
    };

    internal static void WriteResult(CliConsole console, EvaluationResult result, string jsonPath, string? csvPath)
    {
        WriteAtomic(jsonPath, result.ToJson());
        if (csvPath is not null) WriteAtomic(csvPath, result.ToCsv());
        console.Out.Write(result.ToMarkdown());
        console.Out.WriteLine($"mIoU {result.MeanIoU:F4}  mDice {result.MeanDice:F4}  → {jsonPath}");
    }

    internal static void WriteAtomic(string path, string text)
    {
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + $".{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllText(tmp, text);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
