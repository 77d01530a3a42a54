using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data;

/// <summary>One source row held by a <see cref="BatchedMapView"/> cursor while its batch is computed and served.</summary>
internal sealed class BatchedRow : IDisposable
{
    internal BatchedRow(long position, Dictionary<string, object> inputs)
    {
        Position = position;
        Inputs = inputs;
    }

    /// <summary>The row's position in the source cursor (seeds per-row randomness).</summary>
    public long Position { get; }

    /// <summary>Copies of the requested source values (tensors are owned by the row).</summary>
    public IReadOnlyDictionary<string, object> Inputs { get; }

    /// <summary>The added columns' values, set by the batch function (tensors are owned by the row: detach them from scopes).</summary>
    public Dictionary<string, object> Outputs { get; } = new(StringComparer.Ordinal);

    /// <summary>The input tensor of column <paramref name="name"/>.</summary>
    public Tensor Tensor(string name) => (Tensor)Inputs[name];

    /// <summary>Frees the row's tensors.</summary>
    public void Dispose()
    {
        foreach (var v in Inputs.Values) (v as Tensor)?.Dispose();
        foreach (var v in Outputs.Values) (v as Tensor)?.Dispose();
        Outputs.Clear();
    }
}

/// <summary>
/// The lazy, batched output view that model stages share: it passes the source through and adds columns that are
/// computed for up to <c>batchSize</c> rows at once. A cursor that needs an added column reads that many rows ahead from
/// its source (keeping copies of their requested values and of the stage's input columns), calls the batch function
/// once for them, and then serves the rows one at a time; a cursor that needs none of the added columns is a plain
/// pass-through and computes nothing.
/// </summary>
internal sealed class BatchedMapView : IDataView
{
    private readonly IDataView _source;
    private readonly HashSet<string> _added;
    private readonly IReadOnlyList<string> _inputs;
    private readonly int _batchSize;
    private readonly Action<IReadOnlyList<BatchedRow>> _compute;

    /// <param name="source">The input view.</param>
    /// <param name="schema">The output schema: the source's columns plus the added ones.</param>
    /// <param name="addedColumns">The columns the batch function sets on every row.</param>
    /// <param name="inputColumns">Source columns the batch function reads.</param>
    /// <param name="batchSize">Rows per call of <paramref name="compute"/> (at least 1).</param>
    /// <param name="compute">Sets <see cref="BatchedRow.Outputs"/> for every added column of every row of a batch.</param>
    public BatchedMapView(IDataView source, DataViewSchema schema, IEnumerable<string> addedColumns, IEnumerable<string> inputColumns,
        int batchSize, Action<IReadOnlyList<BatchedRow>> compute)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(compute);
        _source = source;
        Schema = schema;
        _added = new HashSet<string>(addedColumns, StringComparer.Ordinal);
        _inputs = inputColumns.ToArray();
        _batchSize = Math.Max(1, batchSize);
        _compute = compute;
    }

    /// <inheritdoc/>
    public DataViewSchema Schema { get; }

    /// <inheritdoc/>
    public long? GetRowCount() => _source.GetRowCount();

    /// <inheritdoc/>
    public bool CanShuffle => _source.CanShuffle;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => Schema[c.Name]).ToArray();
        bool compute = needed.Any(c => _added.Contains(c.Name));
        var srcNames = new HashSet<string>(needed.Where(c => !_added.Contains(c.Name)).Select(c => c.Name), StringComparer.Ordinal);
        if (compute) srcNames.UnionWith(_inputs);
        var cols = srcNames.Select(n => _source.Schema[n]).ToArray();
        return new Cursor(this, needed, cols, compute, _source.GetRowCursor(cols, rand));
    }

    /// <summary>
    /// Groups batch indices so that the tensors of a group share one shape: the whole batch when all shapes agree, else
    /// one index per group (rows of different sizes are computed one by one).
    /// </summary>
    public static IReadOnlyList<int[]> SameShapeGroups(IReadOnlyList<Tensor> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (tensors.Count == 0) return [];
        bool same = tensors.All(t => t.shape.SequenceEqual(tensors[0].shape));
        return same ? [Enumerable.Range(0, tensors.Count).ToArray()] : Enumerable.Range(0, tensors.Count).Select(i => new[] { i }).ToList();
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly BatchedMapView _view;
        private readonly DataViewSchema.Column[] _srcCols;
        private readonly bool _compute;
        private readonly DataViewRowCursor _src;
        private readonly bool[] _active;
        private readonly Queue<BatchedRow> _ahead = new();
        private BatchedRow? _current;
        private bool _srcDone, _disposed;

        public Cursor(BatchedMapView view, DataViewSchema.Column[] needed, DataViewSchema.Column[] srcCols, bool compute, DataViewRowCursor src)
        {
            _view = view;
            _srcCols = srcCols;
            _compute = compute;
            _src = src;
            _active = view.Schema.Select(c => needed.Any(n => n.Index == c.Index)).ToArray();
        }

        public override DataViewSchema Schema => _view.Schema;

        public override bool MoveNext()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _current?.Dispose();
            _current = null;
            if (!_compute)
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
            var rows = new List<BatchedRow>(_view._batchSize);
            try
            {
                while (rows.Count < _view._batchSize)
                {
                    if (!_src.MoveNext()) { _srcDone = true; break; }
                    var values = new Dictionary<string, object>(StringComparer.Ordinal);
                    rows.Add(new BatchedRow(_src.Position, values));
                    foreach (var c in _srcCols)
                    {
                        var v = _src.GetValue(c);
                        values[c.Name] = v is Tensor t ? t.clone().DetachFromDisposeScope() : v;
                    }
                }
                if (rows.Count == 0) return;
                _view._compute(rows);
                foreach (var r in rows)
                    foreach (var name in _view._added)
                        if (!r.Outputs.ContainsKey(name))
                            throw new InvalidOperationException($"the batch function set no value of column '{name}' for row {r.Position}");
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
            if (!_compute) return _src.GetValue(_src.Schema[column.Name]);
            var row = _current ?? throw new InvalidOperationException("the cursor is not on a row (call MoveNext first)");
            return _view._added.Contains(column.Name) ? row.Outputs[column.Name] : row.Inputs[column.Name];
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
