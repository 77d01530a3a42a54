using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Cdal;
using MLNetMedSeg.Segmentation.Losses;

namespace MLNetMedSeg.Dasp;

/// <summary>
/// Options of the whole DASP flow (paper 000, Fig. 2): a Bernoulli mask diffusion samples unseen masks ỹ (§3.1), a
/// mask-conditioned image diffusion draws an image x̃ for each (§3.2), Diff-PGD with the uncertainty map W attacks x̃
/// against the segmenter being trained (§3.3, Eq. 9–10), and the segmenter learns from the real and the attacked pairs
/// with Eq. 11. Each part keeps its own options class; this one only says how they are wired.
/// </summary>
public sealed class DaspOptions
{
    /// <summary>The mask diffusion (its mask column is set to <see cref="MaskColumn"/>; samples per row to <see cref="SyntheticPerImage"/>).</summary>
    public MaskDiffusionOptions MaskDiffusion { get; set; } = new();

    /// <summary>The conditional image diffusion; it is also the SDEdit model of Diff-PGD (its columns are set by the flow).</summary>
    public ImageDiffusionOptions ImageDiffusion { get; set; } = new();

    /// <summary>
    /// The segmentation trainer (its image and mask columns are set to <see cref="ImageColumn"/> and <see cref="MaskColumn"/>).
    /// Default: the trainer's defaults with DASP's L_sup loss, Sudre's generalised Dice ([30] in Eq. 11,
    /// <see cref="SegmentationLossKind.GeneralizedDice"/>); set <c>Segmentation.Loss.Kind = SegmentationLossKind.Dice</c>
    /// for the plain per-image soft Dice.
    /// </summary>
    public SegmentationTrainerOptions Segmentation { get; set; } = PaperSegmentation();

    /// <summary>
    /// Which segmenter the flow trains (default <see cref="DaspSegmenter.Segmentation"/>: the U-Net family of
    /// <see cref="Segmentation"/>); <see cref="DaspSegmenter.Cdal"/> trains the cDAL diffusion segmenter of paper 003 with
    /// <see cref="Cdal"/> — attacked online through its differentiable Algorithm-2 prediction, Eq. 11 weighting its
    /// generator's per-row loss (see <see cref="CdalTrainerOptions.OnlineAttack"/>).
    /// </summary>
    public DaspSegmenter Segmenter { get; set; } = DaspSegmenter.Segmentation;

    /// <summary>
    /// The cDAL trainer when <see cref="Segmenter"/> is <see cref="DaspSegmenter.Cdal"/> (its image and mask columns are
    /// set to <see cref="ImageColumn"/> and <see cref="MaskColumn"/>; binary: <c>Cdal.Classes</c> = 1). Default: the
    /// trainer's defaults with <see cref="CdalTrainerOptions.CpuSizedModel"/>.
    /// </summary>
    public CdalTrainerOptions Cdal { get; set; } = new() { Cdal = CdalTrainerOptions.CpuSizedModel() };

    /// <summary>The trainer's default options with DASP's loss (the generalised Dice of Eq. 11's [30]).</summary>
    public static SegmentationTrainerOptions PaperSegmentation()
    {
        var o = new SegmentationTrainerOptions();
        o.Loss.Kind = SegmentationLossKind.GeneralizedDice;
        return o;
    }

    /// <summary>
    /// The attack applied to the generated images (default DASP's: Diff-PGD with W, K = 10 steps of γ = 1/255,
    /// SDEdit T^s = 3, σ² = 4, Eq. 9's gradient through SDEdit — see <see cref="AdversarialAttackOptions.Dasp"/>). Null
    /// trains on the generated pairs without attack (Table 2, row 2); row 3 ("PGD + W") is
    /// <c>AdversarialAttackOptions.Dasp().Ablation(sdEdit: false, uncertaintyWeighting: true)</c> and row 4 (Diff-PGD
    /// without W) <c>Ablation(sdEdit: true, uncertaintyWeighting: false)</c> — the rows differ only in SDEdit and W, as
    /// <see cref="DaspExperiment.Variant"/> builds them. (<see cref="AdversarialAttackOptions.PgdPreset"/> is not row 3:
    /// it also changes ε, γ, the random start and the ỹ factor.)
    /// </summary>
    public AdversarialAttackOptions? Attack { get; set; } = AdversarialAttackOptions.Dasp();

    /// <summary>
    /// Draw images for generated masks ỹ (default true, DASP); false draws them for the real masks y (Table 2, row 1's
    /// "mask type y").
    /// </summary>
    public bool GeneratedMasks { get; set; } = true;

    /// <summary>Generated pairs per real image (default 2: N′ = 2N, DASP §4.1).</summary>
    public int SyntheticPerImage { get; set; } = 2;

    /// <summary>
    /// Re-attack the generated images against the current segmenter every n epochs (default 1), the
    /// adversarial-training reading of Fig. 2. 0 attacks them once, against a segmenter first trained on the real pairs
    /// alone with the same options (offline), and trains a fresh segmenter on real + attacked pairs.
    /// </summary>
    public int AttackEveryEpochs { get; set; } = 1;

    /// <summary>Image column of the training data (default "Image").</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>Mask column of the training data (default "Mask").</summary>
    public string MaskColumn { get; set; } = "Mask";

    /// <summary>
    /// Folder for the sample grids (default null: none): <c>dasp_samples.png</c> with one row per generated pair —
    /// x̃, ỹ, x̃ᴷ (PGD without SDEdit), x̃₀ᴷ (with SDEdit), W and the final segmenter's prediction on x̃₀ᴷ — and the
    /// diffusion stages' own grids.
    /// </summary>
    public string? FigureFolder { get; set; }

    /// <summary>Generated pairs shown in the sample grid (default 6).</summary>
    public int FigureCount { get; set; } = 6;

    /// <summary>A deep copy.</summary>
    public DaspOptions Clone()
    {
        var c = (DaspOptions)MemberwiseClone();
        c.MaskDiffusion = MaskDiffusion.Clone();
        c.ImageDiffusion = ImageDiffusion.Clone();
        c.Segmentation = Segmentation.Clone();
        c.Cdal = Cdal.Clone();
        c.Attack = Attack?.Clone();
        return c;
    }

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (MaskDiffusion is null) throw new ArgumentException("MaskDiffusion options are required", nameof(MaskDiffusion));
        if (ImageDiffusion is null) throw new ArgumentException("ImageDiffusion options are required", nameof(ImageDiffusion));
        if (Segmentation is null) throw new ArgumentException("Segmentation options are required", nameof(Segmentation));
        if (SyntheticPerImage < 1) throw new ArgumentException($"SyntheticPerImage must be ≥ 1, got {SyntheticPerImage}", nameof(SyntheticPerImage));
        if (AttackEveryEpochs < 0) throw new ArgumentException($"AttackEveryEpochs must be ≥ 0, got {AttackEveryEpochs}", nameof(AttackEveryEpochs));
        if (FigureCount < 1) throw new ArgumentException($"FigureCount must be ≥ 1, got {FigureCount}", nameof(FigureCount));
        if (string.IsNullOrEmpty(ImageColumn)) throw new ArgumentException("ImageColumn is required", nameof(ImageColumn));
        if (string.IsNullOrEmpty(MaskColumn)) throw new ArgumentException("MaskColumn is required", nameof(MaskColumn));
        if (!Enum.IsDefined(Segmenter)) throw new ArgumentException($"unknown Segmenter {Segmenter}", nameof(Segmenter));
        if (Cdal is null) throw new ArgumentException("Cdal options are required (null is not a choice: set Segmenter)", nameof(Cdal));
        if (Segmenter == DaspSegmenter.Cdal)
        {
            if (Cdal.Cdal.Classes != 1) throw new ArgumentException("DASP generates binary masks: Cdal.Cdal.Classes must be 1", nameof(Cdal));
            if (Cdal.OnlineAttack is not null)
                throw new ArgumentException("the flow sets Cdal.OnlineAttack itself from Attack and AttackEveryEpochs; leave it null", nameof(Cdal));
            Cdal.Validate();
        }
        if (Segmentation.Network.Classes != 1)
            throw new ArgumentException("DASP generates binary masks: Segmentation.Network.Classes must be 1", nameof(Segmentation));
        if (Segmentation.OnlineAttack is not null)
            throw new ArgumentException("the flow sets Segmentation.OnlineAttack itself from Attack and AttackEveryEpochs; leave it null", nameof(Segmentation));
        Attack?.Validate();
        MaskDiffusion.Validate();
        ImageDiffusion.Validate();
        Segmentation.Validate();
    }
}

/// <summary>The segmenter a DASP flow trains.</summary>
public enum DaspSegmenter
{
    /// <summary>A U-Net-family network (<see cref="DaspOptions.Segmentation"/>; DASP's own). Default.</summary>
    Segmentation,

    /// <summary>The cDAL conditional diffusion segmenter of paper 003 (<see cref="DaspOptions.Cdal"/>).</summary>
    Cdal,
}
