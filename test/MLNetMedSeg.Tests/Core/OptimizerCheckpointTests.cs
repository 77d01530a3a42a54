using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary><see cref="OptimizerCheckpoint"/>: optimizer state as bytes (resume bit for bit) and the scoped zero_grad.</summary>
[TestClass]
public sealed class OptimizerCheckpointTests
{
    private static (nn.Module net, Tensor x, Tensor y) Problem()
    {
        var net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1));
        SeededInit.Apply(net, new Generator(1));
        using var g = new Generator(2);
        var x = randn(new long[] { 16, 4 }, generator: g);
        var y = randn(new long[] { 16, 1 }, generator: g);
        return (net, x, y);
    }

    private static void Step(nn.Module net, optim.Optimizer opt, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        opt.ZeroGrad();
        var loss = nn.functional.mse_loss(((nn.Module<Tensor, Tensor>)net).call(x), y);
        loss.backward();
        opt.step();
    }

    [TestMethod]
    public void AdamResumedFromItsBytesContinuesBitForBit()
    {
        using var scope = NewDisposeScope();
        var (a, x, y) = Problem();
        using var _a = a;
        using var optA = optim.Adam(a.parameters(), lr: 1e-2);
        for (int k = 0; k < 3; k++) Step(a, optA, x, y);
        var state = OptimizerCheckpoint.Save(optA);
        Assert.IsTrue(state.Length > 0);

        // A second network with A's weights and a fresh Adam that loads A's state.
        var (b, _, _) = Problem();
        using var _b = b;
        b.LoadStateDictChecked(a.StateDictInOrder());
        using var optB = optim.Adam(b.parameters(), lr: 1e-2);
        OptimizerCheckpoint.Load(optB, state, "ckpt/optimizer");
        // Without the state (fresh moments, step 0) the next step would differ.
        var (c, _, _) = Problem();
        using var _c = c;
        c.LoadStateDictChecked(a.StateDictInOrder());
        using var optC = optim.Adam(c.parameters(), lr: 1e-2);

        for (int k = 0; k < 2; k++) { Step(a, optA, x, y); Step(b, optB, x, y); Step(c, optC, x, y); }
        var sa = a.StateDictInOrder(); var sb = b.StateDictInOrder(); var sc = c.StateDictInOrder();
        foreach (var k in sa.Keys) Assert.IsTrue(sa[k].IsEqual(sb[k]), $"{k}: resumed run differs");
        Assert.IsFalse(sa.Keys.All(k => sa[k].IsEqual(sc[k])), "the state matters (a fresh Adam takes other steps)");
        Assert.AreEqual(1e-2, optB.LearningRate(), 1e-15);
    }

    [TestMethod]
    public void AStateThatDoesNotFitIsInvalidDataNamingTheSource()
    {
        using var scope = NewDisposeScope();
        var (a, x, y) = Problem();
        using var _a = a;
        using var optA = optim.Adam(a.parameters(), lr: 1e-2);
        Step(a, optA, x, y);
        var state = OptimizerCheckpoint.Save(optA);
        using var optB = optim.Adam(a.parameters(), lr: 1e-2);
        var e = Assert.ThrowsException<InvalidDataException>(() => OptimizerCheckpoint.Load(optB, state[..(state.Length / 2)], "model.zip:optimizer"));
        StringAssert.Contains(e.Message, "model.zip:optimizer");
        Assert.ThrowsException<InvalidDataException>(() => OptimizerCheckpoint.Load(optB, [], "empty"));
        Assert.ThrowsException<ArgumentNullException>(() => OptimizerCheckpoint.Load(optB, null!, "null"));
    }

    [TestMethod]
    public void ZeroGradLeavesNothingToTheFinalizer()
    {
        // No dispose scope around this test: TorchSharp's zero_grad leaves its temporaries to whatever scope is open.
        var (a, x, y) = Problem();
        using var _a = a;
        using var _x = x;
        using var _y = y;
        using var opt = optim.Adam(a.parameters(), lr: 1e-2);
        Step(a, opt, x, y);
        Assert.IsTrue(a.parameters().All(p => p.grad is not null));
        long finalized = TorchRuntime.FinalizedTensorCount;
        opt.ZeroGrad();
        Assert.AreEqual(finalized, TorchRuntime.FinalizedTensorCount);
        Assert.IsTrue(a.parameters().All(p => p.grad is null || p.grad.eq(S(0)).all().ToBoolean()), "gradients cleared");
    }
}
