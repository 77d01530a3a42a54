using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

// Reductions, scans and sorting. Dimensions may be negative (counted from the end); keepdim keeps each
// reduced dimension with size 1. An optional dtype converts the input before reducing (e.g. to avoid overflow).
// (There is deliberately no sum(ScalarType)/prod(ScalarType) overload: with sum(long dim) it would make
// t.sum(0) ambiguous, since the literal 0 converts to any enum. Convert with .to(dtype) first instead.)
public partial class Tensor
{
    private static int DType(ScalarType? t) => t.HasValue ? (int)t.Value : -1;

    // ------------------------------------------------------------ sum / mean

    /// <summary>Sum over the given dimensions.</summary>
    public Tensor sum(long[] dim, bool keepdim = false, ScalarType? dtype = null)
        => Wrap(LibTorch.mt_sum_dims(Handle, dim, dim.Length, keepdim, DType(dtype), out var r), r);
    /// <summary>Sum over one dimension.</summary>
    public Tensor sum(long dim, bool keepdim = false, ScalarType? dtype = null) => sum([dim], keepdim, dtype);
    /// <summary>Mean over the given dimensions (floating-point input, or give a floating <paramref name="dtype"/>).</summary>
    public Tensor mean(long[] dim, bool keepdim = false, ScalarType? dtype = null)
        => Wrap(LibTorch.mt_mean_dims(Handle, dim, dim.Length, keepdim, DType(dtype), out var r), r);
    /// <summary>Mean over one dimension.</summary>
    public Tensor mean(long dim, bool keepdim = false, ScalarType? dtype = null) => mean([dim], keepdim, dtype);

    // ------------------------------------------------------------ extrema

    /// <summary>The largest element (0-dimensional).</summary>
    public Tensor max() => Wrap(LibTorch.mt_max_all(Handle, out var r), r);
    /// <summary>The smallest element (0-dimensional).</summary>
    public Tensor min() => Wrap(LibTorch.mt_min_all(Handle, out var r), r);
    /// <summary>Largest values along <paramref name="dim"/> and their (int64) positions.</summary>
    public (Tensor values, Tensor indices) max(long dim, bool keepdim = false)
    {
        LibTorch.Check(LibTorch.mt_max_dim(Handle, dim, keepdim, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }
    /// <summary>Smallest values along <paramref name="dim"/> and their (int64) positions.</summary>
    public (Tensor values, Tensor indices) min(long dim, bool keepdim = false)
    {
        LibTorch.Check(LibTorch.mt_min_dim(Handle, dim, keepdim, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }
    /// <summary>Elementwise maximum with <paramref name="other"/> (same as <see cref="maximum"/>).</summary>
    public Tensor max(Tensor other) => maximum(other);
    /// <summary>Elementwise minimum with <paramref name="other"/> (same as <see cref="minimum"/>).</summary>
    public Tensor min(Tensor other) => minimum(other);
    /// <summary>Largest values over the given dimensions (values only; gradient spread evenly over ties).</summary>
    public Tensor amax(long[] dim, bool keepdim = false) => Wrap(LibTorch.mt_amax(Handle, dim, dim.Length, keepdim, out var r), r);
    /// <summary>Largest values over one dimension.</summary>
    public Tensor amax(long dim, bool keepdim = false) => amax([dim], keepdim);
    /// <summary>Smallest values over the given dimensions (values only).</summary>
    public Tensor amin(long[] dim, bool keepdim = false) => Wrap(LibTorch.mt_amin(Handle, dim, dim.Length, keepdim, out var r), r);
    /// <summary>Smallest values over one dimension.</summary>
    public Tensor amin(long dim, bool keepdim = false) => amin([dim], keepdim);

    /// <summary>Position of the largest element in the flattened tensor (int64, 0-dimensional).</summary>
    public Tensor argmax() => Wrap(LibTorch.mt_argmax(Handle, false, 0, false, out var r), r);
    /// <summary>Positions of the largest elements along <paramref name="dim"/> (int64).</summary>
    public Tensor argmax(long dim, bool keepdim = false) => Wrap(LibTorch.mt_argmax(Handle, true, dim, keepdim, out var r), r);
    /// <summary>Position of the smallest element in the flattened tensor (int64, 0-dimensional).</summary>
    public Tensor argmin() => Wrap(LibTorch.mt_argmin(Handle, false, 0, false, out var r), r);
    /// <summary>Positions of the smallest elements along <paramref name="dim"/> (int64).</summary>
    public Tensor argmin(long dim, bool keepdim = false) => Wrap(LibTorch.mt_argmin(Handle, true, dim, keepdim, out var r), r);

    // ------------------------------------------------------------ variance / standard deviation

    /// <summary>Variance of all elements; unbiased (divides by N-1) by default.</summary>
    public Tensor var(bool unbiased = true) => Wrap(LibTorch.mt_var(Handle, null, -1, unbiased ? 1 : 0, false, out var r), r);
    /// <summary>Variance over the given dimensions; unbiased (N-1) by default.</summary>
    public Tensor var(long[] dim, bool unbiased = true, bool keepdim = false)
        => Wrap(LibTorch.mt_var(Handle, dim, dim.Length, unbiased ? 1 : 0, keepdim, out var r), r);
    /// <summary>Variance over one dimension; unbiased (N-1) by default.</summary>
    public Tensor var(long dim, bool unbiased = true, bool keepdim = false) => var([dim], unbiased, keepdim);
    /// <summary>
    /// Variance dividing by N - <paramref name="correction"/> (0 = population, 1 = unbiased), over the given
    /// dimensions or all elements when <paramref name="dim"/> is null.
    /// </summary>
    public Tensor var(long[]? dim, long correction, bool keepdim = false)
        => Wrap(LibTorch.mt_var(Handle, dim, dim?.Length ?? -1, correction, keepdim, out var r), r);

    /// <summary>Standard deviation of all elements; unbiased (N-1) by default.</summary>
    public Tensor std(bool unbiased = true) => Wrap(LibTorch.mt_std(Handle, null, -1, unbiased ? 1 : 0, false, out var r), r);
    /// <summary>Standard deviation over the given dimensions; unbiased (N-1) by default.</summary>
    public Tensor std(long[] dim, bool unbiased = true, bool keepdim = false)
        => Wrap(LibTorch.mt_std(Handle, dim, dim.Length, unbiased ? 1 : 0, keepdim, out var r), r);
    /// <summary>Standard deviation over one dimension; unbiased (N-1) by default.</summary>
    public Tensor std(long dim, bool unbiased = true, bool keepdim = false) => std([dim], unbiased, keepdim);
    /// <summary>Standard deviation with divisor N - <paramref name="correction"/>; all elements when <paramref name="dim"/> is null.</summary>
    public Tensor std(long[]? dim, long correction, bool keepdim = false)
        => Wrap(LibTorch.mt_std(Handle, dim, dim?.Length ?? -1, correction, keepdim, out var r), r);

    // ------------------------------------------------------------ products, logical reductions

    /// <summary>Product of all elements (0-dimensional).</summary>
    public Tensor prod() => Wrap(LibTorch.mt_prod_all(Handle, -1, out var r), r);
    /// <summary>Product over one dimension.</summary>
    public Tensor prod(long dim, bool keepdim = false, ScalarType? dtype = null)
        => Wrap(LibTorch.mt_prod_dim(Handle, dim, keepdim, DType(dtype), out var r), r);

    /// <summary>True (bool, 0-dimensional) when every element is non-zero.</summary>
    public Tensor all() => Wrap(LibTorch.mt_all_all(Handle, out var r), r);
    /// <summary>Whether every element along <paramref name="dim"/> is non-zero.</summary>
    public Tensor all(long dim, bool keepdim = false) => Wrap(LibTorch.mt_all_dim(Handle, dim, keepdim, out var r), r);
    /// <summary>True (bool, 0-dimensional) when any element is non-zero.</summary>
    public Tensor any() => Wrap(LibTorch.mt_any_all(Handle, out var r), r);
    /// <summary>Whether any element along <paramref name="dim"/> is non-zero.</summary>
    public Tensor any(long dim, bool keepdim = false) => Wrap(LibTorch.mt_any_dim(Handle, dim, keepdim, out var r), r);

    // ------------------------------------------------------------ norms

    /// <summary>The p-norm (default 2, the Euclidean norm) of all elements.</summary>
    public Tensor norm(double p = 2) => Wrap(LibTorch.mt_norm(Handle, p, null, -1, false, out var r), r);
    /// <summary>The p-norm over the given dimensions.</summary>
    public Tensor norm(long[] dim, bool keepdim = false, double p = 2)
        => Wrap(LibTorch.mt_norm(Handle, p, dim, dim.Length, keepdim, out var r), r);
    /// <summary>log(sum(exp(x))) over the given dimensions, computed stably.</summary>
    public Tensor logsumexp(long[] dim, bool keepdim = false) => Wrap(LibTorch.mt_logsumexp(Handle, dim, dim.Length, keepdim, out var r), r);
    /// <summary>log(sum(exp(x))) over one dimension, computed stably.</summary>
    public Tensor logsumexp(long dim, bool keepdim = false) => logsumexp([dim], keepdim);

    // ------------------------------------------------------------ scans and sorting

    /// <summary>Cumulative sum along <paramref name="dim"/>.</summary>
    public Tensor cumsum(long dim, ScalarType? dtype = null) => Wrap(LibTorch.mt_cumsum(Handle, dim, DType(dtype), out var r), r);
    /// <summary>Cumulative product along <paramref name="dim"/>.</summary>
    public Tensor cumprod(long dim, ScalarType? dtype = null) => Wrap(LibTorch.mt_cumprod(Handle, dim, DType(dtype), out var r), r);

    /// <summary>Sorted values along <paramref name="dim"/> (default last) and their original positions.</summary>
    public (Tensor values, Tensor indices) sort(long dim = -1, bool descending = false, bool stable = false)
    {
        LibTorch.Check(LibTorch.mt_sort(Handle, dim, descending, stable, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }
    /// <summary>The positions that sort the tensor along <paramref name="dim"/>.</summary>
    public Tensor argsort(long dim = -1, bool descending = false)
    {
        var (values, indices) = sort(dim, descending);
        values.Dispose();
        return indices;
    }
    /// <summary>The <paramref name="k"/> largest (or smallest) values along <paramref name="dim"/> and their positions.</summary>
    public (Tensor values, Tensor indices) topk(long k, long dim = -1, bool largest = true, bool sorted = true)
    {
        LibTorch.Check(LibTorch.mt_topk(Handle, k, dim, largest, sorted, out var v, out var i));
        return (new Tensor(v), new Tensor(i));
    }
}
