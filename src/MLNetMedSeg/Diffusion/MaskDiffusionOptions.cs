using System.Text.Json.Serialization;
using MLNetMedSeg.Diffusion.Networks;

namespace MLNetMedSeg.Diffusion;

/// <summary>
/// Options of <see cref="MaskDiffusionEstimator"/>: a Bernoulli diffusion model of binary masks (DASP paper 000, §3.1,
/// Eq. 2–5; BerDiff). The defaults train in minutes on 64×64 masks on a CPU (a ≈ 0.3 M-parameter ADM U-Net, 50 epochs);
/// DASP follows BerDiff's settings (T = 1000, BCE on the flip noise; batch 16). Column defaults follow the DASP flow:
/// masks are read from "Mask", generated masks are written to "SyntheticMask".
/// </summary>
public sealed class MaskDiffusionOptions
{
    /// <summary>
    /// The denoising network. Default: a light ADM U-Net for masks — base width 16, multipliers [1, 2, 2], one block
    /// per level, attention at 16 px of a 64 px input (2 heads of 16), ≈ 0.3 M parameters; masks are simpler than
    /// images, and this trains in minutes on 64×64 CPU data (BerDiff's 128–256 px networks are
    /// <see cref="DiffusionUNetOptions"/> with e.g. BaseChannels = 128). In/out channels are forced to 1 (one mask
    /// channel, the logit of ε or y_0) and <see cref="DiffusionUNetOptions.ConditionChannels"/> to the condition image's
    /// channels (0 without <see cref="ConditionColumn"/>). The masks' height and width must be divisible by
    /// 2^(levels − 1); set <see cref="DiffusionUNetOptions.ImageSize"/> to the mask size so that
    /// <see cref="DiffusionUNetOptions.AttentionResolutions"/> mean what they say.
    /// </summary>
    public DiffusionUNetOptions Network { get; set; } = new()
    {
        BaseChannels = 16, ChannelMultipliers = [1, 2, 2], BlocksPerLevel = 1, AttentionResolutions = [16], HeadChannels = 16,
        GroupNormGroups = 8, ImageSize = 64,
    };

    /// <summary>Number of diffusion steps T (default 1000, as BerDiff and DASP).</summary>
    public int Steps { get; set; } = 1000;

    /// <summary>
    /// The β schedule (default <see cref="BetaScheduleKind.Cosine"/>, the squared-cosine schedule of Nichol &amp; Dhariwal,
    /// which keeps the strided sampler's few steps informative; <see cref="BetaScheduleKind.Linear"/> is the DDPM one).
    /// </summary>
    public BetaScheduleKind Schedule { get; set; } = BetaScheduleKind.Cosine;

    /// <summary>What the network predicts (default the flip noise ε = y_t ⊕ y_0, DASP Eq. 5).</summary>
    public BernoulliParameterization Parameterization { get; set; } = BernoulliParameterization.FlipNoise;

    /// <summary>
    /// Weight w of the KL term in the loss BCE + w·KL (default 0: BCE only, DASP Eq. 5; 1 gives BerDiff's
    /// L_KL + L_BCE). See <see cref="BernoulliDiffusion.Loss"/>.
    /// </summary>
    public double KlWeight { get; set; }

    /// <summary>Training epochs (default 50).</summary>
    public int Epochs { get; set; } = 50;

    /// <summary>Batch size (default 16, as DASP). The last, smaller batch of an epoch is kept.</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>
    /// Adam learning rate (default 2e-3; BerDiff uses 1e-4 for long GPU runs). For the short CPU runs the defaults are
    /// sized for (a few hundred steps) it matters: on the 64 px Kvasir sample, 150 steps at 2e-3 give separated blobs
    /// on a clean background where 240 steps at 5e-4 still leave most of the initial noise.
    /// </summary>
    public double LearningRate { get; set; } = 2e-3;

    /// <summary>
    /// Decay of the exponential moving average of the weights that samples are drawn with (default 0.9999, as the
    /// issue and guided-diffusion); 0 samples with the last weights.
    /// </summary>
    public double EmaDecay { get; set; } = 0.9999;

    /// <summary>
    /// Warm the average up: the update after k earlier ones uses decay min(<see cref="EmaDecay"/>, (1 + k)/(10 + k))
    /// (<see cref="Core.Training.ExponentialMovingAverage.WarmupDecay"/>, shared with the image diffusion) (default true), so that
    /// short runs (a few hundred steps) are not sampled from weights still near their initial values.
    /// </summary>
    public bool EmaWarmup { get; set; } = true;

    /// <summary>Reverse steps used to sample: the T-step schedule respaced to this many steps (default 50; T = full DDPM-like chain).</summary>
    public int SampleSteps { get; set; } = 50;

    /// <summary>
    /// What the last reverse step returns: the network's ŷ_0 thresholded at 0.5 (default
    /// <see cref="BernoulliFinalStep.Threshold"/>: binary {0, 1} masks, BerDiff's last step) or as a probability map
    /// (<see cref="BernoulliFinalStep.Mean"/>; the image diffusion and the generated training pairs binarise such masks at
    /// 0.5 where they consume them as binary).
    /// </summary>
    public BernoulliFinalStep FinalStep { get; set; } = BernoulliFinalStep.Threshold;

    /// <summary>
    /// Generated masks per input row, k (default 1). The fitted transformer's output has k rows per input row (see
    /// <see cref="MaskDiffusionTransformer"/>), told apart by <see cref="SampleIndexColumn"/>.
    /// </summary>
    public int SamplesPerRow { get; set; } = 1;

    /// <summary>Masks sampled at once by the fitted transformer (default 16). Does not change the results.</summary>
    public int SampleBatchSize { get; set; } = 16;

    /// <summary>The training masks: float32 [1,H,W] in {0, 1} (default "Mask").</summary>
    public string MaskColumn { get; set; } = "Mask";

    /// <summary>
    /// Optional image condition, float32 [C,H,W] of the masks' size, concatenated to y_t on the channel axis
    /// (BerDiff's segmentation use; default null: unconditional, as DASP). The fitted transformer then reads this
    /// column to generate.
    /// </summary>
    public string? ConditionColumn { get; set; }

    /// <summary>Output column of the generated masks, float32 [1,H,W] (default "SyntheticMask").</summary>
    public string OutputColumn { get; set; } = "SyntheticMask";

    /// <summary>Output Number column: which of the k samples of its input row an output row holds, 0..k−1 (default "SampleIndex").</summary>
    public string SampleIndexColumn { get; set; } = "SampleIndex";

    /// <summary>
    /// Folder for sample grids (PNG, masks white on black, <see cref="SampleGridCount"/> per grid): written every
    /// <see cref="SampleGridEvery"/> epochs as <c>epoch-NNNN.png</c> and after training as <c>final.png</c>
    /// (default null: none). Each grid uses the same seeds, so grids of successive epochs are comparable.
    /// </summary>
    public string? SampleGridFolder { get; set; }

    /// <summary>Epochs between sample grids (default 0: only the final grid).</summary>
    public int SampleGridEvery { get; set; }

    /// <summary>Masks per sample grid (default 16, drawn as a 4×4 grid).</summary>
    public int SampleGridCount { get; set; } = 16;

    /// <summary>
    /// Folder for a resume checkpoint written after every epoch (default null: none). A Fit finding one there
    /// continues after its last epoch — the same result as an uninterrupted run — provided the options (other than
    /// <c>Epochs</c>, the folders and the callbacks), the context's seed and the device are those it was written with.
    /// </summary>
    [JsonIgnore]
    public string? CheckpointFolder { get; set; }

    /// <summary>Called after every completed epoch. Not saved.</summary>
    [JsonIgnore]
    public Action<MaskDiffusionEpochRecord>? EpochCompleted { get; set; }

    /// <summary>A copy (the network options copied too).</summary>
    public MaskDiffusionOptions Clone()
    {
        var c = (MaskDiffusionOptions)MemberwiseClone();
        c.Network = Network.Clone();
        return c;
    }

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (CheckpointFolder is "") throw new ArgumentException("CheckpointFolder must be null or a folder", nameof(CheckpointFolder));
        if (Network is null) throw new ArgumentException("Network options are required", nameof(Network));
        if (Steps < 1) throw new ArgumentException($"Steps must be ≥ 1, got {Steps}", nameof(Steps));
        if (!Enum.IsDefined(Schedule)) throw new ArgumentException($"unknown Schedule {Schedule}", nameof(Schedule));
        if (!Enum.IsDefined(Parameterization)) throw new ArgumentException($"unknown Parameterization {Parameterization}", nameof(Parameterization));
        if (!Enum.IsDefined(FinalStep)) throw new ArgumentException($"unknown FinalStep {FinalStep}", nameof(FinalStep));
        if (!double.IsFinite(KlWeight) || KlWeight < 0) throw new ArgumentException($"KlWeight must be ≥ 0, got {KlWeight}", nameof(KlWeight));
        if (Epochs < 1) throw new ArgumentException($"Epochs must be ≥ 1, got {Epochs}", nameof(Epochs));
        if (BatchSize < 1) throw new ArgumentException($"BatchSize must be ≥ 1, got {BatchSize}", nameof(BatchSize));
        if (!double.IsFinite(LearningRate) || LearningRate <= 0) throw new ArgumentException($"LearningRate must be > 0, got {LearningRate}", nameof(LearningRate));
        if (!(EmaDecay >= 0 && EmaDecay < 1)) throw new ArgumentException($"EmaDecay must be in [0, 1), got {EmaDecay}", nameof(EmaDecay));
        if (SampleSteps < 1 || SampleSteps > Steps) throw new ArgumentException($"SampleSteps must be in 1..Steps ({Steps}), got {SampleSteps}", nameof(SampleSteps));
        if (SamplesPerRow < 1) throw new ArgumentException($"SamplesPerRow must be ≥ 1, got {SamplesPerRow}", nameof(SamplesPerRow));
        if (SampleBatchSize < 1) throw new ArgumentException($"SampleBatchSize must be ≥ 1, got {SampleBatchSize}", nameof(SampleBatchSize));
        foreach (var (v, n) in new[] { (MaskColumn, nameof(MaskColumn)), (OutputColumn, nameof(OutputColumn)), (SampleIndexColumn, nameof(SampleIndexColumn)) })
            if (string.IsNullOrEmpty(v)) throw new ArgumentException($"{n} must be a column name", n);
        if (ConditionColumn is "") throw new ArgumentException("ConditionColumn must be null or a column name", nameof(ConditionColumn));
        if (OutputColumn == SampleIndexColumn) throw new ArgumentException("OutputColumn and SampleIndexColumn must differ", nameof(SampleIndexColumn));
        if (SampleGridFolder is "") throw new ArgumentException("SampleGridFolder must be null or a folder", nameof(SampleGridFolder));
        if (SampleGridEvery < 0) throw new ArgumentException($"SampleGridEvery must be ≥ 0, got {SampleGridEvery}", nameof(SampleGridEvery));
        if (SampleGridCount < 1) throw new ArgumentException($"SampleGridCount must be ≥ 1, got {SampleGridCount}", nameof(SampleGridCount));
        var net = NetworkFor(ConditionColumn is null ? 0 : Math.Max(1, Network.ConditionChannels));
        net.Validate();
    }

    /// <summary>The network options with the mask diffusion's fixed channels (1 in, 1 out, the condition's).</summary>
    internal DiffusionUNetOptions NetworkFor(int conditionChannels)
    {
        var n = Network.Clone();
        n.InChannels = 1;
        n.OutChannels = 1;
        n.ConditionChannels = conditionChannels;
        return n;
    }
}

/// <summary>What one training epoch of the mask diffusion did.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="Loss">Mean training loss (BCE + w·KL) over the epoch's batches.</param>
/// <param name="Bce">Mean BCE term.</param>
/// <param name="Kl">Mean KL term, or null when its weight is 0.</param>
/// <param name="Seconds">Wall time of the epoch (with its sample grid, if any).</param>
public sealed record MaskDiffusionEpochRecord(int Epoch, double Loss, double Bce, double? Kl, double Seconds);

/// <summary>What a fitted mask diffusion model saves and samples with (written as JSON into the model).</summary>
public sealed class MaskDiffusionModelOptions
{
    /// <summary>The network (1 in, 1 out, the condition's channels).</summary>
    public DiffusionUNetOptions Network { get; set; } = new();

    /// <summary>T of the training schedule.</summary>
    public int Steps { get; set; } = 1000;

    /// <summary>The β schedule.</summary>
    public BetaScheduleKind Schedule { get; set; } = BetaScheduleKind.Cosine;

    /// <summary>What the network predicts.</summary>
    public BernoulliParameterization Parameterization { get; set; }

    /// <summary>Respaced sampling steps.</summary>
    public int SampleSteps { get; set; } = 50;

    /// <summary>Last reverse step: mean or threshold.</summary>
    public BernoulliFinalStep FinalStep { get; set; } = BernoulliFinalStep.Threshold;

    /// <summary>Generated masks per input row (k).</summary>
    public int SamplesPerRow { get; set; } = 1;

    /// <summary>Masks sampled at once.</summary>
    public int SampleBatchSize { get; set; } = 16;

    /// <summary>Mask height the model was trained on.</summary>
    public int Height { get; set; }

    /// <summary>Mask width the model was trained on.</summary>
    public int Width { get; set; }

    /// <summary>Image condition column (null: unconditional).</summary>
    public string? ConditionColumn { get; set; }

    /// <summary>Output mask column.</summary>
    public string OutputColumn { get; set; } = "SyntheticMask";

    /// <summary>Output sample-index column.</summary>
    public string SampleIndexColumn { get; set; } = "SampleIndex";

    /// <summary>
    /// The seed every generated mask's noise is derived from: sample j of input row r draws from a generator seeded with
    /// <c>MedSegContext.MixSeed(Seed, "row " + r, j)</c>.
    /// </summary>
    public ulong Seed { get; set; }

    /// <summary>A copy.</summary>
    public MaskDiffusionModelOptions Clone()
    {
        var c = (MaskDiffusionModelOptions)MemberwiseClone();
        c.Network = Network.Clone();
        return c;
    }

    internal void Validate()
    {
        Network.Validate();
        if (Network.InChannels != 1 || Network.OutChannels != 1)
            throw new ArgumentException($"the mask network must have 1 input and 1 output channel, got {Network.InChannels} → {Network.OutChannels}", nameof(Network));
        if ((ConditionColumn is null) != (Network.ConditionChannels == 0))
            throw new ArgumentException($"ConditionColumn ({ConditionColumn ?? "null"}) and the network's ConditionChannels ({Network.ConditionChannels}) disagree", nameof(ConditionColumn));
        if (Steps < 1 || SampleSteps < 1 || SampleSteps > Steps) throw new ArgumentException($"SampleSteps {SampleSteps} must be in 1..Steps ({Steps})", nameof(SampleSteps));
        if (!Enum.IsDefined(Schedule) || !Enum.IsDefined(Parameterization) || !Enum.IsDefined(FinalStep))
            throw new ArgumentException("unknown Schedule, Parameterization or FinalStep", nameof(Schedule));
        if (SamplesPerRow < 1) throw new ArgumentException($"SamplesPerRow must be ≥ 1, got {SamplesPerRow}", nameof(SamplesPerRow));
        if (SampleBatchSize < 1) throw new ArgumentException($"SampleBatchSize must be ≥ 1, got {SampleBatchSize}", nameof(SampleBatchSize));
        long f = 1L << (Network.Levels - 1);
        if (Height < 1 || Width < 1 || Height % f != 0 || Width % f != 0)
            throw new ArgumentException($"the mask size {Height}×{Width} must be positive and divisible by 2^(levels − 1) = {f}", nameof(Height));
        if (string.IsNullOrEmpty(OutputColumn) || string.IsNullOrEmpty(SampleIndexColumn) || OutputColumn == SampleIndexColumn)
            throw new ArgumentException("OutputColumn and SampleIndexColumn must be two different column names", nameof(OutputColumn));
    }
}
