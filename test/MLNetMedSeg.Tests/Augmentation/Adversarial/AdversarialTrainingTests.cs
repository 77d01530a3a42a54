using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using static MLNetMedSeg.Tests.Augmentation.Adversarial.AdversarialTestKit;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Augmentation.Adversarial;

[TestClass]
public sealed class AdversarialTrainingTests
{
    private static SegmentationTrainerOptions TrainerOptions(int epochs = 1) => new()
    {
        Network = TinyNet(), Epochs = epochs, BatchSize = 4, LearningRate = 1e-2,
        Loss = new SegmentationLossOptions { Kind = SegmentationLossKind.Dice },
    };

    private static float[] Weights(SegmentationTransformer m) =>
        m.Network.StateDictInOrder().OrderBy(e => e.Key, StringComparer.Ordinal).SelectMany(e => Values(e.Value)).ToArray();

    [TestMethod]
    public void Offline_EmitsRealPlusTwoAttackedCopies_AndTrainsWithEq11()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 1);
        using var data = Discs(4, 1, ids: true);
        using var seg = Segmenter(ctx);
        var o = AdversarialAttackOptions.PgdPreset();
        o.Steps = 2;
        using var pairs = AdversarialPairs.Generate(ctx, data, seg, o);
        Assert.AreEqual("Id, Image, Mask, IsAugmented", string.Join(", ", pairs.Schema.Select(c => c.Name)));
        Assert.AreEqual(4 + 2 * 4, pairs.RowCount, "N + N′ with N′ = 2N");

        var ids = new List<string>();
        var flags = new List<double>();
        var images = new List<float[]>();
        var masks = new List<float[]>();
        using (var cur = pairs.GetRowCursor("Id", "Image", "Mask", "IsAugmented"))
            while (cur.MoveNext())
            {
                ids.Add(cur.GetText("Id"));
                flags.Add(cur.GetNumber("IsAugmented"));
                images.Add(Values(cur.GetTensor("Image")));
                masks.Add(Values(cur.GetTensor("Mask")));
            }
        CollectionAssert.AreEqual(new double[] { 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1 }, flags);
        Assert.AreEqual("case1#adv0", ids[5]);
        Assert.AreEqual("case1#adv1", ids[9]);
        for (int i = 0; i < 4; i++)
        {
            CollectionAssert.AreEqual(masks[i], masks[4 + i], "copy 0 keeps the mask");
            CollectionAssert.AreEqual(masks[i], masks[8 + i], "copy 1 keeps the mask");
            double d0 = images[i].Zip(images[4 + i], (a, b) => Math.Abs(a - b)).Max();
            Assert.IsTrue(d0 > 0 && d0 <= 16.0 / 255 + 1e-6, $"row {i}: the attack moved the image within ε ({d0})");
            Assert.IsFalse(images[4 + i].SequenceEqual(images[8 + i]), $"row {i}: the two copies start from different random points");
        }

        var options = TrainerOptions();
        options.SampleWeightColumn = "IsAugmented";
        using var model = new SegmentationTrainer(ctx, options).Fit(pairs);
        Assert.IsTrue(double.IsFinite(model.History.Single().TrainLoss));
    }

    [TestMethod]
    public void Offline_Dasp_CopiesDifferThroughSdEditNoise()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 2);
        using var data = Discs(2, 2);
        using var seg = Segmenter(ctx);
        var o = AdversarialAttackOptions.Dasp();
        o.Steps = 2;
        o.ImageColumn = "Image";
        using var pairs = AdversarialPairs.Generate(ctx, data, seg, o, new BlurSdEditor(),
            new AdversarialPairsOptions { IncludeReal = false, OutputImageColumn = "X", OutputMaskColumn = "Y" });
        Assert.AreEqual(4, pairs.RowCount);
        Assert.AreEqual("X, Y, IsAugmented", string.Join(", ", pairs.Schema.Select(c => c.Name)));
        var images = new List<float[]>();
        using (var cur = pairs.GetRowCursor("X"))
            while (cur.MoveNext()) images.Add(Values(cur.GetTensor("X")));
        Assert.IsFalse(images[0].SequenceEqual(images[2]));
    }

    [TestMethod]
    public void Online_RegeneratesEveryNEpochs_AndChangesTraining()
    {
        using var scope = NewDisposeScope();
        using var data = Discs(6, 3);
        var logs = new List<string>();
        SegmentationTransformer Train(OnlineAdversarialOptions? online)
        {
            var ctx = new MedSegContext(seed: 4);
            ctx.Log += (_, e) => { if (e.Source == "OnlineAdversarialAugmenter") logs.Add(e.Message); };
            var options = TrainerOptions(epochs: 3);
            options.OnlineAttack = online;
            return new SegmentationTrainer(ctx, options).Fit(data);
        }
        var fgsm = AdversarialAttackOptions.FgsmPreset(8.0 / 255);
        using var plain = Train(null);
        Assert.AreEqual(0, logs.Count);
        using var online = Train(new OnlineAdversarialOptions { Attack = fgsm, EveryEpochs = 2, Copies = 1 });
        Assert.AreEqual(2, logs.Count, string.Join("\n", logs));
        StringAssert.StartsWith(logs[0], "epoch 1: 6 attacked rows");
        StringAssert.StartsWith(logs[1], "epoch 3: 6 attacked rows");
        Assert.AreEqual(3, online.History.Count);
        Assert.IsTrue(online.History.All(r => double.IsFinite(r.TrainLoss)));
        Assert.IsFalse(Weights(plain).SequenceEqual(Weights(online)), "the attacked rows took part in training");

        logs.Clear();
        using var again = Train(new OnlineAdversarialOptions { Attack = fgsm, EveryEpochs = 2, Copies = 1 });
        CollectionAssert.AreEqual(Weights(online), Weights(again), "online training is deterministic from the context seed");
    }

    [TestMethod]
    public void Online_ResumeAtAnAttackEpoch_GivesTheStraightRunsWeights()
    {
        // The attacked rows are not in checkpoints; a resumed run attacks at its first epoch, seeded by that epoch: when
        // the straight run attacks there too (EveryEpochs = 2, killed after epoch 2, resumed at 3) the model is the same.
        using var data = Discs(6, 3);
        var attacked = new List<int>();
        MLNetMedSeg.Tests.Core.Training.ResumeCheck.Run(3, 2, (folder, onEpoch, ct) =>
        {
            var ctx = new MedSegContext(seed: 4);
            ctx.Log += (_, e) => { if (e.Source == "OnlineAdversarialAugmenter") attacked.Add(int.Parse(e.Message.Split(' ', ':')[1])); };
            var options = TrainerOptions(epochs: 3);
            options.CheckpointFolder = folder;
            options.OnlineAttack = new OnlineAdversarialOptions { Attack = AdversarialAttackOptions.FgsmPreset(8.0 / 255), EveryEpochs = 2, Copies = 1 };
            if (onEpoch is not null) options.EpochCompleted = r => onEpoch(r.Epoch);
            using var m = new SegmentationTrainer(ctx, options).Fit(data, ct);
            return MLNetMedSeg.Tests.Core.Training.ResumeCheck.Weights(m.Network);
        });
        CollectionAssert.AreEqual(new[] { 1, 3, 1, 3 }, attacked, "straight run: epochs 1 and 3; killed run: 1; resumed run: 3");
    }

    [TestMethod]
    public void Online_DrawsBatchesOfBatchSizeFromTheRealPlusAttackedPool_AsOffline()
    {
        // Paper 000 §3.4 / Eq. 11: DASP trains with batch 16 on real + augmented rows in either mode. 6 real rows with
        // 2 attacked copies each make a pool of 18 rows: batches of 4 → 5 steps an epoch (4, 4, 4, 4, 2 rows), each
        // with both kinds of rows weighted 1/N_real and 1/N_aug.
        var training = ProgressOfOnlineFgsmWithTwoCopies().Where(p => p.Stage == "SegmentationTrainer").ToList();
        Assert.AreEqual(5, training.Count, "⌈(6 + 12) / 4⌉ steps");
        Assert.IsTrue(training.All(p => p.StepsPerEpoch == 5), "the ETA counts the pool's steps");
    }

    [TestMethod]
    public void Online_AttackRound_ReportsAProgressStepPerAttackedBatch()
    {
        // A round of Diff-PGD can take minutes on a CPU: it reports progress (and an ETA) like a training epoch, before the
        // epoch's training steps. 6 real rows in batches of 4, 2 copies: 2 × 2 attacked batches, then 5 training steps.
        var steps = ProgressOfOnlineFgsmWithTwoCopies();
        CollectionAssert.AreEqual(new[] { "OnlineAttack", "OnlineAttack", "OnlineAttack", "OnlineAttack",
            "SegmentationTrainer", "SegmentationTrainer", "SegmentationTrainer", "SegmentationTrainer", "SegmentationTrainer" },
            steps.Select(p => p.Stage).ToArray(), "the round's steps come first");
        var round = steps.Take(4).ToList();
        CollectionAssert.AreEqual(new long[] { 1, 2, 3, 4 }, round.Select(p => p.Step).ToArray());
        Assert.IsTrue(round.All(p => p.StepsPerEpoch == 4), "the round's ETA counts its attacked batches");
        Assert.AreEqual(1.0, round[^1].Fraction, 1e-12, "the round ends complete");
    }

    /// <summary>The progress reports of one epoch of online FGSM training: 6 real rows, 2 attacked copies, batch 4.</summary>
    private static List<TrainingProgress> ProgressOfOnlineFgsmWithTwoCopies()
    {
        using var scope = NewDisposeScope();
        using var data = Discs(6, 8);
        var ctx = new MedSegContext(seed: 8);
        var steps = new List<TrainingProgress>();
        ctx.Progress = new Reporter(steps.Add);
        var options = TrainerOptions();
        options.OnlineAttack = new OnlineAdversarialOptions { Attack = AdversarialAttackOptions.FgsmPreset(8.0 / 255), Copies = 2 };
        using var model = new SegmentationTrainer(ctx, options).Fit(data);
        return steps;
    }

    private sealed class Reporter(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    [TestMethod]
    public void Online_Dasp_WithSdEditor_AndFlagColumn_Runs()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 5);
        var (images, masks) = DiscTensors(4, 5);
        using var data = InMemoryDataView.Create(
            ("Image", TensorColumnType.Image(3, AdversarialTestKit.Size, AdversarialTestKit.Size), images),
            ("Mask", TensorColumnType.BinaryMask(AdversarialTestKit.Size, AdversarialTestKit.Size), masks),
            ("IsAugmented", NumberColumnType.Instance, new List<double> { 0, 0, 1, 0 }));
        var dasp = AdversarialAttackOptions.Dasp();
        dasp.Steps = 2;
        var editor = new BlurSdEditor();
        var options = TrainerOptions();
        options.SampleWeightColumn = "IsAugmented";
        options.OnlineAttack = new OnlineAdversarialOptions { Attack = dasp, SdEditor = editor };
        using var model = new SegmentationTrainer(ctx, options).Fit(data);
        Assert.IsTrue(double.IsFinite(model.History.Single().TrainLoss));
        Assert.AreEqual(2 * (2 + 1), editor.Calls, "two copies of one batch: SDEdit per step plus the final refinement");
    }

    [TestMethod]
    public void Online_OptionsAreValidated()
    {
        var options = TrainerOptions();
        options.OnlineAttack = new OnlineAdversarialOptions(); // DASP without an SDEdit model
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new SegmentationTrainer(new MedSegContext(1), options));
        StringAssert.Contains(ex.Message, "SdEditor");
        options.OnlineAttack = new OnlineAdversarialOptions { Attack = AdversarialAttackOptions.FgsmPreset() };
        options.SampleWeightColumn = "W";
        options.SampleWeightMode = SampleWeightMode.Weight;
        Assert.ThrowsExactly<ArgumentException>(() => new SegmentationTrainer(new MedSegContext(1), options));
        options.OnlineAttack = new OnlineAdversarialOptions { Attack = AdversarialAttackOptions.FgsmPreset(), EveryEpochs = 0 };
        options.SampleWeightColumn = null;
        Assert.ThrowsExactly<ArgumentException>(() => new SegmentationTrainer(new MedSegContext(1), options));
    }
}
