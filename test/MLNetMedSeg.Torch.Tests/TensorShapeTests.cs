namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class TensorShapeTests
{
    private static double[] D(Tensor t) => t.to(ScalarType.Float64).ToArray<double>();

    // [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    private static Tensor X() => torch.arange(0, 12, dtype: ScalarType.Float32).reshape(3, 4);

    [TestMethod]
    public void ReshapeViewPermuteTranspose()
    {
        using var scope = torch.NewDisposeScope();
        var x = X();
        CollectionAssert.AreEqual(new long[] { 2, 6 }, x.reshape(2, -1).shape);
        CollectionAssert.AreEqual(new long[] { 12 }, torch.reshape(x, -1).shape);
        var v = x.view(4, 3);
        CollectionAssert.AreEqual(new long[] { 4, 3 }, v.shape);
        CollectionAssert.AreEqual(D(x), D(v), "view keeps row-major order");
        CollectionAssert.AreEqual(new long[] { 6, 2 }, x.view_as(torch.zeros(6, 2)).shape);
        // a view shares storage
        v.fill_(1);
        Assert.AreEqual(12.0, x.sum().item<float>());

        var y = X();
        var tr = y.transpose(0, 1);
        CollectionAssert.AreEqual(new long[] { 4, 3 }, tr.shape);
        CollectionAssert.AreEqual(new double[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, D(tr.contiguous()));
        CollectionAssert.AreEqual(D(tr.contiguous()), D(y.t().contiguous()));
        CollectionAssert.AreEqual(D(tr.contiguous()), D(torch.transpose(y, -1, -2).contiguous()));
        Assert.IsFalse(tr.is_contiguous());
        var ex = Assert.ThrowsException<TorchException>(() => tr.view(12));
        StringAssert.Contains(ex.Message, "view size is not compatible with input tensor's size and stride");
        CollectionAssert.AreEqual(new double[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, D(tr.reshape(12)), "reshape copies when it must");

        var z = torch.arange(0, 24, dtype: ScalarType.Float32).reshape(2, 3, 4);
        var p = z.permute(2, 0, 1);
        CollectionAssert.AreEqual(new long[] { 4, 2, 3 }, p.shape);
        Assert.AreEqual(z[1, 2, 3].item<float>(), p[3, 1, 2].item<float>());
        CollectionAssert.AreEqual(new long[] { 3, 4, 2 }, torch.permute(z, 1, -1, 0).shape);
        Assert.ThrowsException<TorchIndexException>(() => y.transpose(0, 3));
        Assert.ThrowsException<TorchException>(() => z.t());
    }

    [TestMethod]
    public void FlattenUnflattenSqueezeUnsqueeze()
    {
        using var scope = torch.NewDisposeScope();
        var z = torch.zeros(2, 3, 4, 5);
        CollectionAssert.AreEqual(new long[] { 120 }, z.flatten().shape);
        CollectionAssert.AreEqual(new long[] { 2, 60 }, z.flatten(1).shape);
        CollectionAssert.AreEqual(new long[] { 2, 12, 5 }, z.flatten(1, 2).shape);
        CollectionAssert.AreEqual(new long[] { 6, 4, 5 }, torch.flatten(z, 0, -3).shape);
        CollectionAssert.AreEqual(new long[] { 2, 3, 2, 2, 5 }, z.unflatten(2, 2, 2).shape);
        CollectionAssert.AreEqual(new long[] { 2, 3, 4, 5, 1 }, z.unflatten(-1, 5, -1).shape);
        var ex = Assert.ThrowsException<TorchException>(() => z.unflatten(1, 2, 2));
        StringAssert.Contains(ex.Message, "unflatten");

        var s = torch.zeros(1, 3, 1, 2);
        CollectionAssert.AreEqual(new long[] { 3, 2 }, s.squeeze().shape);
        CollectionAssert.AreEqual(new long[] { 3, 1, 2 }, s.squeeze(0).shape);
        CollectionAssert.AreEqual(new long[] { 1, 3, 2 }, torch.squeeze(s, -2).shape);
        CollectionAssert.AreEqual(new long[] { 1, 3, 1, 2 }, s.squeeze(1).shape, "a dim of size != 1 is left alone");
        CollectionAssert.AreEqual(new long[] { 1, 1, 3, 1, 2 }, s.unsqueeze(0).shape);
        CollectionAssert.AreEqual(new long[] { 1, 3, 1, 2, 1 }, s.unsqueeze(-1).shape);
        CollectionAssert.AreEqual(new long[] { 1, 3, 1, 1, 2 }, torch.unsqueeze(s, 3).shape);
        Assert.ThrowsException<TorchIndexException>(() => s.unsqueeze(6));
    }

    [TestMethod]
    public void CatStackChunkSplitUnbindNarrow()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new float[] { 1, 2, 3, 4 }, [2, 2]);
        var b = torch.tensor(new float[] { 5, 6 }, [2, 1]);
        var c = torch.cat([a, b], 1);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, c.shape);
        CollectionAssert.AreEqual(new double[] { 1, 2, 5, 3, 4, 6 }, D(c));
        CollectionAssert.AreEqual(new double[] { 1, 2, 3, 4, 1, 2, 3, 4 }, D(torch.cat(new List<Tensor> { a, a })));
        CollectionAssert.AreEqual(new double[] { 1, 2, 5, 3, 4, 6 }, D(torch.concat([a, b], -1)));
        var ex = Assert.ThrowsException<TorchException>(() => torch.cat([a, b], 0));
        StringAssert.Contains(ex.Message, "Sizes of tensors must match except in dimension 0");

        var s = torch.stack([a, a * 10], 0);
        CollectionAssert.AreEqual(new long[] { 2, 2, 2 }, s.shape);
        CollectionAssert.AreEqual(new double[] { 1, 2, 3, 4, 10, 20, 30, 40 }, D(s));
        var s2 = torch.stack([a, a * 10], -1);
        CollectionAssert.AreEqual(new long[] { 2, 2, 2 }, s2.shape);
        CollectionAssert.AreEqual(new double[] { 1, 10, 2, 20, 3, 30, 4, 40 }, D(s2));
        Assert.ThrowsException<TorchException>(() => torch.stack([a, b]));

        var r = torch.arange(0, 7, dtype: ScalarType.Float32);
        var ch = r.chunk(3);
        Assert.AreEqual(3, ch.Length);
        CollectionAssert.AreEqual(new double[] { 0, 1, 2 }, D(ch[0]));
        CollectionAssert.AreEqual(new double[] { 3, 4, 5 }, D(ch[1]));
        CollectionAssert.AreEqual(new double[] { 6 }, D(ch[2]));
        Assert.AreEqual(2, torch.chunk(X(), 2, 1).Length);
        CollectionAssert.AreEqual(new long[] { 3, 2 }, X().chunk(2, -1)[1].shape);

        var sp = r.split(3);
        CollectionAssert.AreEqual(new[] { 3, 3, 1 }, sp.Select(t => (int)t.numel()).ToArray());
        var sz = torch.split(r, new long[] { 1, 4, 2 });
        CollectionAssert.AreEqual(new double[] { 1, 2, 3, 4 }, D(sz[1]));
        CollectionAssert.AreEqual(new double[] { 5, 6 }, D(sz[2]));
        var ex2 = Assert.ThrowsException<TorchException>(() => r.split(new long[] { 1, 2 }));
        StringAssert.Contains(ex2.Message, "split_with_sizes expects split_sizes to sum exactly to 7");
        // pieces are views
        sp[0].fill_(-1);
        Assert.AreEqual(-1f, r[0].item<float>());

        var ub = X().unbind(1);
        Assert.AreEqual(4, ub.Length);
        CollectionAssert.AreEqual(new double[] { 1, 5, 9 }, D(ub[1]));
        CollectionAssert.AreEqual(new double[] { 4, 5, 6, 7 }, D(torch.unbind(X())[1]));

        var n = X().narrow(1, 1, 2);
        CollectionAssert.AreEqual(new double[] { 1, 2, 5, 6, 9, 10 }, D(n));
        CollectionAssert.AreEqual(new double[] { 8, 9, 10, 11 }, D(torch.narrow(X(), 0, -1, 1)));
        Assert.ThrowsException<TorchException>(() => X().narrow(1, 3, 2));
    }

    [TestMethod]
    public void IndexSelectGatherScatter()
    {
        using var scope = torch.NewDisposeScope();
        var x = X();
        CollectionAssert.AreEqual(new double[] { 8, 9, 10, 11, 0, 1, 2, 3 }, D(x.index_select(0, torch.tensor(new long[] { 2, 0 }))));
        CollectionAssert.AreEqual(new double[] { 3, 3, 7, 7, 11, 11 }, D(torch.index_select(x, -1, torch.tensor(new long[] { 3, 3 }))));
        var ex = Assert.ThrowsException<TorchIndexException>(() => x.index_select(0, torch.tensor(new long[] { 3 })));
        StringAssert.Contains(ex.Message, "out of range");

        // torch 1.13: x.gather(1, [[3,0],[1,1],[0,2]]) = [[3,0],[5,5],[8,10]]
        var g = x.gather(1, torch.tensor(new long[] { 3, 0, 1, 1, 0, 2 }, [3, 2]));
        CollectionAssert.AreEqual(new double[] { 3, 0, 5, 5, 8, 10 }, D(g));
        CollectionAssert.AreEqual(new double[] { 8, 1 }, D(torch.gather(x, 0, torch.tensor(new long[] { 2, 0 }, [1, 2]))));

        // torch 1.13: zeros(3,3).scatter(0, [[0,1,2],[2,0,1]], [[1,2,3],[4,5,6]]) = [[1,5,0],[0,2,6],[4,0,3]]
        var src = torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [2, 3]);
        var idx = torch.tensor(new long[] { 0, 1, 2, 2, 0, 1 }, [2, 3]);
        var z = torch.zeros(3, 3);
        CollectionAssert.AreEqual(new double[] { 1, 5, 0, 0, 2, 6, 4, 0, 3 }, D(z.scatter(0, idx, src)));
        Assert.AreEqual(0f, z.sum().item<float>(), "scatter returns a copy");
        CollectionAssert.AreEqual(new double[] { 7, 7, 0, 0, 7, 7, 7, 0, 7 }, D(torch.scatter(z, 0, idx, 7)));
        Assert.AreSame(z, z.scatter_(0, idx, src));
        CollectionAssert.AreEqual(new double[] { 1, 5, 0, 0, 2, 6, 4, 0, 3 }, D(z));
        z.scatter_(1, torch.tensor(new long[] { 2, 0, 1 }, [3, 1]), -1);
        CollectionAssert.AreEqual(new double[] { 1, 5, -1, -1, 2, 6, 4, -1, 3 }, D(z));
        // duplicates accumulate with scatter_add (torch 1.13: [4, 2, 4])
        var acc = torch.zeros(3).scatter_add(0, torch.tensor(new long[] { 0, 1, 0, 2 }), torch.tensor(new float[] { 1, 2, 3, 4 }));
        CollectionAssert.AreEqual(new double[] { 4, 2, 4 }, D(acc));
        var acc2 = torch.ones(3);
        acc2.scatter_add_(0, torch.tensor(new long[] { 2, 2 }), torch.tensor(new float[] { 1, 2 }));
        CollectionAssert.AreEqual(new double[] { 1, 1, 4 }, D(acc2));
        Assert.ThrowsException<TorchException>(() => z.gather(1, torch.tensor(new float[] { 0 }, [1, 1])));
    }

    [TestMethod]
    public void MaskedFillSelectAndNonzero()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(new float[] { 1, -2, 3, -4 }, [2, 2]);
        var m = x < 0;
        CollectionAssert.AreEqual(new double[] { 1, 0, 3, 0 }, D(x.masked_fill(m, 0)));
        CollectionAssert.AreEqual(new double[] { 1, 9.5, 3, 9.5 }, D(torch.masked_fill(x, m, 9.5)));
        CollectionAssert.AreEqual(new double[] { 1, -2, 3, -4 }, D(x), "masked_fill returns a copy");
        // the mask broadcasts: one column
        var col = torch.tensor(new bool[] { true, false }, [1, 2]);
        CollectionAssert.AreEqual(new double[] { 7, -2, 7, -4 }, D(x.masked_fill(col, 7)));
        CollectionAssert.AreEqual(new double[] { 1, 5, 3, 5 }, D(x.masked_fill(m, torch.tensor(5.0))));
        var y = x.clone();
        Assert.AreSame(y, y.masked_fill_(m, 0));
        CollectionAssert.AreEqual(new double[] { 1, 0, 3, 0 }, D(y));
        Assert.AreSame(y, y.masked_fill_(y.eq(0), torch.tensor(-1.0)));
        CollectionAssert.AreEqual(new double[] { 1, -1, 3, -1 }, D(y));
        var ex = Assert.ThrowsException<TorchException>(() => x.masked_fill(torch.ones([3], ScalarType.Bool), 0));
        StringAssert.Contains(ex.Message, "must match the size");

        CollectionAssert.AreEqual(new double[] { -2, -4 }, D(x.masked_select(m)));
        CollectionAssert.AreEqual(new double[] { 1, 3 }, D(torch.masked_select(x, col)));
        var nz = torch.tensor(new float[] { 0, 1, 0, 2 }, [2, 2]).nonzero();
        CollectionAssert.AreEqual(new long[] { 2, 2 }, nz.shape);
        CollectionAssert.AreEqual(new long[] { 0, 1, 1, 1 }, nz.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 0, 1 }, torch.nonzero(torch.zeros(3)).shape);
    }

    [TestMethod]
    public void ExpandRepeatFlipRoll()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new float[] { 1, 2, 3 }, [3, 1]);
        var e = a.expand(3, 4);
        CollectionAssert.AreEqual(new long[] { 3, 4 }, e.shape);
        CollectionAssert.AreEqual(new double[] { 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3 }, D(e));
        CollectionAssert.AreEqual(new long[] { 2, 3, 5 }, a.expand(2, -1, 5).shape);
        CollectionAssert.AreEqual(new long[] { 3, 2 }, a.expand_as(torch.zeros(3, 2)).shape);
        CollectionAssert.AreEqual(new long[] { 2, 3, 4 }, torch.broadcast_to(a, 2, 3, 4).shape);
        Assert.AreEqual(0L, e.stride()[1], "expand is a broadcast view");
        var ex = Assert.ThrowsException<TorchException>(() => a.expand(2, 2));
        StringAssert.Contains(ex.Message, "must match the existing size");

        // torch 1.13: arange(3).repeat(2, 2) = [[0,1,2,0,1,2],[0,1,2,0,1,2]]
        var r = torch.arange(3).repeat(2, 2);
        CollectionAssert.AreEqual(new long[] { 2, 6 }, r.shape);
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2 }, r.ToArray<long>());

        var x = X();
        CollectionAssert.AreEqual(new double[] { 3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8 }, D(x.flip(1)));
        CollectionAssert.AreEqual(new double[] { 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0 }, D(torch.flip(x, 0, -1)));
        // torch 1.13: x.roll(1, 1); x.roll(2); x.roll([1, -1], [0, 1])
        CollectionAssert.AreEqual(new double[] { 3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10 }, D(x.roll(1, 1)));
        CollectionAssert.AreEqual(new double[] { 10, 11, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, D(x.roll(2)));
        CollectionAssert.AreEqual(new long[] { 3, 4 }, x.roll(2).shape);
        CollectionAssert.AreEqual(new double[] { 9, 10, 11, 8, 1, 2, 3, 0, 5, 6, 7, 4 }, D(torch.roll(x, [1, -1], [0, 1])));
        Assert.ThrowsException<TorchException>(() => x.roll([1, 2], [0]));
    }

    [TestMethod]
    public void PadInAllModes()
    {
        using var scope = torch.NewDisposeScope();
        var a = torch.tensor(new float[] { 1, 2, 3 }, [1, 1, 3]);
        // values from torch 1.13 F.pad(a, [2, 1], mode=...)
        CollectionAssert.AreEqual(new double[] { 3, 2, 1, 2, 3, 2 }, D(torch.nn.functional.pad(a, [2, 1], PaddingModes.Reflect)));
        CollectionAssert.AreEqual(new double[] { 1, 1, 1, 2, 3, 3 }, D(torch.nn.functional.pad(a, [2, 1], PaddingModes.Replicate)));
        CollectionAssert.AreEqual(new double[] { 2, 3, 1, 2, 3, 1 }, D(torch.nn.functional.pad(a, [2, 1], PaddingModes.Circular)));
        CollectionAssert.AreEqual(new double[] { 7.5, 1, 2, 3, 7.5, 7.5 }, D(torch.nn.functional.pad(a, [1, 2], value: 7.5)));
        CollectionAssert.AreEqual(new double[] { 0, 1, 2, 3, 0 }, D(torch.nn.functional.pad(a, [1, 1], PaddingModes.Zeros, value: 5)));
        // negative constant padding crops: torch 1.13 F.pad(b, [-1, 1], value=9) = [2, 3, 9, 5, 6, 9]
        var b = torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }, [1, 1, 2, 3]);
        CollectionAssert.AreEqual(new double[] { 2, 3, 9, 5, 6, 9 }, D(torch.nn.functional.pad(b, [-1, 1], value: 9)));
        // 2-D: torch 1.13 F.pad(b, [1, 1, 1, 0], 'reflect') and 'replicate'; F.pad(b, [1, 0, 1, 1], 'circular')
        var r2 = torch.nn.functional.pad(b, [1, 1, 1, 0], PaddingModes.Reflect);
        CollectionAssert.AreEqual(new long[] { 1, 1, 3, 5 }, r2.shape);
        CollectionAssert.AreEqual(new double[] { 5, 4, 5, 6, 5, 2, 1, 2, 3, 2, 5, 4, 5, 6, 5 }, D(r2));
        CollectionAssert.AreEqual(new double[] { 1, 1, 2, 3, 3, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6 }, D(torch.nn.functional.pad(b, [1, 1, 1, 0], PaddingModes.Replicate)));
        var c2 = torch.nn.functional.pad(b, [1, 0, 1, 1], PaddingModes.Circular);
        CollectionAssert.AreEqual(new long[] { 1, 1, 4, 4 }, c2.shape);
        CollectionAssert.AreEqual(new double[] { 6, 4, 5, 6, 3, 1, 2, 3, 6, 4, 5, 6, 3, 1, 2, 3 }, D(c2));
        // constant padding of the leading dims too
        CollectionAssert.AreEqual(new long[] { 1, 3, 4, 3 }, torch.nn.functional.pad(b, [0, 0, 1, 1, 1, 1]).shape);
        var ex = Assert.ThrowsException<TorchException>(() => torch.nn.functional.pad(a, [3, 3], PaddingModes.Reflect));
        StringAssert.Contains(ex.Message, "Padding size should be less than the corresponding input dimension");
    }

    [TestMethod]
    public void OneHot()
    {
        using var scope = torch.NewDisposeScope();
        // torch 1.13: F.one_hot([[0, 2], [1, 0]]) = [[[1,0,0],[0,0,1]],[[0,1,0],[1,0,0]]]
        var o = torch.nn.functional.one_hot(torch.tensor(new long[] { 0, 2, 1, 0 }, [2, 2]));
        CollectionAssert.AreEqual(new long[] { 2, 2, 3 }, o.shape);
        Assert.AreEqual(ScalarType.Int64, o.dtype);
        CollectionAssert.AreEqual(new long[] { 1, 0, 0, 0, 0, 1, 0, 1, 0, 1, 0, 0 }, o.ToArray<long>());
        var o5 = torch.nn.functional.one_hot(torch.tensor(new long[] { 4, 1 }), 5);
        CollectionAssert.AreEqual(new long[] { 0, 0, 0, 0, 1, 0, 1, 0, 0, 0 }, o5.ToArray<long>());
        var ex = Assert.ThrowsException<TorchException>(() => torch.nn.functional.one_hot(torch.tensor(new long[] { 0, 3 }), 2));
        StringAssert.Contains(ex.Message, "Class values must be smaller than num_classes.");
        Assert.ThrowsException<TorchException>(() => torch.nn.functional.one_hot(torch.tensor(new float[] { 0, 1 })));
    }

    [TestMethod]
    public void GradientThroughShapeOpsMatchesFiniteDifferences()
    {
        using var scope = torch.NewDisposeScope();
        double[] x0 = [0.3, -1.2, 2.1, 0.8, 1.7, -0.4, 0.05, 1.25, -0.9, 0.6, 1.4, -0.2];
        long[] shape = [1, 3, 4];
        var gidx = torch.tensor(new long[] { 3, 0, 1, 1, 2, 0 }, [1, 3, 2]);
        var sidx = torch.tensor(new long[] { 2, 0 });
        var mask = torch.tensor(new bool[] { true, false, false, true }, [1, 1, 4]);

        Tensor F(Tensor x)
        {
            var p = x.permute(0, 2, 1);                                  // [1, 4, 3]
            var c = torch.cat([p, p.flip(1) * 2], 2);                    // [1, 4, 6]
            var g = x.gather(2, gidx).pow(2);                            // [1, 3, 2]
            var s = x.index_select(1, sidx).exp();                       // [1, 2, 4]
            var st = torch.stack([x[0, 0], x[0, 1].roll(1)], 0);         // [2, 4]
            var pad = torch.nn.functional.pad(x, [2, 1], PaddingModes.Reflect); // [1, 3, 7]
            var rep = torch.nn.functional.pad(x, [1, 2], PaddingModes.Replicate);
            var w = torch.where(mask, x, x * 3).narrow(2, 1, 3);
            var parts = x.chunk(2, 2);
            return (c * c).sum() + g.sum() + s.sum() + (st * st.sin()).sum() + (pad.square() * 0.5).sum()
                   + rep.cos().sum() + w.unsqueeze(0).expand(2, -1, -1, -1).sum() + (parts[0] * parts[1]).sum()
                   + x.flatten().unflatten(0, 6, 2).repeat(1, 2).sum(1).pow(2).sum()
                   + x.masked_fill(mask, 0.5).square().sum() + x[.., 1..3, ..].sum();
        }

        var xs = torch.tensor(x0, shape, requires_grad: true);
        F(xs).backward();
        var grad = xs.grad!.ToArray<double>();
        const double h = 1e-6;
        for (int k = 0; k < x0.Length; k++)
        {
            var xp = (double[])x0.Clone(); xp[k] += h;
            var xm = (double[])x0.Clone(); xm[k] -= h;
            double fd = (F(torch.tensor(xp, shape)).item<double>() - F(torch.tensor(xm, shape)).item<double>()) / (2 * h);
            Assert.AreEqual(fd, grad[k], 1e-6 * Math.Max(1, Math.Abs(fd)), $"d/dx[{k}]");
        }
    }
}
