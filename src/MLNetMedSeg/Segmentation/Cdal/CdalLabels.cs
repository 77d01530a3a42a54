using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>
/// cDAL's data ranges (the public code's "centered" data): labels diffuse in [−1, 1] — a binary mask m as 2m − 1, class
/// indices as 2·one_hot − 1 over <see cref="CdalOptions.Classes"/> channels (the paper's Hippocampus runs) — and the
/// image condition is 2I − 1. A generated label x̂ maps back to a probability as clamp((x̂ + 1)/2, 0, 1).
/// </summary>
public static class CdalLabels
{
    /// <summary>
    /// The diffused label x₀ for <paramref name="masks"/>: binary (<paramref name="classes"/> = 1) float [N,1,H,W] with
    /// values in {0, 1} → 2m − 1; multi-class (classes = C + 1) int64 (or integral float) [N,H,W] of indices in 0..C →
    /// [N, C + 1, H, W] of ±1. Returns float32 on the masks' device.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong shape, dtype or values (the message says which).</exception>
    public static Tensor Encode(Tensor masks, int classes, string argumentName = "masks")
    {
        ArgumentNullException.ThrowIfNull(masks);
        if (classes < 1) throw new ArgumentOutOfRangeException(nameof(classes), classes, "classes must be ≥ 1");
        using var scope = NewDisposeScope();
        if (classes == 1)
        {
            if (masks.dim() != 4 || masks.size(1) != 1)
                throw new ArgumentException($"a binary mask batch must be float [N,1,H,W] in {{0,1}}, got {masks.dtype} [{string.Join(", ", masks.shape)}]", argumentName);
            var m = masks.to(ScalarType.Float32);
            if (m.numel() > 0 && !m.eq(S(0)).logical_or(m.eq(S(1))).all().BooleanValue())
                throw new ArgumentException($"a binary mask batch must hold only 0 and 1 (found values in [{m.min().SingleValue()}, {m.max().SingleValue()}]); binarise the masks first", argumentName);
            return (m * S(2) - S(1)).MoveToOuterDisposeScope();
        }
        if (masks.dim() != 3)
            throw new ArgumentException($"a multi-class mask batch ({classes} classes) must be int64 [N,H,W] of class indices, got {masks.dtype} [{string.Join(", ", masks.shape)}]", argumentName);
        if (masks.is_floating_point() && !masks.eq(masks.round()).all().BooleanValue())
            throw new ArgumentException("multi-class masks must hold integral class indices", argumentName);
        var idx = masks.to(ScalarType.Int64);
        if (idx.numel() > 0)
        {
            long lo = idx.min().Int64Value(), hi = idx.max().Int64Value();
            if (lo < 0 || hi >= classes)
                throw new ArgumentException($"class indices must be in 0..{classes - 1} (Classes = {classes}), found {lo}..{hi}", argumentName);
        }
        var oh = nn.functional.one_hot(idx, classes).permute(0, 3, 1, 2).to(ScalarType.Float32).contiguous();
        return (oh * S(2) - S(1)).MoveToOuterDisposeScope();
    }

    /// <summary>The image condition 2I − 1 for images in [0, 1] (float32).</summary>
    public static Tensor EncodeImage(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        using var scope = NewDisposeScope();
        return (images.to(ScalarType.Float32) * S(2) - S(1)).MoveToOuterDisposeScope();
    }

    /// <summary>A generated label x̂ in [−1, 1] as a per-channel probability clamp((x̂ + 1)/2, 0, 1).</summary>
    public static Tensor ToProbability(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        return (x.Plus(S(1)) * S(0.5)).clamp(S(0), S(1)).MoveToOuterDisposeScope();
    }
}
