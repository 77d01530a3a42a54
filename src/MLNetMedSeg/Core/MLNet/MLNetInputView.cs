using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using MLNetMedSeg.Data;
using TorchSharp;
using MLColumn = Microsoft.ML.DataViewSchema.Column;
using MLDataView = Microsoft.ML.IDataView;
using MLRowCursor = Microsoft.ML.DataViewRowCursor;

namespace MLNetMedSeg.Core.MLNet;

/// <summary>
/// An ML.NET <see cref="MLDataView"/> read by the library's stages: every visible column the library can read
/// (<see cref="TensorColumns.FromDataViewType"/>) appears under its name, converted lazily, row by row, only when a
/// cursor asks for it; other columns are left out. Shuffles when the source can.
/// </summary>
internal sealed class MLNetInputView : Data.IDataView
{
    private readonly MLDataView _source;
    private readonly MLColumn[] _sourceColumns;

    public MLNetInputView(MLDataView source)
    {
        ArgumentNullException.ThrowIfNull(source);
        _source = source;
        var converted = new SchemaOnly(source.Schema);
        Schema = converted.Schema;
        _sourceColumns = converted.SourceColumns;
    }

    /// <summary>The library's view of an ML.NET schema: the readable visible columns, and which ML.NET column each is.</summary>
    internal sealed class SchemaOnly
    {
        public SchemaOnly(Microsoft.ML.DataViewSchema schema)
        {
            var b = new Data.DataViewSchema.Builder();
            var cols = new List<MLColumn>();
            foreach (var c in schema)
            {
                if (c.IsHidden) continue;
                if (TensorColumns.FromDataViewType(c.Type) is not { } t) continue;
                b.AddColumn(c.Name, t);
                cols.Add(c);
            }
            Schema = b.ToSchema();
            SourceColumns = cols.ToArray();
        }

        public Data.DataViewSchema Schema { get; }

        /// <summary>Parallel to <see cref="Schema"/>: the ML.NET column each library column reads.</summary>
        public MLColumn[] SourceColumns { get; }
    }

    public Data.DataViewSchema Schema { get; }

    public MLDataView Source => _source;

    public long? GetRowCount() => _source.GetRowCount();

    public bool CanShuffle => _source.CanShuffle;

    public Data.DataViewRowCursor GetRowCursor(IEnumerable<Data.DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).Distinct().ToArray();
        var src = _source.GetRowCursor(needed.Select(i => _sourceColumns[i]), rand);
        return new Cursor(this, src, needed);
    }

    internal sealed class Cursor : Data.DataViewRowCursor
    {
        private readonly MLNetInputView _view;
        private readonly MLRowCursor _src;
        private readonly Func<object>?[] _readers;
        private readonly object?[] _values;
        private readonly bool[] _read;

        public Cursor(MLNetInputView view, MLRowCursor src, int[] needed)
        {
            _view = view;
            _src = src;
            int n = view.Schema.Count;
            _readers = new Func<object>?[n];
            _values = new object?[n];
            _read = new bool[n];
            foreach (int i in needed) _readers[i] = MakeReader(src, view._sourceColumns[i], (ColumnType)view.Schema[i].Type);
        }

        public override Data.DataViewSchema Schema => _view.Schema;

        public override bool IsColumnActive(Data.DataViewSchema.Column column) => _readers[column.Index] is not null;

        public override bool MoveNext()
        {
            Clear();
            if (!_src.MoveNext()) return false;
            Position++;
            return true;
        }

        public override object GetValue(Data.DataViewSchema.Column column)
        {
            int i = column.Index;
            var reader = _readers[i] ?? throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was made");
            if (Position < 0) throw new InvalidOperationException("call MoveNext before reading values");
            if (!_read[i])
            {
                _values[i] = reader();
                _read[i] = true;
            }
            return _values[i]!;
        }

        private void Clear()
        {
            for (int i = 0; i < _values.Length; i++)
            {
                if (_values[i] is Tensor t) t.Dispose();
                _values[i] = null;
                _read[i] = false;
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                Clear();
                _src.Dispose();
            }
        }

        internal static Func<object> MakeReader(Microsoft.ML.DataViewRow src, MLColumn col, ColumnType type)
        {
            string name = col.Name;
            switch (col.Type)
            {
                case ImageDataViewType:
                {
                    var get = src.GetGetter<MLImage>(col);
                    MLImage img = null!;
                    return () =>
                    {
                        get(ref img);
                        return TensorColumns.FromImage(img, name);
                    };
                }
                case VectorDataViewType v when v.ItemType == NumberDataViewType.Single:
                {
                    var get = src.GetGetter<VBuffer<float>>(col);
                    var shape = ((TensorColumnType)type).Shape;
                    VBuffer<float> buf = default;
                    return () =>
                    {
                        get(ref buf);
                        return TensorColumns.FromVector(buf, shape, name);
                    };
                }
                case VectorDataViewType v:
                    return IntegerVectorReader(src, col, v.ItemType.RawType, ((TensorColumnType)type).Shape);
                case TextDataViewType:
                {
                    var get = src.GetGetter<ReadOnlyMemory<char>>(col);
                    ReadOnlyMemory<char> s = default;
                    return () =>
                    {
                        get(ref s);
                        return s.ToString();
                    };
                }
                case BooleanDataViewType:
                {
                    var get = src.GetGetter<bool>(col);
                    bool x = false;
                    return () =>
                    {
                        get(ref x);
                        return x ? 1.0 : 0.0;
                    };
                }
                default:
                    return NumberReader(src, col);
            }
        }

        private static Func<object> IntegerVectorReader(Microsoft.ML.DataViewRow src, MLColumn col, Type raw, long[] shape)
        {
            if (raw == typeof(long)) return VectorReader<long>(src, col, shape);
            if (raw == typeof(int)) return VectorReader<int>(src, col, shape);
            if (raw == typeof(uint)) return VectorReader<uint>(src, col, shape);
            if (raw == typeof(byte)) return VectorReader<byte>(src, col, shape);
            throw new NotSupportedException($"column '{col.Name}': vectors of {raw.Name} are not read as class maps");
        }

        private static Func<object> VectorReader<T>(Microsoft.ML.DataViewRow src, MLColumn col, long[] shape) where T : struct
        {
            var get = src.GetGetter<VBuffer<T>>(col);
            VBuffer<T> buf = default;
            return () =>
            {
                get(ref buf);
                return TensorColumns.FromVector(buf, shape, col.Name);
            };
        }

        private static Func<object> NumberReader(Microsoft.ML.DataViewRow src, MLColumn col)
        {
            var raw = col.Type.RawType;
            if (raw == typeof(float)) { var g = src.GetGetter<float>(col); float x = 0; return () => { g(ref x); return (double)x; }; }
            if (raw == typeof(double)) { var g = src.GetGetter<double>(col); double x = 0; return () => { g(ref x); return x; }; }
            if (raw == typeof(int)) { var g = src.GetGetter<int>(col); int x = 0; return () => { g(ref x); return (double)x; }; }
            if (raw == typeof(long)) { var g = src.GetGetter<long>(col); long x = 0; return () => { g(ref x); return (double)x; }; }
            if (raw == typeof(uint)) { var g = src.GetGetter<uint>(col); uint x = 0; return () => { g(ref x); return (double)x; }; }
            if (raw == typeof(ulong)) { var g = src.GetGetter<ulong>(col); ulong x = 0; return () => { g(ref x); return (double)x; }; }
            if (raw == typeof(short)) { var g = src.GetGetter<short>(col); short x = 0; return () => { g(ref x); return (double)x; }; }
            if (raw == typeof(ushort)) { var g = src.GetGetter<ushort>(col); ushort x = 0; return () => { g(ref x); return (double)x; }; }
            if (raw == typeof(byte)) { var g = src.GetGetter<byte>(col); byte x = 0; return () => { g(ref x); return (double)x; }; }
            if (raw == typeof(sbyte)) { var g = src.GetGetter<sbyte>(col); sbyte x = 0; return () => { g(ref x); return (double)x; }; }
            throw new NotSupportedException($"column '{col.Name}': {col.Type} is not read as a number");
        }
    }
}
