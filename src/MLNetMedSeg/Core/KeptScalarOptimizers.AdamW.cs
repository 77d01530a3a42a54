using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Core;

/// <summary>TorchSharp's optimizers with kept-Scalar steps, made by <see cref="Optimizers"/>.</summary>
public static partial class KeptScalarOptimizers
{
    /// <summary>
    /// TorchSharp's <see cref="TorchSharp.Modules.AdamW"/>, named as it is (its saved state names the optimizer by
    /// <c>GetType().Name</c>: checkpoints of either load into the other), whose <c>step()</c> keeps its Scalars alive (see <see cref="Optimizers"/>).</summary>
    public sealed class AdamW : TorchSharp.Modules.AdamW
    {
        /// <summary>As <c>torch.optim.AdamW(parameters, …)</c>.</summary>
        public AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
            double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false)
            : base(parameters, lr, beta1, beta2, eps, weight_decay, amsgrad, maximize)
        {
        }

        /// <summary>TorchSharp 0.107's <c>AdamW.step</c>, each number a kept Scalar.</summary>
        public override Tensor step(Func<Tensor>? closure = null)
        {
            return _step<ParamGroup>(group =>
            {
                var options = (Options)group.Options;
                var beta1 = options.beta1!.Value;
                var beta2 = options.beta2!.Value;
                var weight_decay = options.weight_decay!.Value;
                var amsgrad = options.amsgrad!.Value;
                var maximize = options.maximize!.Value;
                var eps = options.eps!.Value;
                var lr = options.LearningRate!.Value;

                foreach (var param in group.Parameters)
                {
                    var state = (State)_state[param.Handle];
                    var grad = param.grad;
                    if (grad is null) continue;
                    if (maximize) grad = -grad;

                    state.step += 1;

                    param.mul_(S(1 - lr * weight_decay));

                    var bias_correction1 = 1 - Math.Pow(beta1, state.step);
                    var bias_correction2 = 1 - Math.Pow(beta2, state.step);

                    state.exp_avg.mul_(S(beta1)).add_(grad, S(1 - beta1));
                    state.exp_avg_sq.mul_(S(beta2)).addcmul_(grad, grad, S(1 - beta2));

                    Tensor denom;
                    if (amsgrad)
                    {
                        var t0 = state.max_exp_avg_sq;
                        state.max_exp_avg_sq = torch.maximum(t0, state.exp_avg_sq).DetachFromDisposeScope();
                        t0.Dispose();
                        denom = (state.max_exp_avg_sq.sqrt() / S(Math.Sqrt(bias_correction2))).add_(S(eps), S(1));
                    }
                    else
                    {
                        denom = (state.exp_avg_sq.sqrt() / S(Math.Sqrt(bias_correction2))).add_(S(eps), S(1));
                    }

                    var step_size = lr / bias_correction1;
                    param.addcdiv_(state.exp_avg, denom, S(-step_size));
                }
            }, closure);
        }
    }
}
