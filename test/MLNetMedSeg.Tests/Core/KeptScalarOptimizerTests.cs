using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// <see cref="MLNetMedSeg.Core.Optimizers"/> and <see cref="KeptScalarBatchNorm2d"/>: TorchSharp's Adam, AdamW, RMSProp and
/// BatchNorm2d with kept Scalars give TorchSharp's numbers bit for bit, and share its state formats both ways.
/// </summary>
[TestClass]
public sealed class KeptScalarOptimizerTests
{
    /// <summary>Runs <paramref name="action"/> without garbage collections: TorchSharp's originals make the temporaries in question.</summary>
    private static T NoGc<T>(Func<T> action)
    {
        bool noGc = GC.TryStartNoGCRegion(16 << 20);
        try
        {
            return action();
        }
        finally
        {
            if (noGc && System.Runtime.GCSettings.LatencyMode == System.Runtime.GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        }
    }

    private static void Same(string what, Tensor expected, Tensor actual)
    {
        Assert.AreEqual(expected.dtype, actual.dtype, what);
        CollectionAssert.AreEqual(expected.shape, actual.shape, what);
        CollectionAssert.AreEqual(expected.contiguous().bytes.ToArray(), actual.contiguous().bytes.ToArray(), $"{what}: values differ");
    }

    /// <summary>Random parameters (two shapes, float32), identical in each of <paramref name="copies"/> sets.</summary>
    private static Parameter[][] Parameters(int copies, int seed)
    {
        var g = new Generator((ulong)seed);
        var values = new[] { randn([3, 4], generator: g), randn([5], generator: g) };
        return Enumerable.Range(0, copies).Select(_ => values.Select(v => new Parameter(v.clone())).ToArray()).ToArray();
    }

    /// <summary>One step on a loss with parameter-dependent gradients (∂/∂p = w + 2 p v), the same w, v for every set.</summary>
    private static void Step(optim.Optimizer optimizer, Parameter[] parameters, int k, bool reference)
    {
        using var scope = NewDisposeScope();
        optimizer.ZeroGrad();
        var g = new Generator((ulong)(100 + k));
        Tensor loss = tensor(0f);
        foreach (var p in parameters)
        {
            var (w, v) = (randn(p.shape, generator: g), randn(p.shape, generator: g).abs());
            loss = loss.Plus((p * w).sum()).Plus((p.pow(S(2)) * v).sum());
        }
        loss.backward();
        if (reference) NoGc(() => optimizer.step());
        else optimizer.step();
    }

    private static void SameRuns(string what, Parameter[] expected, optim.Optimizer expectedOptimizer, Parameter[] actual, optim.Optimizer actualOptimizer)
    {
        for (int i = 0; i < expected.Length; i++) Same($"{what}: parameter {i}", expected[i], actual[i]);
        CollectionAssert.AreEqual(OptimizerCheckpoint.Save(expectedOptimizer), OptimizerCheckpoint.Save(actualOptimizer),
            $"{what}: optimizer states (step, moments, options) differ");
    }

    private sealed record Case(string Name, Func<IEnumerable<Parameter>, optim.Optimizer> TorchSharps, Func<IEnumerable<Parameter>, optim.Optimizer> Ours);

    /// <summary>Every optimizer and option combination the library uses (and the others each update rule has).</summary>
    private static readonly Case[] Cases =
    [
        new("Adam lr", p => optim.Adam(p, lr: 1e-2), p => Optimizers.Adam(p, lr: 1e-2)),
        new("Adam betas (cDAL)", p => optim.Adam(p, lr: 2e-4, beta1: 0.5, beta2: 0.999), p => Optimizers.Adam(p, lr: 2e-4, beta1: 0.5, beta2: 0.999)),
        new("Adam weight decay", p => optim.Adam(p, lr: 1e-3, weight_decay: 1e-2), p => Optimizers.Adam(p, lr: 1e-3, weight_decay: 1e-2)),
        new("Adam amsgrad", p => optim.Adam(p, lr: 1e-2, weight_decay: 1e-3, amsgrad: true), p => Optimizers.Adam(p, lr: 1e-2, weight_decay: 1e-3, amsgrad: true)),
        new("AdamW weight decay", p => optim.AdamW(p, lr: 1e-3, weight_decay: 1e-2), p => Optimizers.AdamW(p, lr: 1e-3, weight_decay: 1e-2)),
        new("AdamW no weight decay", p => optim.AdamW(p, lr: 1e-2), p => Optimizers.AdamW(p, lr: 1e-2)),
        new("AdamW amsgrad", p => optim.AdamW(p, lr: 1e-2, weight_decay: 1e-2, amsgrad: true), p => Optimizers.AdamW(p, lr: 1e-2, weight_decay: 1e-2, amsgrad: true)),
        new("RMSProp (deformation attack)", p => optim.RMSProp(p, lr: 1e-4, alpha: 0.9, eps: 1e-6), p => Optimizers.RMSProp(p, lr: 1e-4, alpha: 0.9, eps: 1e-6)),
        new("RMSProp defaults", p => optim.RMSProp(p), p => Optimizers.RMSProp(p)),
        new("RMSProp weight decay, momentum, centered", p => optim.RMSProp(p, lr: 1e-2, weight_decay: 1e-2, momentum: 0.9, centered: true),
            p => Optimizers.RMSProp(p, lr: 1e-2, weight_decay: 1e-2, momentum: 0.9, centered: true)),
    ];

    [TestMethod]
    public void OptimizersStepAsTorchSharpsBitForBit()
    {
        foreach (var c in Cases)
        {
            using var scope = NewDisposeScope();
            var sets = Parameters(2, seed: 7);
            using var reference = c.TorchSharps(sets[0]);
            using var ours = c.Ours(sets[1]);
            Assert.AreNotEqual(reference.GetType(), ours.GetType(), c.Name);
            Assert.IsInstanceOfType(ours, reference.GetType(), $"{c.Name}: ours is a {reference.GetType().Name}");
            for (int k = 0; k < 6; k++)
            {
                Step(reference, sets[0], k, reference: true);
                Step(ours, sets[1], k, reference: false);
                SameRuns($"{c.Name}, step {k + 1}", sets[0], reference, sets[1], ours);
            }
            Assert.IsFalse(sets[0][0].IsEqual(Parameters(1, seed: 7)[0][0]), $"{c.Name}: the parameters moved");
        }
    }

    /// <summary>A state saved by either loads into the other, and both then continue as one uninterrupted run.</summary>
    [TestMethod]
    public void StatesRoundTripBetweenOursAndTorchSharps()
    {
        foreach (var c in Cases)
        {
            foreach (bool fromOurs in new[] { true, false })
            {
                using var scope = NewDisposeScope();
                string what = $"{c.Name}, {(fromOurs ? "ours → TorchSharp's" : "TorchSharp's → ours")}";
                var sets = Parameters(2, seed: 11);
                using var first = fromOurs ? c.Ours(sets[0]) : c.TorchSharps(sets[0]);
                for (int k = 0; k < 3; k++) Step(first, sets[0], k, reference: !fromOurs);
                var state = OptimizerCheckpoint.Save(first);

                for (int i = 0; i < sets[0].Length; i++) using (no_grad()) sets[1][i].copy_(sets[0][i]);
                using var second = fromOurs ? c.TorchSharps(sets[1]) : c.Ours(sets[1]);
                OptimizerCheckpoint.Load(second, state, what);
                CollectionAssert.AreEqual(state, OptimizerCheckpoint.Save(second), $"{what}: the loaded state saves as it was");
                for (int k = 3; k < 6; k++)
                {
                    Step(first, sets[0], k, reference: !fromOurs);
                    Step(second, sets[1], k, reference: fromOurs);
                    SameRuns($"{what}, step {k + 1}", sets[0], first, sets[1], second);
                }
            }
        }
    }

    /// <summary>The in-memory state_dict()/load_state_dict() of TorchSharp works between ours and TorchSharp's too.</summary>
    [TestMethod]
    public void InMemoryStateDictsLoadBothWays()
    {
        using var scope = NewDisposeScope();
        var sets = Parameters(3, seed: 5);
        using var reference = optim.Adam(sets[0], lr: 1e-2, weight_decay: 1e-3);
        using var ours = Optimizers.Adam(sets[1], lr: 1e-2, weight_decay: 1e-3);
        using var back = optim.Adam(sets[2], lr: 1e-2, weight_decay: 1e-3);
        for (int k = 0; k < 2; k++) Step(reference, sets[0], k, reference: true);
        ours.load_state_dict(reference.state_dict());
        CollectionAssert.AreEqual(OptimizerCheckpoint.Save(reference), OptimizerCheckpoint.Save(ours));
        Step(ours, sets[1], 9, reference: false);
        back.load_state_dict(ours.state_dict());
        CollectionAssert.AreEqual(OptimizerCheckpoint.Save(ours), OptimizerCheckpoint.Save(back));
    }

    /// <summary>A learning-rate scheduler drives ours as it drives TorchSharp's.</summary>
    [TestMethod]
    public void SchedulersDriveOursAsTorchSharps()
    {
        using var scope = NewDisposeScope();
        var sets = Parameters(2, seed: 3);
        using var reference = optim.AdamW(sets[0], lr: 1e-2, weight_decay: 1e-2);
        using var ours = Optimizers.AdamW(sets[1], lr: 1e-2, weight_decay: 1e-2);
        var s0 = optim.lr_scheduler.CosineAnnealingLR(reference, 5);
        var s1 = optim.lr_scheduler.CosineAnnealingLR(ours, 5);
        for (int k = 0; k < 5; k++)
        {
            Step(reference, sets[0], k, reference: true);
            Step(ours, sets[1], k, reference: false);
            s0.step();
            s1.step();
            Assert.AreEqual(reference.LearningRate(), ours.LearningRate(), 0.0, $"step {k + 1}");
            SameRuns($"CosineAnnealingLR, step {k + 1}", sets[0], reference, sets[1], ours);
        }
    }

    /// <summary>
    /// KeptScalarBatchNorm2d against nn.BatchNorm2d: same state-dict names, outputs, gradients and buffers (running
    /// statistics, num_batches_tracked) in training and eval mode, with and without a momentum; a BatchNorm2d's saved
    /// state dict loads into it.
    /// </summary>
    [TestMethod]
    public void BatchNormMatchesTorchSharpsBitForBit()
    {
        foreach (double? momentum in new double?[] { 0.1, 0.3, null })
        {
            using var scope = NewDisposeScope();
            using var reference = nn.BatchNorm2d(3);
            using var ours = Layers.BatchNorm2d(3);
            Assert.IsInstanceOfType<KeptScalarBatchNorm2d>(ours);
            Assert.AreEqual(reference.GetName(), ours.GetName());
            var g = new Generator(21);
            using (no_grad())
            {
                reference.weight.copy_(rand([3], generator: g).Plus(S(0.5)));
                reference.bias!.copy_(randn([3], generator: g));
            }
            reference.momentum = momentum;
            ours.momentum = momentum;

            // A saved BatchNorm2d loads into ours (the names and shapes of every saved model's BatchNorm).
            string path = Path.Combine(Path.GetTempPath(), $"bn-{Guid.NewGuid():N}.dat");
            try
            {
                reference.save(path);
                ours.load(path);
            }
            finally
            {
                File.Delete(path);
            }
            var (rs, os) = (reference.state_dict(), ours.state_dict());
            CollectionAssert.AreEqual(rs.Keys.ToArray(), os.Keys.ToArray(), "state-dict names and order");
            foreach (var key in rs.Keys) Same($"loaded {key}", rs[key], os[key]);

            foreach (bool training in new[] { true, true, true, false, true, false })
            {
                reference.train(training);
                ours.train(training);
                var x = (randn([4, 3, 5, 5], generator: g) * S(2)).Plus(S(1));
                var (xr, xo) = (x.clone().requires_grad_(true), x.clone().requires_grad_(true));
                var (yr, yo) = (NoGc(() => reference.call(xr)), ours.call(xo));
                string what = $"momentum {momentum?.ToString() ?? "null"}, {(training ? "train" : "eval")}";
                Same($"{what}: output", yr, yo);
                var w = randn(yr.shape, generator: g);
                (yr * w).sum().backward();
                (yo * w).sum().backward();
                Same($"{what}: input gradient", xr.grad!, xo.grad!);
                Same($"{what}: weight gradient", reference.weight.grad!, ours.weight.grad!);
                Same($"{what}: bias gradient", reference.bias!.grad!, ours.bias!.grad!);
                (rs, os) = (reference.state_dict(), ours.state_dict());
                foreach (var key in rs.Keys) Same($"{what}: {key}", rs[key], os[key]);
            }
            Assert.AreEqual(4L, ours.num_batches_tracked!.Int64Value(), "four training batches counted");
            Assert.ThrowsException<ArgumentException>(() => ours.call(zeros(2, 3, 4)), "4-D input only, as BatchNorm2d");
        }
    }
}
