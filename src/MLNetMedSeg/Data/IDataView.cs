using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data;

/// <summary>
/// A schema'd, lazily read table, as ML.NET's IDataView: rows are produced by cursors only when read.
/// Values are <see cref="Tensor"/> (tensor columns), <see cref="string"/> (text) or <see cref="double"/> (number).
/// </summary>
internal interface IDataView
{
    DataViewSchema Schema { get; }

    /// <summary>The number of rows when known without reading them, else null.</summary>
    long? GetRowCount();

    /// <summary>True if <see cref="GetRowCursor"/> honours a random source by visiting rows in random order.</summary>
    bool CanShuffle { get; }

    /// <summary>
    /// A cursor over the rows. Only <paramref name="columnsNeeded"/> are computed. With <paramref name="rand"/>,
    /// a shuffling view visits its rows in an order drawn from it (same seed → same order).
    /// </summary>
    DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null);
}

/// <summary>
/// Reads rows one at a time. Tensor values belong to the cursor: they stay valid until the next
/// <see cref="MoveNext"/> or <see cref="Dispose()"/> and are then freed (clone one to keep it).
/// </summary>
internal abstract class DataViewRowCursor : IDisposable
{
    public abstract DataViewSchema Schema { get; }

    /// <summary>The index of the current row in visiting order (-1 before the first MoveNext).</summary>
    public long Position { get; protected set; } = -1;

    /// <summary>Advances to the next row; false at the end.</summary>
    public abstract bool MoveNext();

    /// <summary>True if the column was requested when the cursor was made.</summary>
    public abstract bool IsColumnActive(DataViewSchema.Column column);

    /// <summary>The current row's value of an active column (Tensor, string or double).</summary>
    public abstract object GetValue(DataViewSchema.Column column);

    public Tensor GetTensor(string column) => GetValue(Schema[column]) as Tensor
        ?? throw new SchemaException($"column '{column}' is not a tensor column ({Schema[column].Type})", column);

    public string GetText(string column) => GetValue(Schema[column]) as string
        ?? throw new SchemaException($"column '{column}' is not a text column ({Schema[column].Type})", column);

    public double GetNumber(string column) => GetValue(Schema[column]) is double d ? d
        : throw new SchemaException($"column '{column}' is not a number column ({Schema[column].Type})", column);

    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing) { }
}

/// <summary>Conveniences over <see cref="IDataView"/>.</summary>
internal static class DataViewExtensions
{
    /// <summary>A cursor over the named columns (all when none are named).</summary>
    public static DataViewRowCursor GetRowCursor(this IDataView data, params string[] columns)
    {
        var cols = columns.Length == 0 ? data.Schema.ToArray() : columns.Select(c => data.Schema[c]).ToArray();
        return data.GetRowCursor(cols);
    }

    /// <summary>Counts the rows, reading them when the count is not known up front.</summary>
    public static long CountRows(this IDataView data)
    {
        if (data.GetRowCount() is long n) return n;
        using var cur = data.GetRowCursor([]);
        long k = 0;
        while (cur.MoveNext()) k++;
        return k;
    }

    /// <summary>The values of a text column, in order.</summary>
    public static List<string> GetTextColumn(this IDataView data, string column)
    {
        var col = data.Schema[column];
        using var cur = data.GetRowCursor([col]);
        var list = new List<string>();
        while (cur.MoveNext()) list.Add(cur.GetText(column));
        return list;
    }
}
