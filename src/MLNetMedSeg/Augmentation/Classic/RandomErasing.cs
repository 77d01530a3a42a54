using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Augmentation.Classic;

/// <summary>What an erased rectangle is filled with.</summary>
public enum ErasingFill
{
    /// <summary>Independent uniform values in [0,1] per pixel and channel (Zhong et al.'s random values in [0,255]).</summary>
    Random,

    /// <summary>0 (black).</summary>
    Zero,
}

/// <summary>Options of <see cref="RandomErasing"/>; defaults follow Zhong et al. (AAAI 2020) / torchvision.</summary>
public sealed class RandomErasingOptions
{
    /// <summary>Erasing probability per sample. Default 0.5 (Zhong et al.).</summary>
    public double Probability { get; set; } = 0.5;

    /// <summary>Smallest erased area as a fraction of the image. Default 0.02 (Zhong et al.'s s_l).</summary>
    public double MinArea { get; set; } = 0.02;

    /// <summary>
    /// Largest erased area as a fraction of the image. Default 0.33 (torchvision's RandomErasing; the paper's s_h is
    /// 0.4).
    /// </summary>
    public double MaxArea { get; set; } = 0.33;

    /// <summary>Smallest aspect ratio (height / width). Default 0.3 (Zhong et al.'s r_1).</summary>
    public double MinAspect { get; set; } = 0.3;

    /// <summary>Largest aspect ratio. Default 3.3 (≈ 1 / r_1).</summary>
    public double MaxAspect { get; set; } = 3.3;

    /// <summary>Tries to find a rectangle that fits before giving up on a sample. Default 10 (torchvision).</summary>
    public int Attempts { get; set; } = 10;

    /// <summary>Fill of the erased rectangle. Default <see cref="ErasingFill.Random"/>.</summary>
    public ErasingFill Fill { get; set; } = ErasingFill.Random;
}

/// <summary>
/// Random Erasing (Zhong et al., AAAI 2020): per sample with probability p, one rectangle with area fraction
/// U(MinArea, MaxArea) and aspect ratio drawn log-uniformly in [MinAspect, MaxAspect] (torchvision's draw) is placed
/// uniformly inside the image and filled with random values. The mask is unchanged (the object is occluded, not
/// removed).
/// </summary>
public sealed class RandomErasing : IBatchAugmentation
{
    /// <summary>Creates the augmentation; null options mean the defaults.</summary>
    public RandomErasing(RandomErasingOptions? options = null)
    {
        Options = options ?? new RandomErasingOptions();
        var o = Options;
        Check.Probability(o.Probability, nameof(RandomErasingOptions.Probability));
        if (!(o.MinArea > 0 && o.MinArea <= o.MaxArea && o.MaxArea <= 1))
            throw new ArgumentOutOfRangeException(nameof(RandomErasingOptions.MinArea), $"need 0 < MinArea <= MaxArea <= 1, got {o.MinArea}..{o.MaxArea}");
        if (!(o.MinAspect > 0 && o.MinAspect <= o.MaxAspect) || double.IsInfinity(o.MaxAspect))
            throw new ArgumentOutOfRangeException(nameof(RandomErasingOptions.MinAspect), $"need 0 < MinAspect <= MaxAspect, got {o.MinAspect}..{o.MaxAspect}");
        if (o.Attempts < 1) throw new ArgumentOutOfRangeException(nameof(RandomErasingOptions.Attempts), o.Attempts, "Attempts must be >= 1");
    }

    /// <summary>The options in use.</summary>
    public RandomErasingOptions Options { get; }

    /// <inheritdoc/>
    public string Name => "erase";

    /// <inheritdoc/>
    public (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator)
    {
        var (n, h, w) = BatchAug.Check(images, masks, generator, nameof(RandomErasing));
        using var scope = torch.NewDisposeScope();
        var o = Options;
        long[] y0 = new long[n], y1 = new long[n], x0 = new long[n], x1 = new long[n];
        double logLo = Math.Log(o.MinAspect), logHi = Math.Log(o.MaxAspect);
        bool any = false;
        var apply = BatchAug.Uniform(generator, n);
        for (long i = 0; i < n; i++)
        {
            if (apply[i] >= o.Probability) continue;
            var u = BatchAug.Uniform(generator, 4L * o.Attempts); // all attempts' draws at once
            for (int t = 0; t < o.Attempts; t++)
            {
                double area = h * w * (o.MinArea + (o.MaxArea - o.MinArea) * u[4 * t]);
                double ratio = Math.Exp(logLo + (logHi - logLo) * u[4 * t + 1]);
                long eh = (long)Math.Round(Math.Sqrt(area * ratio)), ew = (long)Math.Round(Math.Sqrt(area / ratio));
                if (eh < 1 || ew < 1 || eh >= h || ew >= w) continue;
                long y = BatchAug.Int(u[4 * t + 2], h - eh + 1), x = BatchAug.Int(u[4 * t + 3], w - ew + 1);
                (y0[i], y1[i], x0[i], x1[i]) = (y, y + eh, x, x + ew);
                any = true;
                break;
            }
        }
        if (!any) return BatchAug.Out(images.clone(), masks.clone());
        var box = BatchAug.BoxMask(n, h, w, y0, y1, x0, x1, images.device);
        Tensor img = o.Fill == ErasingFill.Zero
            ? images.masked_fill(box, S(0.0))
            : torch.where(box, SeededRandom.Rand(images.shape, ScalarType.Float32, images.device, generator), images);
        return BatchAug.Out(img, masks.clone());
    }
}
