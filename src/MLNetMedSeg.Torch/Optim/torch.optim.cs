using MLNetMedSeg.Torch.Optim;

namespace MLNetMedSeg.Torch;

public static partial class torch
{
    /// <summary>Optimizers (PyTorch's names, arguments and defaults) and <see cref="lr_scheduler"/>.</summary>
    public static partial class optim
    {
        /// <summary>Stochastic gradient descent (optionally with momentum / Nesterov momentum and weight decay); see <see cref="Optim.SGD"/>.</summary>
        public static SGD SGD(IEnumerable<Parameter> parameters, double lr, double momentum = 0, double dampening = 0,
            double weight_decay = 0, bool nesterov = false, bool maximize = false)
            => new(parameters, new SGDOptions
            {
                lr = lr, momentum = momentum, dampening = dampening, weight_decay = weight_decay, nesterov = nesterov, maximize = maximize,
            });

        /// <summary>Adam (L2 weight decay added to the gradient); see <see cref="Optim.Adam"/>.</summary>
        public static Adam Adam(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
            double eps = 1e-8, double weight_decay = 0, bool amsgrad = false, bool maximize = false, bool? @foreach = null)
            => new(parameters, new AdamOptions
            {
                lr = lr, beta1 = beta1, beta2 = beta2, eps = eps, weight_decay = weight_decay, amsgrad = amsgrad, maximize = maximize, @foreach = @foreach,
            });

        /// <summary>AdamW (decoupled weight decay, default 1e-2); see <see cref="Optim.AdamW"/>.</summary>
        public static AdamW AdamW(IEnumerable<Parameter> parameters, double lr = 1e-3, double beta1 = 0.9, double beta2 = 0.999,
            double eps = 1e-8, double weight_decay = 1e-2, bool amsgrad = false, bool maximize = false, bool? @foreach = null)
            => new(parameters, new AdamOptions
            {
                lr = lr, beta1 = beta1, beta2 = beta2, eps = eps, weight_decay = weight_decay, amsgrad = amsgrad, maximize = maximize, @foreach = @foreach,
            });

        /// <summary>RMSprop (optionally centered, with momentum); see <see cref="Optim.RMSprop"/>.</summary>
        public static RMSprop RMSprop(IEnumerable<Parameter> parameters, double lr = 1e-2, double alpha = 0.99, double eps = 1e-8,
            double weight_decay = 0, double momentum = 0, bool centered = false, bool maximize = false)
            => new(parameters, new RMSpropOptions
            {
                lr = lr, alpha = alpha, eps = eps, weight_decay = weight_decay, momentum = momentum, centered = centered, maximize = maximize,
            });
    }
}

public static partial class torch
{
    public static partial class optim
    {
        /// <summary>Learning-rate schedulers (closed forms of PyTorch's); see <see cref="LRScheduler"/>.</summary>
        public static class lr_scheduler
        {
            /// <summary>lr = base·gamma^⌊epoch/step_size⌋.</summary>
            public static StepLR StepLR(Optimizer optimizer, int step_size, double gamma = 0.1, int last_epoch = -1)
                => new(optimizer, step_size, gamma, last_epoch);

            /// <summary>lr = eta_min + (base − eta_min)·(1 + cos(π·epoch/T_max))/2.</summary>
            public static CosineAnnealingLR CosineAnnealingLR(Optimizer optimizer, int T_max, double eta_min = 0, int last_epoch = -1)
                => new(optimizer, T_max, eta_min, last_epoch);

            /// <summary>lr = base·(start + (end − start)·min(total_iters, epoch)/total_iters).</summary>
            public static LinearLR LinearLR(Optimizer optimizer, double start_factor = 1.0 / 3, double end_factor = 1.0, int total_iters = 5, int last_epoch = -1)
                => new(optimizer, start_factor, end_factor, total_iters, last_epoch);

            /// <summary>Linear warm-up from start_factor·base to base over warmup_steps steps.</summary>
            public static LinearWarmup LinearWarmup(Optimizer optimizer, int warmup_steps, double start_factor = 0.0, int last_epoch = -1)
                => new(optimizer, warmup_steps, start_factor, last_epoch);

            /// <summary>Runs <paramref name="schedulers"/> one after another, switching at <paramref name="milestones"/>.</summary>
            public static SequentialLR SequentialLR(Optimizer optimizer, IReadOnlyList<LRScheduler> schedulers, IReadOnlyList<int> milestones, int last_epoch = -1)
                => new(optimizer, schedulers, milestones, last_epoch);
        }
    }
}
