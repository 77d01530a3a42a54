using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// A .NET program of the test's output folder (<c>medseg.dll</c>, the examples) run as a real child process on one
/// libtorch thread: its stdout and stderr together as lines, waiting for a line, POSIX signals, and its exit.
/// </summary>
internal sealed class ChildProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly List<(Func<string, bool> Match, ManualResetEventSlim Seen)> _waits = [];

    public ChildProcess(string assembly, params string[] args)
    {
        // A test run started as a background job of a non-interactive shell ignores SIGINT, and the child would inherit
        // that (a process that starts with SIGINT ignored keeps it ignored, .NET's handlers included): coreutils' env
        // restores the default before starting the child, so Ctrl+C's handling is tested wherever the tests run.
        bool resetSigint = SigintIgnored();
        var start = new ProcessStartInfo(resetSigint ? "env" : "dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (resetSigint) { start.ArgumentList.Add("--default-signal=INT"); start.ArgumentList.Add("dotnet"); }
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, assembly));
        foreach (var a in args) start.ArgumentList.Add(a);
        start.Environment["MEDSEG_NUM_THREADS"] = "1";
        _process = Process.Start(start)!;
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>Whether this process ignores SIGINT (Linux: /proc/self/status's SigIgn mask, where signal n is bit n − 1).</summary>
    internal static bool SigintIgnored()
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return false;
        var line = File.ReadLines(status).FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (2 - 1))) != 0;
    }

    /// <summary>Everything it wrote so far, stdout and stderr interleaved by line.</summary>
    public string Output
    {
        get { lock (_output) return _output.ToString(); }
    }

    public int ExitCode => _process.ExitCode;

    private void OnLine(string? line)
    {
        if (line is null) return;
        lock (_output)
        {
            _output.AppendLine(line);
            foreach (var (match, seen) in _waits)
                if (match(line)) seen.Set();
        }
    }

    /// <summary>Waits until a line starts with <paramref name="prefix"/> (true), or the timeout passes or it exits (false).</summary>
    public bool WaitForLine(string prefix, TimeSpan timeout)
    {
        using var seen = new ManualResetEventSlim();
        lock (_output)
        {
            if (_output.ToString().Split('\n').Any(l => l.StartsWith(prefix, StringComparison.Ordinal))) return true;
            _waits.Add((l => l.StartsWith(prefix, StringComparison.Ordinal), seen));
        }
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (seen.Wait(200)) break;
            if (_process.HasExited) { _process.WaitForExit(); break; }   // drains the output
        }
        lock (_output)
        {
            _waits.RemoveAll(w => w.Seen == seen);
            return seen.IsSet;
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    /// <summary>Sends a POSIX signal (2: SIGINT as Ctrl+C sends it, 15: SIGTERM).</summary>
    public void Signal(int signal)
    {
        if (kill(_process.Id, signal) != 0) throw new InvalidOperationException($"kill({_process.Id}, {signal}) failed: errno {Marshal.GetLastPInvokeError()}");
    }

    /// <summary>Waits for it to exit (true), or false after <paramref name="timeout"/>.</summary>
    public bool WaitForExit(TimeSpan timeout)
    {
        if (!_process.WaitForExit(timeout)) return false;
        _process.WaitForExit();   // the end of its output
        return true;
    }

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.Dispose();
    }
}
