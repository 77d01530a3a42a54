using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

// Static mirrors of the tensor operations (torch.cat, torch.where, torch.pow, torch.sum, ...), as in PyTorch.
public static partial class torch
{
    // ------------------------------------------------------------ elementwise math

    /// <summary>input ** exponent, elementwise with broadcasting.</summary>
    public static Tensor pow(Tensor input, Tensor exponent) => input.pow(exponent);
    /// <summary>input ** exponent, elementwise.</summary>
    public static Tensor pow(Tensor input, Scalar exponent) => input.pow(exponent);
    /// <summary>self ** exponent for a scalar base, elementwise over the exponent.</summary>
    public static Tensor pow(Scalar self, Tensor exponent) => Wrap(LibTorch.mt_pow_scalar_base(self, exponent.Handle, out var r), r);
    /// <summary>Python-style remainder, elementwise.</summary>
    public static Tensor remainder(Tensor input, Tensor other) => input.remainder(other);
    /// <summary>Python-style remainder, elementwise.</summary>
    public static Tensor remainder(Tensor input, Scalar other) => input.remainder(other);
    /// <summary>Elementwise <see cref="Tensor.sqrt()"/>.</summary>
    public static Tensor sqrt(Tensor input) => input.sqrt();
    /// <summary>Elementwise <see cref="Tensor.rsqrt()"/>.</summary>
    public static Tensor rsqrt(Tensor input) => input.rsqrt();
    /// <summary>Elementwise <see cref="Tensor.exp()"/>.</summary>
    public static Tensor exp(Tensor input) => input.exp();
    /// <summary>Elementwise <see cref="Tensor.log()"/>.</summary>
    public static Tensor log(Tensor input) => input.log();
    /// <summary>Elementwise <see cref="Tensor.log1p()"/>.</summary>
    public static Tensor log1p(Tensor input) => input.log1p();
    /// <summary>Elementwise <see cref="Tensor.abs()"/>.</summary>
    public static Tensor abs(Tensor input) => input.abs();
    /// <summary>Elementwise <see cref="Tensor.sign()"/>.</summary>
    public static Tensor sign(Tensor input) => input.sign();
    /// <summary>Elementwise <see cref="Tensor.neg()"/>.</summary>
    public static Tensor neg(Tensor input) => input.neg();
    /// <summary>Elementwise <see cref="Tensor.reciprocal()"/>.</summary>
    public static Tensor reciprocal(Tensor input) => input.reciprocal();
    /// <summary>Elementwise <see cref="Tensor.floor()"/>.</summary>
    public static Tensor floor(Tensor input) => input.floor();
    /// <summary>Elementwise <see cref="Tensor.ceil()"/>.</summary>
    public static Tensor ceil(Tensor input) => input.ceil();
    /// <summary>Elementwise <see cref="Tensor.round()"/>.</summary>
    public static Tensor round(Tensor input) => input.round();
    /// <summary>Elementwise <see cref="Tensor.trunc()"/>.</summary>
    public static Tensor trunc(Tensor input) => input.trunc();
    /// <summary>Elementwise <see cref="Tensor.sin()"/>.</summary>
    public static Tensor sin(Tensor input) => input.sin();
    /// <summary>Elementwise <see cref="Tensor.cos()"/>.</summary>
    public static Tensor cos(Tensor input) => input.cos();
    /// <summary>Elementwise <see cref="Tensor.square()"/>.</summary>
    public static Tensor square(Tensor input) => input.square();
    /// <summary>Elementwise <see cref="Tensor.logical_not()"/>.</summary>
    public static Tensor logical_not(Tensor input) => input.logical_not();
    /// <summary>Elementwise <see cref="Tensor.bitwise_not()"/>.</summary>
    public static Tensor bitwise_not(Tensor input) => input.bitwise_not();
    /// <summary>Elementwise <see cref="Tensor.isnan()"/>.</summary>
    public static Tensor isnan(Tensor input) => input.isnan();
    /// <summary>Elementwise <see cref="Tensor.isfinite()"/>.</summary>
    public static Tensor isfinite(Tensor input) => input.isfinite();
    /// <summary>Elementwise <see cref="Tensor.isinf()"/>.</summary>
    public static Tensor isinf(Tensor input) => input.isinf();
    /// <summary>In-place <see cref="Tensor.sqrt_()"/>; returns input.</summary>
    public static Tensor sqrt_(Tensor input) => input.sqrt_();
    /// <summary>In-place <see cref="Tensor.rsqrt_()"/>; returns input.</summary>
    public static Tensor rsqrt_(Tensor input) => input.rsqrt_();
    /// <summary>In-place <see cref="Tensor.exp_()"/>; returns input.</summary>
    public static Tensor exp_(Tensor input) => input.exp_();
    /// <summary>In-place <see cref="Tensor.log_()"/>; returns input.</summary>
    public static Tensor log_(Tensor input) => input.log_();
    /// <summary>In-place <see cref="Tensor.log1p_()"/>; returns input.</summary>
    public static Tensor log1p_(Tensor input) => input.log1p_();
    /// <summary>In-place <see cref="Tensor.abs_()"/>; returns input.</summary>
    public static Tensor abs_(Tensor input) => input.abs_();
    /// <summary>In-place <see cref="Tensor.sign_()"/>; returns input.</summary>
    public static Tensor sign_(Tensor input) => input.sign_();
    /// <summary>In-place <see cref="Tensor.neg_()"/>; returns input.</summary>
    public static Tensor neg_(Tensor input) => input.neg_();
    /// <summary>In-place <see cref="Tensor.reciprocal_()"/>; returns input.</summary>
    public static Tensor reciprocal_(Tensor input) => input.reciprocal_();
    /// <summary>In-place <see cref="Tensor.floor_()"/>; returns input.</summary>
    public static Tensor floor_(Tensor input) => input.floor_();
    /// <summary>In-place <see cref="Tensor.ceil_()"/>; returns input.</summary>
    public static Tensor ceil_(Tensor input) => input.ceil_();
    /// <summary>In-place <see cref="Tensor.round_()"/>; returns input.</summary>
    public static Tensor round_(Tensor input) => input.round_();
    /// <summary>In-place <see cref="Tensor.trunc_()"/>; returns input.</summary>
    public static Tensor trunc_(Tensor input) => input.trunc_();
    /// <summary>In-place <see cref="Tensor.sin_()"/>; returns input.</summary>
    public static Tensor sin_(Tensor input) => input.sin_();
    /// <summary>In-place <see cref="Tensor.cos_()"/>; returns input.</summary>
    public static Tensor cos_(Tensor input) => input.cos_();
    /// <summary>In-place <see cref="Tensor.square_()"/>; returns input.</summary>
    public static Tensor square_(Tensor input) => input.square_();
    /// <summary>In-place <see cref="Tensor.logical_not_()"/>; returns input.</summary>
    public static Tensor logical_not_(Tensor input) => input.logical_not_();
    /// <summary>In-place <see cref="Tensor.bitwise_not_()"/>; returns input.</summary>
    public static Tensor bitwise_not_(Tensor input) => input.bitwise_not_();

    /// <summary>Limits every element of input to [min, max]; either bound may be null, not both.</summary>
    public static Tensor clamp(Tensor input, Scalar? min = null, Scalar? max = null) => input.clamp(min, max);
    /// <summary>Limits every element of input to the elementwise bounds [min, max]; either may be null, not both.</summary>
    public static Tensor clamp(Tensor input, Tensor? min, Tensor? max = null) => input.clamp(min, max);
    /// <summary>Same as <see cref="clamp(Tensor, Scalar?, Scalar?)"/>.</summary>
    public static Tensor clip(Tensor input, Scalar? min = null, Scalar? max = null) => input.clamp(min, max);
    /// <summary>Elementwise maximum (broadcast).</summary>
    public static Tensor maximum(Tensor input, Tensor other) => input.maximum(other);
    /// <summary>Elementwise minimum (broadcast).</summary>
    public static Tensor minimum(Tensor input, Tensor other) => input.minimum(other);

    /// <summary>Elements of x where condition is true, else of y (all broadcast together).</summary>
    public static Tensor where(Tensor condition, Tensor x, Tensor y) => Wrap(LibTorch.mt_where(condition.Handle, x.Handle, y.Handle, out var r), r);
    /// <summary>Elements of x where condition is true, else y.</summary>
    public static Tensor where(Tensor condition, Tensor x, Scalar y) => Wrap(LibTorch.mt_where_ts(condition.Handle, x.Handle, y, out var r), r);
    /// <summary>x where condition is true, else elements of y.</summary>
    public static Tensor where(Tensor condition, Scalar x, Tensor y) => Wrap(LibTorch.mt_where_st(condition.Handle, x, y.Handle, out var r), r);
    /// <summary>x where condition is true, else y (the result takes the scalars' promoted dtype).</summary>
    public static Tensor where(Tensor condition, Scalar x, Scalar y) => Wrap(LibTorch.mt_where_ss(condition.Handle, x, y, out var r), r);
    /// <summary>The indices of the non-zero elements of condition, one 1-D int64 tensor per dimension (PyTorch's where(condition)).</summary>
    public static Tensor[] where(Tensor condition)
    {
        using var nz = condition.nonzero();
        return nz.unbind(1);
    }

    /// <summary>Logical AND; bool result.</summary>
    public static Tensor logical_and(Tensor input, Tensor other) => input.logical_and(other);
    /// <summary>Logical OR; bool result.</summary>
    public static Tensor logical_or(Tensor input, Tensor other) => input.logical_or(other);
    /// <summary>Logical XOR; bool result.</summary>
    public static Tensor logical_xor(Tensor input, Tensor other) => input.logical_xor(other);
    /// <summary>Bitwise AND (logical for bool tensors).</summary>
    public static Tensor bitwise_and(Tensor input, Tensor other) => input.bitwise_and(other);
    /// <summary>Bitwise OR (logical for bool tensors).</summary>
    public static Tensor bitwise_or(Tensor input, Tensor other) => input.bitwise_or(other);
    /// <summary>Bitwise XOR (logical for bool tensors).</summary>
    public static Tensor bitwise_xor(Tensor input, Tensor other) => input.bitwise_xor(other);

    /// <summary>input == other, elementwise.</summary>
    public static Tensor eq(Tensor input, Tensor other) => input.eq(other);
    /// <summary>input == other, elementwise.</summary>
    public static Tensor eq(Tensor input, Scalar other) => input.eq(other);
    /// <summary>input != other, elementwise.</summary>
    public static Tensor ne(Tensor input, Tensor other) => input.ne(other);
    /// <summary>input != other, elementwise.</summary>
    public static Tensor ne(Tensor input, Scalar other) => input.ne(other);
    /// <summary>input &lt; other, elementwise.</summary>
    public static Tensor lt(Tensor input, Tensor other) => input.lt(other);
    /// <summary>input &lt; other, elementwise.</summary>
    public static Tensor lt(Tensor input, Scalar other) => input.lt(other);
    /// <summary>input &lt;= other, elementwise.</summary>
    public static Tensor le(Tensor input, Tensor other) => input.le(other);
    /// <summary>input &lt;= other, elementwise.</summary>
    public static Tensor le(Tensor input, Scalar other) => input.le(other);
    /// <summary>input &gt; other, elementwise.</summary>
    public static Tensor gt(Tensor input, Tensor other) => input.gt(other);
    /// <summary>input &gt; other, elementwise.</summary>
    public static Tensor gt(Tensor input, Scalar other) => input.gt(other);
    /// <summary>input &gt;= other, elementwise.</summary>
    public static Tensor ge(Tensor input, Tensor other) => input.ge(other);
    /// <summary>input &gt;= other, elementwise.</summary>
    public static Tensor ge(Tensor input, Scalar other) => input.ge(other);

    /// <summary>True when |input - other| &lt;= atol + rtol * |other| everywhere (defaults rtol 1e-5, atol 1e-8).</summary>
    public static bool allclose(Tensor input, Tensor other, double rtol = 1e-5, double atol = 1e-8, bool equal_nan = false)
        => input.allclose(other, rtol, atol, equal_nan);
    /// <summary>True when both tensors have the same shape and elements.</summary>
    public static bool equal(Tensor input, Tensor other) => input.equal(other);

    // ------------------------------------------------------------ reductions

    /// <summary>Sum of all elements.</summary>
    public static Tensor sum(Tensor input) => input.sum();
    /// <summary>Sum over the given dimensions.</summary>
    public static Tensor sum(Tensor input, long[] dim, bool keepdim = false, ScalarType? dtype = null) => input.sum(dim, keepdim, dtype);
    /// <summary>Sum over one dimension.</summary>
    public static Tensor sum(Tensor input, long dim, bool keepdim = false, ScalarType? dtype = null) => input.sum(dim, keepdim, dtype);
    /// <summary>Mean of all elements.</summary>
    public static Tensor mean(Tensor input) => input.mean();
    /// <summary>Mean over the given dimensions.</summary>
    public static Tensor mean(Tensor input, long[] dim, bool keepdim = false, ScalarType? dtype = null) => input.mean(dim, keepdim, dtype);
    /// <summary>Mean over one dimension.</summary>
    public static Tensor mean(Tensor input, long dim, bool keepdim = false, ScalarType? dtype = null) => input.mean(dim, keepdim, dtype);
    /// <summary>The largest element.</summary>
    public static Tensor max(Tensor input) => input.max();
    /// <summary>Largest values along dim and their positions.</summary>
    public static (Tensor values, Tensor indices) max(Tensor input, long dim, bool keepdim = false) => input.max(dim, keepdim);
    /// <summary>Elementwise maximum.</summary>
    public static Tensor max(Tensor input, Tensor other) => input.maximum(other);
    /// <summary>The smallest element.</summary>
    public static Tensor min(Tensor input) => input.min();
    /// <summary>Smallest values along dim and their positions.</summary>
    public static (Tensor values, Tensor indices) min(Tensor input, long dim, bool keepdim = false) => input.min(dim, keepdim);
    /// <summary>Elementwise minimum.</summary>
    public static Tensor min(Tensor input, Tensor other) => input.minimum(other);
    /// <summary>Largest values over the given dimensions.</summary>
    public static Tensor amax(Tensor input, long[] dim, bool keepdim = false) => input.amax(dim, keepdim);
    /// <summary>Smallest values over the given dimensions.</summary>
    public static Tensor amin(Tensor input, long[] dim, bool keepdim = false) => input.amin(dim, keepdim);
    /// <summary>Position of the largest element of the flattened input.</summary>
    public static Tensor argmax(Tensor input) => input.argmax();
    /// <summary>Positions of the largest elements along dim.</summary>
    public static Tensor argmax(Tensor input, long dim, bool keepdim = false) => input.argmax(dim, keepdim);
    /// <summary>Position of the smallest element of the flattened input.</summary>
    public static Tensor argmin(Tensor input) => input.argmin();
    /// <summary>Positions of the smallest elements along dim.</summary>
    public static Tensor argmin(Tensor input, long dim, bool keepdim = false) => input.argmin(dim, keepdim);
    /// <summary>Variance of all elements (unbiased by default).</summary>
    public static Tensor var(Tensor input, bool unbiased = true) => input.var(unbiased);
    /// <summary>Variance over the given dimensions (unbiased by default).</summary>
    public static Tensor var(Tensor input, long[] dim, bool unbiased = true, bool keepdim = false) => input.var(dim, unbiased, keepdim);
    /// <summary>Variance with divisor N - correction, over dim (null = all).</summary>
    public static Tensor var(Tensor input, long[]? dim, long correction, bool keepdim = false) => input.var(dim, correction, keepdim);
    /// <summary>Standard deviation of all elements (unbiased by default).</summary>
    public static Tensor std(Tensor input, bool unbiased = true) => input.std(unbiased);
    /// <summary>Standard deviation over the given dimensions (unbiased by default).</summary>
    public static Tensor std(Tensor input, long[] dim, bool unbiased = true, bool keepdim = false) => input.std(dim, unbiased, keepdim);
    /// <summary>Standard deviation with divisor N - correction, over dim (null = all).</summary>
    public static Tensor std(Tensor input, long[]? dim, long correction, bool keepdim = false) => input.std(dim, correction, keepdim);
    /// <summary>Product of all elements.</summary>
    public static Tensor prod(Tensor input) => input.prod();
    /// <summary>Product over one dimension.</summary>
    public static Tensor prod(Tensor input, long dim, bool keepdim = false, ScalarType? dtype = null) => input.prod(dim, keepdim, dtype);
    /// <summary>Whether every element is non-zero.</summary>
    public static Tensor all(Tensor input) => input.all();
    /// <summary>Whether every element along dim is non-zero.</summary>
    public static Tensor all(Tensor input, long dim, bool keepdim = false) => input.all(dim, keepdim);
    /// <summary>Whether any element is non-zero.</summary>
    public static Tensor any(Tensor input) => input.any();
    /// <summary>Whether any element along dim is non-zero.</summary>
    public static Tensor any(Tensor input, long dim, bool keepdim = false) => input.any(dim, keepdim);
    /// <summary>The p-norm of all elements (default 2).</summary>
    public static Tensor norm(Tensor input, double p = 2) => input.norm(p);
    /// <summary>The p-norm over the given dimensions.</summary>
    public static Tensor norm(Tensor input, long[] dim, bool keepdim = false, double p = 2) => input.norm(dim, keepdim, p);
    /// <summary>log(sum(exp(input))) over the given dimensions.</summary>
    public static Tensor logsumexp(Tensor input, long[] dim, bool keepdim = false) => input.logsumexp(dim, keepdim);
    /// <summary>Cumulative sum along dim.</summary>
    public static Tensor cumsum(Tensor input, long dim, ScalarType? dtype = null) => input.cumsum(dim, dtype);
    /// <summary>Cumulative product along dim.</summary>
    public static Tensor cumprod(Tensor input, long dim, ScalarType? dtype = null) => input.cumprod(dim, dtype);
    /// <summary>Sorted values along dim and their positions.</summary>
    public static (Tensor values, Tensor indices) sort(Tensor input, long dim = -1, bool descending = false, bool stable = false) => input.sort(dim, descending, stable);
    /// <summary>The positions that sort input along dim.</summary>
    public static Tensor argsort(Tensor input, long dim = -1, bool descending = false) => input.argsort(dim, descending);
    /// <summary>The k largest (or smallest) values along dim and their positions.</summary>
    public static (Tensor values, Tensor indices) topk(Tensor input, long k, long dim = -1, bool largest = true, bool sorted = true) => input.topk(k, dim, largest, sorted);

    // ------------------------------------------------------------ shape

    private static IReadOnlyList<Tensor> AsReadOnly(IList<Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        return tensors as IReadOnlyList<Tensor> ?? tensors.ToArray();
    }

    /// <summary>Concatenates tensors along an existing dimension (all other sizes must match).</summary>
    public static Tensor cat(IList<Tensor> tensors, long dim = 0)
    {
        using var h = new HandleArray(AsReadOnly(tensors));
        return Wrap(LibTorch.mt_cat(h.Pointers, h.Length, dim, out var r), r);
    }
    /// <summary>Same as <see cref="cat"/>.</summary>
    public static Tensor concat(IList<Tensor> tensors, long dim = 0) => cat(tensors, dim);
    /// <summary>Stacks equally-shaped tensors along a new dimension.</summary>
    public static Tensor stack(IList<Tensor> tensors, long dim = 0)
    {
        using var h = new HandleArray(AsReadOnly(tensors));
        return Wrap(LibTorch.mt_stack(h.Pointers, h.Length, dim, out var r), r);
    }
    /// <summary>The same elements with a new shape.</summary>
    public static Tensor reshape(Tensor input, params long[] shape) => input.reshape(shape);
    /// <summary>A view with the dimensions reordered.</summary>
    public static Tensor permute(Tensor input, params long[] dims) => input.permute(dims);
    /// <summary>A view with two dimensions swapped.</summary>
    public static Tensor transpose(Tensor input, long dim0, long dim1) => input.transpose(dim0, dim1);
    /// <summary>Transpose of a tensor with at most 2 dimensions.</summary>
    public static Tensor t(Tensor input) => input.t();
    /// <summary>Flattens dimensions start_dim..end_dim into one.</summary>
    public static Tensor flatten(Tensor input, long start_dim = 0, long end_dim = -1) => input.flatten(start_dim, end_dim);
    /// <summary>Splits one dimension into several.</summary>
    public static Tensor unflatten(Tensor input, long dim, params long[] sizes) => input.unflatten(dim, sizes);
    /// <summary>Removes every dimension of size 1.</summary>
    public static Tensor squeeze(Tensor input) => input.squeeze();
    /// <summary>Removes dimension dim when its size is 1.</summary>
    public static Tensor squeeze(Tensor input, long dim) => input.squeeze(dim);
    /// <summary>Inserts a dimension of size 1.</summary>
    public static Tensor unsqueeze(Tensor input, long dim) => input.unsqueeze(dim);
    /// <summary>Splits into chunks along dim.</summary>
    public static Tensor[] chunk(Tensor input, long chunks, long dim = 0) => input.chunk(chunks, dim);
    /// <summary>Splits into pieces of split_size along dim.</summary>
    public static Tensor[] split(Tensor input, long split_size, long dim = 0) => input.split(split_size, dim);
    /// <summary>Splits into pieces of the given sizes along dim.</summary>
    public static Tensor[] split(Tensor input, long[] split_sizes, long dim = 0) => input.split(split_sizes, dim);
    /// <summary>Removes dimension dim, returning the slices along it.</summary>
    public static Tensor[] unbind(Tensor input, long dim = 0) => input.unbind(dim);
    /// <summary>A narrowed view of one dimension.</summary>
    public static Tensor narrow(Tensor input, long dim, long start, long length) => input.narrow(dim, start, length);
    /// <summary>The entries of index along dim.</summary>
    public static Tensor index_select(Tensor input, long dim, Tensor index) => input.index_select(dim, index);
    /// <summary>Gathers values along dim at the positions in index.</summary>
    public static Tensor gather(Tensor input, long dim, Tensor index) => input.gather(dim, index);
    /// <summary>A copy of input with src written at the positions in index along dim.</summary>
    public static Tensor scatter(Tensor input, long dim, Tensor index, Tensor src) => input.scatter(dim, index, src);
    /// <summary>A copy of input with value written at the positions in index along dim.</summary>
    public static Tensor scatter(Tensor input, long dim, Tensor index, Scalar value) => input.scatter(dim, index, value);
    /// <summary>A copy of input with src added at the positions in index along dim.</summary>
    public static Tensor scatter_add(Tensor input, long dim, Tensor index, Tensor src) => input.scatter_add(dim, index, src);
    /// <summary>A copy of input with value where mask is true.</summary>
    public static Tensor masked_fill(Tensor input, Tensor mask, Scalar value) => input.masked_fill(mask, value);
    /// <summary>The elements of input where mask is true, as a 1-D tensor.</summary>
    public static Tensor masked_select(Tensor input, Tensor mask) => input.masked_select(mask);
    /// <summary>The indices of the non-zero elements, shape [count, dim].</summary>
    public static Tensor nonzero(Tensor input) => input.nonzero();
    /// <summary>A broadcast view with the given shape.</summary>
    public static Tensor broadcast_to(Tensor input, params long[] shape) => input.broadcast_to(shape);
    /// <summary>Reverses the order of elements along dims.</summary>
    public static Tensor flip(Tensor input, params long[] dims) => input.flip(dims);
    /// <summary>Rolls elements along dims by shifts (flattened when dims is null).</summary>
    public static Tensor roll(Tensor input, long[] shifts, long[]? dims = null) => input.roll(shifts, dims);
    /// <summary>Rolls elements along dim by shift (flattened when dim is null).</summary>
    public static Tensor roll(Tensor input, long shift, long? dim = null) => input.roll(shift, dim);

    // ------------------------------------------------------------ random sampling (explicit generators)

    /// <summary>0/1 draws with the probabilities in input (values in [0, 1]).</summary>
    public static Tensor bernoulli(Tensor input, Generator? generator = null) => input.bernoulli(generator);
    /// <summary>0/1 draws with probability p, shaped and typed like input.</summary>
    public static Tensor bernoulli(Tensor input, double p, Generator? generator = null) => input.bernoulli(p, generator);
    /// <summary>Category indices drawn per row of the non-negative weights in input.</summary>
    public static Tensor multinomial(Tensor input, long num_samples, bool replacement = false, Generator? generator = null)
        => input.multinomial(num_samples, replacement, generator);
    /// <summary>Normal samples with elementwise means and standard deviations (broadcast together).</summary>
    public static Tensor normal(Tensor mean, Tensor std, Generator? generator = null)
        => Wrap(LibTorch.mt_normal_tt(mean.Handle, std.Handle, generator?.Handle ?? GeneratorHandle.Null, out var r), r);
    /// <summary>Normal samples with elementwise means and one standard deviation (default 1).</summary>
    public static Tensor normal(Tensor mean, double std = 1, Generator? generator = null)
        => Wrap(LibTorch.mt_normal_ts(mean.Handle, std, generator?.Handle ?? GeneratorHandle.Null, out var r), r);
    /// <summary>Normal samples with one mean and elementwise standard deviations.</summary>
    public static Tensor normal(double mean, Tensor std, Generator? generator = null)
        => Wrap(LibTorch.mt_normal_st(mean, std.Handle, generator?.Handle ?? GeneratorHandle.Null, out var r), r);
    /// <summary>A new tensor of the given size with N(mean, std²) samples.</summary>
    public static Tensor normal(double mean, double std, long[] size, Generator? generator = null, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_normal_size(mean, std, size, size.Length, generator?.Handle ?? GeneratorHandle.Null, (int)dtype, dt, di, out var r), r);
    }
}
