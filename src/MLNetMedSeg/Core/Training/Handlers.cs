using System.Globalization;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core.Training;

/// <summary>
/// Scores the network after every epoch (e.g. validation mDice), records the score as a metric of the epoch, keeps a
/// copy of the best epoch's weights and puts them back at the end (<see cref="RestoreBest"/>), and asks the loop to stop
/// when the score has not improved for <see cref="Patience"/> epochs (early stopping). The best score, its epoch and
/// weights are in checkpoints, so a resumed run keeps them.
/// </summary>
public sealed class ValidationHandler : TrainingHandler, IDisposable
{
    private readonly Func<TrainingState, double> _evaluate;
    private readonly nn.Module _network;
    private Dictionary<string, Tensor>? _best;

    /// <param name="metric">The metric's name in the epoch summaries and the log (e.g. "val mDice").</param>
    /// <param name="network">The network whose weights are kept and restored.</param>
    /// <param name="evaluate">Scores the network (called in the epoch's end, outside any step).</param>
    public ValidationHandler(string metric, nn.Module network, Func<TrainingState, double> evaluate)
    {
        ArgumentException.ThrowIfNullOrEmpty(metric);
        ArgumentNullException.ThrowIfNull(network);
        ArgumentNullException.ThrowIfNull(evaluate);
        Metric = metric;
        _network = network;
        _evaluate = evaluate;
    }

    /// <summary>The metric's name.</summary>
    public string Metric { get; }

    /// <summary>True (default) when larger scores are better.</summary>
    public bool HigherIsBetter { get; init; } = true;

    /// <summary>Put the best epoch's weights back when training ends (default false).</summary>
    public bool RestoreBest { get; init; }

    /// <summary>Stop after this many epochs without a better score (null: never).</summary>
    public int? Patience { get; init; }

    /// <summary>The best score so far (null before the first epoch).</summary>
    public double? Best { get; private set; }

    /// <summary>The epoch of <see cref="Best"/>.</summary>
    public int BestEpoch { get; private set; }

    /// <summary>Epochs since the best.</summary>
    public int EpochsWithoutImprovement { get; private set; }

    /// <inheritdoc/>
    public override object? Fingerprint => new { Metric, HigherIsBetter, RestoreBest, Patience };

    /// <inheritdoc/>
    public override void OnStarted(TrainingState state) => CheckPatience(state);

    /// <inheritdoc/>
    public override void OnEpochCompleted(TrainingState state, EpochSummary epoch)
    {
        double v = _evaluate(state);
        epoch.Metrics[Metric] = v;
        if (Best is null || (HigherIsBetter ? v > Best.Value : v < Best.Value))
        {
            Best = v;
            BestEpoch = epoch.Epoch;
            EpochsWithoutImprovement = 0;
            if (RestoreBest) KeepBest();
        }
        else EpochsWithoutImprovement++;
        CheckPatience(state);
    }

    private void CheckPatience(TrainingState state)
    {
        if (Patience is int p && Best is not null && EpochsWithoutImprovement >= p)
            state.RequestStop(string.Create(CultureInfo.InvariantCulture,
                $"early stopping: no better {Metric} for {p} epochs (best {Best:F4} at epoch {BestEpoch})"));
    }

    /// <inheritdoc/>
    public override void OnCompleted(TrainingState state)
    {
        if (!RestoreBest || _best is null) return;
        _network.LoadStateDictChecked(_best);
        state.Context.WriteLog(LogLevel.Info, state.Stage, string.Create(CultureInfo.InvariantCulture,
            $"restored the weights of epoch {BestEpoch} ({Metric} {Best:F4})"));
    }

    private void KeepBest()
    {
        DisposeBest();
        _best = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        using var scope = NewDisposeScope();   // frees the detached views; the kept copies leave the scope
        using var _ = no_grad();
        foreach (var (k, t) in _network.StateDictInOrder()) _best[k] = t.detach().clone().DetachFromDisposeScope();
    }

    /// <inheritdoc/>
    public override void SaveState(CheckpointState c)
    {
        c.PutValue("best", Best);
        c.PutValue("bestEpoch", BestEpoch);
        c.PutValue("sinceBest", EpochsWithoutImprovement);
        if (_best is not null) foreach (var (k, t) in _best) c.Put("weights." + k, t);
    }

    /// <inheritdoc/>
    public override void LoadState(CheckpointState c)
    {
        Best = c.Value<double?>("best");
        BestEpoch = c.Value<int>("bestEpoch");
        EpochsWithoutImprovement = c.Value<int>("sinceBest");
        DisposeBest();
        if (!c.Has("weights")) return;
        var device = _network.parameters().FirstOrDefault()?.device ?? CPU;
        _best = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (k, _) in _network.StateDictInOrder())
            _best[k] = c.Get("weights." + k).to(device, copy: true).DetachFromDisposeScope();
    }

    private void DisposeBest()
    {
        if (_best is null) return;
        foreach (var t in _best.Values) t.Dispose();
        _best = null;
    }

    /// <summary>Frees the kept weights.</summary>
    public void Dispose() => DisposeBest();
}

/// <summary>
/// Keeps an <see cref="ExponentialMovingAverage"/> of a network's weights, updated after every step (optionally with
/// the warm-up decay min(decay, (1 + n)/(10 + n)) after n updates, as guided-diffusion's and TensorFlow's EMA do); the
/// average is in checkpoints.
/// </summary>
public sealed class EmaHandler(ExponentialMovingAverage average, nn.Module network, double decay, bool warmup) : TrainingHandler
{
    /// <summary>The average.</summary>
    public ExponentialMovingAverage Average { get; } = average ?? throw new ArgumentNullException(nameof(average));

    /// <summary>The decay of update n (0-based): <c>decay</c>, or min(decay, (1 + n)/(10 + n)) with warm-up.</summary>
    public static double DecayAt(double decay, bool warmup, long n) => warmup ? ExponentialMovingAverage.WarmupDecay(decay, n) : decay;

    /// <inheritdoc/>
    public override object? Fingerprint => new { decay, warmup };

    /// <inheritdoc/>
    public override void OnStepCompleted(TrainingState state, StepResult result) =>
        Average.Update(network, DecayAt(decay, warmup, Average.Updates));

    /// <inheritdoc/>
    public override void SaveState(CheckpointState c)
    {
        c.PutValue("updates", Average.Updates);
        foreach (var (k, t) in Average.State) c.Put("shadow." + k, t);
    }

    /// <inheritdoc/>
    public override void LoadState(CheckpointState c)
    {
        Average.Load(Average.State.Keys.ToDictionary(k => k, k => c.Get("shadow." + k), StringComparer.Ordinal));
        Average.Updates = c.Value<long>("updates");
    }
}

/// <summary>Runs an action after every <c>every</c>-th epoch (e.g. writes a sample grid), optionally not after the last.</summary>
public sealed class EveryEpochsHandler(string name, int every, Action<TrainingState> action, bool skipLastEpoch = true) : TrainingHandler
{
    /// <inheritdoc/>
    public override string Name => name;

    /// <inheritdoc/>
    public override void OnEpochCompleted(TrainingState state, EpochSummary epoch)
    {
        if (every <= 0 || epoch.Epoch % every != 0) return;
        if (skipLastEpoch && epoch.Epoch == state.Epochs) return;
        action(state);
    }
}
