using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Augmentation.Classic;

/// <summary>Options of <see cref="GaussianNoise"/>; defaults follow Rusak et al. (ECCV 2020)'s GNT.</summary>
public sealed class GaussianNoiseOptions
{
    /// <summary>
    /// Fixed noise standard deviation for images in [0,1]. Default 0.5 (Rusak et al.'s best single-σ model,
    /// "GNT σ0.5"). Ignored when <see cref="SigmaChoices"/> is set.
    /// </summary>
    public double Sigma { get; set; } = 0.5;

    /// <summary>
    /// When set, σ is drawn uniformly per sample from these values (Rusak et al.'s "GNT mult" used the ImageNet-C
    /// Gaussian-noise severities 0.08, 0.12, 0.18, 0.26, 0.38). Default null (fixed <see cref="Sigma"/>).
    /// </summary>
    public double[]? SigmaChoices { get; set; }

    /// <summary>
    /// Probability that a sample is noised. Default 0.5: GNT trains on half clean, half noisy data so that clean
    /// accuracy is kept.
    /// </summary>
    public double Probability { get; set; } = 0.5;
}

/// <summary>
/// Gaussian noise training (Rusak et al., ECCV 2020): per sample with probability p, add i.i.d. N(0, σ²) noise to every
/// pixel and channel and clamp to [0,1]. The mask is unchanged.
/// </summary>
public sealed class GaussianNoise : IBatchAugmentation
{
    /// <summary>Creates the augmentation; null options mean the defaults.</summary>
    public GaussianNoise(GaussianNoiseOptions? options = null)
    {
        Options = options ?? new GaussianNoiseOptions();
        Check.Probability(Options.Probability, nameof(GaussianNoiseOptions.Probability));
        if (Options.SigmaChoices is { } c)
        {
            if (c.Length == 0) throw new ArgumentException("SigmaChoices must not be empty (use null for a fixed Sigma)", nameof(GaussianNoiseOptions.SigmaChoices));
            foreach (var s in c) Check.NonNegative(s, nameof(GaussianNoiseOptions.SigmaChoices));
        }
        else Check.NonNegative(Options.Sigma, nameof(GaussianNoiseOptions.Sigma));
    }

    /// <summary>The options in use.</summary>
    public GaussianNoiseOptions Options { get; }

    /// <inheritdoc/>
    public string Name => "noise";

    /// <inheritdoc/>
    public (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator)
    {
        var (n, _, _) = BatchAug.Check(images, masks, generator, nameof(GaussianNoise));
        using var scope = torch.NewDisposeScope();
        var u = BatchAug.Uniform(generator, 2 * n);
        var sig = new float[n];
        for (long i = 0; i < n; i++)
        {
            if (u[2 * i] >= Options.Probability) continue;
            sig[i] = (float)(Options.SigmaChoices is { } c ? c[BatchAug.Int(u[2 * i + 1], c.Length)] : Options.Sigma);
        }
        var device = images.device;
        var noise = SeededRandom.Randn(images.shape, ScalarType.Float32, device, generator);
        var img = images.Plus(noise * TensorExtensions.FromArray(sig, [n, 1, 1, 1], device)).clamp(S(0.0), S(1.0));
        return BatchAug.Out(img, masks.clone());
    }
}
