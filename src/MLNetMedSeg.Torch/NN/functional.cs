using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

/// <summary>Resampling mode of <see cref="torch.nn.functional.interpolate"/> and <see cref="Modules.Upsample"/>.</summary>
public enum InterpolationMode
{
    /// <summary>Nearest neighbour (PyTorch's "nearest": floor of the scaled coordinate); 3-D, 4-D or 5-D input.</summary>
    Nearest = 0,
    /// <summary>Bilinear, 4-D input (N, C, H, W).</summary>
    Bilinear = 1,
    /// <summary>Bicubic, 4-D input (N, C, H, W).</summary>
    Bicubic = 2,
    /// <summary>Trilinear, 5-D input (N, C, D, H, W).</summary>
    Trilinear = 3,
}

/// <summary>Interpolation of <see cref="torch.nn.functional.grid_sample"/> (values are ATen's).</summary>
public enum GridSampleMode
{
    Bilinear = 0,
    Nearest = 1,
    Bicubic = 2,
}

/// <summary>How <see cref="torch.nn.functional.grid_sample"/> treats grid locations outside the input (values are ATen's).</summary>
public enum GridPaddingMode
{
    /// <summary>Outside values are 0.</summary>
    Zeros = 0,
    /// <summary>Outside locations are clamped to the border.</summary>
    Border = 1,
    /// <summary>Outside locations are reflected back into the input.</summary>
    Reflection = 2,
}

public static partial class torch
{
    /// <summary>Matrix product with broadcasting and PyTorch's rules for 1-D operands (see <see cref="Tensor.matmul"/>).</summary>
    public static Tensor matmul(Tensor input, Tensor other) => input.matmul(other);

    /// <summary>Batched matrix product: (B, n, m) x (B, m, p) -> (B, n, p); no broadcasting.</summary>
    public static Tensor bmm(Tensor input, Tensor mat2) => input.bmm(mat2);

    public static partial class nn
    {
        /// <summary>How a loss reduces its per-element values: keep them, average them or add them up.</summary>
        public enum Reduction
        {
            /// <summary>No reduction: the loss has the shape of the per-element losses.</summary>
            None = 0,
            /// <summary>The (weighted) mean of the per-element losses.</summary>
            Mean = 1,
            /// <summary>The sum of the per-element losses.</summary>
            Sum = 2,
        }

        /// <summary>Stateless neural-network functions, as torch.nn.functional.</summary>
        public static partial class functional
        {
            private static Tensor NnWrap(int status, IntPtr r)
            {
                LibTorch.Check(status);
                return new Tensor(r);
            }

            private static TensorHandle NnOpt(Tensor? t) => t?.Handle ?? TensorHandle.Null;
            private static long NnLen(long[]? a) => a?.Length ?? 0;

            // ------------------------------------------------------------ activations

            /// <summary>max(0, x). With <paramref name="inplace"/>, overwrites and returns <paramref name="input"/>.</summary>
            public static Tensor relu(Tensor input, bool inplace = false) => inplace ? input.relu_() : input.relu();

            /// <summary>x for x &gt;= 0, negative_slope * x otherwise (default slope 0.01).</summary>
            public static Tensor leaky_relu(Tensor input, double negative_slope = 0.01, bool inplace = false)
                => inplace ? input.leaky_relu_(negative_slope) : input.leaky_relu(negative_slope);

            /// <summary>SiLU / swish: x * sigmoid(x).</summary>
            public static Tensor silu(Tensor input, bool inplace = false) => inplace ? input.silu_() : input.silu();

            /// <summary>GELU: x * Phi(x); <paramref name="approximate"/> "none" (exact, erf) or "tanh".</summary>
            public static Tensor gelu(Tensor input, string approximate = "none") => input.gelu(approximate);

            /// <summary>1 / (1 + exp(-x)).</summary>
            public static Tensor sigmoid(Tensor input) => input.sigmoid();

            /// <summary>Hyperbolic tangent.</summary>
            public static Tensor tanh(Tensor input) => input.tanh();

            /// <summary>Softmax along <paramref name="dim"/>, optionally computed in <paramref name="dtype"/>.</summary>
            public static Tensor softmax(Tensor input, long dim, ScalarType? dtype = null) => input.softmax(dim, dtype);

            /// <summary>log(softmax(x)) along <paramref name="dim"/>, computed stably.</summary>
            public static Tensor log_softmax(Tensor input, long dim, ScalarType? dtype = null) => input.log_softmax(dim, dtype);

            /// <summary>log(1 + exp(beta * x)) / beta, linear above <paramref name="threshold"/> (defaults beta 1, threshold 20).</summary>
            public static Tensor softplus(Tensor input, double beta = 1, double threshold = 20) => input.softplus(beta, threshold);

            /// <summary>Clamps to [min_val, max_val] (defaults -1, 1).</summary>
            public static Tensor hardtanh(Tensor input, double min_val = -1, double max_val = 1, bool inplace = false)
                => inplace ? input.hardtanh_(min_val, max_val) : input.hardtanh(min_val, max_val);

            // ------------------------------------------------------------ linear and convolutions

            /// <summary>y = x W^T + b. input (*, in_features), weight (out_features, in_features), bias (out_features) or null.</summary>
            public static Tensor linear(Tensor input, Tensor weight, Tensor? bias = null)
                => NnWrap(LibTorch.mt_nn_linear(input.Handle, weight.Handle, NnOpt(bias), out var r), r);

            /// <summary>
            /// 2-D convolution (cross-correlation). input (N, C_in, H, W) or (C_in, H, W); weight (C_out, C_in / groups, kH, kW);
            /// bias (C_out) or null. stride/padding/dilation: one value for both dimensions or two (default 1 / 0 / 1).
            /// </summary>
            public static Tensor conv2d(Tensor input, Tensor weight, Tensor? bias = null, long[]? stride = null, long[]? padding = null,
                long[]? dilation = null, long groups = 1)
                => NnWrap(LibTorch.mt_nn_conv2d(input.Handle, weight.Handle, NnOpt(bias), stride, NnLen(stride), padding, NnLen(padding),
                    dilation, NnLen(dilation), groups, out var r), r);

            /// <summary>
            /// 2-D transposed convolution. weight (C_in, C_out / groups, kH, kW). Output size per dimension:
            /// (in - 1) * stride - 2 * padding + dilation * (k - 1) + output_padding + 1.
            /// </summary>
            public static Tensor conv_transpose2d(Tensor input, Tensor weight, Tensor? bias = null, long[]? stride = null, long[]? padding = null,
                long[]? output_padding = null, long groups = 1, long[]? dilation = null)
                => NnWrap(LibTorch.mt_nn_conv_transpose2d(input.Handle, weight.Handle, NnOpt(bias), stride, NnLen(stride), padding, NnLen(padding),
                    output_padding, NnLen(output_padding), groups, dilation, NnLen(dilation), out var r), r);

            // ------------------------------------------------------------ pooling

            /// <summary>2-D max pooling; stride defaults to kernel_size, padding to 0, dilation to 1.</summary>
            public static Tensor max_pool2d(Tensor input, long[] kernel_size, long[]? stride = null, long[]? padding = null,
                long[]? dilation = null, bool ceil_mode = false)
                => NnWrap(LibTorch.mt_nn_max_pool2d(input.Handle, kernel_size, kernel_size.Length, stride, NnLen(stride), padding, NnLen(padding),
                    dilation, NnLen(dilation), ceil_mode, out var r), r);

            /// <summary>
            /// 2-D average pooling; stride defaults to kernel_size, padding to 0. count_include_pad: zero padding counts in the
            /// divisor (default true); divisor_override replaces the divisor.
            /// </summary>
            public static Tensor avg_pool2d(Tensor input, long[] kernel_size, long[]? stride = null, long[]? padding = null,
                bool ceil_mode = false, bool count_include_pad = true, long? divisor_override = null)
            {
                if (divisor_override is <= 0) throw new ArgumentOutOfRangeException(nameof(divisor_override), divisor_override, "divisor must be positive");
                return NnWrap(LibTorch.mt_nn_avg_pool2d(input.Handle, kernel_size, kernel_size.Length, stride, NnLen(stride), padding, NnLen(padding),
                    ceil_mode, count_include_pad, divisor_override ?? 0, out var r), r);
            }

            /// <summary>Average pooling to a fixed output size (H_out, W_out) (one value = square).</summary>
            public static Tensor adaptive_avg_pool2d(Tensor input, long[] output_size)
            {
                var s = NnPair(output_size, nameof(output_size));
                return NnWrap(LibTorch.mt_nn_adaptive_avg_pool2d(input.Handle, s, s.Length, out var r), r);
            }

            /// <summary>Max pooling to a fixed output size (H_out, W_out) (one value = square).</summary>
            public static Tensor adaptive_max_pool2d(Tensor input, long[] output_size)
            {
                var s = NnPair(output_size, nameof(output_size));
                return NnWrap(LibTorch.mt_nn_adaptive_max_pool2d(input.Handle, s, s.Length, out var r), r);
            }

            private static long[] NnPair(long[] v, string name)
            {
                ArgumentNullException.ThrowIfNull(v, name);
                return v.Length switch
                {
                    1 => [v[0], v[0]],
                    2 => v,
                    _ => throw new ArgumentException($"{name} needs 1 or 2 values, got {v.Length}", name),
                };
            }

            // ------------------------------------------------------------ normalization

            /// <summary>
            /// Batch normalization over dimension 1 (channels) of (N, C, ...). In training mode the batch statistics are
            /// used and running_mean/running_var (if given) are updated in place: r = (1 - momentum) r + momentum * stat
            /// (unbiased variance). In evaluation mode running_mean/running_var are used and must be given.
            /// </summary>
            public static Tensor batch_norm(Tensor input, Tensor? running_mean, Tensor? running_var, Tensor? weight = null, Tensor? bias = null,
                bool training = false, double momentum = 0.1, double eps = 1e-5)
                => NnWrap(LibTorch.mt_nn_batch_norm(input.Handle, NnOpt(running_mean), NnOpt(running_var), NnOpt(weight), NnOpt(bias), training, momentum, eps, out var r), r);

            /// <summary>Group normalization: channels of (N, C, ...) split into num_groups groups normalized separately; weight/bias (C).</summary>
            public static Tensor group_norm(Tensor input, long num_groups, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5)
                => NnWrap(LibTorch.mt_nn_group_norm(input.Handle, num_groups, NnOpt(weight), NnOpt(bias), eps, out var r), r);

            /// <summary>Layer normalization over the trailing dimensions given by normalized_shape; weight/bias of that shape.</summary>
            public static Tensor layer_norm(Tensor input, long[] normalized_shape, Tensor? weight = null, Tensor? bias = null, double eps = 1e-5)
                => NnWrap(LibTorch.mt_nn_layer_norm(input.Handle, normalized_shape, normalized_shape.Length, NnOpt(weight), NnOpt(bias), eps, out var r), r);

            // ------------------------------------------------------------ dropout and embedding

            /// <summary>
            /// Zeroes each element with probability p and scales the rest by 1/(1-p) when <paramref name="training"/>;
            /// otherwise returns the input unchanged (a new handle to it). The mask is drawn from
            /// <paramref name="generator"/> (null = the global generator), so a seeded generator reproduces it.
            /// </summary>
            public static Tensor dropout(Tensor input, double p = 0.5, bool training = true, Generator? generator = null)
                => NnWrap(LibTorch.mt_nn_dropout(input.Handle, p, training, false, generator?.Handle ?? GeneratorHandle.Null, out var r), r);

            /// <summary>Channel dropout: zeroes whole (N, C) planes of (N, C, H, W) with probability p, scaling the rest by 1/(1-p).</summary>
            public static Tensor dropout2d(Tensor input, double p = 0.5, bool training = true, Generator? generator = null)
                => NnWrap(LibTorch.mt_nn_dropout(input.Handle, p, training, true, generator?.Handle ?? GeneratorHandle.Null, out var r), r);

            /// <summary>
            /// Looks up rows of <paramref name="weight"/> (num_embeddings, dim) by integer <paramref name="indices"/> (any shape);
            /// the result has shape indices.shape + (dim). Rows at padding_idx receive no gradient.
            /// </summary>
            public static Tensor embedding(Tensor indices, Tensor weight, long? padding_idx = null)
            {
                long pad = padding_idx ?? -1;
                if (padding_idx is < 0) pad = weight.size(0) + padding_idx.Value;
                return NnWrap(LibTorch.mt_nn_embedding(indices.Handle, weight.Handle, pad, out var r), r);
            }

            // ------------------------------------------------------------ resampling

            /// <summary>
            /// Resizes (N, C, [D,] H, W) [or (N, C, L)] to <paramref name="size"/> or by <paramref name="scale_factor"/> (give exactly one;
            /// one value applies to every spatial dimension). As PyTorch, a scale factor is used as given for the coordinate
            /// mapping and the output size is floor(in * scale). align_corners (bilinear/bicubic/trilinear only) defaults to false.
            /// </summary>
            public static Tensor interpolate(Tensor input, long[]? size = null, double[]? scale_factor = null,
                InterpolationMode mode = InterpolationMode.Nearest, bool? align_corners = null)
            {
                if ((size is null) == (scale_factor is null))
                    throw new ArgumentException("interpolate: give exactly one of size and scale_factor");
                int spatial = (int)input.dim() - 2;
                if (size is { Length: 1 } && spatial > 1) size = Enumerable.Repeat(size[0], spatial).ToArray();
                if (scale_factor is { Length: 1 } && spatial > 1) scale_factor = Enumerable.Repeat(scale_factor[0], spatial).ToArray();
                if (mode == InterpolationMode.Nearest && align_corners.HasValue)
                    throw new ArgumentException("align_corners can only be set with the interpolating modes bilinear, bicubic and trilinear", nameof(align_corners));
                int ac = align_corners.HasValue ? (align_corners.Value ? 1 : 0) : -1;
                if (mode != InterpolationMode.Nearest && ac < 0) ac = 0;
                return NnWrap(LibTorch.mt_nn_interpolate(input.Handle, size, NnLen(size), scale_factor, scale_factor?.Length ?? 0, (int)mode, ac, out var r), r);
            }

            /// <summary>
            /// Sampling grid for <see cref="grid_sample"/> from affine matrices: theta (N, 2, 3) with size (N, C, H, W) gives
            /// (N, H, W, 2); theta (N, 3, 4) with size (N, C, D, H, W) gives (N, D, H, W, 3). Coordinates are in [-1, 1].
            /// </summary>
            public static Tensor affine_grid(Tensor theta, long[] size, bool align_corners = false)
                => NnWrap(LibTorch.mt_nn_affine_grid(theta.Handle, size, size.Length, align_corners, out var r), r);

            /// <summary>
            /// Samples input (N, C, H, W) at grid (N, H_out, W_out, 2) locations (x, y in [-1, 1]) -> (N, C, H_out, W_out);
            /// 5-D input with a (N, D, H, W, 3) grid also works (bicubic is 2-D only).
            /// </summary>
            public static Tensor grid_sample(Tensor input, Tensor grid, GridSampleMode mode = GridSampleMode.Bilinear,
                GridPaddingMode padding_mode = GridPaddingMode.Zeros, bool align_corners = false)
                => NnWrap(LibTorch.mt_nn_grid_sample(input.Handle, grid.Handle, (int)mode, (int)padding_mode, align_corners, out var r), r);

            // ------------------------------------------------------------ losses

            /// <summary>
            /// -w [y log(x) + (1 - y) log(1 - x)] for probabilities x (same shape as target y). weight: per-element weights
            /// broadcast to the target's shape (e.g. a per-pixel weight map), or null.
            /// </summary>
            public static Tensor binary_cross_entropy(Tensor input, Tensor target, Tensor? weight = null, Reduction reduction = Reduction.Mean)
                => NnWrap(LibTorch.mt_nn_binary_cross_entropy(input.Handle, target.Handle, NnOpt(weight), (int)reduction, out var r), r);

            /// <summary>
            /// Sigmoid + binary cross-entropy in one numerically stable step, on logits x:
            /// -w [p y log(sigmoid(x)) + (1 - y) log(1 - sigmoid(x))]. weight: per-element weights (broadcast);
            /// pos_weight: weight of positive examples, broadcast along the last (class) dimension.
            /// </summary>
            public static Tensor binary_cross_entropy_with_logits(Tensor input, Tensor target, Tensor? weight = null, Tensor? pos_weight = null,
                Reduction reduction = Reduction.Mean)
                => NnWrap(LibTorch.mt_nn_binary_cross_entropy_with_logits(input.Handle, target.Handle, NnOpt(weight), NnOpt(pos_weight), (int)reduction, out var r), r);

            /// <summary>Squared error (x - y)^2 (input and target broadcast).</summary>
            public static Tensor mse_loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
                => NnWrap(LibTorch.mt_nn_mse_loss(input.Handle, target.Handle, (int)reduction, out var r), r);

            /// <summary>Absolute error |x - y| (input and target broadcast).</summary>
            public static Tensor l1_loss(Tensor input, Tensor target, Reduction reduction = Reduction.Mean)
                => NnWrap(LibTorch.mt_nn_l1_loss(input.Handle, target.Handle, (int)reduction, out var r), r);

            /// <summary>
            /// Cross-entropy of logits input (N, C, ...) or (C) against class indices (N, ...) (int64) or class probabilities
            /// (same shape as input). weight: per-class weights (C); targets equal to ignore_index are skipped (mean divides
            /// by the total weight of the counted targets); label_smoothing in [0, 1] mixes the target with the uniform distribution.
            /// </summary>
            public static Tensor cross_entropy(Tensor input, Tensor target, Tensor? weight = null, long ignore_index = -100,
                double label_smoothing = 0, Reduction reduction = Reduction.Mean)
                => cross_entropy(input, target, weight, ignore_index, reduction, label_smoothing);

            /// <summary>
            /// <see cref="cross_entropy(Tensor, Tensor, Tensor?, long, double, Reduction)"/> with PyTorch's positional order
            /// (reduction before label_smoothing).
            /// </summary>
            public static Tensor cross_entropy(Tensor input, Tensor target, Tensor? weight, long ignore_index, Reduction reduction,
                double label_smoothing = 0)
            {
                if (label_smoothing < 0 || label_smoothing > 1)
                    throw new ArgumentOutOfRangeException(nameof(label_smoothing), label_smoothing, "label_smoothing must be between 0.0 and 1.0");
                return NnWrap(LibTorch.mt_nn_cross_entropy(input.Handle, target.Handle, NnOpt(weight), (int)reduction, ignore_index, label_smoothing, out var r), r);
            }

            /// <summary>
            /// Negative log-likelihood of log-probabilities input (N, C, ...) or (C) at class indices target (N, ...) (int64),
            /// with optional per-class weights; targets equal to ignore_index are skipped.
            /// </summary>
            public static Tensor nll_loss(Tensor input, Tensor target, Tensor? weight = null, long ignore_index = -100,
                Reduction reduction = Reduction.Mean)
                => NnWrap(LibTorch.mt_nn_nll_loss(input.Handle, target.Handle, NnOpt(weight), (int)reduction, ignore_index, out var r), r);
        }
    }
}
