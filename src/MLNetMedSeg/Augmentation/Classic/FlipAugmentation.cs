using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Augmentation.Classic;

/// <summary>Options of <see cref="FlipAugmentation"/>.</summary>
public sealed class FlipOptions
{
    /// <summary>Probability of a horizontal (left-right) flip, drawn per sample. Default 0.5 (DASP's "Basic").</summary>
    public double HorizontalProbability { get; set; } = 0.5;

    /// <summary>Probability of a vertical (up-down) flip, drawn per sample, independently. Default 0.5.</summary>
    public double VerticalProbability { get; set; } = 0.5;
}

/// <summary>
/// DASP Table 1's "Basic" augmentation: random horizontal and vertical flips, each with its own probability and
/// drawn independently per sample; the mask is flipped with its image.
/// </summary>
public sealed class FlipAugmentation : IBatchAugmentation
{
    /// <summary>Creates the augmentation; null options mean the defaults.</summary>
    public FlipAugmentation(FlipOptions? options = null)
    {
        Options = options ?? new FlipOptions();
        Classic.Check.Probability(Options.HorizontalProbability, nameof(FlipOptions.HorizontalProbability));
        Classic.Check.Probability(Options.VerticalProbability, nameof(FlipOptions.VerticalProbability));
    }

    /// <summary>The options in use.</summary>
    public FlipOptions Options { get; }

    /// <inheritdoc/>
    public string Name => "basic";

    /// <inheritdoc/>
    public (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator)
    {
        var (n, _, _) = BatchAug.Check(images, masks, generator, nameof(FlipAugmentation));
        using var scope = torch.NewDisposeScope();
        var u = BatchAug.Uniform(generator, 2 * n);
        var fh = new bool[n];
        var fv = new bool[n];
        for (long i = 0; i < n; i++)
        {
            fh[i] = u[2 * i] < Options.HorizontalProbability;
            fv[i] = u[2 * i + 1] < Options.VerticalProbability;
        }
        var device = images.device;
        Tensor img = images, msk = masks;
        long md = masks.dim();
        if (fh.Any(f => f))
        {
            var flag = BatchAug.Flags(fh, device);
            img = torch.where(flag, img.flip(3), img);
            msk = torch.where(BatchAug.ForMask(flag, masks), msk.flip(md - 1), msk);
        }
        if (fv.Any(f => f))
        {
            var flag = BatchAug.Flags(fv, device);
            img = torch.where(flag, img.flip(2), img);
            msk = torch.where(BatchAug.ForMask(flag, masks), msk.flip(md - 2), msk);
        }
        if (ReferenceEquals(img, images)) img = images.clone();
        if (ReferenceEquals(msk, masks)) msk = masks.clone();
        return BatchAug.Out(img, msk);
    }
}

/// <summary>Option validation shared by the classic augmentations.</summary>
internal static class Check
{
    public static void Probability(double p, string name)
    {
        if (!(p >= 0 && p <= 1)) throw new ArgumentOutOfRangeException(name, p, $"{name} must be in [0,1]");
    }

    public static void Positive(double v, string name)
    {
        if (!(v > 0) || double.IsInfinity(v)) throw new ArgumentOutOfRangeException(name, v, $"{name} must be > 0");
    }

    public static void NonNegative(double v, string name)
    {
        if (!(v >= 0) || double.IsInfinity(v)) throw new ArgumentOutOfRangeException(name, v, $"{name} must be >= 0");
    }
}
