using static MLNetMedSeg.Torch.torch;

namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class ModesAndErrorsTests
{
    [TestMethod]
    public void CpuAutocastRunsConvolutionsInBFloat16AndRestoresTheState()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(1);
        var x = rand([1, 2, 8, 8], generator: g);
        var w = rand([3, 2, 3, 3], generator: g);
        Assert.IsFalse(is_autocast_enabled(DeviceType.CPU));
        Tensor inside;
        using (autocast(DeviceType.CPU, bfloat16))
        {
            Assert.IsTrue(is_autocast_enabled(DeviceType.CPU));
            inside = nn.functional.conv2d(x, w);
            using (autocast(DeviceType.CPU, bfloat16, enabled: false))
            {
                Assert.IsFalse(is_autocast_enabled(DeviceType.CPU));
                Assert.AreEqual(ScalarType.Float32, nn.functional.conv2d(x, w).dtype);
            }
            Assert.IsTrue(is_autocast_enabled(DeviceType.CPU), "the inner scope restores the outer state");
        }
        Assert.IsFalse(is_autocast_enabled(DeviceType.CPU));
        Assert.AreEqual(ScalarType.BFloat16, inside.dtype);
        var outside = nn.functional.conv2d(x, w);
        Assert.AreEqual(ScalarType.Float32, outside.dtype);
        // same values to bf16 precision (8 bits of mantissa)
        var diff = (inside.to(ScalarType.Float32) - outside).abs().max().item<float>();
        Assert.IsTrue(diff < 0.05f, $"bf16 conv differs by {diff}");
    }

    [TestMethod]
    public void AutocastTrainingStepKeepsFloat32ParametersAndGradients()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(2);
        nn.Sequential net;
        using (nn.init.UseGenerator(g)) net = new nn.Sequential(nn.Conv2d(1, 4, 3, padding: 1), nn.ReLU(), nn.Conv2d(4, 1, 1));
        using var _ = net;
        var x = rand([2, 1, 8, 8], generator: g);
        var y = (rand([2, 1, 8, 8], generator: g) > 0.5).to(float32);
        Tensor logits;
        using (autocast(DeviceType.CPU, bfloat16)) logits = net.call(x);
        Assert.AreEqual(ScalarType.BFloat16, logits.dtype);
        nn.functional.binary_cross_entropy_with_logits(logits.to(float32), y).backward();
        foreach (var p in net.parameters())
        {
            Assert.AreEqual(ScalarType.Float32, p.dtype);
            Assert.AreEqual(ScalarType.Float32, p.grad!.dtype);
        }
    }

    [TestMethod]
    public void AutocastRejectsUnsupportedDtypes()
    {
        var ex = Assert.ThrowsException<TorchValueException>(() => autocast(DeviceType.CPU, float16));
        StringAssert.Contains(ex.Message, "bfloat16");
        Assert.IsFalse(is_autocast_enabled(DeviceType.CPU), "a refused autocast leaves the state alone");
    }

    [TestMethod]
    public void HugeAllocationIsAnOutOfMemoryExceptionAndTheProcessLivesOn()
    {
        // 2^46 floats = 256 TiB: beyond a 47-bit user address space, so it fails even where memory is overcommitted
        // (2^42 floats were once used here: a 128 GiB machine with overcommit gave them out lazily).
        var ex = Assert.ThrowsException<TorchOutOfMemoryException>(() => empty([1L << 46]));
        Assert.AreEqual(TorchErrorKind.OutOfMemory, ex.Kind);
        StringAssert.Contains(ex.Message, "memory");
        using var t = ones(3);
        using var sum = t.sum();
        Assert.AreEqual(3.0, sum.item<double>());
    }

    [TestMethod]
    public void CudaOnACpuBuildIsAClearError()
    {
        if (cuda.is_available()) return; // what a machine without CUDA must say; on a CUDA build the request is valid
        var ex = Assert.ThrowsException<InvalidOperationException>(() => zeros([2], device: CUDA));
        StringAssert.Contains(ex.Message, "CUDA is not available");
        StringAssert.Contains(ex.Message, "MEDSEG_TORCH_DIR");
        Assert.ThrowsException<InvalidOperationException>(() => new Generator(1, device("cuda:0")));
        cuda.empty_cache(); // a no-op without CUDA, never an error
    }

    [TestMethod]
    public void InferenceModeTensorsCannotJoinAutograd()
    {
        Tensor t;
        using (inference_mode()) t = ones(2);
        using (t)
        {
            Assert.IsTrue(t.is_inference());
            var ex = Assert.ThrowsException<TorchException>(() => t.requires_grad_());
            StringAssert.Contains(ex.Message, "nference");
        }
    }
}
