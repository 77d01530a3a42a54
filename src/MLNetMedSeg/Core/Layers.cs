using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Core;

/// <summary>
/// Layers whose TorchSharp versions differ from PyTorch's: every network of the library builds them from here.
/// </summary>
public static class Layers
{
    /// <summary>
    /// Group normalisation as <c>torch.nn.GroupNorm</c>: weight 1, bias 0 at construction. (TorchSharp 0.107's
    /// <c>nn.GroupNorm</c> leaves both uninitialised, so outputs are garbage until weights are loaded.)
    /// </summary>
    public static GroupNorm GroupNorm(long numGroups, long numChannels, double eps = 1e-5, bool affine = true)
        => new(numGroups, numChannels, eps, affine);

    /// <summary>
    /// Batch normalisation as <c>nn.BatchNorm2d</c> (TorchSharp's module, <see cref="KeptScalarBatchNorm2d"/>) whose
    /// training-mode forward keeps its Scalars alive. Same parameters and buffers (weight, bias, running_mean,
    /// running_var, num_batches_tracked), same outputs and statistics.
    /// </summary>
    public static BatchNorm BatchNorm2d(long numFeatures, double eps = 1e-05, double momentum = 0.1, bool affine = true,
        bool trackRunningStats = true, Device? device = null, ScalarType? dtype = null)
        => new KeptScalarBatchNorm2d(numFeatures, eps, momentum, affine, trackRunningStats, device, dtype);

    /// <summary>Dropout that draws its masks from a settable generator (seeded runs), else from the global one.</summary>
    public static SeededDropout Dropout(double p = 0.5) => new(p, channelwise: false);

    /// <summary>Channel dropout (whole feature maps) with a settable generator, as <c>nn.Dropout2d</c>.</summary>
    public static SeededDropout Dropout2d(double p = 0.5) => new(p, channelwise: true);
}

/// <summary>Group normalisation over (N, C, *) with affine weight (ones) and bias (zeros), state-dict names weight/bias.</summary>
public sealed class GroupNorm : MedSegModule<Tensor, Tensor>
{
    /// <summary>The number of groups.</summary>
    public long NumGroups { get; }

    /// <summary>The number of channels.</summary>
    public long NumChannels { get; }

    /// <summary>The epsilon added to the variance.</summary>
    public double Eps { get; }

    private Parameter? _weight, _bias;

    /// <summary>The affine scale (null without affine). Setting it replaces (and disposes) the registered parameter.</summary>
    public Parameter? weight
    {
        get => _weight;
        set
        {
            if (ReferenceEquals(value, _weight)) return;
            _weight?.Dispose();
            _weight = (Parameter?)value?.DetachFromDisposeScope();
            ConditionallyRegisterParameter("weight", _weight);
        }
    }

    /// <summary>The affine shift (null without affine). Setting it replaces (and disposes) the registered parameter.</summary>
    public Parameter? bias
    {
        get => _bias;
        set
        {
            if (ReferenceEquals(value, _bias)) return;
            _bias?.Dispose();
            _bias = (Parameter?)value?.DetachFromDisposeScope();
            ConditionallyRegisterParameter("bias", _bias);
        }
    }

    public GroupNorm(long numGroups, long numChannels, double eps = 1e-5, bool affine = true) : base(nameof(GroupNorm))
    {
        if (numGroups <= 0 || numChannels % numGroups != 0)
            throw new ArgumentException($"GroupNorm: {numChannels} channels cannot be split into {numGroups} groups", nameof(numGroups));
        NumGroups = numGroups; NumChannels = numChannels; Eps = eps;
        if (affine)
        {
            weight = new Parameter(torch.ones(numChannels));
            bias = new Parameter(torch.zeros(numChannels));
        }
    }

    public override Tensor forward(Tensor input)
    {
        if (input.dim() < 2 || input.size(1) != NumChannels)
            throw new ArgumentException($"GroupNorm({NumGroups}, {NumChannels}): expected (N, {NumChannels}, ...), got [{string.Join(", ", input.shape)}]");
        return nn.functional.group_norm(input, NumGroups, weight, bias, Eps);
    }
}

/// <summary>
/// Dropout with an optional <see cref="Generator"/>: the same generator state gives the same masks (TorchSharp's
/// <c>nn.Dropout</c> draws from the global generator only). Element-wise, or per channel as <c>nn.Dropout2d</c>.
/// Identity in evaluation mode.
/// </summary>
public sealed class SeededDropout : MedSegModule<Tensor, Tensor>
{
    /// <summary>The drop probability.</summary>
    public double P { get; }

    /// <summary>Whether whole channels (feature maps) are dropped.</summary>
    public bool Channelwise { get; }

    /// <summary>The generator masks are drawn from (null: the global generator). Not owned.</summary>
    public Generator? generator { get; set; }

    public SeededDropout(double p, bool channelwise) : base(channelwise ? "Dropout2d" : "Dropout")
    {
        if (p is < 0 or > 1) throw new ArgumentOutOfRangeException(nameof(p), p, "dropout probability must be in [0, 1]");
        P = p; Channelwise = channelwise;
    }

    public override Tensor forward(Tensor input)
    {
        if (!training || P == 0) return input.alias();
        if (P == 1) return input * S(0);
        using var scope = NewDisposeScope();
        long[] shape = Channelwise && input.dim() >= 2
            ? [.. input.shape[..2], .. Enumerable.Repeat(1L, (int)input.dim() - 2)]
            : input.shape;
        var keep = SeededRandom.Rand(shape, input.dtype, input.device, generator).ge_(S(P)).to(input.dtype);
        return (input * keep * S(1.0 / (1.0 - P))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// TorchSharp 0.107's <c>BatchNorm2d</c> with its training-mode forward written with kept Scalars (see <see cref="Scalars"/>).
/// </summary>
/// <remarks>
/// TorchSharp's <c>BatchNorm2d</c> is sealed and its constructor internal; its forward is <c>BatchNorm.forward</c>,
/// which in training mode runs <c>num_batches_tracked.add_(1)</c> (an implicit int Scalar, plus add_'s implicit alpha
/// of 1) and, without a momentum, <c>(double)num_batches_tracked</c> (a Scalar nobody disposes). This derives from the
/// same public base (<c>BatchNorm</c> → <c>NormBase</c>, which owns and registers weight, bias, running_mean,
/// running_var and num_batches_tracked: state dicts and saved models are unchanged), checks the input as
/// <c>BatchNorm2d</c> does, and overrides forward with <c>BatchNorm.forward</c> statement for statement, the two numbers
/// as kept Scalars: the same <c>functional.batch_norm</c> call, hence the same outputs and running statistics.
/// </remarks>
public sealed class KeptScalarBatchNorm2d : BatchNorm
{
    /// <summary>As <c>nn.BatchNorm2d(numFeatures, eps, momentum, affine, trackRunningStats, device, dtype)</c>.</summary>
    public KeptScalarBatchNorm2d(long numFeatures, double eps = 1e-05, double momentum = 0.1, bool affine = true,
        bool trackRunningStats = true, Device? device = null, ScalarType? dtype = null)
        // TorchSharp's BatchNorm2d names itself nameof(BatchNorm1d) (sic); the name is kept so that nothing differs.
        : base(numFeatures, eps, momentum, affine, trackRunningStats, device, dtype, nameof(BatchNorm1d))
    {
    }

    /// <summary>As <c>BatchNorm2d</c>: 4-D input (N, C, H, W) only.</summary>
    protected override void ValidateInputDimensions(Tensor input)
    {
        if (input.ndim != 4)
            throw new ArgumentException($"expected 4D input, but got {input.ndim}D input.");
    }

    /// <summary>TorchSharp 0.107's <c>BatchNorm.forward</c>, each number a kept Scalar.</summary>
    public override Tensor forward(Tensor input)
    {
        ValidateInputDimensions(input);

        double exponential_average_factor = momentum is null ? 0.0 : momentum.Value;

        if (training && track_running_stats)
        {
            if (num_batches_tracked is not null)
            {
                num_batches_tracked.add_(S(1), S(1));
                exponential_average_factor = momentum is null ? 1.0 / num_batches_tracked.DoubleValue() : momentum.Value;
            }
        }

        var bn_training = training ? true : running_mean is null && running_var is null;
        var pr = !training || track_running_stats;

        return nn.functional.batch_norm(input, pr ? running_mean : null, pr ? running_var : null, weight, bias, bn_training, exponential_average_factor, eps);
    }
}
