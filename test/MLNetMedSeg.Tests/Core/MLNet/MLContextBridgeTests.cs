using Microsoft.ML;
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
        if (torch.cuda.is_available()) Assert.Inconclusive("this machine has CUDA: the CUDA tests cover it");
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
