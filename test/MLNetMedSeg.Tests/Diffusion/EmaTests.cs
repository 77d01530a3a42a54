using MLNetMedSeg.Core.Training;
using MLNetMedSeg.Core;
using MLNetMedSeg.Diffusion;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Diffusion;

[TestClass]
public sealed class EmaTests
{
    [TestMethod]
    public void UpdateIsTheExponentialAverageAndCopyToLoadsIt()
    {
        using var scope = NewDisposeScope();
        using var net = nn.Linear(2, 1);
        using (no_grad()) { net.weight.copy_(tensor(new float[] { 1, 2 }).reshape(1, 2)); net.bias!.fill_(S(0)); }
        using var ema = new ExponentialMovingAverage(net, decay: 0.9);
        using (no_grad()) { net.weight.copy_(tensor(new float[] { 11, 12 }).reshape(1, 2)); net.bias!.fill_(S(10)); }
        ema.Update(net);
        // 0.9·1 + 0.1·11 = 2, 0.9·2 + 0.1·12 = 3, 0.9·0 + 0.1·10 = 1.
        CollectionAssert.AreEqual(new float[] { 2, 3 }, ema.State["weight"].ToArray<float>());
        Assert.AreEqual(1f, ema.State["bias"].ToSingle(), 1e-6f);
        ema.Update(net);
        Assert.AreEqual(0.9 * 2 + 0.1 * 11, ema.State["weight"].ToArray<float>()[0], 1e-5);
        Assert.AreEqual(2, ema.Updates);

        using var target = nn.Linear(2, 1);
        ema.CopyTo(target);
        Assert.IsTrue(target.weight.IsEqual(ema.State["weight"]));
        Assert.IsFalse(ReferenceEquals(target.weight, ema.State["weight"]), "the target keeps its own parameters");
        ema.Update(net, decay: 0);
        Assert.IsTrue(ema.State["weight"].IsEqual(net.weight), "decay 0 copies the model");
    }

    [TestMethod]
    public void WarmupDecayCountsThePreviousUpdates_SharedByBothDiffusionStages()
    {
        // One helper for both stages: the update after k earlier ones uses min(decay, (1 + k)/(10 + k)).
        Assert.AreEqual(0.1, ExponentialMovingAverage.WarmupDecay(0.9999, 0), 1e-15);
        Assert.AreEqual(2.0 / 11, ExponentialMovingAverage.WarmupDecay(0.9999, 1), 1e-15);
        Assert.AreEqual(0.9999, ExponentialMovingAverage.WarmupDecay(0.9999, 1_000_000), 1e-15);
        Assert.AreEqual(0.5, ExponentialMovingAverage.WarmupDecay(0.5, 100), 1e-15);
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => ExponentialMovingAverage.WarmupDecay(0.9, -1));
        using var scope = NewDisposeScope();
        using var net = nn.Linear(1, 1, hasBias: false);
        using (no_grad()) net.weight.fill_(S(0));
        using var ema = new ExponentialMovingAverage(net, decay: 0.9999);
        using (no_grad()) net.weight.fill_(S(10));
        ema.Update(net, warmup: true);   // decay 0.1: 0.1·0 + 0.9·10 = 9
        Assert.AreEqual(9.0, ema.State["weight"].ToSingle(), 1e-5);
        ema.Update(net, warmup: true);   // decay 2/11: 9·2/11 + 10·9/11
        Assert.AreEqual(9 * 2.0 / 11 + 10 * 9.0 / 11, ema.State["weight"].ToSingle(), 1e-5);
        using (no_grad()) net.weight.fill_(S(0));
        ema.Update(net, warmup: false);  // plain decay
        Assert.AreEqual((9 * 2.0 / 11 + 10 * 9.0 / 11) * 0.9999, ema.State["weight"].ToSingle(), 1e-5);
    }

    [TestMethod]
    public void ShadowIsIndependentOfTheModelAndFreedOnDispose()
    {
        using var scope = NewDisposeScope();
        using var net = nn.BatchNorm2d(3);
        long live = LiveTensors.Settled();
        var ema = new ExponentialMovingAverage(net);
        Assert.AreEqual(net.StateDictInOrder().Count, ema.State.Count, "parameters and buffers (running stats, num_batches_tracked)");
        using (no_grad()) net.weight!.fill_(S(5));
        Assert.AreEqual(1f, ema.State["weight"].ToArray<float>()[0], "a copy, not the model's tensor");
        ema.Update(net, 0.5);
        Assert.AreEqual(3f, ema.State["weight"].ToArray<float>()[0]);
        ema.Dispose();
        Assert.AreEqual(live, LiveTensors.Settled(), "the shadow tensors are freed");
        Assert.ThrowsException<ObjectDisposedException>(() => ema.Update(net));
    }

    [TestMethod]
    public void UpdateWithAnotherModuleNamesTheEntry()
    {
        using var scope = NewDisposeScope();
        using var a = nn.Linear(2, 1);
        using var b = nn.Linear(3, 1);
        using var ema = new ExponentialMovingAverage(a);
        StringAssert.Contains(Assert.ThrowsException<ArgumentException>(() => ema.Update(b)).Message, "weight");
    }
}
