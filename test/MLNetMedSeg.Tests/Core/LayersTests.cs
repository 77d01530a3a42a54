using MLNetMedSeg.Diffusion.Networks;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary><see cref="Layers"/>: our GroupNorm (PyTorch's values and initialisation) and the seeded dropouts.</summary>
[TestClass]
public sealed class LayersTests
{
    /// <summary>x[i] = sin(0.37·i)·(1 + i mod 5), float64, row-major over (2, 6, 3, 4).</summary>
    private static Tensor GroupNormInput()
    {
        var xs = new double[2 * 6 * 3 * 4];
        for (int i = 0; i < xs.Length; i++) xs[i] = Math.Sin(0.37 * i) * (1 + i % 5);
        return tensor(xs).reshape(2, 6, 3, 4);
    }

    private static (double sum, double sumSq, double weighted) Checksums(Tensor y)
    {
        var idx = arange(S(y.numel()), ScalarType.Float64).reshape(y.shape);
        return (y.sum().ToDouble(), (y * y).sum().ToDouble(), (y * idx).sum().ToDouble());
    }

    // Reference values: /usr/bin/python3, PyTorch 1.13, float64:
    //   x = torch.tensor([math.sin(0.37*i)*(1+i%5) for i in range(144)], dtype=torch.float64).reshape(2, 6, 3, 4)
    //   gn = torch.nn.GroupNorm(3, 6, eps=1e-5).double()    # weight [1]*6, bias [0]*6 at construction
    //   gn.weight.copy_([0.5+0.25*k for k in range(6)]); gn.bias.copy_([0.1*k-0.2 for k in range(6)])
    //   y = gn(x); idx = torch.arange(144.).reshape(y.shape)
    //   y.sum(), (y*y).sum(), (y*idx).sum(), y[0,0,0,0], y[0,3,1,2], y[1,5,2,3], y[1,2,0,1]
    //   y2 = torch.nn.GroupNorm(2, 6, eps=1e-3, affine=False)(x); (y2*y2).sum(), (y2*idx).sum(), y2[1,4,2,1]
    [TestMethod]
    public void GroupNormMatchesPyTorch()
    {
        using var scope = NewDisposeScope();
        var x = GroupNormInput();
        using var gn = Layers.GroupNorm(3, 6, eps: 1e-5);
        CollectionAssert.AreEqual(Enumerable.Repeat(1f, 6).ToArray(), gn.weight!.ToArray<float>(), "weight starts at 1");
        CollectionAssert.AreEqual(new float[6], gn.bias!.ToArray<float>(), "bias starts at 0");
        gn.to(ScalarType.Float64);
        using (no_grad())
        {
            gn.weight!.copy_(tensor(Enumerable.Range(0, 6).Select(k => 0.5 + 0.25 * k).ToArray()));
            gn.bias!.copy_(tensor(Enumerable.Range(0, 6).Select(k => 0.1 * k - 0.2).ToArray()));
        }
        var y = gn.call(x);
        Assert.AreEqual(ScalarType.Float64, y.dtype);
        var (sum, sumSq, weighted) = Checksums(y);
        Assert.AreEqual(6.812285092937, sum, 1e-6);
        Assert.AreEqual(212.325520321702, sumSq, 1e-6);
        Assert.AreEqual(1002.423953798195, weighted, 1e-6);
        Assert.AreEqual(-0.329204916529, y[0, 0, 0, 0].ToDouble(), 1e-6);
        Assert.AreEqual(0.540398625458, y[0, 3, 1, 2].ToDouble(), 1e-6);
        Assert.AreEqual(1.272124486463, y[1, 5, 2, 3].ToDouble(), 1e-6);
        Assert.AreEqual(-1.011535657141, y[1, 2, 0, 1].ToDouble(), 1e-6);

        using var plain = Layers.GroupNorm(2, 6, eps: 1e-3, affine: false);
        Assert.AreEqual(0, plain.parameters().Count(), "no affine parameters");
        Assert.AreEqual(0, plain.StateDictInOrder().Count);
        var y2 = plain.call(x);
        var (sum2, sumSq2, weighted2) = Checksums(y2);
        Assert.AreEqual(0.0, sum2, 1e-6);
        Assert.AreEqual(143.973766469682, sumSq2, 1e-6);
        Assert.AreEqual(-120.694729507966, weighted2, 1e-6);
        Assert.AreEqual(-1.2599100319602665, y2[1, 4, 2, 1].ToDouble(), 1e-6);
    }

    [TestMethod]
    public void GroupNormChecksItsArguments()
    {
        using var scope = NewDisposeScope();
        StringAssert.Contains(Assert.ThrowsException<ArgumentException>(() => Layers.GroupNorm(4, 6)).Message, "6 channels cannot be split into 4 groups");
        Assert.ThrowsException<ArgumentException>(() => Layers.GroupNorm(0, 6));
        using var gn = Layers.GroupNorm(2, 4);
        StringAssert.Contains(Assert.ThrowsException<ArgumentException>(() => gn.call(zeros(1, 3, 2, 2))).Message, "expected (N, 4, ...)");
        CollectionAssert.AreEqual(new[] { "weight", "bias" }, gn.StateDictInOrder().Keys.ToArray(), "PyTorch's state-dict names");
    }

    [TestMethod]
    public void GroupNormMovedToFloat64ReplacesAndReRegistersItsParameters()
    {
        using var scope = NewDisposeScope();
        using var gn = Layers.GroupNorm(2, 4);
        var w32 = gn.weight!;
        gn.to(ScalarType.Float64);
        var w = gn.weight!;
        Assert.AreEqual(ScalarType.Float64, w.dtype);
        Assert.AreEqual(ScalarType.Float64, gn.bias!.dtype);
        Assert.IsTrue(w32.IsInvalid, "the Float32 parameter it replaced is disposed");
        var ps = gn.parameters().ToList();
        Assert.AreEqual(2, ps.Count);
        Assert.IsTrue(ReferenceEquals(ps[0], gn.weight) && ReferenceEquals(ps[1], gn.bias), "the registered parameters are the ones forward uses");
        Assert.IsTrue(gn.StateDictInOrder().Values.All(t => t.dtype == ScalarType.Float64));
        Assert.IsTrue(ps.All(p => p.requires_grad));
        var x = GroupNormInput().narrow(1, 0, 4);
        var y = gn.call(x);
        Assert.AreEqual(ScalarType.Float64, y.dtype);
        Assert.IsTrue(y.allclose(nn.functional.group_norm(x, 2, eps: 1e-5), rtol: 0, atol: 1e-12));
        // Training updates reach the parameters forward uses.
        y.sum().backward();
        Assert.IsNotNull(gn.weight!.grad);
    }

    [TestMethod]
    public void EveryGroupNormOfTheDiffusionUNetIsOursAndStartsAtOneAndZero()
    {
        using var scope = NewDisposeScope();
        var opts = new DiffusionUNetOptions
        {
            InChannels = 1, OutChannels = 1, BaseChannels = 8, ChannelMultipliers = [1, 2], AttentionResolutions = [8],
            HeadChannels = 8, GroupNormGroups = 4, ImageSize = 16,
        };
        foreach (var net in new[] { new DiffusionUNet(opts), new DiffusionUNet(opts, new Generator(3)) })
        {
            using var _ = net;
            var all = net.PreOrder().ToList();
            var ours = all.Where(e => e.Module is MLNetMedSeg.Core.GroupNorm).ToList();
            Assert.IsTrue(ours.Count >= 10, $"{ours.Count} GroupNorms");
            var foreign = all.Where(e => e.Module is TorchSharp.Modules.GroupNorm).Select(e => e.Name).ToList();
            Assert.AreEqual(0, foreign.Count, "TorchSharp's nn.GroupNorm (uninitialised weights) at " + string.Join(", ", foreign));
            // Every normalisation of the network is one of ours (no other kind of norm layer slipped in).
            var norms = all.Where(e => e.Module.GetType().Name.Contains("Norm", StringComparison.Ordinal)).ToList();
            CollectionAssert.AreEquivalent(ours.Select(e => e.Name).ToList(), norms.Select(e => e.Name).ToList());
            foreach (var (name, m) in ours)
            {
                var gn = (MLNetMedSeg.Core.GroupNorm)m;
                Assert.IsTrue(gn.weight!.eq(S(1)).all().ToBoolean() && gn.bias!.eq(S(0)).all().ToBoolean(), $"{name} starts at weight 1, bias 0");
            }
        }
    }

    /// <summary>
    /// Why the networks use <see cref="Layers.GroupNorm"/>: TorchSharp 0.107's nn.GroupNorm creates its weight and bias with
    /// torch.empty and never fills them, so they hold whatever the allocator returns (observed: ±1e-15..1e37, NaN,
    /// 4.57e-41 — pointer bits). If this fails, TorchSharp initialises nn.GroupNorm now, and the reason for ours is gone.
    /// </summary>
    [TestMethod]
    public void TorchSharpsGroupNormIsNotInitialised()
    {
        using var scope = NewDisposeScope();
        int initialised = 0;
        for (int k = 0; k < 5; k++)
        {
            using (NewDisposeScope()) { rand(64).mul_(S(1e6)); }   // leave non-trivial bytes in freed blocks
            using var gn = nn.GroupNorm(2, 64);
            if (gn.weight!.eq(S(1)).all().ToBoolean() && gn.bias!.eq(S(0)).all().ToBoolean()) initialised++;
        }
        Assert.AreNotEqual(5, initialised, "TorchSharp's nn.GroupNorm started at weight 1, bias 0 every time");
    }

    // ------------------------------------------------------------ SeededDropout

    [TestMethod]
    public void SameGeneratorStateGivesTheSameMask()
    {
        using var scope = NewDisposeScope();
        var x = ones(4, 8, 6, 6);
        foreach (bool channelwise in new[] { false, true })
        {
            using var d1 = channelwise ? Layers.Dropout2d(0.4) : Layers.Dropout(0.4);
            using var d2 = channelwise ? Layers.Dropout2d(0.4) : Layers.Dropout(0.4);
            using var g1 = new Generator(21);
            using var g2 = new Generator(21);
            using var g3 = new Generator(22);
            d1.generator = g1;
            d2.generator = g2;
            var a = d1.call(x);
            manual_seed(1); rand(100);   // the global generator has no say
            var b = d2.call(x);
            Assert.IsTrue(a.IsEqual(b), $"channelwise={channelwise}: same seed, same mask");
            var a2 = d1.call(x);
            Assert.IsFalse(a.IsEqual(a2), "the generator advances: the next mask differs");
            d2.generator = g3;
            Assert.IsFalse(a.IsEqual(d2.call(x)), "another seed, another mask");
        }
        // Without a generator, the global one (manual_seed) decides.
        using var d = Layers.Dropout(0.5);
        manual_seed(5);
        var m1 = d.call(x);
        manual_seed(5);
        Assert.IsTrue(m1.IsEqual(d.call(x)));
    }

    [TestMethod]
    public void EvaluationModeIsTheIdentityAndPZeroOrOneAreExact()
    {
        using var scope = NewDisposeScope();
        var x = randn(3, 4, 5, 5);
        foreach (var d in new[] { Layers.Dropout(0.7), Layers.Dropout2d(0.7) })
        {
            using var _ = d;
            d.eval();
            var y = d.call(x);
            Assert.IsTrue(y.IsEqual(x), $"{d.GetName()}: identity in evaluation mode");
            Assert.IsFalse(ReferenceEquals(x, y), "a new tensor object (the caller may dispose it)");
            d.train();
            Assert.IsFalse(d.call(x).IsEqual(x), $"{d.GetName()}: drops in training mode");
        }
        using var none = Layers.Dropout(0);
        Assert.IsTrue(none.call(x).IsEqual(x));
        using var all = Layers.Dropout2d(1);
        Assert.AreEqual(0.0, all.call(x).abs().max().ToDouble());
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => Layers.Dropout(1.5));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => Layers.Dropout(-0.1));
    }

    [TestMethod]
    public void KeptValuesAreScaledSoTheMeanIsPreserved()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(4);
        using var d = Layers.Dropout(0.3);
        d.generator = g;
        var y = d.call(ones(200_000));
        var values = y.unique().Item1.ToArray<float>();
        CollectionAssert.AreEqual(new[] { 0f, 1f / 0.7f }, values, "dropped → 0, kept → x / (1 − p)");
        double kept = y.gt(S(0)).to(ScalarType.Float64).mean().ToDouble();
        Assert.AreEqual(0.7, kept, 0.005, "the keep rate is 1 − p");
        Assert.AreEqual(1.0, y.mean().ToDouble(), 0.01, "the mean is preserved");
        // Float64 inputs keep their dtype.
        Assert.AreEqual(ScalarType.Float64, d.call(ones(new long[] { 10 }, ScalarType.Float64)).dtype);
    }

    [TestMethod]
    public void Dropout2dDropsWholeChannels()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(9);
        using var d = Layers.Dropout2d(0.5);
        d.generator = g;
        var y = d.call(ones(8, 16, 5, 7));
        var perChannel = y.reshape(8 * 16, 35);
        var mins = perChannel.amin(new long[] { 1 });
        var maxs = perChannel.amax(new long[] { 1 });
        Assert.IsTrue(mins.eq(maxs).all().ToBoolean(), "every feature map is all dropped or all kept");
        long dropped = maxs.eq(S(0)).sum().ToInt64();
        Assert.IsTrue(dropped is > 30 and < 98, $"{dropped} of 128 maps dropped at p = 0.5");
        Assert.AreEqual(2.0, maxs.max().ToDouble(), 1e-6, "kept maps are scaled by 1 / (1 − p)");
        // The element-wise dropout does not: its feature maps mix kept and dropped values.
        using var e = Layers.Dropout(0.5);
        e.generator = g;
        var ye = e.call(ones(8, 16, 5, 7)).reshape(8 * 16, 35);
        Assert.IsFalse(ye.amin(new long[] { 1 }).eq(ye.amax(new long[] { 1 })).all().ToBoolean());
    }
}
