using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data;

/// <summary>
/// A batch of rows: each tensor column stacked into one [B, ...] tensor on the requested device, text and number
/// columns as arrays. The batch owns its tensors (outside any dispose scope) and frees them when disposed; the
/// enumerator of <see cref="DataBatchExtensions.GetBatches"/> disposes each batch when it moves to the next.
/// </summary>
internal sealed class DataBatch : IDisposable
{
    private readonly Dictionary<string, Tensor> _tensors = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string[]> _texts = new(StringComparer.Ordinal);
    private readonly Dictionary<string, double[]> _numbers = new(StringComparer.Ordinal);

    internal DataBatch(int count, long index)
    {
        Count = count;
        Index = index;
    }

    /// <summary>Rows in this batch.</summary>
    public int Count { get; }

    /// <summary>0-based index of this batch within its pass over the data.</summary>
    public long Index { get; }

    /// <summary>The stacked tensor of a tensor column.</summary>
    public Tensor this[string column] => _tensors.TryGetValue(column, out var t) ? t
        : throw new KeyNotFoundException($"the batch has no tensor column '{column}' (it has: {string.Join(", ", _tensors.Keys)})");

    public string[] Texts(string column) => _texts.TryGetValue(column, out var t) ? t
        : throw new KeyNotFoundException($"the batch has no text column '{column}'");

    public double[] Numbers(string column) => _numbers.TryGetValue(column, out var t) ? t
        : throw new KeyNotFoundException($"the batch has no number column '{column}'");

    internal void Set(string column, Tensor t) => _tensors[column] = t.DetachFromDisposeScope();
    internal void Set(string column, string[] v) => _texts[column] = v;
    internal void Set(string column, double[] v) => _numbers[column] = v;

    public void Dispose()
    {
        foreach (var t in _tensors.Values) t.Dispose();
        _tensors.Clear();
    }
}

internal static class DataBatchExtensions
{
    /// <summary>
    /// Reads <paramref name="data"/> in batches of <paramref name="batchSize"/> rows. With <paramref name="rand"/> the
    /// rows are visited in random order (draw a new order each epoch by passing the same Random again).
    /// Tensor values of a column must have equal shapes within a batch.
    /// </summary>
    public static IEnumerable<DataBatch> GetBatches(this IDataView data, IReadOnlyList<string> columns, int batchSize,
        Random? rand = null, Device? device = null, bool dropLast = false, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        var cols = columns.Select(c => data.Schema[c]).ToArray();
        if (rand is not null && !data.CanShuffle)
            throw new InvalidOperationException("this data view cannot be shuffled; cache it first (ml.Data.Cache)");
        return Iterate(data, cols, batchSize, rand, device, dropLast, cancellationToken);
    }

    private static IEnumerable<DataBatch> Iterate(IDataView data, DataViewSchema.Column[] cols, int batchSize,
        Random? rand, Device? device, bool dropLast, CancellationToken ct)
    {
        using var cursor = data.GetRowCursor(cols, rand);
        long index = 0;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var batch = ReadBatch(cursor, cols, batchSize, device, index);
            if (batch is null) yield break;
            if (dropLast && batch.Count < batchSize)
            {
                batch.Dispose();
                yield break;
            }
            try
            {
                yield return batch;
            }
            finally
            {
                batch.Dispose();
            }
            index++;
        }
    }

    private static DataBatch? ReadBatch(DataViewRowCursor cursor, DataViewSchema.Column[] cols, int batchSize, Device? device, long index)
    {
        var rows = new List<object[]>(batchSize);
        var keep = new List<Tensor>();
        try
        {
            while (rows.Count < batchSize && cursor.MoveNext())
            {
                var values = new object[cols.Length];
                for (int c = 0; c < cols.Length; c++)
                {
                    var v = cursor.GetValue(cols[c]);
                    // The cursor frees its row tensors on MoveNext: keep an alias until the batch is stacked.
                    if (v is Tensor t) { var a = t.alias().DetachFromDisposeScope(); keep.Add(a); v = a; }
                    values[c] = v;
                }
                rows.Add(values);
            }
            if (rows.Count == 0) return null;
            var batch = new DataBatch(rows.Count, index);
            for (int c = 0; c < cols.Length; c++)
            {
                var col = cols[c];
                switch (col.Type)
                {
                    case TensorColumnType:
                        var ts = rows.Select(r => (Tensor)r[c]).ToArray();
                        var first = ts[0].shape;
                        for (int r = 1; r < ts.Length; r++)
                            if (!ts[r].shape.SequenceEqual(first))
                                throw new InvalidOperationException(
                                    $"column '{col.Name}': rows of one batch differ in shape ([{string.Join(",", first)}] vs [{string.Join(",", ts[r].shape)}]); resize them first (ml.Transforms.ResizeImages or LoadMasks' size)");
                        using (torch.NewDisposeScope())
                        {
                            var stacked = torch.stack(ts, 0);
                            var moved = device is null ? stacked : stacked.to(device);
                            batch.Set(col.Name, moved);
                        }
                        break;
                    case TextColumnType:
                        batch.Set(col.Name, rows.Select(r => (string)r[c]).ToArray());
                        break;
                    default:
                        batch.Set(col.Name, rows.Select(r => (double)r[c]).ToArray());
                        break;
                }
            }
            return batch;
        }
        finally
        {
            foreach (var t in keep) t.Dispose();
        }
    }
}
