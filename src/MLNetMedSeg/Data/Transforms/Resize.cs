using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;
using F = TorchSharp.torch.nn.functional;

namespace MLNetMedSeg.Data.Transforms;

/// <summary>Options of the resize stage (<see cref="ResizeEstimator"/>).</summary>
public sealed class ResizeOptions
{
    /// <summary>Output height in pixels. Default 256 (DASP and cDAL train polyp models at 256×256).</summary>
    public int Height { get; set; } = 256;

    /// <summary>Output width in pixels. Default 256.</summary>
    public int Width { get; set; } = 256;

    /// <summary>Image column (float32 [C,H,W]), resized bilinearly (align_corners = false, as PyTorch). Null: no image column. Default "Image".</summary>
    public string? ImageColumn { get; set; } = "Image";

    /// <summary>Mask column (float32 [1,H,W] or int64 [H,W]), resized by nearest neighbour so values stay labels. Null: no mask column. Default "Mask".</summary>
    public string? MaskColumn { get; set; } = "Mask";

    internal ResizeOptions Copy() => (ResizeOptions)MemberwiseClone();
}

/// <summary>Resizes images (bilinear) and masks (nearest) to a fixed size. Nothing to learn: Fit only checks the schema.</summary>
public sealed class ResizeEstimator(ResizeOptions options) : TrivialEstimator<ResizeTransformer>(new ResizeTransformer(options));

/// <summary>
/// Resizes the image column bilinearly (torch.nn.functional.interpolate, align_corners = false) and the mask column by
/// nearest neighbour, lazily, row by row.
/// </summary>
public sealed class ResizeTransformer : Core.MLNet.StageTransformer
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.RESIZE";
    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;
    private const string Name = "Resize";

    public ResizeTransformer(ResizeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Copy();
        Validate(Options);
    }

    /// <summary>The options (a copy: changing it does not change the transformer).</summary>
    public ResizeOptions Options { get; }

    internal static void Validate(ResizeOptions o)
    {
        if (o.Height < 1) throw new ArgumentOutOfRangeException(nameof(o.Height), o.Height, "Height must be positive");
        if (o.Width < 1) throw new ArgumentOutOfRangeException(nameof(o.Width), o.Width, "Width must be positive");
        if (o.ImageColumn is null && o.MaskColumn is null) throw new ArgumentException("Resize: give an image column, a mask column or both");
    }

    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Plan(inputSchema).Schema;

    private (DataViewSchema Schema, List<MappedColumn> Columns) Plan(DataViewSchema input)
    {
        var b = new DataViewSchema.Builder(input);
        var cols = new List<MappedColumn>();
        long h = Options.Height, w = Options.Width;
        if (Options.ImageColumn is string ic)
        {
            var t = (TensorColumnType)input.RequireTensor(ic, TensorColumnType.Image(), Name).Type;
            var type = new TensorColumnType(ScalarType.Float32, TransformHelpers.WithSpatial(t.Shape, h, w));
            b.AddColumn(ic, type);
            cols.Add(new MappedColumn(ic, type, [ic], cur => ResizeImage(cur.GetTensor(ic), h, w)));
        }
        if (Options.MaskColumn is string mc)
        {
            if (mc == Options.ImageColumn) throw new ArgumentException($"Resize: the image and mask columns are both '{mc}'");
            bool isClass = TransformHelpers.RequireMask(input, mc, Name);
            var type = isClass ? TensorColumnType.ClassMask(h, w) : TensorColumnType.BinaryMask(h, w);
            b.AddColumn(mc, type);
            cols.Add(new MappedColumn(mc, type, [mc], cur => ResizeMask(cur.GetTensor(mc), h, w)));
        }
        return (b.ToSchema(), cols);
    }

    /// <summary>Bilinear resize of a [C,H,W] float image (align_corners = false, no antialiasing, as PyTorch's default).</summary>
    public static Tensor ResizeImage(Tensor image, long height, long width)
    {
        using var scope = torch.NewDisposeScope();
        var r = F.interpolate(image.unsqueeze(0), size: [height, width], mode: InterpolationMode.Bilinear, align_corners: false).squeeze(0);
        return r.MoveToOuterDisposeScope();
    }

    /// <summary>Nearest-neighbour resize of a float32 [1,H,W] or int64 [H,W] mask (PyTorch's "nearest": floor of the scaled coordinate).</summary>
    public static Tensor ResizeMask(Tensor mask, long height, long width)
    {
        using var scope = torch.NewDisposeScope();
        Tensor r;
        if (mask.dim() == 2)
            r = F.interpolate(mask.to(ScalarType.Float32).unsqueeze(0).unsqueeze(0), size: [height, width], mode: InterpolationMode.Nearest)
                .squeeze(0).squeeze(0).to(mask.dtype);
        else
            r = F.interpolate(mask.unsqueeze(0), size: [height, width], mode: InterpolationMode.Nearest).squeeze(0);
        return r.MoveToOuterDisposeScope();
    }

    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new MappedDataView(input, Plan(input.Schema).Columns);
    }

    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.WriteOptionsEntry(LoaderSignature, CurrentVersion, Options);
    }

    /// <summary>Rebuilds a saved transformer (registered under <see cref="LoaderSignature"/>).</summary>
    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static ResizeTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static ResizeTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new ResizeTransformer(context.ReadOptions<ResizeOptions>(CurrentVersion));
    }
}
