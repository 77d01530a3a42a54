using Microsoft.ML.Data;
using MLNetMedSeg.Data;
using MLDataView = Microsoft.ML.IDataView;
using MLSchema = Microsoft.ML.DataViewSchema;

namespace MLNetMedSeg.Core.MLNet;

/// <summary>ML.NET data views as the library's stages read them.</summary>
public static class MLNetData
{
    /// <summary>
    /// The columns of <paramref name="input"/> the library can read, converted lazily (<see cref="TensorColumns"/>).
    /// Training shuffles every epoch: data that cannot be shuffled (a streaming loader) is read once into memory — a
    /// <see cref="CachedDataView"/> that the caller disposes (or use <see cref="Fit"/>, which does).
    /// </summary>
    internal static Data.IDataView ForTraining(MLDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var view = new MLNetInputView(input);
        return view.CanShuffle ? view : CachedDataView.Create(view);
    }

    /// <summary>
    /// An estimator's ML.NET Fit: <paramref name="schemaCheck"/> (the stage's GetOutputSchema) first judges the input's
    /// columns — a missing, wrongly typed or unreadable column is a <see cref="SchemaException"/> naming it, before any row
    /// is read — then <paramref name="fit"/> trains on the data as <see cref="ForTraining"/> gives it (shuffleable),
    /// and the in-memory copy made for data that cannot be shuffled is disposed afterwards.
    /// </summary>
    internal static T Fit<T>(MLDataView input, Func<Data.DataViewSchema, Data.DataViewSchema> schemaCheck, Func<Data.IDataView, T> fit)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(schemaCheck);
        ArgumentNullException.ThrowIfNull(fit);
        CheckSchema(input.Schema, schemaCheck);
        var data = ForTraining(input);
        try
        {
            return fit(data);
        }
        finally
        {
            (data as IDisposable)?.Dispose();
        }
    }

    /// <summary>
    /// Runs a stage's schema check on the library's view of <paramref name="schema"/>; a column the ML.NET data has but
    /// the library cannot read is named as such in the <see cref="SchemaException"/>.
    /// </summary>
    internal static Data.DataViewSchema CheckSchema(Microsoft.ML.DataViewSchema schema, Func<Data.DataViewSchema, Data.DataViewSchema> schemaCheck)
    {
        ArgumentNullException.ThrowIfNull(schema);
        ArgumentNullException.ThrowIfNull(schemaCheck);
        var inner = new MLNetInputView.SchemaOnly(schema).Schema;
        return ExplainUnreadable(() => schemaCheck(inner), name => UnreadableType(schema, inner, name));
    }

    /// <summary>
    /// <see cref="CheckSchema"/> for a trainer's ML.NET validation set (its options' <c>ValidationSet</c>): a schema
    /// error names the validation set, and a missing column says that ML.NET's cache leaves image columns out.
    /// </summary>
    internal static void CheckValidationSet(Microsoft.ML.DataViewSchema schema, string stage, Func<Data.DataViewSchema, Data.DataViewSchema> schemaCheck)
    {
        try
        {
            CheckSchema(schema, schemaCheck);
        }
        catch (Data.SchemaException e)
        {
            bool missing = !schema.Any(c => c.Name == e.ColumnName);
            throw new Data.SchemaException(missing
                    ? $"{stage}: the options' ValidationSet has no column '{e.ColumnName}'; its columns: " +
                      $"{(schema.Count == 0 ? "(none)" : string.Join(", ", schema.Select(c => c.Name)))} (ml.Data.Cache leaves image " +
                      "columns out: pass the transformed view itself, which the trainer reads into memory once)"
                    : $"the options' ValidationSet: {e.Message}",
                e.ColumnName, e);
        }
    }

    /// <summary>The columns of <paramref name="input"/> the library can read, converted lazily, in the input's order.</summary>
    internal static Data.IDataView AsLibraryView(MLDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new MLNetInputView(input);
    }

    /// <summary>
    /// The ML.NET type of column <paramref name="name"/> of <paramref name="schema"/> when it is there (visible) but the
    /// library cannot read it (absent from <paramref name="inner"/>, the library's view), else null.
    /// </summary>
    internal static string? UnreadableType(MLSchema schema, Data.DataViewSchema inner, string name)
    {
        if (inner.GetColumnOrNull(name) is not null) return null;
        var c = schema.GetColumnOrNull(name);
        return c is { IsHidden: false } col ? col.Type.ToString() : null;
    }

    /// <summary>
    /// Runs a stage's schema check; a "column not found" error about a column that IS in the ML.NET data, as a type
    /// the library cannot read (<paramref name="unreadableType"/> gives its description, or null), becomes a
    /// <see cref="SchemaException"/> saying so and what the library reads instead.
    /// </summary>
    internal static T ExplainUnreadable<T>(Func<T> check, Func<string, string?> unreadableType)
    {
        try
        {
            return check();
        }
        catch (SchemaException e) when (unreadableType(e.ColumnName) is { } type)
        {
            throw new SchemaException(
                $"column '{e.ColumnName}' has the ML.NET type {type}, which MLNetMedSeg's stages cannot read. They read images as " +
                "MLImage (LoadImages/ResizeImages) or float vectors with dimensions [C,H,W]; masks as float vectors [1,H,W] or [H,W], or " +
                "integer vectors [H,W]; a float vector must carry its dimensions (e.g. [VectorType(3, H, W)] on a float[] member, or " +
                $"ExtractPixels without interleaving — see TensorColumns). The stage said: {e.Message}",
                e.ColumnName, e);
        }
    }

    /// <summary>
    /// Reads the tensor-valued column <paramref name="columnName"/> of an ML.NET data view — a float or integer vector
    /// with its dimensions (e.g. [1,H,W] masks, [C,H,W] images, [C,H,W] probabilities from a segmenter) or an
    /// <c>MLImage</c> (read as float [3,H,W] RGB in [0,1]) — one tensor per row, in row order, on the CPU. The caller
    /// owns (disposes) the tensors. A missing or unreadable column is a <see cref="SchemaException"/> naming it.
    /// </summary>
    public static List<TorchSharp.torch.Tensor> ReadTensors(MLDataView data, string columnName, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentException.ThrowIfNullOrEmpty(columnName);
        var view = AsLibraryView(data);
        var column = ExplainUnreadable(() => view.Schema[columnName], name => UnreadableType(data.Schema, view.Schema, name));
        if (column.Type is not TensorColumnType)
            throw new SchemaException($"ReadTensors: column '{columnName}' is {column.Type}, not a tensor column", columnName);
        var result = new List<TorchSharp.torch.Tensor>();
        try
        {
            using var cursor = view.GetRowCursor([column]);
            while (cursor.MoveNext())
            {
                cancellationToken.ThrowIfCancellationRequested();
                result.Add(cursor.GetTensor(columnName).clone().DetachFromDisposeScope());
            }
            return result;
        }
        catch
        {
            foreach (var t in result) t.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Materialises <paramref name="columns"/> of an engine view (text, number and float tensor columns) as an in-memory ML.NET
    /// data view: text stays text, a number is a double, a float tensor column becomes a <see cref="VectorDataViewType"/> with its dimensions.
    /// </summary>
    internal static MLDataView ToMLNet(Microsoft.ML.MLContext ml, Data.IDataView view, IReadOnlyList<string> columns, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(ml);
        ArgumentNullException.ThrowIfNull(view);
        var cols = columns.Select(c => view.Schema[c]).ToArray();
        var values = cols.Select(_ => new List<object>()).ToArray();
        using (var cursor = view.GetRowCursor(cols))
            while (cursor.MoveNext())
            {
                cancellationToken.ThrowIfCancellationRequested();
                for (int i = 0; i < cols.Length; i++)
                {
                    if (cols[i].Type is TextColumnType) values[i].Add(cursor.GetText(cols[i].Name));
                    else if (cols[i].Type is NumberColumnType) values[i].Add(cursor.GetNumber(cols[i].Name));
                    else
                    {
                        using var t = cursor.GetTensor(cols[i].Name).to(TorchSharp.torch.CPU).to(TorchSharp.torch.ScalarType.Float32).contiguous();
                        values[i].Add(t.data<float>().ToArray());
                    }
                }
            }
        return new InMemoryColumns(cols.Select((c, i) => (c.Name, c.Type switch
        {
            TextColumnType => (Microsoft.ML.Data.DataViewType)Microsoft.ML.Data.TextDataViewType.Instance,
            NumberColumnType => Microsoft.ML.Data.NumberDataViewType.Double,
            TensorColumnType t => new VectorDataViewType(Microsoft.ML.Data.NumberDataViewType.Single, t.Shape.Select(d => (int)d).ToArray()),
            _ => throw new SchemaException($"ToMLNet: column '{c.Name}' is {c.Type}, which is not text, a number or a tensor", c.Name),
        }, values[i])).ToArray());
    }

    /// <summary>An in-memory ML.NET data view of text, double and float-vector columns (what <see cref="ToMLNet"/> returns).</summary>
    private sealed class InMemoryColumns : MLDataView
    {
        private readonly List<object>[] _values;
        private readonly int _rows;

        public InMemoryColumns((string Name, Microsoft.ML.Data.DataViewType Type, List<object> Values)[] columns)
        {
            var b = new MLSchema.Builder();
            foreach (var (name, type, _) in columns) b.AddColumn(name, type);
            Schema = b.ToSchema();
            _values = columns.Select(c => c.Values).ToArray();
            _rows = _values.Length == 0 ? 0 : _values[0].Count;
        }

        public bool CanShuffle => false;

        public MLSchema Schema { get; }

        public long? GetRowCount() => _rows;

        public Microsoft.ML.DataViewRowCursor GetRowCursor(IEnumerable<MLSchema.Column> columnsNeeded, Random? rand = null) => new Cursor(this);

        public Microsoft.ML.DataViewRowCursor[] GetRowCursorSet(IEnumerable<MLSchema.Column> columnsNeeded, int n, Random? rand = null) => [new Cursor(this)];

        private sealed class Cursor(InMemoryColumns owner) : Microsoft.ML.DataViewRowCursor
        {
            private long _position = -1;

            public override MLSchema Schema => owner.Schema;
            public override long Position => _position;
            public override long Batch => 0;

            public override bool MoveNext()
            {
                if (_position + 1 >= owner._rows) { _position = owner._rows; return false; }
                _position++;
                return true;
            }

            public override bool IsColumnActive(MLSchema.Column column) => true;

            public override Microsoft.ML.ValueGetter<DataViewRowId> GetIdGetter() => (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

            public override Microsoft.ML.ValueGetter<TValue> GetGetter<TValue>(MLSchema.Column column)
            {
                var values = owner._values[column.Index];
                if (column.Type is Microsoft.ML.Data.TextDataViewType && typeof(TValue) == typeof(ReadOnlyMemory<char>))
                {
                    Microsoft.ML.ValueGetter<ReadOnlyMemory<char>> g = (ref ReadOnlyMemory<char> v) => v = ((string)values[(int)_position]).AsMemory();
                    return (Microsoft.ML.ValueGetter<TValue>)(Delegate)g;
                }
                if (column.Type is Microsoft.ML.Data.NumberDataViewType && typeof(TValue) == typeof(double))
                {
                    Microsoft.ML.ValueGetter<double> g = (ref double v) => v = (double)values[(int)_position];
                    return (Microsoft.ML.ValueGetter<TValue>)(Delegate)g;
                }
                if (column.Type is VectorDataViewType && typeof(TValue) == typeof(VBuffer<float>))
                {
                    Microsoft.ML.ValueGetter<VBuffer<float>> g = (ref VBuffer<float> v) =>
                    {
                        var src = (float[])values[(int)_position];
                        var editor = VBufferEditor.Create(ref v, src.Length);
                        src.CopyTo(editor.Values);
                        v = editor.Commit();
                    };
                    return (Microsoft.ML.ValueGetter<TValue>)(Delegate)g;
                }
                throw new InvalidOperationException($"column '{column.Name}' is {column.Type}; a getter of {typeof(TValue).Name} was asked for");
            }
        }
    }
}
