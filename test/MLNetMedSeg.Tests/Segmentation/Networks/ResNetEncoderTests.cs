using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Core;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Segmentation.Networks;

[TestClass]
public sealed class ResNetEncoderTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), "medseg-networks-" + Guid.NewGuid().ToString("N")));

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    [TestMethod]
    public void Resnet18StateDictHasTorchvisionsKeysShapesAndOrder()
    {
        using var scope = NewDisposeScope();
        using var enc = new ResNetEncoder(3, [64, 64, 128, 256, 512], [2, 2, 2, 2]);
        var expected = TorchvisionResNet18Keys.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(l => l.Split(' ')).Select(p => (key: p[0], shape: p[1] == "-" ? "" : p[1])).ToList();
        var actual = enc.StateDictInOrder().Select(e => (key: e.Key, shape: string.Join("x", e.Value.shape))).ToList();
        CollectionAssert.AreEqual(expected.Select(e => e.key).ToList(), actual.Select(e => e.key).ToList());
        CollectionAssert.AreEqual(expected.Select(e => e.shape).ToList(), actual.Select(e => e.shape).ToList());
        // torchvision: resnet18 has 11,689,512 parameters, resnet34 21,797,672; both have a 512*1000 + 1000 fc we omit.
        Assert.AreEqual(11_689_512 - 513_000, enc.ParameterCount());
        using var r34 = new ResNetEncoder(3, [64, 64, 128, 256, 512], [3, 4, 6, 3]);
        Assert.AreEqual(21_797_672 - 513_000, r34.ParameterCount());
        Assert.AreEqual(218 - 2, r34.StateDictInOrder().Count);
        // The dilated (DeepLabv3+) variant keeps every key and shape, so ImageNet weights load into it too.
        using var os16 = new ResNetEncoder(3, [64, 64, 128, 256, 512], [2, 2, 2, 2], outputStride: 16);
        CollectionAssert.AreEqual(actual, os16.StateDictInOrder().Select(e => (key: e.Key, shape: string.Join("x", e.Value.shape))).ToList());
    }

    [TestMethod]
    public void EncoderWeightsRoundTripThroughSafetensorsIgnoringTheClassifier()
    {
        using var scope = NewDisposeScope();
        var opts = NetworkTestUtil.Small(SegmentationArchitecture.LinkNet);
        using var g1 = new Generator(11);
        using var g2 = new Generator(12);
        using var source = SegmentationNetworks.Create(opts, g1);
        using var target = SegmentationNetworks.Create(opts, g2);
        // Give the source BN non-trivial running statistics, as trained weights have.
        source.call(rand([2, 3, 32, 32], generator: g1));
        var file = Path.Combine(_dir, "resnet.safetensors");
        var export = source.Encoder.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value);
        export["fc.weight"] = randn([10, 64]);
        export["fc.bias"] = randn([10]);
        Safetensors.Save(export, file);

        Assert.IsFalse(target.Encoder.StateDictInOrder()["conv1.weight"].IsEqual(source.Encoder.StateDictInOrder()["conv1.weight"]));
        var decoderBefore = target.StateDictInOrder().Where(e => !e.Key.StartsWith("encoder.")).ToDictionary(e => e.Key, e => e.Value.clone());
        target.LoadEncoderWeights(file);
        foreach (var (k, v) in source.Encoder.StateDictInOrder())
            Assert.IsTrue(v.IsEqual(target.Encoder.StateDictInOrder()[k]), $"{k} not loaded");
        foreach (var (k, v) in decoderBefore)
            Assert.IsTrue(v.IsEqual(target.StateDictInOrder()[k]), $"{k} (not encoder) changed");

        // The factory loads EncoderWeightsPath; a shallower encoder ignores the layers it does not have.
        opts.EncoderWeightsPath = file;
        using var viaFactory = SegmentationNetworks.Create(opts, g2);
        Assert.IsTrue(viaFactory.Encoder.StateDictInOrder()["layer4.0.conv2.weight"].IsEqual(source.Encoder.StateDictInOrder()["layer4.0.conv2.weight"]));
        var shallow = NetworkTestUtil.Small(SegmentationArchitecture.LinkNet, depth: 3);
        shallow.EncoderWeightsPath = file;
        using var shallowNet = SegmentationNetworks.Create(shallow, g2);
        Assert.IsTrue(shallowNet.Encoder.StateDictInOrder()["layer2.0.downsample.0.weight"].IsEqual(source.Encoder.StateDictInOrder()["layer2.0.downsample.0.weight"]));
    }

    [TestMethod]
    public void WrongWeightFilesGiveAClearError()
    {
        using var scope = NewDisposeScope();
        using var net = SegmentationNetworks.Create(NetworkTestUtil.Small(SegmentationArchitecture.DeepLabV3Plus), new Generator(5));
        var good = net.Encoder.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value);

        var bad = new Dictionary<string, Tensor>(good);
        bad.Remove("layer1.0.conv1.weight");
        bad["conv1.weight"] = zeros([16, 1, 7, 7]);
        bad["layer9.0.conv1.weight"] = zeros([1]);
        var file = Path.Combine(_dir, "bad.safetensors");
        Safetensors.Save(bad, file);
        var before = net.Encoder.StateDictInOrder()["bn1.weight"].clone();
        var e = Assert.ThrowsException<InvalidDataException>(() => net.LoadEncoderWeights(file));
        StringAssert.Contains(e.Message, file);
        StringAssert.Contains(e.Message, "1 missing key(s): layer1.0.conv1.weight");
        StringAssert.Contains(e.Message, "1 unexpected key(s): layer9.0.conv1.weight");
        StringAssert.Contains(e.Message, "conv1.weight (expected [16, 3, 7, 7], file has [16, 1, 7, 7])");
        Assert.IsTrue(before.IsEqual(net.Encoder.StateDictInOrder()["bn1.weight"]), "a failed load must not change the weights");

        var missingFile = Path.Combine(_dir, "nope.safetensors");
        var fnf = Assert.ThrowsException<FileNotFoundException>(() => net.LoadEncoderWeights(missingFile));
        StringAssert.Contains(fnf.Message, missingFile);

        var junk = Path.Combine(_dir, "junk.safetensors");
        File.WriteAllBytes(junk, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        var ide = Assert.ThrowsException<InvalidDataException>(() => net.LoadEncoderWeights(junk));
        StringAssert.Contains(ide.Message, "junk.safetensors");

        // Through the factory the half-built network is disposed and the error surfaces.
        var opts = NetworkTestUtil.Small(SegmentationArchitecture.DeepLabV3Plus);
        opts.EncoderWeightsPath = file;
        Assert.ThrowsException<InvalidDataException>(() => SegmentationNetworks.Create(opts));
    }

    // torchvision resnet18 state_dict() without fc.weight/fc.bias (120 of its 122 entries), in its order: "key shape".
    private const string TorchvisionResNet18Keys = """
        conv1.weight 64x3x7x7
        bn1.weight 64
        bn1.bias 64
        bn1.running_mean 64
        bn1.running_var 64
        bn1.num_batches_tracked -
        layer1.0.conv1.weight 64x64x3x3
        layer1.0.bn1.weight 64
        layer1.0.bn1.bias 64
        layer1.0.bn1.running_mean 64
        layer1.0.bn1.running_var 64
        layer1.0.bn1.num_batches_tracked -
        layer1.0.conv2.weight 64x64x3x3
        layer1.0.bn2.weight 64
        layer1.0.bn2.bias 64
        layer1.0.bn2.running_mean 64
        layer1.0.bn2.running_var 64
        layer1.0.bn2.num_batches_tracked -
        layer1.1.conv1.weight 64x64x3x3
        layer1.1.bn1.weight 64
        layer1.1.bn1.bias 64
        layer1.1.bn1.running_mean 64
        layer1.1.bn1.running_var 64
        layer1.1.bn1.num_batches_tracked -
        layer1.1.conv2.weight 64x64x3x3
        layer1.1.bn2.weight 64
        layer1.1.bn2.bias 64
        layer1.1.bn2.running_mean 64
        layer1.1.bn2.running_var 64
        layer1.1.bn2.num_batches_tracked -
        layer2.0.conv1.weight 128x64x3x3
        layer2.0.bn1.weight 128
        layer2.0.bn1.bias 128
        layer2.0.bn1.running_mean 128
        layer2.0.bn1.running_var 128
        layer2.0.bn1.num_batches_tracked -
        layer2.0.conv2.weight 128x128x3x3
        layer2.0.bn2.weight 128
        layer2.0.bn2.bias 128
        layer2.0.bn2.running_mean 128
        layer2.0.bn2.running_var 128
        layer2.0.bn2.num_batches_tracked -
        layer2.0.downsample.0.weight 128x64x1x1
        layer2.0.downsample.1.weight 128
        layer2.0.downsample.1.bias 128
        layer2.0.downsample.1.running_mean 128
        layer2.0.downsample.1.running_var 128
        layer2.0.downsample.1.num_batches_tracked -
        layer2.1.conv1.weight 128x128x3x3
        layer2.1.bn1.weight 128
        layer2.1.bn1.bias 128
        layer2.1.bn1.running_mean 128
        layer2.1.bn1.running_var 128
        layer2.1.bn1.num_batches_tracked -
        layer2.1.conv2.weight 128x128x3x3
        layer2.1.bn2.weight 128
        layer2.1.bn2.bias 128
        layer2.1.bn2.running_mean 128
        layer2.1.bn2.running_var 128
        layer2.1.bn2.num_batches_tracked -
        layer3.0.conv1.weight 256x128x3x3
        layer3.0.bn1.weight 256
        layer3.0.bn1.bias 256
        layer3.0.bn1.running_mean 256
        layer3.0.bn1.running_var 256
        layer3.0.bn1.num_batches_tracked -
        layer3.0.conv2.weight 256x256x3x3
        layer3.0.bn2.weight 256
        layer3.0.bn2.bias 256
        layer3.0.bn2.running_mean 256
        layer3.0.bn2.running_var 256
        layer3.0.bn2.num_batches_tracked -
        layer3.0.downsample.0.weight 256x128x1x1
        layer3.0.downsample.1.weight 256
        layer3.0.downsample.1.bias 256
        layer3.0.downsample.1.running_mean 256
        layer3.0.downsample.1.running_var 256
        layer3.0.downsample.1.num_batches_tracked -
        layer3.1.conv1.weight 256x256x3x3
        layer3.1.bn1.weight 256
        layer3.1.bn1.bias 256
        layer3.1.bn1.running_mean 256
        layer3.1.bn1.running_var 256
        layer3.1.bn1.num_batches_tracked -
        layer3.1.conv2.weight 256x256x3x3
        layer3.1.bn2.weight 256
        layer3.1.bn2.bias 256
        layer3.1.bn2.running_mean 256
        layer3.1.bn2.running_var 256
        layer3.1.bn2.num_batches_tracked -
        layer4.0.conv1.weight 512x256x3x3
        layer4.0.bn1.weight 512
        layer4.0.bn1.bias 512
        layer4.0.bn1.running_mean 512
        layer4.0.bn1.running_var 512
        layer4.0.bn1.num_batches_tracked -
        layer4.0.conv2.weight 512x512x3x3
        layer4.0.bn2.weight 512
        layer4.0.bn2.bias 512
        layer4.0.bn2.running_mean 512
        layer4.0.bn2.running_var 512
        layer4.0.bn2.num_batches_tracked -
        layer4.0.downsample.0.weight 512x256x1x1
        layer4.0.downsample.1.weight 512
        layer4.0.downsample.1.bias 512
        layer4.0.downsample.1.running_mean 512
        layer4.0.downsample.1.running_var 512
        layer4.0.downsample.1.num_batches_tracked -
        layer4.1.conv1.weight 512x512x3x3
        layer4.1.bn1.weight 512
        layer4.1.bn1.bias 512
        layer4.1.bn1.running_mean 512
        layer4.1.bn1.running_var 512
        layer4.1.bn1.num_batches_tracked -
        layer4.1.conv2.weight 512x512x3x3
        layer4.1.bn2.weight 512
        layer4.1.bn2.bias 512
        layer4.1.bn2.running_mean 512
        layer4.1.bn2.running_var 512
        layer4.1.bn2.num_batches_tracked -
        """;

    [TestMethod]
    public void ImageNormalization_WithAMeanImage_RunsInBFloat16AsInFloat32()
    {
        // Mixed-precision training casts the network to bfloat16; the mean image (the ImageNet preprocessing's, 224 px)
        // is then resized to a 64 px input in bfloat16, which libtorch's CPU antialiased resize does not implement.
        using var scope = NewDisposeScope();
        using var gen = new Generator(5);
        using var norm = new ImageNormalization(3, 224, 224);
        norm.Mean.copy_(rand([1, 3, 224, 224], generator: gen));
        norm.Std.copy_(tensor(new[] { 0.2f, 0.3f, 0.4f }).view(1, 3, 1, 1));
        var x = rand([2, 3, 64, 64], generator: gen);
        var fp32 = norm.forward(x);
        norm.to(ScalarType.BFloat16);
        var bf16 = norm.forward(x.to(ScalarType.BFloat16));
        Assert.AreEqual(ScalarType.BFloat16, bf16.dtype);
        double maxDiff = (bf16.to(ScalarType.Float32) - fp32).abs().max().item<float>();
        Assert.IsTrue(maxDiff < 0.05, $"bf16 differs from float32 by {maxDiff} (bf16 keeps 8 bits of mantissa; values up to 5)");
    }
}
