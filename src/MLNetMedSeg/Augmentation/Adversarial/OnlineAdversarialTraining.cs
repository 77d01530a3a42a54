using MLNetMedSeg.Augmentation;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Serialization;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>
/// Online adversarial training, the adversarial-training reading of DASP's Fig. 2: every
/// <see cref="EveryEpochs"/> epochs the segmentation trainer attacks its current network on all training rows
/// (<see cref="Copies"/> attacked copies each, N′ = Copies·N) and trains on real + attacked pairs with Eq. 11,
/// L_sup = mean Dice over the real rows + mean Dice over the attacked rows of each batch. Set it as
/// <see cref="SegmentationTrainerOptions.OnlineAttack"/>.
/// </summary>
public sealed class OnlineAdversarialOptions : ISourcedOnlineAugmentation
{
    /// <summary>The attack (default: DASP's, which needs <see cref="SdEditor"/>; see the presets of <see cref="AdversarialAttackOptions"/>).</summary>
    public AdversarialAttackOptions Attack { get; set; } = new();

    /// <summary>
    /// Regenerate the attacked rows every n epochs, from epoch 1 (default 1: every epoch). Each regeneration is seeded
    /// by its epoch. The rows are not in checkpoints: a resumed run attacks at its first epoch, so a run resumed at an
    /// attack epoch (1 + k·n) gives the straight run's model bit for bit; one resumed mid-period attacks its current
    /// network one or more epochs early.
    /// </summary>
    public int EveryEpochs { get; set; } = 1;

    /// <summary>Attacked copies per real row (default 2: N′ = 2N, DASP §4.1).</summary>
    public int Copies { get; set; } = 2;

    /// <summary>
    /// The rows to attack (default null: the training rows themselves). DASP attacks its generated pairs {x̃, ỹ}
    /// (§3.3), not the real ones: set this to them; their image and mask columns must carry the trainer's column names
    /// and types. Copies·|Source| attacked rows are spread evenly over each epoch's real batches. Not saved.
    /// </summary>
    [JsonIgnore]
    internal IDataView? Source { get; set; }

    /// <summary>The SDEdit model Diff-PGD / DASP need (not saved).</summary>
    [JsonIgnore]
    public ISdEditor? SdEditor { get; set; }

    /// <summary>A copy (the attack options copied, the SDEdit model shared).</summary>
    public OnlineAdversarialOptions Clone()
    {
        var c = (OnlineAdversarialOptions)MemberwiseClone();
        c.Attack = Attack.Clone();
        return c;
    }

    IOnlineAugmentation IOnlineAugmentation.Clone() => Clone();

    /// <inheritdoc/>
    IOnlineAugmentation ISourcedOnlineAugmentation.On(IDataView source, ISdEditor? sdEditor) => On(source, sdEditor);

    internal IOnlineAugmentation On(IDataView source, ISdEditor? sdEditor)
    {
        ArgumentNullException.ThrowIfNull(source);
        var c = Clone();
        c.Source = source;
        c.SdEditor ??= sdEditor;
        return c;
    }

    /// <inheritdoc/>
    public long RowsFor(long trainingRows) => Copies * (Source?.GetRowCount() ?? trainingRows);

    /// <inheritdoc/>
    [JsonIgnore]
    public string Description =>
        $"{Attack.Method}{(Attack.UncertaintyWeighting ? " + W" : "")}, {Copies} attacked cop{(Copies == 1 ? "y" : "ies")} of each {(Source is null ? "training row" : "source row")}, every {(EveryEpochs == 1 ? "epoch" : $"{EveryEpochs} epochs")}";

    /// <inheritdoc/>
    IOnlineAugmenter IOnlineAugmentation.CreateAugmenter(ulong seed) => new OnlineAdversarialAugmenter(this, seed);

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (Attack is null) throw new ArgumentException("Attack options are required", nameof(Attack));
        Attack.Validate();
        if (EveryEpochs < 1) throw new ArgumentException($"EveryEpochs must be ≥ 1, got {EveryEpochs}", nameof(EveryEpochs));
        if (Copies < 1) throw new ArgumentException($"Copies must be ≥ 1, got {Copies}", nameof(Copies));
        if (Attack.NeedsSdEditor && SdEditor is null)
            throw new ArgumentException($"the online attack {Attack.Method} needs an SDEdit model: set SdEditor", nameof(SdEditor));
    }
}

/// <summary>
/// The trainer's side of online adversarial training: holds the current set of attacked rows (on the training device,
/// so they go from attack to training without a copy to the CPU) and
/// regenerates it against the network being trained; the trainer pools them with its real rows.
/// </summary>
internal sealed class OnlineAdversarialAugmenter : IOnlineAugmenter
{
    private const string Name = "OnlineAdversarialAugmenter";

    /// <summary>The stage of the progress an attack round reports (one step per attacked batch).</summary>
    internal const string ProgressStage = "OnlineAttack";
    private readonly OnlineAdversarialOptions _options;
    private readonly AdversarialAttack _attack;
    private readonly ulong _seed;
    private InMemoryDataView? _attacked;

    public OnlineAdversarialAugmenter(OnlineAdversarialOptions options, ulong seed)
    {
        _options = options.Clone();
        _options.Validate();
        _attack = new AdversarialAttack(_options.Attack, _options.SdEditor);
        _seed = seed;
    }

    /// <summary>
    /// Attacks the request's network (in eval mode, its modes restored after) on every row of
    /// <see cref="OnlineAdversarialOptions.Source"/>, or of the training rows when no source is set; returns the
    /// attacked rows (owned by this augmenter until the next call).
    /// </summary>
    public IDataView Regenerate(OnlineAugmentationRequest r)
    {
        var clock = Stopwatch.StartNew();
        _attacked?.Dispose();
        _attacked = null;
        ulong seed = MedSegContext.MixSeed(_seed, "epoch", r.Epoch);
        var input = _options.Source ?? r.TrainingData;
        // A round can take minutes (Diff-PGD runs K SDEdit passes per batch): each attacked batch is a progress step of
        // stage ProgressStage (the round's summary below is this augmenter's log line).
        long batches = input.GetRowCount() is long n ? (n + r.BatchSize - 1) / r.BatchSize : 0;
        var tracker = new ProgressTracker(r.Context, ProgressStage, 1, batches * _options.Copies, r.CancellationToken);
        using (ModuleModeScope.Eval(r.Network))
        using (var pairs = AdversarialPairs.Collect(input, r.ImageColumn, r.MaskColumn, null, r.BatchSize, r.Device, _options.Copies, includeReal: false, seed,
                   (x, y, s, keys) => _attack.Run(r.Logits, x, y, s, keys, r.CancellationToken), r.CancellationToken, tracker, storage: r.Device))
            _attacked = pairs.ToView(r.ImageColumn, input.Schema[r.ImageColumn].Type, r.MaskColumn, input.Schema[r.MaskColumn].Type, null, null);
        r.Context.WriteLog(LogLevel.Info, Name, string.Create(CultureInfo.InvariantCulture,
            $"epoch {r.Epoch}: {_attacked.RowCount} attacked rows ({_options.Attack.Method}) against the current network in {clock.Elapsed.TotalSeconds:F1} s"));
        return _attacked;
    }

    public void Dispose()
    {
        _attacked?.Dispose();
        _attacked = null;
    }
}
