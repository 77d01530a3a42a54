using System.Globalization;
using System.Text;

namespace MLNetMedSeg.Pipeline;

/// <summary>
/// Shows <see cref="TrainingProgress"/> as a live bar for console programs:
/// <c>[#########...........] 45% Trainer epoch 2/5 step 10/40 loss 0.1234 12.3 items/s ETA 00:01:02</c>.
/// On a terminal the line is redrawn in place (carriage return); when the output is redirected (a log file, CI) a
/// full line is written at most every <see cref="RedirectedInterval"/>, plus the last report of each stage.
/// Reports arrive synchronously from the training thread (unlike <see cref="Progress{T}"/>, which posts them).
/// </summary>
public sealed class ConsoleProgressBar : IProgress<TrainingProgress>
{
    private readonly TextWriter _writer;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private string? _stage;
    private int _lastLength;
    private bool _lineOpen;
    private long _lastWrite;
    private bool _wroteOnce;

    /// <param name="writer">Where to draw (default <see cref="Console.Out"/>).</param>
    /// <param name="interactive">Redraw in place; default: true when writing to a console whose output is not redirected.</param>
    /// <param name="width">Characters of the bar itself (default 24).</param>
    /// <param name="timeProvider">The clock for the redirected-output interval (tests pass a fake one).</param>
    public ConsoleProgressBar(TextWriter? writer = null, bool? interactive = null, int width = 24, TimeProvider? timeProvider = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 4);
        _writer = writer ?? Console.Out;
        Interactive = interactive ?? (writer is null && !Console.IsOutputRedirected);
        Width = width;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Redraws one line in place (true) or writes throttled full lines (false).</summary>
    public bool Interactive { get; }

    public int Width { get; }

    /// <summary>The least time between two lines when not interactive (default 5 s).</summary>
    public TimeSpan RedirectedInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Makes a bar and sets it as <paramref name="context"/>'s <see cref="MedSegContext.Progress"/>.</summary>
    internal static ConsoleProgressBar AttachTo(MedSegContext context, TextWriter? writer = null, bool? interactive = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        var bar = new ConsoleProgressBar(writer, interactive);
        context.Progress = bar;
        return bar;
    }

    /// <summary>The text of one report (without line control characters).</summary>
    public string Format(TrainingProgress p)
    {
        ArgumentNullException.ThrowIfNull(p);
        int filled = (int)Math.Floor(p.Fraction * Width);
        var sb = new StringBuilder(Width + 80);
        sb.Append('[').Append('#', filled).Append('.', Width - filled).Append("] ");
        sb.Append(((int)Math.Floor(p.Fraction * 100)).ToString(CultureInfo.InvariantCulture).PadLeft(3)).Append("% ");
        sb.Append(p.ToString());
        return sb.ToString();
    }

    public void Report(TrainingProgress value)
    {
        ArgumentNullException.ThrowIfNull(value);
        lock (_lock)
        {
            bool newStage = _stage is not null && _stage != value.Stage;
            bool done = value.Fraction >= 1;
            string text = Format(value);
            if (Interactive)
            {
                if (newStage && _lineOpen) _writer.WriteLine();
                else if (_lineOpen) _writer.Write('\r');
                _writer.Write(text);
                if (!newStage && text.Length < _lastLength) _writer.Write(new string(' ', _lastLength - text.Length));
                _lastLength = text.Length;
                _lineOpen = true;
                if (done)
                {
                    _writer.WriteLine();
                    _lineOpen = false;
                    _lastLength = 0;
                }
            }
            else
            {
                long now = _time.GetTimestamp();
                if (!_wroteOnce || newStage || done || _time.GetElapsedTime(_lastWrite, now) >= RedirectedInterval)
                {
                    _writer.WriteLine(text);
                    _lastWrite = now;
                    _wroteOnce = true;
                }
            }
            _writer.Flush();
            _stage = value.Stage;
        }
    }

    /// <summary>Ends an open interactive line (call when a stage stops early, e.g. on cancellation).</summary>
    public void Complete()
    {
        lock (_lock)
        {
            if (_lineOpen) _writer.WriteLine();
            _lineOpen = false;
            _lastLength = 0;
            _writer.Flush();
        }
    }
}
