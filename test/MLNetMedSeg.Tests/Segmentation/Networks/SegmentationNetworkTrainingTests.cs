using MLNetMedSeg.Core;
using System.Diagnostics;
using MLNetMedSeg.Segmentation.Networks;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation.Networks;

[TestClass]
public sealed class SegmentationNetworkTrainingTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod] public void UNetLearnsDiscs() => LearnsDiscs(SegmentationArchitecture.UNet);
    [TestMethod] public void UNetPlusPlusLearnsDiscs() => LearnsDiscs(SegmentationArchitecture.UNetPlusPlus);
    [TestMethod] public void LinkNetLearnsDiscs() => LearnsDiscs(SegmentationArchitecture.LinkNet);
    [TestMethod] public void DeepLabV3PlusLearnsDiscs() => LearnsDiscs(SegmentationArchitecture.DeepLabV3Plus);

    /// <summary>
    /// 60 Adam steps on 32×32 synthetic discs (batch 8 of 32 training images) must reach a held-out Dice above 0.7;
    /// an all-background prediction scores 0 and an all-foreground one about 2·area/(area + 1024) ≈ 0.3 here.
    /// </summary>
    private void LearnsDiscs(SegmentationArchitecture arch)
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(7);
        using var net = SegmentationNetworks.Create(NetworkTestUtil.Small(arch), g);
        var (x, y) = NetworkTestUtil.Discs(32, 32, seed: 1);
        var (xt, yt) = NetworkTestUtil.Discs(16, 32, seed: 2);
        using var opt = optim.Adam(net.parameters(), lr: 1e-2);
        var sw = Stopwatch.StartNew();
        double firstLoss = 0, lastLoss = 0;
        for (int step = 0; step < 60; step++)
        {
            using var s = NewDisposeScope();
            long start = step % 4 * 8;
            var xb = x.narrow(0, start, 8);
            var yb = y.narrow(0, start, 8);
            opt.zero_grad();
            var loss = NetworkTestUtil.Loss(net.call(xb), yb);
            loss.backward();
            opt.step();
            lastLoss = loss.ToSingle();
            if (step == 0) firstLoss = lastLoss;
        }
        net.eval();
        double dice, allForeground;
        using (no_grad())
        {
            dice = NetworkTestUtil.MeanDice(net.call(xt), yt);
            allForeground = NetworkTestUtil.MeanDice(full([16, 1, 32, 32], S(10f), ScalarType.Float32), yt);
        }
        TestContext.WriteLine($"{arch}: loss {firstLoss:F3} -> {lastLoss:F3}, held-out Dice {dice:F3} (all-foreground {allForeground:F3}), {sw.ElapsedMilliseconds} ms");
        Assert.IsTrue(lastLoss < firstLoss, $"{arch}: loss did not decrease ({firstLoss} -> {lastLoss})");
        Assert.IsTrue(allForeground < 0.45, $"baseline check: all-foreground Dice {allForeground}");
        Assert.IsTrue(dice > 0.7, $"{arch}: held-out Dice {dice:F3} ≤ 0.7");
    }

    [TestMethod]
    public void TheSameSeedGivesTheSameNetworkAndAnotherSeedAnotherOne()
    {
        using var scope = NewDisposeScope();
        foreach (var arch in NetworkTestUtil.All)
        {
            var opts = NetworkTestUtil.Small(arch);
            using var g1 = new Generator(42);
            using var g2 = new Generator(42);
            using var g3 = new Generator(43);
            using var a = SegmentationNetworks.Create(opts, g1);
            using var b = SegmentationNetworks.Create(opts, g2);
            using var c = SegmentationNetworks.Create(opts, g3);
            var sb = b.StateDictInOrder();
            var sc = c.StateDictInOrder();
            CollectionAssert.AreEqual(a.StateDictInOrder().Keys.ToList(), sb.Keys.ToList());
            foreach (var (k, v) in a.StateDictInOrder()) Assert.IsTrue(v.IsEqual(sb[k]), $"{arch}: {k} differs for the same seed");
            Assert.IsTrue(a.StateDictInOrder().Any(e => e.Key.EndsWith(".weight") && !e.Value.IsEqual(sc[e.Key])), $"{arch}: seed 43 gave seed 42's weights");
        }
    }

    [TestMethod]
    public void DeepSupervisionAveragesEveryHeadInTrainingAndUsesTheFullDepthHeadInEvaluation()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(9);
        var opts = NetworkTestUtil.Small(SegmentationArchitecture.UNetPlusPlus);
        opts.DeepSupervision = true;
        using var net = (UNetPlusPlus)SegmentationNetworks.Create(opts, g);
        Assert.IsTrue(net.StateDictInOrder().ContainsKey("heads.2.weight"));
        Assert.IsFalse(net.StateDictInOrder().ContainsKey("head.weight"));
        var x = rand([2, 3, 21, 30], generator: g);

        var heads = net.ForwardAllHeads(x);
        Assert.AreEqual(3, heads.Count); // X^{0,1}, X^{0,2}, X^{0,3} for 4 stages
        foreach (var h in heads) CollectionAssert.AreEqual(new long[] { 2, 1, 21, 30 }, h.shape);
        var mean = (heads[0] + heads[1] + heads[2]) / S(3);
        Assert.IsTrue(net.call(x).allclose(mean, 1e-5, 1e-5), "training output is not the mean of the heads");
        Assert.IsFalse(heads[0].allclose(heads[2], 1e-3, 1e-3), "heads should differ");

        net.eval();
        using (no_grad())
        {
            var evalHeads = net.ForwardAllHeads(x);
            var y = net.call(x);
            Assert.IsTrue(y.IsEqual(evalHeads[2]), "evaluation output is not the X^{0,L} head");
            Assert.IsFalse(y.allclose((evalHeads[0] + evalHeads[1] + evalHeads[2]) / S(3), 1e-4, 1e-4));
        }

        opts.DeepSupervision = false;
        using var plain = (UNetPlusPlus)SegmentationNetworks.Create(opts, g);
        Assert.AreEqual(1, plain.ForwardAllHeads(x).Count);
        Assert.IsTrue(plain.StateDictInOrder().ContainsKey("head.weight"));
        Assert.AreEqual(net.ParameterCount() - 2 * (8 + 1), plain.ParameterCount()); // two fewer 1×1 heads of 8 → 1
    }

    [TestMethod]
    public void TrainingStepsLeakNoTensors()
    {
        foreach (var arch in NetworkTestUtil.All)
        {
            using var g = new Generator(3);
            var opts = NetworkTestUtil.Small(arch);
            if (arch == SegmentationArchitecture.UNetPlusPlus) opts.DeepSupervision = true;
            using var net = SegmentationNetworks.Create(opts, g);
            using var opt = optim.Adam(net.parameters(), lr: 1e-3);
            using var x = rand([2, 3, 33, 47], generator: g);
            using var y = zeros([2, 1, 33, 47]);
            void Step()
            {
                using var s = NewDisposeScope();
                opt.zero_grad();
                NetworkTestUtil.Loss(net.call(x), y).backward();
                opt.step();
                if (net is UNetPlusPlus pp) _ = pp.ForwardAllHeads(x);
            }
            Step(); // creates the optimizer state and gradients
            long live = LiveTensors.Settled();
            for (int k = 0; k < 3; k++) Step();
            Assert.AreEqual(live, LiveTensors.Settled(), $"{arch}: tensors leaked over 3 steps");
            net.eval();
            using (no_grad())
            using (var s = NewDisposeScope()) net.call(x);
            Assert.AreEqual(live, LiveTensors.Settled(), $"{arch}: tensors leaked in evaluation");
        }
    }
}
