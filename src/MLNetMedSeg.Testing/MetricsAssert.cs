using System.Globalization;
using Microsoft.VisualStudio.TestTools.UnitTesting;
using MLNetMedSeg.Evaluation;

namespace MLNetMedSeg.Testing;

/// <summary>
/// MSTest assertions on segmentation metrics: <c>MetricsAssert.AtLeast(result, dice: 0.80)</c>. A failure throws
/// <see cref="AssertFailedException"/> whose message lists every failed threshold and the full Markdown metrics
/// table (<see cref="EvaluationResult.ToMarkdown"/>). An undefined (NaN) value fails any threshold on it.
/// </summary>
public static class MetricsAssert
{
    /// <summary>
    /// Asserts each given metric is at least its threshold, under <paramref name="reduction"/> (default the papers'
    /// per-image mean). Thresholds left null are not checked.
    /// </summary>
    public static void AtLeast(EvaluationResult result, double? dice = null, double? iou = null, double? precision = null,
        double? recall = null, double? specificity = null, double? accuracy = null,
        MetricReduction reduction = MetricReduction.PerImageMean, string? message = null)
    {
        Check(result, "AtLeast", atLeast: true, reduction, message,
            (SegmentationMetric.Dice, dice), (SegmentationMetric.IoU, iou), (SegmentationMetric.Precision, precision),
            (SegmentationMetric.Recall, recall), (SegmentationMetric.Specificity, specificity), (SegmentationMetric.Accuracy, accuracy));
    }

    /// <summary>
    /// Asserts each given metric is at most its threshold (typically <paramref name="hd95"/>, in pixels), under
    /// <paramref name="reduction"/> (default per-image mean; HD95 has no micro value). Null thresholds are not checked.
    /// </summary>
    public static void AtMost(EvaluationResult result, double? hd95 = null, double? dice = null, double? iou = null,
        double? precision = null, double? recall = null, double? specificity = null, double? accuracy = null,
        MetricReduction reduction = MetricReduction.PerImageMean, string? message = null)
    {
        Check(result, "AtMost", atLeast: false, reduction, message,
            (SegmentationMetric.Hd95, hd95), (SegmentationMetric.Dice, dice), (SegmentationMetric.IoU, iou),
            (SegmentationMetric.Precision, precision), (SegmentationMetric.Recall, recall),
            (SegmentationMetric.Specificity, specificity), (SegmentationMetric.Accuracy, accuracy));
    }

    private static void Check(EvaluationResult result, string name, bool atLeast, MetricReduction reduction, string? message,
        params (SegmentationMetric Metric, double? Threshold)[] checks)
    {
        ArgumentNullException.ThrowIfNull(result);
        var inv = CultureInfo.InvariantCulture;
        string red = reduction switch
        {
            MetricReduction.PerImageMean => "per-image mean",
            MetricReduction.Micro => "micro",
            MetricReduction.Macro => "macro",
            _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "unknown reduction"),
        };
        var failures = new List<string>();
        foreach (var (metric, threshold) in checks)
        {
            if (threshold is not double th) continue;
            if (double.IsNaN(th)) throw new ArgumentException($"the {EvaluationResult.MetricName(metric)} threshold is NaN", EvaluationResult.MetricName(metric).ToLowerInvariant());
            string mName = EvaluationResult.MetricName(metric);
            if (!result.IsReported(metric))
            {
                failures.Add($"{mName} ({red}) was not computed (EvaluationOptions.ComputeHd95 is off), required {(atLeast ? ">=" : "<=")} {th.ToString("0.####", inv)}");
                continue;
            }
            double v = result.Get(metric, reduction);
            bool ok = !double.IsNaN(v) && (atLeast ? v >= th : v <= th);
            if (!ok)
                failures.Add(double.IsNaN(v)
                    ? $"{mName} ({red}) is undefined (NaN), required {(atLeast ? ">=" : "<=")} {th.ToString("0.####", inv)}"
                    : $"{mName} ({red}) = {v.ToString("0.####", inv)} {(atLeast ? "<" : ">")} {th.ToString("0.####", inv)}");
        }
        if (failures.Count == 0) return;
        throw new AssertFailedException(
            $"MetricsAssert.{name} failed{(message is null ? "" : ": " + message)}\n  " + string.Join("\n  ", failures) +
            "\n\n" + result.ToMarkdown());
    }
}
