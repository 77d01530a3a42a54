using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Segmentation.Networks;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary><see cref="SeededInit"/>: reproducible, generator-only initialisation with PyTorch's default rules.</summary>
[TestClass]
public sealed class SeededInitTests
{
    /// <summary>A conv, a linear layer, an embedding and two norms, registered in that order.</summary>
    private sealed class Mixed : MedSegModule
    {
        public Mixed() : base(nameof(Mixed))
        {
            RegisterModule("conv", nn.Conv2d(2, 3, 2));
            RegisterModule("fc", nn.Linear(3, 2));
            RegisterModule("emb", nn.Embedding(4, 2));
            RegisterModule("norm", Layers.GroupNorm(1, 3));
            RegisterModule("bn", nn.BatchNorm2d(3));
        }
    }

    private static Dictionary<string, Tensor> Snapshot(nn.Module m) => m.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.detach().clone());

    private static bool AllEqual(Dictionary<string, Tensor> a, Dictionary<string, Tensor> b) =>
        a.Keys.SequenceEqual(b.Keys) && a.Keys.All(k => a[k].IsEqual(b[k]));

    private static SegmentationNetworkOptions SmallLinkNet() => new()
    {
        Architecture = SegmentationArchitecture.LinkNet, Classes = 1, EncoderDepth = 5, EncoderWidths = [16, 16, 32, 64, 64],
        ResNetBlocks = [1, 1, 1, 1], DecoderWidths = [16],
    };

    private static DiffusionUNetOptions TinyUNet() => new()
    {
        InChannels = 1, OutChannels = 1, BaseChannels = 8, ChannelMultipliers = [1, 2], AttentionResolutions = [8],
        HeadChannels = 8, GroupNormGroups = 4, ImageSize = 16,
    };

    // /usr/bin/python3, PyTorch 1.13, the draws of PyTorch's reset_parameters in the same order from one generator:
    //   g = torch.Generator().manual_seed(5); b1 = 1/math.sqrt(8); b2 = 1/math.sqrt(3)
    //   torch.empty(3,2,2,2).uniform_(-b1, b1, generator=g); torch.empty(3).uniform_(-b1, b1, generator=g)   # Conv2d(2, 3, 2)
    //   torch.empty(2,3).uniform_(-b2, b2, generator=g); torch.empty(2).uniform_(-b2, b2, generator=g)       # Linear(3, 2)
    //   torch.empty(4,2).normal_(0, 1, generator=g)                                                          # Embedding(4, 2)
    private static readonly float[] ConvWeight =
    [
        0.23352334f, -0.26437950f, 0.28812456f, 0.22622257f, 0.29705799f, -0.27107278f, -0.23731104f, 0.16823441f, -0.33003172f, 0.34944138f,
        0.07525636f, 0.04565877f, -0.30235022f, 0.11266965f, 0.15203202f, 0.05609307f, 0.34006670f, 0.10617819f, -0.31350717f, 0.29706383f,
        0.12004185f, -0.16866398f, -0.32476339f, 0.20155074f,
    ];
    private static readonly float[] ConvBias = [0.33598977f, -0.28967035f, 0.01932193f];
    private static readonly float[] FcWeight = [0.20713733f, -0.27264711f, -0.12632854f, -0.38551399f, -0.27295277f, -0.52635133f];
    private static readonly float[] FcBias = [-0.01338064f, 0.34232587f];
    private static readonly float[] EmbWeight = [1.08828664f, -0.38800684f, 1.59845352f, -1.24761796f, 0.43925032f, -0.52170312f, 0.65194970f, -3.08859515f];

    private static void AssertClose(float[] expected, Tensor actual, string what)
    {
        var a = actual.ToArray<float>();
        Assert.AreEqual(expected.Length, a.Length, what);
        for (int i = 0; i < a.Length; i++) Assert.AreEqual(expected[i], a[i], 1e-6, $"{what}[{i}]");
    }

    [TestMethod]
    public void DrawsWhatPyTorchsDefaultRulesDrawFromTheSameGenerator()
    {
        using var scope = NewDisposeScope();
        using var m = new Mixed();
        using var g = new Generator(5);
        SeededInit.Apply(m, g);
        var s = m.StateDictInOrder();
        AssertClose(ConvWeight, s["conv.weight"], "conv.weight");
        AssertClose(ConvBias, s["conv.bias"], "conv.bias");
        AssertClose(FcWeight, s["fc.weight"], "fc.weight");
        AssertClose(FcBias, s["fc.bias"], "fc.bias");
        AssertClose(EmbWeight, s["emb.weight"], "emb.weight");
        Assert.IsTrue(s["norm.weight"].eq(S(1)).all().ToBoolean() && s["norm.bias"].eq(S(0)).all().ToBoolean());
        Assert.IsTrue(s["bn.weight"].eq(S(1)).all().ToBoolean() && s["bn.bias"].eq(S(0)).all().ToBoolean());
        Assert.IsTrue(m.parameters().All(p => p.requires_grad), "parameters stay trainable");
    }

    [TestMethod]
    public void SameSeedSameWeightsWhateverWasDrawnBefore()
    {
        using var scope = NewDisposeScope();
        foreach (Func<Generator, nn.Module> build in new Func<Generator, nn.Module>[]
        {
            g => { var m = new Mixed(); SeededInit.Apply(m, g); return m; },
            g => SegmentationNetworks.Create(SmallLinkNet(), g),
            g => new DiffusionUNet(TinyUNet(), g),
        })
        {
            manual_seed(1);
            using var g1 = new Generator(7);
            using var a = build(g1);
            var first = Snapshot(a);
            // Another component draws from its own generator, the global generator moves on; then the same seed again.
            using var other = new Generator(7);
            using var b0 = build(other);
            manual_seed(12345);
            rand(1000);
            using var g2 = new Generator(7);
            using var b = build(g2);
            Assert.IsTrue(AllEqual(first, Snapshot(b)), $"{a.GetName()}: same seed, same weights");
            using var g3 = new Generator(8);
            using var c = build(g3);
            var third = Snapshot(c);
            var differing = first.Keys.Count(k => !first[k].IsEqual(third[k]));
            Assert.IsTrue(differing > 0, $"{a.GetName()}: another seed, other weights");
            // Every random parameter differs (none is left with TorchSharp's global-generator initialisation).
            foreach (var (k, p) in first)
            {
                bool constant = p.numel() == 0 || p.eq(p.flatten()[0]).all().ToBoolean();
                if (!constant) Assert.IsFalse(p.IsEqual(third[k]), $"{a.GetName()}.{k} does not depend on the seed");
            }
        }
    }

    [TestMethod]
    public void ZeroInitialisedConvsOfTheDiffusionUNetStayZero()
    {
        using var scope = NewDisposeScope();
        using var net = new DiffusionUNet(TinyUNet(), new Generator(3));
        var zeroed = net.StateDictInOrder().Where(e => e.Key.EndsWith("out_conv.weight") || e.Key.EndsWith("out_conv.bias")
            || e.Key.EndsWith("proj.weight") || e.Key.EndsWith("proj.bias")).ToList();
        Assert.IsTrue(zeroed.Count >= 10, $"{zeroed.Count} zero-initialised tensors");
        foreach (var (k, t) in zeroed) Assert.AreEqual(0.0, t.abs().max().ToDouble(), $"{k} is zero after the seeded initialisation");
        // …while the other convs were drawn.
        Assert.IsTrue(net.StateDictInOrder()["input_conv.weight"].abs().max().ToDouble() > 0);
    }

    [TestMethod]
    public void ResNetEncoderConvsAreHeNormal()
    {
        using var scope = NewDisposeScope();
        using var enc = new ResNetEncoder(3, [8, 16, 32, 64, 256], [1, 1, 1, 1]);
        // Through Apply: the default rule runs first, then the encoder's own (ISeededInit).
        SeededInit.Apply(enc, new Generator(2));
        var s = enc.StateDictInOrder();
        foreach (var key in new[] { "layer4.0.conv2.weight", "layer4.0.conv1.weight", "layer3.0.conv2.weight" })
        {
            var w = s[key].to(ScalarType.Float64);
            double std = Math.Sqrt(2.0 / SeededInit.FanOut(s[key]));
            double n = w.numel();
            double mean = w.mean().ToDouble(), sd = w.std().ToDouble();
            double kurtosis = ((w - S(mean)).pow(S(4)).mean() / S(Math.Pow(sd, 4))).ToDouble();
            Assert.AreEqual(0.0, mean, 5 * std / Math.Sqrt(n), $"{key}: mean 0");
            Assert.AreEqual(std, sd, std * Math.Max(0.02, 6 / Math.Sqrt(2 * n)), $"{key}: std √(2/fan_out) = {std:F4} ({n} weights)");
            if (n > 100_000) Assert.AreEqual(3.0, kurtosis, 0.1, $"{key}: normal, not uniform (kurtosis 1.8)");
        }
        Assert.IsTrue(s["bn1.weight"].eq(S(1)).all().ToBoolean() && s["bn1.bias"].eq(S(0)).all().ToBoolean());
        Assert.IsTrue(s["bn1.running_var"].eq(S(1)).all().ToBoolean(), "buffers are left alone");
    }

    [TestMethod]
    public void FanInAndFanOutFollowPyTorch()
    {
        using var scope = NewDisposeScope();
        var w = empty(8, 3, 5, 7);
        Assert.AreEqual(3 * 35, SeededInit.FanIn(w));
        Assert.AreEqual(8 * 35, SeededInit.FanOut(w));
        Assert.AreEqual(4, SeededInit.FanIn(empty(2, 4)));
        Assert.ThrowsException<ArgumentException>(() => SeededInit.FanIn(empty(3)));
        Assert.ThrowsException<ArgumentException>(() => SeededInit.FanOut(empty(3)));
    }
}
