namespace MLNetMedSeg.Pipeline;

/// <summary>
/// Progress bookkeeping for a long-running stage (a training loop): call <see cref="Step"/> after every batch and
/// <see cref="EndEpoch"/> after every epoch. Each step reports a <see cref="TrainingProgress"/> (epoch, step, loss,
/// items/s and ETA from a moving average over the last <see cref="WindowSize"/> steps) through
/// <see cref="MedSegContext.ReportProgress"/>, writes a log line at most every <see cref="LogInterval"/> and at the
/// end of each epoch, and throws <see cref="OperationCanceledException"/> once the token is cancelled.
/// </summary>
public sealed class ProgressTracker
{
    private readonly MedSegContext _context;
    private readonly CancellationToken _cancellationToken;
    private readonly TimeProvider _time;
    private readonly long _start;
    private readonly Queue<(double Seconds, long Items)> _window = new();
    private double _windowSeconds;
    private long _windowItems;
    private long _lastStepTimestamp;
    private long _lastLogTimestamp;
    private bool _loggedOnce;
    private double _epochLossSum;
    private long _epochLossCount;

    /// <param name="context">Receives the progress reports and log lines.</param>
    /// <param name="stage">The stage's name, e.g. "SegmentationTrainer".</param>
    /// <param name="epochs">The number of epochs planned (≥ 1).</param>
    /// <param name="stepsPerEpoch">Steps (batches) per epoch; 0 when unknown (no ETA then).</param>
    /// <param name="cancellationToken">Checked at every step and epoch end.</param>
    /// <param name="timeProvider">The clock (default: <see cref="TimeProvider.System"/>; tests pass a fake one).</param>
    internal ProgressTracker(MedSegContext context, string stage, int epochs, long stepsPerEpoch,
        CancellationToken cancellationToken = default, TimeProvider? timeProvider = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(stage);
        ArgumentOutOfRangeException.ThrowIfLessThan(epochs, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(stepsPerEpoch);
        _context = context;
        Stage = stage;
        Epochs = epochs;
        StepsPerEpoch = stepsPerEpoch;
        _cancellationToken = cancellationToken;
        _time = timeProvider ?? TimeProvider.System;
        _start = _lastStepTimestamp = _time.GetTimestamp();
        _cancellationToken.ThrowIfCancellationRequested();
    }

    public string Stage { get; }
    public int Epochs { get; }
    public long StepsPerEpoch { get; }

    /// <summary>The current epoch, 1-based.</summary>
    public int Epoch { get; private set; } = 1;

    /// <summary>Steps done in the current epoch.</summary>
    public long StepInEpoch { get; private set; }

    /// <summary>Steps done in all epochs.</summary>
    public long TotalSteps { get; private set; }

    /// <summary>Steps the moving average of step time and throughput spans (default 20).</summary>
    public int WindowSize { get; init; } = 20;

    /// <summary>The least time between two progress log lines (default 10 s); epoch ends are always logged.</summary>
    public TimeSpan LogInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The mean of the losses given in the current epoch (null when none).</summary>
    public double? EpochMeanLoss => _epochLossCount == 0 ? null : _epochLossSum / _epochLossCount;

    /// <summary>Time since construction.</summary>
    public TimeSpan Elapsed => _time.GetElapsedTime(_start);

    /// <summary>The last progress reported.</summary>
    public TrainingProgress? Last { get; private set; }

    /// <summary>Throws <see cref="OperationCanceledException"/> if cancellation was requested.</summary>
    public void ThrowIfCancellationRequested() => _cancellationToken.ThrowIfCancellationRequested();

    /// <summary>
    /// Records one step that processed <paramref name="items"/> items with <paramref name="loss"/>, reports the
    /// progress and returns it. Throws <see cref="OperationCanceledException"/> when cancelled (before recording).
    /// </summary>
    public TrainingProgress Step(double? loss = null, long items = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(items);
        _cancellationToken.ThrowIfCancellationRequested();
        long now = _time.GetTimestamp();
        double dt = _time.GetElapsedTime(_lastStepTimestamp, now).TotalSeconds;
        _lastStepTimestamp = now;
        _window.Enqueue((dt, items));
        _windowSeconds += dt;
        _windowItems += items;
        while (_window.Count > Math.Max(1, WindowSize))
        {
            var (s, n) = _window.Dequeue();
            _windowSeconds -= s;
            _windowItems -= n;
        }
        StepInEpoch++;
        TotalSteps++;
        if (loss is double l && double.IsFinite(l))
        {
            _epochLossSum += l;
            _epochLossCount++;
        }

        double? itemsPerSecond = _windowSeconds > 0 ? _windowItems / _windowSeconds : null;
        TimeSpan? eta = null;
        if (StepsPerEpoch > 0 && _windowSeconds > 0)
        {
            long remaining = Math.Max(0, Epochs * StepsPerEpoch - ((Epoch - 1) * StepsPerEpoch + Math.Min(StepInEpoch, StepsPerEpoch)));
            eta = TimeSpan.FromSeconds(remaining * (_windowSeconds / _window.Count));
        }
        var p = new TrainingProgress(Stage, Epoch, Epochs, StepInEpoch, StepsPerEpoch, loss, itemsPerSecond,
            _time.GetElapsedTime(_start, now), eta);
        Last = p;
        _context.ReportProgress(p);
        if (!_loggedOnce || _time.GetElapsedTime(_lastLogTimestamp, now) >= LogInterval)
        {
            _loggedOnce = true;
            _lastLogTimestamp = now;
            _context.WriteLog(LogLevel.Info, Stage, p.ToString());
        }
        return p;
    }

    /// <summary>
    /// Ends the current epoch: logs its mean loss and duration and moves to the next epoch. Throws
    /// <see cref="OperationCanceledException"/> when cancelled.
    /// </summary>
    public void EndEpoch()
    {
        _cancellationToken.ThrowIfCancellationRequested();
        string loss = EpochMeanLoss is double m ? $", mean loss {m:G5}" : "";
        _context.WriteLog(LogLevel.Info, Stage, $"epoch {Epoch}/{Epochs} done: {StepInEpoch} steps{loss}, elapsed {Elapsed:hh\\:mm\\:ss}");
        _lastLogTimestamp = _time.GetTimestamp();
        Epoch++;
        StepInEpoch = 0;
        _epochLossSum = 0;
        _epochLossCount = 0;
    }
}
