using MLNetMedSeg.Segmentation.Networks;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Segmentation.Networks;

[TestClass]
public sealed class SegmentationNetworkShapeTests
{
    [TestMethod]
    public void EveryArchitectureGivesLogitsAtTheInputSizeForOddAndEvenSizes()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(1);
        foreach (var arch in NetworkTestUtil.All)
            foreach (long classes in new long[] { 1, 3 })
            {
                using var net = SegmentationNetworks.Create(NetworkTestUtil.Small(arch, classes), g);
                foreach (var (h, w) in new (long, long)[] { (33, 47), (64, 64), (17, 5) })
                {
                    using var inner = NewDisposeScope();
                    var x = rand([2, 3, h, w], generator: g);
                    var y = net.call(x);
                    CollectionAssert.AreEqual(new long[] { 2, classes, h, w }, y.shape, $"{arch} classes={classes} {h}x{w}");
                    Assert.IsTrue(y.isfinite().all().ToBoolean(), $"{arch}: non-finite logits");
                    y.sum().backward(); // the padded/cropped graph is differentiable
                }
            }
    }

    [TestMethod]
    public void BilinearUpsamplingVariantsGiveTheInputSizeWithoutTransposedConvs()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(4);
        foreach (var arch in new[] { SegmentationArchitecture.UNet, SegmentationArchitecture.UNetPlusPlus })
        {
            var opts = NetworkTestUtil.Small(arch, classes: 3);
            opts.Upsampling = UpsamplingMode.Bilinear;
            using var net = SegmentationNetworks.Create(opts, g);
            Assert.IsFalse(net.StateDictInOrder().Keys.Any(k => k.Contains(".up.")), $"{arch}: bilinear mode has no up-convolutions");
            var y = net.call(rand([2, 3, 33, 47], generator: g));
            CollectionAssert.AreEqual(new long[] { 2, 3, 33, 47 }, y.shape, arch.ToString());
            // Multi-class probabilities are a softmax over the channels; binary ones a sigmoid.
            var p = SegmentationNetwork.Probabilities(y);
            Assert.IsTrue(p.sum(1).allclose(ones([2, 33, 47]), 1e-5, 1e-5));
            var z = rand([1, 1, 4, 4], generator: g);
            Assert.IsTrue(SegmentationNetwork.Probabilities(z).IsEqual(z.sigmoid()));
        }
        // U-Net, plain widths 8/16/32/64, bilinear: the decoder double convs take (deeper + skip) channels.
        var u = NetworkTestUtil.Small(SegmentationArchitecture.UNet);
        u.Upsampling = UpsamplingMode.Bilinear;
        using var un = SegmentationNetworks.Create(u);
        CollectionAssert.AreEqual(new long[] { 32, 64 + 32, 3, 3 }, un.StateDictInOrder()["decoder.blocks.0.conv.0.weight"].shape);
    }

    [TestMethod]
    public void DefaultWidthNetworksGiveTheInputSizeAndMatchTheirPyTorchTwinsParameterCounts()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(2);
        // Parameter counts printed by build/bench/networks.py (the PyTorch twins) for 3 channels, 1 class.
        var expected = new Dictionary<SegmentationArchitecture, long>
        {
            [SegmentationArchitecture.UNet] = 7_763_041, // = the benchmark U-Net (test/MLNetMedSeg.Bench/UNet.cs)
            [SegmentationArchitecture.UNetPlusPlus] = 9_045_825,
            [SegmentationArchitecture.LinkNet] = 11_509_409,
            [SegmentationArchitecture.DeepLabV3Plus] = 16_602_785,
        };
        foreach (var arch in NetworkTestUtil.All)
        {
            using var net = SegmentationNetworks.Create(new SegmentationNetworkOptions { Architecture = arch }, g);
            Assert.AreEqual(expected[arch], net.ParameterCount(), $"{arch} parameter count");
            net.eval();
            using var ng = no_grad();
            using var inner = NewDisposeScope();
            var y = net.call(rand([1, 3, 33, 47], generator: g));
            CollectionAssert.AreEqual(new long[] { 1, 1, 33, 47 }, y.shape, arch.ToString());
        }
    }

    [TestMethod]
    public void OddInputsArePaddedWithZerosAtTheBottomRightAndCroppedBack()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(3);
        foreach (var arch in NetworkTestUtil.All)
        {
            using var net = SegmentationNetworks.Create(NetworkTestUtil.Small(arch), g);
            net.eval();
            using var ng = no_grad();
            int m = net.SizeMultiple;
            var x = rand([1, 3, 33, 47], generator: g);
            long ph = (m - 33 % m) % m, pw = (m - 47 % m) % m;
            var padded = nn.functional.pad(x, [0, pw, 0, ph]);
            Assert.AreEqual(0, padded.size(2) % m);
            var expected = net.call(padded).narrow(2, 0, 33).narrow(3, 0, 47);
            Assert.IsTrue(net.call(x).allclose(expected, 1e-5, 1e-5), $"{arch}: not pad-and-crop");
        }
    }

    [TestMethod]
    public void EncodersReportTheirFeatureChannelsAndStrides()
    {
        using var scope = NewDisposeScope();
        using var plain = new PlainEncoder(3, [8, 16, 32]);
        CollectionAssert.AreEqual(new[] { 1, 2, 4 }, plain.Strides.ToArray());
        CollectionAssert.AreEqual(new long[] { 8, 16, 32 }, plain.OutChannels.ToArray());
        var f = plain.call(rand([2, 3, 32, 24]));
        CollectionAssert.AreEqual(new long[] { 2, 8, 32, 24 }, f[0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 32, 8, 6 }, f[2].shape);

        using var res = new ResNetEncoder(3, [8, 8, 16, 16, 32], [1, 1, 1, 1]);
        CollectionAssert.AreEqual(new[] { 2, 4, 8, 16, 32 }, res.Strides.ToArray());
        f = res.call(rand([1, 3, 64, 64]));
        CollectionAssert.AreEqual(new long[] { 32, 16, 8, 4, 2 }, f.Select(t => t.size(2)).ToArray());
        CollectionAssert.AreEqual(new long[] { 8, 8, 16, 16, 32 }, f.Select(t => t.size(1)).ToArray());

        using var os16 = new ResNetEncoder(3, [8, 8, 16, 16, 32], [1, 1, 1, 1], outputStride: 16);
        CollectionAssert.AreEqual(new[] { 2, 4, 8, 16, 16 }, os16.Strides.ToArray());
        CollectionAssert.AreEqual(new long[] { 32, 16, 8, 4, 4 }, os16.call(rand([1, 3, 64, 64])).Select(t => t.size(2)).ToArray());
        using var os8 = new ResNetEncoder(3, [8, 8, 16, 16, 32], [1, 1, 1, 1], outputStride: 8);
        CollectionAssert.AreEqual(new[] { 2, 4, 8, 8, 8 }, os8.Strides.ToArray());
        CollectionAssert.AreEqual(new long[] { 32, 16, 8, 8, 8 }, os8.call(rand([1, 3, 64, 64])).Select(t => t.size(2)).ToArray());
    }

    [TestMethod]
    public void InvalidOptionsAndInputsAreRejectedNamingTheProblem()
    {
        var e = Assert.ThrowsException<ArgumentException>(() => SegmentationNetworks.Create(new SegmentationNetworkOptions
        { Architecture = SegmentationArchitecture.LinkNet, Encoder = EncoderKind.Plain }));
        StringAssert.Contains(e.Message, "ResNet");
        Assert.AreEqual("Encoder", e.ParamName);
        e = Assert.ThrowsException<ArgumentException>(() => SegmentationNetworks.Create(new SegmentationNetworkOptions { DecoderWidths = [8, 8] }));
        Assert.AreEqual("DecoderWidths", e.ParamName);
        e = Assert.ThrowsException<ArgumentException>(() => SegmentationNetworks.Create(new SegmentationNetworkOptions { EncoderDepth = 3, EncoderWidths = [8, 16] }));
        Assert.AreEqual("EncoderWidths", e.ParamName);
        e = Assert.ThrowsException<ArgumentException>(() => SegmentationNetworks.Create(new SegmentationNetworkOptions { Classes = 0 }));
        Assert.AreEqual("Classes", e.ParamName);
        e = Assert.ThrowsException<ArgumentException>(() => SegmentationNetworks.Create(new SegmentationNetworkOptions { DeepSupervision = true }));
        Assert.AreEqual("DeepSupervision", e.ParamName);

        using var scope = NewDisposeScope();
        using var net = SegmentationNetworks.Create(NetworkTestUtil.Small(SegmentationArchitecture.UNet));
        e = Assert.ThrowsException<ArgumentException>(() => net.call(zeros([1, 1, 16, 16])));
        StringAssert.Contains(e.Message, "(N, 3, H, W)");
        // A depth-3 plain encoder only needs multiples of 4.
        using var shallow = SegmentationNetworks.Create(new SegmentationNetworkOptions { EncoderDepth = 3 });
        Assert.AreEqual(4, shallow.SizeMultiple);
        CollectionAssert.AreEqual(new long[] { 32, 64, 128 }, shallow.Encoder.OutChannels.ToArray());
    }
}
