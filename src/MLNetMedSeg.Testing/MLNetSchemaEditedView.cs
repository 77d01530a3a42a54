using Microsoft.ML;
using Microsoft.ML.Data;

namespace MLNetMedSeg.Testing;

/// <summary>
/// An ML.NET data view over another with one column removed or declared with another type (for schema-error tests).
/// Reading a retyped column's value throws: a stage that reads it has skipped its schema check.
/// </summary>
public sealed class MLNetSchemaEditedView : IDataView
{
    private readonly IDataView _source;
    private readonly int[] _sourceIndex; // output column i → source column index
    private readonly int _retyped = -1;  // output index of the retyped column, or −1

    private MLNetSchemaEditedView(IDataView source, string column, DataViewType? newType)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentException.ThrowIfNullOrEmpty(column);
        _source = source;
        var target = source.Schema.GetColumnOrNull(column)
            ?? throw new ArgumentException($"the data has no column '{column}'", nameof(column));
        var b = new DataViewSchema.Builder();
        var map = new List<int>();
        foreach (var c in source.Schema)
        {
            if (c.Index == target.Index)
            {
                if (newType is null) continue;
                _retyped = map.Count;
                b.AddColumn(c.Name, newType);
            }
            else b.AddColumn(c.Name, c.Type, c.Annotations);
            map.Add(c.Index);
        }
        _sourceIndex = map.ToArray();
        Schema = b.ToSchema();
    }

    /// <summary>A view of <paramref name="source"/> without <paramref name="column"/>.</summary>
    public static MLNetSchemaEditedView WithoutColumn(IDataView source, string column) => new(source, column, null);

    /// <summary>A view of <paramref name="source"/> whose schema says <paramref name="column"/> has type <paramref name="type"/>.</summary>
    public static MLNetSchemaEditedView WithColumnType(IDataView source, string column, DataViewType type)
    {
        ArgumentNullException.ThrowIfNull(type);
        return new(source, column, type);
    }

    /// <inheritdoc/>
    public DataViewSchema Schema { get; }

    /// <inheritdoc/>
    public bool CanShuffle => _source.CanShuffle;

    /// <inheritdoc/>
    public long? GetRowCount() => _source.GetRowCount();

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToArray();
        var inner = needed.Where(c => c.Index != _retyped).Select(c => _source.Schema[_sourceIndex[c.Index]]).ToArray();
        return new Cursor(this, _source.GetRowCursor(inner, rand), needed);
    }

    /// <inheritdoc/>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor(MLNetSchemaEditedView view, DataViewRowCursor inner, DataViewSchema.Column[] needed) : DataViewRowCursor
    {
        private readonly HashSet<int> _active = needed.Select(c => c.Index).ToHashSet();

        public override DataViewSchema Schema => view.Schema;

        public override long Position => inner.Position;

        public override long Batch => inner.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override bool MoveNext() => inner.MoveNext();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index == view._retyped)
                throw new InvalidOperationException($"column '{column.Name}' was retyped to {column.Type} by the workout: its values cannot be read (the stage skipped its schema check)");
            return inner.GetGetter<TValue>(inner.Schema[view._sourceIndex[column.Index]]);
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
