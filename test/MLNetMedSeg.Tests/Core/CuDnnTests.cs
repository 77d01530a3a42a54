namespace MLNetMedSeg.Tests.Core;

/// <summary>The cuDNN switches reach libtorch's global context (they are plain settings, so the CPU build has them too).</summary>
[TestClass]
public sealed class CuDnnTests
{
    [TestMethod]
    public void DeterministicAndBenchmark_RoundTripThroughLibtorch()
    {
        Assert.IsTrue(CuDnn.IsSupported, "libtorch's at::Context entry points are reachable on Linux");
        bool det = CuDnn.Deterministic, bench = CuDnn.Benchmark;
        try
        {
            CuDnn.Deterministic = !det;
            Assert.AreEqual(!det, CuDnn.Deterministic);
            CuDnn.Benchmark = !bench;
            Assert.AreEqual(!bench, CuDnn.Benchmark);
        }
        finally
        {
            CuDnn.Deterministic = det;
            CuDnn.Benchmark = bench;
        }
        Assert.AreEqual(det, CuDnn.Deterministic);
    }
}
