using System.Collections;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data;

/// <summary>The type of a column's values.</summary>
internal abstract record ColumnType
{
    /// <summary>A short readable form, e.g. <c>Tensor&lt;Float32&gt;[3,?,?]</c>.</summary>
    public abstract string Describe();
    public sealed override string ToString() => Describe();
}

/// <summary>
/// Tensor-valued column: every value is a <see cref="Tensor"/> of <paramref name="DType"/> whose shape matches
/// <paramref name="Shape"/>, where -1 marks a dimension that may vary from row to row (e.g. H and W before resizing).
/// </summary>
internal sealed record TensorColumnType(ScalarType DType, long[] Shape) : ColumnType
{
    /// <summary>Images: float32 [C,H,W] in [0,1].</summary>
    public static TensorColumnType Image(long channels = -1, long height = -1, long width = -1) => new(ScalarType.Float32, [channels, height, width]);

    /// <summary>Binary masks: float32 [1,H,W] with values 0/1.</summary>
    public static TensorColumnType BinaryMask(long height = -1, long width = -1) => new(ScalarType.Float32, [1, height, width]);

    /// <summary>Class-index masks: int64 [H,W] with values 0..C (0 = background).</summary>
    public static TensorColumnType ClassMask(long height = -1, long width = -1) => new(ScalarType.Int64, [height, width]);

    /// <summary>True if a tensor with this dtype and shape is a valid value of this column.</summary>
    public bool Accepts(ScalarType dtype, long[] shape)
    {
        if (dtype != DType || shape.Length != Shape.Length) return false;
        for (int k = 0; k < shape.Length; k++)
            if (Shape[k] >= 0 && Shape[k] != shape[k]) return false;
        return true;
    }

    /// <summary>True if every value of <paramref name="other"/> is a valid value of this type.</summary>
    public bool IsAssignableFrom(TensorColumnType other)
    {
        if (other.DType != DType || other.Shape.Length != Shape.Length) return false;
        for (int k = 0; k < Shape.Length; k++)
            if (Shape[k] >= 0 && Shape[k] != other.Shape[k]) return false;
        return true;
    }

    public bool Equals(TensorColumnType? other) => other is not null && other.DType == DType && other.Shape.SequenceEqual(Shape);
    public override int GetHashCode() => HashCode.Combine(DType, Shape.Length);

    public override string Describe() => $"Tensor<{DType}>[{string.Join(",", Shape.Select(s => s < 0 ? "?" : s.ToString(System.Globalization.CultureInfo.InvariantCulture)))}]";
}

/// <summary>Text column (ids, file paths).</summary>
internal sealed record TextColumnType : ColumnType
{
    public static readonly TextColumnType Instance = new();
    public override string Describe() => "Text";
}

/// <summary>Scalar numeric column (a double per row), e.g. a fold index or a per-image weight.</summary>
internal sealed record NumberColumnType : ColumnType
{
    public static readonly NumberColumnType Instance = new();
    public override string Describe() => "Number";
}

/// <summary>
/// The ordered, named, typed columns of an <see cref="IDataView"/>. Column names are unique; a later column with
/// the same name as an earlier one hides it (as in ML.NET) only through <see cref="Builder"/> replacement.
/// </summary>
internal sealed class DataViewSchema : IReadOnlyList<DataViewSchema.Column>
{
    /// <summary>One column: name, position, type and free-form annotations (e.g. "role" = "image").</summary>
    public sealed record Column(string Name, int Index, ColumnType Type, IReadOnlyDictionary<string, string> Annotations)
    {
        public override string ToString() => $"{Name}: {Type}";
    }

    private readonly Column[] _columns;
    private readonly Dictionary<string, Column> _byName;

    private DataViewSchema(IEnumerable<Column> columns)
    {
        _columns = columns.ToArray();
        _byName = new Dictionary<string, Column>(StringComparer.Ordinal);
        foreach (var c in _columns)
            if (!_byName.TryAdd(c.Name, c)) throw new ArgumentException($"duplicate column name '{c.Name}'");
    }

    public int Count => _columns.Length;
    public Column this[int index] => _columns[index];

    /// <summary>The column with this name; throws <see cref="SchemaException"/> naming it when absent.</summary>
    public Column this[string name] => GetColumnOrNull(name) ?? throw SchemaException.Missing(name, this);

    public Column? GetColumnOrNull(string name) => _byName.GetValueOrDefault(name);

    public bool Contains(string name) => _byName.ContainsKey(name);

    public IEnumerator<Column> GetEnumerator() => ((IEnumerable<Column>)_columns).GetEnumerator();
    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => string.Join(", ", _columns.Select(c => c.ToString()));

    /// <summary>
    /// The column <paramref name="name"/>, checked to be a tensor column accepting <paramref name="expected"/>'s dtype
    /// and rank; throws <see cref="SchemaException"/> naming the column and both types otherwise.
    /// </summary>
    public Column RequireTensor(string name, TensorColumnType expected, string? consumer = null)
    {
        var c = GetColumnOrNull(name) ?? throw SchemaException.Missing(name, this, consumer);
        if (c.Type is not TensorColumnType t || t.DType != expected.DType || t.Shape.Length != expected.Shape.Length ||
            t.Shape.Zip(expected.Shape).Any(d => d.First >= 0 && d.Second >= 0 && d.First != d.Second))
            throw SchemaException.WrongType(name, expected, c.Type, consumer);
        return c;
    }

    /// <summary>The column <paramref name="name"/>, checked to have exactly the type <paramref name="expected"/>.</summary>
    public Column Require(string name, ColumnType expected, string? consumer = null)
    {
        if (expected is TensorColumnType tt) return RequireTensor(name, tt, consumer);
        var c = GetColumnOrNull(name) ?? throw SchemaException.Missing(name, this, consumer);
        if (c.Type != expected) throw SchemaException.WrongType(name, expected, c.Type, consumer);
        return c;
    }

    /// <summary>Builds schemas; <see cref="AddColumn"/> replaces an existing column of the same name in place.</summary>
    public sealed class Builder
    {
        private readonly List<(string Name, ColumnType Type, IReadOnlyDictionary<string, string> Ann)> _cols = [];

        public Builder() { }

        public Builder(DataViewSchema from)
        {
            foreach (var c in from) _cols.Add((c.Name, c.Type, c.Annotations));
        }

        public Builder AddColumn(string name, ColumnType type, IReadOnlyDictionary<string, string>? annotations = null)
        {
            ArgumentException.ThrowIfNullOrEmpty(name);
            ArgumentNullException.ThrowIfNull(type);
            var entry = (name, type, annotations ?? new Dictionary<string, string>());
            int k = _cols.FindIndex(c => c.Name == name);
            if (k >= 0) _cols[k] = entry; else _cols.Add(entry);
            return this;
        }

        public Builder RemoveColumn(string name)
        {
            _cols.RemoveAll(c => c.Name == name);
            return this;
        }

        public DataViewSchema ToSchema() => new(_cols.Select((c, i) => new Column(c.Name, i, c.Type, c.Ann)));
    }

    public static DataViewSchema Create(params (string name, ColumnType type)[] columns)
    {
        var b = new Builder();
        foreach (var (n, t) in columns) b.AddColumn(n, t);
        return b.ToSchema();
    }
}

/// <summary>A column is missing or has the wrong type. Raised by schema checks before any work is done.</summary>
public sealed class SchemaException : ArgumentException
{
    public SchemaException(string message, string columnName) : base(message) => ColumnName = columnName;

    /// <summary>A schema error about <paramref name="columnName"/> that explains <paramref name="innerException"/>.</summary>
    public SchemaException(string message, string columnName, Exception? innerException) : base(message, innerException) => ColumnName = columnName;

    /// <summary>The offending column.</summary>
    public string ColumnName { get; }

    internal static SchemaException Missing(string name, DataViewSchema schema, string? consumer = null) =>
        new($"{(consumer is null ? "" : consumer + ": ")}column '{name}' was not found; the data has columns: {(schema.Count == 0 ? "(none)" : string.Join(", ", schema.Select(c => c.Name)))}", name);

    internal static SchemaException WrongType(string name, ColumnType expected, ColumnType actual, string? consumer = null) =>
        new($"{(consumer is null ? "" : consumer + ": ")}column '{name}' has type {actual} but {expected} is required", name);
}
