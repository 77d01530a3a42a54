using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Tests.Core.MLNet;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation.Networks;

/// <summary>
/// The ImageNet ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18 (referenced by this test project, which copies its
/// DnnImageModels/ into the output folder) mapped onto <see cref="ResNetEncoder"/>: checked against ONNX Runtime running
/// the package's own two ONNX files, built into every backbone, refused clearly when missing or damaged, kept by
/// ml.Model.Save/Load, and fine-tuned on tiny synthetic data.
/// </summary>
[TestClass]
public sealed class ImageNetEncoderTests
{
    public TestContext TestContext { get; set; } = null!;
    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), "medseg-imagenet-" + Guid.NewGuid().ToString("N")));

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    private static ResNetEncoder NewImageNetEncoder(int outputStride = 32)
        => new(3, [64, 64, 128, 256, 512], ImageNetEncoder.ResNet18Blocks, outputStride, inputNormalization: true);

    /// <summary>Images in [0, 1]: smooth colour gradients, a bright disc and pixel noise, different per image.</summary>
    private static Tensor TestImages(int n, int size, int seed)
    {
        using var g = new Generator((ulong)seed);
        using var scope = NewDisposeScope();
        var yy = linspace(0, 1, size).view(1, 1, size, 1);
        var xx = linspace(0, 1, size).view(1, 1, 1, size);
        var coef = rand([n, 3, 3], generator: g);
        var img = coef[.., .., 0].view(n, 3, 1, 1) * yy + coef[.., .., 1].view(n, 3, 1, 1) * xx + S(0.3) * coef[.., .., 2].view(n, 3, 1, 1);
        var centre = rand([n, 2, 1, 1], generator: g) * S(0.6) + S(0.2);
        var disc = ((yy - centre[.., 0..1]).square() + (xx - centre[.., 1..2]).square()).lt(S(0.04)).to(ScalarType.Float32);
        img = img * S(0.6) + disc * S(0.4) + S(0.1) * rand([n, 3, size, size], generator: g);
        return img.clamp(S(0), S(1)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// ONNX Runtime runs the package's preprocessing model on the pixels × 255 (as ML.NET's ExtractPixels gives them) and
    /// its ResNet-18 on the result; our encoder, given the same images in [0, 1], must produce the same 512-d pooled
    /// features (global average of layer4) within 1e-4.
    /// </summary>
    [TestMethod]
    public void PooledFeaturesEqualOnnxRuntimes()
    {
        using var scope = NewDisposeScope();
        var (modelPath, prepPath) = ImageNetEncoder.Locate();
        StringAssert.StartsWith(modelPath, Path.Combine(AppContext.BaseDirectory, "DnnImageModels"), "the package's build props copy the models next to the application");
        using var enc = NewImageNetEncoder();
        ImageNetEncoder.LoadInto(enc);
        enc.eval();
        const int n = 3, size = ImageNetEncoder.MeanImageSize;
        var images = TestImages(n, size, seed: 5);
        Tensor ours;
        using (no_grad()) ours = enc.call(images)[^1].mean([2, 3]);
        Assert.AreEqual(512, ours.size(1));

        using var prep = new InferenceSession(prepPath);
        using var net = new InferenceSession(modelPath);
        double maxDiff = 0, maxAbs = 0;
        for (int k = 0; k < n; k++)
        {
            var pixels = images[k].mul(S(255)).contiguous().data<float>().ToArray();
            var input = new DenseTensor<float>(pixels, [1, 3, size, size]);
            using var pre = prep.Run([NamedOnnxValue.CreateFromTensor(prep.InputMetadata.Keys.Single(), input)]);
            var preprocessed = pre.Single().AsTensor<float>().ToDenseTensor();
            using var outs = net.Run([NamedOnnxValue.CreateFromTensor(net.InputMetadata.Keys.Single(), preprocessed)]);
            var reference = outs.Single().AsEnumerable<float>().ToArray();
            Assert.AreEqual(512, reference.Length, "the package's output is the pooled 512-d feature");
            var mine = ours[k].data<float>().ToArray();
            for (int i = 0; i < 512; i++)
            {
                maxDiff = Math.Max(maxDiff, Math.Abs(mine[i] - reference[i]));
                maxAbs = Math.Max(maxAbs, Math.Abs(reference[i]));
            }
        }
        TestContext.WriteLine($"max |ours − ONNX Runtime| = {maxDiff:E2} over features up to {maxAbs:F3}");
        Assert.IsTrue(maxAbs > 0.5, $"the features are not trivial (max {maxAbs})");
        Assert.IsTrue(maxDiff <= 1e-4, $"pooled features differ from ONNX Runtime's by {maxDiff:E2} > 1e-4");
    }

    /// <summary>The weights are ImageNet's, not noise: the features separate images and conv1 matches the file.</summary>
    [TestMethod]
    public void EveryBackboneBuildsWithImageNetWeightsAndRunsForward()
    {
        using var scope = NewDisposeScope();
        var (model, prep) = ImageNetEncoder.Locate();
        var reference = ImageNetEncoder.ReadStateDict(model, prep);
        foreach (var arch in NetworkTestUtil.All)
        {
            using var s = NewDisposeScope();
            var opts = new SegmentationNetworkOptions { Architecture = arch, EncoderName = "resnet18", EncoderWeights = EncoderWeights.ImageNet };
            using var g = new Generator(3);
            using var net = SegmentationNetworks.Create(opts, g);
            var enc = (ResNetEncoder)net.Encoder;
            CollectionAssert.AreEqual(new[] { 2, 2, 2, 3 }, enc.LayerBlocks.ToArray(), $"{arch}: the package's layout");
            Assert.AreEqual(15_897_152, enc.ParameterCount(), $"{arch}: torchvision resnet18 without fc (11,176,512) + a third layer4 block (4,720,640)");
            var sd = enc.state_dict();
            foreach (var key in new[] { "conv1.weight", "layer1.0.bn1.running_var", "layer3.0.downsample.0.weight", "layer4.2.conv2.weight", "normalize.mean" })
                Assert.IsTrue(sd[key].IsEqual(reference[key]), $"{arch}: {key} is the file's");
            if (arch == SegmentationArchitecture.DeepLabV3Plus) Assert.AreEqual(16, enc.OutputStride, "DeepLabv3+ dilates layer4 (same weights)");
            net.eval();
            using (no_grad())
            {
                var x = TestImages(2, 64, seed: 9);
                var y = net.call(x);
                CollectionAssert.AreEqual(new long[] { 2, 1, 64, 64 }, y.shape, $"{arch}");
                Assert.IsTrue(y.isfinite().all().ToBoolean(), $"{arch}: finite logits");
                // An odd size: padded to 96 by the network, the mean image resized to it.
                Assert.IsTrue(net.call(TestImages(1, 72, seed: 4)).isfinite().all().ToBoolean(), $"{arch}: 72 px");
            }
        }
        // resnet34 from scratch only; ImageNet weights need RGB input.
        var e = Assert.ThrowsException<ArgumentException>(() => SegmentationNetworks.Create(
            new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.LinkNet, EncoderName = "resnet34", EncoderWeights = EncoderWeights.ImageNet }));
        StringAssert.Contains(e.Message, "only for resnet18");
        e = Assert.ThrowsException<ArgumentException>(() => SegmentationNetworks.Create(
            new SegmentationNetworkOptions { InChannels = 1, EncoderWeights = EncoderWeights.ImageNet }));
        StringAssert.Contains(e.Message, "3 input channels");
        using var r34 = SegmentationNetworks.Create(new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.LinkNet, EncoderName = "resnet34" });
        CollectionAssert.AreEqual(new[] { 3, 4, 6, 3 }, ((ResNetEncoder)r34.Encoder).LayerBlocks.ToArray());
        Assert.IsNull(((ResNetEncoder)r34.Encoder).Normalization, "no input normalisation from scratch");
    }

    [TestMethod]
    public void AMissingPackageOrFileIsAClearError()
    {
        var empty = Path.Combine(_dir, "empty");
        Directory.CreateDirectory(empty);
        var e = Assert.ThrowsException<FileNotFoundException>(() => ImageNetEncoder.Locate(null, empty, Path.Combine(_dir, "no-nuget")));
        StringAssert.Contains(e.Message, "Microsoft.ML.DnnImageFeaturizer.ResNet18");
        StringAssert.Contains(e.Message, "PackageReference");
        StringAssert.Contains(e.Message, empty);

        var missing = Path.Combine(_dir, "nowhere");
        var opts = new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.LinkNet, EncoderWeights = EncoderWeights.ImageNet, ImageNetModelPath = missing };
        e = Assert.ThrowsException<FileNotFoundException>(() => SegmentationNetworks.Create(opts));
        StringAssert.Contains(e.Message, missing);

        // The NuGet cache layout is found too.
        var (model, prep) = ImageNetEncoder.Locate();
        var cache = Path.Combine(_dir, "nuget", "microsoft.ml.dnnimagefeaturizer.resnet18", "0.24.0", "tools", "DnnImageModels");
        CopyModels(model, prep, cache);
        var found = ImageNetEncoder.Locate(null, empty, Path.Combine(_dir, "nuget"));
        Assert.AreEqual(Path.Combine(cache, "ResNet18Onnx", "ResNet18.onnx"), found.Model);
    }

    [TestMethod]
    public void ACorruptOrForeignFileIsAClearError()
    {
        var (model, prep) = ImageNetEncoder.Locate();
        var bytes = File.ReadAllBytes(model);

        var truncated = Path.Combine(_dir, "truncated", "DnnImageModels");
        CopyModels(model, prep, truncated);
        var truncatedModel = Path.Combine(truncated, "ResNet18Onnx", "ResNet18.onnx");
        File.WriteAllBytes(truncatedModel, bytes.AsSpan(0, bytes.Length / 2).ToArray());
        using var enc = NewImageNetEncoder();
        var e = Assert.ThrowsException<InvalidDataException>(() => ImageNetEncoder.LoadInto(enc, truncated));
        StringAssert.Contains(e.Message, truncatedModel);

        var garbage = Path.Combine(_dir, "garbage", "DnnImageModels");
        CopyModels(model, prep, garbage);
        var garbageModel = Path.Combine(garbage, "ResNet18Onnx", "ResNet18.onnx");
        File.WriteAllBytes(garbageModel, Enumerable.Range(0, 4096).Select(i => (byte)(i * 37 % 251)).ToArray());
        e = Assert.ThrowsException<InvalidDataException>(() => ImageNetEncoder.LoadInto(enc, garbage));
        StringAssert.Contains(e.Message, garbageModel);

        // A real ONNX model that is not the ResNet: the preprocessing model in the network's place.
        var foreign = Path.Combine(_dir, "foreign", "DnnImageModels");
        CopyModels(prep, prep, foreign);
        e = Assert.ThrowsException<InvalidDataException>(() => ImageNetEncoder.LoadInto(enc, foreign));
        StringAssert.Contains(e.Message, "ResNet18.onnx");

        // The right file, an encoder of another layout (torchvision's [2, 2, 2, 2]).
        using var tv = new ResNetEncoder(3, [64, 64, 128, 256, 512], [2, 2, 2, 2], inputNormalization: true);
        e = Assert.ThrowsException<InvalidDataException>(() => ImageNetEncoder.LoadInto(tv));
        StringAssert.Contains(e.Message, "layer4 has 2 blocks");
        StringAssert.Contains(e.Message, model);
    }

    private static void CopyModels(string model, string prep, string dnnImageModels)
    {
        Directory.CreateDirectory(Path.Combine(dnnImageModels, "ResNet18Onnx"));
        Directory.CreateDirectory(Path.Combine(dnnImageModels, "ResNetPrepOnnx"));
        File.Copy(model, Path.Combine(dnnImageModels, "ResNet18Onnx", "ResNet18.onnx"));
        File.Copy(prep, Path.Combine(dnnImageModels, "ResNetPrepOnnx", "ResNetPreprocess.onnx"));
    }

    /// <summary>
    /// An ImageNet-initialised U-Net trained for an epoch through ML.NET, saved with ml.Model.Save and loaded with
    /// ml.Model.Load: the loaded encoder holds the fine-tuned weights (not the package's, which training changed) and the
    /// input normalisation, and predicts bit-identically.
    /// </summary>
    [TestMethod]
    public void ImageNetWeightsSurviveModelSaveAndLoad()
    {
        const int size = 32;
        var data = MLNetPipelineTests.WriteDiscs(Path.Combine(_dir, "train"), 12, 3, size: size);
        var ml = new MLContext(seed: 1);
        var pairs = ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(data, "images"), Path.Combine(data, "masks"));
        var options = new SegmentationTrainerOptions
        {
            Network = new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.UNet, EncoderName = "resnet18", EncoderWeights = EncoderWeights.ImageNet },
            Epochs = 1, BatchSize = 6, LearningRate = 1e-3,
        };
        var model = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", size, size))
            .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", size, size))
            .Append(ml.MedSeg().Trainers.Segmentation(options))
            .Fit(pairs);
        var path = Path.Combine(_dir, "model.zip");
        ml.Model.Save(model, pairs.Schema, path);

        var loaded = (TransformerChain<ITransformer>)new MLContext(seed: 2).Model.Load(path, out _);
        var seg = (SegmentationTransformer)loaded.LastTransformer;
        Assert.AreEqual(EncoderWeights.ImageNet, seg.Options.Network.EncoderWeights);
        var trained = model.LastTransformer.Network.Encoder.state_dict();
        var restored = seg.Network.Encoder.state_dict();
        CollectionAssert.AreEqual(trained.Keys.ToList(), restored.Keys.ToList());
        foreach (var (k, v) in trained) Assert.IsTrue(v.IsEqual(restored[k]), $"{k} restored");
        using (var fresh = NewImageNetEncoder())
        {
            ImageNetEncoder.LoadInto(fresh);
            var pristine = fresh.state_dict();
            Assert.IsFalse(pristine["conv1.weight"].IsEqual(restored["conv1.weight"]), "the loaded conv1 is the fine-tuned one");
            Assert.IsTrue(pristine["normalize.mean"].IsEqual(restored["normalize.mean"]), "the input normalisation is kept");
        }
        var p1 = model.Transform(pairs).GetColumn<float[]>("Probability").ToArray();
        var p2 = loaded.Transform(pairs).GetColumn<float[]>("Probability").ToArray();
        for (int r = 0; r < p1.Length; r++) CollectionAssert.AreEqual(p1[r], p2[r], $"row {r}");
    }

    /// <summary>
    /// An ImageNet-initialised U-Net (full ResNet-18 encoder) learns 32×32 synthetic discs in 24 Adam steps: held-out
    /// Dice above 0.7 (all-foreground scores below 0.45).
    /// </summary>
    [TestMethod]
    public void AnImageNetUNetLearnsDiscs()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(7);
        using var net = SegmentationNetworks.Create(new SegmentationNetworkOptions
        {
            Architecture = SegmentationArchitecture.UNet, EncoderName = "resnet18", EncoderWeights = EncoderWeights.ImageNet,
        }, g);
        var (x, y) = NetworkTestUtil.Discs(32, 32, seed: 1);
        var (xt, yt) = NetworkTestUtil.Discs(16, 32, seed: 2);
        using var opt = optim.Adam(net.parameters(), lr: 1e-3);
        var sw = Stopwatch.StartNew();
        double firstLoss = 0, lastLoss = 0;
        for (int step = 0; step < 24; step++)
        {
            using var s = NewDisposeScope();
            long start = step % 4 * 8;
            opt.zero_grad();
            var loss = NetworkTestUtil.Loss(net.call(x.narrow(0, start, 8)), y.narrow(0, start, 8));
            loss.backward();
            opt.step();
            lastLoss = loss.ToSingle();
            if (step == 0) firstLoss = lastLoss;
        }
        net.eval();
        double dice, allForeground;
        using (no_grad())
        {
            dice = NetworkTestUtil.MeanDice(net.call(xt), yt);
            allForeground = NetworkTestUtil.MeanDice(full([16, 1, 32, 32], S(10f), ScalarType.Float32), yt);
        }
        TestContext.WriteLine($"ImageNet U-Net: loss {firstLoss:F3} -> {lastLoss:F3}, held-out Dice {dice:F3} (all-foreground {allForeground:F3}), {sw.ElapsedMilliseconds} ms");
        Assert.IsTrue(lastLoss < firstLoss, $"loss did not decrease ({firstLoss} -> {lastLoss})");
        Assert.IsTrue(allForeground < 0.45, $"baseline check: all-foreground Dice {allForeground}");
        Assert.IsTrue(dice > 0.7, $"held-out Dice {dice:F3} ≤ 0.7");
    }
}
