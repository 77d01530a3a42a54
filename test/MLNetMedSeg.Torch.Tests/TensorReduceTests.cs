namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class TensorReduceTests
{
    private static void AssertValues(double[] expected, Tensor actual, double tol = 1e-5)
    {
        var a = actual.to(ScalarType.Float64).ToArray<double>();
        Assert.AreEqual(expected.Length, a.Length, "element count");
        for (int k = 0; k < a.Length; k++) Assert.AreEqual(expected[k], a[k], tol, $"element {k}");
    }

    // [[1, 2, 4], [3, 5, 9]]
    private static Tensor V() => torch.tensor(new float[] { 1, 2, 4, 3, 5, 9 }, [2, 3]);

    [TestMethod]
    public void SumAndMeanOverDims()
    {
        using var scope = torch.NewDisposeScope();
        var v = V();
        AssertValues([4, 7, 13], v.sum(0));
        AssertValues([7, 17], v.sum(1));
        AssertValues([7, 17], v.sum(-1));
        AssertValues([24], v.sum(new long[] { 0, 1 }));
        CollectionAssert.AreEqual(new long[] { 2, 1 }, v.sum(1, keepdim: true).shape);
        CollectionAssert.AreEqual(new long[] { 1, 1 }, v.sum([0, -1], keepdim: true).shape);
        CollectionAssert.AreEqual(new long[] { 3 }, torch.sum(v, 0).shape);
        var d = v.sum(1, dtype: ScalarType.Float64);
        Assert.AreEqual(ScalarType.Float64, d.dtype);
        AssertValues([7, 17], d);
        AssertValues([2, 3.5, 6.5], v.mean(0));
        AssertValues([7.0 / 3, 17.0 / 3], torch.mean(v, 1));
        AssertValues([4], v.mean([0, 1]));
        CollectionAssert.AreEqual(new long[] { 1, 3 }, v.mean(0, keepdim: true).shape);

        // integer sums widen to int64; a mean needs a floating dtype
        var i = torch.tensor(new int[] { 1, 2, 3, 4 }, [2, 2]);
        var si = i.sum(0);
        Assert.AreEqual(ScalarType.Int64, si.dtype);
        CollectionAssert.AreEqual(new long[] { 4, 6 }, si.ToArray<long>());
        AssertValues([1.5, 3.5], i.mean(1, dtype: ScalarType.Float32));
        var ex = Assert.ThrowsException<TorchException>(() => i.mean(0));
        StringAssert.Contains(ex.Message, "mean(): could not infer output dtype");
    }

    [TestMethod]
    public void BadDimensionThrowsIndexErrorWithLibtorchText()
    {
        using var scope = torch.NewDisposeScope();
        var v = V();
        var ex = Assert.ThrowsException<TorchIndexException>(() => v.sum(5));
        StringAssert.Contains(ex.Message, "Dimension out of range (expected to be in range of [-2, 1], but got 5)");
        Assert.ThrowsException<TorchIndexException>(() => v.max(-3));
        Assert.ThrowsException<TorchIndexException>(() => v.argmax(2));
        Assert.ThrowsException<TorchIndexException>(() => v.var(new long[] { 2 }));
        Assert.ThrowsException<TorchIndexException>(() => v.cumsum(2));
        Assert.AreEqual(24.0, v.sum().item<double>(), "the tensor is still usable");
    }

    [TestMethod]
    public void MaxMinAndArgExtrema()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new float[] { 3, 1, 2, 0, 5, 4 }, [2, 3]);
        Assert.AreEqual(5f, x.max().item<float>());
        Assert.AreEqual(0f, torch.min(x).item<float>());
        Assert.AreEqual(0, x.max().dim());
        var (values, indices) = x.max(1);
        AssertValues([3, 5], values);
        CollectionAssert.AreEqual(new long[] { 0, 1 }, indices.ToArray<long>());
        var (mv, mi) = torch.min(x, 0, keepdim: true);
        CollectionAssert.AreEqual(new long[] { 1, 3 }, mv.shape);
        AssertValues([0, 1, 2], mv);
        CollectionAssert.AreEqual(new long[] { 1, 0, 0 }, mi.ToArray<long>());
        var (nv, ni) = x.max(-2);
        AssertValues([3, 5, 4], nv);
        CollectionAssert.AreEqual(new long[] { 0, 1, 1 }, ni.ToArray<long>());

        Assert.AreEqual(4L, x.argmax().item<long>());
        Assert.AreEqual(3L, torch.argmin(x).item<long>());
        CollectionAssert.AreEqual(new long[] { 0, 1 }, x.argmax(1).ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 1, 0 }, x.argmin(-1).ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 2, 1 }, x.argmax(1, keepdim: true).shape);
        CollectionAssert.AreEqual(new long[] { 1, 0, 0 }, torch.argmin(x, 0).ToArray<long>());

        AssertValues([3, 5], x.amax(1));
        AssertValues([5], x.amax(new long[] { 0, 1 }));
        AssertValues([0, 1, 2], torch.amin(x, [0]));
        CollectionAssert.AreEqual(new long[] { 2, 1 }, x.amin(-1, keepdim: true).shape);
        AssertValues([1, 0], x.amin(-1));

        // integers
        var i = torch.tensor(new long[] { 7, -2, 9 });
        Assert.AreEqual(9L, i.max().item<long>());
        Assert.AreEqual(-2L, i.min().item<long>());
    }

    [TestMethod]
    public void VarianceAndStandardDeviation()
    {
        using var scope = torch.NewDisposeScope();
        var v = V().to(ScalarType.Float64);
        // values from torch 1.13: var(v) = 8; var(v, 1, correction=2) = [4.6667, 18.6667];
        // std(v, None, correction=0) = 2.5820; std(v, 1) = [1.5275, 3.0551]; var(v, None, correction=3) = 13.3333
        Assert.AreEqual(8.0, v.var().item<double>(), 1e-12);
        Assert.AreEqual(40.0 / 6, v.var(unbiased: false).item<double>(), 1e-12);
        AssertValues([14.0 / 9, 56.0 / 9], v.var(1, unbiased: false), 1e-12);
        AssertValues([7.0 / 3, 28.0 / 3], torch.var(v, [1]), 1e-12);
        AssertValues([42.0 / 9, 168.0 / 9], v.var([1], correction: 2), 1e-12);
        Assert.AreEqual(40.0 / 3, v.var(null, correction: 3).item<double>(), 1e-12);
        Assert.AreEqual(Math.Sqrt(40.0 / 6), v.std(null, correction: 0).item<double>(), 1e-12);
        Assert.AreEqual(Math.Sqrt(8.0), torch.std(v).item<double>(), 1e-12);
        AssertValues([1.5275252, 3.0550505], v.std(1), 1e-6);
        AssertValues([Math.Sqrt(42.0 / 9), Math.Sqrt(168.0 / 9)], v.std([-1], correction: 2), 1e-12);
        AssertValues([2, 4.5, 12.5], v.var(0), 1e-12);
        AssertValues([1, 1.5, 2.5], v.std(0, unbiased: false), 1e-12);
        CollectionAssert.AreEqual(new long[] { 1, 3 }, v.var(0, keepdim: true).shape);
        CollectionAssert.AreEqual(new long[] { 2, 1 }, v.std([1], correction: 2, keepdim: true).shape);
        CollectionAssert.AreEqual(new long[] { 1, 1 }, v.var([0, 1], keepdim: true).shape);
    }

    [TestMethod]
    public void ProductsAndLogicalReductions()
    {
        using var scope = torch.NewDisposeScope();
        var v = V();
        Assert.AreEqual(1080f, v.prod().item<float>());
        AssertValues([3, 10, 36], v.prod(0));
        AssertValues([8, 135], torch.prod(v, -1));
        CollectionAssert.AreEqual(new long[] { 2, 1 }, v.prod(1, keepdim: true).shape);
        var pi = torch.tensor(new int[] { 2, 3, 4 }).prod(0, dtype: ScalarType.Float64);
        Assert.AreEqual(ScalarType.Float64, pi.dtype);
        AssertValues([24], pi);

        var b = torch.tensor(new bool[] { true, false, true, true }, [2, 2]);
        Assert.IsFalse(b.all().item<bool>());
        Assert.IsTrue(b.any().item<bool>());
        CollectionAssert.AreEqual(new bool[] { true, false }, b.all(0).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { false, true }, torch.all(b, 1).ToArray<bool>());
        CollectionAssert.AreEqual(new bool[] { true, true }, b.any(-1).ToArray<bool>());
        CollectionAssert.AreEqual(new long[] { 1, 2 }, b.any(0, keepdim: true).shape);
        Assert.IsFalse(torch.any(torch.zeros(3)).item<bool>());
        Assert.IsTrue(torch.all(torch.ones(3)).item<bool>());
    }

    [TestMethod]
    public void NormsLogsumexpAndScans()
    {
        using var scope = torch.NewDisposeScope();
        var v = V();
        // torch 1.13: norm(v) = 11.661903; norm(v, p=1, dim=1) = [7, 17]; norm(v, dim=[0]) = [3.1623, 5.3852, 9.8489]
        Assert.AreEqual(11.661903, v.norm().item<float>(), 1e-5);
        Assert.AreEqual(24.0, v.norm(1).item<float>(), 1e-5);
        AssertValues([7, 17], v.norm([1], p: 1));
        AssertValues([3.1622777, 5.3851648, 9.8488578], torch.norm(v, [0]));
        CollectionAssert.AreEqual(new long[] { 2, 1 }, v.norm([1], keepdim: true).shape);
        // torch 1.13: logsumexp(v, 1) = [4.169846, 9.020581]; over both dims 9.028374
        AssertValues([4.169846, 9.020581], v.logsumexp(1));
        AssertValues([9.028374], torch.logsumexp(v, [0, 1]));
        Assert.AreEqual(1000 + Math.Log(2), torch.tensor(new double[] { 1000, 1000 }).logsumexp(0).item<double>(), 1e-9, "stable for large inputs");

        AssertValues([1, 3, 7, 3, 8, 17], v.cumsum(1));
        AssertValues([1, 2, 4, 4, 7, 13], torch.cumsum(v, 0));
        CollectionAssert.AreEqual(new long[] { 1, 3, 6 }, torch.tensor(new int[] { 1, 2, 3 }).cumsum(0, ScalarType.Int64).ToArray<long>());
        AssertValues([1, 2, 6, 24], torch.tensor(new float[] { 1, 2, 3, 4 }).cumprod(0));
    }

    [TestMethod]
    public void SortArgsortTopk()
    {
        using var scope = torch.NewDisposeScope();
        // values from torch 1.13
        var x = torch.tensor(new float[] { 3, 1, 2, 0, 5, 4 }, [2, 3]);
        var (sv, si) = x.sort(1);
        AssertValues([1, 2, 3, 0, 4, 5], sv);
        CollectionAssert.AreEqual(new long[] { 1, 2, 0, 0, 2, 1 }, si.ToArray<long>());
        var (dv, di) = torch.sort(x, 0, descending: true);
        AssertValues([3, 5, 4, 0, 1, 2], dv);
        CollectionAssert.AreEqual(new long[] { 0, 1, 1, 1, 0, 0 }, di.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 1, 2, 0, 0, 2, 1 }, x.argsort().ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 0, 2, 1, 1, 2, 0 }, torch.argsort(x, -1, descending: true).ToArray<long>());
        var (tv, ti) = x.topk(2);
        AssertValues([3, 2, 5, 4], tv);
        CollectionAssert.AreEqual(new long[] { 0, 2, 1, 2 }, ti.ToArray<long>());
        var (bv, bi) = torch.topk(x, 1, 0, largest: false);
        CollectionAssert.AreEqual(new long[] { 1, 3 }, bv.shape);
        AssertValues([0, 1, 2], bv);
        CollectionAssert.AreEqual(new long[] { 1, 0, 0 }, bi.ToArray<long>());
        var ex = Assert.ThrowsException<TorchException>(() => x.topk(4));
        StringAssert.Contains(ex.Message, "selected index k out of range");
    }

    [TestMethod]
    public void ReductionGradientsMatchFiniteDifferences()
    {
        using var scope = torch.NewDisposeScope();
        double[] x0 = [0.3, -1.2, 2.1, 0.8, 1.7, -0.4, 0.05, 1.25];
        long[] shape = [2, 4];

        Tensor F(Tensor x) =>
            x.var(1).sum() + x.std([0], correction: 0).sum() * 2 + x.logsumexp(0).sum()
            + x.norm([1]).sum() + x.amax(1).sum() + x.mean(0, keepdim: true).square().sum()
            + x.prod(1).sum() + x.cumsum(1).sin().sum() + x.var(null, correction: 3);

        var xs = torch.tensor(x0, shape, requires_grad: true);
        F(xs).backward();
        var g = xs.grad!.ToArray<double>();
        const double h = 1e-6;
        for (int k = 0; k < x0.Length; k++)
        {
            var xp = (double[])x0.Clone(); xp[k] += h;
            var xm = (double[])x0.Clone(); xm[k] -= h;
            double fd = (F(torch.tensor(xp, shape)).item<double>() - F(torch.tensor(xm, shape)).item<double>()) / (2 * h);
            Assert.AreEqual(fd, g[k], 1e-6 * Math.Max(1, Math.Abs(fd)), $"d/dx[{k}]");
        }
    }
}
