using System.CommandLine;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg evaluate --pred DIR --gt DIR --out METRICS.json</c>: scores binary masks produced elsewhere against ground
/// truth (matched by file stem; foreground = value ≥ threshold × full scale). Prints the metrics table and writes
/// the JSON (mIoU and mDice in the papers' per-image convention, micro and macro scores, per-image rows, the
/// empty-mask policy).
/// </summary>
internal static class EvaluateCommand
{
    public static Command Create(CliConsole console)
    {
        var pred = new Option<string>("--pred") { Description = "folder of predicted binary masks (0/255 images)", Required = true };
        var gt = new Option<string>("--gt") { Description = "folder of ground-truth masks, matched to --pred by file stem", Required = true };
        var output = new Option<string>("--out") { Description = "where to write the metrics JSON", Required = true };
        var threshold = new Option<double>("--threshold") { Description = "foreground threshold as a fraction of full scale", DefaultValueFactory = _ => 0.5 };
        var policy = new Option<string>("--empty-policy")
        {
            Description = "score when both masks of an image are empty: one (default), zero, or ignore (left out of the means)",
            DefaultValueFactory = _ => "one",
        };
        policy.AcceptOnlyFromAmong("one", "zero", "ignore");
        var csv = new Option<string?>("--csv") { Description = "also write the per-image metrics as CSV here" };
        var cmd = new Command("evaluate", "score predicted masks against ground truth: mIoU, mDice, precision, recall, HD95, ...")
        {
            pred, gt, output, threshold, policy, csv,
        };
        cmd.SetAction(parse => console.Guard(() =>
        {
            var options = new EvaluationOptions
            {
                Threshold = parse.GetValue(threshold),
                EmptyMaskPolicy = ParsePolicy(parse.GetValue(policy)!),
            };
            var ctx = new MedSegContext(seed: 0);
            ctx.Log += (_, e) => { if (e.Level >= LogLevel.Warning) console.Err.WriteLine($"warning: {e.Message}"); };
            // Predictions are read as one-channel images in [0,1] and thresholded by the evaluator; the ground truth
            // goes through the mask loader (thresholded at the same fraction of full scale).
            var data = ctx.Data.LoadImagesAndMasks(parse.GetRequiredValue(pred), parse.GetRequiredValue(gt),
                new ImageMaskLoaderOptions { ImageChannels = 1, MaskThreshold = options.Threshold });
            var result = ctx.Evaluation.EvaluateBinary(data, "Mask", "Image", options);
            WriteResult(console, result, parse.GetRequiredValue(output), parse.GetValue(csv));
            return 0;
        }));
        return cmd;
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
