using System.Runtime.InteropServices;
using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

// Shape and layout: views and reshapes, splits, gathers/scatters, masks, expansion, flips and rolls.
// Views (view, permute, transpose, t, squeeze, unsqueeze, expand, narrow, chunk, split, ...) share storage
// with this tensor, as in PyTorch.
public partial class Tensor
{
    /// <summary>Wraps a malloc'ed array of <paramref name="count"/> handles returned by the shim and frees the array.</summary>
    internal static Tensor[] WrapList(int status, IntPtr list, long count)
    {
        LibTorch.Check(status);
        try
        {
            var result = new Tensor[count];
            for (long k = 0; k < count; k++) result[k] = new Tensor(Marshal.ReadIntPtr(list, (int)(k * IntPtr.Size)));
            return result;
        }
        finally
        {
            LibTorch.mt_free_buffer(list);
        }
    }

    // ------------------------------------------------------------ views and reshapes

    /// <summary>The same elements with a new shape (a view when possible, else a copy); one size may be -1.</summary>
    public Tensor reshape(params long[] shape) => Wrap(LibTorch.mt_reshape(Handle, shape, shape.Length, out var r), r);
    /// <summary>A view with a new shape (needs compatible strides); one size may be -1.</summary>
    public Tensor view(params long[] shape) => Wrap(LibTorch.mt_view(Handle, shape, shape.Length, out var r), r);
    /// <summary>A view with the same shape as <paramref name="other"/>.</summary>
    public Tensor view_as(Tensor other) => view(other.shape);
    /// <summary>A view with the dimensions reordered: result dim k is this tensor's dim <c>dims[k]</c>.</summary>
    public Tensor permute(params long[] dims) => Wrap(LibTorch.mt_permute(Handle, dims, dims.Length, out var r), r);
    /// <summary>A view with two dimensions swapped.</summary>
    public Tensor transpose(long dim0, long dim1) => Wrap(LibTorch.mt_transpose(Handle, dim0, dim1, out var r), r);
    /// <summary>Transpose of a tensor with at most 2 dimensions.</summary>
    public Tensor t() => Wrap(LibTorch.mt_t(Handle, out var r), r);
    /// <summary>Flattens dimensions start_dim..end_dim (inclusive; default all) into one.</summary>
    public Tensor flatten(long start_dim = 0, long end_dim = -1) => Wrap(LibTorch.mt_flatten(Handle, start_dim, end_dim, out var r), r);
    /// <summary>Splits dimension <paramref name="dim"/> into <paramref name="sizes"/> (their product must equal its size; one may be -1).</summary>
    public Tensor unflatten(long dim, params long[] sizes) => Wrap(LibTorch.mt_unflatten(Handle, dim, sizes, sizes.Length, out var r), r);
    /// <summary>Removes every dimension of size 1.</summary>
    public Tensor squeeze() => Wrap(LibTorch.mt_squeeze(Handle, out var r), r);
    /// <summary>Removes dimension <paramref name="dim"/> when its size is 1 (otherwise returns the same shape).</summary>
    public Tensor squeeze(long dim) => Wrap(LibTorch.mt_squeeze_dim(Handle, dim, out var r), r);
    /// <summary>Inserts a dimension of size 1 at <paramref name="dim"/> (negative counts from the end of the result).</summary>
    public Tensor unsqueeze(long dim) => Wrap(LibTorch.mt_unsqueeze(Handle, dim, out var r), r);

    /// <summary>A broadcast view with the given sizes (-1 keeps a dimension); only size-1 dimensions grow.</summary>
    public Tensor expand(params long[] sizes) => Wrap(LibTorch.mt_expand(Handle, sizes, sizes.Length, out var r), r);
    /// <summary>A broadcast view with the shape of <paramref name="other"/>.</summary>
    public Tensor expand_as(Tensor other) => Wrap(LibTorch.mt_expand_as(Handle, other.Handle, out var r), r);
    /// <summary>A broadcast view with the given shape (NumPy broadcasting rules).</summary>
    public Tensor broadcast_to(params long[] shape) => Wrap(LibTorch.mt_broadcast_to(Handle, shape, shape.Length, out var r), r);
    /// <summary>Tiles the tensor: dimension k is repeated <c>repeats[k]</c> times (copies data).</summary>
    public Tensor repeat(params long[] repeats) => Wrap(LibTorch.mt_repeat(Handle, repeats, repeats.Length, out var r), r);
    /// <summary>Reverses the order of elements along the given dimensions (copies data).</summary>
    public Tensor flip(params long[] dims) => Wrap(LibTorch.mt_flip(Handle, dims, dims.Length, out var r), r);
    /// <summary>
    /// Rolls elements along <paramref name="dims"/> by <paramref name="shifts"/> (elements leaving one end re-enter at
    /// the other). With no dims the flattened tensor is rolled and the shape restored.
    /// </summary>
    public Tensor roll(long[] shifts, long[]? dims = null)
    {
        dims ??= [];
        return Wrap(LibTorch.mt_roll(Handle, shifts, shifts.Length, dims, dims.Length, out var r), r);
    }
    /// <summary>Rolls by <paramref name="shift"/> along <paramref name="dim"/> (or the flattened tensor when null).</summary>
    public Tensor roll(long shift, long? dim = null) => roll([shift], dim.HasValue ? [dim.Value] : null);
    /// <summary>A view of <paramref name="length"/> elements of dimension <paramref name="dim"/> starting at <paramref name="start"/>.</summary>
    public Tensor narrow(long dim, long start, long length) => Wrap(LibTorch.mt_narrow(Handle, dim, start, length, out var r), r);

    // ------------------------------------------------------------ splits

    /// <summary>Splits into <paramref name="chunks"/> views along <paramref name="dim"/> (the last may be smaller; there may be fewer).</summary>
    public Tensor[] chunk(long chunks, long dim = 0) => WrapList(LibTorch.mt_chunk(Handle, chunks, dim, out var l, out var n), l, n);
    /// <summary>Splits into views of <paramref name="split_size"/> elements along <paramref name="dim"/> (the last may be smaller).</summary>
    public Tensor[] split(long split_size, long dim = 0) => WrapList(LibTorch.mt_split(Handle, split_size, dim, out var l, out var n), l, n);
    /// <summary>Splits into views with the given sizes along <paramref name="dim"/> (they must add up to its size).</summary>
    public Tensor[] split(long[] split_sizes, long dim = 0)
        => WrapList(LibTorch.mt_split_with_sizes(Handle, split_sizes, split_sizes.Length, dim, out var l, out var n), l, n);
    /// <summary>Removes dimension <paramref name="dim"/>, returning the slices along it.</summary>
    public Tensor[] unbind(long dim = 0) => WrapList(LibTorch.mt_unbind(Handle, dim, out var l, out var n), l, n);

    // ------------------------------------------------------------ gathers, scatters, masks

    /// <summary>The entries of <paramref name="index"/> (1-D int64/int32) along <paramref name="dim"/>.</summary>
    public Tensor index_select(long dim, Tensor index) => Wrap(LibTorch.mt_index_select(Handle, dim, index.Handle, out var r), r);
    /// <summary>out[i][j] = this[index[i][j]][j] for dim 0 (and alike for other dims); index is int64 with the output's shape.</summary>
    public Tensor gather(long dim, Tensor index) => Wrap(LibTorch.mt_gather(Handle, dim, index.Handle, out var r), r);
    /// <summary>A copy with this[index[i][j]][j] = src[i][j] (for dim 0; alike for others).</summary>
    public Tensor scatter(long dim, Tensor index, Tensor src) => Wrap(LibTorch.mt_scatter(Handle, dim, index.Handle, src.Handle, out var r), r);
    /// <summary>A copy with <paramref name="value"/> written at the positions in <paramref name="index"/> along <paramref name="dim"/>.</summary>
    public Tensor scatter(long dim, Tensor index, Scalar value) => Wrap(LibTorch.mt_scatter_scalar(Handle, dim, index.Handle, value, out var r), r);
    /// <summary>In-place <see cref="scatter(long, Tensor, Tensor)"/>; returns this.</summary>
    public Tensor scatter_(long dim, Tensor index, Tensor src) { LibTorch.Check(LibTorch.mt_scatter_(Handle, dim, index.Handle, src.Handle)); return this; }
    /// <summary>In-place <see cref="scatter(long, Tensor, Scalar)"/>; returns this.</summary>
    public Tensor scatter_(long dim, Tensor index, Scalar value) { LibTorch.Check(LibTorch.mt_scatter_scalar_(Handle, dim, index.Handle, value)); return this; }
    /// <summary>A copy with src added at the positions in <paramref name="index"/> (duplicates accumulate).</summary>
    public Tensor scatter_add(long dim, Tensor index, Tensor src) => Wrap(LibTorch.mt_scatter_add(Handle, dim, index.Handle, src.Handle, out var r), r);
    /// <summary>In-place <see cref="scatter_add"/>; returns this.</summary>
    public Tensor scatter_add_(long dim, Tensor index, Tensor src) { LibTorch.Check(LibTorch.mt_scatter_add_(Handle, dim, index.Handle, src.Handle)); return this; }

    /// <summary>A copy with <paramref name="value"/> where the bool <paramref name="mask"/> (broadcast) is true.</summary>
    public Tensor masked_fill(Tensor mask, Scalar value) => Wrap(LibTorch.mt_masked_fill(Handle, mask.Handle, value, out var r), r);
    /// <summary>A copy with the 0-dimensional <paramref name="value"/> where <paramref name="mask"/> is true (differentiable in value).</summary>
    public Tensor masked_fill(Tensor mask, Tensor value) => Wrap(LibTorch.mt_masked_fill_tensor(Handle, mask.Handle, value.Handle, out var r), r);
    /// <summary>In-place <see cref="masked_fill(Tensor, Scalar)"/>; returns this.</summary>
    public Tensor masked_fill_(Tensor mask, Scalar value) { LibTorch.Check(LibTorch.mt_masked_fill_(Handle, mask.Handle, value)); return this; }
    /// <summary>In-place <see cref="masked_fill(Tensor, Tensor)"/>; returns this.</summary>
    public Tensor masked_fill_(Tensor mask, Tensor value) { LibTorch.Check(LibTorch.mt_masked_fill_tensor_(Handle, mask.Handle, value.Handle)); return this; }
    /// <summary>The elements where the bool <paramref name="mask"/> (broadcast) is true, as a 1-D tensor.</summary>
    public Tensor masked_select(Tensor mask) => Wrap(LibTorch.mt_masked_select(Handle, mask.Handle, out var r), r);
    /// <summary>The indices of the non-zero elements, shape [count, dim] (int64).</summary>
    public Tensor nonzero() => Wrap(LibTorch.mt_nonzero(Handle, out var r), r);
}
