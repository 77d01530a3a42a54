using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Core.Training;

/// <summary>
/// Exponential moving average of a module's weights (Ho et al. 2020; guided-diffusion's <c>ema_rate</c> 0.9999): a
/// shadow copy of every entry of <c>state_dict()</c> (parameters and persistent buffers) updated as
/// shadow ← decay·shadow + (1 − decay)·value for floating-point entries (integer buffers are copied). The EMA weights
/// are what the diffusion stages sample with and save. The shadow tensors are owned by this object (outside dispose
/// scopes) and freed by <see cref="Dispose"/>.
/// </summary>
public sealed class ExponentialMovingAverage : IDisposable
{
    private readonly Dictionary<string, Tensor> _shadow = [];
    private readonly List<string> _order = [];
    private bool _disposed;

    /// <summary>Starts the average at a copy of <paramref name="model"/>'s current state with rate <paramref name="decay"/> ∈ [0, 1].</summary>
    public ExponentialMovingAverage(nn.Module model, double decay = 0.9999)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (!(decay >= 0 && decay <= 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "EMA decay must be in [0, 1].");
        Decay = decay;
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        foreach (var (k, v) in model.StateDictInOrder())
        {
            var c = v.detach().clone();
            c.DetachFromDisposeScope();
            _shadow[k] = c;
            _order.Add(k);
        }
    }

    /// <summary>The decay rate used by <see cref="Update(nn.Module)"/>.</summary>
    public double Decay { get; set; }

    /// <summary>The number of <see cref="Update(nn.Module)"/> calls so far.</summary>
    public long Updates { get; internal set; }

    /// <summary>The shadow weights by state-dict name (owned by this object; do not dispose or modify).</summary>
    public IReadOnlyDictionary<string, Tensor> State
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _order.ToDictionary(k => k, k => _shadow[k]);
        }
    }

    /// <summary>shadow ← <see cref="Decay"/>·shadow + (1 − Decay)·model (no grad).</summary>
    public void Update(nn.Module model) => Update(model, Decay);

    /// <summary>
    /// The warm-up decay of an update: min(<paramref name="decay"/>, (1 + k)/(10 + k)) with k =
    /// <paramref name="previousUpdates"/>, the number of updates made before this one (0 for the first, which thus uses
    /// 0.1). Both diffusion stages use it (through <see cref="EmaHandler"/>), so their EMAs warm up alike.
    /// </summary>
    public static double WarmupDecay(double decay, long previousUpdates)
    {
        if (!(decay >= 0 && decay <= 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "EMA decay must be in [0, 1].");
        if (previousUpdates < 0) throw new ArgumentOutOfRangeException(nameof(previousUpdates), previousUpdates, "must be ≥ 0");
        return Math.Min(decay, (1.0 + previousUpdates) / (10.0 + previousUpdates));
    }

    /// <summary>
    /// One update with <see cref="Decay"/>, or with warm-up (<paramref name="warmup"/>) the decay
    /// <see cref="WarmupDecay"/>(Decay, <see cref="Updates"/>) — counted by this average, so it does not depend on how
    /// the caller counts its steps.
    /// </summary>
    public void Update(nn.Module model, bool warmup) => Update(model, warmup ? WarmupDecay(Decay, Updates) : Decay);

    /// <summary>shadow ← <paramref name="decay"/>·shadow + (1 − decay)·model (no grad); decay 0 copies the model.</summary>
    public void Update(nn.Module model, double decay)
    {
        ArgumentNullException.ThrowIfNull(model);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (!(decay >= 0 && decay <= 1)) throw new ArgumentOutOfRangeException(nameof(decay), decay, "EMA decay must be in [0, 1].");
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var state = model.StateDictInOrder();
        foreach (var k in _order)
        {
            if (!state.TryGetValue(k, out var v))
                throw new ArgumentException($"the model has no entry '{k}' (not the module the average was made from)", nameof(model));
            var s = _shadow[k];
            if (!s.shape.SequenceEqual(v.shape))
                throw new ArgumentException($"entry '{k}' has shape [{string.Join(", ", v.shape)}], the average [{string.Join(", ", s.shape)}]", nameof(model));
            if (is_floating_point(s.dtype) && decay != 0) s.mul_(S(decay)).add_(v.to(s.dtype, s.device), S(1 - decay));
            else s.copy_(v);
        }
        Updates++;
    }

    /// <summary>Copies the shadow weights into <paramref name="target"/> (a module of the same structure).</summary>
    public void CopyTo(nn.Module target)
    {
        ArgumentNullException.ThrowIfNull(target);
        ObjectDisposedException.ThrowIf(_disposed, this);
        target.LoadStateDictChecked(State, strict: true);
    }

    /// <summary>Replaces the shadow weights by <paramref name="state"/> (e.g. read from a saved model).</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> state)
    {
        ArgumentNullException.ThrowIfNull(state);
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var _ = no_grad();
        foreach (var k in _order)
        {
            if (!state.TryGetValue(k, out var v)) throw new ArgumentException($"the state has no entry '{k}'", nameof(state));
            if (!_shadow[k].shape.SequenceEqual(v.shape))
                throw new ArgumentException($"entry '{k}' has shape [{string.Join(", ", v.shape)}], expected [{string.Join(", ", _shadow[k].shape)}]", nameof(state));
            _shadow[k].copy_(v);
        }
    }

    /// <summary>Frees the shadow tensors.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var t in _shadow.Values) t.Dispose();
        _shadow.Clear();
    }
}
