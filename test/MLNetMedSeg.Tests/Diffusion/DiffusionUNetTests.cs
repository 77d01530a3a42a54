using MLNetMedSeg.Core;
using MLNetMedSeg.Diffusion.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Diffusion;

/// <summary>
/// The diffusion tests run libtorch single-threaded: on the shared 2-core test machine intra-op threads contend with
/// other processes and make the tiny networks ~10× slower. The previous count is restored after each class.
/// </summary>
internal static class SingleThreaded
{
    private static int _previous;

    public static void Enter() { _previous = get_num_threads(); set_num_threads(1); }

    public static void Leave() { if (_previous > 0) set_num_threads(_previous); }
}

[TestClass]
public sealed class DiffusionUNetTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => SingleThreaded.Enter();

    [ClassCleanup]
    public static void Cleanup() => SingleThreaded.Leave();

    /// <summary>A tiny network for 16 px inputs: widths 8, 16; attention at 8 px (level 1) and in the middle.</summary>
    internal static DiffusionUNetOptions Tiny(int inC = 1, int outC = 1, int cond = 0) => new()
    {
        InChannels = inC, OutChannels = outC, ConditionChannels = cond, BaseChannels = 8, ChannelMultipliers = [1, 2],
        BlocksPerLevel = 1, AttentionResolutions = [8], HeadChannels = 8, GroupNormGroups = 4, ImageSize = 16,
    };

    /// <summary>Randomises the zero-initialised layers so that every input reaches the output.</summary>
    private static void Perturb(DiffusionUNet net, ulong seed)
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(seed);
        using var _ = no_grad();
        foreach (var (name, p) in net.named_parameters())
            if (name.EndsWith("out_conv.weight") || name.EndsWith("proj.weight") || name.EndsWith("out_conv.bias") || name.EndsWith("proj.bias"))
                p.copy_(randn(p.shape, generator: g) * S(0.1));
    }

    [TestMethod]
    public void OutputHasTheRequestedShapeAndStartsAtZero()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(1);
        using var net = new DiffusionUNet(Tiny(inC: 3, outC: 3, cond: 1), g);
        var y = net.forward(randn([2, 3, 16, 16], generator: g), tensor(new long[] { 5, 90 }), rand([2, 1, 16, 16], generator: g));
        CollectionAssert.AreEqual(new long[] { 2, 3, 16, 16 }, y.shape);
        Assert.AreEqual(0.0, y.abs().max().ToSingle(), "the zero-initialised output conv makes ε̂ = 0 at initialisation");
        // Non-square, larger input than ImageSize also works (attention stays at level 1).
        var y2 = net.forward(randn([1, 3, 32, 24], generator: g), tensor(new long[] { 3 }), rand([1, 1, 32, 24], generator: g));
        CollectionAssert.AreEqual(new long[] { 1, 3, 32, 24 }, y2.shape);
    }

    [TestMethod]
    public void DefaultOptionsBuildTheSixtyFourPixelNetwork()
    {
        using var scope = NewDisposeScope();
        var o = new DiffusionUNetOptions { InChannels = 3, OutChannels = 3, ConditionChannels = 1 };
        o.Validate();
        Assert.IsFalse(o.HasAttention(0));
        Assert.IsFalse(o.HasAttention(1));
        Assert.IsTrue(o.HasAttention(2), "16 px is level 2 at 64 px");
        using var net = new DiffusionUNet(o, new Generator(0));
        Assert.AreEqual(4, net.modules().OfType<DiffusionAttentionBlock>().Count(), "level 2: one down and two up blocks, plus the middle");
        Assert.IsTrue(net.ParameterCount() > 1_000_000, $"{net.ParameterCount()} parameters");
    }

    [TestMethod]
    public void InvalidOptionsAndShapesNameTheProblem()
    {
        using var scope = NewDisposeScope();
        var bad = Tiny();
        bad.GroupNormGroups = 3;
        StringAssert.Contains(Assert.ThrowsException<ArgumentException>(() => bad.Validate()).Message, "GroupNormGroups");
        bad = Tiny();
        bad.AttentionResolutions = [5];
        StringAssert.Contains(Assert.ThrowsException<ArgumentException>(() => bad.Validate()).Message, "AttentionResolutions");
        bad = Tiny();
        bad.HeadChannels = 3;
        StringAssert.Contains(Assert.ThrowsException<ArgumentException>(() => bad.Validate()).Message, "HeadChannels");

        using var net = new DiffusionUNet(Tiny(cond: 1), new Generator(0));
        var e = Assert.ThrowsException<ArgumentException>(() => net.forward(zeros(1, 1, 15, 16), tensor(new long[] { 0 }), zeros(1, 1, 15, 16)));
        StringAssert.Contains(e.Message, "divisible by 2^(levels − 1) = 2");
        e = Assert.ThrowsException<ArgumentException>(() => net.forward(zeros(1, 1, 16, 16), tensor(new long[] { 0 })));
        Assert.AreEqual("condition", e.ParamName);
        e = Assert.ThrowsException<ArgumentException>(() => net.forward(zeros(1, 2, 16, 16), tensor(new long[] { 0 }), zeros(1, 1, 16, 16)));
        Assert.AreEqual("x", e.ParamName);
    }

    [TestMethod]
    public void TimeAndConditionChangeTheOutput()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(2);
        using var net = new DiffusionUNet(Tiny(cond: 1), g);
        Perturb(net, 3);
        net.eval();
        var x = randn([2, 1, 16, 16], generator: g);
        var c = rand([2, 1, 16, 16], generator: g);
        using var _ = no_grad();
        var a = net.forward(x, tensor(new long[] { 10, 10 }), c);
        var b = net.forward(x, tensor(new long[] { 500, 500 }), c);
        var cf = net.forward(x, tensor(new float[] { 10f, 10f }), c);
        var d = net.forward(x, tensor(new long[] { 10, 10 }), S(1) - c);
        Assert.IsTrue((a - b).abs().max().ToSingle() > 1e-3, "time conditioning changes the output");
        Assert.IsTrue((a - d).abs().max().ToSingle() > 1e-3, "the condition changes the output");
        Assert.AreEqual(0.0, (a - cf).abs().max().ToSingle(), 1e-6, "int64 and float timesteps are the same");
        // Per-sample timesteps: sample 0 at t=10 and sample 1 at t=500 equal the rows of the uniform batches.
        var mixed = net.forward(x, tensor(new long[] { 10, 500 }), c);
        Assert.AreEqual(0.0, (mixed[0] - a[0]).abs().max().ToSingle(), 1e-5);
        Assert.AreEqual(0.0, (mixed[1] - b[1]).abs().max().ToSingle(), 1e-5);
    }

    [TestMethod]
    public void SameGeneratorSeedGivesTheSameWeights()
    {
        using var scope = NewDisposeScope();
        using var n1 = new DiffusionUNet(Tiny(), new Generator(7));
        using var n2 = new DiffusionUNet(Tiny(), new Generator(7));
        using var n3 = new DiffusionUNet(Tiny(), new Generator(8));
        var s1 = n1.StateDictInOrder(); var s2 = n2.StateDictInOrder(); var s3 = n3.StateDictInOrder();
        Assert.IsTrue(s1.Keys.All(k => s1[k].IsEqual(s2[k])));
        Assert.IsFalse(s1.Keys.All(k => s1[k].IsEqual(s3[k])));
    }

    [TestMethod]
    public void GradientReachesEveryParameterOnceTheZeroLayersMove()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(4);
        using var net = new DiffusionUNet(Tiny(cond: 1), g);
        var before = net.named_parameters().ToDictionary(e => e.name, e => e.parameter.detach().clone());
        using var opt = torch.optim.Adam(net.parameters(), lr: 1e-2);
        var x = randn([2, 1, 16, 16], generator: g);
        var c = rand([2, 1, 16, 16], generator: g);
        var target = randn([2, 1, 16, 16], generator: g);
        var t = tensor(new long[] { 3, 70 });
        for (int step = 0; step < 3; step++)
        {
            using var s = NewDisposeScope();
            opt.zero_grad();
            var loss = nn.functional.mse_loss(net.forward(x, t, c), target);
            loss.backward();
            if (step == 0)
            {
                // At initialisation only the zero output conv receives a gradient (everything behind it is multiplied by 0).
                var outGrad = net.named_parameters().First(e => e.name == "out_conv.weight").parameter.grad!;
                Assert.IsTrue(outGrad.abs().sum().ToSingle() > 0);
            }
            opt.step();
        }
        foreach (var (name, p) in net.named_parameters())
            Assert.IsTrue((p - before[name]).abs().max().ToSingle() > 0, $"{name} did not move after 3 steps");
    }

    [TestMethod]
    public void AttentionBlockGradientMatchesFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(5);
        using var block = new DiffusionAttentionBlock(8, 4, 2);
        block.to(ScalarType.Float64);
        using (no_grad())
            foreach (var p in block.parameters()) p.copy_(randn(p.shape, ScalarType.Float64, generator: g) * S(0.5));
        var x = randn([1, 8, 3, 3], ScalarType.Float64, generator: g).requires_grad_(true);
        var w = randn([1, 8, 3, 3], ScalarType.Float64, generator: g);
        Tensor F(Tensor input) => (block.call(input) * w).sum();
        var grad = torch.autograd.grad([F(x)], [x])[0];
        var ga = grad.ToArray<double>();
        var xa = x.detach().ToArray<double>();
        const double h = 1e-6;
        for (int i = 0; i < xa.Length; i += 5)
        {
            using var s = NewDisposeScope();
            var plus = (double[])xa.Clone(); plus[i] += h;
            var minus = (double[])xa.Clone(); minus[i] -= h;
            double fp, fm;
            using (no_grad())
            {
                fp = F(tensor(plus).reshape(1, 8, 3, 3)).ToDouble();
                fm = F(tensor(minus).reshape(1, 8, 3, 3)).ToDouble();
            }
            Assert.AreEqual((fp - fm) / (2 * h), ga[i], 1e-6 * Math.Max(1, Math.Abs(ga[i])), $"element {i}");
        }
    }

    [TestMethod]
    public void AttentionMatchesAHandWrittenSingleHeadSoftmax()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(6);
        using var block = new DiffusionAttentionBlock(4, 4, 1);
        using (no_grad())
            foreach (var p in block.parameters()) p.copy_(randn(p.shape, generator: g) * S(0.5));
        var x = randn([1, 4, 2, 2], generator: g);
        var y = block.call(x);
        // By hand: GN(1 group) → qkv 1×1 → softmax(qᵀk/2) → v·aᵀ → proj 1×1, residual.
        var sd = block.StateDictInOrder();
        var xn = nn.functional.group_norm(x, 1, sd["norm.weight"], sd["norm.bias"]).reshape(4, 4);        // [C, T]
        var qkv = sd["qkv.weight"].reshape(12, 4).matmul(xn) + sd["qkv.bias"].unsqueeze(1);                 // [3C, T]
        var q = qkv.narrow(0, 0, 4); var k = qkv.narrow(0, 4, 4); var v = qkv.narrow(0, 8, 4);
        var att = (q.t().matmul(k) / S(2.0)).softmax(1);                                                        // [T, S]
        var a = v.matmul(att.t());                                                                           // [C, T]
        var expected = x.reshape(4, 4) + sd["proj.weight"].reshape(4, 4).matmul(a) + sd["proj.bias"].unsqueeze(1);
        Assert.AreEqual(0.0, (y.reshape(4, 4) - expected).abs().max().ToSingle(), 1e-5);
    }

    [TestMethod]
    public void StateDictRoundTripReproducesTheOutput()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(9);
        using var a = new DiffusionUNet(Tiny(cond: 1), g);
        Perturb(a, 10);
        using var b = new DiffusionUNet(Tiny(cond: 1), new Generator(11));
        b.load_state_dict(a.StateDictInOrder());
        a.eval(); b.eval();
        var x = randn([2, 1, 16, 16], generator: g);
        var c = rand([2, 1, 16, 16], generator: g);
        var t = tensor(new long[] { 1, 2 });
        using var _ = no_grad();
        Assert.IsTrue(a.forward(x, t, c).IsEqual(b.forward(x, t, c)));
        Assert.IsFalse(a.StateDictInOrder().ContainsKey("freqs"), "the frequency table is not saved");
    }

    /// <summary>
    /// The PyTorch twin (build/bench/networks.py DiffusionUNet, the bench's reference) gives the same output for the same
    /// weights: both filled by networks.deterministic_fill_ (0.5·sin(0.731k + 1.3j)/√fan for state-dict entry j),
    /// inputs sin(0.05k) and cos(0.07k), t = [3, 77]. Reference numbers printed by libtorch 1.13's PyTorch.
    /// </summary>
    [TestMethod]
    public void MatchesThePyTorchTwin()
    {
        using var scope = NewDisposeScope();
        var o = new DiffusionUNetOptions
        {
            InChannels = 2, OutChannels = 2, ConditionChannels = 1, BaseChannels = 16, ChannelMultipliers = [1, 2],
            AttentionResolutions = [8], HeadChannels = 8, GroupNormGroups = 4, ImageSize = 16,
        };
        using var net = new DiffusionUNet(o, new Generator(0));
        Assert.AreEqual(190802, net.ParameterCount(), "the twin's parameter count");
        using (no_grad())
        {
            int j = 0;
            foreach (var (name, t) in net.StateDictInOrder())
            {
                long n = t.numel(), fan = t.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
                var v = new float[n];
                for (long k = 0; k < n; k++) v[k] = (float)(0.5 * Math.Sin(0.731 * k + 1.3 * j) / Math.Sqrt(fan));
                t.copy_(tensor(v).reshape(t.shape));
                j++;
            }
        }
        net.eval();
        var x = tensor(Enumerable.Range(0, 2 * 2 * 16 * 16).Select(k => Math.Sin(0.05 * k)).ToArray()).to(ScalarType.Float32).reshape(2, 2, 16, 16);
        var c = tensor(Enumerable.Range(0, 2 * 1 * 16 * 16).Select(k => Math.Cos(0.07 * k)).ToArray()).to(ScalarType.Float32).reshape(2, 1, 16, 16);
        using var _ = no_grad();
        var y = net.forward(x, tensor(new long[] { 3, 77 }), c).to(ScalarType.Float64);
        Assert.AreEqual(411.326153, y.sum().ToDouble(), 1e-3);
        Assert.AreEqual(0.481339, y[1, 0, 9, 5].ToDouble(), 1e-4);
        Assert.AreEqual(0.268325, y[0, 1, 15, 0].ToDouble(), 1e-4);
    }

    [TestMethod]
    public void ForwardLeavesNoTensorBehind()
    {
        using var scope = NewDisposeScope();
        using var net = new DiffusionUNet(Tiny(cond: 1), new Generator(12));
        var x = zeros(1, 1, 16, 16); var c = zeros(1, 1, 16, 16); var t = tensor(new long[] { 4 });
        using (no_grad()) net.forward(x, t, c).Dispose();
        long live = LiveTensors.Settled();
        for (int i = 0; i < 3; i++)
            using (no_grad()) net.forward(x, t, c).Dispose();
        Assert.AreEqual(live, LiveTensors.Settled());
    }
}
