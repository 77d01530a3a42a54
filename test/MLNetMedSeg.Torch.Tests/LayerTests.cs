using MLNetMedSeg.Torch.Modules;
using static MLNetMedSeg.Torch.Tests.NNData;
using F = MLNetMedSeg.Torch.torch.nn.functional;
using nn = MLNetMedSeg.Torch.torch.nn;

namespace MLNetMedSeg.Torch.Tests;

/// <summary>
/// Layer modules: shapes, parameter names/shapes/counts as in PyTorch, default initialisation (bit-identical to PyTorch
/// 1.13 for the same seed), BatchNorm running statistics, Dropout modes, and the torch.nn.init generator scope.
/// </summary>
[TestClass]
public partial class LayerTests
{
    private static string[] Names(torch.nn.Module m) => m.named_parameters().Select(e => e.name).ToArray();

    private static double[] D(Tensor t) => t.to(ScalarType.Float64).ToArray<double>();

    // ------------------------------------------------------------ convolutions and linear

    [TestMethod]
    public void Conv2dParametersAndShapesMatchPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        using var conv = nn.Conv2d(3, 8, 3);
        Assert.AreEqual(224, conv.num_parameters(), "8*3*3*3 weights + 8 biases");
        CollectionAssert.AreEqual(new[] { "weight", "bias" }, Names(conv));
        CollectionAssert.AreEqual(new long[] { 8, 3, 3, 3 }, conv.weight.shape);
        CollectionAssert.AreEqual(new long[] { 8 }, conv.bias!.shape);
        Assert.IsTrue(conv.weight.requires_grad && conv.bias.requires_grad);
        CollectionAssert.AreEqual(new[] { "weight", "bias" }, conv.state_dict().Keys.ToArray());
        var x = torch.randn([2, 3, 10, 10]);
        CollectionAssert.AreEqual(new long[] { 2, 8, 8, 8 }, conv.call(x).shape);
        // the module computes exactly the functional convolution with its own parameters
        CollectionAssert.AreEqual(F.conv2d(x, conv.weight, conv.bias).ToArray<float>(), conv.call(x).ToArray<float>());

        using var strided = nn.Conv2d(3, 8, 3, stride: 2, padding: 1);
        CollectionAssert.AreEqual(new long[] { 2, 8, 5, 5 }, strided.call(x).shape);
        using var noBias = nn.Conv2d(3, 8, 3, bias: false);
        Assert.AreEqual(216, noBias.num_parameters());
        Assert.IsNull(noBias.bias);
        CollectionAssert.AreEqual(new[] { "weight" }, Names(noBias));
        using var grouped = nn.Conv2d(4, 8, 3, groups: 2, dilation: 2, padding: 2);
        CollectionAssert.AreEqual(new long[] { 8, 2, 3, 3 }, grouped.weight.shape);
        CollectionAssert.AreEqual(new long[] { 1, 8, 6, 6 }, grouped.call(torch.randn([1, 4, 6, 6])).shape);
        using var rect = nn.Conv2d(3, 4, [3, 5], padding: [1, 2]);
        CollectionAssert.AreEqual(new long[] { 4, 3, 3, 5 }, rect.weight.shape);
        CollectionAssert.AreEqual(new long[] { 2, 4, 10, 10 }, rect.call(x).shape);
        Assert.ThrowsException<ArgumentException>(() => nn.Conv2d(3, 8, 3, groups: 2));
    }

    [TestMethod]
    public void DefaultInitialisationIsBitIdenticalToPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // torch.manual_seed(0); torch.nn.Conv2d(2, 3, 2)  and  torch.manual_seed(5); torch.nn.Linear(3, 2)  (PyTorch 1.13)
        using var g0 = new Generator(0);
        using var g5 = new Generator(5);
        Conv2d conv;
        Linear lin;
        using (torch.nn.init.UseGenerator(g0)) conv = nn.Conv2d(2, 3, 2);
        using (torch.nn.init.UseGenerator(g5)) lin = nn.Linear(3, 2);
        using (conv)
        using (lin)
        {
            CollectionAssert.AreEqual(TorchConv2dSeed0Weight, D(conv.weight));
            CollectionAssert.AreEqual(TorchConv2dSeed0Bias, D(conv.bias!));
            CollectionAssert.AreEqual(TorchLinearSeed5Weight, D(lin.weight));
            CollectionAssert.AreEqual(TorchLinearSeed5Bias, D(lin.bias!));
        }
    }

    [TestMethod]
    public void DefaultInitialisationBounds()
    {
        using var scope = torch.NewDisposeScope();
        // kaiming_uniform_(a = sqrt(5)) and the bias draw are both U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 16 * 3 * 3
        using var conv = nn.Conv2d(16, 32, 3);
        double bound = 1 / Math.Sqrt(144);
        var w = D(conv.weight);
        Assert.IsTrue(w.All(v => Math.Abs(v) <= bound));
        Assert.IsTrue(w.Max() > 0.9 * bound && w.Min() < -0.9 * bound, "the draw covers the interval");
        Assert.IsTrue(D(conv.bias!).All(v => Math.Abs(v) <= bound));
        // ConvTranspose2d's fan_in is size(1) * receptive field = (out / groups) * k * k
        using var convT = nn.ConvTranspose2d(16, 4, 2);
        double boundT = 1 / Math.Sqrt(4 * 2 * 2);
        var wt = D(convT.weight);
        Assert.IsTrue(wt.All(v => Math.Abs(v) <= boundT) && wt.Max() > 0.8 * boundT);
    }

    [TestMethod]
    public void ConvTranspose2dAndLinear()
    {
        using var scope = torch.NewDisposeScope();
        using var up = nn.ConvTranspose2d(4, 2, 2, stride: 2);
        CollectionAssert.AreEqual(new long[] { 4, 2, 2, 2 }, up.weight.shape);
        Assert.AreEqual(34, up.num_parameters());
        CollectionAssert.AreEqual(new[] { "weight", "bias" }, Names(up));
        CollectionAssert.AreEqual(new long[] { 1, 2, 6, 6 }, up.call(torch.randn([1, 4, 3, 3])).shape);
        // (3 - 1) * 2 - 2 * 1 + (3 - 1) + 1 + 1 = 6
        using var up2 = nn.ConvTranspose2d(4, 6, 3, stride: 2, padding: 1, output_padding: 1, groups: 2);
        CollectionAssert.AreEqual(new long[] { 4, 3, 3, 3 }, up2.weight.shape);
        CollectionAssert.AreEqual(new long[] { 1, 6, 6, 6 }, up2.call(torch.randn([1, 4, 3, 3])).shape);

        using var lin = nn.Linear(10, 5);
        Assert.AreEqual(55, lin.num_parameters());
        CollectionAssert.AreEqual(new long[] { 5, 10 }, lin.weight.shape);
        CollectionAssert.AreEqual(new long[] { 4, 5 }, lin.call(torch.randn([4, 10])).shape);
        CollectionAssert.AreEqual(new long[] { 2, 3, 5 }, lin.call(torch.randn([2, 3, 10])).shape);
        using var linNoBias = nn.Linear(10, 5, bias: false);
        Assert.AreEqual(50, linNoBias.num_parameters());
        var x = torch.randn([3, 10]);
        CollectionAssert.AreEqual(F.linear(x, lin.weight, lin.bias).ToArray<float>(), lin.call(x).ToArray<float>());
    }

    // ------------------------------------------------------------ normalization

    [TestMethod]
    public void BatchNorm2dTracksRunningStatisticsInTrainingAndUsesThemInEval()
    {
        using var scope = torch.NewDisposeScope();
        using var bn = nn.BatchNorm2d(2);
        Assert.AreEqual(4, bn.num_parameters());
        CollectionAssert.AreEqual(new[] { "weight", "bias" }, Names(bn));
        CollectionAssert.AreEqual(new[] { "weight", "bias", "running_mean", "running_var", "num_batches_tracked" }, bn.state_dict().Keys.ToArray());
        Assert.AreEqual(ScalarType.Int64, bn.num_batches_tracked!.dtype);
        Assert.AreEqual(0, bn.num_batches_tracked.shape.Length);
        CollectionAssert.AreEqual(new float[] { 1, 1 }, bn.weight!.ToArray<float>());
        CollectionAssert.AreEqual(new float[] { 0, 0 }, bn.bias!.ToArray<float>());

        // x: (N=2, C=2, 1, 2); channel 0 holds {1, 2, 3, 4}, channel 1 holds {10, 10, 20, 40}
        var data = new float[] { 1, 2, 10, 10, 3, 4, 20, 40 };
        var x = torch.tensor(data, [2, 2, 1, 2]);
        var y = bn.call(x);
        // batch means 2.5 and 20; unbiased variances 5/3 and 600/3; momentum 0.1 from (0, 1)
        // channel 0: deviations -1.5, -0.5, 0.5, 1.5 -> sum of squares 5; channel 1: -10, -10, 0, 20 -> 600
        Assert.AreEqual(1L, bn.num_batches_tracked.item<long>());
        AssertClose([0.25, 2.0], bn.running_mean!, 1e-6, "running_mean");
        AssertClose([0.9 + 0.1 * 5.0 / 3, 0.9 + 0.1 * 600.0 / 3], bn.running_var!, 1e-6, "running_var");
        // training output uses the biased batch variance: channel 0 -> (v - 2.5) / sqrt(1.25 + eps)
        var yv = D(y);
        Assert.AreEqual((1 - 2.5) / Math.Sqrt(1.25 + 1e-5), yv[0], 1e-5);
        Assert.AreEqual((40 - 20) / Math.Sqrt(150 + 1e-5), yv[7], 1e-5);
        bn.call(x);
        Assert.AreEqual(2L, bn.num_batches_tracked.item<long>());

        bn.eval();
        Assert.IsFalse(bn.training);
        var rm = D(bn.running_mean!);
        var rv = D(bn.running_var!);
        var e = D(bn.call(x));
        for (int k = 0; k < 8; k++)
        {
            int c = (k / 2) % 2;
            Assert.AreEqual((data[k] - rm[c]) / Math.Sqrt(rv[c] + 1e-5), e[k], 1e-5, $"eval element {k}");
        }
        Assert.AreEqual(2L, bn.num_batches_tracked.item<long>(), "eval does not count batches");
        CollectionAssert.AreEqual(rm, D(bn.running_mean!), "eval does not update the running mean");
        Assert.ThrowsException<ArgumentException>(() => bn.call(torch.ones(2, 2, 2)), "BatchNorm2d needs 4-D input");
    }

    [TestMethod]
    public void BatchNormVariants()
    {
        using var scope = torch.NewDisposeScope();
        using var plain = nn.BatchNorm2d(3, affine: false);
        Assert.AreEqual(0, plain.num_parameters());
        CollectionAssert.AreEqual(new[] { "running_mean", "running_var", "num_batches_tracked" }, plain.state_dict().Keys.ToArray());
        using var noStats = nn.BatchNorm2d(3, track_running_stats: false);
        CollectionAssert.AreEqual(new[] { "weight", "bias" }, noStats.state_dict().Keys.ToArray());
        noStats.eval();
        // without running statistics, evaluation normalizes with the batch statistics
        var x = torch.randn([4, 3, 2, 2]) * 3 + 5;
        Assert.AreEqual(0.0, noStats.call(x).mean().item<double>(), 1e-5);
        using var bn1 = nn.BatchNorm1d(3);
        CollectionAssert.AreEqual(new long[] { 4, 3 }, bn1.call(torch.randn([4, 3])).shape);
        using var bn3 = nn.BatchNorm3d(3);
        CollectionAssert.AreEqual(new long[] { 2, 3, 2, 2, 2 }, bn3.call(torch.randn([2, 3, 2, 2, 2])).shape);
    }

    [TestMethod]
    public void GroupNormAndLayerNorm()
    {
        using var scope = torch.NewDisposeScope();
        using var gn = nn.GroupNorm(2, 4);
        Assert.AreEqual(8, gn.num_parameters());
        CollectionAssert.AreEqual(new[] { "weight", "bias" }, Names(gn));
        var x = torch.randn([2, 4, 3, 3]);
        var y = gn.call(x);
        CollectionAssert.AreEqual(x.shape, y.shape);
        CollectionAssert.AreEqual(F.group_norm(x, 2, gn.weight, gn.bias).ToArray<float>(), y.ToArray<float>());
        Assert.ThrowsException<ArgumentException>(() => nn.GroupNorm(3, 4));
        using var gnPlain = nn.GroupNorm(2, 4, affine: false);
        Assert.AreEqual(0, gnPlain.num_parameters());

        using var ln = nn.LayerNorm([4]);
        Assert.AreEqual(8, ln.num_parameters());
        CollectionAssert.AreEqual(new long[] { 4 }, ln.weight!.shape);
        var z = torch.randn([3, 4]) * 5 + 2;
        CollectionAssert.AreEqual(F.layer_norm(z, [4], ln.weight, ln.bias).ToArray<float>(), ln.call(z).ToArray<float>());
        using var ln2 = nn.LayerNorm([2, 3], elementwise_affine: false);
        Assert.AreEqual(0, ln2.num_parameters());
        using var ln3 = nn.LayerNorm(6);
        CollectionAssert.AreEqual(new long[] { 6 }, ln3.bias!.shape);
    }

    // ------------------------------------------------------------ dropout and embedding

    [TestMethod]
    public void DropoutModesAndReproducibility()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.ones([200]);
        using var g1 = new Generator(99);
        using var g2 = new Generator(99);
        using var d1 = nn.Dropout(0.5, g1);
        using var d2 = nn.Dropout(0.5, g2);
        var a = d1.call(x).ToArray<float>();
        var b = d2.call(x).ToArray<float>();
        CollectionAssert.AreEqual(a, b, "same seed, same mask");
        Assert.IsTrue(a.Any(v => v == 0) && a.Any(v => v == 2) && a.All(v => v == 0 || v == 2));
        d1.eval();
        CollectionAssert.AreEqual(x.ToArray<float>(), d1.call(x).ToArray<float>(), "identity in eval");
        d1.train();
        CollectionAssert.AreNotEqual(a, d1.call(x).ToArray<float>(), "a new mask in the next training step");
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => nn.Dropout(1.5));

        using var d2d = nn.Dropout2d(0.5, new Generator(1));
        var y = d2d.call(torch.ones([2, 6, 2, 2])).ToArray<float>();
        for (int plane = 0; plane < 12; plane++)
            Assert.AreEqual(1, y.Skip(plane * 4).Take(4).Distinct().Count());
        d2d.generator!.Dispose();
    }

    [TestMethod]
    public void EmbeddingLayer()
    {
        using var scope = torch.NewDisposeScope();
        using var emb = nn.Embedding(10, 3);
        Assert.AreEqual(30, emb.num_parameters());
        CollectionAssert.AreEqual(new long[] { 10, 3 }, emb.weight.shape);
        var idx = torch.tensor(new long[] { 1, 2, 3, 4, 5, 9, 8, 7, 6, 0 }, [2, 5]);
        CollectionAssert.AreEqual(new long[] { 2, 5, 3 }, emb.call(idx).shape);

        using var padded = nn.Embedding(5, 2, padding_idx: 1);
        var w = padded.weight.ToArray<float>();
        CollectionAssert.AreEqual(new float[] { 0, 0 }, w.Skip(2).Take(2).ToArray(), "the padding row starts at zero");
        Assert.IsTrue(w.Take(2).Any(v => v != 0));
        padded.call(torch.tensor(new long[] { 1, 0, 1 })).sum().backward();
        var grad = padded.weight.grad!.ToArray<float>();
        CollectionAssert.AreEqual(new float[] { 1, 1, 0, 0, 0, 0, 0, 0, 0, 0 }, grad, "no gradient for the padding row");
    }

    // ------------------------------------------------------------ pooling, resampling, shape and activations

    [TestMethod]
    public void PoolingAndUpsampleLayers()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.tensor(Enumerable.Range(0, 32).Select(v => (float)v).ToArray(), [1, 2, 4, 4]);
        using var mp = nn.MaxPool2d(2);
        CollectionAssert.AreEqual(new float[] { 5, 7, 13, 15, 21, 23, 29, 31 }, mp.call(x).ToArray<float>());
        using var mp1 = nn.MaxPool2d(3, stride: 1, padding: 1);
        CollectionAssert.AreEqual(new long[] { 1, 2, 4, 4 }, mp1.call(x).shape);
        using var ap = nn.AvgPool2d(2);
        CollectionAssert.AreEqual(new float[] { 2.5f, 4.5f, 10.5f, 12.5f, 18.5f, 20.5f, 26.5f, 28.5f }, ap.call(x).ToArray<float>());
        using var gap = nn.AdaptiveAvgPool2d([1]);
        var g = gap.call(x);
        CollectionAssert.AreEqual(new long[] { 1, 2, 1, 1 }, g.shape);
        CollectionAssert.AreEqual(new float[] { 7.5f, 23.5f }, g.ToArray<float>());
        using var amp = nn.AdaptiveMaxPool2d([2, 1]);
        CollectionAssert.AreEqual(new float[] { 7, 15, 23, 31 }, amp.call(x).ToArray<float>());

        var small = torch.tensor(new float[] { 1, 2, 3, 4 }, [1, 1, 2, 2]);
        using var up = nn.Upsample(2);
        CollectionAssert.AreEqual(new float[] { 1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4 }, up.call(small).ToArray<float>());
        using var upBilinear = nn.Upsample(2, InterpolationMode.Bilinear, align_corners: false);
        CollectionAssert.AreEqual(F.interpolate(small, scale_factor: [2, 2], mode: InterpolationMode.Bilinear).ToArray<float>(),
            upBilinear.call(small).ToArray<float>());
        using var upSize = nn.Upsample([3, 5], InterpolationMode.Bilinear, align_corners: true);
        CollectionAssert.AreEqual(new long[] { 1, 1, 3, 5 }, upSize.call(small).shape);
        Assert.ThrowsException<ArgumentException>(() => nn.Upsample(2, InterpolationMode.Nearest, align_corners: true));
    }

    [TestMethod]
    public void FlattenIdentityAndActivationLayers()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.randn([2, 3, 4, 5]);
        using var flat = nn.Flatten();
        CollectionAssert.AreEqual(new long[] { 2, 60 }, flat.call(x).shape);
        CollectionAssert.AreEqual(x.ToArray<float>(), flat.call(x).ToArray<float>());
        using var flat01 = nn.Flatten(0, 1);
        CollectionAssert.AreEqual(new long[] { 6, 4, 5 }, flat01.call(x).shape);
        using var id = nn.Identity();
        var same = id.call(x);
        Assert.AreNotSame(x, same);
        CollectionAssert.AreEqual(x.ToArray<float>(), same.ToArray<float>());
        same.Dispose();
        Assert.IsFalse(x.IsDisposed, "disposing the identity's result leaves the input alive");

        CollectionAssert.AreEqual(x.relu().ToArray<float>(), nn.ReLU().call(x).ToArray<float>());
        CollectionAssert.AreEqual(x.leaky_relu(0.2).ToArray<float>(), nn.LeakyReLU(0.2).call(x).ToArray<float>());
        CollectionAssert.AreEqual(x.silu().ToArray<float>(), nn.SiLU().call(x).ToArray<float>());
        CollectionAssert.AreEqual(x.gelu().ToArray<float>(), nn.GELU().call(x).ToArray<float>());
        CollectionAssert.AreEqual(x.gelu("tanh").ToArray<float>(), nn.GELU("tanh").call(x).ToArray<float>());
        CollectionAssert.AreEqual(x.sigmoid().ToArray<float>(), nn.Sigmoid().call(x).ToArray<float>());
        CollectionAssert.AreEqual(x.tanh().ToArray<float>(), nn.Tanh().call(x).ToArray<float>());
        CollectionAssert.AreEqual(x.softmax(1).ToArray<float>(), nn.Softmax(1).call(x).ToArray<float>());
        CollectionAssert.AreEqual(x.log_softmax(1).ToArray<float>(), nn.LogSoftmax(1).call(x).ToArray<float>());
        Assert.AreEqual(0, nn.ReLU().num_parameters());

        var y = torch.tensor(new float[] { -1, 2 });
        var r = nn.ReLU(inplace: true).call(y);
        CollectionAssert.AreEqual(new float[] { 0, 2 }, y.ToArray<float>(), "in-place ReLU overwrites its input");
        CollectionAssert.AreEqual(new float[] { 0, 2 }, r.ToArray<float>());
    }

    [TestMethod]
    public void SequentialNetworkTrainsAndSwitchesModes()
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(2024);
        torch.nn.Sequential net;
        using (torch.nn.init.UseGenerator(g))
            net = new torch.nn.Sequential(nn.Conv2d(1, 4, 3, padding: 1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Dropout(0.5, g), nn.Linear(4 * 4 * 4, 3));
        using (net)
        {
            CollectionAssert.AreEqual(new[] { "0.weight", "0.bias", "1.weight", "1.bias", "6.weight", "6.bias" }, Names(net));
            Assert.AreEqual(4 * 9 + 4 + 4 + 4 + 64 * 3 + 3, net.num_parameters());
            CollectionAssert.AreEquivalent(new[] { "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked", "6.weight", "6.bias" },
                net.state_dict().Keys.ToArray());
            var x = torch.randn([5, 1, 8, 8], generator: g);
            var target = torch.tensor(new long[] { 0, 1, 2, 1, 0 });
            var loss = F.cross_entropy(net.call(x), target);
            loss.backward();
            foreach (var (name, p) in net.named_parameters())
                Assert.IsNotNull(p.grad, $"{name} has a gradient");
            net.eval();
            var e1 = net.call(x).ToArray<float>();
            var e2 = net.call(x).ToArray<float>();
            CollectionAssert.AreEqual(e1, e2, "eval is deterministic (no dropout, running statistics)");
        }
    }

    // ------------------------------------------------------------ init

    [TestMethod]
    public void InitGeneratorScopeMakesNetworksReproducibleWithoutTouchingTheGlobalStream()
    {
        using var scope = torch.NewDisposeScope();
        torch.nn.Sequential Build() => new(nn.Conv2d(3, 4, 3), nn.GroupNorm(2, 4), nn.Linear(5, 6), nn.Embedding(7, 2), nn.ConvTranspose2d(4, 2, 2));
        double[][] Weights(torch.nn.Module m) => m.parameters().Select(p => D(p)).ToArray();

        torch.manual_seed(7);
        var reference = torch.rand(5).ToArray<float>();
        torch.manual_seed(7);
        double[][] a, b, c;
        using (var g = new Generator(123))
        using (torch.nn.init.UseGenerator(g))
        {
            Assert.AreSame(g, torch.nn.init.CurrentGenerator);
            using var net = Build();
            a = Weights(net);
        }
        Assert.IsNull(torch.nn.init.CurrentGenerator, "the scope is restored");
        CollectionAssert.AreEqual(reference, torch.rand(5).ToArray<float>(), "building under the scope did not draw from the global generator");

        using (var g = new Generator(123))
        using (torch.nn.init.UseGenerator(g))
        using (var net = Build()) b = Weights(net);
        using (var g = new Generator(124))
        using (torch.nn.init.UseGenerator(g))
        using (var net = Build()) c = Weights(net);
        Assert.AreEqual(a.Length, b.Length);
        for (int k = 0; k < a.Length; k++) CollectionAssert.AreEqual(a[k], b[k], $"parameter {k} with the same seed");
        Assert.IsTrue(Enumerable.Range(0, a.Length).Any(k => !a[k].SequenceEqual(c[k])), "another seed gives other weights");

        // Tensor.uniform_/normal_ without a generator also draw from the scope's generator
        using (var gs = new Generator(31))
        using (var gr = new Generator(31))
        using (torch.nn.init.UseGenerator(gs))
        {
            var u = torch.empty([6]).uniform_().ToArray<float>();
            var n = torch.empty([6]).normal_().ToArray<float>();
            CollectionAssert.AreEqual(torch.empty([6]).uniform_(generator: gr).ToArray<float>(), u);
            CollectionAssert.AreEqual(torch.empty([6]).normal_(generator: gr).ToArray<float>(), n);
        }

        // nested scopes restore the outer generator
        using var outer = new Generator(1);
        using var inner = new Generator(2);
        using (torch.nn.init.UseGenerator(outer))
        {
            using (torch.nn.init.UseGenerator(inner)) Assert.AreSame(inner, torch.nn.init.CurrentGenerator);
            Assert.AreSame(outer, torch.nn.init.CurrentGenerator);
        }
        Assert.IsNull(torch.nn.init.CurrentGenerator);
    }

    [TestMethod]
    public void InitFunctions()
    {
        using var scope = torch.NewDisposeScope();
        Assert.AreEqual(1.0, torch.nn.init.calculate_gain(NonLinearity.Conv2d));
        Assert.AreEqual(5.0 / 3, torch.nn.init.calculate_gain(NonLinearity.Tanh));
        Assert.AreEqual(Math.Sqrt(2), torch.nn.init.calculate_gain(NonLinearity.Relu));
        Assert.AreEqual(Math.Sqrt(2 / (1 + 0.01 * 0.01)), torch.nn.init.calculate_gain(NonLinearity.LeakyRelu));
        Assert.AreEqual(Math.Sqrt(2 / 6.0), torch.nn.init.calculate_gain(NonLinearity.LeakyRelu, Math.Sqrt(5)), 1e-15);
        Assert.AreEqual(0.75, torch.nn.init.calculate_gain(NonLinearity.Selu));
        var w4 = torch.empty([8, 3, 3, 3]);
        Assert.AreEqual((27L, 72L), torch.nn.init.calculate_fan_in_and_fan_out(w4));
        Assert.ThrowsException<ArgumentException>(() => torch.nn.init.calculate_fan_in_and_fan_out(torch.empty([5])));

        using var g = new Generator(5);
        // parameters that require grad can be initialised: init runs under no_grad
        using var p = new Parameter(torch.empty([200, 100]));
        torch.nn.init.kaiming_uniform_(p, generator: g);
        double bound = Math.Sqrt(2) * Math.Sqrt(3.0 / 100);
        var v = D(p);
        Assert.IsTrue(v.All(e => Math.Abs(e) <= bound) && v.Max() > 0.99 * bound && v.Min() < -0.99 * bound);
        Assert.IsTrue(p.requires_grad && p.is_leaf);
        torch.nn.init.kaiming_uniform_(p, mode: FanMode.FanOut, nonlinearity: NonLinearity.Relu, generator: g);
        double boundOut = Math.Sqrt(2) * Math.Sqrt(3.0 / 200);
        v = D(p);
        Assert.IsTrue(v.All(e => Math.Abs(e) <= boundOut) && v.Max() > 0.99 * boundOut);
        torch.nn.init.kaiming_normal_(p, nonlinearity: NonLinearity.Relu, generator: g);
        Assert.AreEqual(Math.Sqrt(2.0 / 100), Std(D(p)), 0.02 * Math.Sqrt(2.0 / 100));
        torch.nn.init.xavier_uniform_(p, gain: 2, generator: g);
        double a = 2 * Math.Sqrt(6.0 / 300);
        v = D(p);
        Assert.IsTrue(v.All(e => Math.Abs(e) <= a) && v.Max() > 0.99 * a);
        torch.nn.init.xavier_normal_(p, generator: g);
        Assert.AreEqual(Math.Sqrt(2.0 / 300), Std(D(p)), 0.02 * Math.Sqrt(2.0 / 300));
        torch.nn.init.normal_(p, 3, 0.5, g);
        Assert.AreEqual(3, D(p).Average(), 0.01);
        Assert.AreEqual(0.5, Std(D(p)), 0.01);
        torch.nn.init.uniform_(p, -2, -1, g);
        Assert.IsTrue(D(p).All(e => e >= -2 && e <= -1));
        torch.nn.init.constant_(p, 0.25);
        Assert.IsTrue(D(p).All(e => e == 0.25));
        torch.nn.init.zeros_(p);
        Assert.IsTrue(D(p).All(e => e == 0));
        torch.nn.init.ones_(p);
        Assert.IsTrue(D(p).All(e => e == 1));
        Assert.IsNull(p.grad, "init is not recorded by autograd");

        // the same seed reproduces the same draw
        using var g1 = new Generator(77);
        using var g2 = new Generator(77);
        var t1 = torch.nn.init.xavier_uniform_(torch.empty([4, 6]), generator: g1).ToArray<float>();
        var t2 = torch.nn.init.xavier_uniform_(torch.empty([4, 6]), generator: g2).ToArray<float>();
        CollectionAssert.AreEqual(t1, t2);
    }

    [TestMethod]
    public void TensorInPlaceRandomFills()
    {
        using var scope = torch.NewDisposeScope();
        using var g1 = new Generator(8);
        using var g2 = new Generator(8);
        var a = torch.empty([1000], ScalarType.Float64);
        Assert.AreSame(a, a.uniform_(2, 3, g1));
        Assert.IsTrue(D(a).All(v => v >= 2 && v < 3));
        var b = torch.empty([1000], ScalarType.Float64).uniform_(2, 3, g2);
        CollectionAssert.AreEqual(a.ToArray<double>(), b.ToArray<double>());
        Assert.AreSame(a, a.normal_(-1, 2, g1));
        Assert.AreEqual(-1, a.ToArray<double>().Average(), 0.2);
        Assert.AreEqual(2, Std(a.ToArray<double>()), 0.15);
        var c = torch.empty([1000]).bernoulli_(0.3, g1).ToArray<float>();
        Assert.IsTrue(c.All(v => v == 0 || v == 1));
        Assert.AreEqual(300, c.Count(v => v == 1), 60);
        // like PyTorch, an in-place fill of a leaf that requires grad must happen under no_grad
        var leaf = torch.zeros([3]).requires_grad_();
        Assert.ThrowsException<TorchException>(() => leaf.uniform_());
        using (torch.no_grad()) leaf.uniform_();
        Assert.ThrowsException<TorchValueException>(() => a.uniform_(3, 2));
    }

    [TestMethod]
    public void DisposingModulesFreesTheirTensors()
    {
        long baseline = torch.LiveTensorCount;
        using (torch.NewDisposeScope())
        {
            var net = new torch.nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Linear(4, 2), nn.Embedding(5, 2, padding_idx: 0),
                nn.LayerNorm([4]), nn.GroupNorm(2, 8), nn.ConvTranspose2d(8, 3, 2));
            net.Dispose();
        }
        Assert.AreEqual(baseline, torch.LiveTensorCount);
    }

    private static double Std(double[] v)
    {
        double m = v.Average();
        return Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / (v.Length - 1));
    }

    // ------------------------------------------------------------ reference values (PyTorch 1.13, float32 widened to double)

    // [3, 2, 2, 2]
    private static readonly double[] TorchConv2dSeed0Weight = [-0.0026469905860722065, 0.18966144323349, -0.2909903824329376, -0.26019373536109924, -0.13617262244224548, 0.0948079451918602, -0.007005016785115004, 0.28032875061035156, -0.03137575834989548, 0.09355466812849045, -0.10684845596551895, -0.06949635595083237, -0.33776670694351196, -0.23415207862854004, -0.14574287831783295, 0.013096880167722702, 0.13977210223674774, 0.21214008331298828, -0.23968836665153503, -0.15395936369895935, 0.12841664254665375, 0.29358646273612976, -0.07276134938001633, 0.26456815004348755];
    // [3]
    private static readonly double[] TorchConv2dSeed0Bias = [-0.05698692053556442, 0.037410933524370193, 0.3201341927051544];
    // [2, 3]
    private static readonly double[] TorchLinearSeed5Weight = [0.38134199380874634, -0.43172991275787354, 0.4705054759979248, 0.3694199025630951, 0.4850936532020569, -0.44265997409820557];
    // [2]
    private static readonly double[] TorchLinearSeed5Bias = [-0.3875272870063782, 0.27472564578056335];

}
