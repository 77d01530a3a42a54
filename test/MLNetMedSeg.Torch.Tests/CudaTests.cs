using static MLNetMedSeg.Torch.torch;

namespace MLNetMedSeg.Torch.Tests;

/// <summary>
/// The binding on the accelerator: cuda:0 where the shim is built against a CUDA libtorch and sees a GPU
/// (MEDSEG_TORCH_DIR, or build/gpu/device.sh on a lent GPU machine), else the CPU. The same contract is checked on
/// whichever device there is; where CUDA is missing, asking for it must be a clear error.
/// </summary>
[TestClass]
[TestCategory("Cuda")]
public sealed class CudaTests
{
    private static readonly Device Gpu = new(DeviceType.CUDA, 0);

    /// <summary>The device under test: the GPU where there is one, else the CPU.</summary>
    private static Device Target => cuda.is_available() ? Gpu : CPU;

    /// <summary>Bytes held by live tensors on <see cref="Target"/> (the CUDA allocator's count, or the binding's live-tensor count on the CPU).</summary>
    private static long LiveOnTarget() => Target.type == DeviceType.CUDA ? cuda.memory_allocated() : LiveTensorCount;

    private static double RelativeError(Tensor actual, Tensor expected)
    {
        using var scope = NewDisposeScope();
        var a = actual.cpu().to(ScalarType.Float64);
        var e = expected.cpu().to(ScalarType.Float64);
        return ((a - e).norm().item<double>()) / Math.Max(e.norm().item<double>(), 1e-30);
    }

    [TestMethod]
    public void VersionSaysCuda_AndDevicesAreCounted()
    {
        Assert.AreEqual(cuda.is_available(), cuda.device_count() >= 1, "is_available and device_count disagree");
        if (cuda.is_available()) StringAssert.EndsWith(torch.__version__, "+cuda");
        Console.WriteLine($"libtorch {torch.__version__}, {cuda.device_count()} CUDA device(s)");
    }

    [TestMethod]
    public void RoundTrip_ValuesSurviveHostToDeviceToHost()
    {
        using var scope = NewDisposeScope();
        var data = Enumerable.Range(0, 24).Select(i => (float)(i * 0.5 - 3)).ToArray();
        var x = tensor(data, [2, 3, 4]);
        var g = x.to(Target);
        Assert.AreEqual(Target.type == DeviceType.CUDA, g.is_cuda);
        Assert.AreEqual(Target.ToString(), g.device.ToString());
        CollectionAssert.AreEqual(data, g.cpu().ToArray<float>());
        var created = zeros([3], device: Target);
        Assert.AreEqual(Target.ToString(), created.device.ToString());
    }

    [TestMethod]
    public void ConvolutionForwardAndBackward_MatchCpu()
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(11);
        var x = randn([4, 3, 16, 16], generator: gen);
        var w = randn([8, 3, 3, 3], generator: gen) * 0.2;
        var b = randn([8], generator: gen);
        (Tensor y, Tensor gx, Tensor gw) Run(Device d)
        {
            var xd = x.to(d).detach().requires_grad_(true);
            var wd = w.to(d).detach().requires_grad_(true);
            var y = nn.functional.conv2d(xd, wd, b.to(d), padding: [1, 1]);
            var gn = nn.functional.group_norm(y, 4);
            (gn.square().mean() + y.sigmoid().sum()).backward();
            return (y, xd.grad!, wd.grad!);
        }
        var cpu = Run(CPU);
        var gpu = Run(Target);
        // cuDNN may use TF32 for convolutions on Ampere and later: a relative error near 1e-3 is the expected scale.
        Assert.IsTrue(RelativeError(gpu.y, cpu.y) < 5e-3, $"forward {RelativeError(gpu.y, cpu.y):E2}");
        Assert.IsTrue(RelativeError(gpu.gx, cpu.gx) < 5e-3, $"grad x {RelativeError(gpu.gx, cpu.gx):E2}");
        Assert.IsTrue(RelativeError(gpu.gw, cpu.gw) < 5e-3, $"grad w {RelativeError(gpu.gw, cpu.gw):E2}");
    }

    [TestMethod]
    public void MixingDevices_IsATorchExceptionNamingTheDevices()
    {
        using var scope = NewDisposeScope();
        if (!cuda.is_available())
        {
            // No second device to mix with: asking for one is the clear error a CPU build must give.
            var missing = Assert.ThrowsException<InvalidOperationException>(() => ones([3], device: Gpu));
            StringAssert.Contains(missing.Message, "CUDA");
            return;
        }
        var a = ones([3]);
        var b = ones([3], device: Gpu);
        var e = Assert.ThrowsException<TorchException>(() => (a + b).item<float>());
        StringAssert.Contains(e.Message, "cuda");
        Console.WriteLine(e.Message);
    }

    [TestMethod]
    public void HugeAllocation_IsAnOutOfMemoryException_AndTheProcessGoesOn()
    {
        // 2^46 floats = 256 TiB: more than any GPU has, and beyond a 47-bit address space on the CPU.
        var e = Assert.ThrowsException<TorchOutOfMemoryException>(() => empty([1L << 46], device: Target));
        StringAssert.Contains(e.Message.ToLowerInvariant(), "memory");
        using var t = ones([4], device: Target);
        using var sum = t.sum();
        Assert.AreEqual(4f, sum.item<float>());
    }

    [TestMethod]
    public void SeededGenerator_ReproducesDeviceRandomNumbers()
    {
        using var scope = NewDisposeScope();
        float[] Draw(ulong seed)
        {
            using var g = new Generator(seed, Target);
            return randn([64], device: Target, generator: g).cpu().ToArray<float>();
        }
        CollectionAssert.AreEqual(Draw(7), Draw(7));
        CollectionAssert.AreNotEqual(Draw(7), Draw(8));
    }

    [TestMethod]
    public void TrainingOnTheGpu_LearnsAndMatchesTheCpuRun()
    {
        double[] Train(Device d)
        {
            using var scope = NewDisposeScope();
            using var g = new Generator(3);
            nn.Sequential net;
            using (nn.init.UseGenerator(g))
                net = new nn.Sequential(nn.Conv2d(1, 8, 3, padding: 1), nn.ReLU(), nn.Conv2d(8, 1, 1));
            using var _ = net;
            net.to(d);
            using var opt = optim.Adam(net.parameters(), lr: 1e-2);
            var (x0, y0) = ToyData.Discs(8, 16, seed: 5);
            var x = x0.to(d);
            var y = y0.to(d);
            var losses = new double[60];
            for (int step = 0; step < losses.Length; step++)
            {
                using var stepScope = NewDisposeScope();
                opt.zero_grad();
                var loss = nn.functional.binary_cross_entropy_with_logits(net.call(x), y);
                loss.backward();
                opt.step();
                losses[step] = loss.item<double>();
            }
            // Adam takes PyTorch's default path for the device: multi-tensor kernels on the GPU, per tensor on the CPU.
            Assert.AreEqual(d.type == DeviceType.CUDA, opt.UsedMultiTensorKernels, $"Adam's path on {d}");
            return losses;
        }
        var cpu = Train(CPU);
        var gpu = Train(Target);
        Assert.IsTrue(gpu[^1] < gpu[0] / 2, $"{Target} loss fell from {gpu[0]:F4} to {gpu[^1]:F4} only");
        Assert.IsTrue(Math.Abs(gpu[^1] - cpu[^1]) < 0.02 * cpu[0], $"final loss CPU {cpu[^1]:F5}, GPU {gpu[^1]:F5}");
    }

    [TestMethod]
    public void DisposedTensors_ReturnDeviceMemory_AcrossATrainingLoop()
    {
        using var net = new nn.Sequential(nn.Conv2d(3, 16, 3, padding: 1), nn.ReLU(), nn.Conv2d(16, 1, 1));
        net.to(Target);
        using var opt = optim.Adam(net.parameters(), lr: 1e-3);
        using var x = randn([8, 3, 32, 32], device: Target);
        void Step()
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            net.call(x).square().mean().backward();
            opt.step();
        }
        Step(); // the optimiser's state and the gradients exist from here on
        if (cuda.is_available()) cuda.synchronize();
        long baseline = LiveOnTarget();
        for (int i = 0; i < 50; i++) Step();
        if (cuda.is_available()) cuda.synchronize();
        long after = LiveOnTarget();
        Assert.AreEqual(baseline, after, $"live memory on {Target} grew from {baseline} to {after} bytes over 50 steps");
    }

    [TestMethod]
    public void EmptyCacheAndSynchronize_AreSafe()
    {
        long before = cuda.memory_allocated();
        using (var t = randn([1024, 1024], device: Target)) { }
        cuda.empty_cache(); // a no-op without CUDA, never an error
        Assert.AreEqual(before, cuda.memory_allocated(), "a disposed tensor still holds device memory");
        if (cuda.is_available()) cuda.synchronize(0);
        else
        {
            Exception? e = null;
            try { cuda.synchronize(0); } catch (TorchException ex) { e = ex; }
            Assert.IsNotNull(e, "synchronize without CUDA must say so");
            StringAssert.Contains(e.Message, "CUDA");
        }
    }

    [TestMethod]
    public void CudnnSwitches_RoundTrip()
    {
        bool before = backends.cudnn.deterministic;
        try
        {
            backends.cudnn.deterministic = true;
            Assert.IsTrue(backends.cudnn.deterministic);
            backends.cudnn.deterministic = false;
            Assert.IsFalse(backends.cudnn.deterministic);
        }
        finally { backends.cudnn.deterministic = before; }
    }
}
