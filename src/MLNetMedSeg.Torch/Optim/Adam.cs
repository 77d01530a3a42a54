using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch.Optim;

/// <summary>Hyper-parameters of <see cref="Adam"/> and <see cref="AdamW"/> (PyTorch's names and defaults; betas split in two).</summary>
public sealed class AdamOptions : OptimizerOptions
{
    /// <summary>Decay of the first-moment (mean) estimate (default 0.9).</summary>
    public double beta1 { get; set; } = 0.9;
    /// <summary>Decay of the second-moment (uncentered variance) estimate (default 0.999).</summary>
    public double beta2 { get; set; } = 0.999;
    /// <summary>Added to the denominator for numerical stability (default 1e-8).</summary>
    public double eps { get; set; } = 1e-8;
    /// <summary>Weight decay: an L2 term added to the gradient for Adam, decoupled (p *= 1 − lr·wd) for AdamW.</summary>
    public double weight_decay { get; set; }
    /// <summary>Use the AMSGrad variant (the running maximum of the second moment).</summary>
    public bool amsgrad { get; set; }
    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool maximize { get; set; }
    /// <summary>
    /// Update all parameters of a group with libtorch's multi-tensor (<c>_foreach_*</c>) kernels instead of one
    /// parameter at a time, as PyTorch's <c>foreach</c> option: a few kernel launches per step instead of eight per
    /// parameter, which matters on a GPU. Null (the default, as PyTorch) uses it when every parameter of the group is
    /// on a GPU. Not used with <see cref="amsgrad"/>. Same arithmetic either way (results agree to rounding).
    /// </summary>
    public bool? @foreach { get; set; }

    public override void Validate()
    {
        base.Validate();
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "invalid epsilon value: must be >= 0");
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), beta1, "invalid beta1: must be in [0, 1)");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), beta2, "invalid beta2: must be in [0, 1)");
        if (!(weight_decay >= 0)) throw new ArgumentOutOfRangeException(nameof(weight_decay), weight_decay, "invalid weight_decay value: must be >= 0");
    }
}

/// <summary>
/// Adam, as torch.optim.Adam (PyTorch 1.13's single-tensor update): m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g²,
/// p −= lr/(1−β1^t) · m / (√v/√(1−β2^t) + eps), with g += wd·p first when weight_decay is set.
/// State per parameter: <c>exp_avg</c>, <c>exp_avg_sq</c> (and <c>max_exp_avg_sq</c> with amsgrad). On a GPU (or with
/// <see cref="AdamOptions.@foreach"/>) a group is updated with the multi-tensor kernels of PyTorch's default CUDA path.
/// </summary>
public class Adam : Optimizer
{
    private readonly bool _decoupled;

    public Adam(IEnumerable<Parameter> parameters, AdamOptions options) : this(parameters, options, decoupled: false) { }

    private protected Adam(IEnumerable<Parameter> parameters, AdamOptions options, bool decoupled) : base(parameters, options)
        => _decoupled = decoupled;

    protected override void Update(OptimizerOptions options, Parameter parameter, Tensor grad, ParameterState state)
    {
        var o = (AdamOptions)options;
        var (expAvg, expAvgSq) = Moments(parameter, state);
        Tensor? maxSq = null;
        if (o.amsgrad) maxSq = state.Get("max_exp_avg_sq") ?? state.Set("max_exp_avg_sq", ZerosState(parameter));
        long step = state.step + 1;
        LibTorch.Check(LibTorch.mt_adam_step(parameter.Handle, grad.Handle, expAvg.Handle, expAvgSq.Handle,
            maxSq?.Handle ?? TensorHandle.Null, step, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, o.amsgrad, _decoupled, o.maximize));
        state.step = step;
    }

    /// <summary>The first- and second-moment state of a parameter, created as zeros on its first update.</summary>
    private static (Tensor ExpAvg, Tensor ExpAvgSq) Moments(Tensor parameter, ParameterState state)
        => (state.Get("exp_avg") ?? state.Set("exp_avg", ZerosState(parameter)),
            state.Get("exp_avg_sq") ?? state.Set("exp_avg_sq", ZerosState(parameter)));

    private long _multiTensorStep = -1; // the StepCount during the last step that used the multi-tensor kernels

    /// <summary>Whether the last <see cref="Optimizer.step"/> updated a group with the multi-tensor kernels (see <see cref="AdamOptions.@foreach"/>).</summary>
    public bool UsedMultiTensorKernels => StepCount > 0 && _multiTensorStep == StepCount - 1;

    protected override unsafe bool UpdateGroup(OptimizerOptions options, IReadOnlyList<ParameterUpdate> items)
    {
        var o = (AdamOptions)options;
        if (o.amsgrad || !(o.@foreach ?? items.All(i => i.Parameter.is_cuda))) return false;
        int n = items.Count;
        var parameters = new Tensor[n];
        var grads = new Tensor[n];
        var expAvgs = new Tensor[n];
        var expAvgSqs = new Tensor[n];
        var steps = new long[n];
        for (int k = 0; k < n; k++)
        {
            var (p, g, state) = items[k];
            parameters[k] = p;
            grads[k] = g;
            (expAvgs[k], expAvgSqs[k]) = Moments(p, state);
            steps[k] = state.step + 1;
        }
        using (var hp = new HandleArray(parameters))
        using (var hg = new HandleArray(grads))
        using (var hm = new HandleArray(expAvgs))
        using (var hv = new HandleArray(expAvgSqs))
        fixed (IntPtr* pp = hp.Pointers, pg = hg.Pointers, pm = hm.Pointers, pv = hv.Pointers)
        fixed (long* ps = steps)
            LibTorch.Check(LibTorch.mt_adam_step_foreach(pp, pg, pm, pv, ps, n, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, _decoupled, o.maximize));
        for (int k = 0; k < n; k++) items[k].State.step = steps[k];
        _multiTensorStep = StepCount; // step() counts the step after its groups
        return true;
    }
}

/// <summary>
/// AdamW, as torch.optim.AdamW: Adam with decoupled weight decay, p *= 1 − lr·weight_decay before the Adam update
/// (the gradient is not changed). Default weight_decay 1e-2.
/// </summary>
public sealed class AdamW : Adam
{
    public AdamW(IEnumerable<Parameter> parameters, AdamOptions options) : base(parameters, options, decoupled: true) { }
}
