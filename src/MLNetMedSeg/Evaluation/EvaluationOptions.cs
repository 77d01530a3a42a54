namespace MLNetMedSeg.Evaluation;

/// <summary>
/// What a metric is when its denominator is 0 — e.g. IoU and Dice of an image whose ground truth and prediction
/// are both empty, precision of an empty prediction, recall of an empty ground truth. The libraries disagree
/// (segmentation_models_pytorch returns 0 through its default <c>zero_division</c>, scikit-learn returns 0, MONAI
/// returns NaN and skips it when averaging, see MONAI #4160, #7504, #8098), so the choice is explicit here.
/// </summary>
public enum EmptyMaskPolicy
{
    /// <summary>0/0 counts as 0 (total disagreement), as smp and scikit-learn do by default.</summary>
    Zero,

    /// <summary>
    /// 0/0 counts as 1 (perfect agreement): an image with no polyp and no predicted polyp was segmented
    /// correctly. The default, because a segmenter that correctly predicts nothing on a negative image must not be
    /// penalised (with <see cref="Zero"/> it would score 0 for the right answer) nor silently left out.
    /// </summary>
    One,

    /// <summary>
    /// 0/0 is undefined (NaN) and that image/class is left out of every mean, as MONAI does; results report how
    /// many values were dropped per metric (<see cref="EvaluationResult.Dropped"/>).
    /// </summary>
    Ignore,
}

/// <summary>The metrics the evaluator computes, all from per-image, per-class tp/fp/fn/tn counts except HD95.</summary>
public enum SegmentationMetric
{
    /// <summary>Intersection over union (Jaccard index): tp / (tp + fp + fn).</summary>
    IoU,
    /// <summary>Dice coefficient (F1 score): 2tp / (2tp + fp + fn).</summary>
    Dice,
    /// <summary>Precision (positive predictive value): tp / (tp + fp).</summary>
    Precision,
    /// <summary>Recall (sensitivity, true positive rate): tp / (tp + fn).</summary>
    Recall,
    /// <summary>Specificity (true negative rate): tn / (tn + fp).</summary>
    Specificity,
    /// <summary>Pixel accuracy: (tp + tn) / (tp + fp + fn + tn).</summary>
    Accuracy,
    /// <summary>
    /// 95th percentile Hausdorff distance in pixels between the boundaries of prediction and ground truth
    /// (see <see cref="SurfaceDistance.Hd95"/>). Lower is better.
    /// </summary>
    Hd95,
}

/// <summary>How per-image, per-class values are reduced to one number.</summary>
public enum MetricReduction
{
    /// <summary>
    /// The papers' mIoU / mDice (DASP Table 1, cDAL Table 2): the metric of every image (the mean over its
    /// evaluated classes for multi-class), then the mean over images. smp's "micro-imagewise" for binary masks.
    /// </summary>
    PerImageMean,

    /// <summary>Dataset-level: tp/fp/fn/tn summed over all images and evaluated classes, then the metric (smp "micro").</summary>
    Micro,

    /// <summary>
    /// Per-class macro: per class, the counts summed over all images and the metric taken (the class's micro
    /// value); then the mean over evaluated classes (smp "macro"). Equals <see cref="Micro"/> for one class.
    /// </summary>
    Macro,
}

/// <summary>Options of the evaluator. Defaults follow the papers (threshold 0.5, foreground only).</summary>
public sealed class EvaluationOptions
{
    /// <summary>
    /// Binary predictions: a pixel is foreground when its probability is ≥ this (default 0.5, the papers'
    /// threshold, and smp's <c>get_stats</c> rule). For logits use 0 (sigmoid(x) ≥ 0.5 ⇔ x ≥ 0).
    /// Binary ground truth is always read as foreground where ≥ 0.5 (float) or non-zero (integer/bool).
    /// </summary>
    public double Threshold { get; set; } = 0.5;

    /// <summary>What a metric is when its denominator is 0 (default <see cref="EmptyMaskPolicy.One"/>).</summary>
    public EmptyMaskPolicy EmptyMaskPolicy { get; set; } = EmptyMaskPolicy.One;

    /// <summary>
    /// Whether class 0 (background) is evaluated as a class. Default false: the papers report foreground mIoU/mDice.
    /// For binary masks, true adds the background (inverted masks) as class 0 next to the foreground class 1.
    /// </summary>
    public bool IncludeBackground { get; set; }

    /// <summary>Compute boundary HD95 (on the CPU, per image and class). Default true; turn off for speed in training loops.</summary>
    public bool ComputeHd95 { get; set; } = true;

    /// <summary>Column holding row ids; used when present (text), else rows are named by their 0-based position. Default "Id".</summary>
    public string IdColumn { get; set; } = "Id";

    /// <summary>Image column read by <c>EvaluationResult.WriteOverlays</c>. Default "Image".</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>Rows of equal size counted together in one batch of tensor operations (default 16).</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>Optional class names (index = class value) used in tables and files; default "class {k}" / "foreground".</summary>
    public IReadOnlyList<string>? ClassNames { get; set; }

    internal EvaluationOptions Clone() => (EvaluationOptions)MemberwiseClone();

    internal void Validate()
    {
        if (double.IsNaN(Threshold) || double.IsInfinity(Threshold))
            throw new ArgumentOutOfRangeException(nameof(Threshold), Threshold, "the threshold must be a finite number");
        if (!Enum.IsDefined(EmptyMaskPolicy))
            throw new ArgumentOutOfRangeException(nameof(EmptyMaskPolicy), EmptyMaskPolicy, "unknown empty-mask policy");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "the batch size must be at least 1");
        ArgumentException.ThrowIfNullOrEmpty(IdColumn, nameof(IdColumn));
        ArgumentException.ThrowIfNullOrEmpty(ImageColumn, nameof(ImageColumn));
    }
}
