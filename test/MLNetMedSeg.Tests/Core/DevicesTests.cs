namespace MLNetMedSeg.Tests.Core;

/// <summary><see cref="Devices"/>: device names and the availability check.</summary>
[TestClass]
public sealed class DevicesTests
{
    [TestMethod]
    public void ParsesCpuCudaAndCudaN()
    {
        Assert.AreEqual(DeviceType.CPU, Devices.Parse("cpu").type);
        Assert.AreEqual(DeviceType.CPU, Devices.Parse(" CPU ").type);
        var cuda = Devices.Parse("cuda");
        Assert.AreEqual(DeviceType.CUDA, cuda.type);
        Assert.AreEqual(0, cuda.index);
        var c1 = Devices.Parse("cuda:1");
        Assert.AreEqual(DeviceType.CUDA, c1.type);
        Assert.AreEqual(1, c1.index);
        Assert.AreEqual(12, Devices.Parse("CUDA:12").index);
        Assert.AreEqual("cpu", Devices.Name(Devices.Parse("cpu")));
        Assert.AreEqual("cuda:0", Devices.Name(Devices.Parse("cuda")));
        Assert.AreEqual("cuda:1", Devices.Name(c1));
    }

    [TestMethod]
    public void BadDeviceStringsAreArgumentErrorsNamingTheString()
    {
        foreach (var bad in new[] { "", "gpu", "cuda:", "cuda:-1", "cuda:+1", "cuda:x", "cuda:1.0", "cuda 1", "cpu:0", "cuda:99999999999", "mps", "cuda:0:1" })
        {
            var e = Assert.ThrowsException<ArgumentException>(() => Devices.Parse(bad), $"'{bad}'");
            StringAssert.Contains(e.Message, $"'{bad}' is not a device");
            Assert.AreEqual("spec", e.ParamName);
        }
        Assert.ThrowsException<ArgumentNullException>(() => Devices.Parse(null!));
    }

    [TestMethod]
    public void EnsureAvailableNamesTheMissingCudaBackend()
    {
        Devices.EnsureAvailable(torch.CPU);
        if (torch.cuda.is_available())
        {
            // A GPU machine (build/gpu): CUDA works, an index past the last GPU does not.
            Devices.EnsureAvailable(Devices.Parse("cuda"));
            var past = Devices.Parse($"cuda:{torch.cuda.device_count()}");
            StringAssert.Contains(Assert.ThrowsException<InvalidOperationException>(() => Devices.EnsureAvailable(past)).Message, "CUDA device(s) are visible");
            return;
        }
        // This CPU-only build references libtorch-cpu: asking for CUDA names the package to reference instead.
        foreach (var spec in new[] { "cuda", "cuda:1" })
        {
            var e = Assert.ThrowsException<InvalidOperationException>(() => Devices.EnsureAvailable(Devices.Parse(spec)));
            StringAssert.Contains(e.Message, $"'{Devices.Name(Devices.Parse(spec))}' was requested but CUDA is not available");
            StringAssert.Contains(e.Message, "TorchSharp-cuda");
        }
    }
}
