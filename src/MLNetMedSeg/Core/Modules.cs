using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core;

// TorchSharp registers a module's fields by reflection (RegisterComponents, run when the module is registered in a
// parent) under the fields' names. Our networks name their state-dict entries explicitly (torchvision/smp names, so
// that weights port between PyTorch and here), and a field registered both ways would appear twice in the state dict.
// These bases turn the reflection off: a MedSegModule holds exactly what it registered, under the names it gave.

/// <summary>A module whose parameters, buffers and submodules are registered explicitly (never by field reflection).</summary>
public abstract class MedSegModule : nn.Module
{
    protected MedSegModule(string name) : base(name) { }

    /// <summary>No reflection: only what the constructor registered belongs to the module.</summary>
    protected override void RegisterComponents() { }

    /// <summary>Registers <paramref name="module"/> under <paramref name="name"/> and returns it.</summary>
    protected T RegisterModule<T>(string name, T module) where T : nn.Module { register_module(name, module); return module; }

    /// <summary>Registers <paramref name="parameter"/> under <paramref name="name"/> (detached from any dispose scope: the module owns it) and returns it.</summary>
    protected Parameter RegisterParameter(string name, Parameter parameter) { parameter.DetachFromDisposeScope(); register_parameter(name, parameter); return parameter; }

    /// <summary>Registers a buffer (detached from any dispose scope: the module owns it) and returns it.</summary>
    protected Tensor RegisterBuffer(string name, Tensor buffer, bool persistent = true)
    {
        buffer.DetachFromDisposeScope();
        register_buffer(name, buffer, persistent);
        return buffer;
    }

    /// <summary>
    /// This module's own buffer <paramref name="name"/>. Look buffers (and parameters) up by name rather than keeping
    /// them in fields: moving a module to another device or dtype replaces them.
    /// </summary>
    protected Tensor GetBuffer(string name)
    {
        foreach (var (n, b) in named_buffers(recurse: false))
            if (n == name) return b;
        throw new InvalidOperationException($"{GetName()} has no buffer '{name}'");
    }
}

/// <summary>A one-input module with explicit registration; see <see cref="MedSegModule"/>.</summary>
public abstract class MedSegModule<T, TResult> : nn.Module<T, TResult>
{
    protected MedSegModule(string name) : base(name) { }
    protected override void RegisterComponents() { }
    protected TM RegisterModule<TM>(string name, TM module) where TM : nn.Module { register_module(name, module); return module; }
    protected Parameter RegisterParameter(string name, Parameter parameter) { parameter.DetachFromDisposeScope(); register_parameter(name, parameter); return parameter; }
    protected Tensor RegisterBuffer(string name, Tensor buffer, bool persistent = true)
    {
        buffer.DetachFromDisposeScope();
        register_buffer(name, buffer, persistent);
        return buffer;
    }

    /// <summary>
    /// This module's own buffer <paramref name="name"/>. Look buffers (and parameters) up by name rather than keeping
    /// them in fields: moving a module to another device or dtype replaces them.
    /// </summary>
    protected Tensor GetBuffer(string name)
    {
        foreach (var (n, b) in named_buffers(recurse: false))
            if (n == name) return b;
        throw new InvalidOperationException($"{GetName()} has no buffer '{name}'");
    }
}

/// <summary>A two-input module with explicit registration; see <see cref="MedSegModule"/>.</summary>
public abstract class MedSegModule<T1, T2, TResult> : nn.Module<T1, T2, TResult>
{
    protected MedSegModule(string name) : base(name) { }
    protected override void RegisterComponents() { }
    protected TM RegisterModule<TM>(string name, TM module) where TM : nn.Module { register_module(name, module); return module; }
    protected Parameter RegisterParameter(string name, Parameter parameter) { parameter.DetachFromDisposeScope(); register_parameter(name, parameter); return parameter; }
    protected Tensor RegisterBuffer(string name, Tensor buffer, bool persistent = true)
    {
        buffer.DetachFromDisposeScope();
        register_buffer(name, buffer, persistent);
        return buffer;
    }

    /// <summary>
    /// This module's own buffer <paramref name="name"/>. Look buffers (and parameters) up by name rather than keeping
    /// them in fields: moving a module to another device or dtype replaces them.
    /// </summary>
    protected Tensor GetBuffer(string name)
    {
        foreach (var (n, b) in named_buffers(recurse: false))
            if (n == name) return b;
        throw new InvalidOperationException($"{GetName()} has no buffer '{name}'");
    }
}

/// <summary>A three-input module with explicit registration; see <see cref="MedSegModule"/>.</summary>
public abstract class MedSegModule<T1, T2, T3, TResult> : nn.Module<T1, T2, T3, TResult>
{
    protected MedSegModule(string name) : base(name) { }
    protected override void RegisterComponents() { }
    protected TM RegisterModule<TM>(string name, TM module) where TM : nn.Module { register_module(name, module); return module; }
    protected Parameter RegisterParameter(string name, Parameter parameter) { parameter.DetachFromDisposeScope(); register_parameter(name, parameter); return parameter; }
    protected Tensor RegisterBuffer(string name, Tensor buffer, bool persistent = true)
    {
        buffer.DetachFromDisposeScope();
        register_buffer(name, buffer, persistent);
        return buffer;
    }

    /// <summary>
    /// This module's own buffer <paramref name="name"/>. Look buffers (and parameters) up by name rather than keeping
    /// them in fields: moving a module to another device or dtype replaces them.
    /// </summary>
    protected Tensor GetBuffer(string name)
    {
        foreach (var (n, b) in named_buffers(recurse: false))
            if (n == name) return b;
        throw new InvalidOperationException($"{GetName()} has no buffer '{name}'");
    }
}

/// <summary>Module helpers: PyTorch's traversal orders, parameter counts, state dicts as safetensors files.</summary>
public static class ModuleExtensions
{
    /// <summary>
    /// The module and all its descendants in PyTorch's <c>named_modules()</c> order: depth-first pre-order, the root
    /// first under the name "". (TorchSharp's <c>named_modules()</c> leaves the root out and lists a level's children
    /// before their descendants.)
    /// </summary>
    public static IEnumerable<(string Name, nn.Module Module)> PreOrder(this nn.Module root)
    {
        ArgumentNullException.ThrowIfNull(root);
        var stack = new Stack<(string, nn.Module)>();
        stack.Push(("", root));
        var seen = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance);
        while (stack.Count > 0)
        {
            var (name, m) = stack.Pop();
            if (!seen.Add(m)) continue;
            yield return (name, m);
            var children = m.named_children().ToList();
            for (int i = children.Count - 1; i >= 0; i--)
                stack.Push((name.Length == 0 ? children[i].name : name + "." + children[i].name, children[i].module));
        }
    }

    /// <summary>
    /// The state dict in PyTorch's order: per module in <see cref="PreOrder"/>, its own parameters then its own
    /// persistent buffers (TorchSharp's <c>state_dict()</c> lists every parameter before any buffer). The tensors are
    /// the module's own: do not dispose them.
    /// </summary>
    public static Dictionary<string, Tensor> StateDictInOrder(this nn.Module module)
    {
        var d = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (prefix, m) in module.PreOrder())
        {
            foreach (var (n, p) in m.named_parameters(recurse: false))
                d.TryAdd(prefix.Length == 0 ? n : prefix + "." + n, p);
            foreach (var (n, b) in m.named_buffers(recurse: false, include_nonpersistent: false))
                d.TryAdd(prefix.Length == 0 ? n : prefix + "." + n, b);
        }
        return d;
    }

    /// <summary>
    /// Moves the module's parameters and buffers to <paramref name="device"/> (no-op where they already are) and returns
    /// it. The move runs in a dispose scope, so the temporary tensors TorchSharp makes on the way are released now, not
    /// left to the finalizer.
    /// </summary>
    public static T MoveTo<T>(this T module, Device device) where T : nn.Module
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(device);
        bool Same(Tensor t) => t.device_type == device.type && (device.type == DeviceType.CPU || t.device_index == Math.Max(device.index, 0));
        if (module.parameters().All(Same) && module.buffers().All(Same)) return module;
        Devices.EnsureAvailable(device);
        using (torch.NewDisposeScope()) module.to(device);
        return module;
    }

    /// <summary>
    /// Builds a module inside a dispose scope, so that temporaries of its constructor (TorchSharp's layer
    /// initialisation leaves some to the finalizer) are released at once; the module's own parameters and buffers
    /// are detached from scopes and survive.
    /// </summary>
    public static T Build<T>(Func<T> create) where T : nn.Module
    {
        ArgumentNullException.ThrowIfNull(create);
        using (torch.NewDisposeScope()) return create();
    }

    /// <summary>The number of parameter elements.</summary>
    public static long ParameterCount(this nn.Module module) => module.parameters().Sum(p => p.numel());

    /// <summary>Writes the module's state dict to a safetensors file, atomically (see <see cref="Safetensors"/>).</summary>
    public static void SaveSafetensors(this nn.Module module, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        Safetensors.Save(module.StateDictInOrder(), path, metadata);
    }

    /// <summary>
    /// Copies <paramref name="state"/> into the module's parameters and buffers (no grad; converted to each one's dtype
    /// and device). Every shape is checked before anything is copied; with <paramref name="strict"/>, missing or
    /// unexpected keys throw, naming them all. Returns the missing and unexpected keys.
    /// </summary>
    public static (IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected) LoadStateDictChecked(
        this nn.Module module, IReadOnlyDictionary<string, Tensor> state, bool strict = true, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(state);
        var own = module.StateDictInOrder();
        var missing = own.Keys.Where(k => !state.ContainsKey(k)).ToList();
        var unexpected = state.Keys.Where(k => !own.ContainsKey(k)).ToList();
        var what = source is null ? module.GetName() : $"{module.GetName()} from {source}";
        if (strict && (missing.Count > 0 || unexpected.Count > 0))
            throw new InvalidOperationException(
                $"load_state_dict({what}): " +
                (missing.Count > 0 ? $"missing keys: {string.Join(", ", missing)}. " : "") +
                (unexpected.Count > 0 ? $"unexpected keys: {string.Join(", ", unexpected)}." : ""));
        var mismatched = new List<string>();
        foreach (var (k, dst) in own)
        {
            if (!state.TryGetValue(k, out var src)) continue;
            if (!dst.shape.SequenceEqual(src.shape))
                mismatched.Add($"{k}: expected [{string.Join(", ", dst.shape)}], got [{string.Join(", ", src.shape)}]");
        }
        if (mismatched.Count > 0)
            throw new InvalidOperationException($"load_state_dict({what}): shape mismatch for {string.Join("; ", mismatched)}");
        using (torch.no_grad())
            foreach (var (k, dst) in own)
                if (state.TryGetValue(k, out var src)) dst.copy_(src);
        return (missing, unexpected);
    }

    /// <summary>Loads a safetensors file into the module (see <see cref="LoadStateDictChecked"/>).</summary>
    public static (IReadOnlyList<string> Missing, IReadOnlyList<string> Unexpected) LoadSafetensors(
        this nn.Module module, string path, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        using var scope = torch.NewDisposeScope();
        var state = Safetensors.Load(path);
        return module.LoadStateDictChecked(state, strict, path);
    }
}
