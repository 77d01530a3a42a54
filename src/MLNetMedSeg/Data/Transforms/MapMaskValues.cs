using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Data.Transforms;

/// <summary>Options of the mask value → class stage (<c>ml.MedSeg().Transforms.MapMaskValues</c>).</summary>
public sealed class MapMaskValuesOptions
{
    /// <summary>
    /// Mask value → class index, e.g. {0:0, 128:1, 255:2}. For a float mask the value is round(x · <see cref="Scale"/>)
    /// (the 8-bit value for a mask read from an 8-bit file); for an int64 mask it is the stored value. A value not in
    /// the map is an error naming the row and the value.
    /// </summary>
    public Dictionary<int, long> Map { get; set; } = [];

    /// <summary>Full-scale value of float masks in [0,1]. Default 255 (8-bit files).</summary>
    public double Scale { get; set; } = 255;

    /// <summary>The mask column read (float32 [1,H,W] or int64 [H,W]); the output is an int64 [H,W] class mask. Default "Mask".</summary>
    public string Column { get; set; } = "Mask";

    /// <summary>
    /// The column the class mask is written to; null (the default) replaces <see cref="Column"/>. Another name keeps the
    /// input column as it was.
    /// </summary>
    public string? OutputColumn { get; set; }

    internal MapMaskValuesOptions Copy()
    {
        var c = (MapMaskValuesOptions)MemberwiseClone();
        c.Map = new Dictionary<int, long>(Map);
        return c;
    }
}

/// <summary>Turns a mask of raw values into a class-index mask by a value → class map. Fit only checks the schema.</summary>
public sealed class MapMaskValuesEstimator(MapMaskValuesOptions options) : TrivialEstimator<MapMaskValuesTransformer>(new MapMaskValuesTransformer(options));

/// <summary>Maps mask values to class indices (int64 [H,W]), lazily.</summary>
public sealed class MapMaskValuesTransformer : Core.MLNet.StageTransformer
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.MAPMASKVALUES";
    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;
    private const string Name = "MapMaskValues";

    public MapMaskValuesTransformer(MapMaskValuesOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(options.Map);
        if (options.Map.Count == 0) throw new ArgumentException("MapMaskValues: the map is empty", nameof(options));
        foreach (var (k, v) in options.Map)
            if (v < 0) throw new ArgumentOutOfRangeException(nameof(options), v, $"MapMaskValues: class {v} (for value {k}) is negative");
        if (!(options.Scale > 0) || !double.IsFinite(options.Scale)) throw new ArgumentOutOfRangeException(nameof(options), options.Scale, "MapMaskValues: Scale must be positive");
        ArgumentException.ThrowIfNullOrEmpty(options.Column);
        if (options.OutputColumn is "") throw new ArgumentException("MapMaskValues: OutputColumn must be null or a column name", nameof(options));
        Options = options.Copy();
    }

    /// <summary>The options (a copy).</summary>
    public MapMaskValuesOptions Options { get; }

    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Plan(inputSchema).Schema;

    private (DataViewSchema Schema, MappedColumn Column) Plan(DataViewSchema input)
    {
        string col = Options.Column;
        string output = Options.OutputColumn ?? col;
        TransformHelpers.RequireMask(input, col, Name);
        var t = (TensorColumnType)input[col].Type;
        var type = TensorColumnType.ClassMask(t.Shape[^2], t.Shape[^1]);
        var map = Options.Map.OrderBy(kv => kv.Key).ToArray();
        double scale = Options.Scale;
        var mc = new MappedColumn(output, type, [col], cur =>
        {
            try { return Apply(cur.GetTensor(col), map, scale); }
            catch (InvalidDataException e) { throw new InvalidDataException($"{Name}: column '{col}', {MappedDataView.DescribeRow(cur)}: {e.Message}", e); }
        });
        return (new DataViewSchema.Builder(input).AddColumn(output, type).ToSchema(), mc);
    }

    /// <summary>Maps a float32 [1,H,W] (values round(x·scale)) or int64 [H,W] mask to an int64 [H,W] class mask.</summary>
    /// <exception cref="InvalidDataException">A value is not in the map (the message gives the value).</exception>
    public static Tensor Apply(Tensor mask, IReadOnlyList<KeyValuePair<int, long>> map, double scale = 255)
    {
        using var scope = torch.NewDisposeScope();
        var values = mask.dim() == 3 ? (mask.squeeze(0).to(ScalarType.Float64) * S(scale)).round().to(ScalarType.Int64) : mask.to(ScalarType.Int64);
        var result = torch.zeros_like(values);
        var covered = torch.zeros_like(values, ScalarType.Bool);
        foreach (var (v, cls) in map)
        {
            var hit = values.eq(S(v));
            result = result.masked_fill(hit, S(cls));
            covered = covered.logical_or(hit);
        }
        var unknown = covered.logical_not();
        if (unknown.any().BooleanValue())
        {
            long bad = values.masked_select(unknown).ToArray<long>()[0];
            long count = unknown.sum().Int64Value();
            throw new InvalidDataException($"mask value {bad} ({count} pixel(s) with unmapped values) is not in the map (mapped values: {string.Join(", ", map.Select(kv => kv.Key))})");
        }
        return result.MoveToOuterDisposeScope();
    }

    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new MappedDataView(input, [Plan(input.Schema).Column]);
    }

    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.WriteOptionsEntry(LoaderSignature, CurrentVersion, Options);
    }

    /// <summary>Rebuilds a saved transformer (registered under <see cref="LoaderSignature"/>).</summary>
    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static MapMaskValuesTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static MapMaskValuesTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new MapMaskValuesTransformer(context.ReadOptions<MapMaskValuesOptions>(CurrentVersion));
    }
}
