using System.Diagnostics;
using System.Runtime.InteropServices;

namespace MLNetMedSeg.Bench;

/// <summary>
/// The process's CPU time (user + system, all threads) in milliseconds, at nanosecond resolution on Linux
/// (clock_gettime(CLOCK_PROCESS_CPUTIME_ID), as Python's time.process_time(); .NET's Process.TotalProcessorTime
/// counts in 10 ms ticks there). Elsewhere, Process.TotalProcessorTime.
/// </summary>
internal static class CpuClock
{
    [StructLayout(LayoutKind.Sequential)]
    private struct Timespec
    {
        public long Sec;
        public long Nsec;
    }

    private const int CLOCK_PROCESS_CPUTIME_ID = 2;

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGettime(int clock, out Timespec ts);

    public static double Ms()
    {
        if (OperatingSystem.IsLinux() && ClockGettime(CLOCK_PROCESS_CPUTIME_ID, out var ts) == 0)
            return ts.Sec * 1e3 + ts.Nsec / 1e6;
        using var p = Process.GetCurrentProcess();
        return p.TotalProcessorTime.TotalMilliseconds;
    }
}
