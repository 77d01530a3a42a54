using System.Text.Json.Serialization;
using MLNetMedSeg.Diffusion.Networks;

namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>
/// Options of the joint image + mask diffusion stage (paper 004, Saragih et al., §3.2 and §4.1: an unconditional
/// Gaussian diffusion model whose input has the mask as a 4th channel, so that image and mask are generated together —
/// Thambawita et al.'s trick — trained on all data or one model per cluster). Plain and JSON-serialisable: the fitted
/// model saves them. The defaults are CPU-sized (the image diffusion stage's small ADM U-Net, 64 px data, minutes per
/// epoch); <see cref="PaperPreset"/> gives Table A.1's GPU-scale settings.
/// </summary>
public sealed class JointDiffusionOptions
{
    /// <summary>
    /// The ε-network (the ADM U-Net of the image diffusion stage). Its InChannels and OutChannels are set to
    /// <see cref="ImageChannels"/> + 1 (Table A.1's in_channels 4 for RGB) and ConditionChannels to 0 when fitting;
    /// <see cref="DiffusionUNetOptions.ImageSize"/> to the training images' height. Default: BaseChannels 32,
    /// multipliers [1, 2, 2], one block per level, attention at 16 px, 8 groups (Table A.1: num_channels 256,
    /// num_res_blocks 2, attention_resolutions 16, 8, num_head_channels 64; see <see cref="PaperPreset"/>).
    /// </summary>
    public DiffusionUNetOptions Network { get; set; } = new();

    /// <summary>Image channels (3 for RGB endoscopy, the default); the network diffuses these plus the mask channel.</summary>
    public int ImageChannels { get; set; } = 3;

    /// <summary>β schedule (Table A.1 noise_schedule: "linear", the default).</summary>
    public BetaScheduleKind Schedule { get; set; } = BetaScheduleKind.Linear;

    /// <summary>Diffusion steps T (Table A.1 diffusion_steps: 1000, the default).</summary>
    public int TimeSteps { get; set; } = 1000;

    /// <summary>
    /// Training epochs per model (default 20, CPU-sized). The paper trains 110,000 iterations at batch size 1 (§4.1):
    /// Epochs ≈ 110,000 / rows of the cluster.
    /// </summary>
    public int Epochs { get; set; } = 20;

    /// <summary>
    /// Optimizer steps per model (null, the default: <see cref="Epochs"/> epochs each). When set, every model trains
    /// ⌈TrainingSteps / ⌈rows/BatchSize⌉⌉ epochs of its own rows instead, so that each cluster's model gets the same number
    /// of steps whatever its size — the paper trains every model 110,000 iterations (§4.1). With epochs, a 7-pair cluster
    /// at batch 8 gets one step an epoch where the 100-pair Full-Diff model gets 13. When set, <see cref="Epochs"/> is not used.
    /// </summary>
    public int? TrainingSteps { get; set; }

    /// <summary>The epochs a model with <paramref name="rows"/> training rows trains (see <see cref="TrainingSteps"/>).</summary>
    public int EpochsFor(long rows)
    {
        if (TrainingSteps is not int steps) return Epochs;
        long perEpoch = Math.Max(1, (rows + BatchSize - 1) / BatchSize);
        return (int)Math.Max(1, (steps + perEpoch - 1) / perEpoch);
    }

    /// <summary>Pairs per training step. Default 8 (CPU-friendly; Table A.1 batch_size: 1).</summary>
    public int BatchSize { get; set; } = 8;

    /// <summary>Adam learning rate (Table A.1 lr: 1e-4, the default; weight_decay 0, no annealing).</summary>
    public double LearningRate { get; set; } = 1e-4;

    /// <summary>EMA rate of the weights used for sampling and saved (guided-diffusion's 0.9999, the default).</summary>
    public double EmaDecay { get; set; } = 0.9999;

    /// <summary>
    /// EMA warm-up (min(EmaDecay, (1 + k)/(10 + k)) after k updates, as the image diffusion stage), so that short CPU
    /// runs sample with usable weights. Default true.
    /// </summary>
    public bool EmaWarmup { get; set; } = true;

    /// <summary>Sampler of the transformer (default DDIM; RePaint always uses DDPM steps).</summary>
    public GaussianSamplerKind Sampler { get; set; } = GaussianSamplerKind.Ddim;

    /// <summary>Respaced sampling steps (1..TimeSteps). Default 50 (Table A.1 timestep_respacing: 200).</summary>
    public int SampleSteps { get; set; } = 50;

    /// <summary>DDIM η (0, the default, = deterministic given the initial noise).</summary>
    public double Eta { get; set; }

    /// <summary>Training image column, float32 [C,H,W] in [0,1] or an MLImage (default "Image").</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>Training mask column, float32 [1,H,W] in {0,1} (default "Mask").</summary>
    public string MaskColumn { get; set; } = "Mask";

    /// <summary>
    /// The cluster column (text or number, e.g. "Cluster" from a clustering stage) or null (the default): one model on
    /// all the data. When set, one network is trained per distinct value (paper 004 §3.2 step 2), and the transformer
    /// samples each row's pairs from the model of the row's cluster (a value not seen in training is an error naming it).
    /// </summary>
    public string? ClusterColumnName { get; set; }

    /// <summary>Generated image column, float32 [C,H,W] in [0,1] (default "SyntheticImage").</summary>
    public string OutputImageColumn { get; set; } = "SyntheticImage";

    /// <summary>Generated mask column, float32 [1,H,W] in {0,1}: the mask channel thresholded at 0.5 (default "SyntheticMask").</summary>
    public string OutputMaskColumn { get; set; } = "SyntheticMask";

    /// <summary>Pairs drawn per input row, k (default 1): the transformer gives k rows per input row.</summary>
    public int SamplesPerRow { get; set; } = 1;

    /// <summary>Rows sampled at once by the transformer (default 8); results do not depend on it (noise is seeded per row).</summary>
    public int TransformBatchSize { get; set; } = 8;

    /// <summary>Height of the generated pairs; set from the training data when fitting (0 = not yet known).</summary>
    public int Height { get; set; }

    /// <summary>Width of the generated pairs; set from the training data when fitting (0 = not yet known).</summary>
    public int Width { get; set; }

    /// <summary>
    /// Folder for resume checkpoints written after every epoch (one subfolder per cluster model); null (the default)
    /// writes none. A Fit finding one continues after its last epoch, provided the options other than Epochs, the seed
    /// and the device are those it was written with. Not saved with the model.
    /// </summary>
    [JsonIgnore]
    public string? CheckpointFolder { get; set; }

    /// <summary>Called after every completed epoch of every model. Not saved.</summary>
    [JsonIgnore]
    public Action<JointDiffusionEpochRecord>? EpochCompleted { get; set; }

    /// <summary>
    /// Seed of the transformer's per-row noise (row r, sample j uses a generator seeded from (SamplingSeed, r, j)). Null
    /// (the default) derives it from the context's seed when the estimator is created; the fitted model saves it.
    /// </summary>
    public ulong? SamplingSeed { get; set; }

    /// <summary>
    /// Table A.1's GPU-scale settings (guided-diffusion at 256×256, 4 channels): num_channels 256 → BaseChannels 256,
    /// channel_mult "" at 256 px → [1, 1, 2, 2, 4, 4], num_res_blocks 2, attention_resolutions "16, 8" → feature maps of
    /// 16 and 8 px, num_head_channels 64, dropout 0, 32 GroupNorm groups, image_size 256; lr 1e-4, batch_size 1,
    /// diffusion_steps 1000, noise_schedule linear, timestep_respacing 200 (SampleSteps). Epochs: set it so that
    /// Epochs × rows ≈ 110,000 iterations (§4.1). Not reproduced: learn_sigma (the network predicts ε only; sampling uses
    /// the fixed posterior variance), resblock_updown (the U-Net resamples with strided / nearest + 3×3 convolutions),
    /// use_fp16 (float32). use_scale_shift_norm is the U-Net's own FiLM (GN(h)·(1 + s) + b).
    /// </summary>
    public static JointDiffusionOptions PaperPreset() => new()
    {
        Network = new DiffusionUNetOptions
        {
            BaseChannels = 256, ChannelMultipliers = [1, 1, 2, 2, 4, 4], BlocksPerLevel = 2, AttentionResolutions = [16, 8],
            HeadChannels = 64, GroupNormGroups = 32, Dropout = 0, ImageSize = 256,
        },
        ImageChannels = 3, Schedule = BetaScheduleKind.Linear, TimeSteps = 1000, LearningRate = 1e-4, BatchSize = 1,
        SampleSteps = 200, EmaDecay = 0.9999,
    };

    /// <summary>A deep copy.</summary>
    public JointDiffusionOptions Clone()
    {
        var c = (JointDiffusionOptions)MemberwiseClone();
        c.Network = Network.Clone();
        return c;
    }

    /// <summary>The sampling settings of these options.</summary>
    public GaussianSamplingOptions SamplingOptions() => new() { Sampler = Sampler, Steps = SampleSteps, Eta = Eta };

    /// <summary>The network options with this stage's channels (image + mask in and out, no condition).</summary>
    public DiffusionUNetOptions ResolvedNetwork(int? imageSize = null)
    {
        var n = Network.Clone();
        n.InChannels = ImageChannels + 1;
        n.OutChannels = ImageChannels + 1;
        n.ConditionChannels = 0;
        if (imageSize is int s) n.ImageSize = s;
        return n;
    }

    /// <summary>Checks every option; the message names the offending one.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        if (CheckpointFolder is "") throw new ArgumentException("CheckpointFolder must be null or a folder", nameof(CheckpointFolder));
        if (Network is null) throw new ArgumentException("Network must be set", nameof(Network));
        if (ImageChannels < 1) throw new ArgumentException($"ImageChannels must be ≥ 1, got {ImageChannels}", nameof(ImageChannels));
        ResolvedNetwork().Validate();
        if (!Enum.IsDefined(Schedule)) throw new ArgumentException($"unknown Schedule {Schedule}", nameof(Schedule));
        if (TimeSteps < 2) throw new ArgumentException($"TimeSteps must be ≥ 2, got {TimeSteps}", nameof(TimeSteps));
        if (Epochs < 1) throw new ArgumentException($"Epochs must be ≥ 1, got {Epochs}", nameof(Epochs));
        if (TrainingSteps is < 1) throw new ArgumentException($"TrainingSteps must be ≥ 1 (or null for Epochs), got {TrainingSteps}", nameof(TrainingSteps));
        if (BatchSize < 1) throw new ArgumentException($"BatchSize must be ≥ 1, got {BatchSize}", nameof(BatchSize));
        if (!(LearningRate > 0)) throw new ArgumentException($"LearningRate must be > 0, got {LearningRate}", nameof(LearningRate));
        if (!(EmaDecay >= 0 && EmaDecay < 1)) throw new ArgumentException($"EmaDecay must be in [0, 1), got {EmaDecay}", nameof(EmaDecay));
        SamplingOptions().Validate(TimeSteps);
        foreach (var (name, v) in new[] { (nameof(ImageColumn), ImageColumn), (nameof(MaskColumn), MaskColumn), (nameof(OutputImageColumn), OutputImageColumn), (nameof(OutputMaskColumn), OutputMaskColumn) })
            if (string.IsNullOrEmpty(v)) throw new ArgumentException($"{name} must be a column name", name);
        if (ClusterColumnName is "") throw new ArgumentException("ClusterColumnName must be null (one model) or a column name", nameof(ClusterColumnName));
        if (OutputImageColumn == OutputMaskColumn)
            throw new ArgumentException($"OutputImageColumn and OutputMaskColumn must differ, both are '{OutputImageColumn}'", nameof(OutputMaskColumn));
        if (SamplesPerRow < 1) throw new ArgumentException($"SamplesPerRow must be ≥ 1, got {SamplesPerRow}", nameof(SamplesPerRow));
        if (TransformBatchSize < 1) throw new ArgumentException($"TransformBatchSize must be ≥ 1, got {TransformBatchSize}", nameof(TransformBatchSize));
        if (Height < 0 || Width < 0) throw new ArgumentException($"Height and Width must be ≥ 0, got {Height}×{Width}", nameof(Height));
    }
}

/// <summary>One epoch of one joint diffusion model's training: its cluster (null for the single model), mean ε-MSE and wall time.</summary>
public sealed record JointDiffusionEpochRecord(string? Cluster, int Epoch, double Loss, double Seconds);
