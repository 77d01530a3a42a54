using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

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

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    [TestMethod]
    [DataRow(2, DisplayName = "SIGINT (Ctrl+C)")]
    [DataRow(15, DisplayName = "SIGTERM")]
    public void SignalledTrainProcess_ExitsCancelled(int signal)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) Assert.Inconclusive("POSIX signals only");
        string data = Path.Combine(_dir, "data"), model = Path.Combine(_dir, "model.zip"), checkpoints = Path.Combine(_dir, "ckpt");
        MakeData(data, 6, seed: 5);
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "medseg.dll"));
        foreach (var a in TrainArgs(data, model, checkpoints)) start.ArgumentList.Add(a);
        start.Environment["MEDSEG_NUM_THREADS"] = "1";

        using var process = Process.Start(start)!;
        var err = new StringBuilder();
        using var firstEpoch = new ManualResetEventSlim();
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) return;
            lock (err) err.AppendLine(e.Data);
            if (e.Data.StartsWith("epoch 1:", StringComparison.Ordinal)) firstEpoch.Set();
        };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        try
        {
            bool started = firstEpoch.Wait(TimeSpan.FromMinutes(3));
            Assert.IsTrue(started, "the first epoch did not finish: " + err);
            Assert.AreEqual(0, kill(process.Id, signal), $"kill({signal}) failed: errno {Marshal.GetLastPInvokeError()}");
            Assert.IsTrue(process.WaitForExit(TimeSpan.FromSeconds(60)), "the signalled process did not exit within a minute: " + err);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
        process.WaitForExit();
        string text;
        lock (err) text = err.ToString();
        Assert.AreEqual(130, process.ExitCode, text);
        StringAssert.Contains(text, (signal == 2 ? "SIGINT" : "SIGTERM") + ": stopping at the next step");
        StringAssert.Contains(text, "error: cancelled", "the loop saw the cancellation and said so (not a forced exit)");
        Assert.IsFalse(File.Exists(model), "a cancelled train writes no model");
    }
}
