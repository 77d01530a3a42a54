using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Dasp;

/// <summary>What a <see cref="DaspTransformer"/> writes into the model (JSON).</summary>
public sealed class DaspModelOptions
{
    /// <summary>The flow's options when it was fitted (callbacks and data views are not saved).</summary>
    public DaspOptions Flow { get; set; } = new();

    /// <summary>True when the mask diffusion was trained (generated masks) and saved as the child entry "mask_diffusion".</summary>
    public bool HasMaskDiffusion { get; set; }
}

/// <summary>
/// The fitted DASP flow: the segmenter (a U-Net-family <see cref="SegmentationTransformer"/> or a cDAL
/// <see cref="Segmentation.Cdal.CdalTransformer"/>) trained on real + attacked generated pairs, with the two diffusion models that
/// made those pairs. <see cref="Transform"/> predicts (the segmenter's Probability and Predicted columns);
/// <see cref="GeneratePairs"/> draws new pairs {x̃, ỹ}. Saved as one model entry with the children "segmenter",
/// "image_diffusion" and, when masks were generated, "mask_diffusion". Owns its models: dispose it.
/// </summary>
public sealed class DaspTransformer : Core.MLNet.StageTransformer, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.DASP";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    private bool _disposed;
    private readonly bool _ownsGenerators;

    /// <summary>
    /// Wraps fitted models. The transformer owns the segmenter, and the diffusion models unless
    /// <paramref name="ownsGenerators"/> is false (then they stay the caller's and must outlive it).
    /// </summary>
    internal DaspTransformer(MedSegContext context, DaspOptions options, MaskDiffusionTransformer? maskDiffusion,
        ImageDiffusionTransformer imageDiffusion, IDifferentiableSegmenter segmenter, bool ownsGenerators = true)
    {
        _ownsGenerators = ownsGenerators;
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(imageDiffusion);
        ArgumentNullException.ThrowIfNull(segmenter);
        _segmenter = segmenter as Core.MLNet.StageTransformer ?? throw new ArgumentException(
            $"{LoaderSignature}: the segmenter ({segmenter.GetType().Name}) is not one of the library's stages (SegmentationTransformer, CdalTransformer)", nameof(segmenter));
        Context = context;
        Options = options.Clone();
        MaskDiffusion = maskDiffusion;
        ImageDiffusion = imageDiffusion;
        Segmenter = segmenter;
    }

    /// <summary>The context the models run in.</summary>
    internal MedSegContext Context { get; }

    /// <summary>The flow's options (a copy; changing it changes nothing).</summary>
    public DaspOptions Options { get; }

    /// <summary>The Bernoulli mask diffusion (null when the flow drew images for the real masks).</summary>
    public MaskDiffusionTransformer? MaskDiffusion { get; }

    /// <summary>The mask-conditioned image diffusion (also the SDEdit model of the attack).</summary>
    public ImageDiffusionTransformer ImageDiffusion { get; }

    /// <summary>
    /// The trained segmenter: a <see cref="SegmentationTransformer"/> (U-Net family) or a
    /// <see cref="Segmentation.Cdal.CdalTransformer"/> (<see cref="DaspOptions.Segmenter"/> = <see cref="DaspSegmenter.Cdal"/>).
    /// </summary>
    public IDifferentiableSegmenter Segmenter { get; }

    private readonly Core.MLNet.StageTransformer _segmenter;

    /// <summary>The segmenter's output schema.</summary>
    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => _segmenter.GetOutputSchema(inputSchema);

    /// <summary>Adds the segmenter's Probability and Predicted columns.</summary>
    internal override IDataView Transform(IDataView input)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _segmenter.Transform(input);
    }

    /// <summary>
    /// Draws <paramref name="count"/> new pairs: masks ỹ from the mask diffusion (rows <paramref name="firstRow"/>…, seeded
    /// by row, so the same call gives the same pairs) and an image x̃ for each. Returns (images [N,C,H,W] in [0,1],
    /// masks [N,1,H,W] {0,1}, binarised at 0.5 when the mask diffusion returns probabilities) on the context's device, in
    /// the caller's dispose scope. Needs the mask diffusion.
    /// </summary>
    public (Tensor Images, Tensor Masks) GeneratePairs(int count, long firstRow = 0)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        var masks = MaskDiffusion ?? throw new InvalidOperationException(
            $"{LoaderSignature}: this model drew images for the real masks (GeneratedMasks = false) and has no mask diffusion to sample masks from");
        using var scope = torch.NewDisposeScope();
        // Pairs carry binary masks: a mask diffusion with FinalStep = Mean gives probability maps, binarised at 0.5 here.
        var y = ImageDiffusionTransformer.BinarizeMask(masks.Generate(count, firstRow));
        var gens = Enumerable.Range(0, count).Select(i => ImageDiffusion.RowGenerator(firstRow + i)).ToArray();
        try
        {
            var x = ImageDiffusion.Sample(y, gens);
            return (x.MoveToOuterDisposeScope(), y.MoveToOuterDisposeScope());
        }
        finally
        {
            foreach (var g in gens) g.Dispose();
        }
    }

    /// <summary>Writes the options entry and the three models as children.</summary>
    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.WriteOptionsEntry(LoaderSignature, CurrentVersion, new DaspModelOptions { Flow = Options, HasMaskDiffusion = MaskDiffusion is not null });
        context.WriteChild("segmenter", _segmenter);
        context.WriteChild("image_diffusion", ImageDiffusion);
        if (MaskDiffusion is not null) context.WriteChild("mask_diffusion", MaskDiffusion);
    }

    /// <summary>Rebuilds a saved flow with its models.</summary>
    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static DaspTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static DaspTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var saved = context.ReadOptions<DaspModelOptions>(CurrentVersion)
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        var loaded = new List<IDisposable>();
        try
        {
            T Child<T>(string name) where T : class, ITransformer
            {
                var c = context.ReadChild(name);
                if (c is IDisposable d) loaded.Add(d);
                return c as T ?? throw new InvalidDataException($"{LoaderSignature}: the child entry '{name}' is a {c.GetType().Name}, not a {typeof(T).Name}");
            }
            // A U-Net-family model (every model saved before cDAL could be DASP's segmenter) or a cDAL one.
            var segmenter = saved.Flow.Segmenter == DaspSegmenter.Cdal
                ? (IDifferentiableSegmenter)Child<Segmentation.Cdal.CdalTransformer>("segmenter")
                : Child<SegmentationTransformer>("segmenter");
            var images = Child<ImageDiffusionTransformer>("image_diffusion");
            var masks = saved.HasMaskDiffusion ? Child<MaskDiffusionTransformer>("mask_diffusion") : null;
            return new DaspTransformer(context.Context, saved.Flow, masks, images, segmenter);
        }
        catch
        {
            foreach (var d in loaded) d.Dispose();
            throw;
        }
    }

    /// <summary>Frees the segmenter and, when it owns them, the diffusion models.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        ((IDisposable)_segmenter).Dispose();
        if (!_ownsGenerators) return;
        ImageDiffusion.Dispose();
        MaskDiffusion?.Dispose();
    }
}
