using MLNetMedSeg.Torch;

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
    /// generator's device; what <see cref="Apply"/> draws (after its per-sample apply flags).
    /// </summary>
    public Tensor SampleDisplacement(long n, long height, long width, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        using var scope = torch.NewDisposeScope();
        var d = torch.rand([n, 2, height, width], ScalarType.Float32, generator.Device, generator: generator) * 2.0 - 1.0;
        if (Options.Sigma > 0)
        {
            long r = Math.Max(1, (long)Math.Ceiling(3 * Options.Sigma));
            var k = new float[2 * r + 1];
            double sum = 0;
            for (long i = -r; i <= r; i++) sum += Math.Exp(-0.5 * i * i / (Options.Sigma * Options.Sigma));
            for (long i = -r; i <= r; i++) k[i + r] = (float)(Math.Exp(-0.5 * i * i / (Options.Sigma * Options.Sigma)) / sum);
            var k1 = torch.tensor(k, [1, 1, 2 * r + 1, 1], generator.Device).expand(2, 1, 2 * r + 1, 1).contiguous();
            var k2 = k1.view(2, 1, 1, 2 * r + 1);
            d = torch.nn.functional.conv2d(d, k1, padding: [r, 0], groups: 2);
            d = torch.nn.functional.conv2d(d, k2, padding: [0, r], groups: 2);
        }
        return (d * Options.Alpha).MoveToOuterDisposeScope();
    }

    /// <inheritdoc/>
    public (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator)
    {
        var (n, h, w) = BatchAug.Check(images, masks, generator, nameof(ElasticTransform));
        using var scope = torch.NewDisposeScope();
        var device = images.device;
        var apply = BatchAug.Uniform(generator, n).Select(u => u < Options.Probability).ToArray();
        var disp = SampleDisplacement(n, h, w, generator).to(device);
        var xs = torch.arange(w, ScalarType.Float32, device).view(1, 1, w) + disp.narrow(1, 0, 1).squeeze(1);
        var ys = torch.arange(h, ScalarType.Float32, device).view(1, h, 1) + disp.narrow(1, 1, 1).squeeze(1);
        // align_corners = true: pixel centres 0 and W-1 map to -1 and +1.
        var gx = w > 1 ? xs * (2.0 / (w - 1)) - 1.0 : xs * 0.0;
        var gy = h > 1 ? ys * (2.0 / (h - 1)) - 1.0 : ys * 0.0;
        var grid = torch.stack([gx, gy], 3);
        var img = torch.nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridPaddingMode.Border, align_corners: true);
        Tensor msk;
        if (masks.dim() == 3)
        {
            var f = torch.nn.functional.grid_sample(masks.unsqueeze(1).to(ScalarType.Float32), grid, GridSampleMode.Nearest,
                GridPaddingMode.Border, align_corners: true);
            msk = f.squeeze(1).round().to(ScalarType.Int64);
        }
        else
        {
            msk = torch.nn.functional.grid_sample(masks, grid, GridSampleMode.Nearest, GridPaddingMode.Border, align_corners: true);
        }
        var flag = BatchAug.Flags(apply, device);
        img = torch.where(flag, img, images);
        msk = torch.where(BatchAug.ForMask(flag, masks), msk, masks);
        return BatchAug.Out(img, msk);
    }
}
