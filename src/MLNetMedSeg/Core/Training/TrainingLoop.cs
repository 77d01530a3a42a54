using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetMedSeg.Pipeline;
using TorchSharp;

namespace MLNetMedSeg.Core.Training;

/// <summary>
/// The one training loop every stage runs (MONAI's engine with handlers): epochs of steps over a
/// <see cref="TrainingProcess"/>'s batches, each step in a dispose scope; a NaN/∞ loss stops the run with a
/// <see cref="TrainingDivergedException"/> naming the epoch and step; progress (epoch, step, loss, items/s, ETA) goes to
/// the context's <see cref="IProgress{T}"/> and log; cancellation is checked at every step; with a
/// <see cref="CheckpointFolder"/> a checkpoint is written after every epoch and a run resumes from it (after checking
/// that the options, seed and device are those it was written with). What a stage adds — validation and best
/// weights, early stopping, EMA, sample grids, online augmentation — are <see cref="TrainingHandler"/>s.
/// </summary>
public sealed class TrainingLoop
{
    private readonly MedSegContext _context;

    /// <param name="context">Seed, device, progress, log, and a cancellation token linked with each run's.</param>
    /// <param name="stage">The stage's name (log source, error messages, checkpoint owner).</param>
    /// <param name="epochs">Epochs to train (≥ 1).</param>
    internal TrainingLoop(MedSegContext context, string stage, int epochs)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(stage);
        ArgumentOutOfRangeException.ThrowIfLessThan(epochs, 1);
        _context = context;
        Stage = stage;
        Epochs = epochs;
    }

    /// <summary>The stage's name.</summary>
    public string Stage { get; }

    /// <summary>Epochs to train.</summary>
    public int Epochs { get; }

    /// <summary>The handlers, called in order after the process.</summary>
    public List<TrainingHandler> Handlers { get; } = [];

    /// <summary>Where a checkpoint is written after every epoch and resumed from (null: none).</summary>
    public string? CheckpointFolder { get; init; }

    /// <summary>What else a checkpoint must match (the stage's options, its seed); the device and handlers are added.</summary>
    public object? Fingerprint { get; init; }

    /// <summary>Called after every epoch (after its checkpoint), with its summary.</summary>
    public Action<EpochSummary>? EpochCompleted { get; init; }

    /// <summary>
    /// Runs (or resumes) the training; returns the state with the history. The process and handlers keep what they
    /// trained; the loop disposes nothing of theirs.
    /// </summary>
    public TrainingState Run(TrainingProcess process, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(process);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _context.CancellationToken);
        var ct = linked.Token;
        ct.ThrowIfCancellationRequested();
        var state = new TrainingState(_context, Stage, Epochs, ct);
        var handlers = new List<TrainingHandler>(Handlers.Count + 1) { process };
        handlers.AddRange(Handlers);
        if (handlers.GroupBy(h => h.Name).FirstOrDefault(g => g.Count() > 1) is { } twice)
            throw new ArgumentException($"{Stage}: two training handlers are named '{twice.Key}'; their checkpoint entries would collide", nameof(Handlers));
        string fingerprint = FingerprintOf(handlers);
        if (CheckpointFolder is { } folder) Resume(folder, fingerprint, handlers, state);

        foreach (var h in handlers) h.OnStarted(state);
        if (state.StopRequested)
            _context.WriteLog(LogLevel.Info, Stage, $"the checkpoint's run had stopped: {state.StopReason}");
        else if (state.ResumedEpochs < Epochs)
        {
            var tracker = new ProgressTracker(_context, Stage, Epochs - state.ResumedEpochs, process.StepsPerEpoch ?? 0, ct);
            for (int epoch = state.ResumedEpochs + 1; epoch <= Epochs; epoch++)
            {
                var summary = RunEpoch(process, handlers, state, epoch, tracker);
                state.MutableHistory.Add(summary);
                _context.WriteLog(LogLevel.Info, Stage, $"epoch {epoch}/{Epochs}: {summary.Details()}");
                if (CheckpointFolder is { } f) WriteCheckpoint(f, fingerprint, handlers, state);
                tracker.EndEpoch();
                EpochCompleted?.Invoke(summary);
                if (state.StopRequested)
                {
                    _context.WriteLog(LogLevel.Info, Stage, $"stopping after epoch {epoch}: {state.StopReason}");
                    break;
                }
            }
        }
        foreach (var h in handlers) h.OnCompleted(state);
        return state;
    }

    private EpochSummary RunEpoch(TrainingProcess process, List<TrainingHandler> handlers, TrainingState state, int epoch, ProgressTracker tracker)
    {
        var sw = Stopwatch.StartNew();
        state.Epoch = epoch;
        state.StepInEpoch = 0;
        double? lr = process.LearningRate;
        foreach (var h in handlers) h.OnEpochStarted(state);
        double sum = 0;
        long items = 0, skipped = 0;
        string? skipReason = null;
        var terms = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var batch in process.Batches(state))
        {
            state.CancellationToken.ThrowIfCancellationRequested();
            using var scope = torch.NewDisposeScope();
            var r = process.Step(batch, state);
            if (r.SkipReason is { } why)
            {
                if (skipReason is null && skipped == 0 && epoch == state.ResumedEpochs + 1)
                    _context.WriteLog(LogLevel.Info, Stage, $"a batch is left out: {why}");
                skipReason ??= why;
                skipped++;
                continue;
            }
            state.StepInEpoch++;
            state.GlobalStep++;
            if (r.Terms is { } t)
                foreach (var (k, v) in t)
                    if (!double.IsFinite(v))
                        throw new TrainingDivergedException(
                            $"{Stage}: the {k} term is {v.ToString(CultureInfo.InvariantCulture)} at epoch {epoch}, step {state.StepInEpoch}; training diverged — lower the learning rate or check the data for NaN/Inf values",
                            epoch, state.StepInEpoch);
            if (!double.IsFinite(r.Loss))
                throw new TrainingDivergedException(
                    $"{Stage}: the loss is {r.Loss.ToString(CultureInfo.InvariantCulture)} at epoch {epoch}, step {state.StepInEpoch} (batch of {r.Items} rows{(lr is double l ? $", lr {l.ToString("G3", CultureInfo.InvariantCulture)}" : "")}); training diverged — lower the learning rate or check the data for NaN/Inf values",
                    epoch, state.StepInEpoch);
            sum += r.Loss;
            items += r.Items;
            if (r.Terms is { } terms1)
                foreach (var (k, v) in terms1) terms[k] = terms.GetValueOrDefault(k) + v;
            foreach (var h in handlers) h.OnStepCompleted(state, r);
            tracker.Step(r.Loss, r.Items);
        }
        long steps = state.StepInEpoch;
        if (steps == 0)
            throw new InvalidOperationException(skipReason is not null
                ? $"{Stage}: every batch of the epoch was left out ({skipReason})"
                : $"{Stage}: the training data has no rows");
        var summary = new EpochSummary
        {
            Epoch = epoch, Loss = sum / steps, Steps = steps, Items = items, LearningRate = lr,
            Terms = terms.ToDictionary(e => e.Key, e => e.Value / steps, StringComparer.Ordinal),
        };
        foreach (var h in handlers) h.OnEpochCompleted(state, summary);
        summary.Seconds = sw.Elapsed.TotalSeconds;
        return summary;
    }

    /// <summary>
    /// An options object as a checkpoint fingerprint: its JSON (ignored properties left out) without the named
    /// properties — those a resumed run may change (epochs, folders).
    /// </summary>
    public static JsonNode? OptionsFingerprint(object options, params string[] except)
    {
        ArgumentNullException.ThrowIfNull(options);
        var node = JsonSerializer.SerializeToNode(options, options.GetType());
        if (node is JsonObject o) foreach (var k in except) o.Remove(k);
        return node;
    }

    private string FingerprintOf(List<TrainingHandler> handlers)
    {
        var f = new JsonObject
        {
            ["stage"] = Stage,
            ["device"] = _context.Device.ToString(),
            ["options"] = JsonSerializer.SerializeToNode(Fingerprint),
        };
        var hs = new JsonArray();
        foreach (var h in handlers) hs.Add(new JsonObject { ["name"] = h.Name, ["settings"] = JsonSerializer.SerializeToNode(h.Fingerprint) });
        f["handlers"] = hs;
        return f.ToJsonString();
    }

    private void Resume(string folder, string fingerprint, List<TrainingHandler> handlers, TrainingState state)
    {
        if (TrainingCheckpoint.TryRead(folder, Stage) is not { } ck) return;
        if (ck.Fingerprint != fingerprint)
            throw new InvalidOperationException(
                $"{Stage}: the checkpoint in '{folder}' was written with other options, another seed or another device; use an empty folder (or the same options, context seed and device) to resume");
        if (ck.Epoch > Epochs)
            throw new InvalidOperationException($"{Stage}: the checkpoint in '{folder}' is at epoch {ck.Epoch}, past the {Epochs} epochs asked for");
        var tensors = ck.LoadTensors(folder);
        try
        {
            foreach (var h in handlers) h.LoadState(new CheckpointState(h.Name, tensors, ck.Values, folder));
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        state.ResumedEpochs = ck.Epoch;
        state.Epoch = ck.Epoch;
        state.GlobalStep = ck.GlobalStep;
        state.MutableHistory.AddRange(ck.History);
        _context.WriteLog(LogLevel.Info, Stage, $"resuming from the checkpoint in '{folder}' after epoch {ck.Epoch}/{Epochs}");
    }

    private void WriteCheckpoint(string folder, string fingerprint, List<TrainingHandler> handlers, TrainingState state)
    {
        using var scope = torch.NewDisposeScope();
        var tensors = new Dictionary<string, torch.Tensor>(StringComparer.Ordinal);
        var values = new JsonObject();
        foreach (var h in handlers) h.SaveState(new CheckpointState(h.Name, tensors, values, folder));
        new TrainingCheckpoint
        {
            Stage = Stage, Fingerprint = fingerprint, Epoch = state.Epoch, GlobalStep = state.GlobalStep,
            History = [.. state.History], Values = values,
        }.Write(folder, tensors);
    }
}
