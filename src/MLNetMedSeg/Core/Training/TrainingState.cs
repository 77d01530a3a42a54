using System.Globalization;
using System.Text;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Core.Training;

/// <summary>The loss became NaN or infinite: training diverged (lower the learning rate, check the data).</summary>
public sealed class TrainingDivergedException(string message, int epoch, long step) : InvalidOperationException(message)
{
    /// <summary>The 1-based epoch of the step.</summary>
    public int Epoch { get; } = epoch;

    /// <summary>The 1-based step within the epoch.</summary>
    public long Step { get; } = step;
}

/// <summary>
/// What one training step reports to <see cref="TrainingLoop"/>: the loss it minimised (checked for NaN/∞), the items
/// (rows) it processed, and optional named terms (e.g. BCE and KL, or a critic's loss) that the loop averages over the
/// epoch into <see cref="EpochSummary.Terms"/>. A step that left its batch out says why with <see cref="Skip"/>.
/// </summary>
public readonly record struct StepResult(double Loss, long Items, IReadOnlyDictionary<string, double>? Terms = null)
{
    /// <summary>Why the batch was left out (null for a step that trained).</summary>
    public string? SkipReason { get; init; }

    /// <summary>A batch left out (e.g. one image through BatchNorm); said once in the log, with the reason.</summary>
    public static StepResult Skip(string reason) => new(0, 0) { SkipReason = reason };
}

/// <summary>
/// One epoch as the loop saw it: mean loss and terms over its steps, metrics handlers added (validation mDice…), the
/// learning rate it ran at, its duration. Kept in <see cref="TrainingState.History"/> and in checkpoints (JSON).
/// </summary>
public sealed class EpochSummary
{
    /// <summary>The 1-based epoch.</summary>
    public int Epoch { get; set; }

    /// <summary>The mean of the steps' losses.</summary>
    public double Loss { get; set; }

    /// <summary>The means of the steps' named terms.</summary>
    public Dictionary<string, double> Terms { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Metrics computed at the epoch's end (e.g. "mDice" on validation data).</summary>
    public Dictionary<string, double> Metrics { get; set; } = new(StringComparer.Ordinal);

    /// <summary>The learning rate of the epoch's steps, when the process has one.</summary>
    public double? LearningRate { get; set; }

    /// <summary>Trained steps (left-out batches not counted).</summary>
    public long Steps { get; set; }

    /// <summary>Items (rows) the trained steps processed.</summary>
    public long Items { get; set; }

    /// <summary>Wall-clock seconds of the epoch (steps and epoch-end handlers).</summary>
    public double Seconds { get; set; }

    /// <summary>A term's mean, or null when the steps did not report it.</summary>
    public double? Term(string name) => Terms.TryGetValue(name, out var v) ? v : null;

    /// <summary>A metric, or null when no handler computed it this epoch.</summary>
    public double? Metric(string name) => Metrics.TryGetValue(name, out var v) ? v : null;

    /// <inheritdoc/>
    public override string ToString() => $"epoch {Epoch}: {Details()}";

    /// <summary>"loss …, terms…, metrics…, lr …, … s".</summary>
    internal string Details()
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"loss {Loss:G5}");
        foreach (var (k, v) in Terms) sb.Append(CultureInfo.InvariantCulture, $", {k} {v:G5}");
        foreach (var (k, v) in Metrics) sb.Append(CultureInfo.InvariantCulture, $", {k} {v:F4}");
        if (LearningRate is double lr) sb.Append(CultureInfo.InvariantCulture, $", lr {lr:G3}");
        sb.Append(CultureInfo.InvariantCulture, $", {Seconds:F1} s");
        return sb.ToString();
    }
}

/// <summary>
/// The state of a <see cref="TrainingLoop.Run"/> that handlers and the process read (and through which they ask the
/// loop to stop): the epoch and step, the history of finished epochs, the cancellation token.
/// </summary>
public sealed class TrainingState
{
    private readonly List<EpochSummary> _history = [];

    internal TrainingState(MedSegContext context, string stage, int epochs, CancellationToken cancellationToken)
    {
        Context = context;
        Stage = stage;
        Epochs = epochs;
        CancellationToken = cancellationToken;
    }

    /// <summary>Seed, device, log and progress of the stage being trained.</summary>
    internal MedSegContext Context { get; }

    /// <summary>The stage's name (log source, error messages).</summary>
    public string Stage { get; }

    /// <summary>The epochs planned.</summary>
    public int Epochs { get; }

    /// <summary>The epoch under way, 1-based (0 before the first).</summary>
    public int Epoch { get; internal set; }

    /// <summary>The epochs a resumed run found done in its checkpoint (0 for a fresh run).</summary>
    public int ResumedEpochs { get; internal set; }

    /// <summary>Trained steps in the current epoch.</summary>
    public long StepInEpoch { get; internal set; }

    /// <summary>Trained steps since the run began (counting those before a resume).</summary>
    public long GlobalStep { get; internal set; }

    /// <summary>The finished epochs, oldest first (a resumed run's include those of its checkpoint).</summary>
    public IReadOnlyList<EpochSummary> History => _history;

    internal List<EpochSummary> MutableHistory => _history;

    /// <summary>Cancellation of the run (the Fit's token linked with the context's).</summary>
    public CancellationToken CancellationToken { get; }

    /// <summary>True once a handler asked the loop to stop after the current epoch.</summary>
    public bool StopRequested => StopReason is not null;

    /// <summary>Why the loop stops early (logged), or null.</summary>
    public string? StopReason { get; private set; }

    /// <summary>Asks the loop to stop after the current epoch (e.g. early stopping); the first reason wins.</summary>
    public void RequestStop(string reason)
    {
        ArgumentException.ThrowIfNullOrEmpty(reason);
        StopReason ??= reason;
    }
}
