using System.CommandLine;
using System.Runtime.InteropServices;
using MLNetMedSeg.Cli.Commands;

namespace MLNetMedSeg.Cli;

/// <summary>
/// The <c>medseg</c> tool. <see cref="Run"/> parses and runs one command line, writing to the given writers, and returns
/// the exit code: 0 on success, 1 when the command failed (the reason is printed as "error: ..."), 2 for usage errors,
/// 130 when it was cancelled (Ctrl+C, SIGINT or SIGTERM, or <c>cancellationToken</c>).
/// </summary>
public static class MedsegCli
{
    /// <summary>
    /// Parses and runs one command line. The first Ctrl+C (SIGINT) or SIGTERM cancels the command: its loops stop at
    /// their next step (a checkpoint folder keeps the last finished epoch) and it exits with 130; a second one ends the
    /// process at once, as the signal's default does.
    /// </summary>
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr, CancellationToken cancellationToken = default)
    {
        var console = new CliConsole(stdout, stderr);
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        void OnSignal(PosixSignalContext signal)
        {
            if (cancel.IsCancellationRequested) return;   // the second: the signal's default ends the process
            signal.Cancel = true;
            stderr.WriteLine($"{signal.Signal}: stopping at the next step (once more to stop at once)");
            cancel.Cancel();
        }
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);

        var root = new RootCommand("medseg: train, apply and evaluate medical image segmentation models (MLNetMedSeg)")
        {
            TrainCommand.Create(console),
            PredictCommand.Create(console),
            EvaluateCommand.Create(console),
            InfoCommand.Create(console),
            AttackCommand.Create(console),
            DaspCommand.Create(console),
            DaspSummaryCommand.Create(console),
            GenerateCommand.Create(console),
            DeformAttackCommand.Create(console),
            QualityCommand.Create(console),
            SynthesizeCommand.Create(console),
        };
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            foreach (var e in parse.Errors) stderr.WriteLine($"error: {e.Message}");
            stderr.WriteLine("run 'medseg --help' (or 'medseg <command> --help') for usage");
            return 2;
        }
        var config = new InvocationConfiguration
        {
            Output = stdout,
            Error = stderr,
            EnableDefaultExceptionHandler = false,
            ProcessTerminationTimeout = null,   // signals are handled above
        };
        return parse.InvokeAsync(config, cancel.Token).GetAwaiter().GetResult();
    }
}

/// <summary>Where a command writes, and the uniform error handling of every verb.</summary>
internal sealed class CliConsole(TextWriter output, TextWriter error)
{
    public TextWriter Out { get; } = output;
    public TextWriter Err { get; } = error;

    /// <summary>Exit code of a cancelled command (128 + SIGINT, as shells report an interrupted one).</summary>
    public const int CancelledExitCode = 130;

    /// <summary>A verb's action: <see cref="Guard"/> run on the calling thread, as the task System.CommandLine takes.</summary>
    public Task<int> Invoke(Func<int> body, CancellationToken cancellationToken) => Task.FromResult(Guard(body, cancellationToken));

    /// <summary>
    /// Runs a verb's body: cancellation through <paramref name="cancellationToken"/> becomes "error: cancelled" and
    /// <see cref="CancelledExitCode"/>, any other exception "error: message" on stderr and exit code 1.
    /// </summary>
    public int Guard(Func<int> body, CancellationToken cancellationToken = default)
    {
        try
        {
            return body();
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Err.WriteLine("error: cancelled");
            return CancelledExitCode;
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            Err.WriteLine($"error: {Describe(ex)}");
            return 1;
        }
    }

    private static string Describe(Exception ex)
    {
        var msg = ex.Message;
        for (var inner = ex.InnerException; inner is not null; inner = inner.InnerException)
            if (!msg.Contains(inner.Message, StringComparison.Ordinal)) msg += $" ({inner.Message})";
        return msg;
    }
}
