using MLNetMedSeg.Augmentation;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>
/// The adversarial augmenter as a pipeline stage: attacks a fitted segmenter (FGSM, Inverse FGSM, PGD, Diff-PGD, DASP;
/// see <see cref="AdversarialAttackOptions"/>). Nothing is learnt: <see cref="Fit(Microsoft.ML.IDataView)"/> checks the schema and returns an
/// <see cref="AdversarialAttackTransformer"/> that adds the attacked-image column. The segmenter (and SDEdit model) stay
/// the caller's: the transformer uses them and does not dispose them. The seed is derived from the context when the
/// estimator is created.
/// </summary>
public sealed class AdversarialAttackEstimator : Microsoft.ML.IEstimator<AdversarialAttackTransformer>, Pipeline.IEngineEstimator<AdversarialAttackTransformer>
{
    Data.DataViewSchema Pipeline.IEngineEstimator<AdversarialAttackTransformer>.GetOutputSchema(Data.DataViewSchema inputSchema) => GetOutputSchema(inputSchema);

    AdversarialAttackTransformer Pipeline.IEngineEstimator<AdversarialAttackTransformer>.Fit(Data.IDataView input, CancellationToken cancellationToken) => Fit(input, cancellationToken);

    /// <summary>
    /// ML.NET: checks the columns of an ML.NET data view (images as <c>MLImage</c> or float vectors [C,H,W], masks as
    /// float vectors [1,H,W] or [H,W], or integer vectors [H,W]; see <see cref="Core.MLNet.TensorColumns"/>) and returns
    /// the transformer; no row is read. A missing or unreadable column is a <see cref="SchemaException"/> naming it.
    /// </summary>
    public AdversarialAttackTransformer Fit(Microsoft.ML.IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Core.MLNet.MLNetData.CheckSchema(input.Schema, GetOutputSchema);
        return Fit(Core.MLNet.MLNetData.AsLibraryView(input), CancellationToken.None);
    }

    /// <summary>ML.NET schema propagation: checks the columns this stage reads (naming a missing or wrong one) before any training.</summary>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema) =>
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, GetOutputSchema);

    private readonly AdversarialAttackOptions _options;
    private readonly IDifferentiableSegmenter _segmenter;
    private readonly ISdEditor? _sdEditor;
    private readonly ulong _seed;

    /// <param name="context">Seed.</param>
    /// <param name="segmenter">The fitted segmenter to attack (a U-Net's transformer or a cDAL model).</param>
    /// <param name="options">The attack (copied; validated now; default DASP's).</param>
    /// <param name="sdEditor">The SDEdit model (the conditional image diffusion stage); required by Diff-PGD and DASP.</param>
    internal AdversarialAttackEstimator(MedSegContext context, IDifferentiableSegmenter segmenter, AdversarialAttackOptions? options = null, ISdEditor? sdEditor = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(segmenter);
        _options = (options ?? new AdversarialAttackOptions()).Clone();
        _options.Validate();
        if (_options.NeedsSdEditor && sdEditor is null)
            throw new ArgumentException($"{_options.Method} refines every step with SDEdit and needs an ISdEditor (the conditional image diffusion stage, e.g. a fitted image diffusion model); pass it as sdEditor", nameof(sdEditor));
        if (sdEditor is not null && sdEditor.ImageChannels != segmenter.ImageChannels)
            throw new ArgumentException($"the SDEdit model works on {sdEditor.ImageChannels} channels but the segmenter takes {segmenter.ImageChannels}", nameof(sdEditor));
        _segmenter = segmenter;
        _sdEditor = sdEditor;
        _seed = context.DeriveSeed("AdversarialAttack");
    }

    /// <summary>The options (a copy).</summary>
    public AdversarialAttackOptions Options => _options.Clone();

    /// <summary>Checks the image and mask columns; returns the schema with the output columns.</summary>
    internal DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => AdversarialAttackTransformer.OutputSchema(inputSchema, _options, _segmenter);

    /// <summary>Checks the schema and returns the transformer (no training).</summary>
    internal AdversarialAttackTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        GetOutputSchema(input.Schema);
        cancellationToken.ThrowIfCancellationRequested();
        return new AdversarialAttackTransformer(_options, _segmenter, _sdEditor, _seed, ownsSegmenter: false, ownsSdEditor: false);
    }
}
