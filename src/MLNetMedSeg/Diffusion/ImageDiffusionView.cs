using MLNetMedSeg.Data;
using MLNetMedSeg.Torch;

namespace MLNetMedSeg.Diffusion;

/// <summary>
/// The image diffusion transformer's output view: passes the input through and adds the generated-image column. A
/// cursor that needs it reads up to <see cref="ImageDiffusionOptions.TransformBatchSize"/> rows ahead from its source
/// (keeping copies of their requested values), samples once for their stacked masks (row by row when sizes differ;
/// each row's noise seeded by its position) and then serves the rows one at a time. A cursor that does not ask for
/// the generated column samples nothing.
/// </summary>
internal sealed class ImageDiffusionView(ImageDiffusionTransformer owner, IDataView source, DataViewSchema schema) : IDataView
{
    public DataViewSchema Schema { get; } = schema;

    public long? GetRowCount() => source.GetRowCount();

    public bool CanShuffle => source.CanShuffle;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => Schema[c.Name]).ToArray();
        var o = owner.OptionsRef;
        bool sample = needed.Any(c => c.Name == o.OutputColumn);
        var srcCols = new HashSet<string>(needed.Where(c => c.Name != o.OutputColumn).Select(c => c.Name));
        if (sample) srcCols.Add(o.ConditionColumn);
        var cols = srcCols.Select(n => source.Schema[n]).ToArray();
        return new Cursor(owner, this, needed, cols, sample, source.GetRowCursor(cols, rand));
    }

    private sealed class Row(long position, Dictionary<string, object> values)
    {
        public long Position { get; } = position;
        public Dictionary<string, object> Values { get; } = values;
        public Tensor? Generated { get; set; }

        public void Dispose()
        {
            foreach (var v in Values.Values) (v as Tensor)?.Dispose();
            Generated?.Dispose();
        }
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly ImageDiffusionTransformer _owner;
        private readonly ImageDiffusionView _view;
        private readonly DataViewSchema.Column[] _srcCols;
        private readonly bool _sample;
        private readonly DataViewRowCursor _src;
        private readonly bool[] _active;
        private readonly Queue<Row> _ahead = new();
        private Row? _current;
        private bool _srcDone, _disposed;

        public Cursor(ImageDiffusionTransformer owner, ImageDiffusionView view, DataViewSchema.Column[] needed,
            DataViewSchema.Column[] srcCols, bool sample, DataViewRowCursor src)
        {
            _owner = owner;
            _view = view;
            _srcCols = srcCols;
            _sample = sample;
            _src = src;
            _active = view.Schema.Select(c => needed.Any(n => n.Index == c.Index)).ToArray();
        }

        public override DataViewSchema Schema => _view.Schema;

        public override bool MoveNext()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _current?.Dispose();
            _current = null;
            if (!_sample)
            {
                bool ok = _src.MoveNext();
                Position = _src.Position;
                return ok;
            }
            if (_ahead.Count == 0 && !_srcDone) ReadAhead();
            if (_ahead.Count == 0)
            {
                Position = -1;
                return false;
            }
            _current = _ahead.Dequeue();
            Position = _current.Position;
            return true;
        }

        private void ReadAhead()
        {
            int n = Math.Max(1, _owner.OptionsRef.TransformBatchSize);
            var rows = new List<Row>(n);
            try
            {
                while (rows.Count < n)
                {
                    if (!_src.MoveNext()) { _srcDone = true; break; }
                    var values = new Dictionary<string, object>(StringComparer.Ordinal);
                    var row = new Row(_src.Position, values);
                    rows.Add(row);
                    foreach (var c in _srcCols)
                    {
                        var v = _src.GetValue(c);
                        values[c.Name] = v is Tensor t ? t.clone().DetachFromDisposeScope() : v;
                    }
                }
                if (rows.Count == 0) return;
                string col = _owner.OptionsRef.ConditionColumn;
                var masks = rows.Select(r => (Tensor)r.Values[col]).ToList();
                foreach (var (t, r) in masks.Zip(rows))
                    if (t.dim() != 3 || t.size(0) != 1)
                        throw new InvalidOperationException($"{ImageDiffusionTransformer.Name}: row {r.Position}: mask '{col}' must be [1,H,W], got [{string.Join(",", t.shape)}]");
                bool sameSize = masks.All(t => t.shape.SequenceEqual(masks[0].shape));
                var groups = sameSize ? [Enumerable.Range(0, rows.Count).ToArray()] : Enumerable.Range(0, rows.Count).Select(i => new[] { i }).ToList();
                foreach (var g in groups)
                {
                    var images = _owner.SampleRows(g.Select(i => rows[i].Position).ToArray(), g.Select(i => masks[i]).ToArray());
                    for (int k = 0; k < g.Length; k++) rows[g[k]].Generated = images[k];
                }
                foreach (var r in rows) _ahead.Enqueue(r);
                rows.Clear();
            }
            finally
            {
                foreach (var r in rows) r.Dispose();
            }
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override object GetValue(DataViewSchema.Column column)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was created");
            if (!_sample) return _src.GetValue(_src.Schema[column.Name]);
            var row = _current ?? throw new InvalidOperationException("the cursor is not on a row (call MoveNext first)");
            if (column.Name == _owner.OptionsRef.OutputColumn) return row.Generated!;
            return row.Values[column.Name];
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
