using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

// Arithmetic (add/sub/mul/div) with tensors and scalars, methods and operators.
public partial class Tensor
{
    internal static Tensor Wrap(int status, IntPtr r)
    {
        LibTorch.Check(status);
        return new Tensor(r);
    }

    public Tensor add(Tensor other, Scalar? alpha = null) => Wrap(LibTorch.mt_add(Handle, other.Handle, alpha ?? 1, out var r), r);
    public Tensor add(Scalar other, Scalar? alpha = null) => Wrap(LibTorch.mt_add_scalar(Handle, other, alpha ?? 1, out var r), r);
    public Tensor add_(Tensor other, Scalar? alpha = null) { LibTorch.Check(LibTorch.mt_add_(Handle, other.Handle, alpha ?? 1)); return this; }
    public Tensor add_(Scalar other, Scalar? alpha = null) { LibTorch.Check(LibTorch.mt_add_scalar_(Handle, other, alpha ?? 1)); return this; }
    public Tensor sub(Tensor other, Scalar? alpha = null) => Wrap(LibTorch.mt_sub(Handle, other.Handle, alpha ?? 1, out var r), r);
    public Tensor sub(Scalar other, Scalar? alpha = null) => Wrap(LibTorch.mt_sub_scalar(Handle, other, alpha ?? 1, out var r), r);
    public Tensor sub_(Tensor other, Scalar? alpha = null) { LibTorch.Check(LibTorch.mt_sub_(Handle, other.Handle, alpha ?? 1)); return this; }
    public Tensor sub_(Scalar other, Scalar? alpha = null) { LibTorch.Check(LibTorch.mt_sub_scalar_(Handle, other, alpha ?? 1)); return this; }
    public Tensor mul(Tensor other) => Wrap(LibTorch.mt_mul(Handle, other.Handle, out var r), r);
    public Tensor mul(Scalar other) => Wrap(LibTorch.mt_mul_scalar(Handle, other, out var r), r);
    public Tensor mul_(Tensor other) { LibTorch.Check(LibTorch.mt_mul_(Handle, other.Handle)); return this; }
    public Tensor mul_(Scalar other) { LibTorch.Check(LibTorch.mt_mul_scalar_(Handle, other)); return this; }
    public Tensor div(Tensor other) => Wrap(LibTorch.mt_div(Handle, other.Handle, out var r), r);
    public Tensor div(Scalar other) => Wrap(LibTorch.mt_div_scalar(Handle, other, out var r), r);
    public Tensor div_(Tensor other) { LibTorch.Check(LibTorch.mt_div_(Handle, other.Handle)); return this; }
    public Tensor div_(Scalar other) { LibTorch.Check(LibTorch.mt_div_scalar_(Handle, other)); return this; }

    /// <summary>Sum of all elements (0-dimensional).</summary>
    public Tensor sum() => Wrap(LibTorch.mt_sum_all(Handle, out var r), r);
    /// <summary>Mean of all elements (0-dimensional).</summary>
    public Tensor mean() => Wrap(LibTorch.mt_mean_all(Handle, out var r), r);

    public static Tensor operator +(Tensor a, Tensor b) => a.add(b);
    public static Tensor operator +(Tensor a, Scalar b) => a.add(b);
    public static Tensor operator +(Scalar a, Tensor b) => b.add(a);
    public static Tensor operator -(Tensor a, Tensor b) => a.sub(b);
    public static Tensor operator -(Tensor a, Scalar b) => a.sub(b);
    public static Tensor operator -(Scalar a, Tensor b) => Wrap(LibTorch.mt_rsub_scalar(b.Handle, a, out var r), r);
    public static Tensor operator *(Tensor a, Tensor b) => a.mul(b);
    public static Tensor operator *(Tensor a, Scalar b) => a.mul(b);
    public static Tensor operator *(Scalar a, Tensor b) => b.mul(a);
    public static Tensor operator /(Tensor a, Tensor b) => a.div(b);
    public static Tensor operator /(Tensor a, Scalar b) => a.div(b);
    public static Tensor operator /(Scalar a, Tensor b) => Wrap(LibTorch.mt_rdiv_scalar(b.Handle, a, out var r), r);

    /// <summary>Elementwise negation (same as <see cref="neg()"/>).</summary>
    public static Tensor operator -(Tensor a) => a.neg();
    /// <summary>Python-style remainder (same as <see cref="remainder(Tensor)"/>).</summary>
    public static Tensor operator %(Tensor a, Tensor b) => a.remainder(b);
    /// <summary>Python-style remainder (same as <see cref="remainder(Scalar)"/>).</summary>
    public static Tensor operator %(Tensor a, Scalar b) => a.remainder(b);

    // Comparisons return bool tensors. == and != are deliberately not overloaded (they stay reference
    // equality); use eq/ne for elementwise equality.
    /// <summary>Elementwise a &lt; b (bool tensor).</summary>
    public static Tensor operator <(Tensor a, Tensor b) => a.lt(b);
    /// <summary>Elementwise a &gt; b (bool tensor).</summary>
    public static Tensor operator >(Tensor a, Tensor b) => a.gt(b);
    /// <summary>Elementwise a &lt;= b (bool tensor).</summary>
    public static Tensor operator <=(Tensor a, Tensor b) => a.le(b);
    /// <summary>Elementwise a &gt;= b (bool tensor).</summary>
    public static Tensor operator >=(Tensor a, Tensor b) => a.ge(b);
    /// <summary>Elementwise a &lt; b (bool tensor).</summary>
    public static Tensor operator <(Tensor a, Scalar b) => a.lt(b);
    /// <summary>Elementwise a &gt; b (bool tensor).</summary>
    public static Tensor operator >(Tensor a, Scalar b) => a.gt(b);
    /// <summary>Elementwise a &lt;= b (bool tensor).</summary>
    public static Tensor operator <=(Tensor a, Scalar b) => a.le(b);
    /// <summary>Elementwise a &gt;= b (bool tensor).</summary>
    public static Tensor operator >=(Tensor a, Scalar b) => a.ge(b);
    /// <summary>Elementwise a &lt; b (bool tensor).</summary>
    public static Tensor operator <(Scalar a, Tensor b) => b.gt(a);
    /// <summary>Elementwise a &gt; b (bool tensor).</summary>
    public static Tensor operator >(Scalar a, Tensor b) => b.lt(a);
    /// <summary>Elementwise a &lt;= b (bool tensor).</summary>
    public static Tensor operator <=(Scalar a, Tensor b) => b.ge(a);
    /// <summary>Elementwise a &gt;= b (bool tensor).</summary>
    public static Tensor operator >=(Scalar a, Tensor b) => b.le(a);

    // Bitwise operators: on bool tensors they are logical and/or/xor/not.
    /// <summary>Bitwise (for bool tensors: logical) AND.</summary>
    public static Tensor operator &(Tensor a, Tensor b) => a.bitwise_and(b);
    /// <summary>Bitwise (for bool tensors: logical) OR.</summary>
    public static Tensor operator |(Tensor a, Tensor b) => a.bitwise_or(b);
    /// <summary>Bitwise (for bool tensors: logical) XOR.</summary>
    public static Tensor operator ^(Tensor a, Tensor b) => a.bitwise_xor(b);
    /// <summary>Bitwise AND with a scalar.</summary>
    public static Tensor operator &(Tensor a, Scalar b) => a.bitwise_and(b);
    /// <summary>Bitwise OR with a scalar.</summary>
    public static Tensor operator |(Tensor a, Scalar b) => a.bitwise_or(b);
    /// <summary>Bitwise XOR with a scalar.</summary>
    public static Tensor operator ^(Tensor a, Scalar b) => a.bitwise_xor(b);
    /// <summary>Bitwise (for bool tensors: logical) NOT.</summary>
    public static Tensor operator ~(Tensor a) => a.bitwise_not();
}
