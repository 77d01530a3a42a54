using System.Globalization;
using System.Reflection;

namespace MLNetMedSeg.Torch.Optim;

/// <summary>
/// Hyper-parameters of one parameter group. Each optimizer has its own subclass (<see cref="SGDOptions"/>,
/// <see cref="AdamOptions"/>, <see cref="RMSpropOptions"/>); every group holds its own copy, so groups can
/// differ (e.g. a smaller learning rate for a pretrained encoder). Properties may be changed between steps.
/// </summary>
public abstract class OptimizerOptions
{
    /// <summary>The learning rate.</summary>
    public double lr { get; set; }

    /// <summary>A copy of these options (for a new parameter group).</summary>
    public OptimizerOptions Clone() => (OptimizerOptions)MemberwiseClone();

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> for invalid values (checked when a group is added).</summary>
    public virtual void Validate()
    {
        if (!(lr >= 0)) throw new ArgumentOutOfRangeException(nameof(lr), lr, "invalid learning rate: must be >= 0");
    }

    /// <summary>The double and bool hyper-parameters by name (bools as 0/1), for state dicts.</summary>
    internal IEnumerable<(string Name, double Value)> Values()
    {
        foreach (var p in Properties(GetType()))
            yield return (p.Name, p.PropertyType == typeof(bool) ? ((bool)p.GetValue(this)! ? 1 : 0) : (double)p.GetValue(this)!);
    }

    internal bool TrySet(string name, double value)
    {
        var p = Properties(GetType()).FirstOrDefault(x => x.Name == name);
        if (p is null) return false;
        if (p.PropertyType == typeof(bool)) p.SetValue(this, value != 0);
        else p.SetValue(this, value);
        return true;
    }

    private static IEnumerable<PropertyInfo> Properties(Type t) =>
        t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
         .Where(p => p.CanRead && p.CanWrite && (p.PropertyType == typeof(double) || p.PropertyType == typeof(bool)))
         .OrderBy(p => p.Name, StringComparer.Ordinal);
}

/// <summary>A list of parameters optimized with the same hyper-parameters, as PyTorch's <c>param_groups</c> entries.</summary>
public sealed class ParamGroup
{
    internal ParamGroup(IReadOnlyList<Parameter> parameters, OptimizerOptions options)
    {
        Parameters = parameters;
        Options = options;
    }

    /// <summary>The parameters of this group, in the order given.</summary>
    public IReadOnlyList<Parameter> Parameters { get; }

    /// <summary>This group's hyper-parameters (its own copy; cast to the optimizer's options type).</summary>
    public OptimizerOptions Options { get; }

    /// <summary>The group's current learning rate (what schedulers set).</summary>
    public double lr
    {
        get => Options.lr;
        set => Options.lr = value;
    }

    /// <summary>
    /// The learning rate the first scheduler attached to the optimizer found (PyTorch's <c>initial_lr</c>); the
    /// base of every scheduler's formula. Null until a scheduler is created.
    /// </summary>
    public double? initial_lr { get; set; }
}

/// <summary>
/// Base of the optimizers, as torch.optim.Optimizer: parameter groups, per-parameter state, <see cref="step"/> and
/// <see cref="zero_grad"/>. State tensors (moment estimates, momentum buffers) are created outside any dispose scope
/// and are owned by the optimizer: <see cref="Dispose()"/> frees them. Parameters stay owned by their module.
/// </summary>
public abstract class Optimizer : IDisposable
{
    private readonly List<ParamGroup> _groups = [];
    private readonly Dictionary<Parameter, ParameterState> _state = new(ReferenceEqualityComparer.Instance);
    private bool _disposed;

    /// <summary>The state of one parameter: its step count and named state tensors (owned by the optimizer).</summary>
    protected sealed class ParameterState
    {
        /// <summary>Updates applied to this parameter so far.</summary>
        public long step;
        /// <summary>State tensors by PyTorch's names ("exp_avg", "momentum_buffer", ...).</summary>
        public readonly Dictionary<string, Tensor> Tensors = new(StringComparer.Ordinal);

        /// <summary>The named state tensor, or null.</summary>
        public Tensor? Get(string name) => Tensors.TryGetValue(name, out var t) ? t : null;

        /// <summary>Stores a state tensor, taking ownership (detaches it from dispose scopes).</summary>
        public Tensor Set(string name, Tensor t)
        {
            t.DetachFromDisposeScope();
            if (Tensors.TryGetValue(name, out var old) && !ReferenceEquals(old, t)) old.Dispose();
            Tensors[name] = t;
            return t;
        }

        internal void Dispose()
        {
            foreach (var t in Tensors.Values) t.Dispose();
            Tensors.Clear();
        }
    }

    /// <summary>Creates the optimizer with one parameter group.</summary>
    protected Optimizer(IEnumerable<Parameter> parameters, OptimizerOptions defaults)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        defaults.Validate();
        Defaults = defaults;
        AddGroup(parameters, defaults.Clone());
    }

    /// <summary>The hyper-parameters that new groups start from.</summary>
    public OptimizerOptions Defaults { get; }

    /// <summary>The parameter groups, in the order added.</summary>
    public IReadOnlyList<ParamGroup> ParamGroups => _groups;

    /// <summary>PyTorch's name for <see cref="ParamGroups"/>.</summary>
    public IReadOnlyList<ParamGroup> param_groups => _groups;

    /// <summary>Number of <see cref="step"/> calls so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>Adds a group of parameters with the default options, changed by <paramref name="configure"/> (e.g. <c>o =&gt; o.lr = 1e-4</c>).</summary>
    public ParamGroup add_param_group(IEnumerable<Parameter> parameters, Action<OptimizerOptions>? configure = null)
    {
        ThrowIfDisposed();
        var options = Defaults.Clone();
        configure?.Invoke(options);
        options.Validate();
        return AddGroup(parameters, options);
    }

    /// <summary>
    /// Adds a group of parameters with the default options, changed through the optimizer's own options type, e.g.
    /// <c>adam.add_param_group(ps, (AdamOptions o) =&gt; o.weight_decay = 0)</c>. Throws when TOptions is not that type.
    /// </summary>
    public ParamGroup add_param_group<TOptions>(IEnumerable<Parameter> parameters, Action<TOptions> configure) where TOptions : OptimizerOptions
    {
        ArgumentNullException.ThrowIfNull(configure);
        if (Defaults is not TOptions)
            throw new ArgumentException($"{GetType().Name} uses {Defaults.GetType().Name}, not {typeof(TOptions).Name}", nameof(configure));
        return add_param_group(parameters, o => configure((TOptions)o));
    }

    private ParamGroup AddGroup(IEnumerable<Parameter> parameters, OptimizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var list = parameters.ToList();
        if (list.Count == 0) throw new ArgumentException("optimizer got an empty parameter list", nameof(parameters));
        var seen = new HashSet<Parameter>(ReferenceEqualityComparer.Instance);
        foreach (var p in list)
        {
            ArgumentNullException.ThrowIfNull(p, nameof(parameters));
            if (!seen.Add(p)) throw new ArgumentException("a parameter appears more than once in the parameter list", nameof(parameters));
            if (_groups.Any(g => g.Parameters.Any(q => ReferenceEquals(q, p))))
                throw new ArgumentException("some parameters appear in more than one parameter group", nameof(parameters));
        }
        var group = new ParamGroup(list.AsReadOnly(), options);
        _groups.Add(group);
        return group;
    }

    /// <summary>
    /// Applies one update to every parameter that has a gradient (parameters without one are skipped), under
    /// no_grad and in its own dispose scope (no temporaries escape).
    /// </summary>
    public void step()
    {
        ThrowIfDisposed();
        using (torch.no_grad())
        using (torch.NewDisposeScope())
        {
            var items = new List<ParameterUpdate>();
            foreach (var group in _groups)
            {
                items.Clear();
                foreach (var p in group.Parameters)
                {
                    var grad = p.grad;
                    if (grad is null) continue;
                    if (!_state.TryGetValue(p, out var state))
                    {
                        state = new ParameterState();
                        _state.Add(p, state);
                    }
                    items.Add(new ParameterUpdate(p, grad, state));
                }
                if (items.Count == 0 || UpdateGroup(group.Options, items)) continue;
                foreach (var item in items) Update(group.Options, item.Parameter, item.Grad, item.State);
            }
        }
        StepCount++;
    }

    /// <summary>A parameter that has a gradient, with its state, as <see cref="UpdateGroup"/> gets them.</summary>
    protected readonly record struct ParameterUpdate(Parameter Parameter, Tensor Grad, ParameterState State);

    /// <summary>
    /// Updates the parameters of one group that have a gradient all at once (e.g. with libtorch's multi-tensor
    /// kernels) and returns true, or returns false to have <see cref="Update"/> called for each. The default returns
    /// false. Called under no_grad inside a dispose scope, as <see cref="Update"/>.
    /// </summary>
    protected virtual bool UpdateGroup(OptimizerOptions options, IReadOnlyList<ParameterUpdate> items) => false;

    /// <summary>
    /// Updates one parameter in place. Called under no_grad inside a dispose scope; store new state tensors with
    /// <see cref="ParameterState.Set"/>.
    /// </summary>
    protected abstract void Update(OptimizerOptions options, Parameter parameter, Tensor grad, ParameterState state);

    /// <summary>Clears the gradients of every parameter: set to none (default, as PyTorch 2.x) or zeroed in place.</summary>
    public void zero_grad(bool set_to_none = true)
    {
        ThrowIfDisposed();
        foreach (var group in _groups)
            foreach (var p in group.Parameters)
            {
                if (set_to_none) { p.grad = null; continue; }
                using var g = p.grad;
                g?.fill_(0);
            }
    }

    /// <summary>A new zero tensor shaped like <paramref name="like"/>, outside every dispose scope.</summary>
    protected static Tensor ZerosState(Tensor like) => torch.zeros_like(like).DetachFromDisposeScope();

    // ------------------------------------------------------------ state dict

    /// <summary>
    /// The optimizer's state as tensors, by key, ready for <see cref="Serialization.Safetensors"/> (all are new
    /// tensors in the current dispose scope, owned by the caller):
    /// <c>state.{i}.step</c> (int64, 0-dim) and <c>state.{i}.{name}</c> (copies of the state tensors) for the i-th
    /// parameter counted over all groups in order (as PyTorch numbers them); <c>param_groups.{g}.{option}</c>
    /// (float64, 0-dim; bools as 0/1; <c>initial_lr</c> when set) and <c>param_groups.{g}.params</c> (int64 indices).
    /// </summary>
    public Dictionary<string, Tensor> state_dict()
    {
        ThrowIfDisposed();
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        int index = 0;
        for (int g = 0; g < _groups.Count; g++)
        {
            var group = _groups[g];
            foreach (var (name, value) in group.Options.Values())
                d[Key("param_groups", g, name)] = torch.tensor(value, ScalarType.Float64);
            if (group.initial_lr is double ilr) d[Key("param_groups", g, "initial_lr")] = torch.tensor(ilr, ScalarType.Float64);
            int first = index;
            foreach (var p in group.Parameters)
            {
                if (_state.TryGetValue(p, out var s))
                {
                    d[Key("state", index, "step")] = torch.tensor(s.step, ScalarType.Int64);
                    foreach (var (name, t) in s.Tensors) d[Key("state", index, name)] = t.detach().clone();
                }
                index++;
            }
            d[Key("param_groups", g, "params")] = torch.arange(first, index, ScalarType.Int64);
        }
        return d;
    }

    /// <summary>
    /// Restores a state made by <see cref="state_dict"/> of an optimizer of the same kind over parameters of the
    /// same shapes, grouped the same way. State tensors are copied (converted to each parameter's device, and
    /// floating-point ones to its dtype); the dictionary stays the caller's. Throws naming the offending key.
    /// </summary>
    public void load_state_dict(IReadOnlyDictionary<string, Tensor> state)
    {
        ThrowIfDisposed();
        ArgumentNullException.ThrowIfNull(state);
        // Validate the layout first so that a bad dict changes nothing.
        int index = 0;
        for (int g = 0; g < _groups.Count; g++)
        {
            string pk = Key("param_groups", g, "params");
            if (!state.TryGetValue(pk, out var idx))
                throw new ArgumentException($"optimizer state dict has no '{pk}': it has fewer parameter groups than this optimizer ({_groups.Count})");
            if (idx.numel() != _groups[g].Parameters.Count)
                throw new ArgumentException($"optimizer state dict's group {g} has {idx.numel()} parameters but this optimizer's has {_groups[g].Parameters.Count}");
            foreach (var p in _groups[g].Parameters)
            {
                string prefix = $"state.{index.ToString(CultureInfo.InvariantCulture)}.";
                foreach (var (k, t) in state)
                    if (k.StartsWith(prefix, StringComparison.Ordinal) && k != prefix + "step" && !t.shape.SequenceEqual(p.shape))
                        throw new ArgumentException($"optimizer state '{k}' has shape [{string.Join(", ", t.shape)}] but its parameter has [{string.Join(", ", p.shape)}]");
                index++;
            }
        }
        if (state.ContainsKey(Key("param_groups", _groups.Count, "params")))
            throw new ArgumentException($"optimizer state dict has more parameter groups than this optimizer ({_groups.Count})");

        index = 0;
        using var scope = torch.NewDisposeScope();
        for (int g = 0; g < _groups.Count; g++)
        {
            var group = _groups[g];
            string gp = $"param_groups.{g.ToString(CultureInfo.InvariantCulture)}.";
            foreach (var (k, t) in state)
            {
                if (!k.StartsWith(gp, StringComparison.Ordinal)) continue;
                string name = k[gp.Length..];
                if (name == "params") continue;
                double v = t.item().ToDouble();
                if (name == "initial_lr") group.initial_lr = v;
                else if (!group.Options.TrySet(name, v))
                    throw new ArgumentException($"optimizer state key '{k}' is not an option of {group.Options.GetType().Name}");
            }
            foreach (var p in group.Parameters)
            {
                string prefix = $"state.{index.ToString(CultureInfo.InvariantCulture)}.";
                var entries = state.Where(e => e.Key.StartsWith(prefix, StringComparison.Ordinal)).ToList();
                if (_state.Remove(p, out var old)) old.Dispose();
                if (entries.Count > 0)
                {
                    var s = new ParameterState();
                    foreach (var (k, t) in entries)
                    {
                        string name = k[prefix.Length..];
                        if (name == "step") { s.step = t.item().ToInt64(); continue; }
                        var target = torch.is_floating_point(t.dtype) ? p.dtype : t.dtype;
                        s.Set(name, t.detach().to(target, p.device, copy: true));
                    }
                    _state[p] = s;
                }
                index++;
            }
        }
    }

    private static string Key(string a, int i, string b) => $"{a}.{i.ToString(CultureInfo.InvariantCulture)}.{b}";

    // ------------------------------------------------------------ disposal

    /// <summary>Frees the optimizer's state tensors (not the parameters). Idempotent.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (_disposed) return;
        _disposed = true;
        if (!disposing) return;
        foreach (var s in _state.Values) s.Dispose();
        _state.Clear();
    }

    protected void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}
