using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Core;

/// <summary>TorchSharp's optimizers with kept-Scalar steps, made by <see cref="Optimizers"/>.</summary>
public static partial class KeptScalarOptimizers
{
    /// <summary>
    /// TorchSharp's <see cref="TorchSharp.Modules.RMSProp"/>, named as it is (its saved state names the optimizer by
    /// <c>GetType().Name</c>: checkpoints of either load into the other), whose <c>step()</c> keeps its Scalars alive (see <see cref="Optimizers"/>).</summary>
    public sealed class RMSProp : TorchSharp.Modules.RMSProp
    {
        /// <summary>As <c>torch.optim.RMSProp(parameters, …)</c>.</summary>
        public RMSProp(IEnumerable<Parameter> parameters, double lr = 0.01, double alpha = 0.99, double eps = 1e-8,
            double weight_decay = 0, double momentum = 0, bool centered = false, bool maximize = false)
            : base(parameters, lr, alpha, eps, weight_decay, momentum, centered, maximize)
        {
        }

        /// <summary>TorchSharp 0.107's <c>RMSProp.step</c>, each number a kept Scalar.</summary>
        public override Tensor step(Func<Tensor>? closure = null)
        {
            return _step<ParamGroup>(group =>
            {
                var options = (Options)group.Options;
                var maximize = options.maximize!.Value;
                var momentum = options.momentum!.Value;
                var alpha = options.alpha!.Value;
                var weight_decay = options.weight_decay!.Value;
                var centered = options.centered!.Value;
                var eps = options.eps!.Value;
                var lr = options.LearningRate!.Value;

                foreach (var param in group.Parameters)
                {
                    var state = (State)_state[param.Handle];
                    var grad = param.grad;
                    if (grad is null) continue;
                    if (maximize) grad = -grad;

                    state.step += 1;

                    if (weight_decay != 0) grad = grad.add(param, S(weight_decay));

                    state.square_avg.mul_(S(alpha)).addcmul_(grad, grad, S(1 - alpha));

                    Tensor avg;
                    if (centered)
                    {
                        var grad_avg = state.grad_avg;
                        grad_avg.mul_(S(alpha)).add_(grad, S(1 - alpha));
                        avg = state.square_avg.addcmul(grad_avg, grad_avg, S(-1)).sqrt_().add_(S(eps), S(1));
                    }
                    else
                    {
                        avg = state.square_avg.sqrt().add_(S(eps), S(1));
                    }

                    if (momentum > 0)
                    {
                        var buf = state.momentum_buffer;
                        buf.mul_(S(momentum)).addcdiv_(grad, avg, S(1));
                        param.add_(buf, S(-lr));
                    }
                    else
                    {
                        param.addcdiv_(grad, avg, S(-lr));
                    }
                }
            }, closure);
        }
    }
}
