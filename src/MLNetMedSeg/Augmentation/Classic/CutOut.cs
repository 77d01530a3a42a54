using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Augmentation.Classic;

/// <summary>What a CutOut hole is filled with.</summary>
public enum CutOutFill
{
    /// <summary>0 (black) in the [0,1] image: albumentations' Cutout/CoarseDropout default fill.</summary>
    Zero,

    /// <summary>
    /// The sample's per-channel mean: what DeVries &amp; Taylor's zero amounts to, since they cut out after
    /// per-channel normalisation.
    /// </summary>
    Mean,
}

/// <summary>Options of <see cref="CutOut"/>.</summary>
public sealed class CutOutOptions
{
    /// <summary>Number of square holes per augmented sample. Default 1 (DeVries &amp; Taylor, 2017).</summary>
    public int Holes { get; set; } = 1;

    /// <summary>
    /// Hole side as a fraction of the shorter image side. Default 0.5: DeVries &amp; Taylor's 16-pixel patch on
    /// 32-pixel CIFAR-10 images.
    /// </summary>
    public double SideFraction { get; set; } = 0.5;

    /// <summary>Probability a sample gets holes. Default 1 (the original applies CutOut to every image).</summary>
    public double Probability { get; set; } = 1.0;

    /// <summary>Hole fill. Default <see cref="CutOutFill.Zero"/>.</summary>
    public CutOutFill Fill { get; set; } = CutOutFill.Zero;
}

/// <summary>
/// CutOut (DeVries &amp; Taylor, 2017): square holes of fixed side centred at uniformly drawn pixels (so a hole may be
/// partly outside the image and is clipped) are filled in the image. The mask is left unchanged: the occluded object
/// is still there, and the network is asked to segment it from context, which is how DASP uses CutOut as a
/// regulariser baseline.
/// </summary>
public sealed class CutOut : IBatchAugmentation
{
    /// <summary>Creates the augmentation; null options mean the defaults.</summary>
    public CutOut(CutOutOptions? options = null)
    {
        Options = options ?? new CutOutOptions();
        if (Options.Holes < 1) throw new ArgumentOutOfRangeException(nameof(CutOutOptions.Holes), Options.Holes, "Holes must be >= 1");
        if (!(Options.SideFraction > 0 && Options.SideFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(CutOutOptions.SideFraction), Options.SideFraction, "SideFraction must be in (0,1]");
        Check.Probability(Options.Probability, nameof(CutOutOptions.Probability));
    }

    /// <summary>The options in use.</summary>
    public CutOutOptions Options { get; }

    /// <inheritdoc/>
    public string Name => "cutout";

    /// <inheritdoc/>
    public (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator)
    {
        var (n, h, w) = BatchAug.Check(images, masks, generator, nameof(CutOut));
        using var scope = torch.NewDisposeScope();
        var device = images.device;
        long side = Math.Max(1, (long)Math.Round(Options.SideFraction * Math.Min(h, w)));
        var apply = BatchAug.Uniform(generator, n);
        Tensor? holes = null;
        for (int k = 0; k < Options.Holes; k++)
        {
            var c = BatchAug.Uniform(generator, 2 * n);
            long[] y0 = new long[n], y1 = new long[n], x0 = new long[n], x1 = new long[n];
            for (long i = 0; i < n; i++)
            {
                if (apply[i] >= Options.Probability) continue; // empty box
                long cy = BatchAug.Int(c[2 * i], h), cx = BatchAug.Int(c[2 * i + 1], w);
                y0[i] = Math.Clamp(cy - side / 2, 0, h);
                y1[i] = Math.Clamp(cy - side / 2 + side, 0, h);
                x0[i] = Math.Clamp(cx - side / 2, 0, w);
                x1[i] = Math.Clamp(cx - side / 2 + side, 0, w);
            }
            var box = BatchAug.BoxMask(n, h, w, y0, y1, x0, x1, device);
            holes = holes is null ? box : holes | box;
        }
        Tensor img = Options.Fill == CutOutFill.Zero
            ? images.masked_fill(holes!, S(0.0))
            : torch.where(holes!, images.mean([2L, 3L], keepdim: true), images);
        return BatchAug.Out(img, masks.clone());
    }
}
