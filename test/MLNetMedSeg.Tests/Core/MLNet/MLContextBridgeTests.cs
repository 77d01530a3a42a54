using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Core;
using MLNetMedSeg.Core.MLNet;
using TorchSharp;

namespace MLNetMedSeg.Tests.Core.MLNet;

[TestClass]
public sealed class MLContextBridgeTests
{
    [TestMethod]
    public void StageSeeds_DependOnContextSeedAndStageName_Only()
    {
        var a = MLContextBridge.ContextFor(new MLContext(seed: 3), "Segmentation");
        var b = MLContextBridge.ContextFor(new MLContext(seed: 3), "Segmentation");
        var c = MLContextBridge.ContextFor(new MLContext(seed: 3), "MaskDiffusion");
        var d = MLContextBridge.ContextFor(new MLContext(seed: 4), "Segmentation");
        Assert.AreEqual(a.Seed, b.Seed);
        Assert.AreNotEqual(a.Seed, c.Seed);
        Assert.AreNotEqual(a.Seed, d.Seed);
    }

    [TestMethod]
    public void SchemaChecks_DoNotShiftTheTrainersSeed()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.MedSeg().Data.LoadImageMaskPairs(TestFolders.Images, TestFolders.Masks);
        IEstimator<ITransformer> Pipeline() => ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", 16, 16))
            .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", 16, 16))
            .Append(ml.MedSeg().Trainers.Segmentation(MLNetPipelineTests.TinyOptions(1)));
        var plain = Pipeline();
        var checkedTwice = Pipeline();
        // SchemaShape.Create is internal in ML.NET 6: EstimatorChain.Fit calls it; here through reflection.
        var create = typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic, [typeof(DataViewSchema)])!;
        var shape = (SchemaShape)create.Invoke(null, [data.Schema])!;
        checkedTwice.GetOutputSchema(shape);
        checkedTwice.GetOutputSchema(shape);
        var w1 = Weights(plain.Fit(data));
        var w2 = Weights(checkedTwice.Fit(data));
        CollectionAssert.AreEqual(w1, w2, "same MLContext seed and stage → same model, however often the schema was checked");
    }

    private static float[] Weights(ITransformer model)
    {
        var seg = ((IEnumerable<ITransformer>)model).OfType<MLNetMedSeg.Segmentation.SegmentationTransformer>().Single();
        return seg.Network.parameters().SelectMany(p => p.to(ScalarType.Float32).cpu().contiguous().ToArray<float>()).ToArray();
    }

    [TestMethod]
    public void GpuDeviceId_WithoutCuda_FallsBackOrSaysHowToGetCuda()
    {
        if (torch.cuda.is_available())
        {
            // A GPU machine: the setting selects CUDA device 0, and a device id beyond the GPUs falls back or fails.
            Assert.AreEqual(DeviceType.CUDA, MLContextBridge.DeviceFor(new MLContext(seed: 1) { GpuDeviceId = 0 }).type);
            int beyond = torch.cuda.device_count();
            Assert.AreEqual(DeviceType.CPU, MLContextBridge.DeviceFor(new MLContext(seed: 1) { GpuDeviceId = beyond, FallbackToCpu = true }).type);
            Assert.ThrowsException<InvalidOperationException>(() => MLContextBridge.DeviceFor(new MLContext(seed: 1) { GpuDeviceId = beyond, FallbackToCpu = false }));
            return;
        }
        var ml = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) lock (warnings) warnings.Add(e.Message); };
        Assert.AreEqual(DeviceType.CPU, MLContextBridge.DeviceFor(ml).type);
        Assert.IsTrue(warnings.Any(w => w.Contains("GpuDeviceId", StringComparison.Ordinal)), string.Join(" | ", warnings));

        var strict = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = false };
        var e = Assert.ThrowsException<InvalidOperationException>(() => MLContextBridge.DeviceFor(strict));
        StringAssert.Contains(e.Message, "TorchSharp-cuda");
    }
}

/// <summary>A small PNG pair folder shared by tests that need files on disk (written once per test run).</summary>
internal static class TestFolders
{
    private static readonly Lazy<string> Root = new(() =>
    {
        string r = Path.Combine(Path.GetTempPath(), "medseg-pairs-" + Environment.ProcessId);
        if (!Directory.Exists(Path.Combine(r, "masks"))) MLNetPipelineTests.WriteDiscs(r, 8, 7, size: 20);
        return r;
    });

    public static string Images => Path.Combine(Root.Value, "images");
    public static string Masks => Path.Combine(Root.Value, "masks");
}

[TestClass]
public sealed class TrainValidationTestSplitTests
{
    private static string[] Ids(IDataView v) => v.GetColumn<string>("Id").ToArray();

    [TestMethod]
    public void Split_IsSeeded_Disjoint_AndCoversEveryRow()
    {
        var ml = new MLContext(seed: 1);
        var rows = Enumerable.Range(0, 200).Select(i => new ImageMaskPathRow { Id = $"case{i:D3}", ImagePath = $"i{i}.png", MaskPath = $"m{i}.png" }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var a = ml.MedSeg().Data.TrainValidationTestSplit(data, seed: 5, samplingKeyColumnName: "Id");
        var b = ml.MedSeg().Data.TrainValidationTestSplit(data, seed: 5, samplingKeyColumnName: "Id");
        CollectionAssert.AreEqual(Ids(a.Test), Ids(b.Test));
        CollectionAssert.AreEqual(Ids(a.Validation), Ids(b.Validation));
        var all = Ids(a.Train).Concat(Ids(a.Validation)).Concat(Ids(a.Test)).ToList();
        Assert.AreEqual(200, all.Count);
        Assert.AreEqual(200, all.Distinct().Count(), "the parts are disjoint");
        Assert.IsTrue(Ids(a.Test).Length is > 8 and < 36, $"about 10% test: {Ids(a.Test).Length}");
        Assert.IsTrue(Ids(a.Validation).Length is > 8 and < 36, $"about 10% validation: {Ids(a.Validation).Length}");
        var c = ml.MedSeg().Data.TrainValidationTestSplit(data, seed: 6, samplingKeyColumnName: "Id");
        CollectionAssert.AreNotEqual(Ids(a.Test), Ids(c.Test), "another seed, another split");
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => ml.MedSeg().Data.TrainValidationTestSplit(data, validationFraction: 0.5, testFraction: 0.5));
    }
}
