using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>
/// The losses an attack ascends (or, for Inverse FGSM, descends) and DASP's uncertainty map. Logits are [N,K,H,W]:
/// K = 1 a binary head (sigmoid; target float [N,1,H,W] in {0,1}), K ≥ 2 a multi-class head (softmax; target int64
/// [N,H,W]).
/// </summary>
public static class AdversarialLoss
{
    /// <summary>
    /// DASP's uncertainty map W = g(z) = exp(−z²/(2σ²)) (paper 000, §3.3): 1 where the segmenter is undecided (z = 0) and
    /// towards 0 where it is confident. Binary heads: z is the logit. Multi-class heads: z is the margin between the two
    /// largest logits of the pixel, the per-pixel analogue (a binary sigmoid logit is exactly the margin between the
    /// foreground and background logits of the equivalent two-class softmax). Returns float32 [N,1,H,W] in (0,1],
    /// without autograd history.
    /// </summary>
    /// <param name="logits">The segmenter's logits on the clean images, [N,K,H,W].</param>
    /// <param name="variance">σ² (DASP: 4).</param>
    public static Tensor UncertaintyMap(Tensor logits, double variance = 4.0)
    {
        CheckLogits(logits);
        if (!(variance > 0) || !double.IsFinite(variance)) throw new ArgumentOutOfRangeException(nameof(variance), variance, "the variance must be > 0");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var z = logits.size(1) == 1 ? logits : Margin(logits);
        var w = z.to(ScalarType.Float32).pow(S(2)).div(S(-2.0 * variance)).exp();
        return w.MoveToOuterDisposeScope();
    }

    private static Tensor Margin(Tensor logits)
    {
        var (top, _) = logits.topk(2, 1);
        return top.narrow(1, 0, 1).sub(top.narrow(1, 1, 1));
    }

    /// <summary>
    /// The attack loss of each image, [N]: the mean over the H×W pixels of m_i·W_i·ℓ_i with ℓ the per-pixel BCE of
    /// sigmoid(logits) (binary) or cross-entropy of softmax(logits) (multi-class) against the target, W the uncertainty
    /// map (1 when null) and m_i = ỹ_i when <paramref name="foregroundOnly"/> (multi-class: 1 where the class is not 0),
    /// else 1. With W and the foreground factor this is DASP's L_adv (Eq. 10):
    /// (1/(H·W))·Σ_i ỹ_i·W_i·ℓ_bce(P̃_i, ỹ_i). Differentiable in <paramref name="logits"/>.
    /// </summary>
    /// <param name="logits">[N,K,H,W].</param>
    /// <param name="target">Binary: float [N,1,H,W] (or [N,H,W]) in {0,1}; multi-class: int64 [N,H,W].</param>
    /// <param name="weights">The uncertainty map [N,1,H,W], or null.</param>
    /// <param name="foregroundOnly">Keep Eq. 10's ỹ factor.</param>
    public static Tensor PerImage(Tensor logits, Tensor target, Tensor? weights, bool foregroundOnly)
    {
        CheckLogits(logits);
        ArgumentNullException.ThrowIfNull(target);
        using var scope = NewDisposeScope();
        long n = logits.size(0), h = logits.size(2), w = logits.size(3);
        Tensor perPixel, foreground;
        if (logits.size(1) == 1)
        {
            var y = target.dim() == 3 ? target.unsqueeze(1) : target;
            if (!y.shape.SequenceEqual(logits.shape))
                throw new ArgumentException($"a binary target must be [N,1,H,W] like the logits [{string.Join(",", logits.shape)}], got [{string.Join(",", target.shape)}]", nameof(target));
            y = y.to(logits.dtype);
            perPixel = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction: nn.Reduction.None);
            foreground = y;
        }
        else
        {
            if (target.dtype != ScalarType.Int64 || target.dim() != 3 || target.size(0) != n || target.size(1) != h || target.size(2) != w)
                throw new ArgumentException($"a class target must be int64 [N,H,W] matching the logits [{string.Join(",", logits.shape)}], got {target.dtype} [{string.Join(",", target.shape)}]", nameof(target));
            var y = target.unsqueeze(1);
            perPixel = logits.log_softmax(1).gather(1, y).neg();
            foreground = y.ne(S(0)).to(logits.dtype);
        }
        if (weights is not null)
        {
            if (weights.dim() != 4 || weights.size(0) != n || weights.size(1) != 1 || weights.size(2) != h || weights.size(3) != w)
                throw new ArgumentException($"the uncertainty map must be [N,1,H,W] = [{n},1,{h},{w}], got [{string.Join(",", weights.shape)}]", nameof(weights));
            perPixel = perPixel.mul(weights.to(logits.dtype));
        }
        if (foregroundOnly) perPixel = perPixel.mul(foreground);
        return perPixel.mean([1, 2, 3]).MoveToOuterDisposeScope();
    }

    private static void CheckLogits(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.dim() != 4) throw new ArgumentException($"logits must be [N,K,H,W], got [{string.Join(",", logits.shape)}]", nameof(logits));
    }
}
