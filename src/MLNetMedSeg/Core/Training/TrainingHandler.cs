using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core.Training;

/// <summary>
/// A hook into <see cref="TrainingLoop"/> (MONAI's event handlers): validation and best weights, early stopping, EMA,
/// sample grids, online augmentation and callbacks are each a handler. The loop calls the handlers in their order —
/// the process first — at each event; handlers with state put it in checkpoints through
/// <see cref="SaveState"/>/<see cref="LoadState"/> so a resumed run continues exactly.
/// </summary>
public abstract class TrainingHandler
{
    /// <summary>A stable name: the prefix of this handler's entries in checkpoints.</summary>
    public virtual string Name => GetType().Name;

    /// <summary>After set-up (and after a resume restored the state), before the first epoch.</summary>
    public virtual void OnStarted(TrainingState state) { }

    /// <summary>Before the epoch's first batch.</summary>
    public virtual void OnEpochStarted(TrainingState state) { }

    /// <summary>After each trained step (inside the step's dispose scope).</summary>
    public virtual void OnStepCompleted(TrainingState state, StepResult result) { }

    /// <summary>After the epoch's last step, in handler order; may add metrics to <paramref name="epoch"/> or ask to stop.</summary>
    public virtual void OnEpochCompleted(TrainingState state, EpochSummary epoch) { }

    /// <summary>After the last epoch (or an early stop); not called when the run failed or was cancelled.</summary>
    public virtual void OnCompleted(TrainingState state) { }

    /// <summary>Writes this handler's state into a checkpoint.</summary>
    public virtual void SaveState(CheckpointState checkpoint) { }

    /// <summary>Restores this handler's state from a checkpoint written by <see cref="SaveState"/>.</summary>
    public virtual void LoadState(CheckpointState checkpoint) { }

    /// <summary>What of this handler's settings a checkpoint must match to be resumed (part of the run's fingerprint).</summary>
    public virtual object? Fingerprint => null;
}

/// <summary>
/// One handler's part of a checkpoint: tensors (saved as safetensors under "<c>handler/name</c>") and JSON values.
/// Reading a missing entry names the checkpoint and the entry.
/// </summary>
public sealed class CheckpointState
{
    private readonly string _prefix;
    private readonly Dictionary<string, Tensor> _tensors;
    private readonly JsonObject _values;

    internal CheckpointState(string prefix, Dictionary<string, Tensor> tensors, JsonObject values, string source)
    {
        _prefix = prefix + "/";
        _tensors = tensors;
        _values = values;
        Source = source;
    }

    /// <summary>The checkpoint's folder (for error messages).</summary>
    public string Source { get; }

    /// <summary>Stores a tensor (copied to the CPU when the checkpoint is written).</summary>
    public void Put(string name, Tensor tensor) => _tensors[_prefix + name] = tensor;

    /// <summary>Stores a module's state dict under <paramref name="name"/>.</summary>
    public void Put(string name, nn.Module module)
    {
        foreach (var (k, t) in module.StateDictInOrder()) _tensors[$"{_prefix}{name}.{k}"] = t;
    }

    /// <summary>Stores an optimizer's state (its parameter groups and moments).</summary>
    public void Put(string name, optim.Optimizer optimizer)
    {
        var bytes = OptimizerCheckpoint.Save(optimizer);
        _tensors[_prefix + name] = TensorExtensions.FromArray(bytes, [bytes.Length]);
    }

    /// <summary>Stores a generator's state.</summary>
    public void Put(string name, Generator generator) => _tensors[_prefix + name] = generator.get_state();

    /// <summary>Stores a JSON-serialisable value.</summary>
    public void PutValue<T>(string name, T value) => _values[_prefix + name] = JsonSerializer.SerializeToNode(value);

    /// <summary>True when the checkpoint has a tensor <paramref name="name"/> or a module state under it.</summary>
    public bool Has(string name) =>
        _tensors.ContainsKey(_prefix + name) || _tensors.Keys.Any(k => k.StartsWith($"{_prefix}{name}.", StringComparison.Ordinal));

    /// <summary>A stored tensor (on the CPU; owned by the checkpoint, valid during <c>LoadState</c>).</summary>
    public Tensor Get(string name) => _tensors.TryGetValue(_prefix + name, out var t) ? t
        : throw new InvalidDataException($"the checkpoint in '{Source}' has no entry '{_prefix}{name}'");

    /// <summary>Loads a module's stored state dict (strict: every entry, matching shapes).</summary>
    public void Load(string name, nn.Module module)
    {
        string p = $"{_prefix}{name}.";
        var part = _tensors.Where(e => e.Key.StartsWith(p, StringComparison.Ordinal))
            .ToDictionary(e => e.Key[p.Length..], e => e.Value, StringComparer.Ordinal);
        if (part.Count == 0) throw new InvalidDataException($"the checkpoint in '{Source}' has no weights '{_prefix}{name}'");
        module.LoadStateDictChecked(part, source: Source);
    }

    /// <summary>Loads an optimizer's stored state.</summary>
    public void Load(string name, optim.Optimizer optimizer) =>
        OptimizerCheckpoint.Load(optimizer, Get(name).ToArray<byte>(), $"the checkpoint in '{Source}'");

    /// <summary>Restores a generator's stored state.</summary>
    public void Load(string name, Generator generator) => generator.set_state(Get(name));

    /// <summary>A stored value (default when absent).</summary>
    public T? Value<T>(string name) => _values.TryGetPropertyValue(_prefix + name, out var n) && n is not null ? n.Deserialize<T>() : default;
}

/// <summary>
/// What a stage trains: the batches of an epoch and one optimisation step on a batch. The process is the loop's first
/// handler, so it also hears the events (e.g. a learning-rate scheduler steps at <see cref="TrainingHandler.OnEpochCompleted"/>)
/// and saves its networks, optimizers and generators in checkpoints.
/// </summary>
public abstract class TrainingProcess : TrainingHandler
{
    /// <summary>Steps an epoch will have (for the ETA), or null when unknown.</summary>
    public abstract long? StepsPerEpoch { get; }

    /// <summary>The batches of <see cref="TrainingState.Epoch"/> (shuffled as the stage wants; the enumerator owns them).</summary>
    internal abstract IEnumerable<Data.DataBatch> Batches(TrainingState state);

    /// <summary>One step on <paramref name="batch"/>, run inside a dispose scope; returns the loss it minimised.</summary>
    internal abstract StepResult Step(Data.DataBatch batch, TrainingState state);

    /// <summary>The learning rate of the next steps, when the process has one (logged, kept in the history).</summary>
    public virtual double? LearningRate => null;
}
