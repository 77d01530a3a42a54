using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Data.Transforms;

/// <summary>Options of the mask binarization stage (<c>ml.MedSeg().Transforms.BinarizeMask</c>).</summary>
public sealed class BinarizeMaskOptions
{
    /// <summary>A value above the threshold becomes 1, else 0. Default 0.5 (the papers' mIoU/mDice threshold; half of full scale).</summary>
    public double Threshold { get; set; } = 0.5;

    /// <summary>The mask column read (float32 [1,H,W]). Default "Mask".</summary>
    public string Column { get; set; } = "Mask";

    /// <summary>
    /// The column the binary mask is written to (float32 [1,H,W] in {0,1}); null (the default) replaces
    /// <see cref="Column"/>. Another name keeps the input column as it was.
    /// </summary>
    public string? OutputColumn { get; set; }

    internal BinarizeMaskOptions Copy() => (BinarizeMaskOptions)MemberwiseClone();
}

/// <summary>Thresholds a float mask (e.g. one resized bilinearly, or a soft label) to {0,1}. Fit only checks the schema.</summary>
public sealed class BinarizeMaskEstimator(BinarizeMaskOptions options) : TrivialEstimator<BinarizeMaskTransformer>(new BinarizeMaskTransformer(options));

/// <summary>Maps a float32 [1,H,W] mask to {0,1} (value &gt; threshold → 1), lazily.</summary>
public sealed class BinarizeMaskTransformer : Core.MLNet.StageTransformer
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.BINARIZEMASK";
    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;
    private const string Name = "BinarizeMask";

    public BinarizeMaskTransformer(BinarizeMaskOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (!double.IsFinite(options.Threshold)) throw new ArgumentOutOfRangeException(nameof(options.Threshold), options.Threshold, "BinarizeMask: the threshold must be finite");
        ArgumentException.ThrowIfNullOrEmpty(options.Column);
        if (options.OutputColumn is "") throw new ArgumentException("BinarizeMask: OutputColumn must be null or a column name", nameof(options));
        Options = options.Copy();
    }

    /// <summary>The options (a copy).</summary>
    public BinarizeMaskOptions Options { get; }

    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Plan(inputSchema).Schema;

    private (DataViewSchema Schema, MappedColumn Column) Plan(DataViewSchema input)
    {
        string col = Options.Column;
        string output = Options.OutputColumn ?? col;
        var t = (TensorColumnType)input.RequireTensor(col, TensorColumnType.BinaryMask(), Name).Type;
        var type = TensorColumnType.BinaryMask(t.Shape[1], t.Shape[2]);
        double th = Options.Threshold;
        var mc = new MappedColumn(output, type, [col], cur => Binarize(cur.GetTensor(col), th));
        return (new DataViewSchema.Builder(input).AddColumn(output, type).ToSchema(), mc);
    }

    /// <summary>1 where <paramref name="mask"/> &gt; <paramref name="threshold"/>, else 0 (float32).</summary>
    public static Tensor Binarize(Tensor mask, double threshold)
    {
        using var scope = torch.NewDisposeScope();
        return mask.gt(S(threshold)).to(ScalarType.Float32).MoveToOuterDisposeScope();
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
    private static BinarizeMaskTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static BinarizeMaskTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new BinarizeMaskTransformer(context.ReadOptions<BinarizeMaskOptions>(CurrentVersion));
    }
}
