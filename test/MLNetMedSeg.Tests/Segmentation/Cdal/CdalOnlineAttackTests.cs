using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation.Cdal;
using MLNetMedSeg.Segmentation.Losses;
using static MLNetMedSeg.Tests.Augmentation.Adversarial.AdversarialTestKit;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation.Cdal;

/// <summary>Online adversarial training inside the cDAL trainer (<see cref="CdalTrainerOptions.OnlineAttack"/>).</summary>
[TestClass]
public sealed class CdalOnlineAttackTests
{
    private static CdalTrainerOptions Options(int epochs)
    {
        var o = new CdalTrainerOptions { Cdal = CdalTestUtil.Small(MLNetMedSeg.Tests.Augmentation.Adversarial.AdversarialTestKit.Size), Epochs = epochs, BatchSize = 4, PredictionBatchSize = 4 };
        o.Cdal.Samples = 2;
        return o;
    }

    private static float[] Weights(CdalTransformer m) =>
        m.Network.StateDictInOrder().OrderBy(e => e.Key, StringComparer.Ordinal).SelectMany(e => Values(e.Value)).ToArray();

    private sealed class Reporter(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    [TestMethod]
    public void OnlineAttack_RegeneratesEveryNEpochs_AndTrainsOnTheRealPlusAttackedPool()
    {
        // 3 real rows, 2 attacked copies each: a pool of 9 rows, batches of 4 → 3 steps an epoch (⌈9/4⌉; 1 without the
        // attack); with EveryEpochs = 2 over 3 epochs the rows are attacked at epochs 1 and 3.
        using var scope = NewDisposeScope();
        using var data = Discs(3, 8);
        var logs = new List<string>();
        CdalTransformer Train(OnlineAdversarialOptions? online, List<TrainingProgress>? steps = null)
        {
            var ctx = new MedSegContext(seed: 4);
            ctx.Log += (_, e) => { if (e.Source == "OnlineAdversarialAugmenter") lock (logs) logs.Add(e.Message); };
            if (steps is not null) ctx.Progress = new Reporter(steps.Add);
            var o = Options(3);
            o.OnlineAttack = online;
            return new CdalTrainer(ctx, o).Fit(data);
        }
        OnlineAdversarialOptions Fgsm() => new() { Attack = AdversarialAttackOptions.FgsmPreset(8.0 / 255), EveryEpochs = 2, Copies = 2 };

        using var plain = Train(null);
        Assert.AreEqual(0, logs.Count);
        var steps = new List<TrainingProgress>();
        using var online = Train(Fgsm(), steps);
        Assert.AreEqual(2, logs.Count, string.Join("\n", logs));
        StringAssert.StartsWith(logs[0], "epoch 1: 6 attacked rows");
        StringAssert.StartsWith(logs[1], "epoch 3: 6 attacked rows");
        var training = steps.Where(p => p.Stage != "OnlineAttack").ToList();   // (the attack rounds report their own steps)
        Assert.AreEqual(9, training.Count, "3 epochs of ⌈(3 + 6) / 4⌉ = 3 steps from the pool");
        Assert.IsTrue(training.All(p => p.StepsPerEpoch == 3), "the ETA counts the pool's steps");
        Assert.AreEqual(3, online.History.Count);
        Assert.IsTrue(online.History.All(r => double.IsFinite(r.GeneratorLoss) && double.IsFinite(r.DiscriminatorLoss)));
        Assert.IsFalse(Weights(plain).SequenceEqual(Weights(online)), "the attacked rows took part in training");
        Assert.IsFalse(online.Network.training, "the fitted generator is in eval mode");

        logs.Clear();
        using var again = Train(Fgsm());
        CollectionAssert.AreEqual(Weights(online), Weights(again), "online training is deterministic from the context seed");
    }

    [TestMethod]
    public void Resume_AtAnAttackEpoch_GivesTheStraightRunsWeights_MidPeriodItAttacksAgain()
    {
        // The attacked rows are not in checkpoints: a resumed run attacks at its first epoch. When that epoch is one
        // where the straight run attacks too (EveryEpochs = 2, killed after epoch 2, resumed at 3), the pool, seeded by
        // the epoch, is the same and so is the model, bit for bit.
        using var data = Discs(3, 8);
        var logs = new List<string>();
        Func<string, Action<int>?, CancellationToken, Dictionary<string, float[]>> Fit(int everyEpochs) => (folder, onEpoch, ct) =>
        {
            var ctx = new MedSegContext(seed: 4);
            ctx.Log += (_, e) => { if (e.Source == "OnlineAdversarialAugmenter") lock (logs) logs.Add(e.Message); };
            var o = Options(3);
            o.CheckpointFolder = folder;
            o.OnlineAttack = new OnlineAdversarialOptions { Attack = AdversarialAttackOptions.FgsmPreset(8.0 / 255), EveryEpochs = everyEpochs, Copies = 1 };
            if (onEpoch is not null) o.EpochCompleted = r => onEpoch(r.Epoch);
            using var m = new CdalTrainer(ctx, o).Fit(data, ct);
            return MLNetMedSeg.Tests.Core.Training.ResumeCheck.Weights(m.Network);
        };
        MLNetMedSeg.Tests.Core.Training.ResumeCheck.Run(3, 2, Fit(2));
        CollectionAssert.AreEqual(new[] { "epoch 1", "epoch 3", "epoch 1", "epoch 3" }, logs.Select(l => l[..l.IndexOf(':')]).ToArray(),
            "straight run: epochs 1 and 3; killed run: epoch 1, resumed run: epoch 3");

        // Killed mid-period (after epoch 1 of a 2-epoch period): the resumed run attacks its current network at epoch 2,
        // where the straight run trained on epoch 1's rows (documented: resume is exact at attack epochs only).
        logs.Clear();
        string folder = Path.Combine(Path.GetTempPath(), "medseg-cdal-online-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var cts = new CancellationTokenSource())
                Assert.ThrowsException<OperationCanceledException>(() => Fit(2)(folder, e => { if (e == 1) cts.Cancel(); }, cts.Token));
            Fit(2)(folder, null, CancellationToken.None);
            CollectionAssert.AreEqual(new[] { "epoch 1", "epoch 2", "epoch 3" }, logs.Select(l => l[..l.IndexOf(':')]).ToArray());
        }
        finally { Directory.Delete(folder, true); }
    }

    [TestMethod]
    public void OnlineAttack_IsValidatedWithTheOptions()
    {
        var o = Options(1);
        o.OnlineAttack = new OnlineAdversarialOptions { Copies = 0, Attack = AdversarialAttackOptions.FgsmPreset() };
        var e = Assert.ThrowsException<ArgumentException>(() => o.Validate());
        StringAssert.Contains(e.Message, "Copies");
        var c = Options(1);
        c.OnlineAttack = new OnlineAdversarialOptions { Copies = 3, Attack = AdversarialAttackOptions.FgsmPreset() };
        var copy = c.Clone();
        Assert.AreNotSame(c.OnlineAttack, copy.OnlineAttack, "Clone copies the online attack");
        Assert.AreEqual(3, ((OnlineAdversarialOptions)copy.OnlineAttack!).Copies);
    }

    [TestMethod]
    public void StepWeights_EqualWeightsAreTheBatchMean_Eq11WeightsChangeTheGeneratorLoss()
    {
        var o = CdalTestUtil.Small(16);
        o.AttentionScale = 8;
        o.AdversarialWeight = 0.5;
        var (images, masks) = CdalTestUtil.Discs(16, 4, 1);
        using var _i = images;
        using var _m = masks;
        CdalStepLosses Run(Tensor? w)
        {
            using var g = new Generator(7);
            using var gen = new CdalGeneratorNetwork(o, g);
            using var disc = new CdalDiscriminatorNetwork(o, g);
            using var step = new CdalTrainingStep(o, gen, disc);
            using var rng = new Generator(99);
            return step.Step(images, masks, rng, 1, w);
        }
        var plain = Run(null);
        using var equal = full([4], S(0.25f));
        var same = Run(equal);
        Assert.AreEqual(plain.GeneratorMse, same.GeneratorMse, 1e-6, "weights 1/N are the batch mean");
        Assert.AreEqual(plain.GeneratorAdversarial, same.GeneratorAdversarial, 1e-6);
        Assert.AreEqual(plain.Discriminator, same.Discriminator, 1e-6, "the discriminator's loss is not weighted");
        using var eq11 = SampleWeights.RealAndAugmented([false, false, false, true]);   // 1/3, 1/3, 1/3, 1
        var weighted = Run(eq11);
        Assert.AreEqual(plain.Discriminator, weighted.Discriminator, 1e-6);
        Assert.IsTrue(weighted.GeneratorMse > plain.GeneratorMse * 1.2,
            $"Eq. 11's weights sum to 2 (mean of the real + mean of the augmented rows): {weighted.GeneratorMse} vs {plain.GeneratorMse}");
        using var bad = full([3], S(0.25f));
        Assert.ThrowsException<ArgumentException>(() => Run(bad));
    }
}
