using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data.Transforms;

/// <summary>Options of the channel conversion stage (<see cref="ConvertChannelsEstimator"/>).</summary>
public sealed class ConvertChannelsOptions
{
    /// <summary>Wanted channels: 1 (gray: ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B) or 3 (RGB: gray repeated). Default 3.</summary>
    public int Channels { get; set; } = 3;

    /// <summary>The image column (float32 [C,H,W] with C = 1 or 3). Default "Image".</summary>
    public string Column { get; set; } = "Image";

    internal ConvertChannelsOptions Copy() => (ConvertChannelsOptions)MemberwiseClone();
}

/// <summary>Converts images between gray and RGB. Nothing to learn: Fit only checks the schema.</summary>
public sealed class ConvertChannelsEstimator(ConvertChannelsOptions options) : TrivialEstimator<ConvertChannelsTransformer>(new ConvertChannelsTransformer(options));

/// <summary>Converts the image column to 1 or 3 channels, lazily; images that already have them pass unchanged.</summary>
public sealed class ConvertChannelsTransformer : Core.MLNet.StageTransformer
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.CONVERTCHANNELS";
    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;
    private const string Name = "ConvertChannels";

    public ConvertChannelsTransformer(ConvertChannelsOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Channels is not (1 or 3)) throw new ArgumentOutOfRangeException(nameof(options.Channels), options.Channels, "ConvertChannels: channels must be 1 or 3");
        ArgumentException.ThrowIfNullOrEmpty(options.Column);
        Options = options.Copy();
    }

    /// <summary>The options (a copy).</summary>
    public ConvertChannelsOptions Options { get; }

    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Plan(inputSchema).Schema;

    private (DataViewSchema Schema, MappedColumn Column) Plan(DataViewSchema input)
    {
        string col = Options.Column;
        var t = (TensorColumnType)input.RequireTensor(col, TensorColumnType.Image(), Name).Type;
        if (t.Shape[0] is not (-1 or 1 or 3))
            throw new SchemaException($"{Name}: column '{col}' has {t.Shape[0]} channels; only 1 or 3 can be converted", col);
        var type = new TensorColumnType(ScalarType.Float32, [Options.Channels, t.Shape[1], t.Shape[2]]);
        int want = Options.Channels;
        var mc = new MappedColumn(col, type, [col], cur => Convert(cur.GetTensor(col), want));
        return (new DataViewSchema.Builder(input).AddColumn(col, type).ToSchema(), mc);
    }

    /// <summary>Converts a float [C,H,W] image (C = 1 or 3) to <paramref name="channels"/> channels.</summary>
    public static Tensor Convert(Tensor image, int channels)
    {
        long c = image.size(0);
        if (c == channels) return image.alias();
        using var scope = torch.NewDisposeScope();
        Tensor r;
        if (c == 1 && channels == 3) r = image.expand(3, image.size(1), image.size(2)).contiguous();
        else if (c == 3 && channels == 1)
        {
            var w = TensorExtensions.FromArray<float>(new float[] { 0.299f, 0.587f, 0.114f }, [3, 1, 1]).to(image.device);
            r = (image * w).sum([0], keepdim: true);
        }
        else throw new ArgumentException($"ConvertChannels: cannot convert {c} channels to {channels}", nameof(image));
        return r.MoveToOuterDisposeScope();
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
    private static ConvertChannelsTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static ConvertChannelsTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new ConvertChannelsTransformer(context.ReadOptions<ConvertChannelsOptions>(CurrentVersion));
    }
}
