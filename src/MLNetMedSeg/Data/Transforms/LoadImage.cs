using MLNetMedSeg.Core;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;

namespace MLNetMedSeg.Data.Transforms;

/// <summary>Options of <see cref="LoadImageTransformer"/> (saved as JSON in the model).</summary>
public sealed class LoadImageOptions
{
    /// <summary>The image column written (default "Image"): float32 [C,H,W] in [0,1].</summary>
    public string OutputColumnName { get; set; } = "Image";

    /// <summary>The text column holding each image's file path (default "ImagePath").</summary>
    public string InputColumnName { get; set; } = "ImagePath";

    /// <summary>Folder that relative paths are resolved against (null: the current directory).</summary>
    public string? ImageFolder { get; set; }

    /// <summary>Height of the images written (bilinear resize, as PyTorch's default; stretched, never cropped).</summary>
    public int Height { get; set; }

    /// <summary>Width of the images written.</summary>
    public int Width { get; set; }

    /// <summary>Channels written: 3 (default; gray is repeated) or 1 (RGB to luma, ITU-R BT.601).</summary>
    public int Channels { get; set; } = 3;

    internal LoadImageOptions Copy() => (LoadImageOptions)MemberwiseClone();

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(OutputColumnName, nameof(OutputColumnName));
        ArgumentException.ThrowIfNullOrEmpty(InputColumnName, nameof(InputColumnName));
        if (Height < 1) throw new ArgumentOutOfRangeException(nameof(Height), Height, "Height must be positive");
        if (Width < 1) throw new ArgumentOutOfRangeException(nameof(Width), Width, "Width must be positive");
        if (Channels is not 1 and not 3) throw new ArgumentOutOfRangeException(nameof(Channels), Channels, "Channels must be 1 or 3");
    }
}

/// <summary>
/// Loads images from the file paths in a text column as float32 [C,H,W] in [0,1] — for what ImageAnalytics'
/// <c>LoadImages</c> cannot read: TIFF (8 and 16 bit, through LibTiff.NET) and 16-bit PNG, which medical images often
/// are; JPEG, PNG, BMP and WebP work too. Resized bilinearly to <see cref="LoadImageOptions.Height"/> ×
/// <see cref="LoadImageOptions.Width"/> (stretched like <c>ResizingKind.Fill</c>, so masks from <c>LoadMasks</c> stay
/// aligned). A missing, unreadable or corrupt file is an error naming it. Lazy: a file is read when a cursor asks.
/// </summary>
public sealed class LoadImageTransformer : FileLoadingTransformer
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.LOADIMAGE";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    private const string Name = "LoadImages";

    /// <param name="options">The options (copied, validated).</param>
    public LoadImageTransformer(LoadImageOptions options) : base(Name, "image")
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Copy();
        Options.Validate();
    }

    /// <summary>The options (a copy is kept).</summary>
    public LoadImageOptions Options { get; }

    protected override string InputColumnName => Options.InputColumnName;

    protected override string OutputColumnName => Options.OutputColumnName;

    protected override string? Folder => Options.ImageFolder;

    private protected override TensorColumnType OutputType => TensorColumnType.Image(Options.Channels, Options.Height, Options.Width);

    protected override Tensor ReadFile(string fullPath)
    {
        var img = ImageIO.Read(fullPath);
        using var scope = torch.NewDisposeScope();
        var t = ImageIO.ToTensor(img, Options.Channels);
        if (img.Height != Options.Height || img.Width != Options.Width) t = ResizeTransformer.ResizeImage(t, Options.Height, Options.Width);
        return t.MoveToOuterDisposeScope();
    }

    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.WriteOptionsEntry(LoaderSignature, CurrentVersion, Options);
    }

    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static LoadImageTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    /// <summary>Rebuilds a saved transformer.</summary>
    internal static LoadImageTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new LoadImageTransformer(context.ReadOptions<LoadImageOptions>(CurrentVersion));
    }
}

/// <summary>The estimator of <see cref="LoadImageTransformer"/> (nothing to learn).</summary>
public sealed class LoadImageEstimator(LoadImageOptions options) : TrivialEstimator<LoadImageTransformer>(new LoadImageTransformer(options));
