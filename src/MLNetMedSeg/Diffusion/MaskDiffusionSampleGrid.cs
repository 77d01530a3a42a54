using MLNetMedSeg.Imaging;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion;

/// <summary>
/// Sample grids of generated masks and images (PNG), as written during and after diffusion training and by
/// <c>medseg generate</c>: images tiled row-major with a gray border, masks white on black, pairs side by side
/// (mask | image).
/// </summary>
public static class SampleGrid
{
    /// <summary>
    /// Tiles images [N,C,H,W] (values in [0, 1], C = 1 or 3) row-major into one [C, R·(H + p) + p, cols·(W + p) + p]
    /// float32 CPU tensor (R = ⌈N / cols⌉) on a background of <paramref name="background"/>.
    /// </summary>
    public static Tensor Tile(Tensor images, int columns, int padding = 2, double background = 0.5)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.size(0) < 1) throw new ArgumentException($"images must be [N,C,H,W] with N ≥ 1, got [{string.Join(",", images.shape)}]", nameof(images));
        ArgumentOutOfRangeException.ThrowIfLessThan(columns, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(padding);
        using var scope = torch.NewDisposeScope();
        var x = images.detach().to(ScalarType.Float32, torch.CPU).clamp(S(0), S(1));
        long n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
        long cols = Math.Min(columns, n), rows = (n + cols - 1) / cols;
        var canvas = torch.full([c, rows * (h + padding) + padding, cols * (w + padding) + padding], S(background), ScalarType.Float32);
        for (long i = 0; i < n; i++)
        {
            long top = padding + i / cols * (h + padding), left = padding + i % cols * (w + padding);
            canvas.narrow(1, top, h).narrow(2, left, w).copy_(x[i]);
        }
        return canvas.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Pairs (mask | image) side by side: masks [N,1,H,W] and images [N,C,H,W] (C = 1 or 3) → [N,C,H,2W + p], the mask
    /// repeated over the image's channels, a <paramref name="padding"/>-pixel gray gap between them.
    /// </summary>
    public static Tensor Pairs(Tensor masks, Tensor images, int padding = 2, double background = 0.5)
    {
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(images);
        if (masks.dim() != 4 || masks.size(1) != 1 || images.dim() != 4 || masks.size(0) != images.size(0) || masks.size(2) != images.size(2) || masks.size(3) != images.size(3))
            throw new ArgumentException($"masks [N,1,H,W] and images [N,C,H,W] of one size are needed, got [{string.Join(",", masks.shape)}] and [{string.Join(",", images.shape)}]", nameof(masks));
        using var scope = torch.NewDisposeScope();
        var im = images.detach().to(ScalarType.Float32, torch.CPU);
        var m = masks.detach().to(ScalarType.Float32, torch.CPU).expand(-1, im.size(1), -1, -1);
        var gap = torch.full([im.size(0), im.size(1), im.size(2), padding], S(background), ScalarType.Float32);
        return torch.cat([m, gap, im], 3).MoveToOuterDisposeScope();
    }

    /// <summary>Writes <see cref="Tile"/> of <paramref name="images"/> as a PNG (folders created).</summary>
    public static void Write(string path, Tensor images, int columns, int padding = 2)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var scope = torch.NewDisposeScope();
        var grid = Tile(images, columns, padding);
        if (Path.GetDirectoryName(Path.GetFullPath(path)) is { } dir) Directory.CreateDirectory(dir);
        ImageIO.WritePng(path, grid);
    }
}
