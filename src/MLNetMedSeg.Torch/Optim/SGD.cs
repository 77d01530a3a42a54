using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch.Optim;

/// <summary>Hyper-parameters of <see cref="SGD"/> (PyTorch's names and defaults).</summary>
public sealed class SGDOptions : OptimizerOptions
{
    /// <summary>Momentum factor (default 0: plain SGD).</summary>
    public double momentum { get; set; }
    /// <summary>Dampening of the momentum (default 0).</summary>
    public double dampening { get; set; }
    /// <summary>L2 penalty added to the gradient (default 0).</summary>
    public double weight_decay { get; set; }
    /// <summary>Nesterov momentum (needs momentum &gt; 0 and dampening 0).</summary>
    public bool nesterov { get; set; }
    /// <summary>Maximize the objective instead of minimizing it.</summary>
    public bool maximize { get; set; }

    public override void Validate()
    {
        base.Validate();
        if (!(momentum >= 0)) throw new ArgumentOutOfRangeException(nameof(momentum), momentum, "invalid momentum value: must be >= 0");
        if (!(weight_decay >= 0)) throw new ArgumentOutOfRangeException(nameof(weight_decay), weight_decay, "invalid weight_decay value: must be >= 0");
        if (nesterov && (momentum <= 0 || dampening != 0))
            throw new ArgumentException("Nesterov momentum requires a momentum and zero dampening");
    }
}

/// <summary>
/// Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay, as torch.optim.SGD
/// (PyTorch 1.13's single-tensor update): with d = g + wd·p, the buffer b = d on the first step and
/// b = μ·b + (1 − dampening)·d after; the update is p −= lr·(nesterov ? d + μ·b : b) (or lr·d without momentum).
/// </summary>
public sealed class SGD : Optimizer
{
    public SGD(IEnumerable<Parameter> parameters, SGDOptions options) : base(parameters, options) { }

    protected override void Update(OptimizerOptions options, Parameter parameter, Tensor grad, ParameterState state)
    {
        var o = (SGDOptions)options;
        var buf = o.momentum != 0 ? state.Get("momentum_buffer") : null;
        LibTorch.Check(LibTorch.mt_sgd_step(parameter.Handle, grad.Handle, buf?.Handle ?? TensorHandle.Null, o.lr, o.momentum,
            o.dampening, o.weight_decay, o.nesterov, o.maximize, out IntPtr newBuf));
        if (newBuf != IntPtr.Zero) state.Set("momentum_buffer", new Tensor(newBuf));
        state.step++;
    }
}
