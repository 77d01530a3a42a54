using System.Collections;

namespace MLNetMedSeg.Torch;

public static partial class torch
{
    public static partial class nn
    {
        /// <summary>Applies its modules in order.</summary>
        public sealed class Sequential : Module<Tensor, Tensor>, IEnumerable<Module<Tensor, Tensor>>
        {
            private readonly List<Module<Tensor, Tensor>> _layers = [];

            public Sequential(params Module<Tensor, Tensor>[] layers) : base(nameof(Sequential))
            {
                foreach (var l in layers) append(l);
            }

            public Sequential(params (string name, Module<Tensor, Tensor> module)[] layers) : base(nameof(Sequential))
            {
                foreach (var (n, l) in layers)
                {
                    RegisterModule(n, l);
                    _layers.Add(l);
                }
            }

            public Sequential append(Module<Tensor, Tensor> layer)
            {
                RegisterModule(_layers.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), layer);
                _layers.Add(layer);
                return this;
            }

            public int Count => _layers.Count;
            public Module<Tensor, Tensor> this[int index] => _layers[index];

            /// <summary>Runs the layers; intermediate tensors are disposed as soon as the next layer has consumed them.</summary>
            public override Tensor forward(Tensor input)
            {
                if (_layers.Count == 0) return input.alias();
                Tensor x = _layers[0].call(input);
                for (int k = 1; k < _layers.Count; k++)
                {
                    var y = _layers[k].call(x);
                    if (!ReferenceEquals(y, x)) x.Dispose();
                    x = y;
                }
                return x;
            }

            public IEnumerator<Module<Tensor, Tensor>> GetEnumerator() => _layers.GetEnumerator();
            IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
        }

        /// <summary>A list of submodules registered as "0", "1", ...; calls nothing itself.</summary>
        public sealed class ModuleList<T> : Module, IReadOnlyList<T> where T : Module
        {
            private readonly List<T> _items = [];

            public ModuleList(params T[] items) : base(nameof(ModuleList<T>))
            {
                foreach (var m in items) append(m);
            }

            public ModuleList<T> append(T module)
            {
                RegisterModule(_items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), module);
                _items.Add(module);
                return this;
            }

            public int Count => _items.Count;
            public T this[int index] => _items[index];
            public IEnumerator<T> GetEnumerator() => _items.GetEnumerator();
            IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
        }
    }
}
