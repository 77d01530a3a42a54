using System.Diagnostics;
using static MLNetMedSeg.Torch.torch;

namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class MemoryTests
{
    private static long RssBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
        using var p = Process.GetCurrentProcess();
        return p.WorkingSet64;
    }

    private static void SmallOps(int scopes, int opsPerScope)
    {
        for (int s = 0; s < scopes; s++)
        {
            using var scope = NewDisposeScope();
            var x = ones(8, 8);
            for (int k = 0; k < opsPerScope / 2; k++) x = x * 1.0001 + 0.5;
        }
    }

    [TestMethod]
    public void HundredThousandSmallOpsInScopesKeepMemoryFlat()
    {
        long liveBefore = LiveTensorCount;
        SmallOps(100, 100); // warm-up: allocator pools, JIT
        GC.Collect();
        long rss0 = RssBytes();
        SmallOps(1000, 100); // 100k ops
        GC.Collect();
        long growth = RssBytes() - rss0;
        Assert.AreEqual(liveBefore, LiveTensorCount, "every tensor made inside the scopes was freed");
        Assert.IsTrue(growth < 50L * 1024 * 1024, $"resident memory grew by {growth / 1048576.0:F1} MB over 100k ops");
    }

    [TestMethod]
    public void TrainingLoopMemoryIsFlatFromEpochToEpoch()
    {
        using var g = new Generator(3);
        nn.Sequential net;
        using (nn.init.UseGenerator(g))
            net = new nn.Sequential(nn.Conv2d(1, 8, 3, padding: 1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 1, 1));
        using var _ = net;
        using var opt = optim.Adam(net.parameters(), lr: 1e-3);
        var (x, y) = ToyData.Discs(8, 32, seed: 1);
        using var xs = x;
        using var ys = y;

        void Epoch()
        {
            for (int step = 0; step < 20; step++)
            {
                using var scope = NewDisposeScope();
                opt.zero_grad();
                var loss = nn.functional.binary_cross_entropy_with_logits(net.call(xs), ys);
                loss.backward();
                opt.step();
            }
        }

        Epoch(); Epoch();
        GC.Collect();
        long live0 = LiveTensorCount;
        long rss0 = RssBytes();
        for (int e = 0; e < 10; e++) Epoch();
        GC.Collect();
        long growth = RssBytes() - rss0;
        Assert.AreEqual(live0, LiveTensorCount, "no tensor accumulates across epochs");
        Assert.IsTrue(growth < 20L * 1024 * 1024, $"resident memory grew by {growth / 1048576.0:F1} MB over 10 epochs");
    }

    [TestMethod]
    public void FinalizedTensorsAreReleasedOnAUserThread()
    {
        long before = LiveTensorCount;
        MakeGarbage();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        // finalizers only queued the handles; they are freed here, on this thread
        CollectGarbage();
        Assert.AreEqual(before, LiveTensorCount);

        static void MakeGarbage()
        {
            for (int k = 0; k < 10; k++) _ = ones(4);
        }
    }
}
