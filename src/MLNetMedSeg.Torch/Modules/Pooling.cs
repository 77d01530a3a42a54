namespace MLNetMedSeg.Torch.Modules;

/// <summary>2-D max pooling, as torch.nn.MaxPool2d (stride defaults to kernel_size).</summary>
public sealed class MaxPool2d : torch.nn.Module<Tensor, Tensor>
{
    public MaxPool2d(long[] kernel_size, long[]? stride = null, long[]? padding = null, long[]? dilation = null, bool ceil_mode = false)
        : base(nameof(MaxPool2d))
    {
        this.kernel_size = LayerUtil.Pair(kernel_size, nameof(kernel_size));
        this.stride = LayerUtil.Pair(stride ?? kernel_size, nameof(stride));
        this.padding = LayerUtil.Pair(padding ?? [0], nameof(padding));
        this.dilation = LayerUtil.Pair(dilation ?? [1], nameof(dilation));
        this.ceil_mode = ceil_mode;
    }

    public long[] kernel_size { get; }
    public long[] stride { get; }
    public long[] padding { get; }
    public long[] dilation { get; }
    public bool ceil_mode { get; }

    public override Tensor forward(Tensor input)
        => torch.nn.functional.max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode);
}

/// <summary>2-D average pooling, as torch.nn.AvgPool2d (stride defaults to kernel_size; padding counts in the divisor unless count_include_pad is false).</summary>
public sealed class AvgPool2d : torch.nn.Module<Tensor, Tensor>
{
    public AvgPool2d(long[] kernel_size, long[]? stride = null, long[]? padding = null, bool ceil_mode = false, bool count_include_pad = true,
        long? divisor_override = null) : base(nameof(AvgPool2d))
    {
        this.kernel_size = LayerUtil.Pair(kernel_size, nameof(kernel_size));
        this.stride = LayerUtil.Pair(stride ?? kernel_size, nameof(stride));
        this.padding = LayerUtil.Pair(padding ?? [0], nameof(padding));
        this.ceil_mode = ceil_mode;
        this.count_include_pad = count_include_pad;
        this.divisor_override = divisor_override;
    }

    public long[] kernel_size { get; }
    public long[] stride { get; }
    public long[] padding { get; }
    public bool ceil_mode { get; }
    public bool count_include_pad { get; }
    public long? divisor_override { get; }

    public override Tensor forward(Tensor input)
        => torch.nn.functional.avg_pool2d(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override);
}

/// <summary>Average pooling to a fixed output size, as torch.nn.AdaptiveAvgPool2d ((1, 1) = global average pooling).</summary>
public sealed class AdaptiveAvgPool2d : torch.nn.Module<Tensor, Tensor>
{
    public AdaptiveAvgPool2d(long[] output_size) : base(nameof(AdaptiveAvgPool2d))
        => this.output_size = LayerUtil.Pair(output_size, nameof(output_size));

    public long[] output_size { get; }

    public override Tensor forward(Tensor input) => torch.nn.functional.adaptive_avg_pool2d(input, output_size);
}

/// <summary>Max pooling to a fixed output size, as torch.nn.AdaptiveMaxPool2d.</summary>
public sealed class AdaptiveMaxPool2d : torch.nn.Module<Tensor, Tensor>
{
    public AdaptiveMaxPool2d(long[] output_size) : base(nameof(AdaptiveMaxPool2d))
        => this.output_size = LayerUtil.Pair(output_size, nameof(output_size));

    public long[] output_size { get; }

    public override Tensor forward(Tensor input) => torch.nn.functional.adaptive_max_pool2d(input, output_size);
}

/// <summary>
/// Resizes its input by a scale factor or to a fixed size, as torch.nn.Upsample (see
/// <see cref="torch.nn.functional.interpolate"/>).
/// </summary>
public sealed class Upsample : torch.nn.Module<Tensor, Tensor>
{
    public Upsample(long[]? size = null, double[]? scale_factor = null, InterpolationMode mode = InterpolationMode.Nearest, bool? align_corners = null)
        : base(nameof(Upsample))
    {
        if ((size is null) == (scale_factor is null)) throw new ArgumentException("Upsample: give exactly one of size and scale_factor");
        if (mode == InterpolationMode.Nearest && align_corners.HasValue)
            throw new ArgumentException("align_corners can only be set with the interpolating modes bilinear, bicubic and trilinear", nameof(align_corners));
        this.size = (long[]?)size?.Clone();
        this.scale_factor = (double[]?)scale_factor?.Clone();
        this.mode = mode;
        this.align_corners = align_corners;
    }

    public long[]? size { get; }
    public double[]? scale_factor { get; }
    public InterpolationMode mode { get; }
    public bool? align_corners { get; }

    public override Tensor forward(Tensor input) => torch.nn.functional.interpolate(input, size, scale_factor, mode, align_corners);
}
