using static MLNetMedSeg.Torch.torch;

namespace MLNetMedSeg.Torch.Tests;

/// <summary>
/// The binding on a GPU: the shim built against a CUDA libtorch (MEDSEG_TORCH_DIR, or build/gpu/device.sh on a lent GPU
/// machine). Every test is inconclusive where no CUDA device is available (CI, a CPU-only build), never passed vacuously.
/// </summary>
[TestClass]
[TestCategory("Cuda")]
public sealed class CudaTests
{
    private static readonly Device Gpu = new(DeviceType.CUDA, 0);

    [TestInitialize]
    public void RequireCuda()
    {
        if (!cuda.is_available()) Assert.Inconclusive("no CUDA device in this build or on this machine");
    }

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
        StringAssert.EndsWith(torch.__version__, "+cuda");
        Assert.IsTrue(cuda.device_count() >= 1);
        Console.WriteLine($"libtorch {torch.__version__}, {cuda.device_count()} CUDA device(s)");
    }

    [TestMethod]
    public void RoundTrip_ValuesSurviveHostToDeviceToHost()
    {
        using var scope = NewDisposeScope();
        var data = Enumerable.Range(0, 24).Select(i => (float)(i * 0.5 - 3)).ToArray();
        var x = tensor(data, [2, 3, 4]);
        var g = x.cuda();
        Assert.IsTrue(g.is_cuda);
        Assert.AreEqual("cuda:0", g.device.ToString());
        CollectionAssert.AreEqual(data, g.cpu().ToArray<float>());
        var created = zeros([3], device: Gpu);
        Assert.IsTrue(created.is_cuda);
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
        var gpu = Run(Gpu);
        // cuDNN may use TF32 for convolutions on Ampere and later: a relative error near 1e-3 is the expected scale.
        Assert.IsTrue(RelativeError(gpu.y, cpu.y) < 5e-3, $"forward {RelativeError(gpu.y, cpu.y):E2}");
        Assert.IsTrue(RelativeError(gpu.gx, cpu.gx) < 5e-3, $"grad x {RelativeError(gpu.gx, cpu.gx):E2}");
        Assert.IsTrue(RelativeError(gpu.gw, cpu.gw) < 5e-3, $"grad w {RelativeError(gpu.gw, cpu.gw):E2}");
    }

    [TestMethod]
    public void MixingDevices_IsATorchExceptionNamingTheDevices()
    {
        using var scope = NewDisposeScope();
        var a = ones([3]);
        var b = ones([3], device: Gpu);
        var e = Assert.ThrowsException<TorchException>(() => (a + b).item<float>());
        StringAssert.Contains(e.Message, "cuda");
        Console.WriteLine(e.Message);
    }

    [TestMethod]
    public void HugeAllocation_IsAnOutOfMemoryException_AndTheProcessGoesOn()
    {
        // 2^40 floats = 4 TiB: more than any GPU has.
        var e = Assert.ThrowsException<TorchOutOfMemoryException>(() => empty([1L << 40], device: Gpu));
        StringAssert.Contains(e.Message.ToLowerInvariant(), "out of memory");
        using var t = ones([4], device: Gpu);
        using var sum = t.sum();
        Assert.AreEqual(4f, sum.item<float>());
    }

    [TestMethod]
    public void SeededGenerator_ReproducesDeviceRandomNumbers()
    {
        using var scope = NewDisposeScope();
        float[] Draw(ulong seed)
        {
            using var g = new Generator(seed, Gpu);
            return randn([64], device: Gpu, generator: g).cpu().ToArray<float>();
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
            return losses;
        }
        var cpu = Train(CPU);
        var gpu = Train(Gpu);
        Assert.IsTrue(gpu[^1] < gpu[0] / 2, $"GPU loss fell from {gpu[0]:F4} to {gpu[^1]:F4} only");
        Assert.IsTrue(Math.Abs(gpu[^1] - cpu[^1]) < 0.02 * cpu[0], $"final loss CPU {cpu[^1]:F5}, GPU {gpu[^1]:F5}");
    }

    [TestMethod]
    public void DisposedTensors_ReturnDeviceMemory_AcrossATrainingLoop()
    {
        using var net = new nn.Sequential(nn.Conv2d(3, 16, 3, padding: 1), nn.ReLU(), nn.Conv2d(16, 1, 1));
        net.to(Gpu);
        using var opt = optim.Adam(net.parameters(), lr: 1e-3);
        using var x = randn([8, 3, 32, 32], device: Gpu);
        void Step()
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            net.call(x).square().mean().backward();
            opt.step();
        }
        Step(); // the optimiser's state and the gradients exist from here on
        cuda.synchronize();
        long baseline = cuda.memory_allocated();
        for (int i = 0; i < 50; i++) Step();
        cuda.synchronize();
        long after = cuda.memory_allocated();
        Assert.AreEqual(baseline, after, $"device memory grew from {baseline} to {after} bytes over 50 steps");
    }

    [TestMethod]
    public void EmptyCacheAndSynchronize_AreSafe()
    {
        using (var t = randn([1024, 1024], device: Gpu)) { }
        cuda.synchronize();
        cuda.empty_cache();
        cuda.synchronize(0);
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
