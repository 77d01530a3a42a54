using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data;

/// <summary>
/// A lazy view of chosen rows of a source with random row access (<see cref="IRowAccessDataView"/>), in a given
/// order: rows are read from the source only when a cursor reaches them. Shuffling permutes the chosen rows.
/// Used by the splits, k-fold and seeded shuffles of the data catalog.
/// </summary>
internal sealed class SubsetDataView : IRowAccessDataView
{
    private readonly IRowAccessDataView _source;
    private readonly long[] _rows;

    /// <param name="source">The source view.</param>
    /// <param name="rows">Source row indices, visited in this order (repeats allowed).</param>
    public SubsetDataView(IRowAccessDataView source, IReadOnlyList<long> rows)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(rows);
        long n = source.RowCount;
        _rows = rows.ToArray();
        foreach (var r in _rows)
            if (r < 0 || r >= n) throw new ArgumentOutOfRangeException(nameof(rows), r, $"row {r} is outside the source's 0..{n - 1}");
        _source = source;
    }

    /// <summary>The source row indices of this view's rows, in order.</summary>
    public IReadOnlyList<long> SourceRows => _rows;

    public IDataView Source => _source;

    public DataViewSchema Schema => _source.Schema;

    public long RowCount => _rows.Length;

    public long? GetRowCount() => _rows.Length;

    public bool CanShuffle => true;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        if (rand is null) return _source.GetIndexedRowCursor(columnsNeeded, _rows);
        var perm = RowDataView.Permutation(_rows.Length, rand);
        var order = new long[_rows.Length];
        for (int k = 0; k < order.Length; k++) order[k] = _rows[perm[k]];
        return _source.GetIndexedRowCursor(columnsNeeded, order);
    }

    public DataViewRowCursor GetIndexedRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, IReadOnlyList<long> rows)
    {
        var order = new long[rows.Count];
        for (int k = 0; k < order.Length; k++)
        {
            long r = rows[k];
            if (r < 0 || r >= _rows.Length) throw new ArgumentOutOfRangeException(nameof(rows), r, $"row {r} is outside 0..{_rows.Length - 1}");
            order[k] = _rows[r];
        }
        return _source.GetIndexedRowCursor(columnsNeeded, order);
    }
}

/// <summary>
/// A view over a shufflable source without random row access that visits the rows in one fixed order drawn from a
/// seed (a new <see cref="Random"/> of that seed for every cursor); a cursor given its own random source uses it.
/// </summary>
internal sealed class SeededShuffleDataView(IDataView source, int seed) : IDataView
{
    public DataViewSchema Schema => source.Schema;
    public long? GetRowCount() => source.GetRowCount();
    public bool CanShuffle => true;
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        => source.GetRowCursor(columnsNeeded, rand ?? new Random(seed));
}

/// <summary>
/// The chosen rows of a source that has no random row access, read by streaming the source and skipping the others:
/// lazy, in source order, not shufflable (cache it to shuffle).
/// </summary>
internal sealed class FilteredDataView : IDataView
{
    private readonly IDataView _source;
    private readonly HashSet<long> _keep;

    public FilteredDataView(IDataView source, IEnumerable<long> rows)
    {
        _source = source;
        _keep = [.. rows];
    }

    public DataViewSchema Schema => _source.Schema;
    public long? GetRowCount() => _keep.Count;
    public bool CanShuffle => false;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        if (rand is not null) throw new InvalidOperationException("this subset of a non-indexable view cannot be shuffled; cache the data first (ml.Data.Cache)");
        return new Cursor(this, _source.GetRowCursor(columnsNeeded));
    }

    private sealed class Cursor(FilteredDataView view, DataViewRowCursor src) : DataViewRowCursor
    {
        private long _sourcePos = -1;
        public override DataViewSchema Schema => view.Schema;
        public override bool IsColumnActive(DataViewSchema.Column column) => src.IsColumnActive(column);
        public override object GetValue(DataViewSchema.Column column) => src.GetValue(column);

        public override bool MoveNext()
        {
            while (src.MoveNext())
            {
                _sourcePos++;
                if (view._keep.Contains(_sourcePos)) { Position++; return true; }
            }
            return false;
        }

        protected override void Dispose(bool disposing) => src.Dispose();
    }
}

/// <summary>
/// An in-memory copy of a view: same schema and values, every row read once when the cache is made (so epochs do not
/// decode files again). It owns its tensors and frees them when disposed; shufflable with random row access.
/// </summary>
internal sealed class CachedDataView : RowDataView, IDisposable
{
    private readonly object[][] _rows; // [row][column]
    private bool _disposed;

    private CachedDataView(DataViewSchema schema, object[][] rows) : base(schema) => _rows = rows;

    /// <summary>Reads every row and column of <paramref name="source"/> into memory (tensors are cloned, on the device they were on).</summary>
    public static CachedDataView Create(IDataView source, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        var rows = new List<object[]>();
        var cols = source.Schema.ToArray();
        try
        {
            using var cur = source.GetRowCursor(cols);
            while (cur.MoveNext())
            {
                cancellationToken.ThrowIfCancellationRequested();
                var row = new object[cols.Length];
                rows.Add(row);
                for (int c = 0; c < cols.Length; c++)
                {
                    var v = cur.GetValue(cols[c]);
                    if (v is Tensor t)
                    {
                        using var scope = torch.NewDisposeScope();
                        v = t.detach().clone().DetachFromDisposeScope();
                    }
                    row[c] = v;
                }
            }
        }
        catch
        {
            foreach (var r in rows) foreach (var v in r) (v as Tensor)?.Dispose();
            throw;
        }
        return new CachedDataView(source.Schema, rows.ToArray());
    }

    public override long RowCount => _rows.Length;

    protected override object ComputeValue(long row, DataViewSchema.Column column)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var v = _rows[row][column.Index];
        return v is Tensor t ? t.alias() : v;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var r in _rows) foreach (var v in r) (v as Tensor)?.Dispose();
    }
}
