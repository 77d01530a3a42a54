namespace MLNetMedSeg.Evaluation;

/// <summary>Pixel counts of one image (or a sum of images) for one class: true/false positives/negatives.</summary>
public readonly record struct ConfusionCounts(long TruePositive, long FalsePositive, long FalseNegative, long TrueNegative)
{
    /// <summary>All pixels counted.</summary>
    public long Total => TruePositive + FalsePositive + FalseNegative + TrueNegative;

    /// <summary>Ground-truth foreground pixels (tp + fn).</summary>
    public long GroundTruthPositive => TruePositive + FalseNegative;

    /// <summary>Predicted foreground pixels (tp + fp).</summary>
    public long PredictedPositive => TruePositive + FalsePositive;

    /// <summary>Element-wise sum (for micro and per-class reductions).</summary>
    public static ConfusionCounts operator +(ConfusionCounts a, ConfusionCounts b) =>
        new(a.TruePositive + b.TruePositive, a.FalsePositive + b.FalsePositive, a.FalseNegative + b.FalseNegative, a.TrueNegative + b.TrueNegative);

    /// <summary>A metric computed from these counts (not HD95), with <paramref name="policy"/> where its denominator is 0.</summary>
    public double Metric(SegmentationMetric metric, EmptyMaskPolicy policy) => MetricFormulas.Compute(metric, this, policy);

    public override string ToString() => $"tp={TruePositive} fp={FalsePositive} fn={FalseNegative} tn={TrueNegative}";
}

/// <summary>
/// The count-based metric definitions, as segmentation_models_pytorch's <c>metrics/functional.py</c>:
/// IoU = tp/(tp+fp+fn), Dice (F1) = 2tp/(2tp+fp+fn), precision = tp/(tp+fp), recall = tp/(tp+fn),
/// specificity = tn/(tn+fp), accuracy = (tp+tn)/(tp+fp+fn+tn). A zero denominator follows the
/// <see cref="EmptyMaskPolicy"/> (Ignore gives NaN).
/// </summary>
public static class MetricFormulas
{
    /// <summary>The count-based metrics, in table order (HD95 is not count-based).</summary>
    public static IReadOnlyList<SegmentationMetric> CountMetrics { get; } =
        [SegmentationMetric.IoU, SegmentationMetric.Dice, SegmentationMetric.Precision, SegmentationMetric.Recall, SegmentationMetric.Specificity, SegmentationMetric.Accuracy];

    /// <summary>Every metric, in table order.</summary>
    public static IReadOnlyList<SegmentationMetric> AllMetrics { get; } = [.. CountMetrics, SegmentationMetric.Hd95];

    /// <summary>True for metrics where higher is better (all but HD95).</summary>
    public static bool HigherIsBetter(SegmentationMetric metric) => metric != SegmentationMetric.Hd95;

    /// <summary>The value a 0/0 metric takes under <paramref name="policy"/>: 0, 1 or NaN.</summary>
    public static double EmptyValue(EmptyMaskPolicy policy) => policy switch
    {
        EmptyMaskPolicy.Zero => 0.0,
        EmptyMaskPolicy.One => 1.0,
        EmptyMaskPolicy.Ignore => double.NaN,
        _ => throw new ArgumentOutOfRangeException(nameof(policy), policy, "unknown empty-mask policy"),
    };

    /// <summary>Numerator and denominator of a count-based metric.</summary>
    public static (double Numerator, double Denominator) Fraction(SegmentationMetric metric, ConfusionCounts c)
    {
        double tp = c.TruePositive, fp = c.FalsePositive, fn = c.FalseNegative, tn = c.TrueNegative;
        return metric switch
        {
            SegmentationMetric.IoU => (tp, tp + fp + fn),
            SegmentationMetric.Dice => (2 * tp, 2 * tp + fp + fn),
            SegmentationMetric.Precision => (tp, tp + fp),
            SegmentationMetric.Recall => (tp, tp + fn),
            SegmentationMetric.Specificity => (tn, tn + fp),
            SegmentationMetric.Accuracy => (tp + tn, tp + fp + fn + tn),
            _ => throw new ArgumentException($"{metric} is not computed from tp/fp/fn/tn counts", nameof(metric)),
        };
    }

    /// <summary>A count-based metric; where its denominator is 0 the value follows <paramref name="policy"/>.</summary>
    public static double Compute(SegmentationMetric metric, ConfusionCounts counts, EmptyMaskPolicy policy)
    {
        var (num, den) = Fraction(metric, counts);
        return den == 0 ? EmptyValue(policy) : num / den;
    }
}
