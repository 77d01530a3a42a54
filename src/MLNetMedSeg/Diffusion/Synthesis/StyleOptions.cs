namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>Which image the content losses (ZeCon, perceptual, MSE) compare the estimate x̂₀ with.</summary>
public enum StyleContentReference
{
    /// <summary>The target x₀ (the original image), as paper 004's Appendix A.1.2 writes ℓ_ZeCon(x, x₀) — the default.</summary>
    Target,

    /// <summary>The source image (the image being styled), as ZeCon (Yang et al. 2023) uses its content losses.</summary>
    Source,
}

/// <summary>How the guidance gradient enters the reverse step (<see cref="StyleOptions.GuidanceScaling"/>).</summary>
public enum StyleGuidanceScaling
{
    /// <summary>
    /// x_{t−1} = x'_{t−1} − σ_t²·∇_{x_t} ℓ_total: the gradient scaled by the step's posterior variance σ_t² = β̃_t (β̃ of
    /// the second step at the last, where β̃ is 0, as guided-diffusion's clipped log-variance) — what the code of DiffuseIT
    /// and ZeCon does (guided-diffusion's <c>condition_mean</c>), and the scale Table A.3's weights were tuned for. The default.
    /// </summary>
    PosteriorVariance,

    /// <summary>
    /// x_{t−1} = x'_{t−1} − ∇_{x_t} ℓ_total, the appendix's equation as printed. With Table A.3's weights the steps
    /// overshoot by orders of magnitude and diverge (measured: the state is not finite within a few steps at 32 px);
    /// usable only with weights ~σ_t² times smaller.
    /// </summary>
    None,
}

/// <summary>How ℓ_sty and ℓ_sem measure the distance of two embeddings (<see cref="StyleOptions.EmbeddingLoss"/>).</summary>
public enum StyleEmbeddingLoss
{
    /// <summary>The mean over the embedding's D values of the squared difference — DiffuseIT's code (<c>F.mse_loss</c> of the [CLS] tokens), the scale Table A.3's λ_sty and λ_sem were set for. The default.</summary>
    MeanSquared,

    /// <summary>‖a − b‖₂, Eqs. 5–6 as printed (with Table A.3's weights this term is ~√D·‖a − b‖ times stronger than the code's).</summary>
    Norm,
}

/// <summary>
/// Options of the styling stage (paper 004 §3.2, Appendix A.1.2, Table A.3; after Kwon &amp; Ye's DiffuseIT and Yang et
/// al.'s ZeCon): the source image (e.g. RePaint's inpainted image) is noised to the depth of
/// <see cref="SkipSteps"/> and taken back by guided reverse DDPM steps of a trained diffusion model; at every step
/// x_{t−1} = μ_θ(x_t, t) + σ_t·ε − σ_t²·∇_{x_t} ℓ_total(x̂₀(x_t)) (<see cref="GuidanceScaling"/>: the paper's
/// equation omits σ_t², which its reference code applies), ℓ_total the weighted sum of the losses below between the
/// Tweedie estimate x̂₀ and the row's target image (the original). Every weight may be 0, which switches its term off;
/// all zero gives the plain reverse process. Defaults: Table A.3's weights, CPU-sized step counts
/// (<see cref="PaperPreset"/> has Table A.1's timestep_respacing 200 and skip_timesteps 80). Plain and
/// JSON-serialisable: the fitted stage saves them.
/// <para>Stand-ins, named plainly: the paper's VGG perceptual loss uses the ImageNet ResNet-18 of
/// <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> (its stem and layer1 feature maps, where ZeCon uses VGG-19's conv1_1
/// and conv2_1), and the paper's DINO ViT [CLS] embedding e_[CLS] (ℓ_sty, ℓ_sem) is that ResNet-18's 512-d globally
/// pooled layer4 feature. Neither VGG nor DINO is available here.</para>
/// </summary>
public sealed class StyleOptions
{
    /// <summary>The images to style, float32 [C,H,W] in [0,1] or an MLImage (default "InpaintedImage", RePaint's output).</summary>
    public string SourceColumn { get; set; } = "InpaintedImage";

    /// <summary>The target images x₀ (the originals), float32 [C,H,W] in [0,1] or an MLImage (default "Image"); the same size as the source.</summary>
    public string TargetColumn { get; set; } = "Image";

    /// <summary>
    /// The masks, float32 [1,H,W] in {0,1} (default "Mask"): with a joint image + mask model the mask channel is known
    /// (the row's mask, as in RePaint); with a mask-conditioned image model it is the condition.
    /// </summary>
    public string MaskColumn { get; set; } = "Mask";

    /// <summary>The styled image column added, float32 [C,H,W] in [0,1] (default "StyledImage").</summary>
    public string OutputColumn { get; set; } = "StyledImage";

    /// <summary>
    /// The model's schedule is respaced to this many steps (default 20, CPU-sized; Table A.1's timestep_respacing: 200).
    /// Must not exceed the model's TimeSteps.
    /// </summary>
    public int SampleSteps { get; set; } = 20;

    /// <summary>
    /// Respaced steps skipped at the noisy end (default 8, the paper's ratio; Table A.1's skip_timesteps: 80 of 200): the
    /// source is noised to respaced step SampleSteps − SkipSteps − 1 and SampleSteps − SkipSteps guided reverse steps
    /// follow. Must be in 0..SampleSteps − 1.
    /// </summary>
    public int SkipSteps { get; set; } = 8;

    /// <summary>λ_ZeCon, weight of the zero-shot contrastive loss on the diffusion U-Net's encoder features (Eq. 4; Table A.3: 500).</summary>
    public double ZeConWeight { get; set; } = 500;

    /// <summary>λ_VGG, weight of the perceptual MSE on ResNet-18 feature maps (the paper's VGG loss; Table A.3: 100).</summary>
    public double PerceptualWeight { get; set; } = 100;

    /// <summary>λ_MSE, weight of ZeCon's pixel MSE between x̂₀ and the content reference (Table A.3: 5000).</summary>
    public double MseWeight { get; set; } = 5000;

    /// <summary>λ_sty, weight of ℓ_sty = d(e(x₀), e(x̂₀)) (Eq. 5, e the ResNet-18 pooled feature, d per <see cref="EmbeddingLoss"/>; Table A.3: 10000).</summary>
    public double StyleWeight { get; set; } = 10000;

    /// <summary>λ_L2, weight of the pixel MSE between x̂₀ and the target x₀ (Table A.3: 10000).</summary>
    public double L2Weight { get; set; } = 10000;

    /// <summary>
    /// λ_sem, weight of ℓ_sem = −d(e(x̂₀(x_{t−1})), e(x̂₀(x_t))) (Eq. 6, d per <see cref="EmbeddingLoss"/>: pushes the estimates of adjacent steps apart; the
    /// previous step's estimate is held fixed; no term at the first step; Table A.3: 40000).
    /// </summary>
    public double SemanticWeight { get; set; } = 40000;

    /// <summary>
    /// ℓ_sem applies only at the noisy respaced steps i &gt; SemanticCutoff·SampleSteps (default 0.5: DiffuseIT's code
    /// uses its semantic divergence loss only above <c>diff_iter</c> = 50 of <c>timestep_respacing</c> 100; the paper
    /// does not say). ℓ_sem has no floor (it rewards any change between adjacent estimates), so applied at every step
    /// with Table A.3's λ_sem it feeds on itself and the steps diverge (measured at 32 px). 0 = at every step; 1 = never.
    /// With the CPU-sized defaults (20 steps, 8 skipped) the guided steps are 11..0, so only step 11 qualifies, where
    /// ℓ_sem has no previous estimate: the term is inactive; with <see cref="PaperPreset"/> it acts on steps 119..101.
    /// </summary>
    public double SemanticCutoff { get; set; } = 0.5;

    /// <summary>λ_rng, weight of DiffuseIT's range loss: mean of (x̂₀ − clamp(x̂₀, −1, 1))² in model space (Table A.3: 200).</summary>
    public double RangeWeight { get; set; } = 200;

    /// <summary>
    /// How the guidance gradient is scaled in the reverse step (default <see cref="StyleGuidanceScaling.PosteriorVariance"/>:
    /// DiffuseIT's and ZeCon's code, for which Table A.3's weights are set; <see cref="StyleGuidanceScaling.None"/> is the
    /// appendix's equation as printed, which diverges with those weights).
    /// </summary>
    public StyleGuidanceScaling GuidanceScaling { get; set; } = StyleGuidanceScaling.PosteriorVariance;

    /// <summary>
    /// The image side Table A.3's weights are for (default 256, Table A.1's image size); null or 0 switches the compensation
    /// off. The losses are means over pixels (and the ResNet-18 sees the image resized to <see cref="FeatureImageSize"/>),
    /// so the gradient each pixel receives grows as 1/(H·W) when the images shrink: at 32 px a weight acts 64 times
    /// harder than at 256 px and the guided steps diverge. The stage scales the guidance gradient by
    /// H·W / WeightsImageSize², so that a step moves a pixel as far as it would at the paper's size.
    /// </summary>
    public int? WeightsImageSize { get; set; } = 256;

    /// <summary>
    /// Whether ℓ_sty and ℓ_sem compare the ResNet-18 embedding's direction, e/‖e‖·√D (default true), rather than e itself.
    /// DINO's [CLS] token passes through LayerNorms that make it insensitive to the input's scale; the ResNet-18's pooled
    /// feature (ReLU, BatchNorm in eval mode) grows with it, so once x̂₀ leaves the image range ℓ_sty's gradient grows
    /// with it and the guided steps feed on themselves (measured on a barely trained model: |x_t| reached 10⁴ with Table
    /// A.3's λ_sty). The √D keeps the mean squared distance at the scale of unit-variance features (it is ‖u − v‖², 0..4).
    /// </summary>
    public bool NormalizeEmbedding { get; set; } = true;

    /// <summary>
    /// The distance ℓ_sty and ℓ_sem take between embeddings (default <see cref="StyleEmbeddingLoss.MeanSquared"/>, DiffuseIT's
    /// code; <see cref="StyleEmbeddingLoss.Norm"/> is Eqs. 5–6 as printed).
    /// </summary>
    public StyleEmbeddingLoss EmbeddingLoss { get; set; } = StyleEmbeddingLoss.MeanSquared;

    /// <summary>What the content losses compare with (default <see cref="StyleContentReference.Target"/>, the paper's text).</summary>
    public StyleContentReference ContentReference { get; set; } = StyleContentReference.Target;

    /// <summary>
    /// Encoder layers of the diffusion U-Net whose features ZeCon compares (0 = the input conv, then every encoder step);
    /// null (the default) = ZeCon's layers 0, 2, 5, 8, 11 that the network has.
    /// </summary>
    public int[]? ZeConLayers { get; set; }

    /// <summary>Random spatial locations per layer in ZeCon's PatchNCE (ZeCon's 256, the default; fewer when a layer has fewer).</summary>
    public int ZeConPatches { get; set; } = 256;

    /// <summary>PatchNCE temperature τ (ZeCon's and CUT's 0.07, the default).</summary>
    public double ZeConTemperature { get; set; } = 0.07;

    /// <summary>Side the images are resized to (bilinear) before the ResNet-18 (default 224, its training size; ≥ 32).</summary>
    public int FeatureImageSize { get; set; } = 224;

    /// <summary>
    /// Where the ResNet-18 package's DnnImageModels folder is (null, the default: next to the application, then the NuGet
    /// cache; see <see cref="Segmentation.Networks.ImageNetEncoder.Locate(string?)"/>). Only needed when a ResNet-18 term
    /// (perceptual, style, semantic) has a non-zero weight.
    /// </summary>
    public string? FeatureModelPath { get; set; }

    /// <summary>Images styled at once (default 4); results do not depend on it beyond float rounding (noise is seeded per row).</summary>
    public int TransformBatchSize { get; set; } = 4;

    /// <summary>
    /// Seed of the per-row randomness (row r's noise and ZeCon locations come from generators seeded by (SamplingSeed, r));
    /// null (the default) derives it from the context's seed when the estimator is created; the fitted stage saves it.
    /// </summary>
    public ulong? SamplingSeed { get; set; }

    /// <summary>Table A.1 / A.3 at GPU scale: timestep_respacing 200, skip_timesteps 80, Table A.3's weights.</summary>
    public static StyleOptions PaperPreset() => new() { SampleSteps = 200, SkipSteps = 80 };

    /// <summary>Whether any term needs the ResNet-18 (perceptual, style or semantic weight ≠ 0).</summary>
    internal bool NeedsFeatureNetwork => PerceptualWeight != 0 || StyleWeight != 0 || SemanticWeight != 0;

    /// <summary>Whether any loss weight is non-zero (otherwise the plain reverse process runs).</summary>
    internal bool IsGuided => ZeConWeight != 0 || PerceptualWeight != 0 || MseWeight != 0 || StyleWeight != 0 || L2Weight != 0
        || SemanticWeight != 0 || RangeWeight != 0;

    /// <summary>A copy.</summary>
    public StyleOptions Clone()
    {
        var c = (StyleOptions)MemberwiseClone();
        c.ZeConLayers = ZeConLayers?.ToArray();
        return c;
    }

    /// <summary>Checks every option; the message names the offending one.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        foreach (var (name, v) in new[] { (nameof(SourceColumn), SourceColumn), (nameof(TargetColumn), TargetColumn), (nameof(MaskColumn), MaskColumn), (nameof(OutputColumn), OutputColumn) })
            if (string.IsNullOrEmpty(v)) throw new ArgumentException($"{name} must be a column name", name);
        if (OutputColumn == SourceColumn || OutputColumn == TargetColumn || OutputColumn == MaskColumn)
            throw new ArgumentException($"OutputColumn '{OutputColumn}' must differ from the source, target and mask columns", nameof(OutputColumn));
        if (SourceColumn == TargetColumn)
            throw new ArgumentException($"SourceColumn and TargetColumn are both '{SourceColumn}': styling an image towards itself", nameof(TargetColumn));
        if (SampleSteps < 1) throw new ArgumentException($"SampleSteps must be ≥ 1, got {SampleSteps}", nameof(SampleSteps));
        if (SkipSteps < 0 || SkipSteps >= SampleSteps)
            throw new ArgumentException($"SkipSteps must be in 0..{SampleSteps - 1} (SampleSteps − 1), got {SkipSteps}", nameof(SkipSteps));
        foreach (var (name, w) in new[] { (nameof(ZeConWeight), ZeConWeight), (nameof(PerceptualWeight), PerceptualWeight), (nameof(MseWeight), MseWeight),
                     (nameof(StyleWeight), StyleWeight), (nameof(L2Weight), L2Weight), (nameof(SemanticWeight), SemanticWeight), (nameof(RangeWeight), RangeWeight) })
            if (!(w >= 0) || double.IsInfinity(w)) throw new ArgumentException($"{name} must be a finite number ≥ 0, got {w}", name);
        if (!(SemanticCutoff >= 0 && SemanticCutoff <= 1)) throw new ArgumentException($"SemanticCutoff must be in [0, 1], got {SemanticCutoff}", nameof(SemanticCutoff));
        if (WeightsImageSize is < 0) throw new ArgumentException($"WeightsImageSize must be > 0 (or 0/null for no compensation), got {WeightsImageSize}", nameof(WeightsImageSize));
        if (!Enum.IsDefined(EmbeddingLoss)) throw new ArgumentException($"unknown EmbeddingLoss {EmbeddingLoss}", nameof(EmbeddingLoss));
        if (!Enum.IsDefined(GuidanceScaling)) throw new ArgumentException($"unknown GuidanceScaling {GuidanceScaling}", nameof(GuidanceScaling));
        if (!Enum.IsDefined(ContentReference)) throw new ArgumentException($"unknown ContentReference {ContentReference}", nameof(ContentReference));
        if (ZeConLayers is { } layers)
        {
            if (layers.Length == 0) throw new ArgumentException("ZeConLayers must name at least one layer (or be null for ZeCon's)", nameof(ZeConLayers));
            if (layers.Any(l => l < 0)) throw new ArgumentException($"ZeConLayers must be ≥ 0, got [{string.Join(", ", layers)}]", nameof(ZeConLayers));
        }
        if (ZeConPatches < 1) throw new ArgumentException($"ZeConPatches must be ≥ 1, got {ZeConPatches}", nameof(ZeConPatches));
        if (!(ZeConTemperature > 0) || double.IsInfinity(ZeConTemperature))
            throw new ArgumentException($"ZeConTemperature must be > 0, got {ZeConTemperature}", nameof(ZeConTemperature));
        if (FeatureImageSize < 32) throw new ArgumentException($"FeatureImageSize must be ≥ 32, got {FeatureImageSize}", nameof(FeatureImageSize));
        if (TransformBatchSize < 1) throw new ArgumentException($"TransformBatchSize must be ≥ 1, got {TransformBatchSize}", nameof(TransformBatchSize));
    }
}
