using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch.Optim;

/// <summary>Hyper-parameters of <see cref="RMSprop"/> (PyTorch's names and defaults).</summary>
public sealed class RMSpropOptions : OptimizerOptions
{
    /// <summary>Smoothing constant of the squared-gradient average (default 0.99).</summary>
    public double alpha { get; set; } = 0.99;
    /// <summary>Added to the denominator for numerical stability (default 1e-8).</summary>
    public double eps { get; set; } = 1e-8;
    /// <summary>L2 penalty added to the gradient (default 0).</summary>
    public double weight_decay { get; set; }
    /// <summary>Momentum factor (default 0).</summary>
    public double momentum { get; set; }
    /// <summary>Normalize by an estimate of the gradient's variance (subtracting the squared mean gradient).</summary>
    public bool centered { get; set; }
    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool maximize { get; set; }

    public override void Validate()
    {
        base.Validate();
        if (!(eps >= 0)) throw new ArgumentOutOfRangeException(nameof(eps), eps, "invalid epsilon value: must be >= 0");
        if (!(momentum >= 0)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "invalid momentum value: must be >= 0");
        if (!(weight_decay >= 0)) throw new ArgumentOutOfRangeException(nameof(weight_decay), weight_decay, "invalid weight_decay value: must be >= 0");
        if (!(alpha >= 0)) throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "invalid alpha value: must be >= 0");
    }
}

/// <summary>
/// RMSprop, as torch.optim.RMSprop (PyTorch 1.13's single-tensor update): s = α·s + (1−α)·g²;
/// avg = √(s − ḡ²) when centered (ḡ = α·ḡ + (1−α)·g) else √s, plus eps; then p −= lr·g/avg, or with momentum
/// b = μ·b + g/avg and p −= lr·b. State: <c>square_avg</c> (+ <c>grad_avg</c>, <c>momentum_buffer</c>).
/// </summary>
public sealed class RMSprop : Optimizer
{
    public RMSprop(IEnumerable<Parameter> parameters, RMSpropOptions options) : base(parameters, options) { }

    protected override void Update(OptimizerOptions options, Parameter parameter, Tensor grad, ParameterState state)
    {
        var o = (RMSpropOptions)options;
        var squareAvg = state.Get("square_avg") ?? state.Set("square_avg", ZerosState(parameter));
        Tensor? gradAvg = null, buf = null;
        if (o.centered) gradAvg = state.Get("grad_avg") ?? state.Set("grad_avg", ZerosState(parameter));
        if (o.momentum > 0) buf = state.Get("momentum_buffer") ?? state.Set("momentum_buffer", ZerosState(parameter));
        LibTorch.Check(LibTorch.mt_rmsprop_step(parameter.Handle, grad.Handle, squareAvg.Handle, gradAvg?.Handle ?? TensorHandle.Null,
            buf?.Handle ?? TensorHandle.Null, o.lr, o.alpha, o.eps, o.weight_decay, o.momentum, o.centered, o.maximize));
        state.step++;
    }
}
