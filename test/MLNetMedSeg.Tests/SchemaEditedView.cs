using MLNetMedSeg.Data;

namespace MLNetMedSeg.Tests;

/// <summary>
/// A view over another with one column removed or declared with another type (for schema-error tests). Reading a
/// retyped column's value throws: a stage that reads it has skipped its schema check.
/// </summary>
internal sealed class SchemaEditedView : IDataView
{
    private readonly IDataView _source;
    private readonly string _column;
    private readonly bool _removed;

    private SchemaEditedView(IDataView source, string column, ColumnType? newType)
    {
        ArgumentNullException.ThrowIfNull(source);
        _source = source;
        _column = column;
        _ = source.Schema[column]; // throws SchemaException naming the column when absent
        var b = new DataViewSchema.Builder(source.Schema);
        if (newType is null)
        {
            _removed = true;
            b.RemoveColumn(column);
        }
        else b.AddColumn(column, newType, source.Schema[column].Annotations);
        Schema = b.ToSchema();
    }

    /// <summary>A view of <paramref name="source"/> without <paramref name="column"/>.</summary>
    public static SchemaEditedView WithoutColumn(IDataView source, string column) => new(source, column, null);

    /// <summary>A view of <paramref name="source"/> whose schema says <paramref name="column"/> has type <paramref name="type"/>.</summary>
    public static SchemaEditedView WithColumnType(IDataView source, string column, ColumnType type)
    {
        ArgumentNullException.ThrowIfNull(type);
        return new(source, column, type);
    }

    public DataViewSchema Schema { get; }

    public long? GetRowCount() => _source.GetRowCount();

    public bool CanShuffle => _source.CanShuffle;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToArray();
        var inner = needed.Where(c => !(c.Name == _column && !_removed)).Select(c => _source.Schema[c.Name]).ToArray();
        return new Cursor(this, _source.GetRowCursor(inner, rand), needed);
    }

    private sealed class Cursor(SchemaEditedView view, DataViewRowCursor inner, DataViewSchema.Column[] needed) : DataViewRowCursor
    {
        private readonly bool[] _active = Enumerable.Range(0, view.Schema.Count).Select(i => needed.Any(c => c.Index == i)).ToArray();

        public override DataViewSchema Schema => view.Schema;

        public override bool MoveNext()
        {
            bool ok = inner.MoveNext();
            Position = inner.Position;
            return ok;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override object GetValue(DataViewSchema.Column column)
        {
            if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was created");
            if (column.Name == view._column && !view._removed)
                throw new InvalidOperationException(
                    $"a value of column '{column.Name}' was read although its declared type ({column.Type}) is not the one the stage needs: the stage skipped its schema check");
            return inner.GetValue(inner.Schema[column.Name]);
        }

        protected override void Dispose(bool disposing) => inner.Dispose();
    }
}
