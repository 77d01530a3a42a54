using MLNetMedSeg.Torch.Modules;

namespace MLNetMedSeg.Torch;

public static partial class torch
{
    // Factories of the layer classes in MLNetMedSeg.Torch.Modules, named and defaulted as torch.nn's constructors.
    // Layers with weights draw them from the torch.nn.init.UseGenerator generator when one is set on this thread.
    public static partial class nn
    {
        /// <summary>2-D convolution with a square kernel; see <see cref="Modules.Conv2d"/>.</summary>
        public static Modules.Conv2d Conv2d(long in_channels, long out_channels, long kernel_size, long stride = 1, long padding = 0,
            long dilation = 1, long groups = 1, bool bias = true)
            => new(in_channels, out_channels, [kernel_size], [stride], [padding], [dilation], groups, bias);

        /// <summary>2-D convolution with per-dimension kernel/stride/padding/dilation (1 or 2 values each); see <see cref="Modules.Conv2d"/>.</summary>
        public static Modules.Conv2d Conv2d(long in_channels, long out_channels, long[] kernel_size, long[]? stride = null, long[]? padding = null,
            long[]? dilation = null, long groups = 1, bool bias = true)
            => new(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias);

        /// <summary>2-D transposed convolution with a square kernel; see <see cref="Modules.ConvTranspose2d"/>.</summary>
        public static Modules.ConvTranspose2d ConvTranspose2d(long in_channels, long out_channels, long kernel_size, long stride = 1, long padding = 0,
            long output_padding = 0, long groups = 1, bool bias = true, long dilation = 1)
            => new(in_channels, out_channels, [kernel_size], [stride], [padding], [output_padding], groups, bias, [dilation]);

        /// <summary>2-D transposed convolution with per-dimension arguments (1 or 2 values each); see <see cref="Modules.ConvTranspose2d"/>.</summary>
        public static Modules.ConvTranspose2d ConvTranspose2d(long in_channels, long out_channels, long[] kernel_size, long[]? stride = null,
            long[]? padding = null, long[]? output_padding = null, long groups = 1, bool bias = true, long[]? dilation = null)
            => new(in_channels, out_channels, kernel_size, stride, padding, output_padding, groups, bias, dilation);

        /// <summary>y = x W^T + b; see <see cref="Modules.Linear"/>.</summary>
        public static Modules.Linear Linear(long in_features, long out_features, bool bias = true) => new(in_features, out_features, bias);

        /// <summary>Batch normalization of (N, C) or (N, C, L); see <see cref="Modules.BatchNorm"/>.</summary>
        public static Modules.BatchNorm1d BatchNorm1d(long num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
            bool track_running_stats = true) => new(num_features, eps, momentum, affine, track_running_stats);

        /// <summary>Batch normalization of (N, C, H, W); see <see cref="Modules.BatchNorm"/>.</summary>
        public static Modules.BatchNorm2d BatchNorm2d(long num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
            bool track_running_stats = true) => new(num_features, eps, momentum, affine, track_running_stats);

        /// <summary>Batch normalization of (N, C, D, H, W); see <see cref="Modules.BatchNorm"/>.</summary>
        public static Modules.BatchNorm3d BatchNorm3d(long num_features, double eps = 1e-5, double momentum = 0.1, bool affine = true,
            bool track_running_stats = true) => new(num_features, eps, momentum, affine, track_running_stats);

        /// <summary>Group normalization; see <see cref="Modules.GroupNorm"/>.</summary>
        public static Modules.GroupNorm GroupNorm(long num_groups, long num_channels, double eps = 1e-5, bool affine = true)
            => new(num_groups, num_channels, eps, affine);

        /// <summary>Layer normalization over the trailing normalized_shape dimensions; see <see cref="Modules.LayerNorm"/>.</summary>
        public static Modules.LayerNorm LayerNorm(long[] normalized_shape, double eps = 1e-5, bool elementwise_affine = true)
            => new(normalized_shape, eps, elementwise_affine);

        /// <summary>Layer normalization over the last dimension of size normalized_shape.</summary>
        public static Modules.LayerNorm LayerNorm(long normalized_shape, double eps = 1e-5, bool elementwise_affine = true)
            => new([normalized_shape], eps, elementwise_affine);

        /// <summary>Element dropout (identity in eval mode); masks from <paramref name="generator"/> when given. See <see cref="Modules.Dropout"/>.</summary>
        public static Modules.Dropout Dropout(double p = 0.5, Generator? generator = null) => new(p, generator);

        /// <summary>Channel dropout (identity in eval mode); see <see cref="Modules.Dropout2d"/>.</summary>
        public static Modules.Dropout2d Dropout2d(double p = 0.5, Generator? generator = null) => new(p, generator);

        /// <summary>Lookup table of num_embeddings vectors of size embedding_dim; see <see cref="Modules.Embedding"/>.</summary>
        public static Modules.Embedding Embedding(long num_embeddings, long embedding_dim, long? padding_idx = null)
            => new(num_embeddings, embedding_dim, padding_idx);

        /// <summary>2-D max pooling with a square window (stride defaults to kernel_size).</summary>
        public static Modules.MaxPool2d MaxPool2d(long kernel_size, long? stride = null, long padding = 0, long dilation = 1, bool ceil_mode = false)
            => new([kernel_size], [stride ?? kernel_size], [padding], [dilation], ceil_mode);

        /// <summary>2-D max pooling with per-dimension arguments (1 or 2 values each).</summary>
        public static Modules.MaxPool2d MaxPool2d(long[] kernel_size, long[]? stride = null, long[]? padding = null, long[]? dilation = null,
            bool ceil_mode = false) => new(kernel_size, stride, padding, dilation, ceil_mode);

        /// <summary>2-D average pooling with a square window (stride defaults to kernel_size).</summary>
        public static Modules.AvgPool2d AvgPool2d(long kernel_size, long? stride = null, long padding = 0, bool ceil_mode = false,
            bool count_include_pad = true, long? divisor_override = null)
            => new([kernel_size], [stride ?? kernel_size], [padding], ceil_mode, count_include_pad, divisor_override);

        /// <summary>2-D average pooling with per-dimension arguments (1 or 2 values each).</summary>
        public static Modules.AvgPool2d AvgPool2d(long[] kernel_size, long[]? stride = null, long[]? padding = null, bool ceil_mode = false,
            bool count_include_pad = true, long? divisor_override = null)
            => new(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override);

        /// <summary>Average pooling to output_size (1 or 2 values); (1, 1) is global average pooling.</summary>
        public static Modules.AdaptiveAvgPool2d AdaptiveAvgPool2d(long[] output_size) => new(output_size);

        /// <summary>Max pooling to output_size (1 or 2 values).</summary>
        public static Modules.AdaptiveMaxPool2d AdaptiveMaxPool2d(long[] output_size) => new(output_size);

        /// <summary>Resizes by <paramref name="scale_factor"/> in every spatial dimension; see <see cref="functional.interpolate"/>.</summary>
        public static Modules.Upsample Upsample(double scale_factor, InterpolationMode mode = InterpolationMode.Nearest, bool? align_corners = null)
            => new(null, [scale_factor], mode, align_corners);

        /// <summary>Resizes to a fixed spatial <paramref name="size"/>; see <see cref="functional.interpolate"/>.</summary>
        public static Modules.Upsample Upsample(long[] size, InterpolationMode mode = InterpolationMode.Nearest, bool? align_corners = null)
            => new(size, null, mode, align_corners);

        /// <summary>Flattens dimensions start_dim..end_dim (default: all but the batch dimension).</summary>
        public static Modules.Flatten Flatten(long start_dim = 1, long end_dim = -1) => new(start_dim, end_dim);

        /// <summary>Passes its input through.</summary>
        public static Modules.Identity Identity() => new();

        /// <summary>max(0, x); with inplace, overwrites the input.</summary>
        public static Modules.ReLU ReLU(bool inplace = false) => new(inplace);
        /// <summary>Leaky ReLU with the given negative slope (default 0.01).</summary>
        public static Modules.LeakyReLU LeakyReLU(double negative_slope = 0.01, bool inplace = false) => new(negative_slope, inplace);
        /// <summary>x * sigmoid(x).</summary>
        public static Modules.SiLU SiLU(bool inplace = false) => new(inplace);
        /// <summary>GELU; approximate "none" (exact) or "tanh".</summary>
        public static Modules.GELU GELU(string approximate = "none") => new(approximate);
        /// <summary>1 / (1 + exp(-x)).</summary>
        public static Modules.Sigmoid Sigmoid() => new();
        /// <summary>Hyperbolic tangent.</summary>
        public static Modules.Tanh Tanh() => new();
        /// <summary>Softmax along <paramref name="dim"/>.</summary>
        public static Modules.Softmax Softmax(long dim) => new(dim);
        /// <summary>log(softmax) along <paramref name="dim"/>.</summary>
        public static Modules.LogSoftmax LogSoftmax(long dim) => new(dim);
    }
}
