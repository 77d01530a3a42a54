using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Pipeline;

[TestClass]
public class ConsoleProgressBarTests
{
    private sealed class FakeClock : TimeProvider
    {
        public long Ticks;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public override long GetTimestamp() => Ticks;
    }

    private static TrainingProgress P(string stage, long step, double? loss = 0.5) =>
        new(stage, 1, 1, step, 4, loss, 2.0, TimeSpan.FromSeconds(step), TimeSpan.FromSeconds(4 - step));

    [TestMethod]
    public void Format_DrawsTheBarAndPercentage()
    {
        var bar = new ConsoleProgressBar(new StringWriter(), interactive: true, width: 8);
        string s = bar.Format(P("Trainer", 1));
        StringAssert.StartsWith(s, "[##......]  25% Trainer epoch 1/1 step 1/4");
        StringAssert.StartsWith(bar.Format(P("Trainer", 4)), "[########] 100% ");
        StringAssert.StartsWith(bar.Format(new TrainingProgress("X", 1, 1, 0, 0, null, null, TimeSpan.Zero, null)), "[........]   0% X");
    }

    [TestMethod]
    public void Interactive_RedrawsInPlace_PadsShorterLines_EndsLineWhenDone()
    {
        var w = new StringWriter();
        var bar = new ConsoleProgressBar(w, interactive: true, width: 8);
        var p1 = P("A", 1);
        var p2 = P("A", 2);
        var p3 = P("A", 3, loss: null); // shorter text
        var p4 = P("A", 4);
        foreach (var p in new[] { p1, p2, p3, p4 }) bar.Report(p);
        string t1 = bar.Format(p1), t2 = bar.Format(p2), t3 = bar.Format(p3), t4 = bar.Format(p4);
        Assert.IsTrue(t3.Length < t2.Length);
        string expected = t1 + "\r" + t2 + "\r" + t3 + new string(' ', t2.Length - t3.Length) + "\r" + t4 + Environment.NewLine;
        Assert.AreEqual(expected, w.ToString());

        // A new stage starts on a new line.
        var w2 = new StringWriter();
        var bar2 = new ConsoleProgressBar(w2, interactive: true, width: 8);
        bar2.Report(P("A", 1));
        bar2.Report(P("B", 1));
        bar2.Complete();
        Assert.AreEqual(bar2.Format(P("A", 1)) + Environment.NewLine + bar2.Format(P("B", 1)) + Environment.NewLine, w2.ToString());
    }

    [TestMethod]
    public void Redirected_WritesThrottledLines_PlusStageChangesAndCompletion()
    {
        var w = new StringWriter();
        var clock = new FakeClock();
        var bar = new ConsoleProgressBar(w, interactive: false, width: 8, timeProvider: clock) { RedirectedInterval = TimeSpan.FromSeconds(5) };
        bar.Report(P("A", 1));                                     // first: written
        clock.Ticks += TimeSpan.TicksPerSecond; bar.Report(P("A", 2)); // 1 s later: skipped
        clock.Ticks += 5 * TimeSpan.TicksPerSecond; bar.Report(P("A", 3)); // 6 s after the last line: written
        bar.Report(P("A", 4));                                     // done: written
        bar.Report(P("B", 1));                                     // new stage: written
        bar.Report(P("B", 2));                                     // skipped
        var lines = w.ToString().Split(Environment.NewLine, StringSplitOptions.RemoveEmptyEntries);
        CollectionAssert.AreEqual(new[] { bar.Format(P("A", 1)), bar.Format(P("A", 3)), bar.Format(P("A", 4)), bar.Format(P("B", 1)) }, lines);
        Assert.IsFalse(w.ToString().Contains('\r'));
    }

    [TestMethod]
    public void AttachTo_SetsTheContextsProgress_AndTrackerDrivesIt()
    {
        var w = new StringWriter();
        var ctx = new MedSegContext(seed: 1);
        var bar = ConsoleProgressBar.AttachTo(ctx, w, interactive: true);
        Assert.AreSame(bar, ctx.Progress);
        var tracker = new ProgressTracker(ctx, "Fit", 1, 2);
        tracker.Step(0.25, 1);
        tracker.Step(0.125, 1);
        StringAssert.Contains(w.ToString(), "Fit epoch 1/1 step 2/2");
        StringAssert.EndsWith(w.ToString(), Environment.NewLine);
    }
}
