using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>
/// Adversarial training as a chain stage (DASP, paper 000, §3.3–3.4): asks the segmentation trainer downstream to
/// attack the generated pairs {x̃, ỹ} against the segmenter it is training — Diff-PGD with the uncertainty weights W by
/// default (Eq. 9–10), re-attacked every <see cref="OnlineAdversarialOptions.EveryEpochs"/> epochs — and to train on the
/// real rows plus the attacked ones (Eq. 11). It needs an image diffusion upstream (the generated pairs and the SDEdit
/// model). An augmenter: to ML.NET it changes nothing (same schema and rows), so the fitted model scores without it;
/// see <see cref="AugmentedTrainingData"/>. Saves its options.
/// </summary>
public sealed class AdversarialTrainingTransformer : Core.MLNet.StageTransformer
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.ADVTRAINING";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    /// <param name="options">The attack and its schedule (copied, validated; Source and SdEditor are set by the chain).</param>
    public AdversarialTrainingTransformer(OnlineAdversarialOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Clone();
        Options.Source = null;
        Options.SdEditor = null;
        Options.Attack.Validate();
        if (Options.EveryEpochs < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.EveryEpochs, "EveryEpochs must be ≥ 1");
        if (Options.Copies < 1) throw new ArgumentOutOfRangeException(nameof(options), Options.Copies, "Copies must be ≥ 1");
    }

    /// <summary>The attack and its schedule.</summary>
    public OnlineAdversarialOptions Options { get; }

    /// <summary>Nothing changes in the library's view either: the request travels with ML.NET data only.</summary>
    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inputSchema ?? throw new ArgumentNullException(nameof(inputSchema));

    /// <inheritdoc/>
    internal override IDataView Transform(IDataView input) => input ?? throw new ArgumentNullException(nameof(input));

    /// <summary>ML.NET: the input, carrying the attack request for the trainer.</summary>
    public override Microsoft.ML.IDataView Transform(Microsoft.ML.IDataView input) =>
        AugmentedTrainingData.From(input ?? throw new ArgumentNullException(nameof(input))).WithOnlineAttack(Options);

    /// <summary>ML.NET: the input schema.</summary>
    public override Microsoft.ML.DataViewSchema GetOutputSchema(Microsoft.ML.DataViewSchema inputSchema) =>
        inputSchema ?? throw new ArgumentNullException(nameof(inputSchema));

    /// <summary>ML.NET: passes rows through.</summary>
    public override Microsoft.ML.Data.IRowToRowMapper GetRowToRowMapper(Microsoft.ML.DataViewSchema inputSchema) => IdentityMapper(inputSchema);

    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.WriteOptionsEntry(LoaderSignature, CurrentVersion, Options);
    }

    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static AdversarialTrainingTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    /// <summary>Rebuilds a saved stage.</summary>
    internal static AdversarialTrainingTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        return new AdversarialTrainingTransformer(context.ReadOptions<OnlineAdversarialOptions>(CurrentVersion));
    }
}

/// <summary>The estimator of <see cref="AdversarialTrainingTransformer"/> (nothing to learn).</summary>
public sealed class AdversarialTrainingEstimator(OnlineAdversarialOptions options)
    : TrivialEstimator<AdversarialTrainingTransformer>(new AdversarialTrainingTransformer(options));
