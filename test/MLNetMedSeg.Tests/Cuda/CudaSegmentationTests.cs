using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Tests.TestData;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Cuda;

/// <summary>
/// The segmentation trainer on the accelerator (cuda:0 where the application's TorchSharp backend is a CUDA build and sees a GPU;
/// else the CPU): it learns, a seed reproduces the run bit for bit, and a
/// model fitted there loads and predicts on a CPU context.
/// </summary>
[TestClass]
[TestCategory("Cuda")]
public sealed class CudaSegmentationTests
{
    private const int Size = 32;
    /// <summary>The device under test: the GPU where there is one, else the CPU.</summary>
    private static Device Gpu => cuda.is_available() ? new Device(DeviceType.CUDA, 0) : CPU;

    private static InMemoryDataView Discs(int n, int seed)
    {
        var (images, masks) = SyntheticDiscs.Generate(new DiscStyle(Size, 5, 4, [0.9, 0.4, 0.2], [0.2, 0.4, 0.9], 0.3), n, seed);
        return InMemoryDataView.Create(
            ("Image", TensorColumnType.Image(3, Size, Size), images),
            ("Mask", TensorColumnType.BinaryMask(Size, Size), masks));
    }

    private static SegmentationTrainerOptions Options(int epochs) => new()
    {
        Network = new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.UNet, EncoderDepth = 3, EncoderWidths = [8, 16, 32] },
        Epochs = epochs, BatchSize = 8, LearningRate = 1e-2,
        Loss = new SegmentationLossOptions { Kind = SegmentationLossKind.DiceBce },
    };

    private static Dictionary<string, float[]> Weights(SegmentationTransformer model) =>
        model.Network.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.to(ScalarType.Float32).cpu().contiguous().ToArray<float>());

    [TestMethod]
    public void LearnsDiscsOnTheGpu_HeldOutDiceFarAboveAllBackground()
    {
        var ctx = new MedSegContext(seed: 3, device: Gpu);
        using var train = Discs(48, 3);
        using var test = Discs(16, 33);
        using var model = new SegmentationTrainer(ctx, Options(8)).Fit(train);
        Assert.IsTrue(model.Network.parameters().All(p => p.device.ToString() == Gpu.ToString()), $"the network's weights are not on {Gpu}");
        var res = DataViewEvaluation.EvaluateBinary(ctx, model.Transform(test));
        Console.WriteLine($"{Gpu} held-out mDice {res.MeanDice:F4}");
        Assert.IsTrue(res.MeanDice > 0.8, $"held-out mDice {res.MeanDice:F3}");
        Assert.IsTrue(model.History[^1].TrainLoss < model.History[0].TrainLoss, "the training loss did not fall");
    }

    [TestMethod]
    public void SameSeedSameGpu_SameWeights()
    {
        Dictionary<string, float[]> Run()
        {
            var ctx = new MedSegContext(seed: 9, device: Gpu);
            using var data = Discs(16, 9);
            using var m = new SegmentationTrainer(ctx, Options(2)).Fit(data);
            return Weights(m);
        }
        var a = Run();
        var b = Run();
        foreach (var (k, v) in a) CollectionAssert.AreEqual(v, b[k], $"weight {k} differs between two seeded GPU runs");
    }

    [TestMethod]
    public void FittedOnGpu_SavedAndLoadedOnCpu_PredictsTheSame()
    {
        string folder = Path.Combine(Path.GetTempPath(), "medseg-cuda-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            var gpuCtx = new MedSegContext(seed: 13, device: Gpu);
            using var data = Discs(8, 13);
            using var model = new SegmentationTrainer(gpuCtx, Options(2)).Fit(data);
            string file = Path.Combine(folder, "model.zip");
            TestModels.Save(model, file);

            var cpuCtx = new MedSegContext(seed: 13);
            var loaded = TestModels.Load(file);
            try
            {
                var seg = loaded as SegmentationTransformer ?? throw new AssertFailedException($"loaded a {loaded.GetType().Name}");
                Assert.IsTrue(seg.Network.parameters().All(p => !p.is_cuda), "a CPU context loaded the weights onto the GPU");
                using var scope = NewDisposeScope();
                var x = rand([3, 3, Size, Size], generator: new Generator(3));
                var onGpu = model.PredictProbabilities(x.to(Gpu)).cpu();
                var onCpu = seg.PredictProbabilities(x);
                double maxDiff = (onGpu - onCpu).abs().max().ToDouble();
                Assert.IsTrue(maxDiff < 1e-3, $"probabilities differ by up to {maxDiff:E2} between GPU and CPU");
            }
            finally { (loaded as IDisposable)?.Dispose(); }
        }
        finally { Directory.Delete(folder, true); }
    }
}
