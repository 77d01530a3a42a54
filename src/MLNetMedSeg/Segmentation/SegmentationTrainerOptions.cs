using MLNetMedSeg.Core;
using System.Text.Json.Serialization;
using MLNetMedSeg.Augmentation.Classic;
using MLNetMedSeg.Data;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Segmentation.Networks;

namespace MLNetMedSeg.Segmentation;

/// <summary>The optimizer of the segmentation trainer.</summary>
public enum SegmentationOptimizer
{
    /// <summary>Adam (Kingma and Ba), L2 weight decay added to the gradient — DASP's optimizer (paper 000, §4.1). Default.</summary>
    Adam,

    /// <summary>AdamW (Loshchilov and Hutter): decoupled weight decay.</summary>
    AdamW,
}

/// <summary>The learning-rate schedule, stepped once per epoch.</summary>
public enum LearningRateSchedule
{
    /// <summary>Constant learning rate (after the optional warm-up). Default.</summary>
    None,

    /// <summary>Cosine annealing from the learning rate to <see cref="SegmentationTrainerOptions.MinLearningRate"/> over the epochs after warm-up.</summary>
    Cosine,

    /// <summary>Multiply by <see cref="SegmentationTrainerOptions.StepGamma"/> every <see cref="SegmentationTrainerOptions.StepSize"/> epochs (after warm-up).</summary>
    Step,
}

/// <summary>
/// Options of <see cref="SegmentationTrainer"/>. DASP (paper 000, §4.1) trains with Adam, batch size 16, learning
/// rate 4e-3 (Kvasir-SEG; 1e-4 for ETIS) for 200 epochs with the soft Dice loss; the defaults here keep Adam, batch
/// 16 and Dice but use 20 epochs and lr 1e-3 (from scratch, small data, CPU) — set <see cref="Epochs"/> = 200 and
/// <see cref="LearningRate"/> = 4e-3 for the paper's Kvasir setting.
/// </summary>
public sealed class SegmentationTrainerOptions
{
    /// <summary>
    /// The network (default: a U-Net with the networks' defaults: plain encoder 32–512, binary head). Set
    /// <see cref="SegmentationNetworkOptions.Classes"/> = C + 1 for a class-index (int64) mask column.
    /// </summary>
    public SegmentationNetworkOptions Network { get; set; } = new();

    /// <summary>Image column, float32 [C,H,W] with C = the network's InChannels (default "Image").</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>Mask column: float32 [1,H,W] {0,1} for a binary head, int64 [H,W] for a multi-class head (default "Mask").</summary>
    public string MaskColumn { get; set; } = "Mask";

    /// <summary>Optional Number column of per-row weights or augmented flags (default null: every row weighs the same); see <see cref="SampleWeightMode"/>.</summary>
    public string? SampleWeightColumn { get; set; }

    /// <summary>How <see cref="SampleWeightColumn"/> is read (default <see cref="SampleWeightMode.IsAugmentedFlag"/>, Eq. 11).</summary>
    public SampleWeightMode SampleWeightMode { get; set; } = SampleWeightMode.IsAugmentedFlag;

    /// <summary>The supervised loss (default: soft Dice per image, smooth 1 — DASP's L_sup).</summary>
    public SegmentationLossOptions Loss { get; set; } = new();

    /// <summary>Optimizer (default Adam, as DASP).</summary>
    public SegmentationOptimizer Optimizer { get; set; } = SegmentationOptimizer.Adam;

    /// <summary>Learning rate (default 1e-3; DASP: 4e-3 on Kvasir-SEG, 1e-4 on ETIS).</summary>
    public double LearningRate { get; set; } = 1e-3;

    /// <summary>Weight decay (default 0; L2 for Adam, decoupled for AdamW).</summary>
    public double WeightDecay { get; set; }

    /// <summary>Learning-rate schedule after warm-up (default none).</summary>
    public LearningRateSchedule Schedule { get; set; } = LearningRateSchedule.None;

    /// <summary>Epochs of linear warm-up from 0 to the learning rate (default 0).</summary>
    public int WarmupEpochs { get; set; }

    /// <summary>Cosine schedule: the final learning rate (default 0).</summary>
    public double MinLearningRate { get; set; }

    /// <summary>Step schedule: epochs between decays (default 30).</summary>
    public int StepSize { get; set; } = 30;

    /// <summary>Step schedule: decay factor (default 0.1).</summary>
    public double StepGamma { get; set; } = 0.1;

    /// <summary>Training epochs (default 20; DASP: 200).</summary>
    public int Epochs { get; set; } = 20;

    /// <summary>Batch size (default 16, as DASP). The last, smaller batch of an epoch is kept.</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>
    /// The arithmetic of the training steps (default float32). <see cref="TrainingPrecision.BFloat16"/> computes forward
    /// and backward in bfloat16 with float32 master weights, optimizer state, normalisation layers and loss (see
    /// <see cref="MixedPrecision"/>): about 2× faster on CPUs with AVX-512 BF16/AMX and on recent GPUs.
    /// <see cref="TrainingPrecision.Float16"/> (CUDA only) adds dynamic loss scaling. Evaluation, prediction and the
    /// saved model use the float32 weights.
    /// </summary>
    public TrainingPrecision Precision { get; set; } = TrainingPrecision.Float32;

    /// <summary>
    /// Feeds training batches to the network in channels-last memory layout (NHWC strides; the same values), which
    /// libtorch's oneDNN convolutions run markedly faster on the CPU (build/bench.sh measures it). Default true.
    /// </summary>
    public bool ChannelsLast { get; set; } = true;

    /// <summary>
    /// The classic augmentation baseline of DASP Table 1 applied to every training batch on the fly, a new random
    /// draw each time, from the trainer's generator (default <see cref="ClassicAugmentationKind.None"/>, "No Aug.").
    /// </summary>
    public ClassicAugmentationKind Augmentation { get; set; } = ClassicAugmentationKind.None;

    /// <summary>Further batch augmentations applied, in order, after <see cref="Augmentation"/> (default null). Not saved.</summary>
    [JsonIgnore]
    public IReadOnlyList<IBatchAugmentation>? Augmentations { get; set; }

    /// <summary>
    /// Optional validation data (same image/mask columns), evaluated after every epoch with the per-image mean Dice
    /// (mDice, the papers' convention, threshold 0.5). Not saved with the model. Default null.
    /// </summary>
    [JsonIgnore]
    internal IDataView? ValidationData { get; set; }

    /// <summary>
    /// Optional ML.NET validation data with the training data's image and mask columns (e.g. the validation split
    /// through the same LoadImages/LoadMasks transforms), scored after every epoch with the per-image mean Dice (mDice,
    /// threshold 0.5): the best epoch is kept with <see cref="RestoreBestCheckpoint"/> and early stopping watches it.
    /// Lets a trainer inside an <c>EstimatorChain</c> validate; outside one, <c>trainer.Fit(train, validation)</c> does
    /// the same. Read once into memory when Fit starts; not saved with the model. Default null.
    /// </summary>
    [JsonIgnore]
    public Microsoft.ML.IDataView? ValidationSet { get; set; }

    /// <summary>With validation data: restore the weights of the epoch with the best validation mDice at the end (default true).</summary>
    public bool RestoreBestCheckpoint { get; set; } = true;

    /// <summary>With validation data: stop after this many epochs without a better validation mDice (default null: never).</summary>
    public int? EarlyStoppingPatience { get; set; }

    /// <summary>
    /// Folder for the resume checkpoint written after every epoch (default null: none). A <see cref="SegmentationTrainer.Fit(Data.IDataView, CancellationToken)"/>
    /// with the same options and folder resumes after the last completed epoch (weights, optimizer state, schedule,
    /// random state, best score, history); a folder holding a checkpoint of different options is refused.
    /// </summary>
    public string? CheckpointFolder { get; set; }

    /// <summary>Batch size of validation and of the fitted model's output view (<see cref="SegmentationModelOptions.BatchSize"/>) (default 16).</summary>
    public int ValidationBatchSize { get; set; } = 16;

    /// <summary>Fitted model: average identity, horizontal-flip and vertical-flip predictions (default false).</summary>
    public bool TestTimeAugmentation { get; set; }

    /// <summary>Output column of probabilities (default "Probability").</summary>
    public string ProbabilityColumn { get; set; } = "Probability";

    /// <summary>Output column of the predicted mask (default "Predicted").</summary>
    public string PredictedColumn { get; set; } = "Predicted";

    /// <summary>
    /// Online adversarial training (default null: off): every <see cref="IOnlineAugmentation.EveryEpochs"/> epochs
    /// the current network is attacked on every training row (or on <c>OnlineAdversarialOptions.Source</c>), and
    /// the epoch draws batches of <see cref="BatchSize"/> from the pool of real and attacked rows, with Eq. 11's loss
    /// (mean over the batch's real rows + mean over its augmented rows) — as the offline mode draws them from real +
    /// augmented rows, so both modes take N_pool/BatchSize steps an epoch (DASP trains with batch 16 either way). The
    /// attack options' column names are not used (the trainer's are); the classic augmentations apply to the batch. With
    /// <see cref="SampleWeightColumn"/> set (real rows flagged as augmented stay so), the mode must be
    /// <see cref="SampleWeightMode.IsAugmentedFlag"/>. A resumed run regenerates the attacked rows at its first epoch.
    /// </summary>
    [JsonIgnore]
    public IOnlineAugmentation? OnlineAttack { get; set; }

    /// <summary>Called after every completed epoch (after its checkpoint is written), e.g. to draw a live loss curve. Not saved.</summary>
    [JsonIgnore]
    public Action<SegmentationEpochRecord>? EpochCompleted { get; set; }

    /// <summary>A shallow copy with the network and loss options copied.</summary>
    public SegmentationTrainerOptions Clone()
    {
        var c = (SegmentationTrainerOptions)MemberwiseClone();
        c.Network = Network.Clone();
        c.Loss = Loss.Clone();
        c.Augmentations = Augmentations?.ToArray();
        c.OnlineAttack = OnlineAttack?.Clone();
        return c;
    }

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (Network is null) throw new ArgumentException("Network options are required", nameof(Network));
        Network.Validate();
        if (Loss is null) throw new ArgumentException("Loss options are required", nameof(Loss));
        Loss.Validate(Network.Classes);
        foreach (var (v, n) in new[] { (ImageColumn, nameof(ImageColumn)), (MaskColumn, nameof(MaskColumn)), (ProbabilityColumn, nameof(ProbabilityColumn)), (PredictedColumn, nameof(PredictedColumn)) })
            if (string.IsNullOrEmpty(v)) throw new ArgumentException($"{n} must be a column name", n);
        if (ProbabilityColumn == PredictedColumn) throw new ArgumentException("ProbabilityColumn and PredictedColumn must differ", nameof(PredictedColumn));
        if (SampleWeightColumn is "") throw new ArgumentException("SampleWeightColumn must be null or a column name", nameof(SampleWeightColumn));
        if (!Enum.IsDefined(SampleWeightMode)) throw new ArgumentException($"unknown SampleWeightMode {SampleWeightMode}", nameof(SampleWeightMode));
        if (!Enum.IsDefined(Augmentation)) throw new ArgumentException($"unknown Augmentation {Augmentation}", nameof(Augmentation));
        if (Augmentations is { } augs && augs.Any(a => a is null)) throw new ArgumentException("Augmentations must not hold null", nameof(Augmentations));
        if (!Enum.IsDefined(Optimizer)) throw new ArgumentException($"unknown Optimizer {Optimizer}", nameof(Optimizer));
        if (!Enum.IsDefined(Schedule)) throw new ArgumentException($"unknown Schedule {Schedule}", nameof(Schedule));
        if (!double.IsFinite(LearningRate) || LearningRate <= 0) throw new ArgumentException($"LearningRate must be > 0, got {LearningRate}", nameof(LearningRate));
        if (!double.IsFinite(WeightDecay) || WeightDecay < 0) throw new ArgumentException($"WeightDecay must be ≥ 0, got {WeightDecay}", nameof(WeightDecay));
        if (!double.IsFinite(MinLearningRate) || MinLearningRate < 0) throw new ArgumentException($"MinLearningRate must be ≥ 0, got {MinLearningRate}", nameof(MinLearningRate));
        if (Epochs < 1) throw new ArgumentException($"Epochs must be ≥ 1, got {Epochs}", nameof(Epochs));
        if (WarmupEpochs < 0 || WarmupEpochs >= Epochs && WarmupEpochs > 0 && Schedule != LearningRateSchedule.None)
            throw new ArgumentException($"WarmupEpochs must be ≥ 0 and, with a schedule, less than Epochs ({Epochs}), got {WarmupEpochs}", nameof(WarmupEpochs));
        if (StepSize < 1) throw new ArgumentException($"StepSize must be ≥ 1, got {StepSize}", nameof(StepSize));
        if (!double.IsFinite(StepGamma) || StepGamma <= 0) throw new ArgumentException($"StepGamma must be > 0, got {StepGamma}", nameof(StepGamma));
        if (BatchSize < 1) throw new ArgumentException($"BatchSize must be ≥ 1, got {BatchSize}", nameof(BatchSize));
        if (!Enum.IsDefined(Precision)) throw new ArgumentException($"unknown Precision {Precision}", nameof(Precision));
        if (ValidationBatchSize < 1) throw new ArgumentException($"ValidationBatchSize must be ≥ 1, got {ValidationBatchSize}", nameof(ValidationBatchSize));
        if (OnlineAttack is { } online)
        {
            online.Validate();
            if (SampleWeightColumn is not null && SampleWeightMode != SampleWeightMode.IsAugmentedFlag)
                throw new ArgumentException("OnlineAttack trains with Eq. 11 and needs SampleWeightMode IsAugmentedFlag when SampleWeightColumn is set", nameof(OnlineAttack));
        }
        if (EarlyStoppingPatience is < 1) throw new ArgumentException($"EarlyStoppingPatience must be ≥ 1 or null, got {EarlyStoppingPatience}", nameof(EarlyStoppingPatience));
    }
}

/// <summary>What one training epoch did.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="TrainLoss">Mean training loss over the epoch's batches.</param>
/// <param name="ValidationDice">Per-image mean Dice on the validation data, or null without validation data.</param>
/// <param name="LearningRate">The learning rate used in this epoch.</param>
/// <param name="Seconds">Wall time of the epoch (training and validation).</param>
public sealed record SegmentationEpochRecord(int Epoch, double TrainLoss, double? ValidationDice, double LearningRate, double Seconds);
