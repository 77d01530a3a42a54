using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

/// <summary>Which fan <see cref="torch.nn.init.kaiming_uniform_"/> scales by: fan_in keeps the forward variance, fan_out the backward.</summary>
public enum FanMode
{
    FanIn,
    FanOut,
}

/// <summary>The non-linearity that follows a layer, for <see cref="torch.nn.init.calculate_gain"/>.</summary>
public enum NonLinearity
{
    Linear,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    Sigmoid,
    Tanh,
    Relu,
    LeakyRelu,
    Selu,
}

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>
        /// Weight initialisation, as torch.nn.init. Every function works in place under no_grad and returns its tensor.
        /// Random draws come from the given generator, else from the generator of the innermost
        /// <see cref="UseGenerator"/> scope on this thread, else from the global generator; so
        /// <c>using (torch.nn.init.UseGenerator(g)) { net = new MyNet(); }</c> builds reproducible weights without touching
        /// the global stream.
        /// </summary>
        public static class init
        {
            [ThreadStatic] private static Generator? _current;

            /// <summary>The generator of the innermost <see cref="UseGenerator"/> scope on this thread, or null.</summary>
            public static Generator? CurrentGenerator => _current;

            /// <summary>
            /// Makes <paramref name="generator"/> the default source of initial weights on this thread until the returned
            /// scope is disposed (scopes nest; disposal restores the previous one). The caller keeps ownership of the generator.
            /// </summary>
            public static GeneratorScope UseGenerator(Generator generator)
            {
                ArgumentNullException.ThrowIfNull(generator);
                return new GeneratorScope(generator);
            }

            /// <summary>Restores the previous default init generator when disposed.</summary>
            public sealed class GeneratorScope : IDisposable
            {
                private readonly Generator? _previous;
                private readonly int _thread;
                private bool _disposed;

                internal GeneratorScope(Generator g)
                {
                    _previous = _current;
                    _thread = Environment.CurrentManagedThreadId;
                    _current = g;
                }

                public void Dispose()
                {
                    if (_disposed) return;
                    if (Environment.CurrentManagedThreadId != _thread)
                        throw new InvalidOperationException("an init generator scope must be disposed on the thread that opened it");
                    _disposed = true;
                    _current = _previous;
                }
            }

            private static GeneratorHandle Gen(Generator? g) => (g ?? _current)?.Handle ?? GeneratorHandle.Null;

            /// <summary>
            /// The recommended gain for a non-linearity: 1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for ReLU,
            /// sqrt(2 / (1 + slope^2)) for leaky ReLU (slope = <paramref name="param"/>, default 0.01), 3/4 for SELU.
            /// </summary>
            public static double calculate_gain(NonLinearity nonlinearity, double? param = null) => nonlinearity switch
            {
                NonLinearity.Linear or NonLinearity.Conv1d or NonLinearity.Conv2d or NonLinearity.Conv3d or NonLinearity.ConvTranspose1d
                    or NonLinearity.ConvTranspose2d or NonLinearity.ConvTranspose3d or NonLinearity.Sigmoid => 1.0,
                NonLinearity.Tanh => 5.0 / 3,
                NonLinearity.Relu => Math.Sqrt(2.0),
                NonLinearity.LeakyRelu => Math.Sqrt(2.0 / (1 + Math.Pow(param ?? 0.01, 2))),
                NonLinearity.Selu => 3.0 / 4,
                _ => throw new ArgumentOutOfRangeException(nameof(nonlinearity), nonlinearity, "unsupported non-linearity"),
            };

            /// <summary>
            /// (fan_in, fan_out) of a weight of at least 2 dimensions: fan_in = size(1) * receptive field, fan_out = size(0) *
            /// receptive field, where the receptive field is the product of the sizes after the first two.
            /// </summary>
            public static (long fan_in, long fan_out) calculate_fan_in_and_fan_out(Tensor tensor)
            {
                var s = tensor.shape;
                if (s.Length < 2)
                    throw new ArgumentException("fan in and fan out can not be computed for a tensor with fewer than 2 dimensions", nameof(tensor));
                long receptive = 1;
                for (int k = 2; k < s.Length; k++) receptive *= s[k];
                return (s[1] * receptive, s[0] * receptive);
            }

            private static long Fan(Tensor t, FanMode mode)
            {
                var (fanIn, fanOut) = calculate_fan_in_and_fan_out(t);
                return mode == FanMode.FanIn ? fanIn : fanOut;
            }

            /// <summary>Fills with U(a, b) (default [0, 1)).</summary>
            public static Tensor uniform_(Tensor tensor, double a = 0, double b = 1, Generator? generator = null)
            {
                LibTorch.Check(LibTorch.mt_nn_uniform_(tensor.Handle, a, b, Gen(generator), true));
                return tensor;
            }

            /// <summary>Fills with N(mean, std^2) (default standard normal).</summary>
            public static Tensor normal_(Tensor tensor, double mean = 0, double std = 1, Generator? generator = null)
            {
                LibTorch.Check(LibTorch.mt_nn_normal_(tensor.Handle, mean, std, Gen(generator), true));
                return tensor;
            }

            /// <summary>Fills with <paramref name="val"/>.</summary>
            public static Tensor constant_(Tensor tensor, Scalar val)
            {
                LibTorch.Check(LibTorch.mt_nn_constant_(tensor.Handle, val, true));
                return tensor;
            }

            /// <summary>Fills with 0.</summary>
            public static Tensor zeros_(Tensor tensor) => constant_(tensor, 0);

            /// <summary>Fills with 1.</summary>
            public static Tensor ones_(Tensor tensor) => constant_(tensor, 1);

            /// <summary>
            /// He initialisation, uniform: U(-bound, bound) with bound = gain * sqrt(3 / fan), gain =
            /// calculate_gain(nonlinearity, a). PyTorch's default for conv and linear weights is a = sqrt(5), fan_in.
            /// </summary>
            public static Tensor kaiming_uniform_(Tensor tensor, double a = 0, FanMode mode = FanMode.FanIn,
                NonLinearity nonlinearity = NonLinearity.LeakyRelu, Generator? generator = null)
            {
                double std = calculate_gain(nonlinearity, a) / Math.Sqrt(Fan(tensor, mode));
                double bound = Math.Sqrt(3.0) * std;
                return uniform_(tensor, -bound, bound, generator);
            }

            /// <summary>He initialisation, normal: N(0, std^2) with std = gain / sqrt(fan), gain = calculate_gain(nonlinearity, a).</summary>
            public static Tensor kaiming_normal_(Tensor tensor, double a = 0, FanMode mode = FanMode.FanIn,
                NonLinearity nonlinearity = NonLinearity.LeakyRelu, Generator? generator = null)
            {
                double std = calculate_gain(nonlinearity, a) / Math.Sqrt(Fan(tensor, mode));
                return normal_(tensor, 0, std, generator);
            }

            /// <summary>Glorot initialisation, uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).</summary>
            public static Tensor xavier_uniform_(Tensor tensor, double gain = 1, Generator? generator = null)
            {
                var (fanIn, fanOut) = calculate_fan_in_and_fan_out(tensor);
                double a = Math.Sqrt(3.0) * gain * Math.Sqrt(2.0 / (fanIn + fanOut));
                return uniform_(tensor, -a, a, generator);
            }

            /// <summary>Glorot initialisation, normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).</summary>
            public static Tensor xavier_normal_(Tensor tensor, double gain = 1, Generator? generator = null)
            {
                var (fanIn, fanOut) = calculate_fan_in_and_fan_out(tensor);
                return normal_(tensor, 0, gain * Math.Sqrt(2.0 / (fanIn + fanOut)), generator);
            }
        }
    }
}
