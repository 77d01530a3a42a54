using MLNetMedSeg.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Losses;

/// <summary>How the soft Dice loss aggregates over the images of a batch.</summary>
public enum DiceReduction
{
    /// <summary>
    /// One Dice per image (and class), 1 − Dice per image, then the (weighted) mean over the images — the per-image
    /// loss l(·) of DASP's Eq. 11 (paper 000), which does not depend on the batch size. Default.
    /// </summary>
    PerImage,

    /// <summary>
    /// One Dice over all pixels of the batch (per class), as segmentation_models_pytorch's DiceLoss computes it (its
    /// sums run over the batch dimension too). The value then depends on how images are grouped into batches
    /// (smp issue #712): an image with a tiny polyp barely counts when batched with large ones.
    /// </summary>
    Batch,
}

/// <summary>The supervised losses the trainer can minimise.</summary>
public enum SegmentationLossKind
{
    /// <summary>
    /// Soft Dice loss on the foreground (binary) or averaged over the classes (multi-class), one Dice per image. Binary:
    /// sigmoid; multi-class: softmax. Default of the trainer (the DASP flow uses <see cref="GeneralizedDice"/>).
    /// </summary>
    Dice,

    /// <summary>Binary cross-entropy with logits, mean over pixels (binary heads only).</summary>
    Bce,

    /// <summary>Soft Dice + BCE (binary heads only), each term weighted by <see cref="SegmentationLossOptions.DiceWeight"/>/<see cref="SegmentationLossOptions.CrossEntropyWeight"/>.</summary>
    DiceBce,

    /// <summary>Cross-entropy over the C + 1 classes (softmax), mean over pixels (multi-class heads only).</summary>
    CrossEntropy,

    /// <summary>Soft Dice + cross-entropy (multi-class heads only).</summary>
    DiceCrossEntropy,

    /// <summary>
    /// Sudre et al.'s generalised Dice loss (2017), the Dice loss [30] of DASP's L_sup (Eq. 11 of paper 000): classes
    /// weighted by the inverse of their squared reference volume, so a small polyp counts as much as the background.
    /// Binary heads use both classes (background 1 − p and foreground p); see <see cref="SegmentationLosses.GeneralizedDice"/>.
    /// </summary>
    GeneralizedDice,
}

/// <summary>Options of <see cref="SegmentationLoss"/>.</summary>
public sealed class SegmentationLossOptions
{
    /// <summary>The loss (default <see cref="SegmentationLossKind.Dice"/>, DASP's L_sup).</summary>
    public SegmentationLossKind Kind { get; set; } = SegmentationLossKind.Dice;

    /// <summary>Dice aggregation over the batch (default <see cref="DiceReduction.PerImage"/>; see smp #712 for why).</summary>
    public DiceReduction DiceReduction { get; set; } = DiceReduction.PerImage;

    /// <summary>
    /// The smoothing term s of Dice = (2·Σpy + s)/(Σp + Σy + s), added to numerator and denominator (default 1, as
    /// the V-Net/smp implementations); it makes an empty prediction of an empty mask a Dice of 1 and keeps gradients finite.
    /// </summary>
    public double Smooth { get; set; } = 1.0;

    /// <summary>
    /// The smoothing ε of the generalised Dice, 1 − (2·Σ_k w_k·Σ p·y + ε)/(Σ_k w_k·Σ (p + y) + ε) (default 1e-5, as
    /// MONAI's GeneralizedDiceLoss; the weighted sums are of the order of 1/volume, so <see cref="Smooth"/>'s 1 would swamp them).
    /// </summary>
    public double GeneralizedDiceSmooth { get; set; } = 1e-5;

    /// <summary>Multi-class Dice only: also average the background class 0 (default true, as smp and MONAI). Binary Dice is always over the foreground.</summary>
    public bool IncludeBackground { get; set; } = true;

    /// <summary>Weight of the Dice term in the combined losses (default 1).</summary>
    public double DiceWeight { get; set; } = 1.0;

    /// <summary>Weight of the BCE / cross-entropy term in the combined losses (default 1).</summary>
    public double CrossEntropyWeight { get; set; } = 1.0;

    /// <summary>A copy.</summary>
    public SegmentationLossOptions Clone() => (SegmentationLossOptions)MemberwiseClone();

    /// <summary>Checks the options against the head: <paramref name="classes"/> = 1 (binary) or C + 1 ≥ 2.</summary>
    public void Validate(long classes)
    {
        if (!Enum.IsDefined(Kind)) throw new ArgumentException($"unknown loss Kind {Kind}", nameof(Kind));
        if (!Enum.IsDefined(DiceReduction)) throw new ArgumentException($"unknown DiceReduction {DiceReduction}", nameof(DiceReduction));
        if (!double.IsFinite(Smooth) || Smooth < 0) throw new ArgumentException($"Smooth must be finite and ≥ 0, got {Smooth}", nameof(Smooth));
        if (!double.IsFinite(GeneralizedDiceSmooth) || GeneralizedDiceSmooth < 0)
            throw new ArgumentException($"GeneralizedDiceSmooth must be finite and ≥ 0, got {GeneralizedDiceSmooth}", nameof(GeneralizedDiceSmooth));
        if (!double.IsFinite(DiceWeight) || DiceWeight < 0) throw new ArgumentException($"DiceWeight must be finite and ≥ 0, got {DiceWeight}", nameof(DiceWeight));
        if (!double.IsFinite(CrossEntropyWeight) || CrossEntropyWeight < 0) throw new ArgumentException($"CrossEntropyWeight must be finite and ≥ 0, got {CrossEntropyWeight}", nameof(CrossEntropyWeight));
        bool binary = classes == 1;
        if (binary && Kind is SegmentationLossKind.CrossEntropy or SegmentationLossKind.DiceCrossEntropy)
            throw new ArgumentException($"loss {Kind} needs a multi-class head (Classes ≥ 2); a binary head uses Bce or DiceBce", nameof(Kind));
        if (!binary && Kind is SegmentationLossKind.Bce or SegmentationLossKind.DiceBce)
            throw new ArgumentException($"loss {Kind} needs a binary head (Classes = 1); a multi-class head uses CrossEntropy or DiceCrossEntropy", nameof(Kind));
    }
}

/// <summary>A configured loss: <see cref="Compute"/> maps logits, targets and per-sample weights to a scalar.</summary>
public sealed class SegmentationLoss
{
    /// <param name="options">The loss options (copied).</param>
    /// <param name="classes">Logit channels of the head: 1 = binary (sigmoid), C + 1 ≥ 2 = multi-class (softmax).</param>
    public SegmentationLoss(SegmentationLossOptions options, long classes)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(classes);
        Options = options.Clone();
        Classes = classes;
    }

    /// <summary>The options (a copy).</summary>
    public SegmentationLossOptions Options { get; }

    /// <summary>Logit channels of the head.</summary>
    public long Classes { get; }

    /// <summary>
    /// The loss of a batch: logits [N,K,H,W]; target float [N,1,H,W] {0,1} (binary, K = 1) or int64 [N,H,W] (K ≥ 2);
    /// <paramref name="sampleWeights"/> [N] as in <see cref="SegmentationLosses"/> (null: the mean over the batch).
    /// </summary>
    public Tensor Compute(Tensor logits, Tensor target, Tensor? sampleWeights = null)
    {
        using var scope = NewDisposeScope();
        var o = Options;
        Tensor Dice() => SegmentationLosses.SoftDice(logits, target, sampleWeights, o.DiceReduction, o.Smooth, o.IncludeBackground);
        var loss = o.Kind switch
        {
            SegmentationLossKind.Dice => Dice(),
            SegmentationLossKind.GeneralizedDice => SegmentationLosses.GeneralizedDice(logits, target, sampleWeights, o.DiceReduction, o.GeneralizedDiceSmooth, o.IncludeBackground),
            SegmentationLossKind.Bce => SegmentationLosses.BinaryCrossEntropy(logits, target, sampleWeights),
            SegmentationLossKind.CrossEntropy => SegmentationLosses.CrossEntropy(logits, target, sampleWeights),
            SegmentationLossKind.DiceBce => Dice().mul(S(o.DiceWeight)).Plus(SegmentationLosses.BinaryCrossEntropy(logits, target, sampleWeights).mul(S(o.CrossEntropyWeight))),
            _ => Dice().mul(S(o.DiceWeight)).Plus(SegmentationLosses.CrossEntropy(logits, target, sampleWeights).mul(S(o.CrossEntropyWeight))),
        };
        return loss.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Functional segmentation losses with per-sample weights. Every loss first computes one value l_n per image n and
/// then returns Σ_n w_n·l_n with the weights w [N] given (null: w_n = 1/N, the plain mean). DASP trains on N real
/// and N′ augmented pairs with L_sup = (1/N)·Σ l(real) + (1/N′)·Σ l(augmented) (Eq. 11 of paper 000): that is the
/// weighted sum with w_n = 1/N for real and 1/N′ for augmented samples — see
/// <see cref="SampleWeights.RealAndAugmented(IReadOnlyList{bool}, Device?)"/>, which builds those weights per batch.
/// Logits are [N,K,H,W]: K = 1 is a binary head (sigmoid; target float [N,1,H,W] in {0,1}), K ≥ 2 a multi-class head
/// of C + 1 classes (softmax over dim 1; target int64 [N,H,W] with values 0..K−1). Losses are computed in the logits' dtype.
/// </summary>
public static class SegmentationLosses
{
    /// <summary>
    /// Soft Dice loss. Per image n and class k: Dice_nk = (2·Σ_i p_nki·y_nki + s) / (Σ_i p_nki + Σ_i y_nki + s) with
    /// p = sigmoid(logits) (binary, one class: the foreground) or softmax over classes (multi-class, y one-hot; class 0
    /// left out unless <paramref name="includeBackground"/>); l_n = 1 − mean_k Dice_nk; result Σ_n w_n·l_n.
    /// With <see cref="DiceReduction.Batch"/> the sums run over the batch too, each image's terms scaled by
    /// w_n/mean(w) (so equal weights give smp's batch Dice), and the result is (Σ_n w_n)·(1 − mean_k Dice_k).
    /// </summary>
    /// <param name="logits">[N,K,H,W].</param>
    /// <param name="target">Binary: float [N,1,H,W] (or [N,H,W]); multi-class: int64 [N,H,W].</param>
    /// <param name="sampleWeights">[N] or null (1/N each).</param>
    /// <param name="reduction">Per image (default) or over the batch.</param>
    /// <param name="smooth">s ≥ 0 (default 1).</param>
    /// <param name="includeBackground">Multi-class only: average class 0 too (default true).</param>
    public static Tensor SoftDice(Tensor logits, Tensor target, Tensor? sampleWeights = null,
        DiceReduction reduction = DiceReduction.PerImage, double smooth = 1.0, bool includeBackground = true)
    {
        using var scope = NewDisposeScope();
        var (p, y) = ProbabilitiesAndTargets(logits, target, includeBackground);
        long n = p.size(0);
        var w = Weights(sampleWeights, n, p);
        Tensor loss;
        if (reduction == DiceReduction.PerImage)
        {
            var inter = p.mul(y).sum([2, 3]);             // [N,K]
            var card = p.sum([2, 3]).Plus(y.sum([2, 3]));  // [N,K]
            var dice = inter.mul(S(2)).Plus(S(smooth)).div(card.Plus(S(smooth)));
            var perImage = dice.mean([1]).neg().Plus(S(1));   // [N]
            loss = perImage.mul(w).sum();
        }
        else
        {
            var scale = w.div(w.mean()).reshape(n, 1, 1, 1);
            var inter = p.mul(y).mul(scale).sum([0, 2, 3]); // [K]
            var card = p.Plus(y).mul(scale).sum([0, 2, 3]);
            var dice = inter.mul(S(2)).Plus(S(smooth)).div(card.Plus(S(smooth)));
            loss = dice.mean().neg().Plus(S(1)).mul(w.sum());
        }
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Generalised Dice loss (Sudre et al. 2017; DASP's [30]). Per image n, over the classes k with one-hot references
    /// y and probabilities p (binary head: the two classes background (1 − p, 1 − y) and foreground (p, y), always both —
    /// with one class the weight cancels and this is the plain Dice; multi-class: softmax, class 0 left out unless
    /// <paramref name="includeBackground"/>): w_nk = 1/(Σ_i y_nki)², and a class absent from the image (infinite w)
    /// takes the largest finite weight of the image (1 when there is none), as MONAI's GeneralizedDiceLoss;
    /// GD_n = (2·Σ_k w_nk·Σ_i p_nki·y_nki + ε)/(Σ_k w_nk·Σ_i (p_nki + y_nki) + ε); l_n = 1 − GD_n; result Σ_n w_n·l_n
    /// with the sample weights. With <see cref="DiceReduction.Batch"/> the sums (volumes included) run over the batch,
    /// each image's terms scaled by w_n/mean(w), and the result is (Σ_n w_n)·(1 − GD).
    /// </summary>
    /// <param name="logits">[N,K,H,W].</param>
    /// <param name="target">Binary: float [N,1,H,W] (or [N,H,W]) in {0,1}; multi-class: int64 [N,H,W].</param>
    /// <param name="sampleWeights">[N] or null (1/N each).</param>
    /// <param name="reduction">Per image (default, Eq. 11's per-image l) or over the batch.</param>
    /// <param name="smooth">ε ≥ 0 (default 1e-5).</param>
    /// <param name="includeBackground">Multi-class only: include class 0 (default true, as Sudre et al.).</param>
    public static Tensor GeneralizedDice(Tensor logits, Tensor target, Tensor? sampleWeights = null,
        DiceReduction reduction = DiceReduction.PerImage, double smooth = 1e-5, bool includeBackground = true)
    {
        if (!double.IsFinite(smooth) || smooth < 0) throw new ArgumentOutOfRangeException(nameof(smooth), smooth, "must be finite and ≥ 0");
        using var scope = NewDisposeScope();
        var (p, y) = ProbabilitiesAndTargets(logits, target, includeBackground);
        if (logits.size(1) == 1)
        {
            p = cat([p.neg().Plus(S(1)), p], 1);
            y = cat([y.neg().Plus(S(1)), y], 1);
        }
        long n = p.size(0);
        var w = Weights(sampleWeights, n, p);
        Tensor loss;
        if (reduction == DiceReduction.PerImage)
        {
            var inter = p.mul(y).sum([2, 3]);                       // [N,K]
            var card = p.sum([2, 3]).Plus(y.sum([2, 3]));            // [N,K]
            var cw = ClassWeights(y.sum([2, 3]));                   // [N,K]
            var gd = inter.mul(cw).sum([1]).mul(S(2)).Plus(S(smooth)).div(card.mul(cw).sum([1]).Plus(S(smooth))); // [N]
            loss = gd.neg().Plus(S(1)).mul(w).sum();
        }
        else
        {
            var scale = w.div(w.mean()).reshape(n, 1, 1, 1);
            var inter = p.mul(y).mul(scale).sum([0, 2, 3]).unsqueeze(0); // [1,K]
            var card = p.Plus(y).mul(scale).sum([0, 2, 3]).unsqueeze(0);
            var cw = ClassWeights(y.mul(scale).sum([0, 2, 3]).unsqueeze(0));
            var gd = inter.mul(cw).sum().mul(S(2)).Plus(S(smooth)).div(card.mul(cw).sum().Plus(S(smooth)));
            loss = gd.neg().Plus(S(1)).mul(w.sum());
        }
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>Sudre's class weights 1/volume² per row of <paramref name="volumes"/> [R,K]; absent classes take the row's largest finite weight (1 if none).</summary>
    private static Tensor ClassWeights(Tensor volumes)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();   // the references carry no gradient; the weights are constants of the loss
        var present = volumes.gt(S(0));
        var w = where(present, volumes.clamp_min(S(1e-30)).pow(S(2)).reciprocal(), zeros_like(volumes));
        var rowMax = w.amax([1], keepdim: true);
        rowMax = where(rowMax.gt(S(0)), rowMax, ones_like(rowMax));
        return where(present, w, rowMax.expand_as(w)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Binary cross-entropy with logits: l_n = mean over pixels of −[y·log σ(x) + (1−y)·log(1−σ(x))] (computed
    /// stably from the logits); result Σ_n w_n·l_n. Binary heads only (K = 1).
    /// </summary>
    public static Tensor BinaryCrossEntropy(Tensor logits, Tensor target, Tensor? sampleWeights = null)
    {
        using var scope = NewDisposeScope();
        CheckLogits(logits);
        if (logits.size(1) != 1) throw new ArgumentException($"BinaryCrossEntropy needs a binary head (logits [N,1,H,W]), got [{string.Join(",", logits.shape)}]", nameof(logits));
        var y = BinaryTarget(logits, target);
        var per = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction: nn.Reduction.None).mean([1, 2, 3]);
        var loss = per.mul(Weights(sampleWeights, logits.size(0), logits)).sum();
        return loss.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Cross-entropy over K ≥ 2 classes: l_n = mean over pixels of −log softmax(x)_{y}; result Σ_n w_n·l_n.
    /// Multi-class heads only.
    /// </summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor target, Tensor? sampleWeights = null)
    {
        using var scope = NewDisposeScope();
        CheckLogits(logits);
        if (logits.size(1) < 2) throw new ArgumentException($"CrossEntropy needs a multi-class head (logits [N,K≥2,H,W]), got [{string.Join(",", logits.shape)}]; use BinaryCrossEntropy for a binary head", nameof(logits));
        var y = ClassTarget(logits, target);
        var per = logits.log_softmax(1).gather(1, y.unsqueeze(1)).neg().mean([1, 2, 3]); // [N]
        var loss = per.mul(Weights(sampleWeights, logits.size(0), logits)).sum();
        return loss.MoveToOuterDisposeScope();
    }

    private static void CheckLogits(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.dim() != 4) throw new ArgumentException($"logits must be [N,K,H,W], got [{string.Join(",", logits.shape)}]", nameof(logits));
        if (!is_floating_point(logits.dtype)) throw new ArgumentException($"logits must be floating point, got {logits.dtype}", nameof(logits));
    }

    private static (Tensor p, Tensor y) ProbabilitiesAndTargets(Tensor logits, Tensor target, bool includeBackground)
    {
        CheckLogits(logits);
        long k = logits.size(1);
        if (k == 1) return (logits.sigmoid(), BinaryTarget(logits, target));
        var y = nn.functional.one_hot(ClassTarget(logits, target), k).permute(0, 3, 1, 2).to(logits.dtype);
        var p = logits.softmax(1);
        if (!includeBackground)
        {
            p = p.narrow(1, 1, k - 1);
            y = y.narrow(1, 1, k - 1);
        }
        return (p, y);
    }

    private static Tensor BinaryTarget(Tensor logits, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var t = target.dim() == 3 ? target.unsqueeze(1) : target;
        if (!t.shape.SequenceEqual(logits.shape))
            throw new ArgumentException($"binary target must be [N,1,H,W] like the logits [{string.Join(",", logits.shape)}], got [{string.Join(",", target.shape)}]", nameof(target));
        return t.dtype == logits.dtype ? t : t.to(logits.dtype);
    }

    private static Tensor ClassTarget(Tensor logits, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (target.dtype != ScalarType.Int64 || target.dim() != 3 || target.size(0) != logits.size(0) ||
            target.size(1) != logits.size(2) || target.size(2) != logits.size(3))
            throw new ArgumentException($"class target must be int64 [N,H,W] matching logits [{string.Join(",", logits.shape)}], got {target.dtype} [{string.Join(",", target.shape)}]", nameof(target));
        return target;
    }

    private static Tensor Weights(Tensor? w, long n, Tensor like)
    {
        if (w is null) return full([n], S(1.0 / n), like.dtype, like.device);
        if (w.dim() != 1 || w.size(0) != n)
            throw new ArgumentException($"sample weights must be [N] = [{n}], got [{string.Join(",", w.shape)}]", "sampleWeights");
        return w.to(like.dtype, like.device);
    }
}

/// <summary>Builds the per-sample weights the losses of <see cref="SegmentationLosses"/> take.</summary>
public static class SampleWeights
{
    /// <summary>
    /// DASP's Eq. 11 (paper 000) for one batch: w_n = 1/N_real for each real sample and 1/N_aug for each augmented one,
    /// so that Σ w_n·l_n = mean over the real + mean over the augmented samples (a group absent from the batch adds
    /// nothing). float32 [N].
    /// </summary>
    public static Tensor RealAndAugmented(IReadOnlyList<bool> isAugmented, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(isAugmented);
        if (isAugmented.Count == 0) throw new ArgumentException("no samples", nameof(isAugmented));
        int aug = isAugmented.Count(a => a), real = isAugmented.Count - aug;
        var w = isAugmented.Select(a => a ? 1f / aug : 1f / real).ToArray();
        return tensor(w, device: device);
    }

    /// <summary>
    /// The weights of one batch from its Number column <paramref name="column"/>: with
    /// <see cref="SampleWeightMode.IsAugmentedFlag"/> a value ≠ 0 marks an augmented row and the weights are
    /// <see cref="RealAndAugmented"/>'s (Eq. 11); with <see cref="SampleWeightMode.Weight"/> the values are weights,
    /// <see cref="Normalized"/> — a batch whose weights are all 0 gets zero weights (it adds nothing to the loss).
    /// float32 [N] on <paramref name="device"/>.
    /// </summary>
    internal static Tensor FromBatch(DataBatch batch, string column, SampleWeightMode mode, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentException.ThrowIfNullOrEmpty(column);
        var v = batch.Numbers(column);
        try
        {
            if (mode == SampleWeightMode.IsAugmentedFlag) return RealAndAugmented(v.Select(a => a != 0).ToArray(), device);
            if (v.Length > 0 && v.All(a => a == 0)) return zeros([v.Length], ScalarType.Float32, device);
            return Normalized(v, device);
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"column '{column}', batch {batch.Index}: {ex.Message}", nameof(batch), ex);
        }
    }

    /// <summary>
    /// Normalised per-sample weights w_n = v_n / Σ v (a weighted mean). Values must be finite, ≥ 0, not all 0. float32 [N].
    /// </summary>
    public static Tensor Normalized(IReadOnlyList<double> values, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count == 0) throw new ArgumentException("no samples", nameof(values));
        if (values.Any(v => !double.IsFinite(v) || v < 0)) throw new ArgumentException("sample weights must be finite and ≥ 0", nameof(values));
        double s = values.Sum();
        if (s <= 0) throw new ArgumentException("sample weights of a batch are all 0", nameof(values));
        return tensor(values.Select(v => (float)(v / s)).ToArray(), device: device);
    }
}

/// <summary>How the optional per-row weight column enters the loss.</summary>
public enum SampleWeightMode
{
    /// <summary>
    /// The column flags augmented rows (value ≠ 0 = augmented, 0 = real): each batch's loss is the mean over its real
    /// rows plus the mean over its augmented rows, DASP's L_sup (Eq. 11 of paper 000). Default.
    /// </summary>
    IsAugmentedFlag,

    /// <summary>The column holds non-negative weights: each batch's loss is the weighted mean Σ v_n·l_n / Σ v_n.</summary>
    Weight,
}
