namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// Stopping a long command: cancelling <c>medseg train</c> (its token in-process; Ctrl+C's SIGINT or SIGTERM on a real
/// process) stops the training loop at its next step with "error: cancelled" and exit code 130, writes no model and
/// keeps the checkpoint of the last finished epoch to resume from.
/// </summary>
[TestClass]
public sealed class CancellationCliTests : OneThreadCliTestBase
{
    /// <summary>A StringWriter that cancels <see cref="Source"/> once its text contains <see cref="Trigger"/>.</summary>
    private sealed class CancellingWriter(string trigger) : StringWriter
    {
        public CancellationTokenSource Source { get; } = new();
        public string Trigger { get; } = trigger;

        public override void Write(char value) { base.Write(value); Check(); }
        public override void Write(string? value) { base.Write(value); Check(); }
        public override void Write(char[] buffer, int index, int count) { base.Write(buffer, index, count); Check(); }

        private void Check()
        {
            if (!Source.IsCancellationRequested && GetStringBuilder().ToString().Contains(Trigger, StringComparison.Ordinal))
                Source.Cancel();
        }
    }

    private string[] TrainArgs(string data, string model, string checkpoints) =>
        ["train", "--data", data, "--size", "16", "--epochs", "500", "--batch", "3", "--val-fraction", "0", "--seed", "2",
         "--checkpoints", checkpoints, "--out", model];

    [TestMethod]
    public void CancelledTrain_StopsAtTheNextStep_WritesNoModel_KeepsTheCheckpoint()
    {
        string data = Path.Combine(_dir, "data"), model = Path.Combine(_dir, "model.zip"), checkpoints = Path.Combine(_dir, "ckpt");
        MakeData(data, 6, seed: 5);
        var stdout = new StringWriter();
        var stderr = new CancellingWriter("epoch 1:");

        int code = MedsegCli.Run(TrainArgs(data, model, checkpoints), stdout, stderr, stderr.Source.Token);

        string err = stderr.ToString();
        Assert.AreEqual(130, code, err);
        StringAssert.Contains(err, "error: cancelled");
        Assert.IsFalse(err.Contains("epoch 2:", StringComparison.Ordinal), "the loop stops within the epoch after the cancel: " + err);
        Assert.IsFalse(File.Exists(model), "a cancelled train writes no model");
        Assert.AreEqual("", stdout.ToString(), "nothing is reported as trained");
        Assert.IsTrue(Directory.EnumerateFileSystemEntries(checkpoints).Any(), "the finished epoch's checkpoint stays to resume from");
    }

    [TestMethod]
    public void CancelledDasp_StopsInItsAttackRound_WritesNoModel()
    {
        string data = Path.Combine(_dir, "data"), run = Path.Combine(_dir, "run");
        MakeData(data, 12, seed: 6);
        var stdout = new StringWriter();
        var stderr = new CancellingWriter("OnlineAttack");   // the first progress report of DASP's attack on the generated pairs
        int code = MedsegCli.Run(["dasp", "--data", data, "--size", "16", "--widths", "4,8", "--epochs", "50", "--batch", "4",
            "--diffusion-epochs", "1", "--diffusion-width", "8", "--timesteps", "20", "--sample-steps", "4", "--attack-steps", "2",
            "--sdedit-steps", "10", "--sdedit-depth", "2", "--attack-every", "1", "--methods", "dasp", "--robustness", "false",
            "--test-fraction", "0.2", "--out", run], stdout, stderr, stderr.Source.Token);

        string err = stderr.ToString();
        Assert.AreEqual(130, code, err);
        StringAssert.Contains(err, "error: cancelled");
        StringAssert.Contains(err, "OnlineAttack epoch 1/1", "cancelled in the attack round");
        Assert.IsFalse(err.Contains("SegmentationTrainer epoch 2/", StringComparison.Ordinal), "the segmenter's training did not go on: " + err);
        Assert.IsFalse(File.Exists(Path.Combine(run, "model.zip")), "a cancelled comparison writes no model");
    }

    [TestMethod]
    [DataRow(2, DisplayName = "SIGINT (Ctrl+C)")]
    [DataRow(15, DisplayName = "SIGTERM")]
    public void SignalledTrainProcess_ExitsCancelled(int signal)
    {
        string data = Path.Combine(_dir, "data"), model = Path.Combine(_dir, "model.zip"), checkpoints = Path.Combine(_dir, "ckpt");
        MakeData(data, 6, seed: 5);
        using var medseg = new ChildProcess("medseg.dll", TrainArgs(data, model, checkpoints));
        Assert.IsTrue(medseg.WaitForLine("epoch 1:", TimeSpan.FromMinutes(3)), "the first epoch did not finish: " + medseg.Output);
        medseg.Signal(signal);
        Assert.IsTrue(medseg.WaitForExit(TimeSpan.FromSeconds(60)), "the signalled process did not exit within a minute: " + medseg.Output);
        string text = medseg.Output;
        Assert.AreEqual(130, medseg.ExitCode, text);
        StringAssert.Contains(text, (signal == 2 ? "SIGINT" : "SIGTERM") + ": stopping at the next step");
        StringAssert.Contains(text, "error: cancelled", "the loop saw the cancellation and said so (not a forced exit)");
        Assert.IsFalse(File.Exists(model), "a cancelled train writes no model");
    }
}
