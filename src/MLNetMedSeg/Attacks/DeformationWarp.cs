using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Attacks;

/// <summary>
/// f_D of paper 002 (Eq. 1): moves an image by a dense displacement field D [N, 2, H, W] given in pixels (channel 0 =
/// x, the column offset; channel 1 = y, the row offset). The output pixel (i, j) takes the input's value at
/// (i + D_y(i, j), j + D_x(i, j)) (backward warping), sampled by grid_sample with border padding (a point outside the
/// image takes the nearest edge value). Coordinates use the pixel-centre convention of align_corners = false: pixel
/// j's centre has the normalised coordinate (2j + 1)/W − 1, so a displacement of d pixels is 2d/W in normalised units
/// (the same convention as the library's bilinear resize). An integer D samples exactly at pixel centres: the image
/// is shifted exactly, whatever the interpolation.
/// </summary>
public static class DeformationWarp
{
    /// <summary>The sampling grid [N, H, W, 2] (x, y in [−1, 1] inside the image) of a pixel displacement field [N, 2, H, W].</summary>
    public static Tensor Grid(Tensor deformation)
    {
        CheckField(deformation);
        using var scope = NewDisposeScope();
        long h = deformation.size(2), w = deformation.size(3);
        var d = deformation.to(ScalarType.Float32);
        var xs = arange(S(0), S(w), S(1), ScalarType.Float32, d.device).view(1, 1, w);
        var ys = arange(S(0), S(h), S(1), ScalarType.Float32, d.device).view(1, h, 1);
        var gx = xs.Plus(d.narrow(1, 0, 1).squeeze(1)).mul(S(2.0)).Plus(S(1.0)).div(S(w)).sub(S(1.0));
        var gy = ys.Plus(d.narrow(1, 1, 1).squeeze(1)).mul(S(2.0)).Plus(S(1.0)).div(S(h)).sub(S(1.0));
        return stack([gx, gy], 3).MoveToOuterDisposeScope();
    }

    /// <summary>I_D = f_D(I₀, D): bilinear sampling with border padding; images float [N, C, H, W], D [N, 2, H, W] in pixels.</summary>
    public static Tensor Warp(Tensor images, Tensor deformation)
    {
        ArgumentNullException.ThrowIfNull(images);
        CheckSizes(images.dim() == 4 ? images.size(2) : -1, images.dim() == 4 ? images.size(3) : -1, images, deformation, "images must be [N,C,H,W]");
        using var scope = NewDisposeScope();
        var grid = Grid(deformation);
        return Sampling.GridSample(images, grid, GridSampleMode.Bilinear, GridPaddingMode.Border, alignCorners: false).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The ground truth moved by the same D, with nearest sampling and border padding so that labels stay labels:
    /// a binary mask float [N, 1, H, W] or a class-index mask int64 [N, H, W]; the result has the input's type.
    /// </summary>
    public static Tensor WarpMask(Tensor masks, Tensor deformation)
    {
        ArgumentNullException.ThrowIfNull(masks);
        bool classes = masks.dim() == 3;
        if (!classes && masks.dim() != 4) throw new ArgumentException($"masks must be [N,1,H,W] or [N,H,W], got [{string.Join(",", masks.shape)}]", nameof(masks));
        long h = masks.size(-2), w = masks.size(-1);
        CheckSizes(h, w, masks, deformation, "masks must be [N,1,H,W] or [N,H,W]");
        using var scope = NewDisposeScope();
        var x = classes ? masks.unsqueeze(1).to(ScalarType.Float32) : masks.to(ScalarType.Float32);
        var grid = Grid(deformation);
        var y = Sampling.GridSample(x, grid, GridSampleMode.Nearest, GridPaddingMode.Border, alignCorners: false);
        var r = classes ? y.squeeze(1).round().to(ScalarType.Int64) : y.to(masks.dtype);
        return r.MoveToOuterDisposeScope();
    }

    private static void CheckField(Tensor deformation)
    {
        ArgumentNullException.ThrowIfNull(deformation);
        if (deformation.dim() != 4 || deformation.size(1) != 2)
            throw new ArgumentException($"the deformation must be [N,2,H,W] (pixels), got [{string.Join(",", deformation.shape)}]", nameof(deformation));
    }

    private static void CheckSizes(long h, long w, Tensor x, Tensor deformation, string what)
    {
        CheckField(deformation);
        if (h < 0) throw new ArgumentException($"{what}, got [{string.Join(",", x.shape)}]");
        if (x.size(0) != deformation.size(0) || h != deformation.size(2) || w != deformation.size(3))
            throw new ArgumentException($"the deformation [{string.Join(",", deformation.shape)}] does not match [{string.Join(",", x.shape)}]", nameof(deformation));
    }
}
