using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// <see cref="SeededRandom"/>: seeded draws land on any device with the numbers a CPU draw gives. TorchSharp's
/// generators are CPU generators in libtorch whatever device they are created with, and libtorch refuses them for CUDA
/// tensors; on the H200 (2026-12-04) medseg generate, dasp and deform-attack failed with "Expected a 'cuda' device type
/// for generator but found 'cpu'" before every seeded draw went through these helpers.
/// </summary>
[TestClass]
public sealed class SeededRandomTests
{
    /// <summary>The device under test: the GPU where there is one, else the CPU.</summary>
    private static Device Gpu => cuda.is_available() ? new Device(DeviceType.CUDA, 0) : CPU;

    [TestMethod]
    public void DrawsAreTorchsOwnDrawsFromTheSameSeed()
    {
        using var scope = NewDisposeScope();
        using (var a = new Generator(11))
        using (var b = new Generator(11))
        {
            Assert.IsTrue(SeededRandom.Rand([2, 3], ScalarType.Float32, CPU, a).IsEqual(rand([2, 3], ScalarType.Float32, CPU, generator: b)));
            Assert.IsTrue(SeededRandom.Randn([4], ScalarType.Float64, CPU, a).IsEqual(randn([4], ScalarType.Float64, CPU, generator: b)));
            Assert.IsTrue(SeededRandom.Randint(3, 9, [5], CPU, a).IsEqual(randint(3, 9, [5], ScalarType.Int64, CPU, generator: b)));
            Assert.IsTrue(SeededRandom.Randperm(7, CPU, a).IsEqual(randperm(7, ScalarType.Int64, CPU, generator: b)));
        }
        var r = SeededRandom.Randint(3, 9, [1000], CPU, null);
        Assert.AreEqual(ScalarType.Int64, r.dtype);
        Assert.IsTrue(r.min().item<long>() >= 3 && r.max().item<long>() < 9);
    }

    [TestMethod]
    public void AGeneratorMadeForCudaDrawsWhatACpuGeneratorDraws()
    {
        // TorchSharp's Generator(seed, device) makes a CPU generator and only labels it with the device.
        using var scope = NewDisposeScope();
        using var labelled = new Generator(5, new Device(DeviceType.CUDA, 0));
        using var cpu = new Generator(5);
        Assert.AreEqual(DeviceType.CUDA, labelled.device.type);
        var x = SeededRandom.Randn([3, 4], ScalarType.Float32, CPU, labelled);
        var y = SeededRandom.Randn([3, 4], ScalarType.Float32, CPU, cpu);
        Assert.IsTrue(x.IsEqual(y));
    }

    [TestMethod]
    [TestCategory("Cuda")]
    public void DrawsOnTheAcceleratorEqualTheCpuDraws()
    {
        using var scope = NewDisposeScope();
        using var a = new Generator(21, Gpu);
        using var b = new Generator(21);
        var onGpu = SeededRandom.Randn([2, 1, 8, 8], ScalarType.Float32, Gpu, a);
        Assert.AreEqual(Gpu.type, onGpu.device_type);
        Assert.IsTrue(onGpu.cpu().IsEqual(SeededRandom.Randn([2, 1, 8, 8], ScalarType.Float32, CPU, b)));
        Assert.IsTrue(SameBits(SeededRandom.Randint(0, 1000, [6], Gpu, a), SeededRandom.Randint(0, 1000, [6], CPU, b)));
    }

    [TestMethod]
    public void TheLibraryDrawsOnlyThroughSeededRandom()
    {
        // CI has no GPU: this is what keeps a direct torch.rand(…, generator: g) on a CUDA tensor from coming back.
        var sites = ScalarConversionScanner.ScanSeededDraws(typeof(SeededRandom).Assembly.Location);
        Assert.AreEqual(0, sites.Count, "seeded draws outside Core.SeededRandom (they fail on CUDA tensors):" + Environment.NewLine + ScalarConversionScanner.Describe(sites));
    }

    [TestMethod]
    public void TheScanFindsADirectSeededDraw()
    {
        var sites = ScalarConversionScanner.ScanSeededDraws(typeof(SeededRandomTests).Assembly.Location);
        var mine = sites.Where(s => s.Method.EndsWith("SeededRandomTests::DirectDraw", StringComparison.Ordinal)).ToList();
        Assert.AreEqual(2, mine.Count, ScalarConversionScanner.Describe(sites));
        Assert.IsTrue(mine.Any(s => s.Callee.Contains("::randn(", StringComparison.Ordinal)) && mine.Any(s => s.Callee.Contains("::randint(", StringComparison.Ordinal)), ScalarConversionScanner.Describe(mine));
    }

    /// <summary>What the library must not do (scanned, never run): draw with a generator straight onto a device.</summary>
    private static Tensor DirectDraw(Generator g, Device device) =>
        randn([2], ScalarType.Float32, device, generator: g) + randint(0, 3, [2], ScalarType.Int64, device, generator: g);

    private static bool SameBits(Tensor a, Tensor b) => a.cpu().IsEqual(b.cpu());
}
