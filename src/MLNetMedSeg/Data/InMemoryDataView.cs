using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data;

/// <summary>
/// A data view over values held in memory: per column, a list of tensors, strings or doubles. The view owns its
/// tensors (detached from dispose scopes) and frees them when disposed; cursors hand out aliases.
/// </summary>
internal sealed class InMemoryDataView : RowDataView, IDisposable
{
    private readonly object[][] _columns; // [column][row]
    private bool _disposed;

    private InMemoryDataView(DataViewSchema schema, object[][] columns) : base(schema) => _columns = columns;

    public override long RowCount => _columns.Length == 0 ? 0 : _columns[0].Length;

    /// <summary>
    /// Builds a view from columns of equal length. Tensor columns take ownership of the given tensors; each tensor
    /// must match its column type (dtype and fixed dims). Types: <see cref="TensorColumnType"/>, <see cref="TextColumnType"/>
    /// (values string), <see cref="NumberColumnType"/> (values double).
    /// </summary>
    public static InMemoryDataView Create(params (string name, ColumnType type, System.Collections.IList values)[] columns)
    {
        var b = new DataViewSchema.Builder();
        foreach (var (n, t, _) in columns) b.AddColumn(n, t);
        var schema = b.ToSchema();
        int rows = columns.Length == 0 ? 0 : columns[0].values.Count;
        var data = new object[columns.Length][];
        for (int c = 0; c < columns.Length; c++)
        {
            var (name, type, values) = columns[c];
            if (values.Count != rows)
                throw new ArgumentException($"column '{name}' has {values.Count} values but column '{columns[0].name}' has {rows}");
            data[c] = new object[rows];
            for (int r = 0; r < rows; r++)
            {
                object v = values[r] ?? throw new ArgumentException($"column '{name}', row {r}: value is null");
                switch (type)
                {
                    case TensorColumnType tt when v is Tensor t:
                        if (!tt.Accepts(t.dtype, t.shape))
                            throw new SchemaException($"column '{name}', row {r}: a {t.dtype} tensor of shape [{string.Join(",", t.shape)}] does not fit {tt}", name);
                        t.DetachFromDisposeScope();
                        break;
                    case TextColumnType when v is string:
                        break;
                    case NumberColumnType when v is double:
                        break;
                    case NumberColumnType when v is float or int or long:
                        v = Convert.ToDouble(v, System.Globalization.CultureInfo.InvariantCulture);
                        break;
                    default:
                        throw new SchemaException($"column '{name}', row {r}: a {v.GetType().Name} is not a value of {type}", name);
                }
                data[c][r] = v;
            }
        }
        return new InMemoryDataView(schema, data);
    }

    protected override object ComputeValue(long row, DataViewSchema.Column column)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var v = _columns[column.Index][row];
        return v is Tensor t ? t.alias() : v;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var col in _columns)
            foreach (var v in col)
                if (v is Tensor t) t.Dispose();
    }
}
