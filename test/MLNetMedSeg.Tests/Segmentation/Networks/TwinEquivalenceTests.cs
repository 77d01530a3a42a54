using MLNetMedSeg.Segmentation.Networks;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Segmentation.Networks;

/// <summary>
/// Our networks compute the same function as their PyTorch twins in build/bench/networks.py (the benchmark's
/// baseline): both sides fill every weight with the same deterministic function (networks.deterministic_fill_) and
/// run the same input in evaluation mode. The reference numbers were computed once with
/// `/usr/bin/python3 build/bench/networks.py --twin-reference` (PyTorch 1.13): sum, absolute sum, y[1,0,17,23], y[0,1,32,46].
/// </summary>
[TestClass]
public sealed class TwinEquivalenceTests
{
    private static readonly Dictionary<string, (double sum, double abs, double a, double b)> Reference = new()
    {
        ["UNet"] = (-1279.347162, 1279.347162, -0.355035, -0.057734),
        ["UNetPlusPlus"] = (-107.900670, 1127.344263, 0.164610, -0.198976),
        ["LinkNet"] = (1430.052483, 1430.052483, 0.214723, 0.246133),
        ["DeepLabV3Plus"] = (722.773162, 722.773162, 0.206052, 0.027038),
    };

    [TestMethod]
    public void EveryArchitectureComputesTheSameLogitsAsItsPyTorchTwin()
    {
        using var scope = NewDisposeScope();
        var xs = new float[2 * 3 * 33 * 47];
        for (int i = 0; i < xs.Length; i++) xs[i] = (float)Math.Sin(0.05 * i);
        var x = tensor(xs).reshape(2, 3, 33, 47);
        foreach (var arch in NetworkTestUtil.All)
        {
            using var net = SegmentationNetworks.Create(NetworkTestUtil.Small(arch, classes: 2));
            DeterministicFill(net);
            net.eval();
            using var ng = no_grad();
            var y = net.call(x).to(ScalarType.Float64);
            var r = Reference[arch.ToString()];
            Assert.AreEqual(r.sum, y.sum().ToDouble(), 1e-4 * Math.Abs(r.abs), $"{arch}: sum");
            Assert.AreEqual(r.abs, y.abs().sum().ToDouble(), 1e-4 * Math.Abs(r.abs), $"{arch}: |sum|");
            Assert.AreEqual(r.a, y[1, 0, 17, 23].ToDouble(), 1e-4, $"{arch}: y[1,0,17,23]");
            Assert.AreEqual(r.b, y[0, 1, 32, 46].ToDouble(), 1e-4, $"{arch}: y[0,1,32,46]");
        }
    }

    /// <summary>networks.deterministic_fill_: entry j gets 0.5 sin(0.731 k + 1.3 j) / sqrt(fan); running_var 1 + 0.25 sin(...).</summary>
    private static void DeterministicFill(nn.Module module)
    {
        using var _ = no_grad();
        int j = 0;
        foreach (var (name, t) in module.StateDictInOrder())
        {
            if (!is_floating_point(t.dtype)) continue;
            long n = t.numel();
            long fan = t.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
            var v = new float[n];
            for (long k = 0; k < n; k++)
            {
                double s = Math.Sin(0.731 * k + 1.3 * j);
                v[k] = (float)(name.EndsWith("running_var", StringComparison.Ordinal) ? 1 + 0.25 * s : 0.5 * s / Math.Sqrt(fan));
            }
            using var src = tensor(v).reshape(t.shape);
            t.copy_(src);
            j++;
        }
    }
}
