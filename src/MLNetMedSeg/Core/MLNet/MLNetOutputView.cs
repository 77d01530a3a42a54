using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Data;
using TorchSharp;
using MLColumn = Microsoft.ML.DataViewSchema.Column;
using MLDataView = Microsoft.ML.IDataView;
using MLRowCursor = Microsoft.ML.DataViewRowCursor;
using MLSchema = Microsoft.ML.DataViewSchema;

namespace MLNetMedSeg.Core.MLNet;

/// <summary>
/// How a row-to-row stage's output looks to ML.NET: every input column passes through untouched (same type, same
/// getter), and the columns the stage adds — or replaces, which hides the input's column of that name, as ML.NET's own
/// transforms do — follow as ML.NET types (<see cref="TensorColumns"/>).
/// </summary>
internal sealed class StageSchema
{
    private StageSchema(MLSchema output, int inputCount, string[] added)
    {
        Output = output;
        InputCount = inputCount;
        Added = added;
    }

    /// <summary>The ML.NET output schema: the input's columns, then <see cref="Added"/>.</summary>
    public MLSchema Output { get; }

    /// <summary>Number of input columns (hidden ones included); output column i &lt; this is input column i.</summary>
    public int InputCount { get; }

    /// <summary>Names of the columns the stage writes, in output order (output index = InputCount + k).</summary>
    public string[] Added { get; }

    /// <summary>
    /// The output schema of <paramref name="stage"/> over <paramref name="input"/>; throws the stage's
    /// <see cref="SchemaException"/> (naming the column) when the input lacks a column or has the wrong type.
    /// </summary>
    public static StageSchema Of(Pipeline.ITransformer stage, MLSchema input)
    {
        var inner = new MLNetInputView.SchemaOnly(input).Schema;
        var output = MLNetData.ExplainUnreadable(() => stage.GetOutputSchema(inner), name => MLNetData.UnreadableType(input, inner, name));
        var added = new List<Data.DataViewSchema.Column>();
        foreach (var c in output)
        {
            var before = inner.GetColumnOrNull(c.Name);
            // A column the stage did not touch keeps its type object; anything else is the stage's.
            if (before is null || !ReferenceEquals(before.Type, c.Type)) added.Add(c);
        }
        var b = new MLSchema.Builder();
        b.AddColumns(input);
        foreach (var c in added) b.AddColumn(c.Name, TensorColumns.ToDataViewType(c.Type));
        return new StageSchema(b.ToSchema(), input.Count, added.Select(c => c.Name).ToArray());
    }
}

/// <summary>
/// A row-to-row stage applied to an ML.NET data view, lazily: a cursor that asks only for input columns runs nothing;
/// one that asks for an added column runs the stage (in its own batches) over the converted input. The stage keeps the
/// rows in order and gives k = <see cref="StageTransformer.OutputRowsPerInputRow"/> rows per input row; output row
/// r·k + j shows input row r's columns.
/// </summary>
internal sealed class MLNetOutputView : MLDataView
{
    private readonly MLDataView _input;
    private readonly StageTransformer _stage;
    private readonly StageSchema _schema;
    private readonly int _k;

    public MLNetOutputView(MLDataView input, StageTransformer stage)
    {
        _input = input;
        _stage = stage;
        _schema = StageSchema.Of(stage, input.Schema);
        _k = stage.OutputRowsPerInputRow;
        if (_k < 1) throw new InvalidOperationException($"{stage.GetType().Name}.OutputRowsPerInputRow is {_k}");
    }

    public bool CanShuffle => false;

    public MLSchema Schema => _schema.Output;

    public long? GetRowCount() => _input.GetRowCount() * _k;

    public MLRowCursor GetRowCursor(IEnumerable<MLColumn> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToArray();
        var pass = needed.Where(c => c.Index < _schema.InputCount).Select(c => _input.Schema[c.Index]).ToArray();
        var ours = needed.Where(c => c.Index >= _schema.InputCount).Select(c => _schema.Added[c.Index - _schema.InputCount]).ToArray();
        var src = _input.GetRowCursor(pass);
        Data.DataViewRowCursor? stageCursor = null;
        if (ours.Length > 0)
        {
            try
            {
                var view = _stage.Transform(new MLNetInputView(_input));
                stageCursor = view.GetRowCursor(ours.Select(n => view.Schema[n]).ToArray());
            }
            catch
            {
                src.Dispose();
                throw;
            }
        }
        return new Cursor(this, src, stageCursor, needed);
    }

    public MLRowCursor[] GetRowCursorSet(IEnumerable<MLColumn> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : MLRowCursor
    {
        private readonly MLNetOutputView _view;
        private readonly MLRowCursor _src;
        private readonly Data.DataViewRowCursor? _stage;
        private readonly bool[] _active;
        private long _position = -1;
        private bool _srcValid;
        private bool _disposed;

        public Cursor(MLNetOutputView view, MLRowCursor src, Data.DataViewRowCursor? stage, MLColumn[] needed)
        {
            _view = view;
            _src = src;
            _stage = stage;
            _active = new bool[view.Schema.Count];
            foreach (var c in needed) _active[c.Index] = true;
        }

        public override MLSchema Schema => _view.Schema;

        public override long Position => _position;

        public override long Batch => _src.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _view._k == 1
            ? _src.GetIdGetter()
            : (ref DataViewRowId id) => id = new DataViewRowId((ulong)_position, 0);

        public override bool IsColumnActive(MLColumn column) => _active[column.Index];

        public override bool MoveNext()
        {
            // Input row r stays current for output rows r·k .. r·k + k − 1.
            bool a = _position < 0 || (_position + 1) % _view._k == 0 ? _src.MoveNext() : _srcValid;
            _srcValid = a;
            if (_stage is not null)
            {
                bool b = _stage.MoveNext();
                if (a != b)
                    throw new InvalidOperationException($"stage {_view._stage.GetType().Name} gave {(b ? "more" : "fewer")} rows than its input; only row-to-row stages map ML.NET data views");
            }
            if (a) _position++;
            return a;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(MLColumn column)
        {
            if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was made");
            if (column.Index < _view._schema.InputCount) return _src.GetGetter<TValue>(_view._input.Schema[column.Index]);
            var stage = _stage!;
            var inner = stage.Schema[_view._schema.Added[column.Index - _view._schema.InputCount]];
            Delegate getter = inner.Type switch
            {
                TensorColumnType { DType: ScalarType.Float32 } => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
                    TensorColumns.ToVector((Tensor)stage.GetValue(inner), ref dst)),
                TensorColumnType => (ValueGetter<VBuffer<long>>)((ref VBuffer<long> dst) =>
                    TensorColumns.ToVector((Tensor)stage.GetValue(inner), ref dst)),
                TextColumnType => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> dst) =>
                    dst = ((string)stage.GetValue(inner)).AsMemory()),
                _ => (ValueGetter<double>)((ref double dst) => dst = (double)stage.GetValue(inner)),
            };
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"column '{column.Name}' holds {column.Type}, not {typeof(TValue).Name}");
        }

        protected override void Dispose(bool disposing)
        {
            if (_disposed) return;
            _disposed = true;
            if (disposing)
            {
                _stage?.Dispose();
                _src.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// A row-to-row stage as ML.NET's <see cref="IRowToRowMapper"/>, which is what a <c>PredictionEngine</c> runs: each
/// input row is converted once, the stage runs on it as a batch of one, and the added columns are served from that.
/// </summary>
internal sealed class MLNetRowMapper : IRowToRowMapper
{
    private readonly Pipeline.ITransformer _stage;
    private readonly StageSchema _schema;
    private readonly MLNetInputView.SchemaOnly _inputs;

    public MLNetRowMapper(Pipeline.ITransformer stage, MLSchema inputSchema)
    {
        _stage = stage;
        InputSchema = inputSchema;
        _schema = StageSchema.Of(stage, inputSchema);
        _inputs = new MLNetInputView.SchemaOnly(inputSchema);
    }

    public MLSchema InputSchema { get; }

    public MLSchema OutputSchema => _schema.Output;

    // The stage may read any input column the library can convert; ML.NET computes upstream only what is asked for.
    public IEnumerable<MLColumn> GetDependencies(IEnumerable<MLColumn> dependingColumns) =>
        dependingColumns.Any(c => c.Index >= _schema.InputCount)
            ? _inputs.SourceColumns.Concat(dependingColumns.Where(c => c.Index < _schema.InputCount)).Distinct()
            : dependingColumns.Where(c => c.Index < _schema.InputCount);

    public DataViewRow GetRow(DataViewRow input, IEnumerable<MLColumn> activeColumns) => new Row(this, input, activeColumns);

    private sealed class Row : DataViewRow
    {
        private readonly MLNetRowMapper _mapper;
        private readonly DataViewRow _input;
        private readonly bool[] _active;
        private readonly Dictionary<string, object> _values = new(StringComparer.Ordinal);
        private readonly Func<object>[] _readers;
        private long _computedAt = -1;

        public Row(MLNetRowMapper mapper, DataViewRow input, IEnumerable<MLColumn> active)
        {
            _mapper = mapper;
            _input = input;
            _active = new bool[mapper.OutputSchema.Count];
            foreach (var c in active) _active[c.Index] = true;
            bool any = _active.Skip(mapper._schema.InputCount).Any(a => a);
            _readers = any
                ? mapper._inputs.SourceColumns.Select((c, i) => MLNetInputView.Cursor.MakeReader(input, c, (ColumnType)mapper._inputs.Schema[i].Type)).ToArray()
                : [];
        }

        public override MLSchema Schema => _mapper.OutputSchema;

        public override long Position => _input.Position;

        public override long Batch => _input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        public override bool IsColumnActive(MLColumn column) => _active[column.Index];

        private object Value(string name)
        {
            if (_computedAt != _input.Position || _values.Count == 0)
            {
                Clear();
                var schema = _mapper._inputs.Schema;
                var values = new object[schema.Count];
                using var view = new OneRowView(schema, values, Math.Max(0, _input.Position));
                for (int i = 0; i < schema.Count; i++) values[i] = _readers[i]();
                var output = _mapper._stage.Transform(view);
                using var cursor = output.GetRowCursor(_mapper._schema.Added.Select(n => output.Schema[n]).ToArray());
                if (!cursor.MoveNext()) throw new InvalidOperationException($"stage {_mapper._stage.GetType().Name} gave no row for its input row");
                // Kept as managed arrays, never as tensors: a PredictionEngine never disposes the row it gets from
                // the mapper, so a tensor held here would be left to the finalizer.
                foreach (var n in _mapper._schema.Added)
                {
                    var v = cursor.GetValue(output.Schema[n]);
                    _values[n] = v switch
                    {
                        Tensor { dtype: ScalarType.Float32 } t => ToArray<float>(t),
                        Tensor t => ToArray<long>(t),
                        _ => v,
                    };
                }
                _computedAt = _input.Position;
            }
            return _values[name];
        }

        private static T[] ToArray<T>(Tensor t) where T : unmanaged
        {
            using var scope = torch.NewDisposeScope();
            var cpu = t.to(typeof(T) == typeof(float) ? ScalarType.Float32 : ScalarType.Int64).cpu().contiguous();
            return cpu.data<T>().ToArray();
        }

        private void Clear() => _values.Clear();

        public override ValueGetter<TValue> GetGetter<TValue>(MLColumn column)
        {
            if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' was not requested");
            int k = column.Index - _mapper._schema.InputCount;
            if (k < 0) return _input.GetGetter<TValue>(_input.Schema[column.Index]);
            string name = _mapper._schema.Added[k];
            Delegate getter = column.Type switch
            {
                VectorDataViewType v when v.ItemType == NumberDataViewType.Single => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> dst) =>
                    Copy((float[])Value(name), ref dst)),
                VectorDataViewType => (ValueGetter<VBuffer<long>>)((ref VBuffer<long> dst) =>
                    Copy((long[])Value(name), ref dst)),
                TextDataViewType => (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> dst) => dst = ((string)Value(name)).AsMemory()),
                _ => (ValueGetter<double>)((ref double dst) => dst = (double)Value(name)),
            };
            return getter as ValueGetter<TValue>
                ?? throw new InvalidOperationException($"column '{column.Name}' holds {column.Type}, not {typeof(TValue).Name}");
        }

        private static void Copy<T>(T[] values, ref VBuffer<T> dst)
        {
            var editor = VBufferEditor.Create(ref dst, values.Length);
            values.AsSpan().CopyTo(editor.Values);
            dst = editor.Commit();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) Clear();
            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// One input row for a stage, at position <c>position</c>: stages that seed a row's noise by its position (the
/// diffusion samplers, PGD's random start) then give a <c>PredictionEngine</c>'s n-th prediction the values of row n of
/// <c>Transform</c>. Owns the row's tensors.
/// </summary>
internal sealed class OneRowView(Data.DataViewSchema schema, object[] values, long position) : Data.IDataView, IDisposable
{
    public Data.DataViewSchema Schema => schema;

    public long? GetRowCount() => 1;

    public bool CanShuffle => false;

    public Data.DataViewRowCursor GetRowCursor(IEnumerable<Data.DataViewSchema.Column> columnsNeeded, Random? rand = null) =>
        new Cursor(this, columnsNeeded.Select(c => c.Index).ToHashSet());

    public void Dispose()
    {
        for (int i = 0; i < _values.Length; i++)
        {
            if (_values[i] is Tensor t) t.Dispose();
            _values[i] = null!;
        }
    }

    private sealed class Cursor(OneRowView view, HashSet<int> active) : Data.DataViewRowCursor
    {
        private bool _done;

        public override Data.DataViewSchema Schema => view.Schema;

        public override bool MoveNext()
        {
            if (_done) return false;
            _done = true;
            Position = view._position;
            return true;
        }

        public override bool IsColumnActive(Data.DataViewSchema.Column column) => active.Contains(column.Index);

        public override object GetValue(Data.DataViewSchema.Column column)
        {
            if (!active.Contains(column.Index)) throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was made");
            if (!_done) throw new InvalidOperationException("call MoveNext before reading values");
            return view._values[column.Index];
        }
    }

    private readonly long _position = position;
    private readonly object[] _values = values;
}
