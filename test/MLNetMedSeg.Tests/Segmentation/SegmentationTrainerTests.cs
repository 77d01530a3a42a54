using MLNetMedSeg.Core.Training;
using MLNetMedSeg.Core;
using MLNetMedSeg.Augmentation.Classic;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Testing;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation;

[TestClass]
public sealed class SegmentationTrainerTests
{
    private const int Size = 32;

    /// <summary>A tiny U-Net: 3 levels of 8/16/32 channels.</summary>
    private static SegmentationNetworkOptions TinyNet(long classes = 1) => new()
    {
        Architecture = SegmentationArchitecture.UNet, Classes = classes, EncoderDepth = 3, EncoderWidths = [8, 16, 32],
    };

    private static SegmentationTrainerOptions Options(long classes = 1, int epochs = 2) => new()
    {
        Network = TinyNet(classes), Epochs = epochs, BatchSize = 8, LearningRate = 1e-2,
        Loss = new SegmentationLossOptions { Kind = classes == 1 ? SegmentationLossKind.DiceBce : SegmentationLossKind.DiceCrossEntropy },
    };

    /// <summary>
    /// n images 3×32×32 with one disc each (radius 5..9) on a noisy dark background. Binary: mask float32 [1,H,W]. Multi-class:
    /// a reddish disc is class 1, a bluish one class 2 (mask int64 [H,W]). Optional "IsAugmented" column (every third row).
    /// </summary>
    private static InMemoryDataView Discs(int n, int seed, bool multiClass = false, bool weights = false, bool nanImage = false)
    {
        var (images, masks) = TestData.SyntheticDiscs.Generate(new TestData.DiscStyle(Size, 5, 4, [0.9, 0.4, 0.2], [0.2, 0.4, 0.9], 0.3), n, seed, multiClass,
            nanImage ? (_, img) => img[5] = float.NaN : null);
        var flags = Enumerable.Range(0, n).Select(k => k % 3 == 2 ? 1.0 : 0.0).ToList();
        var cols = new List<(string, ColumnType, System.Collections.IList)>
        {
            ("Image", TensorColumnType.Image(3, Size, Size), images),
            ("Mask", multiClass ? TensorColumnType.ClassMask(Size, Size) : TensorColumnType.BinaryMask(Size, Size), masks),
        };
        if (weights) cols.Add(("IsAugmented", NumberColumnType.Instance, flags));
        return InMemoryDataView.Create(cols.ToArray());
    }

    private static EvaluationResult Evaluate(MedSegContext ctx, SegmentationTransformer model, IDataView data, int classes = 1)
    {
        var scored = model.Transform(data);
        return classes == 1 ? DataViewEvaluation.EvaluateBinary(ctx, scored) : DataViewEvaluation.EvaluateMultiClass(ctx, scored, classes);
    }

    private static Dictionary<string, float[]> Weights(SegmentationTransformer model) =>
        model.Network.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.to(ScalarType.Float32).cpu().contiguous().ToArray<float>());

    private static string TempFolder()
    {
        string f = Path.Combine(Path.GetTempPath(), "medseg-trainer-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(f);
        return f;
    }

    [TestMethod]
    public void Workout_TinyNetwork_TwoEpochs()
    {
        var ctx = new MedSegContext(seed: 1);
        using var data = Discs(12, 1, weights: true);
        var o = Options();
        o.SampleWeightColumn = "IsAugmented";
        var r = EstimatorWorkout.Run(ctx, new SegmentationTrainer(ctx, o), data, "Image",
            new WorkoutOptions { MoreRequiredColumns = ["Mask", "IsAugmented"] });
        Assert.AreEqual(12, r.Rows);
        Assert.AreEqual(new TensorColumnType(ScalarType.Float32, [1, Size, Size]), r.OutputSchema["Probability"].Type);
        Assert.AreEqual(TensorColumnType.BinaryMask(Size, Size), r.OutputSchema["Predicted"].Type);
    }

    [TestMethod]
    public void Workout_MultiClass()
    {
        var ctx = new MedSegContext(seed: 2);
        using var data = Discs(8, 2, multiClass: true);
        var r = EstimatorWorkout.Run(ctx, new SegmentationTrainer(ctx, Options(3)), data, "Mask");
        Assert.AreEqual(new TensorColumnType(ScalarType.Float32, [3, Size, Size]), r.OutputSchema["Probability"].Type);
        Assert.AreEqual(TensorColumnType.ClassMask(Size, Size), r.OutputSchema["Predicted"].Type);
    }

    [TestMethod]
    public void LastBatchOfOneImage_AtA1x1Bottleneck_IsLeftOut_ModelStaysFinite()
    {
        // 16 px through five levels: the bottleneck is 1×1, where BatchNorm on one image gives NaN running statistics.
        var ctx = new MedSegContext(seed: 4);
        var (images, masks) = TestData.SyntheticDiscs.Generate(new TestData.DiscStyle(16, 3, 2, [0.9, 0.4, 0.2], [0.2, 0.4, 0.9], 0.3), 9, 4);
        using var data = InMemoryDataView.Create(("Image", TensorColumnType.Image(3, 16, 16), images), ("Mask", TensorColumnType.BinaryMask(16, 16), masks));
        var o = new SegmentationTrainerOptions
        {
            Network = new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.UNet, EncoderDepth = 5, EncoderWidths = [4, 4, 8, 8, 8] },
            Epochs = 1, BatchSize = 4, LearningRate = 1e-2,
        };
        using var model = new SegmentationTrainer(ctx, o).Fit(data);
        using var scope = NewDisposeScope();
        var p = model.PredictProbabilities(stack(images.Take(2).ToArray()));
        Assert.IsTrue(p.isfinite().all().ToBoolean(), "predictions are finite (9 rows, batch 4: the last batch of one image is left out)");
        using var single = InMemoryDataView.Create(("Image", TensorColumnType.Image(3, 16, 16), new List<Tensor> { images[0].clone() }), ("Mask", TensorColumnType.BinaryMask(16, 16), new List<Tensor> { masks[0].clone() }));
        var e = Assert.ThrowsException<InvalidOperationException>(() => new SegmentationTrainer(ctx, o).Fit(single));
        StringAssert.Contains(e.Message, "at least 2");
    }

    [TestMethod]
    public void LearnsBinaryDiscs_HeldOutDiceFarAboveAllBackground()
    {
        var ctx = new MedSegContext(seed: 3);
        using var train = Discs(48, 3);
        using var test = Discs(16, 33);
        var o = Options(epochs: 8);
        o.Augmentation = ClassicAugmentationKind.Basic;
        using var model = new SegmentationTrainer(ctx, o).Fit(train);
        var res = Evaluate(ctx, model, test);
        Console.WriteLine($"binary held-out mDice {res.MeanDice:F4}");
        // An all-background prediction scores Dice 0 on every image (each has a disc).
        Assert.IsTrue(res.MeanDice > 0.8, $"held-out mDice {res.MeanDice:F3}");
        Assert.AreEqual(8, model.History.Count);
        Assert.IsTrue(model.History[^1].TrainLoss < model.History[0].TrainLoss, "the training loss did not fall");
    }

    [TestMethod]
    public void BFloat16MixedPrecision_Learns_KeepsFloat32Weights_AndTracksFloat32()
    {
        // bf16 compute with float32 master weights: it learns as float32 does, and the model it returns is float32.
        using var train = Discs(48, 3);
        using var test = Discs(16, 33);
        double Dice(TrainingPrecision p, out SegmentationTransformer model)
        {
            var o = Options(epochs: 8);
            o.Precision = p;
            model = new SegmentationTrainer(new MedSegContext(seed: 3), o).Fit(train);
            return Evaluate(new MedSegContext(seed: 3), model, test).MeanDice;
        }
        double fp32 = Dice(TrainingPrecision.Float32, out var m32);
        double bf16 = Dice(TrainingPrecision.BFloat16, out var m16);
        using (m32)
        using (m16)
        {
            Console.WriteLine($"held-out mDice fp32 {fp32:F4}, bf16 mixed {bf16:F4}");
            Assert.IsTrue(bf16 > 0.8, $"bf16 mixed precision held-out mDice {bf16:F3} (all-background scores 0)");
            Assert.AreEqual(fp32, bf16, 0.08, "bf16 mixed precision lands near float32");
            Assert.IsTrue(m16.Network.parameters().All(p => p.dtype == ScalarType.Float32), "the trained model's weights are float32");
            Assert.IsTrue(m16.Network.buffers().Where(b => b.is_floating_point()).All(b => b.dtype == ScalarType.Float32), "running statistics are float32");
            // The weights really moved away from a pure-float32 run (the compute was bf16) but not far.
            var w32 = Weights(m32);
            Assert.IsTrue(Weights(m16).Any(e => !e.Value.SequenceEqual(w32[e.Key])), "bf16 compute gives (slightly) other weights than float32");
        }
    }

    [TestMethod]
    public void Float16OnTheCpu_IsAClearError()
    {
        using var data = Discs(8, 5);
        var o = Options(epochs: 1);
        o.Precision = TrainingPrecision.Float16;
        var ex = Assert.ThrowsException<ArgumentException>(() => new SegmentationTrainer(new MedSegContext(seed: 1), o).Fit(data));
        StringAssert.Contains(ex.Message, "Float16");
        StringAssert.Contains(ex.Message, "CUDA");
    }

    [TestMethod]
    public void ChannelsLast_ChangesTheLayoutNotTheMath()
    {
        // The trainer feeds channels-last batches (the default): the network computes the same logits and gradients as
        // on contiguous input, up to float rounding (oneDNN picks other kernels for the NHWC layout).
        using var scope = NewDisposeScope();
        using var gen = new Generator(9);
        using var net = SegmentationNetworks.Create(TinyNet(1), gen);
        var x = rand([4, 3, Size, Size], generator: gen);
        var xl = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
        Assert.IsFalse(xl.is_contiguous(), "the channels-last batch has NHWC strides");
        (float[] Logits, float[] Grad) Run(Tensor input)
        {
            net.zero_grad();
            var y = net.call(input);
            y.square().mean().backward();
            var p = net.parameters().First();
            using var g = p.grad!;
            return (y.contiguous().ToArray<float>(), g.contiguous().ToArray<float>());
        }
        var a = Run(x);
        var b = Run(xl);
        for (int i = 0; i < a.Logits.Length; i++) Assert.AreEqual(a.Logits[i], b.Logits[i], 1e-4, "logits");
        for (int i = 0; i < a.Grad.Length; i++) Assert.AreEqual(a.Grad[i], b.Grad[i], 1e-4 + 1e-3 * Math.Abs(a.Grad[i]), "gradient");
    }

    [TestMethod]
    public void LearnsMultiClassDiscs()
    {
        var ctx = new MedSegContext(seed: 4);
        using var train = Discs(48, 4, multiClass: true);
        using var test = Discs(16, 44, multiClass: true);
        using var model = new SegmentationTrainer(ctx, Options(3, epochs: 10)).Fit(train);
        var res = Evaluate(ctx, model, test, 3);
        Console.WriteLine($"multi-class held-out mDice {res.MeanDice:F4}");
        Assert.IsTrue(res.MeanDice > 0.6, $"held-out multi-class mDice {res.MeanDice:F3}");
        using var scope = NewDisposeScope();
        using var cur = model.Transform(test).GetRowCursor("Probability", "Predicted");
        while (cur.MoveNext())
        {
            var p = cur.GetTensor("Probability");
            Assert.IsTrue(p.sum(0L).allclose(ones([Size, Size]), 1e-5, 1e-5), "softmax over the classes sums to 1");
            Assert.IsTrue(cur.GetTensor("Predicted").IsEqual(p.argmax(0)), "Predicted = argmax of Probability");
        }
    }

    [TestMethod]
    public void SampleWeightColumn_TrainingLossFollowsEq11()
    {
        // One batch holding every row, a learning rate of ~0: the first epoch's loss is the loss of the initial network
        // (BatchNorm uses batch statistics in training mode), which the test recomputes from the per-image Dice losses.
        using var data = Discs(9, 14, weights: true);
        foreach (var mode in new[] { SampleWeightMode.IsAugmentedFlag, SampleWeightMode.Weight })
        {
            var ctx = new MedSegContext(seed: 14);
            var o = Options(epochs: 1);
            o.Loss = new SegmentationLossOptions { Kind = SegmentationLossKind.Dice };
            o.BatchSize = 9;
            o.LearningRate = 1e-12;
            o.SampleWeightColumn = "IsAugmented";
            o.SampleWeightMode = mode;
            using var model = new SegmentationTrainer(ctx, o).Fit(data);
            using var scope = NewDisposeScope();
            using var cur = data.GetRowCursor("Image", "Mask", "IsAugmented");
            var xs = new List<Tensor>();
            var ys = new List<Tensor>();
            var flags = new List<bool>();
            while (cur.MoveNext())
            {
                xs.Add(cur.GetTensor("Image").clone());
                ys.Add(cur.GetTensor("Mask").clone());
                flags.Add(cur.GetNumber("IsAugmented") != 0);
            }
            model.Network.train();
            double[] per;
            using (no_grad())
            {
                var logits = model.Network.call(stack(xs));
                var y = stack(ys);
                per = Enumerable.Range(0, 9).Select(i => SegmentationLosses.SoftDice(logits.narrow(0, i, 1), y.narrow(0, i, 1)).ToDouble()).ToArray();
            }
            model.Network.eval();
            double real = per.Where((_, i) => !flags[i]).Average(), aug = per.Where((_, i) => flags[i]).Average();
            double expected = mode == SampleWeightMode.IsAugmentedFlag
                ? real + aug                                                  // Eq. 11: mean over real + mean over augmented
                : per.Where((_, i) => flags[i]).Average();                    // weights 0/1: the mean over the flagged rows
            Assert.AreEqual(expected, model.History[0].TrainLoss, 1e-5, $"{mode}");
            Assert.AreNotEqual(per.Average(), model.History[0].TrainLoss, 1e-3, $"{mode}: the weights must change the loss");
        }
    }

    [TestMethod]
    public void BestCheckpoint_IsRestored_AndEqualsTheBestValidationEpoch()
    {
        using var train = Discs(32, 5);
        using var val = Discs(8, 55);
        double[] Run(bool restore, out double finalDice, out List<SegmentationEpochRecord> history)
        {
            var ctx = new MedSegContext(seed: 5);
            var o = Options(epochs: 6);
            o.LearningRate = 3e-2;
            o.ValidationData = val;
            o.RestoreBestCheckpoint = restore;
            using var m = new SegmentationTrainer(ctx, o).Fit(train);
            history = m.History.ToList();
            finalDice = Evaluate(ctx, m, val).MeanDice;
            return m.History.Select(h => h.ValidationDice!.Value).ToArray();
        }
        var withRestore = Run(true, out double restored, out var h1);
        var without = Run(false, out double last, out _);
        CollectionAssert.AreEqual(without, withRestore, "both runs follow the same trajectory");
        Assert.AreEqual(withRestore.Max(), restored, 1e-12, "restored weights give the best validation mDice");
        Assert.AreEqual(without[^1], last, 1e-12, "without restore the model holds the last epoch's weights");
        Assert.AreEqual(h1.First(h => h.ValidationDice == withRestore.Max()).Epoch, h1.MaxBy(h => h.ValidationDice)!.Epoch);
    }

    [TestMethod]
    public void EarlyStopping_StopsAfterPatienceEpochsWithoutImprovement()
    {
        var ctx = new MedSegContext(seed: 6);
        using var train = Discs(16, 6);
        using var val = Discs(8, 66);
        var o = Options(epochs: 10);
        o.LearningRate = 1e-12; // the weights barely move: the validation mDice never improves on epoch 1
        o.ValidationData = val;
        o.EarlyStoppingPatience = 2;
        using var m = new SegmentationTrainer(ctx, o).Fit(train);
        Assert.AreEqual(3, m.History.Count);
        Assert.AreEqual(1, m.BestEpoch!.Epoch);
    }

    [TestMethod]
    [DataRow(LearningRateSchedule.Cosine, 0)]
    [DataRow(LearningRateSchedule.Step, 0)]
    public void ResumeWithASchedule_GivesTheStraightRunsLearningRates(LearningRateSchedule schedule, int warmup)
    {
        // The restored optimizer state carries the last epoch's rate; replaying the schedule from it would anneal twice.
        using var train = Discs(12, 17);
        var o = Options(epochs: 4);
        o.Schedule = schedule;
        o.WarmupEpochs = warmup;
        o.StepSize = 1;
        o.StepGamma = 0.5;
        ResumeCheckpoint(o, train);
    }

    private static void ResumeCheckpoint(SegmentationTrainerOptions baseOptions, IDataView train)
    {
        var rates = new List<double>();
        MLNetMedSeg.Tests.Core.Training.ResumeCheck.Run(4, 2, (folder, onEpoch, ct) =>
        {
            var o = baseOptions.Clone();
            o.CheckpointFolder = folder;
            if (onEpoch is not null) o.EpochCompleted = r => { rates.Add(r.LearningRate); onEpoch(r.Epoch); };
            using var m = new SegmentationTrainer(new MedSegContext(seed: 5), o).Fit(train, ct);
            return MLNetMedSeg.Tests.Core.Training.ResumeCheck.Weights(m.Network);
        });
        // rates: epochs 1–2 of the killed run, then 3–4 of the resumed one — the straight run's four rates.
        var straight = new List<double>();
        var so = baseOptions.Clone();
        so.EpochCompleted = r => straight.Add(r.LearningRate);
        using (new SegmentationTrainer(new MedSegContext(seed: 5), so).Fit(train)) { }
        CollectionAssert.AreEqual(straight, rates);
    }

    [TestMethod]
    public void ResumeAfterKill_GivesTheSameWeightsAsAStraightRun()
    {
        using var train = Discs(20, 7);
        using var val = Discs(6, 77);
        string straight = TempFolder(), killed = TempFolder();
        try
        {
            SegmentationTrainerOptions Opts(string folder)
            {
                var o = Options(epochs: 4);
                o.CheckpointFolder = folder;
                o.Augmentation = ClassicAugmentationKind.CutMix;
                o.Schedule = LearningRateSchedule.Cosine;
                o.WarmupEpochs = 1;
                o.ValidationData = val;
                return o;
            }
            Dictionary<string, float[]> expected;
            List<SegmentationEpochRecord> expectedHistory;
            {
                var ctx = new MedSegContext(seed: 7);
                using var m = new SegmentationTrainer(ctx, Opts(straight)).Fit(train);
                expected = Weights(m);
                expectedHistory = m.History.ToList();
            }
            // "Kill" after epoch 2: cancel from the epoch callback; the epoch-2 checkpoint is on disk.
            using (var cts = new CancellationTokenSource())
            {
                var ctx = new MedSegContext(seed: 7);
                var o = Opts(killed);
                o.EpochCompleted = r => { if (r.Epoch == 2) cts.Cancel(); };
                Assert.ThrowsException<OperationCanceledException>(() => new SegmentationTrainer(ctx, o).Fit(train, cts.Token));
            }
            Assert.IsTrue(File.Exists(Path.Combine(killed, "checkpoint.json")));
            {
                var ctx = new MedSegContext(seed: 7);
                var resumedEpochs = new List<int>();
                var o = Opts(killed);
                o.EpochCompleted = r => resumedEpochs.Add(r.Epoch);
                using var m = new SegmentationTrainer(ctx, o).Fit(train);
                CollectionAssert.AreEqual(new[] { 3, 4 }, resumedEpochs, "only epochs 3 and 4 run after resuming");
                var got = Weights(m);
                CollectionAssert.AreEquivalent(expected.Keys.ToList(), got.Keys.ToList());
                foreach (var (k, v) in expected) CollectionAssert.AreEqual(v, got[k], $"weight {k}");
                CollectionAssert.AreEqual(expectedHistory.Select(h => (h.Epoch, h.TrainLoss, h.ValidationDice, h.LearningRate)).ToList(),
                    m.History.Select(h => (h.Epoch, h.TrainLoss, h.ValidationDice, h.LearningRate)).ToList());
            }
            // A different seed must not resume from this folder.
            var other = new MedSegContext(seed: 8);
            var ex = Assert.ThrowsException<InvalidOperationException>(() => new SegmentationTrainer(other, Opts(killed)).Fit(train));
            StringAssert.Contains(ex.Message, "checkpoint");
        }
        finally
        {
            Directory.Delete(straight, true);
            Directory.Delete(killed, true);
        }
    }

    [TestMethod]
    [DataRow(SegmentationArchitecture.UNet)]
    [DataRow(SegmentationArchitecture.DeepLabV3Plus)] // ASPP dropout: its masks must come from the trainer's generator
    public void SameSeed_SameModel_OtherSeed_OtherModel(SegmentationArchitecture arch)
    {
        using var data = Discs(10, 15);
        Dictionary<string, float[]> Train(int seed)
        {
            var ctx = new MedSegContext(seed: seed);
            var o = Options(epochs: 2);
            if (arch == SegmentationArchitecture.DeepLabV3Plus)
                o.Network = new SegmentationNetworkOptions
                {
                    Architecture = arch, EncoderWidths = [16, 16, 32, 64, 64], ResNetBlocks = [1, 1, 1, 1], DecoderWidths = [32],
                    LowLevelChannels = 16, AtrousRates = [2, 4, 6], AsppDropout = 0.5,
                };
            o.Augmentation = ClassicAugmentationKind.Basic;
            using var m = new SegmentationTrainer(ctx, o).Fit(data);
            return Weights(m);
        }
        var a = Train(15);
        var b = Train(15);
        var c = Train(16);
        foreach (var (k, v) in a) CollectionAssert.AreEqual(v, b[k], $"weight {k} with the same seed");
        Assert.IsTrue(a.Any(e => !e.Value.SequenceEqual(c[e.Key])), "another seed should give another model");
    }

    [TestMethod]
    public void CorruptCheckpoint_IsAClearError()
    {
        using var data = Discs(4, 16);
        string folder = TempFolder();
        try
        {
            File.WriteAllText(Path.Combine(folder, "checkpoint.json"), "{ not json");
            var ctx = new MedSegContext(seed: 16);
            var o = Options(epochs: 1);
            o.CheckpointFolder = folder;
            var ex = Assert.ThrowsException<InvalidDataException>(() => new SegmentationTrainer(ctx, o).Fit(data));
            StringAssert.Contains(ex.Message, "checkpoint.json");
        }
        finally { Directory.Delete(folder, true); }
    }

    private sealed class Collect(Action<TrainingProgress>? then = null) : IProgress<TrainingProgress>
    {
        public List<TrainingProgress> Reports { get; } = [];
        public void Report(TrainingProgress value)
        {
            Reports.Add(value);
            then?.Invoke(value);
        }
    }

    [TestMethod]
    public void Progress_Log_AndCancellationMidEpoch()
    {
        using var train = Discs(20, 17);
        using var val = Discs(4, 177);
        var ctx = new MedSegContext(seed: 17);
        var progress = new Collect();
        var log = new List<string>();
        ctx.Progress = progress;
        ctx.Log += (_, e) => log.Add(e.Message);
        var o = Options(epochs: 2);
        o.ValidationData = val;
        using (new SegmentationTrainer(ctx, o).Fit(train)) { }
        // 20 rows in batches of 8: 3 steps per epoch.
        Assert.AreEqual(6, progress.Reports.Count);
        CollectionAssert.AreEqual(new long[] { 1, 2, 3, 1, 2, 3 }, progress.Reports.Select(p => p.Step).ToArray());
        CollectionAssert.AreEqual(new[] { 1, 1, 1, 2, 2, 2 }, progress.Reports.Select(p => p.Epoch).ToArray());
        Assert.IsTrue(progress.Reports.All(p => p.Stage == "SegmentationTrainer" && p.StepsPerEpoch == 3 && p.Loss is double l && double.IsFinite(l)));
        Assert.IsTrue(progress.Reports.Skip(1).All(p => p.ItemsPerSecond > 0 && p.Eta is not null));
        Assert.AreEqual(2, log.Count(l => l.StartsWith("epoch ") && l.Contains(": loss ") && l.Contains("val mDice")), string.Join("\n", log));

        // Cancelling in the middle of epoch 1 stops at the next step.
        using var cts = new CancellationTokenSource();
        var ctx2 = new MedSegContext(seed: 17);
        var p2 = new Collect(p => { if (p.Step == 2) cts.Cancel(); });
        ctx2.Progress = p2;
        Assert.ThrowsException<OperationCanceledException>(() => new SegmentationTrainer(ctx2, Options(epochs: 2)).Fit(train, cts.Token));
        Assert.AreEqual(2, p2.Reports.Count);
    }

    [TestMethod]
    public void NaNLoss_ThrowsNamingEpochAndStep()
    {
        var ctx = new MedSegContext(seed: 9);
        using var data = Discs(8, 9, nanImage: true);
        var ex = Assert.ThrowsException<TrainingDivergedException>(() => new SegmentationTrainer(ctx, Options()).Fit(data));
        Assert.AreEqual(1, ex.Epoch);
        Assert.AreEqual(1, ex.Step);
        StringAssert.Contains(ex.Message, "epoch 1, step 1");
        StringAssert.Contains(ex.Message, "NaN");
    }

    [TestMethod]
    public void SchemaErrors_NameTheColumn()
    {
        var ctx = new MedSegContext(seed: 10);
        using var binary = Discs(4, 10);
        using var classes = Discs(4, 10, multiClass: true);
        // A binary mask for a 3-class head.
        var e1 = Assert.ThrowsException<SchemaException>(() => new SegmentationTrainer(ctx, Options(3)).Fit(binary));
        Assert.AreEqual("Mask", e1.ColumnName);
        // A class mask for a binary head.
        var e2 = Assert.ThrowsException<SchemaException>(() => new SegmentationTrainer(ctx, Options()).GetOutputSchema(classes.Schema));
        Assert.AreEqual("Mask", e2.ColumnName);
        // Wrong channel count.
        var o = Options();
        o.Network.InChannels = 1;
        var e3 = Assert.ThrowsException<SchemaException>(() => new SegmentationTrainer(ctx, o).Fit(binary));
        Assert.AreEqual("Image", e3.ColumnName);
        StringAssert.Contains(e3.Message, "channels");
        // Missing weight column.
        var ow = Options();
        ow.SampleWeightColumn = "Weight";
        var e4 = Assert.ThrowsException<SchemaException>(() => new SegmentationTrainer(ctx, ow).Fit(binary));
        Assert.AreEqual("Weight", e4.ColumnName);
        // Validation data is checked too, before training.
        var ov = Options();
        ov.ValidationData = classes;
        var e5 = Assert.ThrowsException<SchemaException>(() => new SegmentationTrainer(ctx, ov).Fit(binary));
        Assert.AreEqual("Mask", e5.ColumnName);
    }

    [TestMethod]
    public void TestTimeAugmentation_IsTheMeanOfTheThreeFlips()
    {
        var ctx = new MedSegContext(seed: 11);
        using var data = Discs(4, 11);
        var o = Options(epochs: 1);
        o.TestTimeAugmentation = true;
        using var model = new SegmentationTrainer(ctx, o).Fit(data);
        using var scope = NewDisposeScope();
        var scored = model.Transform(data);
        using var cur = scored.GetRowCursor("Image", "Probability", "Predicted");
        int rows = 0;
        while (cur.MoveNext())
        {
            var x = cur.GetTensor("Image").unsqueeze(0);
            Tensor expected;
            using (inference_mode())
            {
                var net = model.Network;
                var p0 = net.call(x).sigmoid();
                var ph = net.call(x.flip(3)).sigmoid().flip(3);
                var pv = net.call(x.flip(2)).sigmoid().flip(2);
                expected = p0.add(ph).add(pv).div(S(3.0)).squeeze(0);
                Assert.IsFalse(p0.allclose(ph, 1e-4, 1e-4), "the flips should differ for an untrained-ish network");
            }
            var prob = cur.GetTensor("Probability");
            Assert.IsTrue(prob.allclose(expected, 1e-5, 1e-6), "Probability = mean of identity, h-flip and v-flip");
            Assert.IsTrue(cur.GetTensor("Predicted").IsEqual(prob.ge(S(0.5)).to(ScalarType.Float32)));
            rows++;
        }
        Assert.AreEqual(4, rows);
    }

    [TestMethod]
    public void NoTensorLeak_AcrossEpochs()
    {
        var ctx = new MedSegContext(seed: 12);
        using var train = Discs(16, 12);
        using var val = Discs(4, 122);
        string folder = TempFolder();
        try
        {
            var counts = new List<long>();
            var o = Options(epochs: 5);
            o.ValidationData = val;
            o.Augmentation = ClassicAugmentationKind.Basic;
            o.CheckpointFolder = folder;
            o.EpochCompleted = _ =>
            {
                counts.Add(LiveTensors.Settled());
            };
            using (new SegmentationTrainer(ctx, o).Fit(train)) { }
            Assert.AreEqual(5, counts.Count);
            // Adam's state and the best weights exist from epoch 1 on; later epochs must not add tensors.
            Assert.AreEqual(counts[1], counts[4], $"live tensors per epoch: {string.Join(", ", counts)}");
        }
        finally { Directory.Delete(folder, true); }
    }

    [TestMethod]
    public void OutputView_PredictsInBatches_LikeOneRowAtATime()
    {
        var ctx = new MedSegContext(seed: 18);
        using var data = Discs(7, 18);
        var o = Options(epochs: 1);
        o.ValidationBatchSize = 3; // 7 rows: batches of 3, 3, 1
        using var model = new SegmentationTrainer(ctx, o).Fit(data);
        Assert.AreEqual(3, model.Options.BatchSize);
        using var scope = NewDisposeScope();
        var scored = model.Transform(data);
        using var cur = scored.GetRowCursor("Image", "Mask", "Probability", "Predicted");
        using var src = data.GetRowCursor("Image", "Mask");
        int rows = 0;
        while (cur.MoveNext())
        {
            Assert.IsTrue(src.MoveNext());
            Assert.AreEqual(src.Position, cur.Position);
            Assert.IsTrue(cur.GetTensor("Image").IsEqual(src.GetTensor("Image")), "images pass through");
            Assert.IsTrue(cur.GetTensor("Mask").IsEqual(src.GetTensor("Mask")), "masks pass through");
            var (p, m) = model.Predict(src.GetTensor("Image").unsqueeze(0));
            Assert.IsTrue(cur.GetTensor("Probability").allclose(p.squeeze(0), 1e-5, 1e-6), $"row {rows}: batched = single-row probability");
            Assert.IsTrue(cur.GetTensor("Predicted").IsEqual(cur.GetTensor("Probability").ge(S(0.5)).to(ScalarType.Float32)));
            rows++;
        }
        Assert.IsFalse(src.MoveNext());
        Assert.AreEqual(7, rows);
    }

    [TestMethod]
    public void SavedModel_PredictsBitIdentically_AndKeepsHistory()
    {
        var ctx = new MedSegContext(seed: 13);
        using var data = Discs(6, 13);
        string folder = TempFolder();
        try
        {
            using var model = new SegmentationTrainer(ctx, Options(epochs: 2)).Fit(data);
            string file = Path.Combine(folder, "model.zip");
            TestModels.Save(model, file);
            var loaded = TestModels.Load(file);
            try
            {
                var seg = loaded as SegmentationTransformer ?? throw new AssertFailedException($"loaded a {loaded.GetType().Name}");
                Assert.AreEqual(2, seg.History.Count);
                Assert.AreEqual(model.History[1].TrainLoss, seg.History[1].TrainLoss);
                using var scope = NewDisposeScope();
                var x = rand([3, 3, Size, Size], generator: new Generator(3));
                Assert.IsTrue(model.PredictProbabilities(x).IsEqual(seg.PredictProbabilities(x)));
            }
            finally { (loaded as IDisposable)?.Dispose(); }
        }
        finally { Directory.Delete(folder, true); }
    }
}
