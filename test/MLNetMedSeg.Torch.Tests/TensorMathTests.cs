namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class TensorMathTests
{
    private static void AssertValues(double[] expected, Tensor actual, double tol = 1e-6)
    {
        var a = actual.to(ScalarType.Float64).ToArray<double>();
        Assert.AreEqual(expected.Length, a.Length, "element count");
        for (int k = 0; k < a.Length; k++)
        {
            if (double.IsNaN(expected[k])) Assert.IsTrue(double.IsNaN(a[k]), $"element {k}: expected NaN, got {a[k]}");
            else if (double.IsInfinity(expected[k])) Assert.AreEqual(expected[k], a[k], $"element {k}");
            else Assert.AreEqual(expected[k], a[k], tol, $"element {k}");
        }
    }

    [TestMethod]
    public void PowWithTensorScalarAndScalarBase()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new float[] { 1, 2, 3 });
        AssertValues([1, 4, 9], x.pow(2));
        AssertValues([1, 1.41421356, 1.73205081], x.pow(0.5));
        AssertValues([1, 8, 0.57735027], x.pow(torch.tensor(new float[] { 5, 3, -0.5f })));
        AssertValues([1, 8, 81], torch.pow(torch.tensor(new float[] { 1, 2, 3 }), torch.tensor(new float[] { 0, 3, 4 })));
        AssertValues([1, 2, 8], torch.pow(2, torch.tensor(new float[] { 0, 1, 3 })));
        // integers stay integers
        var i = torch.tensor(new long[] { 2, 3, -4 }).pow(2);
        Assert.AreEqual(ScalarType.Int64, i.dtype);
        CollectionAssert.AreEqual(new long[] { 4, 9, 16 }, i.ToArray<long>());
        // in place
        var y = torch.tensor(new double[] { 2, 3 });
        Assert.AreSame(y, y.pow_(3));
        CollectionAssert.AreEqual(new double[] { 8, 27 }, y.ToArray<double>());
        Assert.AreSame(y, y.pow_(torch.tensor(new double[] { 0, 1 })));
        CollectionAssert.AreEqual(new double[] { 1, 27 }, y.ToArray<double>());
    }

    [TestMethod]
    public void UnaryFunctionsMatchKnownValues()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { 4, 9, 0.25 });
        AssertValues([2, 3, 0.5], x.sqrt());
        AssertValues([0.5, 1.0 / 3, 2], x.rsqrt());
        AssertValues([1, Math.E, Math.Exp(-2)], torch.exp(torch.tensor(new double[] { 0, 1, -2 })));
        AssertValues([0, 1, double.NegativeInfinity, double.NaN], torch.tensor(new double[] { 1, Math.E, 0, -1 }).log());
        AssertValues([0, 1e-10, Math.Log(2)], torch.tensor(new double[] { 0, 1e-10, 1 }).log1p(), 1e-15);
        AssertValues([1.5, 2, 0], torch.tensor(new double[] { -1.5, 2, 0 }).abs());
        AssertValues([-1, 0, 1], torch.tensor(new double[] { -2.5, 0, 3 }).sign());
        AssertValues([1.5, -2], torch.tensor(new double[] { -1.5, 2 }).neg());
        AssertValues([0.5, -0.25], torch.tensor(new double[] { 2, -4 }).reciprocal());
        var r = torch.tensor(new double[] { -1.5, -0.5, 0.5, 1.5, 2.5, 1.7 });
        AssertValues([-2, -1, 0, 1, 2, 1], r.floor());
        AssertValues([-1, -0.0, 1, 2, 3, 2], r.ceil());
        AssertValues([-2, -0.0, 0, 2, 2, 2], r.round()); // halves go to even, as in PyTorch
        AssertValues([-1, -0.0, 0, 1, 2, 1], r.trunc());
        AssertValues([0, 1, 0], torch.tensor(new double[] { 0, Math.PI / 2, Math.PI }).sin(), 1e-12);
        AssertValues([1, 0, -1], torch.tensor(new double[] { 0, Math.PI / 2, Math.PI }).cos(), 1e-12);
        AssertValues([9, 0.25], torch.tensor(new double[] { -3, 0.5 }).square());

        // integer inputs keep their dtype where PyTorch does
        var ints = torch.tensor(new long[] { -3, 0, 4 });
        CollectionAssert.AreEqual(new long[] { 3, 0, 4 }, ints.abs().ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 3, 0, -4 }, (-ints).ToArray<long>());
        CollectionAssert.AreEqual(new long[] { -1, 0, 1 }, torch.sign(ints).ToArray<long>());
        // sqrt of an integer tensor promotes to float
        var s = torch.sqrt(torch.tensor(new long[] { 4, 16 }));
        Assert.AreEqual(ScalarType.Float32, s.dtype);
        AssertValues([2, 4], s);
    }

    [TestMethod]
    public void InPlaceUnaryReturnThisAndModify()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { 1, 4 });
        Assert.AreSame(x, x.sqrt_());
        AssertValues([1, 2], x);
        Assert.AreSame(x, x.exp_());
        AssertValues([Math.E, Math.Exp(2)], x);
        Assert.AreSame(x, x.log_());
        AssertValues([1, 2], x);
        x.neg_();
        AssertValues([-1, -2], x);
        x.abs_();
        AssertValues([1, 2], x);
        x.reciprocal_();
        AssertValues([1, 0.5], x);
        x.rsqrt_();
        AssertValues([1, Math.Sqrt(2)], x);
        x.floor_();
        AssertValues([1, 1], x);
        torch.tensor(new double[] { 0.4 }).ceil_();
        var y = torch.tensor(new double[] { -0.4, 2.5, -3 });
        y.round_();
        AssertValues([-0.0, 2, -3], y);
        y.sign_();
        AssertValues([0, 1, -1], y);
        y.square_();
        AssertValues([0, 1, 1], y);
        y.log1p_();
        AssertValues([0, Math.Log(2), Math.Log(2)], y);
        var z = torch.tensor(new double[] { 1.7, -1.7 });
        z.trunc_();
        AssertValues([1, -1], z);
        z.ceil_();
        AssertValues([1, -1], z);
        var w = torch.tensor(new double[] { 0 });
        w.cos_();
        AssertValues([1], w);
        w.sin_();
        AssertValues([Math.Sin(1)], w);
    }

    [TestMethod]
    public void ClampWithScalarAndTensorBounds()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { -2, -0.5, 0.5, 3 });
        AssertValues([-1, -0.5, 0.5, 1], x.clamp(-1, 1));
        AssertValues([0, 0, 0.5, 3], x.clamp(min: 0));
        AssertValues([-2, -0.5, 0.5, 1], x.clamp(max: 1));
        AssertValues([0, 0, 0.5, 3], x.clamp_min(0));
        AssertValues([-2, -0.5, 0, 0], x.clamp_max(0));
        AssertValues([-1, -0.5, 0.5, 1], torch.clamp(x, -1, 1));
        AssertValues([-1, -0.5, 0.5, 1], x.clip(-1, 1));
        // elementwise bounds with broadcasting
        var lo = torch.tensor(new double[] { -3, 0, 0.6, 0 });
        var hi = torch.tensor(new double[] { 2 });
        AssertValues([-2, 0, 0.6, 2], x.clamp(lo, hi));
        AssertValues([-2, 0, 0.6, 3], x.clamp(lo));
        AssertValues([-2, -0.5, 0.5, 2], x.clamp(null, hi));
        // integers
        var i = torch.tensor(new long[] { -5, 2, 9 }).clamp(0, 5);
        Assert.AreEqual(ScalarType.Int64, i.dtype);
        CollectionAssert.AreEqual(new long[] { 0, 2, 5 }, i.ToArray<long>());
        // in place
        var y = x.clone();
        Assert.AreSame(y, y.clamp_(-1, 1));
        AssertValues([-1, -0.5, 0.5, 1], y);
        var z = x.clone();
        Assert.AreSame(z, z.clamp_(lo, hi));
        AssertValues([-2, 0, 0.6, 2], z);
        // no bound at all is libtorch's error
        var ex = Assert.ThrowsException<TorchException>(() => x.clamp());
        StringAssert.Contains(ex.Message, "At least one of 'min' or 'max' must not be None");
    }

    [TestMethod]
    public void MaximumMinimumBroadcast()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new double[] { 1, 5, -2, 4 }, [2, 2]);
        var b = torch.tensor(new double[] { 3, 0 });
        AssertValues([3, 5, 3, 4], a.maximum(b));
        AssertValues([1, 0, -2, 0], torch.minimum(a, b));
        AssertValues([3, 5, 3, 4], torch.max(a, b));
        AssertValues([1, 0, -2, 0], a.min(b));
        AssertValues([double.NaN, 2], torch.tensor(new double[] { double.NaN, 1 }).maximum(torch.tensor(new double[] { 0, 2 })));
        var ex = Assert.ThrowsException<TorchException>(() => torch.maximum(torch.ones(2), torch.ones(3)));
        StringAssert.Contains(ex.Message, "must match the size of tensor b");
    }

    [TestMethod]
    public void WhereWithTensorsAndScalars()
    {
        using var scope = torch.NewDisposeScope();
        var cond = torch.tensor(new bool[] { true, false, true, false });
        var x = torch.tensor(new double[] { 1, 2, 3, 4 });
        var y = torch.tensor(new double[] { -1, -2, -3, -4 });
        AssertValues([1, -2, 3, -4], torch.where(cond, x, y));
        AssertValues([1, 0, 3, 0], torch.where(cond, x, 0.0));
        AssertValues([9, -2, 9, -4], torch.where(cond, 9.0, y));
        AssertValues([1, -2, 3, -4], x.where(cond, y));
        AssertValues([1, 7, 3, 7], x.where(cond, 7.0));
        var ss = torch.where(cond, 1, 0);
        Assert.AreEqual(ScalarType.Int64, ss.dtype);
        CollectionAssert.AreEqual(new long[] { 1, 0, 1, 0 }, ss.ToArray<long>());
        // broadcasting condition against a column
        var c2 = torch.tensor(new bool[] { true, false }, [2, 1]);
        AssertValues([1, 2, -3, -4], torch.where(c2, x.reshape(2, 2), y.reshape(2, 2)));
        // single-argument form: the indices of the true elements, per dimension
        var m = torch.tensor(new bool[] { false, true, true, false, false, true }, [2, 3]);
        var idx = torch.where(m);
        Assert.AreEqual(2, idx.Length);
        CollectionAssert.AreEqual(new long[] { 0, 0, 1 }, idx[0].ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 1, 2, 2 }, idx[1].ToArray<long>());
    }

    [TestMethod]
    public void LogicalAndBitwiseOperators()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new bool[] { true, true, false, false });
        var b = torch.tensor(new bool[] { true, false, true, false });
        CollectionAssert.AreEqual(new bool[] { true, false, false, false }, (a & b).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, true, true, false }, (a | b).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true, true, false }, (a ^ b).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, false, true, true }, (~a).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false, false, false }, a.logical_and(b).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, true, true, false }, torch.logical_or(a, b).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true, true, false }, a.logical_xor(b).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, false, true, true }, a.logical_not().ToArray<bool>());
        // logical ops treat non-zero numbers as true and return bool
        var n = torch.tensor(new double[] { 0, 2.5, -1, 0 });
        var ln = n.logical_and(torch.tensor(new long[] { 1, 1, 0, 0 }));
        Assert.AreEqual(ScalarType.Bool, ln.dtype);
        CollectionAssert.AreEqual(new bool[] { false, true, false, false }, ln.ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false, false, true }, torch.logical_not(n).ToArray<bool>());
        // on integers the operators are bitwise
        var i = torch.tensor(new long[] { 6, 12 });
        var j = torch.tensor(new long[] { 3, 10 });
        CollectionAssert.AreEqual(new long[] { 2, 8 }, (i & j).ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 7, 14 }, (i | j).ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 5, 6 }, (i ^ j).ToArray<long>());
        CollectionAssert.AreEqual(new long[] { -7, -13 }, (~i).ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 4, 4 }, (i & 5).ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 7, 13 }, (i | 1).ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 7, 13 }, (i ^ 1).ToArray<long>());
        // bitwise ops on floats are libtorch errors
        var ex = Assert.ThrowsException<TorchException>(() => n & n);
        StringAssert.Contains(ex.Message, "bitwise_and");
    }

    [TestMethod]
    public void ComparisonsWithTensorsScalarsAndOperators()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { 1, 2, 3 });
        var y = torch.tensor(new double[] { 3, 2, 1 });
        CollectionAssert.AreEqual(new bool[] { false, true, false }, x.eq(y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false, true }, x.ne(y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false, false }, x.lt(y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, true, false }, x.le(y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, false, true }, x.gt(y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true, true }, x.ge(y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true, false }, x.eq(2).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false, true }, torch.ne(x, 2).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false, false }, torch.lt(x, 2).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, true, false }, x.le(2).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, false, true }, x.gt(2.5).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true, true }, torch.ge(x, 2).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true, true }, x.ge(y.max() - 1).ToArray<bool>()); // 0-d tensor broadcasts
        // operators: tensor-tensor, tensor-scalar, scalar-tensor
        CollectionAssert.AreEqual(new bool[] { true, false, false }, (x < y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, true, false }, (x <= y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, false, true }, (x > y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true, true }, (x >= y).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false, false }, (x < 2).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, true, false }, (x <= 2).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, false, true }, (x > 2).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true, true }, (x >= 2).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, false, true }, (2 < x).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true, true }, (2 <= x).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false, false }, (2 > x).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, true, false }, (2 >= x).ToArray<bool>());
        // integer tensor vs float scalar compares by value
        CollectionAssert.AreEqual(new bool[] { false, true }, (torch.tensor(new long[] { 1, 2 }) > 1.5).ToArray<bool>());
        // == stays reference equality
        Assert.IsTrue(x.Equals(x));
        Assert.IsFalse(x.Equals(x.clone()));
    }

    [TestMethod]
    public void NanInfPredicatesAndAllclose()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { 1, double.NaN, double.PositiveInfinity, double.NegativeInfinity });
        CollectionAssert.AreEqual(new bool[] { false, true, false, false }, x.isnan().ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false, false, false }, torch.isfinite(x).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, false, true, true }, x.isinf().ToArray<bool>());

        var a = torch.tensor(new double[] { 1, 2, 3 });
        Assert.IsTrue(a.allclose(a + 1e-9));
        Assert.IsFalse(a.allclose(a + 1e-3));
        Assert.IsTrue(a.allclose(a + 1e-3, rtol: 0, atol: 2e-3));
        Assert.IsTrue(torch.allclose(a, a * (1 + 1e-6)));
        Assert.IsFalse(torch.allclose(a, a * (1 + 1e-3)));
        // broadcasting
        Assert.IsTrue(torch.ones(2, 3).allclose(torch.ones(3)));
        // NaNs are unequal unless equal_nan
        var n = torch.tensor(new double[] { double.NaN, 1 });
        Assert.IsFalse(n.allclose(n));
        Assert.IsTrue(n.allclose(n, equal_nan: true));
        Assert.IsTrue(a.equal(a.clone()));
        Assert.IsFalse(a.equal(a.reshape(3, 1)));
        Assert.IsFalse(torch.equal(a, a + 1));
    }

    [TestMethod]
    public void RemainderFollowsTheDivisorSign()
    {
        using var scope = torch.NewDisposeScope();
        // values from torch 1.13: torch.remainder(tensor([-3, 3, 5]), 2) = [1, 1, 1]; remainder(-3., -2.) = -1
        CollectionAssert.AreEqual(new long[] { 1, 1, 1 }, (torch.tensor(new long[] { -3, 3, 5 }) % 2).ToArray<long>());
        AssertValues([-1], torch.tensor(new double[] { -3 }) % torch.tensor(new double[] { -2 }));
        AssertValues([0.5, 1.5], torch.remainder(torch.tensor(new double[] { 2.5, -0.5 }), 2));
    }

    [TestMethod]
    public void GradientOfCompositeMathMatchesFiniteDifferences()
    {
        using var scope = torch.NewDisposeScope();
        // Points kept away from the kinks of clamp (bounds -0.8 / 1.5), where (x > 0.1) and maximum.
        double[] x0 = [0.7, -0.3, 1.9, 0.45, -1.2, 1.1];
        double[] y0 = [0.9, 1.7, 0.35, 2.4, 0.6, 1.3];

        Tensor F(Tensor x, Tensor y)
        {
            var a = torch.where(x > 0.1, x.pow(3), x.exp());
            var b = x.clamp(-0.8, 1.5) * y.log() + torch.pow(2.0, x) * y.sqrt();
            var c = x.maximum(y * 0.5) / (y.square() + 1) + y.pow(x.abs() + 0.5) - x.rsqrt_safe(y);
            return (a * b + c.sin() + (x * y).log1p_safe()).sum();
        }

        var xs = torch.tensor(x0, [2, 3], requires_grad: true);
        var ys = torch.tensor(y0, [2, 3], requires_grad: true);
        var loss = F(xs, ys);
        loss.backward();
        var gx = xs.grad!.ToArray<double>();
        var gy = ys.grad!.ToArray<double>();

        const double h = 1e-6;
        for (int k = 0; k < x0.Length; k++)
        {
            var xp = (double[])x0.Clone(); xp[k] += h;
            var xm = (double[])x0.Clone(); xm[k] -= h;
            double fd = (F(torch.tensor(xp, [2, 3]), torch.tensor(y0, [2, 3])).item<double>()
                       - F(torch.tensor(xm, [2, 3]), torch.tensor(y0, [2, 3])).item<double>()) / (2 * h);
            Assert.AreEqual(fd, gx[k], 1e-6 * Math.Max(1, Math.Abs(fd)), $"d/dx[{k}]");
            var yp = (double[])y0.Clone(); yp[k] += h;
            var ym = (double[])y0.Clone(); ym[k] -= h;
            fd = (F(torch.tensor(x0, [2, 3]), torch.tensor(yp, [2, 3])).item<double>()
                - F(torch.tensor(x0, [2, 3]), torch.tensor(ym, [2, 3])).item<double>()) / (2 * h);
            Assert.AreEqual(fd, gy[k], 1e-6 * Math.Max(1, Math.Abs(fd)), $"d/dy[{k}]");
        }
    }
}

internal static class GradTestExtensions
{
    // Smooth helpers built from the ops under test, defined for the inputs of the gradient check.
    internal static Tensor rsqrt_safe(this Tensor x, Tensor y) => (x.square() + y).rsqrt();
    internal static Tensor log1p_safe(this Tensor x) => x.abs().log1p();
}
