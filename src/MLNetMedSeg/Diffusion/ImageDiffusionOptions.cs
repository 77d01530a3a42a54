using System.Text.Json.Serialization;
using MLNetMedSeg.Diffusion.Networks;

namespace MLNetMedSeg.Diffusion;

/// <summary>
/// Options of the mask-conditioned image diffusion stage (DASP §3.2, Eq. 6–8; the image model DASP follows, [8]
/// = Dhariwal &amp; Nichol's ADM). Plain and JSON-serialisable: the fitted model saves them. The defaults train a
/// 1.19 M-parameter network (3 image + 1 mask channels) on 64×64 data in minutes per epoch on a CPU; the papers' 128–256 px configurations are a
/// matter of <see cref="Network"/> widths, <see cref="Epochs"/> and a GPU.
/// </summary>
public sealed class ImageDiffusionOptions
{
    /// <summary>
    /// The ε-network. Its InChannels/OutChannels are set to the image's channels and ConditionChannels to 1 (the mask,
    /// concatenated to x_t) when fitting; <see cref="DiffusionUNetOptions.ImageSize"/> is set to the training images'
    /// height. Default: BaseChannels 32, multipliers [1, 2, 2], one block per level, attention at 16 px, 8 groups.
    /// </summary>
    public DiffusionUNetOptions Network { get; set; } = new();

    /// <summary>Image channels (3 for RGB endoscopy, the default).</summary>
    public int ImageChannels { get; set; } = 3;

    /// <summary>β schedule of the forward process (Eq. 6). Default linear (DDPM's 1e-4 → 0.02).</summary>
    public BetaScheduleKind Schedule { get; set; } = BetaScheduleKind.Linear;

    /// <summary>Number of diffusion steps T′ (Eq. 6). Default 1000 (DDPM, ADM).</summary>
    public int TimeSteps { get; set; } = 1000;

    /// <summary>Training epochs. Default 20 (a CPU-sized run at 64 px; the papers train for days on GPUs).</summary>
    public int Epochs { get; set; } = 20;

    /// <summary>Images per training step. Default 8 (CPU-friendly; ADM uses 256 on GPUs).</summary>
    public int BatchSize { get; set; } = 8;

    /// <summary>Adam learning rate. Default 1e-4 (ADM's; DASP's image model follows [8]).</summary>
    public double LearningRate { get; set; } = 1e-4;

    /// <summary>EMA rate of the weights used for sampling and saved (Ho et al., ADM: 0.9999). Default 0.9999.</summary>
    public double EmaDecay { get; set; } = 0.9999;

    /// <summary>
    /// EMA warm-up: the update after k earlier ones uses decay min(<see cref="EmaDecay"/>, (1 + k)/(10 + k))
    /// (<see cref="Core.Training.ExponentialMovingAverage.WarmupDecay"/>, shared with the mask diffusion), so that the average follows the
    /// weights early on and a short CPU run (a few thousand steps, where 0.9999 would still be mostly the random
    /// initialisation) gives usable samples; long runs converge to the plain EMA. Default true; false = the plain EMA
    /// from step 1.
    /// </summary>
    public bool EmaWarmup { get; set; } = true;

    /// <summary>
    /// Probability of replacing a training sample's mask condition by the null condition (zeros) for classifier-free
    /// guidance (Ho &amp; Salimans: 0.1–0.2). Default 0 (no guidance training).
    /// </summary>
    public double ConditionDropout { get; set; }

    /// <summary>Classifier-free guidance weight w at sampling (needs <see cref="ConditionDropout"/> &gt; 0 in training). Default 0.</summary>
    public double GuidanceScale { get; set; }

    /// <summary>Sampler used by the transformer and the sample grids. Default DDIM.</summary>
    public GaussianSamplerKind Sampler { get; set; } = GaussianSamplerKind.Ddim;

    /// <summary>Respaced sampling steps (1..TimeSteps). Default 50 (DDIM's usual budget).</summary>
    public int SampleSteps { get; set; } = 50;

    /// <summary>DDIM η (0 = deterministic given the initial noise). Default 0.</summary>
    public double Eta { get; set; }

    /// <summary>Training image column, float32 [C,H,W] in [0,1] (default "Image").</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>Training mask column, float32 [1,H,W] in {0,1} (default "Mask").</summary>
    public string MaskColumn { get; set; } = "Mask";

    /// <summary>
    /// The mask column the transformer conditions on, float32 [1,H,W] {0,1} (default "Mask"; "SyntheticMask" to
    /// generate images for the mask diffusion stage's output).
    /// </summary>
    public string ConditionColumn { get; set; } = "Mask";

    /// <summary>Generated image column added by the transformer, float32 [C,H,W] in [0,1] (default "SyntheticImage").</summary>
    public string OutputColumn { get; set; } = "SyntheticImage";

    /// <summary>Rows the transformer samples at once (default 8). Results do not depend on it (noise is seeded per row).</summary>
    public int TransformBatchSize { get; set; } = 8;

    /// <summary>Folder for sample grids (PNG rows of mask | generated image); null (the default) writes none.</summary>
    public string? SampleGridFolder { get; set; }

    /// <summary>Write a grid every this many epochs (and always after training); 0 = only after training. Default 0.</summary>
    public int SampleGridEvery { get; set; }

    /// <summary>Masks (the first rows of the training data) per grid. Default 8.</summary>
    public int SampleGridCount { get; set; } = 8;

    /// <summary>
    /// Folder for a resume checkpoint written after every epoch (default null: none). A Fit finding one there
    /// continues after its last epoch — the same result as an uninterrupted run — provided the options (other than
    /// <c>Epochs</c>, the folders and the callbacks), the context's seed and the device are those it was written with.
    /// Not saved with the model.
    /// </summary>
    [JsonIgnore]
    public string? CheckpointFolder { get; set; }

    /// <summary>Called after every completed epoch. Not saved.</summary>
    [JsonIgnore]
    public Action<ImageDiffusionEpochRecord>? EpochCompleted { get; set; }

    /// <summary>
    /// Seed of the transformer's per-row noise (row r uses a generator seeded from (SamplingSeed, r)). Null (the
    /// default) derives it from the context's seed when the estimator is created; the fitted model saves the value used.
    /// </summary>
    public ulong? SamplingSeed { get; set; }

    /// <summary>A deep copy.</summary>
    public ImageDiffusionOptions Clone()
    {
        var c = (ImageDiffusionOptions)MemberwiseClone();
        c.Network = Network.Clone();
        return c;
    }

    /// <summary>The sampling settings of these options.</summary>
    public GaussianSamplingOptions SamplingOptions() => new()
    {
        Sampler = Sampler, Steps = SampleSteps, Eta = Eta, GuidanceScale = GuidanceScale,
    };

    /// <summary>The network options with the channels this stage uses (image in and out, one mask channel).</summary>
    public DiffusionUNetOptions ResolvedNetwork(int? imageSize = null)
    {
        var n = Network.Clone();
        n.InChannels = ImageChannels;
        n.OutChannels = ImageChannels;
        n.ConditionChannels = 1;
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
        if (BatchSize < 1) throw new ArgumentException($"BatchSize must be ≥ 1, got {BatchSize}", nameof(BatchSize));
        if (!(LearningRate > 0)) throw new ArgumentException($"LearningRate must be > 0, got {LearningRate}", nameof(LearningRate));
        if (!(EmaDecay >= 0 && EmaDecay < 1)) throw new ArgumentException($"EmaDecay must be in [0, 1), got {EmaDecay}", nameof(EmaDecay));
        if (!(ConditionDropout >= 0 && ConditionDropout < 1))
            throw new ArgumentException($"ConditionDropout must be in [0, 1), got {ConditionDropout}", nameof(ConditionDropout));
        SamplingOptions().Validate(TimeSteps);
        foreach (var (name, v) in new[] { (nameof(ImageColumn), ImageColumn), (nameof(MaskColumn), MaskColumn), (nameof(ConditionColumn), ConditionColumn), (nameof(OutputColumn), OutputColumn) })
            if (string.IsNullOrEmpty(v)) throw new ArgumentException($"{name} must be a column name", name);
        if (TransformBatchSize < 1) throw new ArgumentException($"TransformBatchSize must be ≥ 1, got {TransformBatchSize}", nameof(TransformBatchSize));
        if (SampleGridEvery < 0) throw new ArgumentException($"SampleGridEvery must be ≥ 0, got {SampleGridEvery}", nameof(SampleGridEvery));
        if (SampleGridCount < 1) throw new ArgumentException($"SampleGridCount must be ≥ 1, got {SampleGridCount}", nameof(SampleGridCount));
    }
}
