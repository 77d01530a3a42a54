using System.Text.Json.Serialization;
using MLNetMedSeg.Data;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>
/// Options of <see cref="CdalTrainer"/>, the cDAL segmenter as a training stage: the model (<see cref="Cdal"/>: diffusion,
/// networks, attention, latent, sampling and optimiser settings of paper 003), the columns, epochs and batches, the
/// public code's learning-rate schedule (cosine annealing per epoch on both optimisers), validation and checkpoints.
/// <para>
/// <see cref="CdalOptions.ImageSize"/> is taken from the training images (they must be square): it is not a setting
/// here. <see cref="Cdal"/> defaults to the paper's CXR configuration (a ~256² network, impractical on a CPU); the
/// catalog's simple overload and the CLI start from <see cref="CpuSizedModel"/> instead.
/// </para>
/// </summary>
public sealed class CdalTrainerOptions
{
    /// <summary>The model: diffusion steps, latent, attention, samples, networks and Adam settings (default: the paper's CXR configuration).</summary>
    public CdalOptions Cdal { get; set; } = new();

    /// <summary>Image column, float32 [C,H,W] (or an ML.NET <c>MLImage</c>) with C = <see cref="CdalOptions.ImageChannels"/>, square (default "Image").</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>
    /// Mask column: float32 [1,H,W] in {0,1} when <see cref="CdalOptions.Classes"/> = 1, int64 [H,W] class indices
    /// otherwise (default "Mask").
    /// </summary>
    public string MaskColumn { get; set; } = "Mask";

    /// <summary>Probability column the fitted model writes: float32 [1,H,W] (binary) or [Classes,H,W] (default "Probability", as the segmentation trainer's).</summary>
    public string ProbabilityColumn { get; set; } = "Probability";

    /// <summary>Predicted-mask column the fitted model writes: float32 [1,H,W] in {0,1} or int64 [H,W] (default "Predicted", as the segmentation trainer's).</summary>
    public string PredictedColumn { get; set; } = "Predicted";

    /// <summary>Training epochs (default 50; the paper's code trains for hundreds of epochs).</summary>
    public int Epochs { get; set; } = 50;

    /// <summary>Batch size (default 8; the code uses 8 for CXR).</summary>
    public int BatchSize { get; set; } = 8;

    /// <summary>
    /// Cosine annealing of both learning rates per epoch over <see cref="Epochs"/> down to <see cref="MinLearningRate"/>
    /// (the public code's <c>CosineAnnealingLR(T_max = num_epoch, eta_min = 1e-5)</c>; default true). False: constant rates.
    /// </summary>
    public bool CosineSchedule { get; set; } = true;

    /// <summary>η_min of the cosine schedule (default 1e-5, the code's). A rate already below it stays constant.</summary>
    public double MinLearningRate { get; set; } = 1e-5;

    /// <summary>
    /// Seed of the prediction noise (initial x_T, latents, posterior draws); null (default) = derived from the context's
    /// seed and the stage name. Saved with the model: a loaded model predicts exactly as the fitted one.
    /// </summary>
    public ulong? SamplingSeed { get; set; }

    /// <summary>Rows the fitted model's output view samples at once (default 4; memory grows with rows × samples).</summary>
    public int PredictionBatchSize { get; set; } = 4;

    /// <summary>Optional validation data (not serialised): per-image mDice of the K-sample prediction after every epoch.</summary>
    [JsonIgnore]
    internal IDataView? ValidationData { get; set; }

    /// <summary>
    /// Optional ML.NET validation data with the training data's image and mask columns: per-image mDice of the K-sample
    /// prediction after every epoch (the best epoch's generator kept with <see cref="RestoreBestCheckpoint"/>). Lets a
    /// cDAL trainer inside an <c>EstimatorChain</c> validate; outside one, <c>trainer.Fit(train, validation)</c> does
    /// the same. Read once into memory when Fit starts; not saved with the model. Default null.
    /// </summary>
    [JsonIgnore]
    public Microsoft.ML.IDataView? ValidationSet { get; set; }

    /// <summary>Rows per validation batch (default 4).</summary>
    public int ValidationBatchSize { get; set; } = 4;

    /// <summary>With validation data, put the generator weights of the best validation epoch back at the end (default true).</summary>
    public bool RestoreBestCheckpoint { get; set; } = true;

    /// <summary>With validation data, stop after this many epochs without a better mDice (default null: never).</summary>
    public int? EarlyStoppingPatience { get; set; }

    /// <summary>
    /// Folder for a checkpoint after every epoch (generator, discriminator, both optimisers, the training generator's
    /// state, the step count, validation state); a Fit with the same options, seed and device resumes from it and gives
    /// the same model bit for bit. Null (default): no checkpoints.
    /// </summary>
    [JsonIgnore]
    public string? CheckpointFolder { get; set; }

    /// <summary>
    /// Online adversarial training (e.g. <c>Augmentation.Adversarial.OnlineAdversarialOptions</c>): every
    /// <see cref="IOnlineAugmentation.EveryEpochs"/> epochs, from epoch 1, the rows are attacked against the generator
    /// being trained — through its differentiable Algorithm-2 prediction (<see cref="CdalSampler.Logits"/>, K samples
    /// seeded per image by <see cref="SamplingSeed"/> and the image's content, as the fitted model's
    /// <see cref="CdalTransformer.Logits"/>), the generator in eval mode during the attack and put back after — and each
    /// epoch draws its batches of <see cref="BatchSize"/> from the pool of real and attacked rows. Eq. 11 of paper 000
    /// enters cDAL through the generator's loss: each row's Eq. 4 loss (its MSE [+ adversarial term]) is weighted
    /// 1/N_real (real rows of the batch) or 1/N_aug (attacked rows), so the batch's generator loss is the mean over its
    /// real rows plus the mean over its attacked rows; the discriminator's losses stay batch means (they fit the
    /// denoising distribution of every row, real or attacked). A resumed run regenerates the attacked rows at its first
    /// epoch (they are not in checkpoints). Default null: no online attack. Not saved with the model.
    /// </summary>
    [JsonIgnore]
    public IOnlineAugmentation? OnlineAttack { get; set; }

    /// <summary>
    /// Internal: a Number column flagging augmented rows (≠ 0) of the training data — the chain's real + generated pool:
    /// the generator's loss then weighs them with Eq. 11 as <see cref="OnlineAttack"/>'s pool. Null: every row the same.
    /// </summary>
    [JsonIgnore]
    internal string? AugmentedFlagColumn { get; set; }

    /// <summary>Called after every epoch (after its checkpoint) with its record (not serialised).</summary>
    [JsonIgnore]
    public Action<CdalEpochRecord>? EpochCompleted { get; set; }

    /// <summary>
    /// A network sized for CPU training at 16–128 px (the paper's diffusion, latent, attention, sampling and optimiser
    /// settings; smaller widths): base width 32 with multipliers 1, 2, 2, 2 (images divisible by 8), self-attention at
    /// 8², a 2-block image encoder, a 128-d latent embedding through 2 mapping layers, a width-32 discriminator with a
    /// 128-d time embedding. The paper's own (CXR, 256²): <c>new CdalOptions()</c>.
    /// </summary>
    public static CdalOptions CpuSizedModel() => new()
    {
        BaseChannels = 32,
        ChannelMultipliers = [1, 2, 2, 2],
        SelfAttentionResolutions = [8],
        ConditionEncoderBlocks = 2,
        LatentEmbeddingDim = 128,
        MappingLayers = 2,
        DiscriminatorChannels = 32,
        DiscriminatorTimeEmbeddingDim = 128,
    };

    /// <summary>A deep copy (the validation data and callback are shared; the online attack is copied).</summary>
    public CdalTrainerOptions Clone()
    {
        var c = (CdalTrainerOptions)MemberwiseClone();
        c.Cdal = Cdal.Clone();
        c.OnlineAttack = OnlineAttack?.Clone();
        return c;
    }

    /// <summary>Checks the options (those of <see cref="Cdal"/> but its image size too); the exception names the first invalid one.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public void Validate()
    {
        if (Cdal is null) throw new ArgumentException("Cdal must not be null", nameof(Cdal));
        foreach (var (name, value) in new[] { (nameof(ImageColumn), ImageColumn), (nameof(MaskColumn), MaskColumn), (nameof(ProbabilityColumn), ProbabilityColumn), (nameof(PredictedColumn), PredictedColumn) })
            if (string.IsNullOrWhiteSpace(value)) throw new ArgumentException($"{name} must be a column name", name);
        if (ProbabilityColumn == PredictedColumn) throw new ArgumentException($"ProbabilityColumn and PredictedColumn are both '{PredictedColumn}'", nameof(PredictedColumn));
        if (Epochs < 1) throw new ArgumentException($"Epochs must be ≥ 1, got {Epochs}", nameof(Epochs));
        if (BatchSize < 1) throw new ArgumentException($"BatchSize must be ≥ 1, got {BatchSize}", nameof(BatchSize));
        if (!(MinLearningRate >= 0) || !double.IsFinite(MinLearningRate)) throw new ArgumentException($"MinLearningRate must be ≥ 0, got {MinLearningRate}", nameof(MinLearningRate));
        if (PredictionBatchSize < 1) throw new ArgumentException($"PredictionBatchSize must be ≥ 1, got {PredictionBatchSize}", nameof(PredictionBatchSize));
        if (ValidationBatchSize < 1) throw new ArgumentException($"ValidationBatchSize must be ≥ 1, got {ValidationBatchSize}", nameof(ValidationBatchSize));
        if (EarlyStoppingPatience is < 1) throw new ArgumentException($"EarlyStoppingPatience must be ≥ 1 or null, got {EarlyStoppingPatience}", nameof(EarlyStoppingPatience));
        OnlineAttack?.Validate();
        // At Cdal.ImageSize here; the trainer checks again at the training images' side.
        Cdal.Validate();
    }
}

/// <summary>One cDAL training epoch: mean generator loss (Eq. 4's MSE [+ adversarial term]), mean discriminator loss, validation mDice, the generator's learning rate, seconds.</summary>
public sealed record CdalEpochRecord(int Epoch, double GeneratorLoss, double DiscriminatorLoss, double? ValidationDice, double LearningRate, double Seconds);
