using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation;

/// <summary>
/// A fitted segmenter that the attacks can differentiate through: the adversarial augmenters (FGSM, Inverse FGSM, PGD,
/// Diff-PGD/DASP), <c>AdversarialRobustness</c>, offline adversarial pairs and the deformation attacker take one. Implemented
/// by <see cref="SegmentationTransformer"/> (its network's logits) and by the cDAL segmenter
/// (<see cref="Cdal.CdalTransformer"/>: Algorithm 2 unrolled with autograd, its sampling noise drawn from seeded
/// generators). Both are ML.NET stages, so an attack stage saves them as its child entry.
/// <para>
/// <see cref="Logits"/> is the differentiable forward pass: logits [N,K,H,W] whose sigmoid (K = 1) is the binary
/// probability and whose log-softmax (K ≥ 2) scores the classes, so the attacks' losses (BCE with logits,
/// cross-entropy) apply unchanged. It runs the network in the mode it is in: an attack switches <see cref="Network"/>
/// (and all its modules) to eval mode for its duration and restores every module's mode afterwards; the deformation
/// attacker also switches its parameters' <c>requires_grad</c> off while it trains. No weight is ever changed.
/// </para>
/// </summary>
public interface IDifferentiableSegmenter
{
    /// <summary>Image channels C the segmenter takes (images float [N,C,H,W] in [0,1]).</summary>
    long ImageChannels { get; }

    /// <summary>Channels K of <see cref="Logits"/> and of the probability: 1 for a binary model, else the number of classes including background.</summary>
    long Classes { get; }

    /// <summary>True for a binary model (<see cref="Classes"/> = 1; masks float [N,1,H,W] in {0,1}); false: class-index masks int64 [N,H,W].</summary>
    bool IsBinary { get; }

    /// <summary>The device the segmenter's weights are on; <see cref="Logits"/> wants its images there.</summary>
    Device Device { get; }

    /// <summary>The module whose weights <see cref="Logits"/> uses (switch its mode, freeze or checksum its parameters through it).</summary>
    nn.Module Network { get; }

    /// <summary>
    /// Differentiable logits [N,K,H,W] of images float [N,C,H,W] on <see cref="Device"/> (autograd history kept, in the
    /// network's current mode; the result joins the caller's dispose scope).
    /// </summary>
    /// <param name="images">The images, float [N,C,H,W] in [0,1], on <see cref="Device"/>.</param>
    /// <param name="generators">
    /// For a stochastic model, one generator per image that its sampling noise is drawn from (advanced by the call).
    /// Null: the model's own prediction seeding, so the logits are those of what <see cref="PredictProbabilities"/>
    /// predicts for these images. A deterministic model ignores it.
    /// </param>
    Tensor Logits(Tensor images, IReadOnlyList<Generator>? generators = null);

    /// <summary>The probability [N,K,H,W] of images float [N,C,H,W] (any device), without gradients, on <see cref="Device"/>.</summary>
    Tensor PredictProbabilities(Tensor images);

    /// <summary>
    /// Probabilities (as <see cref="PredictProbabilities"/>) and predicted masks: float [N,1,H,W] in {0,1} (binary) or
    /// int64 [N,H,W] (arg-max), on <see cref="Device"/>.
    /// </summary>
    (Tensor Probability, Tensor Predicted) Predict(Tensor images);
}

/// <summary>Helpers for the stages that hold an <see cref="IDifferentiableSegmenter"/>.</summary>
internal static class DifferentiableSegmenters
{
    /// <summary>
    /// The segmenter as the engine stage a model saves as a child entry (the library's segmenters — U-Net and cDAL — are
    /// stages; another <see cref="IDifferentiableSegmenter"/> cannot be saved, and the error says so).
    /// </summary>
    public static Pipeline.ITransformer AsChild(IDifferentiableSegmenter segmenter, string stage) =>
        segmenter as Pipeline.ITransformer ?? throw new InvalidOperationException(
            $"{stage}: the attacked segmenter ({segmenter.GetType().Name}) is not one of the library's stages (SegmentationTransformer, CdalTransformer) and cannot be saved into the model");
}
