using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data;

/// <summary>
/// Base for random-access views whose rows can be computed by index (loaded files, in-memory arrays, cached data).
/// Implement <see cref="RowCount"/> and <see cref="ComputeValue"/>; cursors, shuffling and tensor ownership are
/// handled here. Tensors returned by <see cref="ComputeValue"/> are taken over by the cursor.
/// </summary>
internal abstract class RowDataView : IRowAccessDataView
{
    protected RowDataView(DataViewSchema schema) => Schema = schema;

    public DataViewSchema Schema { get; }

    /// <summary>Number of rows.</summary>
    public abstract long RowCount { get; }

    public long? GetRowCount() => RowCount;

    public bool CanShuffle => true;

    /// <summary>Computes one value of one row. A tensor result becomes owned by the calling cursor.</summary>
    protected abstract object ComputeValue(long row, DataViewSchema.Column column);

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        long n = RowCount;
        long[] order;
        if (rand is null)
        {
            order = new long[n];
            for (long k = 0; k < n; k++) order[k] = k;
        }
        else order = Permutation(n, rand);
        return new Cursor(this, columnsNeeded, order);
    }

    /// <summary>A cursor visiting exactly the source rows <paramref name="rows"/>, in that order (see <see cref="IRowAccessDataView"/>).</summary>
    public DataViewRowCursor GetIndexedRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, IReadOnlyList<long> rows)
    {
        long n = RowCount;
        var order = new long[rows.Count];
        for (int k = 0; k < order.Length; k++)
        {
            long r = rows[k];
            if (r < 0 || r >= n) throw new ArgumentOutOfRangeException(nameof(rows), r, $"row {r} is outside 0..{n - 1}");
            order[k] = r;
        }
        return new Cursor(this, columnsNeeded, order);
    }

    /// <summary>A uniformly random permutation of 0..n-1 (Fisher–Yates) drawn from <paramref name="rand"/>.</summary>
    public static long[] Permutation(long n, Random rand)
    {
        var p = new long[n];
        for (long k = 0; k < n; k++) p[k] = k;
        for (long k = n - 1; k > 0; k--)
        {
            long j = rand.NextInt64(k + 1);
            (p[k], p[j]) = (p[j], p[k]);
        }
        return p;
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly RowDataView _view;
        private readonly long[] _order;
        private readonly bool[] _active;
        private readonly object?[] _values;
        private readonly List<Tensor> _owned = [];
        private bool _disposed;

        public Cursor(RowDataView view, IEnumerable<DataViewSchema.Column> needed, long[] order)
        {
            _view = view;
            _order = order;
            _active = new bool[view.Schema.Count];
            foreach (var c in needed) _active[c.Index] = true;
            _values = new object?[view.Schema.Count];
        }

        public override DataViewSchema Schema => _view.Schema;

        /// <summary>The source row index of the current row.</summary>
        public long SourceRow => _order[Position];

        public override bool MoveNext()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            ReleaseRow();
            if (Position + 1 >= _order.Length) { Position = _order.Length; return false; }
            Position++;
            return true;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override object GetValue(DataViewSchema.Column column)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (Position < 0 || Position >= _order.Length) throw new InvalidOperationException("the cursor is not on a row (call MoveNext first)");
            if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was created");
            var v = _values[column.Index];
            if (v is not null) return v;
            v = _view.ComputeValue(_order[Position], column);
            if (v is Tensor t)
            {
                t.DetachFromDisposeScope();
                _owned.Add(t);
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
        }
    }
}
