using MLNetMedSeg.Core;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;

namespace MLNetMedSeg.Data.Transforms;

/// <summary>Options of <see cref="LoadMaskTransformer"/> (saved as JSON in the model).</summary>
public sealed class LoadMaskOptions
{
    /// <summary>The mask column written (default "Mask"): float32 [1,H,W] in {0,1}, or int64 [H,W] class indices with <see cref="MaskValueToClass"/>.</summary>
    public string OutputColumnName { get; set; } = "Mask";

    /// <summary>The text column holding each mask's file path (default "MaskPath").</summary>
    public string InputColumnName { get; set; } = "MaskPath";

    /// <summary>Folder that relative paths are resolved against (null: the current directory), as LoadImages' imageFolder.</summary>
    public string? ImageFolder { get; set; }

    /// <summary>Height of the masks written (nearest-neighbour resize, so masks stay binary; match the images' ResizeImages).</summary>
    public int Height { get; set; }

    /// <summary>Width of the masks written.</summary>
    public int Width { get; set; }

    /// <summary>Binary masks: foreground when the value is above this fraction of full scale (default 0.5; Kvasir-SEG's README uses 127/255).</summary>
    public double Threshold { get; set; } = 0.5;

    /// <summary>When true, a mask pixel other than 0 or full scale is an error naming the file (default false: thresholded, counted and logged).</summary>
    public bool StrictBinaryMasks { get; set; }

    /// <summary>Multi-class masks: raw value → class index (e.g. {0:0, 128:1, 255:2}); null (default) for binary masks.</summary>
    public Dictionary<int, long>? MaskValueToClass { get; set; }

    internal LoadMaskOptions Copy()
    {
        var c = (LoadMaskOptions)MemberwiseClone();
        c.MaskValueToClass = MaskValueToClass is null ? null : new Dictionary<int, long>(MaskValueToClass);
        return c;
    }

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(OutputColumnName, nameof(OutputColumnName));
        ArgumentException.ThrowIfNullOrEmpty(InputColumnName, nameof(InputColumnName));
        if (Height < 1) throw new ArgumentOutOfRangeException(nameof(Height), Height, "Height must be positive (masks are resized to the images' size)");
        if (Width < 1) throw new ArgumentOutOfRangeException(nameof(Width), Width, "Width must be positive (masks are resized to the images' size)");
        if (double.IsNaN(Threshold) || Threshold < 0 || Threshold >= 1) throw new ArgumentOutOfRangeException(nameof(Threshold), Threshold, "Threshold must be in [0, 1)");
        if (MaskValueToClass is { Count: 0 }) throw new ArgumentException("MaskValueToClass is empty", nameof(MaskValueToClass));
        if (MaskValueToClass is { } map)
            foreach (var (k, v) in map)
            {
                if (k is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(MaskValueToClass), k, $"mask value {k} is outside 0..65535");
                if (v < 0) throw new ArgumentOutOfRangeException(nameof(MaskValueToClass), v, $"class {v} (for value {k}) is negative");
            }
    }
}

/// <summary>
/// Loads segmentation masks from the file paths in a text column — what ImageAnalytics' <c>LoadImages</c> cannot do
/// for masks (it makes an 8-bit mask 4 channels, and <c>ResizeImages</c> interpolates it into values that are neither
/// 0 nor 255). Decodes PNG, JPEG, BMP, WebP, TIFF and 16-bit PNG; resizes by nearest neighbour to
/// <see cref="LoadMaskOptions.Height"/> × <see cref="LoadMaskOptions.Width"/>; binarises at
/// <see cref="LoadMaskOptions.Threshold"/> (JPEG masks carry compression noise), counting pixels that were not binary
/// (<see cref="NonBinaryPixels"/>, and one log line per such file), or maps values to classes. A missing, unreadable
/// or corrupt file is an error naming it. Lazy: a file is read when a cursor asks for the mask.
/// </summary>
public sealed class LoadMaskTransformer : FileLoadingTransformer
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.LOADMASK";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    private const string Name = "LoadMask";
    private readonly long[]? _lookup;
    private readonly MedSegContext? _context;
    private long _nonBinary;

    /// <param name="options">The options (copied, validated).</param>
    /// <param name="context">Where log lines go (null: nowhere).</param>
    internal LoadMaskTransformer(LoadMaskOptions options, MedSegContext? context = null) : base(Name, "mask")
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Copy();
        Options.Validate();
        _context = context;
        if (Options.MaskValueToClass is { } map) _lookup = MaskDecoding.Lookup(map);
    }

    /// <summary>The options (a copy is kept).</summary>
    public LoadMaskOptions Options { get; }

    /// <summary>Mask pixels read so far that were neither 0 nor full scale (thresholded).</summary>
    public long NonBinaryPixels => Interlocked.Read(ref _nonBinary);

    protected override string InputColumnName => Options.InputColumnName;

    protected override string OutputColumnName => Options.OutputColumnName;

    protected override string? Folder => Options.ImageFolder;

    private protected override TensorColumnType OutputType => _lookup is null
        ? TensorColumnType.BinaryMask(Options.Height, Options.Width)
        : TensorColumnType.ClassMask(Options.Height, Options.Width);

    protected override Tensor ReadFile(string full)
    {
        var m = ImageIO.Read(full);
        using var scope = torch.NewDisposeScope();
        Tensor t;
        if (_lookup is null)
        {
            t = MaskDecoding.ToBinaryMask(m, Options.Threshold, Options.StrictBinaryMasks, full, out long nonBinary);
            if (nonBinary > 0)
            {
                Interlocked.Add(ref _nonBinary, nonBinary);
                _context?.WriteLog(LogLevel.Info, Name, MaskDecoding.NonBinaryMessage(full, nonBinary, m, Options.Threshold));
            }
        }
        else t = MaskDecoding.ToClassMask(m, _lookup, full, Options.MaskValueToClass!.Keys);
        if (m.Height != Options.Height || m.Width != Options.Width) t = ResizeTransformer.ResizeMask(t, Options.Height, Options.Width);
        return t.MoveToOuterDisposeScope();
    }

    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.WriteOptionsEntry(LoaderSignature, CurrentVersion, Options);
    }

    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static LoadMaskTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    /// <summary>Rebuilds a saved transformer.</summary>
    internal static LoadMaskTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new LoadMaskTransformer(context.ReadOptions<LoadMaskOptions>(CurrentVersion), context.Context);
    }
}

/// <summary>The estimator of <see cref="LoadMaskTransformer"/> (nothing to learn).</summary>
public sealed class LoadMaskEstimator : TrivialEstimator<LoadMaskTransformer>
{
    internal LoadMaskEstimator(LoadMaskOptions options, MedSegContext? context = null)
        : base(new LoadMaskTransformer(options, context))
    {
    }
}
