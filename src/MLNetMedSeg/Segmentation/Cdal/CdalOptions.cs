namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>
/// Options of cDAL, the conditional diffusion segmenter with discriminator attention and latent embedding (Hejrati et
/// al., paper 003): a Gaussian label diffusion with very few steps whose generator x_θ(x_t, t, z, I) predicts the clean
/// label x̂₀ from the noisy label x_t, the timestep, a random latent z and the image I; a time-step discriminator D tells
/// real (x_{t−1}, x_t) pairs from ones whose x̂_{t−1} is drawn from the posterior q(x_{t−1} | x_t, x̂₀); D's feature maps
/// give the spatial attention that weighs the label the generator learns from (§2.2, Algorithm 1).
/// <para>
/// A plain, JSON-serialisable class. The defaults are the paper's chest X-ray (CXR) configuration: T = 2, β ∈ [0.1, 20]
/// (Algorithm 1), L = 100, 5 samples averaged (§3.2), 16×16 attention (Table 1's best CXR row), 256² images, and the
/// public code's network and optimiser settings (Hejrati/cDAL <c>parameters_lung.json</c>: a 32-channel NCSN++-style
/// U-Net with multipliers 1,1,2,2,4,4, one residual block per level, self-attention at 16², a 6-block image encoder,
/// a 256-d latent embedding through a 3-layer mapping network, a discriminator of width 64, Adam with lr 2e-4 / 1e-5 and
/// betas (0.5, 0.9), R1 = 1 every step). For MoNuSeg the paper uses T = 4 and 32×32 attention. Tests and CPU runs
/// shrink the networks (<see cref="BaseChannels"/>, <see cref="ChannelMultipliers"/>, ...).
/// </para>
/// </summary>
public sealed class CdalOptions
{
    // ---- diffusion (Algorithms 1–2) ----

    /// <summary>Diffusion steps T (paper: T ≤ 4; 2 for CXR and Hippocampus, 4 for MoNuSeg). Default 2.</summary>
    public int Timesteps { get; set; } = 2;

    /// <summary>β_min of Algorithm 1's closed-form schedule (default 0.1).</summary>
    public double BetaMin { get; set; } = 0.1;

    /// <summary>β_max of Algorithm 1's closed-form schedule (default 20).</summary>
    public double BetaMax { get; set; } = 20;

    // ---- labels and images ----

    /// <summary>
    /// 1 for binary segmentation (masks float32 [N,1,H,W] in {0,1}, one label channel; the default), or C + 1 for C
    /// foreground classes plus background (masks int64 [N,H,W] of class indices, diffused as C + 1 one-hot channels, as
    /// the paper's Hippocampus runs).
    /// </summary>
    public int Classes { get; set; } = 1;

    /// <summary>Channels of the conditioning image (default 3, RGB in [0,1]).</summary>
    public int ImageChannels { get; set; } = 3;

    /// <summary>
    /// The side of the square training images (default 256, the paper's). It fixes the discriminator's depth (it halves
    /// the resolution down to 4×4 or the last even size ≥ 4) and which of its feature maps <see cref="AttentionScale"/>
    /// names; the generator is fully convolutional.
    /// </summary>
    public int ImageSize { get; set; } = 256;

    // ---- the paper's switches ----

    /// <summary>
    /// Random latent embedding (§2.3): z ~ N(0, I) of <see cref="LatentDim"/> fed to every generator layer. False = Table 1's
    /// "w/o Latent" row (z ≡ 0: the generator becomes a deterministic function of x_t, t and I). Default true.
    /// </summary>
    public bool UseLatent { get; set; } = true;

    /// <summary>
    /// Discriminator spatial attention (§2.2): the generator learns from x_t^att = q(x₀ ⊙ A_D, t). False = Table 1's
    /// "w/o Attention" row (x_t = q(x₀, t)). Default true.
    /// </summary>
    public bool UseAttention { get; set; } = true;

    /// <summary>
    /// Resolution (at <see cref="ImageSize"/>) of the discriminator feature maps whose channel mean is the attention map
    /// A_D: 16, 32 or 64 in Table 1 (best: 16 for CXR, 32 for MoNuSeg). It must be ImageSize / 2^k for one of the
    /// discriminator's levels k (0 = its first 1×1 conv at full resolution). Default 16.
    /// </summary>
    public int AttentionScale { get; set; } = 16;

    /// <summary>Dimension L of the latent z (the code's <c>nz</c>; default 100).</summary>
    public int LatentDim { get; set; } = 100;

    /// <summary>Width of the latent embedding that modulates every adaptive group norm (the code's <c>z_emb_dim</c>; default 256).</summary>
    public int LatentEmbeddingDim { get; set; } = 256;

    /// <summary>Hidden layers of the latent mapping network after its first (the code's <c>n_mlp</c>; default 3).</summary>
    public int MappingLayers { get; set; } = 3;

    // ---- sampling (Algorithm 2) ----

    /// <summary>Samples drawn per image and averaged (§3.2, following SegDiff; default 5).</summary>
    public int Samples { get; set; } = 5;

    /// <summary>Threshold on the averaged binary probability (default 0.5: the code rounds the mean).</summary>
    public double Threshold { get; set; } = 0.5;

    // ---- generator network ----

    /// <summary>Base width of the generator U-Net (the code's <c>num_channels_dae</c>: 32 CXR, 64 MoNuSeg; default 32).</summary>
    public int BaseChannels { get; set; } = 32;

    /// <summary>Width multipliers per U-Net level; the image side must be divisible by 2^(levels − 1) (default 1,1,2,2,4,4).</summary>
    public int[] ChannelMultipliers { get; set; } = [1, 1, 2, 2, 4, 4];

    /// <summary>Residual blocks per encoder level (the decoder has one more; default 1).</summary>
    public int ResBlocksPerLevel { get; set; } = 1;

    /// <summary>Feature-map sides (at <see cref="ImageSize"/>) where the generator has self-attention (default 16; the middle block always has it).</summary>
    public int[] SelfAttentionResolutions { get; set; } = [16];

    /// <summary>Residual blocks of the image encoder (the code's cond_enc_layers × cond_enc_num_res_blocks = 3 × 2; default 6).</summary>
    public int ConditionEncoderBlocks { get; set; } = 6;

    /// <summary>Dropout inside the generator's residual blocks (default 0).</summary>
    public double Dropout { get; set; }

    // ---- discriminator network ----

    /// <summary>Discriminator width ngf: its levels have 2, 4, 8, 8, … × ngf channels (default 64).</summary>
    public int DiscriminatorChannels { get; set; } = 64;

    /// <summary>Width of the discriminator's sinusoidal time embedding and its MLP (the code's <c>t_emb_dim</c>; default 256).</summary>
    public int DiscriminatorTimeEmbeddingDim { get; set; } = 256;

    // ---- optimisation (Algorithm 1; the code's defaults) ----

    /// <summary>Generator learning rate (Adam; default 2e-4).</summary>
    public double GeneratorLearningRate { get; set; } = 2e-4;

    /// <summary>Discriminator learning rate (Adam; default 1e-5 as the code's CXR runs, 1e-4 for MoNuSeg).</summary>
    public double DiscriminatorLearningRate { get; set; } = 1e-5;

    /// <summary>Adam β₁ of both optimisers (default 0.5).</summary>
    public double AdamBeta1 { get; set; } = 0.5;

    /// <summary>Adam β₂ of both optimisers (default 0.9).</summary>
    public double AdamBeta2 { get; set; } = 0.9;

    /// <summary>
    /// Weight γ of the R1 penalty γ/2 · E‖∇_{x_{t−1}} D(x_{t−1}, x_t, t)‖² on real pairs, the regulariser of the paper's
    /// code (DDGAN's; default 1; 0 turns it off).
    /// </summary>
    public double R1Gamma { get; set; } = 1;

    /// <summary>Apply R1 every this many discriminator steps (the code's <c>lazy_reg</c>: none = 1 for CXR, 10 for MoNuSeg; default 1).</summary>
    public int R1Interval { get; set; } = 1;

    /// <summary>
    /// Weight of a non-saturating adversarial term softplus(−D(x̂_{t−1}, x_t, t)) in the generator's loss. Default 0:
    /// Algorithm 1 (and the public code) update the generator with Eq. 4's ‖x₀ − x_θ(x_t^att, t, z, I)‖² alone; the
    /// discriminator reaches the generator only through the attention map. A positive value adds the denoising
    /// diffusion GAN's generator term (an extension, not the paper's).
    /// </summary>
    public double AdversarialWeight { get; set; }

    /// <summary>The number of label channels diffused: 1 (binary) or <see cref="Classes"/> (one-hot).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int LabelChannels => Classes == 1 ? 1 : Classes;

    /// <summary>The discriminator's number of stride-2 levels: halvings of <see cref="ImageSize"/> while the result stays even-sized and ≥ 4.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int DiscriminatorLevels
    {
        get
        {
            int levels = 0, s = ImageSize;
            while (s % 2 == 0 && s / 2 >= 4) { s /= 2; levels++; }
            return levels;
        }
    }

    /// <summary>The discriminator level whose features give the attention map: k with ImageSize / 2^k = <see cref="AttentionScale"/>.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int AttentionLevel
    {
        get
        {
            for (int k = 0, s = ImageSize; k <= DiscriminatorLevels; k++, s /= 2)
                if (s == AttentionScale) return k;
            return -1;
        }
    }

    /// <summary>A deep copy.</summary>
    public CdalOptions Clone()
    {
        var c = (CdalOptions)MemberwiseClone();
        c.ChannelMultipliers = [.. ChannelMultipliers];
        c.SelfAttentionResolutions = [.. SelfAttentionResolutions];
        return c;
    }

    /// <summary>Checks every option; the exception names the first invalid one.</summary>
    /// <exception cref="ArgumentException">An option is out of range.</exception>
    public void Validate()
    {
        if (Timesteps < 1) throw new ArgumentException($"Timesteps must be ≥ 1 (the paper uses 2 or 4), got {Timesteps}", nameof(Timesteps));
        if (!(BetaMin > 0) || !double.IsFinite(BetaMin)) throw new ArgumentException($"BetaMin must be > 0, got {BetaMin}", nameof(BetaMin));
        if (!(BetaMax >= BetaMin) || !double.IsFinite(BetaMax)) throw new ArgumentException($"BetaMax must be finite and ≥ BetaMin ({BetaMin}), got {BetaMax}", nameof(BetaMax));
        if (Classes < 1) throw new ArgumentException($"Classes must be ≥ 1 (1 = binary, C + 1 = multi-class), got {Classes}", nameof(Classes));
        if (ImageChannels < 1) throw new ArgumentException($"ImageChannels must be ≥ 1, got {ImageChannels}", nameof(ImageChannels));
        if (ImageSize < 8) throw new ArgumentException($"ImageSize must be ≥ 8, got {ImageSize}", nameof(ImageSize));
        if (DiscriminatorLevels < 1)
            throw new ArgumentException($"ImageSize {ImageSize} must be even and ≥ 8 (the discriminator halves it at least once)", nameof(ImageSize));
        if (AttentionLevel < 0)
        {
            var allowed = Enumerable.Range(0, DiscriminatorLevels + 1).Select(k => ImageSize >> k);
            throw new ArgumentException(
                $"AttentionScale {AttentionScale} is not a discriminator feature resolution at ImageSize {ImageSize}; use one of {string.Join(", ", allowed)}",
                nameof(AttentionScale));
        }
        if (LatentDim < 1) throw new ArgumentException($"LatentDim must be ≥ 1, got {LatentDim}", nameof(LatentDim));
        if (LatentEmbeddingDim < 1) throw new ArgumentException($"LatentEmbeddingDim must be ≥ 1, got {LatentEmbeddingDim}", nameof(LatentEmbeddingDim));
        if (MappingLayers < 0) throw new ArgumentException($"MappingLayers must be ≥ 0, got {MappingLayers}", nameof(MappingLayers));
        if (Samples < 1) throw new ArgumentException($"Samples must be ≥ 1, got {Samples}", nameof(Samples));
        if (!(Threshold is > 0 and < 1)) throw new ArgumentException($"Threshold must be in (0, 1), got {Threshold}", nameof(Threshold));
        if (BaseChannels < 4 || BaseChannels % 4 != 0)
            throw new ArgumentException($"BaseChannels must be a positive multiple of 4 (group norms use min(C/4, 32) groups), got {BaseChannels}", nameof(BaseChannels));
        if (ChannelMultipliers is null || ChannelMultipliers.Length == 0 || ChannelMultipliers.Any(m => m < 1))
            throw new ArgumentException("ChannelMultipliers needs at least one value, each ≥ 1", nameof(ChannelMultipliers));
        if (ImageSize % (1 << (ChannelMultipliers.Length - 1)) != 0)
            throw new ArgumentException(
                $"ImageSize {ImageSize} must be divisible by 2^(levels − 1) = {1 << (ChannelMultipliers.Length - 1)} ({ChannelMultipliers.Length} ChannelMultipliers)", nameof(ChannelMultipliers));
        if (ResBlocksPerLevel < 1) throw new ArgumentException($"ResBlocksPerLevel must be ≥ 1, got {ResBlocksPerLevel}", nameof(ResBlocksPerLevel));
        if (SelfAttentionResolutions is null) throw new ArgumentException("SelfAttentionResolutions must not be null (use an empty array)", nameof(SelfAttentionResolutions));
        if (ConditionEncoderBlocks < 0) throw new ArgumentException($"ConditionEncoderBlocks must be ≥ 0, got {ConditionEncoderBlocks}", nameof(ConditionEncoderBlocks));
        if (Dropout is < 0 or >= 1) throw new ArgumentException($"Dropout must be in [0, 1), got {Dropout}", nameof(Dropout));
        if (DiscriminatorChannels < 1) throw new ArgumentException($"DiscriminatorChannels must be ≥ 1, got {DiscriminatorChannels}", nameof(DiscriminatorChannels));
        if (DiscriminatorTimeEmbeddingDim < 2 || DiscriminatorTimeEmbeddingDim % 2 != 0)
            throw new ArgumentException($"DiscriminatorTimeEmbeddingDim must be even and ≥ 2, got {DiscriminatorTimeEmbeddingDim}", nameof(DiscriminatorTimeEmbeddingDim));
        if (!(GeneratorLearningRate > 0)) throw new ArgumentException($"GeneratorLearningRate must be > 0, got {GeneratorLearningRate}", nameof(GeneratorLearningRate));
        if (!(DiscriminatorLearningRate > 0)) throw new ArgumentException($"DiscriminatorLearningRate must be > 0, got {DiscriminatorLearningRate}", nameof(DiscriminatorLearningRate));
        if (AdamBeta1 is < 0 or >= 1) throw new ArgumentException($"AdamBeta1 must be in [0, 1), got {AdamBeta1}", nameof(AdamBeta1));
        if (AdamBeta2 is < 0 or >= 1) throw new ArgumentException($"AdamBeta2 must be in [0, 1), got {AdamBeta2}", nameof(AdamBeta2));
        if (!(R1Gamma >= 0)) throw new ArgumentException($"R1Gamma must be ≥ 0, got {R1Gamma}", nameof(R1Gamma));
        if (R1Interval < 1) throw new ArgumentException($"R1Interval must be ≥ 1, got {R1Interval}", nameof(R1Interval));
        if (!(AdversarialWeight >= 0)) throw new ArgumentException($"AdversarialWeight must be ≥ 0, got {AdversarialWeight}", nameof(AdversarialWeight));
    }
}
