using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Pipeline;

/// <summary>
/// A lazy view adding (or replacing) one column computed per row from the input cursor. Computed tensors belong
/// to the cursor and are freed on MoveNext, as the IDataView contract says.
/// </summary>
internal sealed class MapView : IDataView
{
    private readonly IDataView _input;
    private readonly string _output;
    private readonly string[] _inputs;
    private readonly Func<DataViewRowCursor, object> _compute;

    public MapView(IDataView input, string output, ColumnType type, string[] inputs, Func<DataViewRowCursor, object> compute)
    {
        _input = input;
        _output = output;
        _inputs = inputs;
        _compute = compute;
        Schema = new DataViewSchema.Builder(input.Schema).AddColumn(output, type).ToSchema();
    }

    public DataViewSchema Schema { get; }
    public long? GetRowCount() => _input.GetRowCount();
    public bool CanShuffle => _input.CanShuffle;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToArray();
        bool computes = needed.Any(c => c.Name == _output);
        var names = needed.Where(c => c.Name != _output).Select(c => c.Name).ToHashSet();
        if (computes) names.UnionWith(_inputs);
        var inner = _input.GetRowCursor(names.Select(n => _input.Schema[n]).ToArray(), rand);
        return new Cursor(this, inner, needed);
    }

    private sealed class Cursor(MapView view, DataViewRowCursor inner, DataViewSchema.Column[] needed) : DataViewRowCursor
    {
        private readonly HashSet<int> _active = needed.Select(c => c.Index).ToHashSet();
        private object? _value;

        public override DataViewSchema Schema => view.Schema;

        public override bool MoveNext()
        {
            Release();
            bool ok = inner.MoveNext();
            Position = inner.Position;
            return ok;
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override object GetValue(DataViewSchema.Column column)
        {
            if (!_active.Contains(column.Index)) throw new InvalidOperationException($"column '{column.Name}' is not active");
            if (column.Name != view._output) return inner.GetValue(inner.Schema[column.Name]);
            if (_value is null)
            {
                using var scope = torch.NewDisposeScope();
                var v = view._compute(inner);
                if (v is Tensor t) t.DetachFromDisposeScope();
                _value = v;
            }
            return _value;
        }

        private void Release()
        {
            if (_value is Tensor t) t.Dispose();
            _value = null;
        }

        protected override void Dispose(bool disposing)
        {
            Release();
            inner.Dispose();
        }
    }
}

/// <summary>Records the order of Fit calls; <see cref="OnFit"/> runs inside each Fit (e.g. to cancel).</summary>
internal sealed class FitLog
{
    public List<string> Calls { get; } = [];
    public Action<string>? OnFit { get; set; }

    public void Record(string name)
    {
        Calls.Add(name);
        OnFit?.Invoke(name);
    }
}

/// <summary>Deliberate defects, to check that the workout and the model file catch them.</summary>
internal enum Flaw
{
    None,
    /// <summary>GetOutputSchema says the output is Float64; it is Float32.</summary>
    LyingSchema,
    /// <summary>GetOutputSchema and Fit never check the input column.</summary>
    SkipsSchemaCheck,
    /// <summary>Fit makes a tensor that nobody owns or disposes (left to the garbage collector).</summary>
    Leaks,
    /// <summary>Save writes a zero mean instead of the learned one.</summary>
    ForgetsMeanOnSave,
    /// <summary>Save writes the mean with shape [1] (the loader expects a scalar).</summary>
    WrongShapeOnSave,
    /// <summary>Save throws after writing part of the entry.</summary>
    ThrowsWhileSaving,
    /// <summary>Save writes header version 3, readable from version 2 on (the loader reads 1).</summary>
    NewerFormat,
}

/// <summary>Options saved by <see cref="MeanCenterTransformer"/>.</summary>
public sealed class MeanCenterOptions
{
    public string Input { get; set; } = "Image";
    public string Output { get; set; } = "Centered";
}

/// <summary>Learns the mean of a float32 tensor column and subtracts it (output column, float32, same shape).</summary>
internal sealed class MeanCenterEstimator(string input = "Image", string output = "Centered", FitLog? log = null, Flaw flaw = Flaw.None)
    : IEstimator<MeanCenterTransformer>
{
    internal static readonly TensorColumnType Float3D = new(ScalarType.Float32, [-1, -1, -1]);

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        if (flaw == Flaw.SkipsSchemaCheck)
            return new DataViewSchema.Builder(inputSchema).AddColumn(output, Float3D).ToSchema();
        var t = (TensorColumnType)inputSchema.RequireTensor(input, Float3D, nameof(MeanCenterEstimator)).Type;
        var outType = flaw == Flaw.LyingSchema ? t with { DType = ScalarType.Float64 } : t;
        return new DataViewSchema.Builder(inputSchema).AddColumn(output, outType).ToSchema();
    }

    public MeanCenterTransformer Fit(IDataView data, CancellationToken cancellationToken = default)
    {
        if (flaw != Flaw.SkipsSchemaCheck) GetOutputSchema(data.Schema);
        log?.Record("MeanCenter:" + input);
        double sum = 0;
        long count = 0;
        using (var cur = data.GetRowCursor(input))
        {
            while (cur.MoveNext())
            {
                using var scope = torch.NewDisposeScope();
                var x = cur.GetTensor(input);
                sum += x.to(ScalarType.Float64).sum().ToDouble();
                count += x.numel();
            }
        }
        if (flaw == Flaw.Leaks) LeakOne();
        var mean = torch.tensor((float)(sum / count)).DetachFromDisposeScope();
        return new MeanCenterTransformer(new MeanCenterOptions { Input = input, Output = output }, mean, flaw);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static void LeakOne() => _ = torch.ones([2]).DetachFromDisposeScope();
}

internal sealed class MeanCenterTransformer : ITransformer, IDisposable
{
    public const string LoaderSignature = "TEST.MEANCENTER";
    public const int CurrentVersion = 1;

    private readonly MeanCenterOptions _options;
    private readonly Flaw _flaw;

    internal MeanCenterTransformer(MeanCenterOptions options, Tensor mean, Flaw flaw = Flaw.None)
    {
        _options = options;
        Mean = mean;
        _flaw = flaw;
    }

    public Tensor Mean { get; }

    public float MeanValue => Mean.ToSingle();

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        var t = inputSchema.RequireTensor(_options.Input, MeanCenterEstimator.Float3D, nameof(MeanCenterTransformer)).Type;
        return new DataViewSchema.Builder(inputSchema).AddColumn(_options.Output, t).ToSchema();
    }

    public IDataView Transform(IDataView input)
    {
        var schema = GetOutputSchema(input.Schema);
        return new MapView(input, _options.Output, schema[_options.Output].Type, [_options.Input],
            cur => cur.GetTensor(_options.Input).sub(Mean));
    }

    public void Save(ModelSaveContext context)
    {
        if (_flaw == Flaw.NewerFormat) context.WriteHeader(LoaderSignature, 3, 2);
        else context.WriteHeader(LoaderSignature, CurrentVersion, 1);
        context.WriteOptions(_options);
        using var scope = torch.NewDisposeScope();
        var m = _flaw switch
        {
            Flaw.ForgetsMeanOnSave => torch.zeros_like(Mean),
            Flaw.WrongShapeOnSave => Mean.reshape(1),
            _ => Mean,
        };
        context.WriteTensors("mean", new Dictionary<string, Tensor> { ["mean"] = m });
        if (_flaw == Flaw.ThrowsWhileSaving) throw new InvalidOperationException("simulated failure while saving");
    }

    public static MeanCenterTransformer Load(ModelLoadContext context)
    {
        var options = context.ReadOptions<MeanCenterOptions>();
        var tensors = context.ReadTensors("mean", expectedShapes: new Dictionary<string, long[]> { ["mean"] = [] });
        return new MeanCenterTransformer(options, tensors["mean"].DetachFromDisposeScope());
    }

    public void Dispose() => Mean.Dispose();
}

/// <summary>Options saved by <see cref="AddConstantTransformer"/>.</summary>
public sealed class AddConstantOptions
{
    public string Column { get; set; } = "Image";
    public float Value { get; set; }
}

/// <summary>A training-only "augmenter": replaces a float32 tensor column by itself plus a constant.</summary>
internal sealed class AddConstantEstimator(string column, float value, FitLog? log = null) : IEstimator<AddConstantTransformer>
{
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        inputSchema.RequireTensor(column, MeanCenterEstimator.Float3D, nameof(AddConstantEstimator));
        return inputSchema;
    }

    public AddConstantTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        GetOutputSchema(input.Schema);
        log?.Record("AddConstant:" + column);
        return new AddConstantTransformer(new AddConstantOptions { Column = column, Value = value });
    }
}

internal sealed class AddConstantTransformer(AddConstantOptions options) : IScopedTransformer
{
    public const string LoaderSignature = "TEST.ADDCONSTANT";
    public const int CurrentVersion = 1;

    public TransformerScope DefaultScope => TransformerScope.Training;

    public float Value => options.Value;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        inputSchema.RequireTensor(options.Column, MeanCenterEstimator.Float3D, nameof(AddConstantTransformer));
        return inputSchema;
    }

    public IDataView Transform(IDataView input)
    {
        var schema = GetOutputSchema(input.Schema);
        return new MapView(input, options.Column, schema[options.Column].Type, [options.Column],
            cur => cur.GetTensor(options.Column).add(options.Value));
    }

    public void Save(ModelSaveContext context)
    {
        context.WriteHeader(LoaderSignature, CurrentVersion, 1);
        context.WriteOptions(options);
        context.WriteText("note", "adds a constant");
    }

    public static AddConstantTransformer Load(ModelLoadContext context)
    {
        if (context.ReadText("note") != "adds a constant") throw new InvalidDataException("unexpected note");
        return new AddConstantTransformer(context.ReadOptions<AddConstantOptions>());
    }
}

/// <summary>Registers the test stages' loaders (idempotent) and makes small data sets.</summary>
internal static class TestStages
{
    public static void EnsureRegistered()
    {
        ModelLoaderRegistry.Register(MeanCenterTransformer.LoaderSignature, MeanCenterTransformer.CurrentVersion, MeanCenterTransformer.Load);
        ModelLoaderRegistry.Register(AddConstantTransformer.LoaderSignature, AddConstantTransformer.CurrentVersion, AddConstantTransformer.Load);
    }

    /// <summary>Rows "r0".."r{n-1}" with Image [3,4,4] float32 filled with 1, 2, ..., n (mean (n+1)/2).</summary>
    public static InMemoryDataView ConstantImages(int n = 4)
    {
        using var scope = torch.NewDisposeScope();
        var images = Enumerable.Range(1, n).Select(v => (object)torch.full([3, 4, 4], v, ScalarType.Float32)).ToList();
        var ids = Enumerable.Range(0, n).Select(i => (object)$"r{i}").ToList();
        return InMemoryDataView.Create(("Id", TextColumnType.Instance, ids), ("Image", TensorColumnType.Image(3), images));
    }

    /// <summary>Rows with random Image [3,8,8] float32 in [0,1) and a Weight number column.</summary>
    public static InMemoryDataView RandomImages(int n = 5, ulong seed = 7)
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(seed);
        var images = Enumerable.Range(0, n).Select(_ => (object)torch.rand([3, 8, 8], generator: g)).ToList();
        var ids = Enumerable.Range(0, n).Select(i => (object)$"case{i}").ToList();
        var weights = Enumerable.Range(0, n).Select(i => (object)(0.5 + i)).ToList();
        return InMemoryDataView.Create(("Id", TextColumnType.Instance, ids), ("Image", TensorColumnType.Image(3), images),
            ("Weight", NumberColumnType.Instance, weights));
    }

    /// <summary>The float values of a tensor column, per row, flattened.</summary>
    public static List<float[]> Column(IDataView data, string column)
    {
        var list = new List<float[]>();
        using var cur = data.GetRowCursor(column);
        while (cur.MoveNext())
        {
            using var scope = torch.NewDisposeScope();
            list.Add(cur.GetTensor(column).reshape(-1).ToArray<float>());
        }
        return list;
    }
}
