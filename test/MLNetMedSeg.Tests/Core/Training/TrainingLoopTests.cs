using MLNetMedSeg.Core;
using MLNetMedSeg.Core.Training;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Core.Training;

/// <summary>
/// The shared training loop on a toy process (least squares y = 3x − 1 with one Linear layer and SGD): loss falls,
/// events arrive in order, NaN stops the run naming the step, cancellation stops it, a checkpointed run resumed
/// after an interruption ends with the same weights as an uninterrupted one, and the handlers keep what they promise.
/// </summary>
[TestClass]
public sealed class TrainingLoopTests
{
    /// <summary>y = 3x − 1 on 40 points; SGD on one Linear(1, 1) from a seeded init.</summary>
    private sealed class LineProcess : TrainingProcess, IDisposable
    {
        private readonly InMemoryDataView _data;
        private readonly int _batch;
        private readonly ulong _seed;
        public readonly nn.Module<Tensor, Tensor> Net;
        public readonly optim.Optimizer Opt;
        public readonly List<string> Events = [];
        public Func<int, long, double?>? Override;   // (epoch, step) → a loss to report instead

        public LineProcess(ulong seed = 7, int batch = 8, int rows = 40)
        {
            _seed = seed;
            _batch = batch;
            var xs = new List<Tensor>();
            var ys = new List<Tensor>();
            for (int i = 0; i < rows; i++)
            {
                float x = (i - rows / 2f) / rows;
                xs.Add(tensor(new[] { x }));
                ys.Add(tensor(new[] { 3 * x - 1 }));
            }
            _data = InMemoryDataView.Create(("x", new TensorColumnType(ScalarType.Float32, [1]), xs), ("y", new TensorColumnType(ScalarType.Float32, [1]), ys));
            using var g = new Generator(seed);
            Net = nn.Linear(1, 1);
            using (no_grad())
                foreach (var p in Net.parameters()) p.uniform_(-1, 1, generator: g);
            Opt = optim.SGD(Net.parameters(), 0.5);
        }

        public override string Name => "line";
        public override long? StepsPerEpoch => (_data.RowCount + _batch - 1) / _batch;
        public override double? LearningRate => 0.5;

        internal override IEnumerable<DataBatch> Batches(TrainingState state) =>
            _data.GetBatches(["x", "y"], _batch, new Random(1000 + state.Epoch), CPU);

        internal override StepResult Step(DataBatch batch, TrainingState state)
        {
            Opt.zero_grad();
            var loss = nn.functional.mse_loss(Net.call(batch["x"]), batch["y"]);
            loss.backward();
            Opt.step();
            double v = loss.ToDouble();
            if (Override?.Invoke(state.Epoch, state.StepInEpoch + 1) is double o) v = o;
            return new StepResult(v, batch.Count, new Dictionary<string, double> { ["half"] = v / 2 });
        }

        public override void OnStarted(TrainingState s) => Events.Add("started");
        public override void OnEpochStarted(TrainingState s) => Events.Add($"epoch {s.Epoch}");
        public override void OnEpochCompleted(TrainingState s, EpochSummary e) => Events.Add($"end {e.Epoch}");
        public override void OnCompleted(TrainingState s) => Events.Add("completed");
        public override void SaveState(CheckpointState c) { c.Put("net", Net); c.Put("opt", Opt); }
        public override void LoadState(CheckpointState c) { c.Load("net", Net); c.Load("opt", Opt); }

        public float[] Weights() => Net.parameters().SelectMany(p => p.detach().data<float>().ToArray()).ToArray();

        public void Dispose()
        {
            Opt.Dispose();
            Net.Dispose();
            _data.Dispose();
        }
    }

    private static string TempFolder()
    {
        var d = Path.Combine(Path.GetTempPath(), "medseg-loop-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(d);
        return d;
    }

    [TestMethod]
    public void LossFalls_EventsInOrder_TermsAveraged()
    {
        var ctx = new MedSegContext(1);
        using var p = new LineProcess();
        var progress = new List<TrainingProgress>();
        ctx.Progress = new SyncProgress<TrainingProgress>(progress.Add);
        var state = new TrainingLoop(ctx, "Line", 6).Run(p);
        Assert.AreEqual(6, state.History.Count);
        Assert.IsTrue(state.History[^1].Loss < 0.1 * state.History[0].Loss, $"loss {state.History[0].Loss} → {state.History[^1].Loss}");
        foreach (var e in state.History)
        {
            Assert.AreEqual(e.Loss / 2, e.Term("half")!.Value, 1e-12, "terms are averaged over the epoch's steps as the loss is");
            Assert.AreEqual(5, e.Steps);
            Assert.AreEqual(40, e.Items);
            Assert.AreEqual(0.5, e.LearningRate);
        }
        CollectionAssert.AreEqual(new[] { "started", "epoch 1", "end 1", "epoch 2", "end 2" }, p.Events.Take(5).ToArray());
        Assert.AreEqual("completed", p.Events[^1]);
        Assert.AreEqual(30, progress.Count, "one progress report per step");
        Assert.AreEqual(6, progress[^1].Epoch);
        Assert.AreEqual(5, progress[^1].Step);
    }

    [TestMethod]
    public void NaNLoss_StopsWithTheEpochAndStep()
    {
        using var p = new LineProcess { Override = (e, s) => e == 2 && s == 3 ? double.NaN : null };
        var ex = Assert.ThrowsException<TrainingDivergedException>(() => new TrainingLoop(new MedSegContext(1), "Line", 4).Run(p));
        Assert.AreEqual(2, ex.Epoch);
        Assert.AreEqual(3, ex.Step);
        StringAssert.Contains(ex.Message, "Line:");
        StringAssert.Contains(ex.Message, "half term is NaN", "a non-finite term is named");
    }

    [TestMethod]
    public void ContextCancellation_StopsAtTheNextStep()
    {
        using var cts = new CancellationTokenSource();
        var ctx = new MedSegContext(1) { CancellationToken = cts.Token };
        using var p = new LineProcess();
        int steps = 0;
        p.Override = (e, s) => { if (++steps == 7) cts.Cancel(); return null; };
        Assert.ThrowsException<OperationCanceledException>(() => new TrainingLoop(ctx, "Line", 4).Run(p));
        Assert.AreEqual(7, steps, "no step runs after the cancellation");
    }

    [TestMethod]
    public void ResumedRun_EndsWithTheWeightsOfAnUninterruptedOne()
    {
        float[] expected;
        using (var p = new LineProcess()) { new TrainingLoop(new MedSegContext(1), "Line", 5).Run(p); expected = p.Weights(); }
        string folder = TempFolder();
        try
        {
            using var cts = new CancellationTokenSource();
            using (var p = new LineProcess())
            {
                var loop = new TrainingLoop(new MedSegContext(1) { CancellationToken = cts.Token }, "Line", 5)
                {
                    CheckpointFolder = folder, Fingerprint = new { lr = 0.5 },
                    EpochCompleted = e => { if (e.Epoch == 2) cts.Cancel(); },
                };
                Assert.ThrowsException<OperationCanceledException>(() => loop.Run(p));
            }
            Assert.IsTrue(File.Exists(Path.Combine(folder, "checkpoint.json")));
            using (var p = new LineProcess(seed: 99))   // other initial weights: the checkpoint's replace them
            {
                var state = new TrainingLoop(new MedSegContext(1), "Line", 5) { CheckpointFolder = folder, Fingerprint = new { lr = 0.5 } }.Run(p);
                Assert.AreEqual(2, state.ResumedEpochs);
                Assert.AreEqual(5, state.History.Count, "the history includes the checkpoint's epochs");
                CollectionAssert.AreEqual(new[] { "started", "epoch 3" }, p.Events.Take(2).ToArray(), "the resumed run starts at epoch 3");
                CollectionAssert.AreEqual(expected, p.Weights(), "bit-identical to the uninterrupted run");
            }
            using (var p = new LineProcess())
            {
                var ex = Assert.ThrowsException<InvalidOperationException>(() =>
                    new TrainingLoop(new MedSegContext(1), "Line", 5) { CheckpointFolder = folder, Fingerprint = new { lr = 0.1 } }.Run(p));
                StringAssert.Contains(ex.Message, folder);
                StringAssert.Contains(ex.Message, "other options");
            }
            using (var p = new LineProcess())
            {
                var ex = Assert.ThrowsException<InvalidDataException>(() =>
                    new TrainingLoop(new MedSegContext(1), "Other", 5) { CheckpointFolder = folder, Fingerprint = new { lr = 0.5 } }.Run(p));
                StringAssert.Contains(ex.Message, "written by Line");
            }
        }
        finally { Directory.Delete(folder, true); }
    }

    [TestMethod]
    public void TruncatedCheckpoint_IsAClearError()
    {
        string folder = TempFolder();
        try
        {
            using (var p = new LineProcess()) new TrainingLoop(new MedSegContext(1), "Line", 1) { CheckpointFolder = folder }.Run(p);
            File.WriteAllText(Path.Combine(folder, "checkpoint.json"), "{\"Version\": 2, \"Epo");
            using var p2 = new LineProcess();
            var ex = Assert.ThrowsException<InvalidDataException>(() => new TrainingLoop(new MedSegContext(1), "Line", 2) { CheckpointFolder = folder }.Run(p2));
            StringAssert.Contains(ex.Message, Path.Combine(folder, "checkpoint.json"));
        }
        finally { Directory.Delete(folder, true); }
    }

    [TestMethod]
    public void Validation_EarlyStopping_RestoresBest_AndResumesWithIt()
    {
        using var p = new LineProcess();
        // A metric that peaks at epoch 2, then falls: patience 2 stops after epoch 4 and the epoch-2 weights come back.
        double[] scores = [0.5, 0.9, 0.8, 0.7, 0.95, 0.99];
        float[]? atBest = null;
        var v = new ValidationHandler("score", p.Net, s => { if (s.Epoch == 2) atBest = p.Weights(); return scores[s.Epoch - 1]; })
        {
            RestoreBest = true, Patience = 2,
        };
        var loop = new TrainingLoop(new MedSegContext(1), "Line", 6);
        loop.Handlers.Add(v);
        var state = loop.Run(p);
        Assert.AreEqual(4, state.History.Count, "stopped 2 epochs after the best");
        StringAssert.Contains(state.StopReason, "early stopping");
        Assert.AreEqual(0.9, v.Best);
        Assert.AreEqual(2, v.BestEpoch);
        Assert.AreEqual(0.8, state.History[2].Metric("score"));
        CollectionAssert.AreEqual(atBest, p.Weights(), "the best epoch's weights are restored");
        v.Dispose();
    }

    [TestMethod]
    public void Ema_DecayWarmsUp_AndFollowsTheWeights()
    {
        Assert.AreEqual(0.1, EmaHandler.DecayAt(0.999, true, 0), 1e-12);
        Assert.AreEqual(11.0 / 20, EmaHandler.DecayAt(0.999, true, 10), 1e-12);
        Assert.AreEqual(0.999, EmaHandler.DecayAt(0.999, true, 1_000_000), 1e-12);
        Assert.AreEqual(0.9, EmaHandler.DecayAt(0.9, false, 0), 1e-12);
        using var p = new LineProcess();
        using var ema = new ExponentialMovingAverage(p.Net, 0.5);
        var history = new List<float[]>();
        var loop = new TrainingLoop(new MedSegContext(1), "Line", 3);
        loop.Handlers.Add(new EmaHandler(ema, p.Net, 0.5, warmup: false));
        loop.Handlers.Add(new StepSpy(() => history.Add(p.Weights())));   // after the EMA's update: the weights it averaged
        var initial = p.Weights();
        loop.Run(p);
        Assert.AreEqual(15, ema.Updates, "one update per step");
        Assert.AreEqual(15, history.Count);
        var expected = initial.Select(v => (double)v).ToArray();
        foreach (var w in history)
            for (int i = 0; i < w.Length; i++) expected[i] = 0.5 * expected[i] + 0.5 * w[i];
        var shadow = ema.State.Values.SelectMany(t => t.data<float>().ToArray()).ToArray();
        for (int i = 0; i < shadow.Length; i++) Assert.AreEqual(expected[i], shadow[i], 1e-5, "shadow ← 0.5·shadow + 0.5·weights after every step");
    }

    [TestMethod]
    public void EverySkippedBatch_IsAnErrorWithTheReason_DuplicateHandlerNamesRefused()
    {
        using var p = new SkippingProcess();
        var ex = Assert.ThrowsException<InvalidOperationException>(() => new TrainingLoop(new MedSegContext(1), "Skip", 1).Run(p));
        StringAssert.Contains(ex.Message, "too small");
        using var q = new LineProcess();
        var loop = new TrainingLoop(new MedSegContext(1), "Line", 1);
        loop.Handlers.Add(new EveryEpochsHandler("grid", 1, _ => { }));
        loop.Handlers.Add(new EveryEpochsHandler("grid", 2, _ => { }));
        Assert.ThrowsException<ArgumentException>(() => loop.Run(q));
    }

    [TestMethod]
    public void EveryEpochsHandler_RunsOnSchedule_NotAfterTheLastEpoch()
    {
        using var p = new LineProcess();
        var ran = new List<int>();
        var loop = new TrainingLoop(new MedSegContext(1), "Line", 6);
        loop.Handlers.Add(new EveryEpochsHandler("grid", 2, s => ran.Add(s.Epoch)));
        loop.Run(p);
        CollectionAssert.AreEqual(new[] { 2, 4 }, ran);
    }

    [TestMethod]
    public void TensorsDoNotLeak()
    {
        using var p = new LineProcess();
        new TrainingLoop(new MedSegContext(1), "Line", 1).Run(p);   // warm up lazily created state
        long before = LiveTensors.Settled();
        new TrainingLoop(new MedSegContext(1), "Line", 3).Run(p);
        Assert.AreEqual(before, LiveTensors.Settled());
    }

    private sealed class SkippingProcess : TrainingProcess, IDisposable
    {
        private readonly InMemoryDataView _data = InMemoryDataView.Create(("x", new TensorColumnType(ScalarType.Float32, [1]), new List<Tensor> { zeros(1), zeros(1) }));
        public override long? StepsPerEpoch => 1;
        internal override IEnumerable<DataBatch> Batches(TrainingState state) => _data.GetBatches(["x"], 4, null, CPU);
        internal override StepResult Step(DataBatch batch, TrainingState state) => StepResult.Skip("the batch is too small");
        public void Dispose() => _data.Dispose();
    }

    private sealed class StepSpy(Action onStep) : TrainingHandler
    {
        public override void OnStepCompleted(TrainingState state, StepResult result) => onStep();
    }

    private sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }
}
