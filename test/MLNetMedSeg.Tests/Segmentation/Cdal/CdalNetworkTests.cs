using System.Text.Json;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Cdal;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation.Cdal;

[TestClass]
public sealed class CdalNetworkTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void OptionsDefaultsAreThePapersAndRoundTripThroughJson()
    {
        var o = new CdalOptions();
        Assert.AreEqual(2, o.Timesteps);
        Assert.AreEqual(0.1, o.BetaMin);
        Assert.AreEqual(20, o.BetaMax);
        Assert.AreEqual(100, o.LatentDim);
        Assert.AreEqual(5, o.Samples);
        Assert.AreEqual(0.5, o.Threshold);
        Assert.AreEqual(16, o.AttentionScale);
        Assert.IsTrue(o.UseLatent && o.UseAttention);
        Assert.AreEqual(6, o.DiscriminatorLevels, "256 → 4 in six halvings, as the code's large discriminator");
        Assert.AreEqual(4, o.AttentionLevel);
        o.Validate();

        o.Classes = 3; o.AttentionScale = 64; o.UseLatent = false; o.ChannelMultipliers = [1, 2];
        var json = JsonSerializer.Serialize(o);
        Assert.IsFalse(json.Contains("LabelChannels"), "derived values are not serialised");
        var back = JsonSerializer.Deserialize<CdalOptions>(json)!;
        Assert.AreEqual(json, JsonSerializer.Serialize(back));
        Assert.AreEqual(3, back.LabelChannels);

        var bad = new CdalOptions { AttentionScale = 48 };
        var ex = Assert.ThrowsException<ArgumentException>(bad.Validate);
        Assert.AreEqual("AttentionScale", ex.ParamName);
        StringAssert.Contains(ex.Message, "256, 128, 64, 32, 16, 8, 4");
        Assert.AreEqual("Timesteps", Assert.ThrowsException<ArgumentException>(() => new CdalOptions { Timesteps = 0 }.Validate()).ParamName);
        Assert.AreEqual("ChannelMultipliers", Assert.ThrowsException<ArgumentException>(() => new CdalOptions { ImageSize = 40 , AttentionScale = 20 }.Validate()).ParamName);
    }

    [TestMethod]
    public void NetworksHaveShapesNamesAndSeededInit()
    {
        var o = CdalTestUtil.Small();
        using var g1 = new Generator(1);
        using var g2 = new Generator(1);
        using var gen = new CdalGeneratorNetwork(o, g1);
        using var gen2 = new CdalGeneratorNetwork(o, g2);
        using var disc = new CdalDiscriminatorNetwork(o, g1);
        var sd = gen.StateDictInOrder();
        var sd2 = gen2.StateDictInOrder();
        CollectionAssert.AreEqual(sd.Keys.ToList(), sd2.Keys.ToList());
        foreach (var (k, v) in sd) Assert.IsTrue(v.IsEqual(sd2[k]), $"{k} differs for the same seed");
        foreach (var key in new[] { "time_embed.0.weight", "z_map.0.weight", "cond_in.weight", "cond_blocks.0.conv0.weight",
                     "input_conv.weight", "down.0.res.norm0.style.weight", "middle.attn.qkv.weight", "middle.res2.conv1.weight",
                     "up.0.res.temb.weight", "out_norm.weight", "out_conv.weight" })
            Assert.IsTrue(sd.ContainsKey(key), $"generator state dict lacks {key}: {string.Join(", ", sd.Keys.Take(12))}…");
        Assert.AreEqual(0, sd["out_conv.weight"].abs().sum().ToSingle(), "the output conv starts at zero");
        var style = sd["down.0.res.norm0.style.bias"];
        Assert.IsTrue(style.narrow(0, 0, 16).eq(S(1)).all().ToBoolean() && style.narrow(0, 16, 16).eq(S(0)).all().ToBoolean(), "AdaGN starts as γ = 1, β = 0");
        var dsd = disc.StateDictInOrder();
        foreach (var key in new[] { "t_embed.0.weight", "start_conv.weight", "blocks.0.conv1.weight", "blocks.2.skip.weight", "final_conv.weight", "end_linear.weight" })
            Assert.IsTrue(dsd.ContainsKey(key), $"discriminator state dict lacks {key}");
        Assert.AreEqual(3, o.DiscriminatorLevels);
        Assert.AreEqual(4, CdalLayers.Groups(16));
        Assert.AreEqual(32, CdalLayers.Groups(192));
        Assert.AreEqual(24, CdalLayers.Groups(144));
        Assert.AreEqual(1, CdalLayers.Groups(3));

        using var scope = NewDisposeScope();
        var x = randn([2, 1, 32, 32], generator: g1);
        var img = rand([2, 3, 32, 32], generator: g1);
        var t = tensor(new long[] { 1, 2 });
        var z = randn([2, 16], generator: g1);
        var y = gen.call(x, t, z, img);
        CollectionAssert.AreEqual(new long[] { 2, 1, 32, 32 }, y.shape);
        var logit = disc.call(x, x, t);
        CollectionAssert.AreEqual(new long[] { 2 }, logit.shape);
        var feats = disc.Features(x, x, t, out _, 3);
        CollectionAssert.AreEqual(new long[] { 32, 16, 8, 4 }, feats.Select(f => f.size(2)).ToArray());
        CollectionAssert.AreEqual(new long[] { 16, 32, 64, 64 }, feats.Select(f => f.size(1)).ToArray());
        Assert.AreEqual("xt", Assert.ThrowsException<ArgumentException>(() => gen.call(randn(2, 2, 32, 32), t, z, img)).ParamName);
        Assert.AreEqual("z", Assert.ThrowsException<ArgumentException>(() => gen.call(x, t, randn(2, 5), img)).ParamName);
        Assert.AreEqual("image", Assert.ThrowsException<ArgumentException>(() => gen.call(x, t, z, rand(2, 1, 32, 32))).ParamName);
    }

    [TestMethod]
    public void ThePapersDefaultConfigurationBuildsAndRuns()
    {
        var o = new CdalOptions();   // CXR: 256², T = 2, 32-channel U-Net 1,1,2,2,4,4, discriminator width 64
        using var g = new Generator(1);
        using var gen = new CdalGeneratorNetwork(o, g);
        using var disc = new CdalDiscriminatorNetwork(o, g);
        TestContext.WriteLine($"default cDAL: generator {gen.ParameterCount():N0} parameters, discriminator {disc.ParameterCount():N0}");
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = randn([1, 1, 256, 256], generator: g);
        var t = tensor(new long[] { 2 });
        CollectionAssert.AreEqual(new long[] { 1, 1, 256, 256 }, gen.call(x, t, randn([1, 100], generator: g), rand([1, 3, 256, 256], generator: g)).shape);
        CollectionAssert.AreEqual(new long[] { 1 }, disc.call(x, x, t).shape);
        var feats = disc.Features(x, x, t, out _, o.DiscriminatorLevels);
        CollectionAssert.AreEqual(new long[] { 256, 128, 64, 32, 16, 8, 4 }, feats.Select(f => f.size(2)).ToArray());
        CollectionAssert.AreEqual(new long[] { 1, 1, 256, 256 }, disc.AttentionMap(x, x, t).shape);
    }

    [TestMethod]
    public void WeightsRoundTripThroughSafetensors()
    {
        var o = CdalTestUtil.Small(16, 3);
        o.AttentionScale = 8;
        using var g = new Generator(6);
        using var gen = new CdalGeneratorNetwork(o, g);
        using var disc = new CdalDiscriminatorNetwork(o, g);
        CdalTestUtil.Perturb(gen, g);
        var dir = Path.Combine(Path.GetTempPath(), "cdal-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            gen.SaveSafetensors(Path.Combine(dir, "generator.safetensors"));
            disc.SaveSafetensors(Path.Combine(dir, "discriminator.safetensors"));
            using var h = new Generator(7);
            using var gen2 = new CdalGeneratorNetwork(o, h);
            using var disc2 = new CdalDiscriminatorNetwork(o, h);
            gen2.LoadSafetensors(Path.Combine(dir, "generator.safetensors"));
            disc2.LoadSafetensors(Path.Combine(dir, "discriminator.safetensors"));
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var x = randn([2, 3, 16, 16], generator: g);
            var img = rand([2, 3, 16, 16], generator: g);
            var t = tensor(new long[] { 1, 2 });
            var z = randn([2, 16], generator: g);
            Assert.IsTrue(gen.call(x, t, z, img).IsEqual(gen2.call(x, t, z, img)));
            Assert.IsTrue(disc.call(x, x, t).IsEqual(disc2.call(x, x, t)));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void LatentChangesTheGeneratorsOutput()
    {
        var o = CdalTestUtil.Small();
        using var g = new Generator(2);
        using var gen = new CdalGeneratorNetwork(o, g);
        CdalTestUtil.Perturb(gen, g);
        gen.eval();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = randn([2, 1, 32, 32], generator: g);
        var img = rand([2, 3, 32, 32], generator: g);
        var t = tensor(new long[] { 2, 2 });
        var a = gen.call(x, t, randn([2, 16], generator: g), img);
        var b = gen.call(x, t, randn([2, 16], generator: g), img);
        var a2 = gen.call(x, t, zeros([2, 16]), img);
        double diff = (a - b).abs().max().ToDouble();
        Assert.IsTrue(diff > 1e-3, $"two latents gave the same x̂₀ (max diff {diff})");
        Assert.IsTrue(a.abs().max().ToDouble() <= 1, "x̂₀ is in [−1, 1] (tanh)");
        var img2 = rand([2, 3, 32, 32], generator: g);
        var c = gen.call(x, t, zeros([2, 16]), img2);
        Assert.IsTrue((a2 - c).abs().max().ToDouble() > 1e-3, "the image condition changes x̂₀");
    }

    [TestMethod]
    public void AttentionMapIsTheChannelMeanOfTheChosenLevel()
    {
        // Level 0 (AttentionScale = ImageSize): A_D is the channel mean of the 1×1 start conv — computed here by hand.
        var o = CdalTestUtil.Small(16);
        o.AttentionScale = 16;
        using var g = new Generator(4);
        using var disc = new CdalDiscriminatorNetwork(o, g);
        using var scope = NewDisposeScope();
        var xPrev = randn([2, 1, 16, 16], generator: g);
        var xt = randn([2, 1, 16, 16], generator: g);
        var t = tensor(new long[] { 1, 2 });
        var a = disc.AttentionMap(xPrev, xt, t);
        CollectionAssert.AreEqual(new long[] { 2, 1, 16, 16 }, a.shape);
        Assert.IsFalse(a.requires_grad, "the attention is not trained through");
        var sd = disc.StateDictInOrder();
        var w = sd["start_conv.weight"].to(ScalarType.Float64).view(-1, 2).data<double>().ToArray();   // [C, 2]
        var bias = sd["start_conv.bias"].to(ScalarType.Float64).data<double>().ToArray();
        int c = bias.Length;
        double wPrev = 0, wT = 0, bm = bias.Average();
        for (int k = 0; k < c; k++) { wPrev += w[2 * k] / c; wT += w[2 * k + 1] / c; }
        var p = xPrev.to(ScalarType.Float64).data<double>().ToArray();
        var q = xt.to(ScalarType.Float64).data<double>().ToArray();
        var got = a.data<float>().ToArray();
        for (int i = 0; i < got.Length; i++) Assert.AreEqual(wPrev * p[i] + wT * q[i] + bm, got[i], 1e-5);

        // x₀^att = x₀ ⊙ A_D, broadcast over label channels.
        var x0 = randn([2, 1, 16, 16], generator: g);
        var att = disc.ApplyAttention(x0, xPrev, xt, t);
        Assert.IsTrue(att.allclose(x0 * a, 1e-6, 1e-6));

        // A coarser level: the channel mean of that level's features, bilinearly upsampled.
        var o8 = CdalTestUtil.Small(16);
        o8.AttentionScale = 4;
        using var g8 = new Generator(4);
        using var d8 = new CdalDiscriminatorNetwork(o8, g8);
        Assert.AreEqual(2, o8.AttentionLevel);
        var a8 = d8.AttentionMap(xPrev, xt, t);
        var f = d8.Features(xPrev, xt, t, out _, 2)[2].mean([1], keepdim: true);
        CollectionAssert.AreEqual(new long[] { 2, 1, 4, 4 }, f.shape);
        Assert.IsTrue(a8.allclose(nn.functional.interpolate(f, [16, 16], mode: InterpolationMode.Bilinear, align_corners: false), 1e-6, 1e-6));
    }

    [TestMethod]
    public void LabelsEncodeBinaryAndOneHot()
    {
        using var scope = NewDisposeScope();
        var m = tensor(new float[] { 0, 1, 1, 0 }, [1, 1, 2, 2]);
        Assert.IsTrue(CdalLabels.Encode(m, 1).IsEqual(tensor(new float[] { -1, 1, 1, -1 }, [1, 1, 2, 2])));
        var idx = tensor(new long[] { 0, 1, 2, 0 }, [1, 2, 2]);
        var oh = CdalLabels.Encode(idx, 3);
        CollectionAssert.AreEqual(new long[] { 1, 3, 2, 2 }, oh.shape);
        Assert.IsTrue(oh.IsEqual(tensor(new float[] { 1, -1, -1, 1, -1, 1, -1, -1, -1, -1, 1, -1 }, [1, 3, 2, 2])));
        StringAssert.Contains(Assert.ThrowsException<ArgumentException>(() => CdalLabels.Encode(m * S(0.5f), 1)).Message, "only 0 and 1");
        StringAssert.Contains(Assert.ThrowsException<ArgumentException>(() => CdalLabels.Encode(idx, 2)).Message, "0..1");
        Assert.AreEqual("masks", Assert.ThrowsException<ArgumentException>(() => CdalLabels.Encode(idx, 1)).ParamName);
        Assert.IsTrue(CdalLabels.ToProbability(tensor(new float[] { -2, -1, 0, 0.5f, 3 })).allclose(tensor(new float[] { 0, 0, 0.5f, 0.75f, 1 })));
    }

    /// <summary>
    /// The PyTorch twins build/bench.sh's cdal_* cases run against (build/bench/networks.py CdalGenerator and
    /// CdalDiscriminator) compute the same functions: both sides filled by networks.deterministic_fill_
    /// (0.5·sin(0.731k + 1.3j)/√fan for state-dict entry j, so the state-dict order must match too), inputs x_t =
    /// sin(0.05k), I = cos(0.07k), z = sin(0.3k + 0.1), x_{t−1} = cos(0.11k), t = [1, 2], evaluation mode. Reference
    /// numbers printed by Debian's PyTorch 1.13 with the twins (<c>python3 build/bench/networks.py
    /// --cdal-twin-reference</c>).
    /// </summary>
    [TestMethod]
    public void NetworksMatchTheirPyTorchTwins()
    {
        using var scope = NewDisposeScope();
        var o = new CdalOptions
        {
            ImageSize = 16, BaseChannels = 8, ChannelMultipliers = [1, 2], SelfAttentionResolutions = [8], ConditionEncoderBlocks = 1,
            LatentDim = 4, LatentEmbeddingDim = 8, MappingLayers = 1, DiscriminatorChannels = 4, DiscriminatorTimeEmbeddingDim = 8,
            AttentionScale = 8,
        };
        using var g = new CdalGeneratorNetwork(o, new TorchSharp.torch.Generator(0));
        using var d = new CdalDiscriminatorNetwork(o, new TorchSharp.torch.Generator(0));
        Assert.AreEqual(54257, g.ParameterCount(), "the generator twin's parameter count");
        Assert.AreEqual(28185, d.ParameterCount(), "the discriminator twin's parameter count");
        Assert.AreEqual(156, g.StateDictInOrder().Count, "the generator twin's state-dict entries");
        Assert.AreEqual(24, d.StateDictInOrder().Count, "the discriminator twin's state-dict entries");
        foreach (var net in new TorchSharp.torch.nn.Module[] { g, d })
        {
            using var noGrad = no_grad();
            int j = 0;
            foreach (var (_, t) in net.StateDictInOrder())
            {
                long n = t.numel(), fan = t.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
                var v = new float[n];
                for (long k = 0; k < n; k++) v[k] = (float)(0.5 * Math.Sin(0.731 * k + 1.3 * j) / Math.Sqrt(fan));
                t.copy_(tensor(v).reshape(t.shape));
                j++;
            }
            net.eval();
        }
        Tensor Seq(long[] shape, Func<int, double> f)
            => tensor(Enumerable.Range(0, (int)shape.Aggregate(1L, (a, b) => a * b)).Select(f).ToArray()).to(ScalarType.Float32).reshape(shape);
        var xt = Seq([2, 1, 16, 16], k => Math.Sin(0.05 * k));
        var image = Seq([2, 3, 16, 16], k => Math.Cos(0.07 * k));
        var z = Seq([2, 4], k => Math.Sin(0.3 * k + 0.1));
        var xPrev = Seq([2, 1, 16, 16], k => Math.Cos(0.11 * k));
        var ts = tensor(new long[] { 1, 2 });
        using var _ = no_grad();
        var y = g.call(xt, ts, z, image).to(ScalarType.Float64);
        Assert.AreEqual(108.492358, y.sum().ToDouble(), 1e-3, "generator: sum");
        Assert.AreEqual(110.589899, y.abs().sum().ToDouble(), 1e-3, "generator: |sum|");
        Assert.AreEqual(0.066824, y[1, 0, 9, 5].ToDouble(), 1e-4, "generator: y[1,0,9,5]");
        Assert.AreEqual(0.256847, y[0, 0, 15, 0].ToDouble(), 1e-4, "generator: y[0,0,15,0]");
        // Inputs × 100: with these weights the logits are mostly end_linear's bias, and small inputs would hide the
        // last layers (leaving out the minibatch-stddev channel moves these by 4e-4, the unscaled ones by 1e-6).
        var logits = d.call(xPrev * S(100), xt * S(100), ts).to(ScalarType.Float64);
        Assert.AreEqual(0.7370467, logits[0].ToDouble(), 2e-5, "discriminator: logit 0");
        Assert.AreEqual(0.7387662, logits[1].ToDouble(), 2e-5, "discriminator: logit 1");
        var att = d.AttentionMap(xPrev, xt, ts).to(ScalarType.Float64);
        Assert.AreEqual(-22.222704, att.sum().ToDouble(), 1e-3, "attention map: sum");
        Assert.AreEqual(-0.043698, att[1, 0, 3, 12].ToDouble(), 1e-4, "attention map: a[1,0,3,12]");
    }
}
