using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Core;

/// <summary>
/// The library's optimizers: TorchSharp's Adam, AdamW and RMSProp with their <c>step()</c> written with kept Scalars
/// (<see cref="Scalars"/>). Use these instead of <c>torch.optim.Adam</c>/<c>AdamW</c>/<c>RMSProp</c>.
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp 0.107's <c>step()</c> hands every hyperparameter to libtorch through an implicit Scalar
/// (<c>exp_avg.mul_(beta1).add_(grad, alpha: 1 - beta1)</c>, <c>denom.add_(eps)</c>, …): temporaries a garbage
/// collection on another thread may free while libtorch reads them. Each class of <see cref="KeptScalarOptimizers"/>
/// (nested, so the name is TorchSharp's) derives from TorchSharp's own and has its name (so it <em>is</em> an <c>Adam</c>/<c>AdamW</c>/<c>RMSProp</c>: same options, same param groups, same per-parameter
/// <c>State</c>, same <c>state_dict</c>/<c>load_state_dict</c> format — the saved state starts with the optimizer's
/// <c>GetType().Name</c>, checked on load, hence the same class names —, same learning-rate schedulers) and overrides
/// <c>step</c> with TorchSharp's update statement for statement, each number as <c>S(v)</c> of the very value and type
/// the implicit conversion made (an int where TorchSharp wrote <c>1</c> or <c>-1</c>, a double elsewhere) and each
/// implicit alpha or value of 1 written out. The updates are bit-identical to TorchSharp's (<c>KeptScalarOptimizerTests</c>).
/// </para>
/// </remarks>
public static class Optimizers
{
    /// <summary><c>torch.optim.Adam(parameters, …)</c> with a kept-Scalar <c>step()</c>.</summary>
    public static Adam Adam(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false) =>
        new KeptScalarOptimizers.Adam(parameters, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);

    /// <summary><c>torch.optim.AdamW(parameters, …)</c> with a kept-Scalar <c>step()</c>.</summary>
    public static AdamW AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
        double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false) =>
        new KeptScalarOptimizers.AdamW(parameters, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize);

    /// <summary><c>torch.optim.RMSProp(parameters, …)</c> with a kept-Scalar <c>step()</c>.</summary>
    public static RMSProp RMSProp(IEnumerable<Parameter> parameters, double lr = 0.01, double alpha = 0.99, double eps = 1e-8,
        double weight_decay = 0, double momentum = 0, bool centered = false, bool maximize = false) =>
        new KeptScalarOptimizers.RMSProp(parameters, lr, alpha, eps, weight_decay, momentum, centered, maximize);
}
