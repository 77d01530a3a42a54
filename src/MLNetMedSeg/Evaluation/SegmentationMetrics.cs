using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Evaluation;

/// <summary>
/// Tensor-level metrics for direct use in training loops: tp/fp/fn/tn counts per image and class computed with
/// batched tensor operations on the tensors' own device (as smp's <c>get_stats</c>), metrics from counts as tensors,
/// and whole <see cref="EvaluationResult"/>s from a batch (<see cref="FromTensors(Tensor, Tensor, EvaluationOptions?, IReadOnlyList{string}?)"/>).
/// </summary>
/// <remarks>
/// Accepted inputs.
/// Binary: prediction and target [N,1,H,W], [1,H,W] or [H,W]; float values are probabilities (prediction
/// foreground where ≥ the threshold, target where ≥ 0.5); integer or bool values are foreground where non-zero.
/// Multi-class (<c>numClasses</c> = number of classes including background 0): target int64 class indices [N,H,W]
/// or [H,W] with values 0..numClasses−1; prediction either int64 class indices of the target's shape, or float
/// scores (logits or probabilities) [N,numClasses,H,W] / [numClasses,H,W] reduced by argmax over the class dim.
/// </remarks>
public static class SegmentationMetrics
{
    /// <summary>
    /// Binary tp/fp/fn/tn, each int64 [N,K] on the inputs' device: K = 1 (foreground), or 2 (background class 0,
    /// foreground class 1) with <paramref name="includeBackground"/>.
    /// </summary>
    public static (Tensor tp, Tensor fp, Tensor fn, Tensor tn) GetStats(Tensor prediction, Tensor target, double threshold = 0.5, bool includeBackground = false)
    {
        using var scope = torch.NewDisposeScope();
        var (p, t) = BinaryLabels(prediction, target, threshold);
        var counts = CountsFromLabels(p, t, EvaluatedClasses(2, includeBackground));
        return Split(counts);
    }

    /// <summary>
    /// Multi-class tp/fp/fn/tn, each int64 [N,K] on the inputs' device, for classes 1..numClasses−1 (K = numClasses−1)
    /// or 0..numClasses−1 with <paramref name="includeBackground"/>.
    /// </summary>
    public static (Tensor tp, Tensor fp, Tensor fn, Tensor tn) GetStats(Tensor prediction, Tensor target, int numClasses, bool includeBackground = false)
    {
        using var scope = torch.NewDisposeScope();
        var (p, t) = ClassLabels(prediction, target, numClasses);
        var counts = CountsFromLabels(p, t, EvaluatedClasses(numClasses, includeBackground));
        return Split(counts);
    }

    /// <summary>
    /// A count-based metric element-wise from count tensors of equal shape, as float64 on their device; where the
    /// denominator is 0 the value follows <paramref name="policy"/> (NaN for Ignore). Stays on the device (no sync).
    /// </summary>
    public static Tensor Compute(SegmentationMetric metric, Tensor tp, Tensor fp, Tensor fn, Tensor tn, EmptyMaskPolicy policy = EmptyMaskPolicy.One)
    {
        using var scope = torch.NewDisposeScope();
        Tensor TP = tp.to(ScalarType.Float64), FP = fp.to(ScalarType.Float64), FN = fn.to(ScalarType.Float64), TN = tn.to(ScalarType.Float64);
        var (num, den) = metric switch
        {
            SegmentationMetric.IoU => (TP, TP.Plus(FP).Plus(FN)),
            SegmentationMetric.Dice => (S(2.0) * TP, (S(2.0) * TP).Plus(FP).Plus(FN)),
            SegmentationMetric.Precision => (TP, TP.Plus(FP)),
            SegmentationMetric.Recall => (TP, TP.Plus(FN)),
            SegmentationMetric.Specificity => (TN, TN.Plus(FP)),
            SegmentationMetric.Accuracy => (TP.Plus(TN), TP.Plus(FP).Plus(FN).Plus(TN)),
            _ => throw new ArgumentException($"{metric} is not computed from tp/fp/fn/tn counts", nameof(metric)),
        };
        var zero = den.eq(S(0.0));
        var value = torch.where(zero, torch.tensor(MetricFormulas.EmptyValue(policy)), num / den.masked_fill(zero, S(1.0)));
        return value.MoveToOuterDisposeScope();
    }

    /// <summary>Evaluates a batch of binary predictions (see the class remarks for shapes) into a full result.</summary>
    public static EvaluationResult FromTensors(Tensor prediction, Tensor target, EvaluationOptions? options = null, IReadOnlyList<string>? ids = null)
    {
        var ev = SegmentationEvaluator.Binary(options);
        ev.Add(prediction, target, ids);
        return ev.GetResult();
    }

    /// <summary>Evaluates a batch of multi-class predictions (see the class remarks; numClasses includes background) into a full result.</summary>
    public static EvaluationResult FromTensors(Tensor prediction, Tensor target, int numClasses, EvaluationOptions? options = null, IReadOnlyList<string>? ids = null)
    {
        var ev = SegmentationEvaluator.MultiClass(numClasses, options);
        ev.Add(prediction, target, ids);
        return ev.GetResult();
    }

    internal static int[] EvaluatedClasses(int numClasses, bool includeBackground) =>
        Enumerable.Range(includeBackground ? 0 : 1, includeBackground ? numClasses : numClasses - 1).ToArray();

    private static (Tensor, Tensor, Tensor, Tensor) Split(Tensor counts)
    {
        var tp = counts.narrow(2, 0, 1).squeeze(2).contiguous().MoveToOuterDisposeScope();
        var fp = counts.narrow(2, 1, 1).squeeze(2).contiguous().MoveToOuterDisposeScope();
        var fn = counts.narrow(2, 2, 1).squeeze(2).contiguous().MoveToOuterDisposeScope();
        var tn = counts.narrow(2, 3, 1).squeeze(2).contiguous().MoveToOuterDisposeScope();
        return (tp, fp, fn, tn);
    }

    /// <summary>
    /// Counts per image and class from class-index tensors [N,H,W] (any integer dtype): int64 [N,K,4] holding
    /// tp, fp, fn, tn for each class in <paramref name="classes"/>.
    /// </summary>
    internal static Tensor CountsFromLabels(Tensor predLabels, Tensor targetLabels, int[] classes)
    {
        using var scope = torch.NewDisposeScope();
        long pixels = predLabels.size(1) * predLabels.size(2);
        var perClass = new List<Tensor>(classes.Length);
        foreach (int c in classes)
        {
            var p = predLabels.eq(S(c));
            var t = targetLabels.eq(S(c));
            var tp = p.logical_and(t).sum([1, 2], type: ScalarType.Int64);
            var fp = p.sum([1, 2], type: ScalarType.Int64) - tp;
            var fn = t.sum([1, 2], type: ScalarType.Int64) - tp;
            var tn = S(pixels).Minus(tp) - fp - fn;
            perClass.Add(torch.stack([tp, fp, fn, tn], 1));
        }
        return torch.stack(perClass, 1).MoveToOuterDisposeScope();
    }

    /// <summary>Binary inputs → (prediction, target) class-index tensors int64 [N,H,W] with values 0/1.</summary>
    internal static (Tensor pred, Tensor target) BinaryLabels(Tensor prediction, Tensor target, double threshold)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(target);
        using var scope = torch.NewDisposeScope();
        var p = BinaryToNHW(prediction, nameof(prediction));
        var t = BinaryToNHW(target, nameof(target));
        CheckSameShape(p, t, "prediction", "target");
        var pl = (torch.is_floating_point(p.dtype) ? p.ge(S(threshold)) : p.ne(S(0))).to(ScalarType.Int64);
        var tl = (torch.is_floating_point(t.dtype) ? t.ge(S(0.5)) : t.ne(S(0))).to(ScalarType.Int64);
        if (tl.device != pl.device) tl = tl.to(pl.device);
        return (pl.MoveToOuterDisposeScope(), tl.MoveToOuterDisposeScope());
    }

    /// <summary>Multi-class inputs → (prediction, target) class-index tensors int64 [N,H,W], validated to 0..numClasses−1.</summary>
    internal static (Tensor pred, Tensor target) ClassLabels(Tensor prediction, Tensor target, int numClasses)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(target);
        if (numClasses < 2) throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "numClasses counts the background too and must be at least 2");
        using var scope = torch.NewDisposeScope();
        if (torch.is_floating_point(target.dtype) || target.dtype == ScalarType.Bool)
            throw new ArgumentException($"target: class-index masks must be an integer tensor (int64 [N,H,W] or [H,W]), got {target.dtype}", nameof(target));
        var t = target.dim() switch
        {
            2 => target.unsqueeze(0),
            3 => target,
            _ => throw new ArgumentException($"target: expected class indices [N,H,W] or [H,W], got [{string.Join(",", target.shape)}]", nameof(target)),
        };
        Tensor p;
        if (torch.is_floating_point(prediction.dtype))
        {
            if (prediction.dim() == 3 && target.dim() == 2) p = prediction.unsqueeze(0);
            else if (prediction.dim() == 4) p = prediction;
            else throw new ArgumentException($"prediction: expected scores [N,{numClasses},H,W] (or [{numClasses},H,W] for a single image), got [{string.Join(",", prediction.shape)}]", nameof(prediction));
            if (p.size(1) != numClasses)
                throw new ArgumentException($"prediction: the scores have {p.size(1)} channels but numClasses is {numClasses} (classes 0..{numClasses - 1}, background included)", nameof(prediction));
            p = p.argmax(1);
        }
        else
        {
            if (prediction.dtype == ScalarType.Bool)
                throw new ArgumentException("prediction: a bool tensor is not a class-index mask; use int64 class indices or float scores", nameof(prediction));
            p = prediction.dim() switch
            {
                2 => prediction.unsqueeze(0),
                3 => prediction,
                _ => throw new ArgumentException($"prediction: expected class indices [N,H,W] or [H,W], got [{string.Join(",", prediction.shape)}]", nameof(prediction)),
            };
            p = p.to(ScalarType.Int64);
            CheckRange(p, numClasses, "prediction");
        }
        t = t.to(ScalarType.Int64);
        if (t.device != p.device) t = t.to(p.device);
        CheckSameShape(p, t, "prediction", "target");
        CheckRange(t, numClasses, "target");
        return (p.MoveToOuterDisposeScope(), t.MoveToOuterDisposeScope());
    }

    private static void CheckRange(Tensor labels, int numClasses, string name)
    {
        if (labels.numel() == 0) return;
        long lo = labels.min().Int64Value(), hi = labels.max().Int64Value();
        if (lo < 0 || hi >= numClasses)
            throw new ArgumentException($"{name}: class indices must be in 0..{numClasses - 1}, found values in {lo}..{hi}", name);
    }

    private static Tensor BinaryToNHW(Tensor x, string name) => x.dim() switch
    {
        4 when x.size(1) == 1 => x.squeeze(1),
        3 when x.size(0) == 1 => x,
        2 => x.unsqueeze(0),
        _ => throw new ArgumentException($"{name}: expected a binary mask [N,1,H,W], [1,H,W] or [H,W], got [{string.Join(",", x.shape)}]", name),
    };

    private static void CheckSameShape(Tensor p, Tensor t, string pn, string tn)
    {
        if (!p.shape.SequenceEqual(t.shape))
            throw new ArgumentException($"{pn} [{string.Join(",", p.shape)}] and {tn} [{string.Join(",", t.shape)}] differ in size (as [N,H,W])");
    }
}
