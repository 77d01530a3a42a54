using System.CommandLine;
using MLNetMedSeg.Cli.Commands;

namespace MLNetMedSeg.Cli;

/// <summary>
/// The <c>medseg</c> tool. <see cref="Run"/> parses and runs one command line, writing to the given writers, and returns
/// the exit code: 0 on success, 1 when the command failed (the reason is printed as "error: ..."), 2 for usage errors.
/// </summary>
public static class MedsegCli
{
    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var console = new CliConsole(stdout, stderr);
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
        return parse.Invoke(new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false });
    }
}

/// <summary>Where a command writes, and the uniform error handling of every verb.</summary>
internal sealed class CliConsole(TextWriter output, TextWriter error)
{
    public TextWriter Out { get; } = output;
    public TextWriter Err { get; } = error;

    /// <summary>Runs a verb's body: any exception becomes "error: message" on stderr and exit code 1.</summary>
    public int Guard(Func<int> body, CancellationToken cancellationToken = default)
    {
        try
        {
            return body();
        }
        catch (OperationCanceledException)
        {
            Err.WriteLine("error: cancelled");
            return 1;
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
