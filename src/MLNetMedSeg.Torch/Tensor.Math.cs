using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

// Elementwise math: powers, unary functions, clamping, maximum/minimum, where, logical and bitwise ops,
// comparisons and whole-tensor predicates. All ops broadcast their tensor operands as PyTorch does.
public partial class Tensor
{
    // ------------------------------------------------------------ powers and remainder

    /// <summary>this ** exponent, elementwise with broadcasting.</summary>
    public Tensor pow(Tensor exponent) => Wrap(LibTorch.mt_pow(Handle, exponent.Handle, out var r), r);
    /// <summary>this ** exponent, elementwise.</summary>
    public Tensor pow(Scalar exponent) => Wrap(LibTorch.mt_pow_scalar(Handle, exponent, out var r), r);
    /// <summary>In-place <see cref="pow(Tensor)"/>; returns this.</summary>
    public Tensor pow_(Tensor exponent) { LibTorch.Check(LibTorch.mt_pow_(Handle, exponent.Handle)); return this; }
    /// <summary>In-place <see cref="pow(Scalar)"/>; returns this.</summary>
    public Tensor pow_(Scalar exponent) { LibTorch.Check(LibTorch.mt_pow_scalar_(Handle, exponent)); return this; }

    /// <summary>Python-style remainder (the result has the sign of the divisor), elementwise.</summary>
    public Tensor remainder(Tensor other) => Wrap(LibTorch.mt_remainder(Handle, other.Handle, out var r), r);
    /// <summary>Python-style remainder (the result has the sign of the divisor), elementwise.</summary>
    public Tensor remainder(Scalar other) => Wrap(LibTorch.mt_remainder_scalar(Handle, other, out var r), r);

    // ------------------------------------------------------------ unary functions

    /// <summary>Square root, elementwise.</summary>
    public Tensor sqrt() => Wrap(LibTorch.mt_sqrt(Handle, out var r), r);
    /// <summary>In-place <see cref="sqrt()"/>; returns this.</summary>
    public Tensor sqrt_() { LibTorch.Check(LibTorch.mt_sqrt_(Handle)); return this; }
    /// <summary>Reciprocal of the square root, 1/sqrt(x), elementwise.</summary>
    public Tensor rsqrt() => Wrap(LibTorch.mt_rsqrt(Handle, out var r), r);
    /// <summary>In-place <see cref="rsqrt()"/>; returns this.</summary>
    public Tensor rsqrt_() { LibTorch.Check(LibTorch.mt_rsqrt_(Handle)); return this; }
    /// <summary>Exponential e^x, elementwise.</summary>
    public Tensor exp() => Wrap(LibTorch.mt_exp(Handle, out var r), r);
    /// <summary>In-place <see cref="exp()"/>; returns this.</summary>
    public Tensor exp_() { LibTorch.Check(LibTorch.mt_exp_(Handle)); return this; }
    /// <summary>Natural logarithm, elementwise (negative inputs give NaN, zero gives -inf).</summary>
    public Tensor log() => Wrap(LibTorch.mt_log(Handle, out var r), r);
    /// <summary>In-place <see cref="log()"/>; returns this.</summary>
    public Tensor log_() { LibTorch.Check(LibTorch.mt_log_(Handle)); return this; }
    /// <summary>log(1 + x), accurate for small x, elementwise.</summary>
    public Tensor log1p() => Wrap(LibTorch.mt_log1p(Handle, out var r), r);
    /// <summary>In-place <see cref="log1p()"/>; returns this.</summary>
    public Tensor log1p_() { LibTorch.Check(LibTorch.mt_log1p_(Handle)); return this; }
    /// <summary>Absolute value, elementwise.</summary>
    public Tensor abs() => Wrap(LibTorch.mt_abs(Handle, out var r), r);
    /// <summary>In-place <see cref="abs()"/>; returns this.</summary>
    public Tensor abs_() { LibTorch.Check(LibTorch.mt_abs_(Handle)); return this; }
    /// <summary>Sign (-1, 0 or 1), elementwise.</summary>
    public Tensor sign() => Wrap(LibTorch.mt_sign(Handle, out var r), r);
    /// <summary>In-place <see cref="sign()"/>; returns this.</summary>
    public Tensor sign_() { LibTorch.Check(LibTorch.mt_sign_(Handle)); return this; }
    /// <summary>Negation -x, elementwise.</summary>
    public Tensor neg() => Wrap(LibTorch.mt_neg(Handle, out var r), r);
    /// <summary>In-place <see cref="neg()"/>; returns this.</summary>
    public Tensor neg_() { LibTorch.Check(LibTorch.mt_neg_(Handle)); return this; }
    /// <summary>Reciprocal 1/x, elementwise.</summary>
    public Tensor reciprocal() => Wrap(LibTorch.mt_reciprocal(Handle, out var r), r);
    /// <summary>In-place <see cref="reciprocal()"/>; returns this.</summary>
    public Tensor reciprocal_() { LibTorch.Check(LibTorch.mt_reciprocal_(Handle)); return this; }
    /// <summary>Largest integer not greater than x, elementwise.</summary>
    public Tensor floor() => Wrap(LibTorch.mt_floor(Handle, out var r), r);
    /// <summary>In-place <see cref="floor()"/>; returns this.</summary>
    public Tensor floor_() { LibTorch.Check(LibTorch.mt_floor_(Handle)); return this; }
    /// <summary>Smallest integer not less than x, elementwise.</summary>
    public Tensor ceil() => Wrap(LibTorch.mt_ceil(Handle, out var r), r);
    /// <summary>In-place <see cref="ceil()"/>; returns this.</summary>
    public Tensor ceil_() { LibTorch.Check(LibTorch.mt_ceil_(Handle)); return this; }
    /// <summary>Rounds to the nearest integer, halves to even (as PyTorch), elementwise.</summary>
    public Tensor round() => Wrap(LibTorch.mt_round(Handle, out var r), r);
    /// <summary>In-place <see cref="round()"/>; returns this.</summary>
    public Tensor round_() { LibTorch.Check(LibTorch.mt_round_(Handle)); return this; }
    /// <summary>Rounds toward zero, elementwise.</summary>
    public Tensor trunc() => Wrap(LibTorch.mt_trunc(Handle, out var r), r);
    /// <summary>In-place <see cref="trunc()"/>; returns this.</summary>
    public Tensor trunc_() { LibTorch.Check(LibTorch.mt_trunc_(Handle)); return this; }
    /// <summary>Sine (radians), elementwise.</summary>
    public Tensor sin() => Wrap(LibTorch.mt_sin(Handle, out var r), r);
    /// <summary>In-place <see cref="sin()"/>; returns this.</summary>
    public Tensor sin_() { LibTorch.Check(LibTorch.mt_sin_(Handle)); return this; }
    /// <summary>Cosine (radians), elementwise.</summary>
    public Tensor cos() => Wrap(LibTorch.mt_cos(Handle, out var r), r);
    /// <summary>In-place <see cref="cos()"/>; returns this.</summary>
    public Tensor cos_() { LibTorch.Check(LibTorch.mt_cos_(Handle)); return this; }
    /// <summary>x * x, elementwise.</summary>
    public Tensor square() => Wrap(LibTorch.mt_square(Handle, out var r), r);
    /// <summary>In-place <see cref="square()"/>; returns this.</summary>
    public Tensor square_() { LibTorch.Check(LibTorch.mt_square_(Handle)); return this; }
    /// <summary>Logical NOT (non-zero counts as true); bool result.</summary>
    public Tensor logical_not() => Wrap(LibTorch.mt_logical_not(Handle, out var r), r);
    /// <summary>In-place <see cref="logical_not()"/>; returns this.</summary>
    public Tensor logical_not_() { LibTorch.Check(LibTorch.mt_logical_not_(Handle)); return this; }
    /// <summary>Bitwise NOT of an integer or bool tensor (logical NOT for bool).</summary>
    public Tensor bitwise_not() => Wrap(LibTorch.mt_bitwise_not(Handle, out var r), r);
    /// <summary>In-place <see cref="bitwise_not()"/>; returns this.</summary>
    public Tensor bitwise_not_() { LibTorch.Check(LibTorch.mt_bitwise_not_(Handle)); return this; }

    /// <summary>True where the element is NaN.</summary>
    public Tensor isnan() => Wrap(LibTorch.mt_isnan(Handle, out var r), r);
    /// <summary>True where the element is neither infinite nor NaN.</summary>
    public Tensor isfinite() => Wrap(LibTorch.mt_isfinite(Handle, out var r), r);
    /// <summary>True where the element is +inf or -inf.</summary>
    public Tensor isinf() => Wrap(LibTorch.mt_isinf(Handle, out var r), r);

    // ------------------------------------------------------------ clamp, maximum, minimum

    /// <summary>
    /// Limits every element to [min, max]. Either bound may be omitted (null), not both.
    /// </summary>
    public Tensor clamp(Scalar? min = null, Scalar? max = null)
        => Wrap(LibTorch.mt_clamp(Handle, min ?? Scalar.None, max ?? Scalar.None, out var r), r);
    /// <summary>Limits every element to [min, max] with elementwise (broadcast) bounds; either may be null, not both.</summary>
    public Tensor clamp(Tensor? min, Tensor? max = null)
        => Wrap(LibTorch.mt_clamp_tensor(Handle, min?.Handle ?? TensorHandle.Null, max?.Handle ?? TensorHandle.Null, out var r), r);
    /// <summary>In-place <see cref="clamp(Scalar?, Scalar?)"/>; returns this.</summary>
    public Tensor clamp_(Scalar? min = null, Scalar? max = null)
    {
        LibTorch.Check(LibTorch.mt_clamp_(Handle, min ?? Scalar.None, max ?? Scalar.None));
        return this;
    }
    /// <summary>In-place <see cref="clamp(Tensor?, Tensor?)"/>; returns this.</summary>
    public Tensor clamp_(Tensor? min, Tensor? max = null)
    {
        LibTorch.Check(LibTorch.mt_clamp_tensor_(Handle, min?.Handle ?? TensorHandle.Null, max?.Handle ?? TensorHandle.Null));
        return this;
    }
    /// <summary>Same as <see cref="clamp(Scalar?, Scalar?)"/> (PyTorch's alias).</summary>
    public Tensor clip(Scalar? min = null, Scalar? max = null) => clamp(min, max);
    /// <summary>max(x, min), elementwise.</summary>
    public Tensor clamp_min(Scalar min) => clamp(min, null);
    /// <summary>min(x, max), elementwise.</summary>
    public Tensor clamp_max(Scalar max) => clamp(null, max);

    /// <summary>Elementwise maximum of this and other (broadcast); NaN propagates.</summary>
    public Tensor maximum(Tensor other) => Wrap(LibTorch.mt_maximum(Handle, other.Handle, out var r), r);
    /// <summary>Elementwise minimum of this and other (broadcast); NaN propagates.</summary>
    public Tensor minimum(Tensor other) => Wrap(LibTorch.mt_minimum(Handle, other.Handle, out var r), r);

    // ------------------------------------------------------------ where

    /// <summary>Elements of this where <paramref name="condition"/> is true, else of <paramref name="other"/> (PyTorch's x.where(cond, y)).</summary>
    public Tensor where(Tensor condition, Tensor other) => torch.where(condition, this, other);
    /// <summary>Elements of this where <paramref name="condition"/> is true, else <paramref name="other"/>.</summary>
    public Tensor where(Tensor condition, Scalar other) => torch.where(condition, this, other);

    // ------------------------------------------------------------ logical and bitwise

    /// <summary>Logical AND (non-zero = true); bool result.</summary>
    public Tensor logical_and(Tensor other) => Wrap(LibTorch.mt_logical_and(Handle, other.Handle, out var r), r);
    /// <summary>Logical OR (non-zero = true); bool result.</summary>
    public Tensor logical_or(Tensor other) => Wrap(LibTorch.mt_logical_or(Handle, other.Handle, out var r), r);
    /// <summary>Logical XOR (non-zero = true); bool result.</summary>
    public Tensor logical_xor(Tensor other) => Wrap(LibTorch.mt_logical_xor(Handle, other.Handle, out var r), r);
    /// <summary>Bitwise AND of integer or bool tensors (operator &amp;).</summary>
    public Tensor bitwise_and(Tensor other) => Wrap(LibTorch.mt_bitwise_and(Handle, other.Handle, out var r), r);
    /// <summary>Bitwise AND with a scalar.</summary>
    public Tensor bitwise_and(Scalar other) => Wrap(LibTorch.mt_bitwise_and_scalar(Handle, other, out var r), r);
    /// <summary>Bitwise OR of integer or bool tensors (operator |).</summary>
    public Tensor bitwise_or(Tensor other) => Wrap(LibTorch.mt_bitwise_or(Handle, other.Handle, out var r), r);
    /// <summary>Bitwise OR with a scalar.</summary>
    public Tensor bitwise_or(Scalar other) => Wrap(LibTorch.mt_bitwise_or_scalar(Handle, other, out var r), r);
    /// <summary>Bitwise XOR of integer or bool tensors (operator ^).</summary>
    public Tensor bitwise_xor(Tensor other) => Wrap(LibTorch.mt_bitwise_xor(Handle, other.Handle, out var r), r);
    /// <summary>Bitwise XOR with a scalar.</summary>
    public Tensor bitwise_xor(Scalar other) => Wrap(LibTorch.mt_bitwise_xor_scalar(Handle, other, out var r), r);

    // ------------------------------------------------------------ comparisons (bool results, broadcasting)

    /// <summary>this == other, elementwise.</summary>
    public Tensor eq(Tensor other) => Wrap(LibTorch.mt_eq(Handle, other.Handle, out var r), r);
    /// <summary>this == other, elementwise.</summary>
    public Tensor eq(Scalar other) => Wrap(LibTorch.mt_eq_scalar(Handle, other, out var r), r);
    /// <summary>this != other, elementwise.</summary>
    public Tensor ne(Tensor other) => Wrap(LibTorch.mt_ne(Handle, other.Handle, out var r), r);
    /// <summary>this != other, elementwise.</summary>
    public Tensor ne(Scalar other) => Wrap(LibTorch.mt_ne_scalar(Handle, other, out var r), r);
    /// <summary>this &lt; other, elementwise.</summary>
    public Tensor lt(Tensor other) => Wrap(LibTorch.mt_lt(Handle, other.Handle, out var r), r);
    /// <summary>this &lt; other, elementwise.</summary>
    public Tensor lt(Scalar other) => Wrap(LibTorch.mt_lt_scalar(Handle, other, out var r), r);
    /// <summary>this &lt;= other, elementwise.</summary>
    public Tensor le(Tensor other) => Wrap(LibTorch.mt_le(Handle, other.Handle, out var r), r);
    /// <summary>this &lt;= other, elementwise.</summary>
    public Tensor le(Scalar other) => Wrap(LibTorch.mt_le_scalar(Handle, other, out var r), r);
    /// <summary>this &gt; other, elementwise.</summary>
    public Tensor gt(Tensor other) => Wrap(LibTorch.mt_gt(Handle, other.Handle, out var r), r);
    /// <summary>this &gt; other, elementwise.</summary>
    public Tensor gt(Scalar other) => Wrap(LibTorch.mt_gt_scalar(Handle, other, out var r), r);
    /// <summary>this &gt;= other, elementwise.</summary>
    public Tensor ge(Tensor other) => Wrap(LibTorch.mt_ge(Handle, other.Handle, out var r), r);
    /// <summary>this &gt;= other, elementwise.</summary>
    public Tensor ge(Scalar other) => Wrap(LibTorch.mt_ge_scalar(Handle, other, out var r), r);

    // ------------------------------------------------------------ whole-tensor predicates

    /// <summary>
    /// True when |this - other| &lt;= atol + rtol * |other| holds for every element (after broadcasting).
    /// Defaults as in PyTorch: rtol 1e-5, atol 1e-8, NaNs unequal.
    /// </summary>
    public bool allclose(Tensor other, double rtol = 1e-5, double atol = 1e-8, bool equal_nan = false)
    {
        LibTorch.Check(LibTorch.mt_allclose(Handle, other.Handle, rtol, atol, equal_nan, out bool v));
        return v;
    }

    /// <summary>True when both tensors have the same shape and the same elements.</summary>
    public bool equal(Tensor other)
    {
        LibTorch.Check(LibTorch.mt_equal(Handle, other.Handle, out bool v));
        return v;
    }
}
