using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data;

/// <summary>
/// One column computed per row by a <see cref="MappedDataView"/>: its name (an existing name replaces that column in
/// place, a new name is appended), its type, the source columns it reads, and the function computing it from the
/// source cursor positioned on the row.
/// </summary>
/// <param name="Name">Output column name.</param>
/// <param name="Type">Output column type; a tensor result must be a valid value of it.</param>
/// <param name="Inputs">Source columns the function reads (they are activated on the source cursor).</param>
/// <param name="Compute">
/// Computes the value from the source row: a new <see cref="Tensor"/> (it becomes owned by the mapped cursor and is
/// freed on its next MoveNext; returning a source value itself is allowed, it is aliased), a string, or a double.
/// Temporaries made inside it are freed (it runs in its own dispose scope).
/// </param>
internal sealed record MappedColumn(string Name, ColumnType Type, IReadOnlyList<string> Inputs, Func<DataViewRowCursor, object> Compute);

/// <summary>
/// A lazy view adding or replacing columns computed row by row from a source view. Nothing is computed until a
/// cursor asks for a mapped column's value; the cursor owns the tensors it computed and frees them on MoveNext.
/// Row count and shuffling are those of the source; random row access (<see cref="IRowAccessDataView"/>) is passed
/// through when the source has it. Stages build their transformers on it.
/// </summary>
internal sealed class MappedDataView : IRowAccessDataView
{
    private readonly IDataView _source;
    private readonly MappedColumn?[] _mapped; // by output column index; null = passed through from the source
    private readonly DataViewSchema.Column?[] _passThrough; // by output column index

    /// <param name="source">The input data.</param>
    /// <param name="columns">The columns to add or replace; each input must exist in the source (else <see cref="SchemaException"/>).</param>
    public MappedDataView(IDataView source, IEnumerable<MappedColumn> columns)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(columns);
        _source = source;
        var cols = columns.ToArray();
        var b = new DataViewSchema.Builder(source.Schema);
        foreach (var c in cols)
        {
            foreach (var i in c.Inputs) _ = source.Schema[i]; // throws SchemaException naming a missing input
            b.AddColumn(c.Name, c.Type);
        }
        Schema = b.ToSchema();
        _mapped = new MappedColumn?[Schema.Count];
        _passThrough = new DataViewSchema.Column?[Schema.Count];
        foreach (var c in cols) _mapped[Schema[c.Name].Index] = c;
        for (int k = 0; k < Schema.Count; k++)
            if (_mapped[k] is null) _passThrough[k] = source.Schema[Schema[k].Name];
    }

    /// <summary>The view this one maps.</summary>
    public IDataView Source => _source;

    public DataViewSchema Schema { get; }

    public long? GetRowCount() => _source.GetRowCount();

    /// <summary>The source's row count; throws when the source does not know it.</summary>
    public long RowCount => _source.GetRowCount() ?? throw new InvalidOperationException("the source view does not know its row count");

    public bool CanShuffle => _source.CanShuffle;

    /// <summary>True when the source gives random row access (then so does this view).</summary>
    public bool HasRowAccess => HasIndexedAccess(_source);

    /// <summary>True when <paramref name="view"/> can give <see cref="IRowAccessDataView.GetIndexedRowCursor"/> cursors (a mapped view only when its sources can).</summary>
    public static bool HasIndexedAccess(IDataView view) => view is MappedDataView m ? m.HasRowAccess : view is IRowAccessDataView;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToArray();
        return new Cursor(this, needed, _source.GetRowCursor(SourceColumns(needed), rand));
    }

    public DataViewRowCursor GetIndexedRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, IReadOnlyList<long> rows)
    {
        if (!HasRowAccess || _source is not IRowAccessDataView ra)
            throw new InvalidOperationException("the source of this mapped view has no random row access; cache it first (ml.Data.Cache)");
        var needed = columnsNeeded.ToArray();
        return new Cursor(this, needed, ra.GetIndexedRowCursor(SourceColumns(needed), rows));
    }

    /// <summary>
    /// A short description of the cursor's current row for error messages: its position, and its id when the
    /// source has an active text column "Id".
    /// </summary>
    public static string DescribeRow(DataViewRowCursor cursor)
    {
        var id = cursor.Schema.GetColumnOrNull("Id");
        if (id is not null && id.Type is TextColumnType && cursor.IsColumnActive(id) && cursor.GetValue(id) is string s)
            return $"row {cursor.Position} (Id '{s}')";
        return $"row {cursor.Position}";
    }

    private List<DataViewSchema.Column> SourceColumns(DataViewSchema.Column[] needed)
    {
        var set = new HashSet<int>();
        foreach (var c in needed)
        {
            var own = Schema[c.Name];
            if (_mapped[own.Index] is MappedColumn m)
                foreach (var i in m.Inputs) set.Add(_source.Schema[i].Index);
            else set.Add(_passThrough[own.Index]!.Index);
        }
        // The id (when there is one) is cheap and makes error messages name the row.
        if (set.Count > 0 && _source.Schema.GetColumnOrNull("Id") is { Type: TextColumnType } idc) set.Add(idc.Index);
        return set.Select(i => _source.Schema[i]).ToList();
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly MappedDataView _view;
        private readonly DataViewRowCursor _src;
        private readonly bool[] _active;
        private readonly object?[] _values;
        private readonly List<Tensor> _owned = [];
        private bool _disposed;

        public Cursor(MappedDataView view, DataViewSchema.Column[] needed, DataViewRowCursor src)
        {
            _view = view;
            _src = src;
            _active = new bool[view.Schema.Count];
            foreach (var c in needed) _active[view.Schema[c.Name].Index] = true;
            _values = new object?[view.Schema.Count];
        }

        public override DataViewSchema Schema => _view.Schema;

        public override bool MoveNext()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ReleaseRow();
            bool ok = _src.MoveNext();
            Position = _src.Position;
            return ok;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override object GetValue(DataViewSchema.Column column)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was created");
            var pass = _view._passThrough[column.Index];
            if (pass is not null) return _src.GetValue(pass);
            var v = _values[column.Index];
            if (v is not null) return v;
            var m = _view._mapped[column.Index]!;
            using (var scope = torch.NewDisposeScope())
            {
                v = m.Compute(_src);
                if (v is Tensor t)
                {
                    // A source value returned as is belongs to the source cursor: hand out an alias instead.
                    foreach (var i in m.Inputs)
                        if (ReferenceEquals(_src.GetValue(_src.Schema[i]), t)) { t = t.alias(); break; }
                    if (column.Type is TensorColumnType tt && !tt.Accepts(t.dtype, t.shape))
                        throw new InvalidOperationException(
                            $"column '{column.Name}', {DescribeRow(_src)}: computed a {t.dtype} tensor of shape [{string.Join(",", t.shape)}], which does not fit {tt}");
                    t.DetachFromDisposeScope();
                    _owned.Add(t);
                    v = t;
                }
            }
            _values[column.Index] = v;
            return v;
        }

        private void ReleaseRow()
        {
            foreach (var t in _owned) t.Dispose();
            _owned.Clear();
            Array.Clear(_values);
        }

        protected override void Dispose(bool disposing)
        {
            if (_disposed) return;
            _disposed = true;
            ReleaseRow();
            _src.Dispose();
        }
    }
}
