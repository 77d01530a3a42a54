namespace MLNetMedSeg.Torch.Modules;

/// <summary>Helpers shared by the layer classes.</summary>
internal static class LayerUtil
{
    /// <summary>A new uninitialised float32 CPU parameter of the given shape (the temporary handle is freed at once).</summary>
    internal static Parameter NewParameter(params long[] shape)
    {
        using var t = torch.empty(shape);
        return new Parameter(t);
    }

    /// <summary>PyTorch's default init of a conv/linear layer: weight kaiming_uniform_(a = sqrt(5)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).</summary>
    internal static void DefaultInit(Tensor weight, Tensor? bias)
    {
        torch.nn.init.kaiming_uniform_(weight, Math.Sqrt(5));
        if (bias is null) return;
        var (fanIn, _) = torch.nn.init.calculate_fan_in_and_fan_out(weight);
        double bound = fanIn > 0 ? 1 / Math.Sqrt(fanIn) : 0;
        torch.nn.init.uniform_(bias, -bound, bound);
    }

    internal static long[] Pair(long[] v, string name)
    {
        ArgumentNullException.ThrowIfNull(v, name);
        return v.Length switch
        {
            1 => [v[0], v[0]],
            2 => (long[])v.Clone(),
            _ => throw new ArgumentException($"{name} needs 1 or 2 values, got {v.Length}", name),
        };
    }

    internal static void Positive(long v, string name)
    {
        if (v <= 0) throw new ArgumentOutOfRangeException(name, v, $"{name} must be positive");
    }
}

/// <summary>
/// 2-D convolution over (N, C_in, H, W) -> (N, C_out, H_out, W_out), as torch.nn.Conv2d. Parameters: weight
/// (C_out, C_in / groups, kH, kW) and bias (C_out), initialised as PyTorch does (kaiming_uniform_ with a = sqrt(5), bias
/// U(-1/sqrt(fan_in), 1/sqrt(fan_in))), drawing from the <see cref="torch.nn.init.UseGenerator"/> generator when one is set.
/// </summary>
public sealed class Conv2d : ConvNd
{
    public Conv2d(long in_channels, long out_channels, long[] kernel_size, long[]? stride = null, long[]? padding = null,
        long[]? dilation = null, long groups = 1, bool bias = true)
        : base(nameof(Conv2d), in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, transposed: false)
    {
    }

    public override Tensor forward(Tensor input)
        => torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups);
}

/// <summary>
/// 2-D transposed convolution, as torch.nn.ConvTranspose2d: (N, C_in, H, W) -> (N, C_out, H_out, W_out) with
/// H_out = (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1. Parameters: weight
/// (C_in, C_out / groups, kH, kW) and bias (C_out), initialised as PyTorch does.
/// </summary>
public sealed class ConvTranspose2d : ConvNd
{
    public ConvTranspose2d(long in_channels, long out_channels, long[] kernel_size, long[]? stride = null, long[]? padding = null,
        long[]? output_padding = null, long groups = 1, bool bias = true, long[]? dilation = null)
        : base(nameof(ConvTranspose2d), in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, transposed: true)
    {
        this.output_padding = LayerUtil.Pair(output_padding ?? [0], nameof(output_padding));
    }

    public long[] output_padding { get; }

    public override Tensor forward(Tensor input)
        => torch.nn.functional.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation);
}

/// <summary>
/// What Conv2d and ConvTranspose2d share (as PyTorch's _ConvNd): argument checks, geometry, the weight and bias
/// parameters and their default initialisation. The weight is (C_out, C_in / groups, kH, kW) for a convolution and
/// (C_in, C_out / groups, kH, kW) for a transposed one.
/// </summary>
public abstract class ConvNd : torch.nn.Module<Tensor, Tensor>
{
    private Parameter _weight;
    private Parameter? _bias;

    private protected ConvNd(string name, long in_channels, long out_channels, long[] kernel_size, long[]? stride, long[]? padding,
        long[]? dilation, long groups, bool bias, bool transposed) : base(name)
    {
        LayerUtil.Positive(in_channels, nameof(in_channels));
        LayerUtil.Positive(out_channels, nameof(out_channels));
        LayerUtil.Positive(groups, nameof(groups));
        if (in_channels % groups != 0) throw new ArgumentException($"in_channels ({in_channels}) must be divisible by groups ({groups})");
        if (out_channels % groups != 0) throw new ArgumentException($"out_channels ({out_channels}) must be divisible by groups ({groups})");
        this.in_channels = in_channels;
        this.out_channels = out_channels;
        this.kernel_size = LayerUtil.Pair(kernel_size, nameof(kernel_size));
        this.stride = LayerUtil.Pair(stride ?? [1], nameof(stride));
        this.padding = LayerUtil.Pair(padding ?? [0], nameof(padding));
        this.dilation = LayerUtil.Pair(dilation ?? [1], nameof(dilation));
        this.groups = groups;
        var (d0, d1) = transposed ? (in_channels, out_channels / groups) : (out_channels, in_channels / groups);
        _weight = RegisterParameter("weight", LayerUtil.NewParameter(d0, d1, this.kernel_size[0], this.kernel_size[1]))!;
        _bias = RegisterParameter("bias", bias ? LayerUtil.NewParameter(out_channels) : null);
        reset_parameters();
    }

    public long in_channels { get; }
    public long out_channels { get; }
    public long[] kernel_size { get; }
    public long[] stride { get; }
    public long[] padding { get; }
    public long[] dilation { get; }
    public long groups { get; }

    /// <summary>The kernel. Setting registers a new parameter (the old one is disposed).</summary>
    public Parameter weight { get => _weight; set => _weight = RegisterParameter("weight", value ?? throw new ArgumentNullException(nameof(value)))!; }

    /// <summary>(C_out), or null when created with bias: false.</summary>
    public Parameter? bias { get => _bias; set => _bias = RegisterParameter("bias", value); }

    /// <summary>Re-draws the weights with PyTorch's default initialisation.</summary>
    public void reset_parameters() => LayerUtil.DefaultInit(_weight, _bias);
}

/// <summary>
/// Affine map y = x W^T + b over the last dimension, as torch.nn.Linear: (*, in_features) -> (*, out_features).
/// Parameters weight (out_features, in_features) and bias (out_features), initialised as PyTorch does.
/// </summary>
public sealed class Linear : torch.nn.Module<Tensor, Tensor>
{
    private Parameter _weight;
    private Parameter? _bias;

    public Linear(long in_features, long out_features, bool bias = true) : base(nameof(Linear))
    {
        LayerUtil.Positive(in_features, nameof(in_features));
        LayerUtil.Positive(out_features, nameof(out_features));
        this.in_features = in_features;
        this.out_features = out_features;
        _weight = RegisterParameter("weight", LayerUtil.NewParameter(out_features, in_features))!;
        _bias = RegisterParameter("bias", bias ? LayerUtil.NewParameter(out_features) : null);
        reset_parameters();
    }

    public long in_features { get; }
    public long out_features { get; }

    /// <summary>(out_features, in_features).</summary>
    public Parameter weight { get => _weight; set => _weight = RegisterParameter("weight", value ?? throw new ArgumentNullException(nameof(value)))!; }

    /// <summary>(out_features), or null when created with bias: false.</summary>
    public Parameter? bias { get => _bias; set => _bias = RegisterParameter("bias", value); }

    /// <summary>Re-draws the weights with PyTorch's default initialisation.</summary>
    public void reset_parameters() => LayerUtil.DefaultInit(_weight, _bias);

    public override Tensor forward(Tensor input) => torch.nn.functional.linear(input, _weight, _bias);
}
