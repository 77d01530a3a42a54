using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Augmentation.Classic;

/// <summary>Options of <see cref="ElasticTransform"/>; defaults are Simard et al. (2003)'s MNIST setting.</summary>
public sealed class ElasticTransformOptions
{
    /// <summary>Scale α of the smoothed displacement field, in pixels. Default 34 (Simard et al.).</summary>
    public double Alpha { get; set; } = 34;

    /// <summary>Standard deviation σ (pixels) of the Gaussian that smooths the field. Default 4 (Simard et al.).</summary>
    public double Sigma { get; set; } = 4;

    /// <summary>Probability a sample is warped. Default 1 (every sample, as Simard et al.).</summary>
    public double Probability { get; set; } = 1.0;
}

/// <summary>
/// Elastic deformation (Simard, Steinkraus &amp; Platt, ICDAR 2003): per sample, displacement fields Δx, Δy with
/// entries U(−1, 1) are convolved with a Gaussian of standard deviation σ (zero outside the image, as
/// <c>gaussian_filter(mode="constant")</c> in the common reference implementation) and scaled by α pixels; image and
/// mask are resampled at (x + Δx, y + Δy) with <c>grid_sample</c> — bilinear for images, nearest for masks (so they
/// stay binary / integer) — with border padding.
/// </summary>
public sealed class ElasticTransform : IBatchAugmentation
{
    /// <summary>Creates the augmentation; null options mean the defaults.</summary>
    public ElasticTransform(ElasticTransformOptions? options = null)
    {
        Options = options ?? new ElasticTransformOptions();
        Check.NonNegative(Options.Alpha, nameof(ElasticTransformOptions.Alpha));
        Check.NonNegative(Options.Sigma, nameof(ElasticTransformOptions.Sigma));
        Check.Probability(Options.Probability, nameof(ElasticTransformOptions.Probability));
    }

    /// <summary>The options in use.</summary>
    public ElasticTransformOptions Options { get; }

    /// <inheritdoc/>
    public string Name => "elastic";

    /// <summary>
    /// The smoothed, scaled displacement field of a batch, float32 [N,2,H,W] in pixels (channel 0: Δx, 1: Δy), on the
    /// given <paramref name="device"/> (default: the generator's); what <see cref="Apply"/> draws (after its
    /// per-sample apply flags). The uniform noise is drawn on the generator's device and smoothed on
    /// <paramref name="device"/>.
    /// </summary>
    public Tensor SampleDisplacement(long n, long height, long width, Generator generator, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(generator);
        device ??= generator.device;
        using var scope = torch.NewDisposeScope();
        var d = SeededRandom.Rand([n, 2, height, width], ScalarType.Float32, device, generator) * S(2.0) - S(1.0);
        if (Options.Sigma > 0)
        {
            // Separable Gaussian blur with zeros outside the image, as two matrix products with banded (Toeplitz)
            // matrices: exactly a zero-padded convolution, and much faster on CPU than a depthwise conv2d.
            d = GaussianBand(height, device).matmul(d).matmul(GaussianBand(width, device));
        }
        return (d * S(Options.Alpha)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The symmetric [size,size] matrix B with B[i,j] = g(i − j), g the normalised discrete Gaussian of standard
    /// deviation σ truncated at ⌈3σ⌉, so that B·v is v convolved with g under zero padding.
    /// </summary>
    private Tensor GaussianBand(long size, Device device)
    {
        double sigma = Options.Sigma;
        long r = Math.Max(1, (long)Math.Ceiling(3 * sigma));
        var k = new double[2 * r + 1];
        double sum = 0;
        for (long i = -r; i <= r; i++) sum += k[i + r] = Math.Exp(-0.5 * i * i / (sigma * sigma));
        var band = new float[size * size];
        for (long i = 0; i < size; i++)
        for (long j = Math.Max(0, i - r); j <= Math.Min(size - 1, i + r); j++)
            band[i * size + j] = (float)(k[j - i + r] / sum);
        return TensorExtensions.FromArray(band, [size, size], device);
    }

    /// <inheritdoc/>
    public (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator)
    {
        var (n, h, w) = BatchAug.Check(images, masks, generator, nameof(ElasticTransform));
        using var scope = torch.NewDisposeScope();
        var device = images.device;
        var apply = BatchAug.Uniform(generator, n).Select(u => u < Options.Probability).ToArray();
        var disp = SampleDisplacement(n, h, w, generator, device);
        var xs = torch.arange(S(0), S(w), S(1), ScalarType.Float32, device).view(1, 1, w).Plus(disp.narrow(1, 0, 1).squeeze(1));
        var ys = torch.arange(S(0), S(h), S(1), ScalarType.Float32, device).view(1, h, 1).Plus(disp.narrow(1, 1, 1).squeeze(1));
        // align_corners = true: pixel centres 0 and W-1 map to -1 and +1.
        var gx = w > 1 ? xs * S(2.0 / (w - 1)) - S(1.0) : xs * S(0.0);
        var gy = h > 1 ? ys * S(2.0 / (h - 1)) - S(1.0) : ys * S(0.0);
        var grid = torch.stack([gx, gy], 3);
        var img = Sampling.GridSample(images, grid, GridSampleMode.Bilinear, GridPaddingMode.Border, alignCorners: true);
        Tensor msk;
        if (masks.dim() == 3)
        {
            var f = Sampling.GridSample(masks.unsqueeze(1).to(ScalarType.Float32), grid, GridSampleMode.Nearest,
                GridPaddingMode.Border, alignCorners: true);
            msk = f.squeeze(1).round().to(ScalarType.Int64);
        }
        else
        {
            msk = Sampling.GridSample(masks, grid, GridSampleMode.Nearest, GridPaddingMode.Border, alignCorners: true);
        }
        var flag = BatchAug.Flags(apply, device);
        img = torch.where(flag, img, images);
        msk = torch.where(BatchAug.ForMask(flag, masks), msk, masks);
        return BatchAug.Out(img, msk);
    }
}
