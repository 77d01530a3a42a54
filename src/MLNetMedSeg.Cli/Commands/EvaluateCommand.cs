using MLNetMedSeg.Pipeline;
using System.CommandLine;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using DataViewSchema = Microsoft.ML.DataViewSchema;
using ITransformer = Microsoft.ML.ITransformer;
using LogLevel = MLNetMedSeg.Pipeline.LogLevel;
using MedSegContext = MLNetMedSeg.Pipeline.MedSegContext;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg evaluate --model MODEL.zip --data DIR --out METRICS.json</c> scores a trained ML.NET model on DIR/images +
/// DIR/masks at the model's input size (the model loads and resizes the images; the masks are loaded at its size,
/// nearest-neighbour, binarised); <c>medseg evaluate --pred DIR --gt DIR
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
        cmd.SetAction((parse, ct) => console.Invoke(() =>
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
            EvaluationResult result;
            if (maskMode)
            {
                // Predictions are read as one-channel images in [0,1] (each at its own size) and thresholded by the
                // evaluator; the ground truth goes through the mask loader (thresholded at the same fraction of full scale).
                var ctx = new MedSegContext(seed: 0);
                ctx.Log += (_, e) => { if (e.Level >= LogLevel.Warning) console.Err.WriteLine($"warning: {e.Message}"); };
                var pairs = DataViews.LoadImagesAndMasks(ctx, predDir!, gtDir!,
                    new ImageMaskLoaderOptions { ImageChannels = 1, MaskThreshold = options.Threshold });
                result = DataViewEvaluation.EvaluateBinary(ctx, pairs, "Mask", "Image", options);
            }
            else
            {
                var ml = MLNetRun.CreateContext(console, seed: 0, parse.GetValue(device)!, ct);
                result = EvaluateModel(ml, modelPath!, dataDir!, options);
            }
            WriteResult(console, result, parse.GetRequiredValue(output), parse.GetValue(csv));
            return 0;
        }, ct));
        return cmd;
    }

    /// <summary>
    /// Loads the ML.NET model, adds the ground truth (<c>LoadImageMaskPairs</c> + <c>LoadMasks</c> at the size of the
    /// model's Probability column; the model itself loads and resizes the images) and scores it with
    /// <c>ml.MedSeg().Evaluate</c>.
    /// </summary>
    internal static EvaluationResult EvaluateModel(MLContext ml, string modelPath, string dataDir, EvaluationOptions options)
    {
        var model = MLNetRun.LoadModel(ml, modelPath, out _);
        try
        {
            var pairs = MLNetRun.LoadPairs(ml, dataDir);
            var (h, w) = ProbabilitySize(model, pairs.Schema, modelPath);
            var withMasks = MLNetRun.LoadMasks(ml, h, w).Fit(pairs).Transform(pairs);
            return ml.MedSeg().Evaluate(model.Transform(withMasks), MLNetRun.Mask, MLNetRun.Probability, options);
        }
        finally
        {
            (model as IDisposable)?.Dispose();
        }
    }

    /// <summary>The height and width of a model's Probability column (float [1,H,W]) over <paramref name="input"/>.</summary>
    internal static (int Height, int Width) ProbabilitySize(ITransformer model, DataViewSchema input, string modelPath)
    {
        var schema = model.GetOutputSchema(input);
        if (schema.GetColumnOrNull(MLNetRun.Probability) is not { } column)
            throw new InvalidDataException($"the model '{modelPath}' gives no '{MLNetRun.Probability}' column (it gives: {string.Join(", ", schema.Select(c => c.Name))}); it is not a segmentation model");
        if (column.Type is VectorDataViewType { Dimensions: [1, > 0 and var h, > 0 and var w] })
            return (h, w);
        throw new InvalidDataException($"the model '{modelPath}': its '{MLNetRun.Probability}' column is {column.Type}, not a binary probability map [1,H,W]");
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
