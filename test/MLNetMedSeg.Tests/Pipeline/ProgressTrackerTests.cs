using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Pipeline;

[TestClass]
public class ProgressTrackerTests
{
    private sealed class FakeClock : TimeProvider
    {
        public long Ticks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => Ticks;
        public void Advance(double seconds) => Ticks += (long)Math.Round(seconds * TimeSpan.TicksPerSecond);
    }

    private sealed class Collect : IProgress<TrainingProgress>
    {
        public List<TrainingProgress> Items { get; } = [];
        public void Report(TrainingProgress value) => Items.Add(value);
    }

    [TestMethod]
    public void Step_ReportsEpochStepLossThroughputAndEta()
    {
        var ctx = new MedSegContext(seed: 1);
        var progress = new Collect();
        var logs = new List<LogEventArgs>();
        ctx.Progress = progress;
        ctx.Log += (_, e) => logs.Add(e);
        var clock = new FakeClock();
        var tracker = new ProgressTracker(ctx, "Trainer", epochs: 2, stepsPerEpoch: 4, timeProvider: clock);

        for (int epoch = 1; epoch <= 2; epoch++)
        {
            for (int step = 1; step <= 4; step++)
            {
                clock.Advance(0.5);
                var p = tracker.Step(loss: epoch * 10 + step, items: 8);
                Assert.AreEqual(epoch, p.Epoch);
                Assert.AreEqual(step, p.Step);
                Assert.AreEqual(2, p.Epochs);
                Assert.AreEqual(4, p.StepsPerEpoch);
                Assert.AreEqual(epoch * 10 + step, p.Loss);
                Assert.AreEqual(16.0, p.ItemsPerSecond!.Value, 1e-9, "8 items per 0.5 s");
                int done = (epoch - 1) * 4 + step;
                Assert.AreEqual(TimeSpan.FromSeconds(0.5 * done), p.Elapsed);
                Assert.AreEqual(TimeSpan.FromSeconds(0.5 * (8 - done)), p.Eta);
                Assert.AreEqual(done / 8.0, p.Fraction, 1e-12);
            }
            Assert.AreEqual(epoch * 10 + 2.5, tracker.EpochMeanLoss!.Value, 1e-12);
            tracker.EndEpoch();
        }
        Assert.AreEqual(8, progress.Items.Count);
        Assert.AreEqual(8, tracker.TotalSteps);
        // Logs: the first step, then each epoch's end (0.5 s steps never reach the 10 s interval).
        Assert.AreEqual(3, logs.Count, string.Join("\n", logs));
        Assert.IsTrue(logs.All(l => l.Source == "Trainer" && l.Level == LogLevel.Info));
        StringAssert.Contains(logs[0].Message, "epoch 1/2 step 1/4");
        StringAssert.Contains(logs[1].Message, "epoch 1/2 done: 4 steps, mean loss 12.5");
        StringAssert.Contains(logs[2].Message, "epoch 2/2 done: 4 steps, mean loss 22.5");
    }

    [TestMethod]
    public void Eta_UsesAMovingAverageOfRecentSteps_AndLogsByInterval()
    {
        var ctx = new MedSegContext(seed: 1);
        var logs = new List<string>();
        ctx.Log += (_, e) => logs.Add(e.Message);
        var clock = new FakeClock();
        var tracker = new ProgressTracker(ctx, "T", 1, 10, timeProvider: clock) { WindowSize = 2, LogInterval = TimeSpan.FromSeconds(5) };
        clock.Advance(1); tracker.Step(items: 1);
        clock.Advance(1); tracker.Step(items: 1);
        clock.Advance(4); var p = tracker.Step(items: 2); // window: 1 s and 4 s steps, 3 items
        Assert.AreEqual(3 / 5.0, p.ItemsPerSecond!.Value, 1e-12);
        Assert.AreEqual(TimeSpan.FromSeconds(7 * 2.5), p.Eta);
        // Logged at the first step and at t = 6 s (≥ 5 s after the first log at t = 1 s).
        Assert.AreEqual(2, logs.Count);
        clock.Advance(1); tracker.Step();
        Assert.AreEqual(2, logs.Count);
        Assert.AreEqual(4, tracker.Last!.Step);
    }

    [TestMethod]
    public void UnknownStepsPerEpoch_GivesNoEta()
    {
        var clock = new FakeClock();
        var tracker = new ProgressTracker(new MedSegContext(seed: 1), "T", 3, 0, timeProvider: clock);
        clock.Advance(1);
        var p = tracker.Step(0.5, 4);
        Assert.IsNull(p.Eta);
        Assert.AreEqual(4.0, p.ItemsPerSecond);
        Assert.AreEqual(0, p.Fraction);
    }

    [TestMethod]
    public void Cancellation_ThrowsFromStepAndEndEpoch()
    {
        using var cts = new CancellationTokenSource();
        var tracker = new ProgressTracker(new MedSegContext(seed: 1), "T", 1, 4, cts.Token);
        tracker.Step(1.0);
        cts.Cancel();
        Assert.ThrowsException<OperationCanceledException>(() => tracker.Step(1.0));
        Assert.ThrowsException<OperationCanceledException>(() => tracker.EndEpoch());
        Assert.ThrowsException<OperationCanceledException>(() => tracker.ThrowIfCancellationRequested());
        Assert.AreEqual(1, tracker.TotalSteps, "a cancelled step is not recorded");
        Assert.ThrowsException<OperationCanceledException>(() => new ProgressTracker(new MedSegContext(seed: 1), "T", 1, 4, cts.Token));
    }

    [TestMethod]
    public void RealClock_FieldsAreMonotonic()
    {
        var collect = new Collect();
        var ctx = new MedSegContext(seed: 1) { Progress = collect };
        var tracker = new ProgressTracker(ctx, "T", 2, 3);
        for (int e = 0; e < 2; e++)
        {
            for (int s = 0; s < 3; s++) { Thread.Sleep(2); tracker.Step(1, 1); }
            tracker.EndEpoch();
        }
        for (int i = 1; i < collect.Items.Count; i++)
        {
            Assert.IsTrue(collect.Items[i].Elapsed >= collect.Items[i - 1].Elapsed);
            Assert.IsTrue(collect.Items[i].Fraction > collect.Items[i - 1].Fraction);
        }
        Assert.AreEqual(1.0, collect.Items[^1].Fraction);
        Assert.AreEqual(TimeSpan.Zero, collect.Items[^1].Eta);
    }

    [TestMethod]
    public void Constructor_ValidatesArguments()
    {
        var ctx = new MedSegContext(seed: 1);
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => new ProgressTracker(ctx, "T", 0, 1));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => new ProgressTracker(ctx, "T", 1, -1));
        Assert.ThrowsException<ArgumentException>(() => new ProgressTracker(ctx, "", 1, 1));
    }
}
