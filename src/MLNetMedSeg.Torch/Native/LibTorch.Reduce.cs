using System.Runtime.InteropServices;

namespace MLNetMedSeg.Torch.Native;

// Entry points of native/src/ops_reduce.cpp.
internal static partial class LibTorch
{
    [LibraryImport(Lib)] internal static partial int mt_sum_dims(TensorHandle a, long[] dims, long n, [MarshalAs(UnmanagedType.U1)] bool keepdim, int dtype, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_mean_dims(TensorHandle a, long[] dims, long n, [MarshalAs(UnmanagedType.U1)] bool keepdim, int dtype, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_max_all(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_min_all(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_max_dim(TensorHandle a, long dim, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr values, out IntPtr indices);
    [LibraryImport(Lib)] internal static partial int mt_min_dim(TensorHandle a, long dim, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr values, out IntPtr indices);
    [LibraryImport(Lib)] internal static partial int mt_amax(TensorHandle a, long[] dims, long n, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_amin(TensorHandle a, long[] dims, long n, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_argmax(TensorHandle a, [MarshalAs(UnmanagedType.U1)] bool hasDim, long dim, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_argmin(TensorHandle a, [MarshalAs(UnmanagedType.U1)] bool hasDim, long dim, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_var(TensorHandle a, long[]? dims, long n, long correction, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_std(TensorHandle a, long[]? dims, long n, long correction, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_prod_all(TensorHandle a, int dtype, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_prod_dim(TensorHandle a, long dim, [MarshalAs(UnmanagedType.U1)] bool keepdim, int dtype, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_all_all(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_any_all(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_all_dim(TensorHandle a, long dim, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_any_dim(TensorHandle a, long dim, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_norm(TensorHandle a, double p, long[]? dims, long n, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_logsumexp(TensorHandle a, long[] dims, long n, [MarshalAs(UnmanagedType.U1)] bool keepdim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_cumsum(TensorHandle a, long dim, int dtype, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_cumprod(TensorHandle a, long dim, int dtype, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_sort(TensorHandle a, long dim, [MarshalAs(UnmanagedType.U1)] bool descending, [MarshalAs(UnmanagedType.U1)] bool stable, out IntPtr values, out IntPtr indices);
    [LibraryImport(Lib)] internal static partial int mt_topk(TensorHandle a, long k, long dim, [MarshalAs(UnmanagedType.U1)] bool largest, [MarshalAs(UnmanagedType.U1)] bool sorted, out IntPtr values, out IntPtr indices);
}
