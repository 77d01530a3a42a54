namespace MLNetMedSeg.Torch.Modules;

/// <summary>
/// Batch normalization over the channel dimension (shared by <see cref="BatchNorm1d"/>, <see cref="BatchNorm2d"/> and
/// <see cref="BatchNorm3d"/>). Parameters weight (ones) and bias (zeros) when affine; buffers running_mean (zeros),
/// running_var (ones) and num_batches_tracked (int64 0) when track_running_stats. In training mode the batch statistics
/// normalize the input and the running statistics are updated (r = (1 - momentum) r + momentum * batch stat, unbiased
/// variance); in evaluation mode the running statistics are used.
/// </summary>
public abstract class BatchNorm : torch.nn.Module<Tensor, Tensor>
{
    private Parameter? _weight;
    private Parameter? _bias;
    private readonly Tensor? _runningMean;
    private readonly Tensor? _runningVar;
    private readonly Tensor? _numBatchesTracked;

    protected BatchNorm(string name, long num_features, double eps, double momentum, bool affine, bool track_running_stats) : base(name)
    {
        LayerUtil.Positive(num_features, nameof(num_features));
        this.num_features = num_features;
        this.eps = eps;
        this.momentum = momentum;
        this.affine = affine;
        this.track_running_stats = track_running_stats;
        if (affine)
        {
            _weight = RegisterParameter("weight", LayerUtil.NewParameter(num_features));
            _bias = RegisterParameter("bias", LayerUtil.NewParameter(num_features));
        }
        else
        {
            RegisterParameter("weight", null);
            RegisterParameter("bias", null);
        }
        if (track_running_stats)
        {
            _runningMean = RegisterBuffer("running_mean", torch.zeros([num_features]));
            _runningVar = RegisterBuffer("running_var", torch.ones([num_features]));
            _numBatchesTracked = RegisterBuffer("num_batches_tracked", torch.zeros([], ScalarType.Int64));
        }
        else
        {
            RegisterBuffer("running_mean", null);
            RegisterBuffer("running_var", null);
            RegisterBuffer("num_batches_tracked", null);
        }
        reset_parameters();
    }

    public long num_features { get; }
    public double eps { get; }
    public double momentum { get; }
    public bool affine { get; }
    public bool track_running_stats { get; }

    /// <summary>Scale (num_features), or null when not affine.</summary>
    public Parameter? weight { get => _weight; set => _weight = RegisterParameter("weight", value); }

    /// <summary>Shift (num_features), or null when not affine.</summary>
    public Parameter? bias { get => _bias; set => _bias = RegisterParameter("bias", value); }

    /// <summary>Running mean (num_features), owned by the module; null without track_running_stats.</summary>
    public Tensor? running_mean => _runningMean;

    /// <summary>Running (unbiased) variance (num_features), owned by the module; null without track_running_stats.</summary>
    public Tensor? running_var => _runningVar;

    /// <summary>Number of training batches seen (int64 scalar), owned by the module; null without track_running_stats.</summary>
    public Tensor? num_batches_tracked => _numBatchesTracked;

    /// <summary>Resets the running statistics (mean 0, variance 1, count 0).</summary>
    public void reset_running_stats()
    {
        if (_runningMean is null) return;
        torch.nn.init.zeros_(_runningMean);
        torch.nn.init.ones_(_runningVar!);
        torch.nn.init.zeros_(_numBatchesTracked!);
    }

    /// <summary>Resets the running statistics and sets weight to 1 and bias to 0.</summary>
    public void reset_parameters()
    {
        reset_running_stats();
        if (_weight is not null) torch.nn.init.ones_(_weight);
        if (_bias is not null) torch.nn.init.zeros_(_bias);
    }

    /// <summary>The input ranks this layer accepts.</summary>
    protected abstract bool CheckDim(long dim);

    public override Tensor forward(Tensor input)
    {
        long d = input.dim();
        if (!CheckDim(d)) throw new ArgumentException($"{Name}: unexpected {d}-D input", nameof(input));
        if (training && _numBatchesTracked is not null)
            using (torch.no_grad()) _numBatchesTracked.add_(1);
        bool useBatchStats = training || _runningMean is null;
        return torch.nn.functional.batch_norm(input, _runningMean, _runningVar, _weight, _bias, useBatchStats, momentum, eps);
    }
}

/// <summary>Batch normalization of (N, C) or (N, C, L) inputs, as torch.nn.BatchNorm1d.</summary>
public sealed class BatchNorm1d(long num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true, bool track_running_stats = true)
    : BatchNorm(nameof(BatchNorm1d), num_features, eps, momentum, affine, track_running_stats)
{
    protected override bool CheckDim(long dim) => dim is 2 or 3;
}

/// <summary>Batch normalization of (N, C, H, W) inputs, as torch.nn.BatchNorm2d.</summary>
public sealed class BatchNorm2d(long num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true, bool track_running_stats = true)
    : BatchNorm(nameof(BatchNorm2d), num_features, eps, momentum, affine, track_running_stats)
{
    protected override bool CheckDim(long dim) => dim == 4;
}

/// <summary>Batch normalization of (N, C, D, H, W) inputs, as torch.nn.BatchNorm3d.</summary>
public sealed class BatchNorm3d(long num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true, bool track_running_stats = true)
    : BatchNorm(nameof(BatchNorm3d), num_features, eps, momentum, affine, track_running_stats)
{
    protected override bool CheckDim(long dim) => dim == 5;
}

/// <summary>
/// Group normalization, as torch.nn.GroupNorm: the channels of (N, C, ...) are split into num_groups groups, each
/// normalized over its channels and spatial positions; then a per-channel affine map (weight ones, bias zeros).
/// Same in training and evaluation.
/// </summary>
public sealed class GroupNorm : torch.nn.Module<Tensor, Tensor>
{
    private Parameter? _weight;
    private Parameter? _bias;

    public GroupNorm(long num_groups, long num_channels, double eps = 1e-5, bool affine = true) : base(nameof(GroupNorm))
    {
        LayerUtil.Positive(num_groups, nameof(num_groups));
        LayerUtil.Positive(num_channels, nameof(num_channels));
        if (num_channels % num_groups != 0)
            throw new ArgumentException($"num_channels ({num_channels}) must be divisible by num_groups ({num_groups})");
        this.num_groups = num_groups;
        this.num_channels = num_channels;
        this.eps = eps;
        this.affine = affine;
        _weight = RegisterParameter("weight", affine ? LayerUtil.NewParameter(num_channels) : null);
        _bias = RegisterParameter("bias", affine ? LayerUtil.NewParameter(num_channels) : null);
        reset_parameters();
    }

    public long num_groups { get; }
    public long num_channels { get; }
    public double eps { get; }
    public bool affine { get; }

    /// <summary>Per-channel scale (num_channels), or null when not affine.</summary>
    public Parameter? weight { get => _weight; set => _weight = RegisterParameter("weight", value); }

    /// <summary>Per-channel shift (num_channels), or null when not affine.</summary>
    public Parameter? bias { get => _bias; set => _bias = RegisterParameter("bias", value); }

    /// <summary>Sets weight to 1 and bias to 0.</summary>
    public void reset_parameters()
    {
        if (_weight is not null) torch.nn.init.ones_(_weight);
        if (_bias is not null) torch.nn.init.zeros_(_bias);
    }

    public override Tensor forward(Tensor input) => torch.nn.functional.group_norm(input, num_groups, _weight, _bias, eps);
}

/// <summary>
/// Layer normalization over the trailing dimensions given by normalized_shape, as torch.nn.LayerNorm, followed by an
/// element-wise affine map (weight ones, bias zeros, both of shape normalized_shape) when elementwise_affine.
/// </summary>
public sealed class LayerNorm : torch.nn.Module<Tensor, Tensor>
{
    private Parameter? _weight;
    private Parameter? _bias;

    public LayerNorm(long[] normalized_shape, double eps = 1e-5, bool elementwise_affine = true) : base(nameof(LayerNorm))
    {
        ArgumentNullException.ThrowIfNull(normalized_shape);
        if (normalized_shape.Length == 0) throw new ArgumentException("normalized_shape must have at least one dimension", nameof(normalized_shape));
        this.normalized_shape = (long[])normalized_shape.Clone();
        this.eps = eps;
        this.elementwise_affine = elementwise_affine;
        _weight = RegisterParameter("weight", elementwise_affine ? LayerUtil.NewParameter(this.normalized_shape) : null);
        _bias = RegisterParameter("bias", elementwise_affine ? LayerUtil.NewParameter(this.normalized_shape) : null);
        reset_parameters();
    }

    public long[] normalized_shape { get; }
    public double eps { get; }
    public bool elementwise_affine { get; }

    /// <summary>Element-wise scale (normalized_shape), or null without elementwise_affine.</summary>
    public Parameter? weight { get => _weight; set => _weight = RegisterParameter("weight", value); }

    /// <summary>Element-wise shift (normalized_shape), or null without elementwise_affine.</summary>
    public Parameter? bias { get => _bias; set => _bias = RegisterParameter("bias", value); }

    /// <summary>Sets weight to 1 and bias to 0.</summary>
    public void reset_parameters()
    {
        if (_weight is not null) torch.nn.init.ones_(_weight);
        if (_bias is not null) torch.nn.init.zeros_(_bias);
    }

    public override Tensor forward(Tensor input) => torch.nn.functional.layer_norm(input, normalized_shape, _weight, _bias, eps);
}
