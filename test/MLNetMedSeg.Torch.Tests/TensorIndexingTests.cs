namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class TensorIndexingTests
{
    private static double[] D(Tensor t) => t.to(ScalarType.Float64).ToArray<double>();

    // arange(24).reshape(2, 3, 4)
    private static Tensor X() => torch.arange(0, 24, dtype: ScalarType.Float32).reshape(2, 3, 4);

    [TestMethod]
    public void IntegersAndRanges()
    {
        using var scope = torch.NewDisposeScope();
        var x = X();
        var row = x[1];
        CollectionAssert.AreEqual(new long[] { 3, 4 }, row.shape);
        Assert.AreEqual(12f, row[0, 0].item<float>());
        Assert.AreEqual(23f, x[1, 2, 3].item<float>());
        Assert.AreEqual(0, x[1, 2, 3].dim());
        Assert.AreEqual(23f, x[-1, -1, -1].item<float>());
        Assert.AreEqual(23f, x[^1, ^1, ^1].item<float>());
        Assert.AreEqual(6f, x[0L, 1L, 2L].item<float>());
        // values from torch 1.13: x[0, 1:, -1] = [7, 11]; x[-1, -2:] = rows 16..23
        CollectionAssert.AreEqual(new double[] { 7, 11 }, D(x[0, 1.., -1]));
        CollectionAssert.AreEqual(new double[] { 16, 17, 18, 19, 20, 21, 22, 23 }, D(x[-1, ^2..]));
        CollectionAssert.AreEqual(new long[] { 2, 3, 2 }, x[.., .., 1..3].shape);
        CollectionAssert.AreEqual(new double[] { 1, 2, 5, 6, 9, 10 }, D(x[0, .., 1..3]));
        CollectionAssert.AreEqual(new double[] { 0, 1, 2 }, D(x[0, 0, ..^1]));
        CollectionAssert.AreEqual(new long[] { 2, 3, 0 }, x[.., .., ^0..].shape, "^0.. is empty");
        CollectionAssert.AreEqual(new long[] { 2, 3, 4 }, x[..].shape);
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => x[^0]);
    }

    [TestMethod]
    public void SlicesWithStepsNoneEllipsisAndBool()
    {
        using var scope = torch.NewDisposeScope();
        var x = X();
        // torch 1.13: x[1, :, ::2] = [[12, 14], [16, 18], [20, 22]]
        CollectionAssert.AreEqual(new double[] { 12, 14, 16, 18, 20, 22 }, D(x[1, TensorIndex.Colon, TensorIndex.Slice(null, null, 2)]));
        CollectionAssert.AreEqual(new double[] { 13, 15 }, D(x[1, 0, TensorIndex.Slice(1, null, 2)]));
        CollectionAssert.AreEqual(new double[] { 4 }, D(x[0, TensorIndex.Slice(1, 3, 5), 0]));
        CollectionAssert.AreEqual(new double[] { 1, 2 }, D(x[0, 0, TensorIndex.Slice(-3, -1)]));
        CollectionAssert.AreEqual(new double[] { 0, 1, 2, 3 }, D(x[0, 0, TensorIndex.Slice(-100, 100)]), "slice bounds clamp");
        // torch 1.13: x[..., 1] = [[1, 5, 9], [13, 17, 21]]
        CollectionAssert.AreEqual(new double[] { 1, 5, 9, 13, 17, 21 }, D(x[TensorIndex.Ellipsis, 1]));
        CollectionAssert.AreEqual(new long[] { 3, 4 }, x[0, TensorIndex.Ellipsis].shape);
        CollectionAssert.AreEqual(new long[] { 1, 3, 4 }, x[TensorIndex.None, 0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 1, 2, 4 }, x[.., TensorIndex.None, 1..3].shape);
        CollectionAssert.AreEqual(new long[] { 2, 3, 4, 1 }, x[TensorIndex.Ellipsis, TensorIndex.None].shape);
        CollectionAssert.AreEqual(new long[] { 1, 2, 3, 4 }, x[TensorIndex.Bool(true)].shape);
        CollectionAssert.AreEqual(new long[] { 0, 2, 3, 4 }, x[TensorIndex.Bool(false)].shape);
        Assert.AreEqual("1:3:2", TensorIndex.Slice(1, 3, 2).ToString());
        Assert.AreEqual("...", TensorIndex.Ellipsis.ToString());

        // negative steps are libtorch's value error
        var ex = Assert.ThrowsException<TorchValueException>(() => x[TensorIndex.Slice(null, null, -1)]);
        StringAssert.Contains(ex.Message, "step must be greater than zero");
        Assert.ThrowsException<TorchValueException>(() => x[TensorIndex.Slice(null, null, 0)]);
    }

    [TestMethod]
    public void OutOfRangeIndexThrowsIndexError()
    {
        using var scope = torch.NewDisposeScope();
        var x = X();
        var ex = Assert.ThrowsException<TorchIndexException>(() => x[5]);
        StringAssert.Contains(ex.Message, "index 5 is out of bounds for dimension 0 with size 2");
        Assert.ThrowsException<TorchIndexException>(() => x[0, -4]);
        Assert.ThrowsException<TorchIndexException>(() => x[0, 0, 0, 0]);
        Assert.ThrowsException<TorchIndexException>(() => x.index(torch.tensor(new long[] { 0, 2 })));
        Assert.ThrowsException<ArgumentNullException>(() => x.index(null!));
    }

    [TestMethod]
    public void BasicIndexingReturnsViews()
    {
        using var scope = torch.NewDisposeScope();
        var x = X();
        var v = x[1, .., 0];
        v.fill_(-1);
        CollectionAssert.AreEqual(new double[] { -1, -1, -1 }, D(x[1, .., 0]));
        var s = x[0, 0, TensorIndex.Slice(null, null, 2)];
        s.mul_(10);
        CollectionAssert.AreEqual(new double[] { 0, 1, 20, 3 }, D(x[0, 0]));
        // tensor indices copy
        var c = x[torch.tensor(new long[] { 0 })];
        c.fill_(100);
        Assert.AreEqual(1f, x[0, 0, 1].item<float>());
    }

    [TestMethod]
    public void TensorAndMaskIndices()
    {
        using var scope = torch.NewDisposeScope();
        var x = X();
        // torch 1.13: x[0, [2, 0]] = rows 8..11 and 0..3
        CollectionAssert.AreEqual(new double[] { 8, 9, 10, 11, 0, 1, 2, 3 }, D(x[0, torch.tensor(new long[] { 2, 0 })]));
        // torch 1.13: x[x > 20] = [21, 22, 23]
        CollectionAssert.AreEqual(new double[] { 21, 22, 23 }, D(x[x > 20]));
        // torch 1.13: x[[1, 0], [2, 1]] = [[20..23], [4..7]]
        var pairs = x[torch.tensor(new long[] { 1, 0 }), torch.tensor(new long[] { 2, 1 })];
        CollectionAssert.AreEqual(new long[] { 2, 4 }, pairs.shape);
        CollectionAssert.AreEqual(new double[] { 20, 21, 22, 23, 4, 5, 6, 7 }, D(pairs));
        // mask over the first dims keeps the trailing one
        var rowMask = torch.tensor(new bool[] { true, false, false, false, false, true }, [2, 3]);
        CollectionAssert.AreEqual(new double[] { 0, 1, 2, 3, 20, 21, 22, 23 }, D(x[rowMask]));
        CollectionAssert.AreEqual(new double[] { 1, 21 }, D(x[rowMask][.., 1]));
        CollectionAssert.AreEqual(new long[] { 2, 3, 2 }, x[TensorIndex.Ellipsis, TensorIndex.Tensor(torch.tensor(new long[] { 3, 0 }))].shape);
        var ex = Assert.ThrowsException<TorchIndexException>(() => x[torch.tensor(new bool[] { true, false, true })]);
        StringAssert.Contains(ex.Message, "does not match the shape of the indexed tensor");
    }

    [TestMethod]
    public void SettersWithTensorsAndScalars()
    {
        using var scope = torch.NewDisposeScope();
        // torch 1.13: y = zeros(3,4); y[:, ::2] = 5; y[1] = [1,2,3,4]; y[y > 4] = -1
        var y = torch.zeros(3, 4);
        y.index_put_(5, TensorIndex.Colon, TensorIndex.Slice(null, null, 2));
        y[1] = torch.tensor(new float[] { 1, 2, 3, 4 });
        Assert.AreSame(y, y.index_put_(-1, y > 4));
        CollectionAssert.AreEqual(new double[] { -1, 0, -1, 0, 1, 2, 3, 4, -1, 0, -1, 0 }, D(y));
        // broadcast assignment of a column
        y[.., 1] = torch.tensor(new float[] { 7 });
        CollectionAssert.AreEqual(new double[] { 7, 7, 7 }, D(y[.., 1]));
        CollectionAssert.AreEqual(new double[] { 1, 7, 3, 4 }, D(y[1]));
        // tensor-index assignment (torch 1.13: z[[0, 2]] = [7, 8] -> [7, 0, 8, 0])
        var z = torch.zeros(4);
        z[torch.tensor(new long[] { 0, 2 })] = torch.tensor(new float[] { 7, 8 });
        CollectionAssert.AreEqual(new double[] { 7, 0, 8, 0 }, D(z));
        z.index_put_(3.5, 1..2);
        CollectionAssert.AreEqual(new double[] { 7, 3.5, 8, 0 }, D(z));
        z.index_put_(torch.tensor(new float[] { 1, 2 }), TensorIndex.Slice(0, null, 2));
        CollectionAssert.AreEqual(new double[] { 1, 3.5, 2, 0 }, D(z));
        // integer tensor with a float value converts like PyTorch
        var i = torch.zeros([3], ScalarType.Int64);
        i[TensorIndex.Ellipsis] = torch.tensor(new long[] { 4, 5, 6 });
        i.index_put_(9, -1);
        CollectionAssert.AreEqual(new long[] { 4, 5, 9 }, i.ToArray<long>());
        var ex = Assert.ThrowsException<TorchException>(() => z[0..2] = torch.ones(3));
        StringAssert.Contains(ex.Message, "must match the existing size");
    }

    [TestMethod]
    public void IndexingIsDifferentiable()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new double[] { 1, 2, 3, 4, 5, 6 }, [2, 3], requires_grad: true);
        var y = (x[.., 1..].square().sum() + x[1, TensorIndex.Slice(null, null, 2)].sum() * 3 + x[x > 4].sum());
        y.backward();
        // d/dx: squares on columns 1..2 give 2x; row 1, columns 0 and 2 add 3; elements > 4 (5, 6) add 1
        CollectionAssert.AreEqual(new double[] { 0, 4, 6, 3, 11, 16 }, x.grad!.ToArray<double>());
        // writes into a non-leaf copy propagate gradients from the written value
        var v = torch.tensor(new double[] { 2, 3 }, requires_grad: true);
        var buf = torch.zeros([4], ScalarType.Float64);
        buf[1..3] = v * v;
        buf.sum().backward();
        CollectionAssert.AreEqual(new double[] { 4, 6 }, v.grad!.ToArray<double>());
    }
}
