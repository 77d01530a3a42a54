using System.Runtime.InteropServices;

namespace MLNetMedSeg.Torch.Native;

// Entry points of native/src/nn_activation.cpp, nn_functional.cpp and nn_init.cpp.
// Optional int arrays are passed as (null, 0); optional tensors as TensorHandle.Null; optional generators as GeneratorHandle.Null.
internal static partial class LibTorch
{
    // ---- nn_activation.cpp
    [LibraryImport(Lib)] internal static partial int mt_nn_relu(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_relu_(TensorHandle a);
    [LibraryImport(Lib)] internal static partial int mt_nn_silu(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_silu_(TensorHandle a);
    [LibraryImport(Lib)] internal static partial int mt_nn_sigmoid(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_sigmoid_(TensorHandle a);
    [LibraryImport(Lib)] internal static partial int mt_nn_tanh(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_tanh_(TensorHandle a);
    [LibraryImport(Lib)] internal static partial int mt_nn_leaky_relu(TensorHandle a, double negativeSlope, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_leaky_relu_(TensorHandle a, double negativeSlope);
    [LibraryImport(Lib)] internal static partial int mt_nn_gelu(TensorHandle a, int approximate, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_softmax(TensorHandle a, long dim, int dtype, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_log_softmax(TensorHandle a, long dim, int dtype, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_softplus(TensorHandle a, double beta, double threshold, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_hardtanh(TensorHandle a, double minVal, double maxVal, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_hardtanh_(TensorHandle a, double minVal, double maxVal);

    // ---- nn_functional.cpp
    [LibraryImport(Lib)] internal static partial int mt_nn_matmul(TensorHandle a, TensorHandle b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_bmm(TensorHandle a, TensorHandle b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_linear(TensorHandle input, TensorHandle weight, TensorHandle bias, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_flatten(TensorHandle a, long startDim, long endDim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_conv2d(TensorHandle input, TensorHandle weight, TensorHandle bias,
        long[]? stride, long nStride, long[]? padding, long nPadding, long[]? dilation, long nDilation, long groups, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_conv_transpose2d(TensorHandle input, TensorHandle weight, TensorHandle bias,
        long[]? stride, long nStride, long[]? padding, long nPadding, long[]? outputPadding, long nOutputPadding, long groups,
        long[]? dilation, long nDilation, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_max_pool2d(TensorHandle input, long[] kernel, long nKernel, long[]? stride, long nStride,
        long[]? padding, long nPadding, long[]? dilation, long nDilation, [MarshalAs(UnmanagedType.U1)] bool ceilMode, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_avg_pool2d(TensorHandle input, long[] kernel, long nKernel, long[]? stride, long nStride,
        long[]? padding, long nPadding, [MarshalAs(UnmanagedType.U1)] bool ceilMode, [MarshalAs(UnmanagedType.U1)] bool countIncludePad,
        long divisorOverride, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_adaptive_avg_pool2d(TensorHandle input, long[] size, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_adaptive_max_pool2d(TensorHandle input, long[] size, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_batch_norm(TensorHandle input, TensorHandle runningMean, TensorHandle runningVar,
        TensorHandle weight, TensorHandle bias, [MarshalAs(UnmanagedType.U1)] bool training, double momentum, double eps, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_group_norm(TensorHandle input, long numGroups, TensorHandle weight, TensorHandle bias, double eps, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_layer_norm(TensorHandle input, long[] shape, long n, TensorHandle weight, TensorHandle bias, double eps, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_dropout(TensorHandle input, double p, [MarshalAs(UnmanagedType.U1)] bool training,
        [MarshalAs(UnmanagedType.U1)] bool channelWise, GeneratorHandle gen, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_embedding(TensorHandle indices, TensorHandle weight, long paddingIdx, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_interpolate(TensorHandle input, long[]? size, long nSize, double[]? scale, long nScale,
        int mode, int alignCorners, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_affine_grid(TensorHandle theta, long[] size, long n, [MarshalAs(UnmanagedType.U1)] bool alignCorners, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_grid_sample(TensorHandle input, TensorHandle grid, int mode, int paddingMode,
        [MarshalAs(UnmanagedType.U1)] bool alignCorners, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_binary_cross_entropy(TensorHandle input, TensorHandle target, TensorHandle weight, int reduction, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_binary_cross_entropy_with_logits(TensorHandle input, TensorHandle target, TensorHandle weight,
        TensorHandle posWeight, int reduction, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_mse_loss(TensorHandle input, TensorHandle target, int reduction, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_l1_loss(TensorHandle input, TensorHandle target, int reduction, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_cross_entropy(TensorHandle input, TensorHandle target, TensorHandle weight, int reduction,
        long ignoreIndex, double labelSmoothing, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nn_nll_loss(TensorHandle input, TensorHandle target, TensorHandle weight, int reduction, long ignoreIndex, out IntPtr r);

    // ---- nn_init.cpp
    [LibraryImport(Lib)] internal static partial int mt_nn_uniform_(TensorHandle t, double from, double to, GeneratorHandle gen, [MarshalAs(UnmanagedType.U1)] bool noGrad);
    [LibraryImport(Lib)] internal static partial int mt_nn_normal_(TensorHandle t, double mean, double std, GeneratorHandle gen, [MarshalAs(UnmanagedType.U1)] bool noGrad);
    [LibraryImport(Lib)] internal static partial int mt_nn_constant_(TensorHandle t, Scalar value, [MarshalAs(UnmanagedType.U1)] bool noGrad);
}
