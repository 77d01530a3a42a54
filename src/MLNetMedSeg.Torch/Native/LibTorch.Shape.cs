using System.Runtime.InteropServices;

namespace MLNetMedSeg.Torch.Native;

// Entry points of native/src/ops_shape.cpp. Lists of results come back as a malloc'ed handle array
// (free with mt_free_buffer after wrapping each handle).
internal static partial class LibTorch
{
    [LibraryImport(Lib)] internal static partial int mt_reshape(TensorHandle a, long[] shape, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_view(TensorHandle a, long[] shape, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_permute(TensorHandle a, long[] dims, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_transpose(TensorHandle a, long dim0, long dim1, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_t(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_flatten(TensorHandle a, long startDim, long endDim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_unflatten(TensorHandle a, long dim, long[] sizes, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_squeeze(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_squeeze_dim(TensorHandle a, long dim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_unsqueeze(TensorHandle a, long dim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_expand(TensorHandle a, long[] sizes, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_expand_as(TensorHandle a, TensorHandle other, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_broadcast_to(TensorHandle a, long[] sizes, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_repeat(TensorHandle a, long[] repeats, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_flip(TensorHandle a, long[] dims, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_roll(TensorHandle a, long[] shifts, long nShifts, long[] dims, long nDims, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_narrow(TensorHandle a, long dim, long start, long length, out IntPtr r);

    [LibraryImport(Lib)] internal static partial int mt_cat(IntPtr[] tensors, long n, long dim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_stack(IntPtr[] tensors, long n, long dim, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_chunk(TensorHandle a, long chunks, long dim, out IntPtr list, out long count);
    [LibraryImport(Lib)] internal static partial int mt_split(TensorHandle a, long splitSize, long dim, out IntPtr list, out long count);
    [LibraryImport(Lib)] internal static partial int mt_split_with_sizes(TensorHandle a, long[] sizes, long n, long dim, out IntPtr list, out long count);
    [LibraryImport(Lib)] internal static partial int mt_unbind(TensorHandle a, long dim, out IntPtr list, out long count);

    [LibraryImport(Lib)] internal static partial int mt_index_select(TensorHandle a, long dim, TensorHandle index, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_gather(TensorHandle a, long dim, TensorHandle index, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_scatter(TensorHandle a, long dim, TensorHandle index, TensorHandle src, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_scatter_(TensorHandle a, long dim, TensorHandle index, TensorHandle src);
    [LibraryImport(Lib)] internal static partial int mt_scatter_scalar(TensorHandle a, long dim, TensorHandle index, Scalar value, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_scatter_scalar_(TensorHandle a, long dim, TensorHandle index, Scalar value);
    [LibraryImport(Lib)] internal static partial int mt_scatter_add(TensorHandle a, long dim, TensorHandle index, TensorHandle src, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_scatter_add_(TensorHandle a, long dim, TensorHandle index, TensorHandle src);
    [LibraryImport(Lib)] internal static partial int mt_masked_fill(TensorHandle a, TensorHandle mask, Scalar value, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_masked_fill_(TensorHandle a, TensorHandle mask, Scalar value);
    [LibraryImport(Lib)] internal static partial int mt_masked_fill_tensor(TensorHandle a, TensorHandle mask, TensorHandle value, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_masked_fill_tensor_(TensorHandle a, TensorHandle mask, TensorHandle value);
    [LibraryImport(Lib)] internal static partial int mt_masked_select(TensorHandle a, TensorHandle mask, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_nonzero(TensorHandle a, out IntPtr r);

    [LibraryImport(Lib)] internal static partial int mt_pad(TensorHandle a, long[] pad, long n, int mode, double value, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_one_hot(TensorHandle a, long numClasses, out IntPtr r);

    [LibraryImport(Lib)] internal static partial int mt_index(TensorHandle a, int[] kinds, long[] ints, int[] has, IntPtr[] tensors, long n, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_index_put_(TensorHandle a, int[] kinds, long[] ints, int[] has, IntPtr[] tensors, long n, TensorHandle value);
    [LibraryImport(Lib)] internal static partial int mt_index_put_scalar_(TensorHandle a, int[] kinds, long[] ints, int[] has, IntPtr[] tensors, long n, Scalar value);
}
