using MLNetMedSeg.Core;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>
/// A fixed input normalisation (x − mean) / std in front of an encoder. <c>mean</c> is a buffer of shape
/// (1, C, h, w): a per-channel constant (h = w = 1) or a mean image, which is resized (bilinear, antialiased,
/// align_corners = false) to each input's size — at its own size it is used as is. <c>std</c> is a buffer (1, C, 1, 1).
/// Both are state-dict entries (normalize.mean, normalize.std in <see cref="ResNetEncoder"/>), so a saved network keeps
/// them; they start as the identity (mean 0, std 1) and are not trained.
/// </summary>
public sealed class ImageNormalization : MedSegModule<Tensor, Tensor>
{
    /// <param name="channels">Input channels.</param>
    /// <param name="meanHeight">Height of the mean buffer (1 for a per-channel mean).</param>
    /// <param name="meanWidth">Width of the mean buffer (1 for a per-channel mean).</param>
    public ImageNormalization(long channels, long meanHeight = 1, long meanWidth = 1) : base(nameof(ImageNormalization))
    {
        if (channels < 1) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be ≥ 1");
        if (meanHeight < 1 || meanWidth < 1) throw new ArgumentOutOfRangeException(nameof(meanHeight), "the mean's size must be ≥ 1");
        RegisterBuffer("mean", zeros(1, channels, meanHeight, meanWidth));
        RegisterBuffer("std", ones(1, channels, 1, 1));
    }

    /// <summary>The mean buffer (1, C, h, w).</summary>
    public Tensor Mean => GetBuffer("mean");

    /// <summary>The standard-deviation buffer (1, C, 1, 1).</summary>
    public Tensor Std => GetBuffer("std");

    /// <summary>(x − mean resized to x's size) / std.</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var mean = Mean;
        long h = input.size(2), w = input.size(3);
        if (mean.size(2) * mean.size(3) != 1 && (mean.size(2) != h || mean.size(3) != w))
        {
            // Resized in float32: libtorch's CPU kernel of antialiased bilinear resizing has no bfloat16/float16 version
            // ("compute_index_ranges_weights" not implemented), which mixed-precision training would reach.
            var dtype = mean.dtype;
            mean = nn.functional.interpolate(dtype == ScalarType.Float32 || dtype == ScalarType.Float64 ? mean : mean.to(ScalarType.Float32),
                [h, w], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true).to(dtype);
        }
        return input.sub(mean).div_(Std).MoveToOuterDisposeScope();
    }
}
