using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Evaluation;

/// <summary>
/// Accumulates per-image, per-class counts (and HD95) over batches, then builds an <see cref="EvaluationResult"/>.
/// Use it in a validation loop: <c>Add(probabilities, masks)</c> per batch, <see cref="GetResult"/> at the end.
/// Counts are computed with tensor operations on the inputs' device; only the [N,K,4] counts (and, for HD95, the
/// thresholded masks) are copied to the CPU.
/// </summary>
/// <remarks>
/// HD95 of an image/class where a mask is empty: both prediction and ground truth empty → 0 under
/// <see cref="EmptyMaskPolicy.One"/> (perfect agreement, as IoU = 1), NaN under Zero and Ignore; exactly one of them
/// empty → NaN under every policy (no finite distance exists, and a penalty such as the image diagonal would make
/// the mean depend on image size). NaN values are left out of the means and counted in
/// <see cref="EvaluationResult.Dropped"/>[Hd95].
/// </remarks>
public sealed class SegmentationEvaluator
{
    private readonly List<ImageRecord> _images = [];
    private readonly int[] _classes;

    private SegmentationEvaluator(bool binary, int numClasses, EvaluationOptions? options)
    {
        Options = (options ?? new EvaluationOptions()).Clone();
        Options.Validate();
        IsBinary = binary;
        NumClasses = numClasses;
        _classes = SegmentationMetrics.EvaluatedClasses(numClasses, Options.IncludeBackground);
        if (Options.ClassNames is { } names && names.Count < numClasses)
            throw new ArgumentException($"ClassNames has {names.Count} names but there are {numClasses} classes (background included)", nameof(options));
    }

    /// <summary>An evaluator of binary masks (foreground class 1; background 0 too with IncludeBackground).</summary>
    public static SegmentationEvaluator Binary(EvaluationOptions? options = null) => new(true, 2, options);

    /// <summary>An evaluator of class-index masks with <paramref name="numClasses"/> classes, background 0 included.</summary>
    public static SegmentationEvaluator MultiClass(int numClasses, EvaluationOptions? options = null)
    {
        if (numClasses < 2) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "numClasses counts the background too and must be at least 2");
        return new(false, numClasses, options);
    }

    /// <summary>A copy of the options in use.</summary>
    public EvaluationOptions Options { get; }

    /// <summary>True for binary masks.</summary>
    public bool IsBinary { get; }

    /// <summary>Number of classes, background included (2 for binary).</summary>
    public int NumClasses { get; }

    /// <summary>The evaluated class values.</summary>
    public IReadOnlyList<int> Classes => _classes;

    /// <summary>Images added so far.</summary>
    public int Count => _images.Count;

    internal string LabelColumn { get; set; } = "Mask";
    internal string PredictionColumn { get; set; } = "Probability";

    /// <summary>
    /// Adds a batch (shapes: see <see cref="SegmentationMetrics"/>). <paramref name="ids"/> names the images (one
    /// per image); by default they are numbered by their position among all added images.
    /// </summary>
    public void Add(Tensor prediction, Tensor target, IReadOnlyList<string>? ids = null)
    {
        using var scope = torch.NewDisposeScope();
        var (p, t) = ToLabels(prediction, target);
        int n = (int)p.size(0), h = (int)p.size(1), w = (int)p.size(2);
        if (ids is not null && ids.Count != n)
            throw new ArgumentException($"{ids.Count} ids were given for a batch of {n} images", nameof(ids));
        long[] counts = SegmentationMetrics.CountsFromLabels(p, t, _classes).cpu().ToArray<long>();
        long[]? pa = null, ta = null;
        if (Options.ComputeHd95)
        {
            pa = p.cpu().contiguous().ToArray<long>();
            ta = t.cpu().contiguous().ToArray<long>();
        }
        int k = _classes.Length;
        for (int i = 0; i < n; i++)
        {
            var cc = new ConfusionCounts[k];
            var hd = new double[k];
            for (int j = 0; j < k; j++)
            {
                int o = (i * k + j) * 4;
                cc[j] = new ConfusionCounts(counts[o], counts[o + 1], counts[o + 2], counts[o + 3]);
                hd[j] = pa is null ? double.NaN : Hd95(pa, ta!, i, h, w, _classes[j], cc[j]);
            }
            _images.Add(new ImageRecord(ids?[i] ?? _images.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), cc, hd));
        }
    }

    /// <summary>Forgets the images added so far.</summary>
    public void Reset() => _images.Clear();

    /// <summary>The metrics of every image added so far, and their reductions.</summary>
    public EvaluationResult GetResult() =>
        new(Options.Clone(), IsBinary, NumClasses, _classes, _images.ToArray(), LabelColumn, PredictionColumn);

    /// <summary>Prediction and target as class-index tensors int64 [N,H,W] (threshold or argmax applied).</summary>
    internal (Tensor pred, Tensor target) ToLabels(Tensor prediction, Tensor target) => IsBinary
        ? SegmentationMetrics.BinaryLabels(prediction, target, Options.Threshold)
        : SegmentationMetrics.ClassLabels(prediction, target, NumClasses);

    private double Hd95(long[] pred, long[] target, int image, int h, int w, int cls, ConfusionCounts c)
    {
        bool predEmpty = c.PredictedPositive == 0, targetEmpty = c.GroundTruthPositive == 0;
        if (predEmpty && targetEmpty) return Options.EmptyMaskPolicy == EmptyMaskPolicy.One ? 0.0 : double.NaN;
        if (predEmpty || targetEmpty) return double.NaN;
        int size = h * w, o = image * size;
        var pm = new bool[size];
        var tm = new bool[size];
        for (int i = 0; i < size; i++)
        {
            pm[i] = pred[o + i] == cls;
            tm[i] = target[o + i] == cls;
        }
        return SurfaceDistance.Hd95(pm, tm, h, w);
    }

    internal sealed record ImageRecord(string Id, ConfusionCounts[] Counts, double[] Hd95);
}
