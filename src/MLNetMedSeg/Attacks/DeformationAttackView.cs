using MLNetMedSeg.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Attacks;

/// <summary>
/// The attacker's output view: k rows per source row (its requested columns repeated) plus the attack columns. A
/// cursor that needs an attack column reads up to BatchSize rows ahead (keeping copies of their requested values),
/// attacks them in one generator pass (row by row when their sizes differ) and serves the k·rows one at a time; a
/// cursor that needs none only repeats the source rows.
/// </summary>
internal sealed class DeformationAttackView(DeformationAttackTransformer owner, IDataView source, DataViewSchema schema) : IDataView
{
    public DataViewSchema Schema { get; } = schema;

    public long? GetRowCount() => source.GetRowCount() * owner.Options.Samples;

    public bool CanShuffle => source.CanShuffle;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => Schema[c.Name]).ToArray();
        var o = owner.Options;
        var outputs = o.OutputColumns().ToHashSet(StringComparer.Ordinal);
        bool attack = needed.Any(c => outputs.Contains(c.Name));
        var srcCols = new HashSet<string>(needed.Where(c => !outputs.Contains(c.Name)).Select(c => c.Name), StringComparer.Ordinal);
        if (attack) srcCols.Add(o.ImageColumn);
        if (attack && o.MaskColumn is { } m) srcCols.Add(m);
        var cols = srcCols.Select(n => source.Schema[n]).ToArray();
        return new Cursor(owner, this, needed, cols, attack, source.GetRowCursor(cols, rand));
    }

    /// <summary>One output row: the source values (shared by a row's k samples) and, when attacked, its own attack tensors.</summary>
    private sealed class Row(SourceRow source, Dictionary<string, Tensor>? attack)
    {
        public SourceRow Source { get; } = source;
        public Dictionary<string, Tensor>? Attack { get; } = attack;

        public void Dispose()
        {
            DisposeAttack();
            Source.Release();
        }

        public void DisposeAttack()
        {
            if (Attack is not null) foreach (var t in Attack.Values) t.Dispose();
        }
    }

    /// <summary>The copied values of one source row, freed when the last of its k output rows is.</summary>
    private sealed class SourceRow(long position, Dictionary<string, object> values, int users)
    {
        private int _users = users;
        public long Position { get; } = position;
        public Dictionary<string, object> Values { get; } = values;

        public void Release()
        {
            if (--_users == 0) Free();
        }

        public void Free()
        {
            _users = 0;
            foreach (var v in Values.Values) (v as Tensor)?.Dispose();
            Values.Clear();
        }
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly DeformationAttackTransformer _owner;
        private readonly DeformationAttackView _view;
        private readonly DataViewSchema.Column[] _srcCols;
        private readonly bool[] _active;
        private readonly bool _attack;
        private readonly DataViewRowCursor _src;
        private readonly Queue<Row> _ahead = new();
        private Row? _current;
        private bool _srcDone, _disposed;

        public Cursor(DeformationAttackTransformer owner, DeformationAttackView view, DataViewSchema.Column[] needed,
            DataViewSchema.Column[] srcCols, bool attack, DataViewRowCursor src)
        {
            _owner = owner;
            _view = view;
            _srcCols = srcCols;
            _attack = attack;
            _src = src;
            _active = new bool[view.Schema.Count];
            foreach (var c in needed) _active[c.Index] = true;
        }

        public override DataViewSchema Schema => _view.Schema;

        public override bool MoveNext()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _current?.Dispose();
            _current = null;
            if (_ahead.Count == 0 && !_srcDone) Fill();
            if (_ahead.Count == 0) return false;
            _current = _ahead.Dequeue();
            Position++;
            return true;
        }

        private void Fill()
        {
            var o = _owner.Options;
            int k = o.Samples;
            var sources = new List<SourceRow>();
            var rows = new List<Row>();
            try
            {
                while (sources.Count < o.BatchSize)
                {
                    if (!_src.MoveNext()) { _srcDone = true; break; }
                    var values = new Dictionary<string, object>(StringComparer.Ordinal);
                    foreach (var c in _srcCols)
                    {
                        var v = _src.GetValue(c);
                        values[c.Name] = v is Tensor t ? t.clone().DetachFromDisposeScope() : v;
                    }
                    sources.Add(new SourceRow(_src.Position, values, k));
                }
                if (sources.Count == 0) return;
                if (!_attack)
                {
                    foreach (var s in sources)
                        for (int j = 0; j < k; j++) rows.Add(new Row(s, null));
                }
                else
                {
                    var images = sources.Select(s => (Tensor)s.Values[o.ImageColumn]).ToList();
                    bool same = images.All(t => t.shape.SequenceEqual(images[0].shape));
                    var groups = same ? [Enumerable.Range(0, sources.Count).ToArray()] : Enumerable.Range(0, sources.Count).Select(i => new[] { i }).ToList();
                    foreach (var g in groups) Attack(sources, g, rows);
                }
                sources.Clear();
                foreach (var r in rows) _ahead.Enqueue(r);
                rows.Clear();
            }
            catch
            {
                foreach (var r in rows) r.DisposeAttack();
                foreach (var s in sources) s.Free();
                throw;
            }
        }

        /// <summary>Attacks the source rows of one group (consecutive positions, or one row) and appends their k rows each.</summary>
        private void Attack(List<SourceRow> sources, int[] group, List<Row> rows)
        {
            var o = _owner.Options;
            int k = o.Samples;
            using var scope = NewDisposeScope();
            var x = stack(group.Select(i => (Tensor)sources[i].Values[o.ImageColumn]).ToArray());
            Tensor? m = o.MaskColumn is { } mc ? stack(group.Select(i => (Tensor)sources[i].Values[mc]).ToArray()) : null;
            // Noise is seeded per source position: attack row by row when positions are not consecutive.
            long first = sources[group[0]].Position;
            bool consecutive = group.Select((i, j) => sources[i].Position == first + j).All(b => b);
            if (!consecutive && group.Length > 1)
            {
                foreach (var i in group) Attack(sources, [i], rows);
                return;
            }
            using var batch = _owner.Attack(x, m, first);
            var cpuAttacked = batch.Attacked.cpu();
            var cpuMask = batch.DeformedMask?.cpu();
            var cpuD = batch.Deformation.cpu();
            var cpuV = batch.Intensity.cpu();
            for (int r = 0; r < group.Length; r++)
                for (int s = 0; s < k; s++)
                {
                    long idx = r * k + s;
                    Tensor Take(Tensor t) => t.narrow(0, idx, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope();
                    var attack = new Dictionary<string, Tensor>(StringComparer.Ordinal)
                    {
                        [o.AttackedImageColumn] = Take(cpuAttacked),
                        [o.DeformationColumn] = Take(cpuD),
                        [o.IntensityColumn] = Take(cpuV),
                    };
                    if (cpuMask is not null) attack[o.DeformedMaskColumn] = Take(cpuMask);
                    rows.Add(new Row(sources[group[r]], attack));
                }
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override object GetValue(DataViewSchema.Column column)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was created");
            var row = _current ?? throw new InvalidOperationException("the cursor is not on a row (call MoveNext first)");
            if (row.Attack is { } a && a.TryGetValue(column.Name, out var t)) return t;
            var v = row.Source.Values[column.Name];
            return v;
        }

        protected override void Dispose(bool disposing)
        {
            if (_disposed) return;
            _disposed = true;
            _current?.Dispose();
            _current = null;
            while (_ahead.Count > 0) _ahead.Dequeue().Dispose();
            _src.Dispose();
        }
    }
}
