using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>
        /// Base of every network block, as torch.nn.Module: holds named parameters, buffers and submodules,
        /// registered explicitly in the constructor (no reflection scanning), in registration order.
        /// Parameters and buffers are owned by the module (detached from dispose scopes) and freed by
        /// <see cref="Dispose()"/>.
        /// </summary>
        public abstract class Module : IDisposable
        {
            private readonly List<(string Name, Parameter? Value)> _parameters = [];
            private readonly List<(string Name, Tensor? Value, bool Persistent)> _buffers = [];
            private readonly List<(string Name, Module Value)> _modules = [];
            private bool _disposed;

            protected Module(string? name = null) => Name = name ?? GetType().Name;

            /// <summary>A display name (the type name unless given).</summary>
            public string Name { get; }

            /// <summary>True in training mode (the default), false after <see cref="eval"/>.</summary>
            public bool training { get; private set; } = true;

            // -------------------------------------------------- registration

            /// <summary>Registers (or replaces) a parameter under <paramref name="name"/>. Null registers an absent one (e.g. no bias).</summary>
            protected Parameter? RegisterParameter(string name, Parameter? p)
            {
                CheckName(name);
                int k = _parameters.FindIndex(e => e.Name == name);
                if (k >= 0)
                {
                    if (_parameters[k].Value is { } old && !ReferenceEquals(old, p)) old.Dispose();
                    _parameters[k] = (name, p);
                }
                else
                {
                    if (_buffers.Exists(e => e.Name == name) || _modules.Exists(e => e.Name == name))
                        throw new ArgumentException($"'{name}' is already registered as a buffer or module in {Name}", nameof(name));
                    _parameters.Add((name, p));
                }
                return p;
            }

            /// <summary>Registers (or replaces) a buffer: state that is saved but not trained (e.g. running mean). The module takes ownership.</summary>
            protected Tensor? RegisterBuffer(string name, Tensor? t, bool persistent = true)
            {
                CheckName(name);
                t?.DetachFromDisposeScope();
                int k = _buffers.FindIndex(e => e.Name == name);
                if (k >= 0)
                {
                    if (_buffers[k].Value is { } old && !ReferenceEquals(old, t)) old.Dispose();
                    _buffers[k] = (name, t, persistent);
                }
                else
                {
                    if (_parameters.Exists(e => e.Name == name) || _modules.Exists(e => e.Name == name))
                        throw new ArgumentException($"'{name}' is already registered as a parameter or module in {Name}", nameof(name));
                    _buffers.Add((name, t, persistent));
                }
                return t;
            }

            /// <summary>Registers a submodule under <paramref name="name"/>; returns it.</summary>
            protected T RegisterModule<T>(string name, T module) where T : Module
            {
                CheckName(name);
                ArgumentNullException.ThrowIfNull(module);
                int k = _modules.FindIndex(e => e.Name == name);
                if (k >= 0) _modules[k] = (name, module);
                else
                {
                    if (_parameters.Exists(e => e.Name == name) || _buffers.Exists(e => e.Name == name))
                        throw new ArgumentException($"'{name}' is already registered as a parameter or buffer in {Name}", nameof(name));
                    _modules.Add((name, module));
                }
                return module;
            }

            private static void CheckName(string name)
            {
                if (string.IsNullOrEmpty(name) || name.Contains('.'))
                    throw new ArgumentException($"'{name}' is not a valid member name (non-empty, no '.')", nameof(name));
            }

            // -------------------------------------------------- traversal

            public IEnumerable<(string name, Module module)> named_children() => _modules.Select(e => (e.Name, e.Value));
            public IEnumerable<Module> children() => _modules.Select(e => e.Value);

            /// <summary>This module and every descendant, depth first, with dotted names ("" for this one).</summary>
            public IEnumerable<(string name, Module module)> named_modules(string prefix = "")
            {
                yield return (prefix, this);
                foreach (var (n, m) in _modules)
                    foreach (var x in m.named_modules(prefix.Length == 0 ? n : prefix + "." + n))
                        yield return x;
            }

            public IEnumerable<Module> modules() => named_modules().Select(e => e.module);

            public IEnumerable<(string name, Parameter parameter)> named_parameters(bool recurse = true)
            {
                foreach (var (prefix, m) in recurse ? named_modules() : [("", this)])
                    foreach (var (n, p) in m._parameters)
                        if (p is not null) yield return (prefix.Length == 0 ? n : prefix + "." + n, p);
            }

            public IEnumerable<Parameter> parameters(bool recurse = true) => named_parameters(recurse).Select(e => e.parameter);

            public IEnumerable<(string name, Tensor buffer)> named_buffers(bool recurse = true)
            {
                foreach (var (prefix, m) in recurse ? named_modules() : [("", this)])
                    foreach (var (n, b, _) in m._buffers)
                        if (b is not null) yield return (prefix.Length == 0 ? n : prefix + "." + n, b);
            }

            public IEnumerable<Tensor> buffers(bool recurse = true) => named_buffers(recurse).Select(e => e.buffer);

            /// <summary>Total number of parameter elements.</summary>
            public long num_parameters() => parameters().Sum(p => p.numel());

            // -------------------------------------------------- modes and devices

            /// <summary>Sets training mode on this module and all descendants; returns this.</summary>
            public virtual Module train(bool on = true)
            {
                training = on;
                foreach (var m in _modules) m.Value.train(on);
                return this;
            }

            /// <summary>Evaluation mode (BatchNorm uses running statistics, Dropout is off); returns this.</summary>
            public Module eval() => train(false);

            /// <summary>Moves/converts every parameter and buffer in place (they keep their identity); returns this.</summary>
            public Module to(Device device) => Apply(device, null);

            /// <summary>Converts floating-point parameters and buffers to <paramref name="dtype"/> in place; returns this.</summary>
            public Module to(ScalarType dtype) => Apply(null, dtype);

            public Module to(Device device, ScalarType dtype) => Apply(device, dtype);

            private Module Apply(Device? device, ScalarType? dtype)
            {
                using var _ = torch.no_grad();
                foreach (var t in parameters().Cast<Tensor>().Concat(buffers()))
                {
                    var target = dtype.HasValue && torch.is_floating_point(t.dtype) ? dtype : null;
                    using var moved = t.to(target, device);
                    LibTorch.Check(LibTorch.mt_tensor_set_data(t.Handle, moved.Handle));
                }
                return this;
            }

            /// <summary>Clears the gradients of every parameter (set to none by default, as PyTorch 2.x).</summary>
            public void zero_grad(bool set_to_none = true)
            {
                foreach (var p in parameters())
                {
                    if (set_to_none) { p.grad = null; continue; }
                    using var g = p.grad;
                    g?.fill_(0);
                }
            }

            // -------------------------------------------------- state

            /// <summary>
            /// Parameters and persistent buffers by dotted name, in PyTorch's order (per module, depth first: its parameters,
            /// its buffers, then its submodules; each in registration order). The tensors are the module's
            /// own (not copies): do not dispose them.
            /// </summary>
            public IReadOnlyDictionary<string, Tensor> state_dict()
            {
                // PyTorch's order: each module's own parameters, then its persistent buffers, then its children, depth first.
                var d = new OrderedStateDict();
                foreach (var (prefix, m) in named_modules())
                {
                    foreach (var (n, p) in m._parameters)
                        if (p is not null) d.Add(prefix.Length == 0 ? n : prefix + "." + n, p);
                    foreach (var (n, b, persistent) in m._buffers)
                        if (b is not null && persistent) d.Add(prefix.Length == 0 ? n : prefix + "." + n, b);
                }
                return d;
            }

            /// <summary>
            /// Copies values from <paramref name="state"/> into this module's parameters and buffers (no grad).
            /// Shapes must match. With <paramref name="strict"/>, missing or unexpected keys throw, naming them all.
            /// Returns the keys that were missing and unexpected.
            /// </summary>
            public (IReadOnlyList<string> missing, IReadOnlyList<string> unexpected) load_state_dict(
                IReadOnlyDictionary<string, Tensor> state, bool strict = true)
            {
                ArgumentNullException.ThrowIfNull(state);
                var own = state_dict();
                var missing = own.Keys.Where(k => !state.ContainsKey(k)).ToList();
                var unexpected = state.Keys.Where(k => !own.ContainsKey(k)).ToList();
                if (strict && (missing.Count > 0 || unexpected.Count > 0))
                    throw new InvalidOperationException(
                        $"load_state_dict({Name}): " +
                        (missing.Count > 0 ? $"missing keys: {string.Join(", ", missing)}. " : "") +
                        (unexpected.Count > 0 ? $"unexpected keys: {string.Join(", ", unexpected)}." : ""));
                var mismatched = new List<string>();
                foreach (var (k, dst) in own)
                {
                    if (!state.TryGetValue(k, out var src)) continue;
                    var a = dst.shape;
                    var b = src.shape;
                    if (!a.SequenceEqual(b)) mismatched.Add($"{k}: expected [{string.Join(", ", a)}], got [{string.Join(", ", b)}]");
                }
                if (mismatched.Count > 0)
                    throw new InvalidOperationException($"load_state_dict({Name}): shape mismatch for {string.Join("; ", mismatched)}");
                using (torch.no_grad())
                    foreach (var (k, dst) in own)
                        if (state.TryGetValue(k, out var src)) dst.copy_(src);
                return (missing, unexpected);
            }

            public override string ToString() => $"{Name}({num_parameters()} parameters)";

            // -------------------------------------------------- disposal

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
                foreach (var (_, p) in _parameters) p?.Dispose();
                foreach (var (_, b, _) in _buffers) b?.Dispose();
                foreach (var (_, m) in _modules) m.Dispose();
            }

            private sealed class OrderedStateDict : Dictionary<string, Tensor>, IReadOnlyDictionary<string, Tensor>
            {
                private readonly List<string> _order = [];
                public new void Add(string key, Tensor value)
                {
                    base.Add(key, value);
                    _order.Add(key);
                }
                IEnumerable<string> IReadOnlyDictionary<string, Tensor>.Keys => _order;
                IEnumerator<KeyValuePair<string, Tensor>> IEnumerable<KeyValuePair<string, Tensor>>.GetEnumerator()
                    => _order.Select(k => new KeyValuePair<string, Tensor>(k, this[k])).GetEnumerator();
            }
        }

        /// <summary>A module with one input and one output: implement <see cref="forward"/>, call with <see cref="call"/>.</summary>
        public abstract class Module<T, TResult> : Module
        {
            protected Module(string? name = null) : base(name) { }

            public abstract TResult forward(T input);

            public TResult call(T input) => forward(input);
        }

        /// <summary>A module with two inputs (e.g. an image and a timestep).</summary>
        public abstract class Module<T1, T2, TResult> : Module
        {
            protected Module(string? name = null) : base(name) { }

            public abstract TResult forward(T1 input1, T2 input2);

            public TResult call(T1 input1, T2 input2) => forward(input1, input2);
        }

        /// <summary>Wraps a tensor as a trainable parameter (requires_grad, owned by its module, outside dispose scopes).</summary>
        public static Parameter Parameter(Tensor data, bool requires_grad = true) => new(data, requires_grad);
    }
}

/// <summary>
/// A trainable tensor: a detached handle on the given data with requires_grad set, never owned by a dispose
/// scope (its module or optimizer disposes it).
/// </summary>
public sealed class Parameter : Tensor
{
    public Parameter(Tensor data, bool requires_grad = true) : base(DetachedHandle(data))
    {
        DetachFromDisposeScope();
        this.requires_grad = requires_grad;
    }

    private static IntPtr DetachedHandle(Tensor data)
    {
        ArgumentNullException.ThrowIfNull(data);
        LibTorch.Check(LibTorch.mt_detach(data.Handle, out IntPtr r));
        return r;
    }
}
