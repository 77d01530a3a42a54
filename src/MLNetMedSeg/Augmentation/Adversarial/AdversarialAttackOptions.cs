using MLNetMedSeg.Augmentation;
using System.Text.Json.Serialization;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>The attack algorithm of <see cref="AdversarialAttack"/>.</summary>
public enum AdversarialAttackMethod
{
    /// <summary>FGSM (Goodfellow et al.; paper 001 Eq. 1): one step x′ = clip(x + ε·sign(∇ₓL)) towards higher loss.</summary>
    Fgsm,

    /// <summary>Inverse FGSM (paper 001 Eq. 2): one step x′ = clip(x − ε·sign(∇ₓL)) towards lower loss.</summary>
    InverseFgsm,

    /// <summary>
    /// PGD (Madry et al.; DASP §2 and Eq. 9): K steps x ← Π(x + γ·sign(∇ₓL)), Π the projection onto [0,1] and, when
    /// <see cref="AdversarialAttackOptions.Epsilon"/> is set, onto the L∞ ball of radius ε around the clean image.
    /// </summary>
    Pgd,

    /// <summary>
    /// Diff-PGD (Xue et al., NeurIPS 2023; DASP Eq. 1 and 9): PGD whose loss is taken on the SDEdit-refined image
    /// x_d = SDEdit(x + δ) (<see cref="ISdEditor"/>); the output is SDEdit(x + δ_K). DASP is this method with
    /// the uncertainty-weighted foreground loss of Eq. 10 (<see cref="AdversarialAttackOptions.Dasp"/>).
    /// </summary>
    DiffPgd,
}

/// <summary>
/// How Diff-PGD takes the gradient through SDEdit. Xue et al.'s code has two versions: v1 back-propagates through the
/// SDEdit denoiser (<see cref="Full"/>, what DASP's Eq. 9 writes: ∇ with respect to x̃ᵏ of L_adv(f(SDEdit(x̃ᵏ)))), and
/// the accelerated v2 takes the gradient at the SDEdit output and applies it to x̃ᵏ (<see cref="Detached"/>).
/// </summary>
public enum DiffPgdGradient
{
    /// <summary>
    /// Diff-PGD's accelerated "v2": x_d = SDEdit(x̃ᵏ) is computed without autograd and ∇_{x_d} L_adv(f(x_d)) is applied to
    /// x̃ᵏ — an approximation of Eq. 9 that ignores the Jacobian of SDEdit. No backward pass through the denoiser and no
    /// activation memory for it.
    /// </summary>
    Detached,

    /// <summary>
    /// Diff-PGD's "v1" and DASP's Eq. 9 (the default): ∇_{x̃ᵏ} L_adv(f(SDEdit(x̃ᵏ))), back-propagated through the T^s + 1
    /// denoiser calls of SDEdit (with the forward noise z held fixed) by <see cref="Core.Gradients.Grad"/>. Keeps the
    /// denoiser's activations of all T^s + 1 calls; a DASP attack (K = 10, T^s = 3) took 2.2× the CPU time of the
    /// detached form with the old 3-call SDEdit (docs/results.md).
    /// </summary>
    Full,
}

/// <summary>
/// Options of an adversarial attack on a segmenter. Images live in [0,1] (float32); every amount here (ε, γ) is in
/// those units: the papers' "γ = 1" and "ε = 16" are in 0–255 units, i.e. 1/255 and 16/255 here.
/// A new instance holds DASP's settings (paper 000, §4.1 "PGD steps K, noise strength γ, SDEdit timesteps T^s and the
/// variance of g(·) were set to 10, 1, 3 and 4"): <see cref="AdversarialAttackMethod.DiffPgd"/>, K = 10, γ = 1/255,
/// no ε-ball, T^s = 3 (SDEdit noises to respaced index 3 and denoises in 4 steps, Eq. 1), σ² = 4, the
/// uncertainty-weighted foreground loss of Eq. 10, and the gradient of Eq. 9 taken through SDEdit
/// (<see cref="DiffPgdGradient.Full"/>). The static presets
/// <see cref="Dasp"/>, <see cref="DiffPgdPreset"/>, <see cref="PgdPreset"/>, <see cref="FgsmPreset"/> and
/// <see cref="InverseFgsmPreset"/> give each method's published defaults.
/// </summary>
public sealed class AdversarialAttackOptions
{
    /// <summary>The algorithm (default <see cref="AdversarialAttackMethod.DiffPgd"/>, as DASP).</summary>
    public AdversarialAttackMethod Method { get; set; } = AdversarialAttackMethod.DiffPgd;

    /// <summary>
    /// FGSM / Inverse-FGSM: the step ε (required). PGD / Diff-PGD: the radius of the L∞ ball around the clean image the
    /// iterate is projected onto, or null for no ball (only the [0,1] clip; DASP's Eq. 9 has none). In [0,1] units.
    /// Default null (DASP).
    /// </summary>
    public double? Epsilon { get; set; }

    /// <summary>
    /// PGD / Diff-PGD: the number of steps K (default 10, DASP §4.1). FGSM takes one step. Diff-PGD also takes K = 0: no
    /// attack, only SDEdit of the (randomly started, when <see cref="RandomStart"/>) image — the control that tells what
    /// SDEdit alone does to the pairs from what the attack does.
    /// </summary>
    public int Steps { get; set; } = 10;

    /// <summary>
    /// PGD / Diff-PGD: the step size γ in [0,1] units (default 1/255: DASP's "γ = 1" is in 0–255 units).
    /// </summary>
    public double StepSize { get; set; } = 1.0 / 255;

    /// <summary>
    /// PGD / Diff-PGD: start from a uniform random point of the L∞ ball, x⁰ = clip(x + U(−r, r)) with r = ε (or γ when
    /// there is no ball) (Madry et al.). Each row draws from its own seed. Default false (DASP starts at x̃).
    /// </summary>
    public bool RandomStart { get; set; }

    /// <summary>
    /// Weight the per-pixel loss with DASP's uncertainty map W = g(f(x̃)) = exp(−z²/(2σ²)), z the segmenter's logits on
    /// the clean image (Eq. 10; multi-class: z = the margin between the two largest logits). Default true (DASP).
    /// </summary>
    public bool UncertaintyWeighting { get; set; } = true;

    /// <summary>The variance σ² of the zero-mean Gaussian g(·) of the uncertainty map (default 4, DASP §4.1).</summary>
    public double UncertaintyVariance { get; set; } = 4.0;

    /// <summary>
    /// Keep Eq. 10's ỹ factor: the loss is the mean over all pixels of ỹ·W·ℓ_bce, so only foreground pixels (ỹ = 1;
    /// multi-class: class ≠ 0) are attacked. False gives the unrestricted mean of W·ℓ over every pixel. Default true
    /// (the paper's formula).
    /// </summary>
    public bool ForegroundOnly { get; set; } = true;

    /// <summary>
    /// Diff-PGD: the SDEdit depth T^s, in steps of the respaced schedule (default 3, DASP §4.1): the image is noised to
    /// respaced index T^s and denoised with T^s + 1 DDIM calls (Eq. 1; Diff-PGD's <c>range(t + 1)</c>). 1..SdEditRespacing − 1.
    /// </summary>
    public int SdEditDepth { get; set; } = 3;

    /// <summary>Diff-PGD: the number of steps the diffusion schedule is respaced to for SDEdit (default 50, Diff-PGD's DDIM-50).</summary>
    public int SdEditRespacing { get; set; } = 50;

    /// <summary>
    /// Diff-PGD: how the gradient goes through SDEdit (default <see cref="DiffPgdGradient.Full"/>, Eq. 9 and Diff-PGD's v1;
    /// <see cref="DiffPgdGradient.Detached"/> is the faster v2 approximation).
    /// </summary>
    public DiffPgdGradient Gradient { get; set; } = DiffPgdGradient.Full;

    /// <summary>Image column read, float32 [C,H,W] in [0,1] (default "Image").</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>Mask column read (unchanged): float32 [1,H,W] {0,1} or int64 [H,W] class indices (default "Mask").</summary>
    public string MaskColumn { get; set; } = "Mask";

    /// <summary>Output column of the attacked image, float32 [C,H,W] in [0,1] (default "AttackedImage"); for Diff-PGD x̃₀ᴷ = SDEdit(x̃ᴷ).</summary>
    public string AttackedImageColumn { get; set; } = "AttackedImage";

    /// <summary>Optional output column of x̃ᴷ, the perturbed image before the final SDEdit (default null: not written; equals the attacked image for the other methods).</summary>
    public string? PerturbedImageColumn { get; set; }

    /// <summary>
    /// Optional output column of the uncertainty map W, float32 [1,H,W] in (0,1] (default null: not written). W is then
    /// computed even without <see cref="UncertaintyWeighting"/> (for display; the loss stays unweighted).
    /// </summary>
    public string? UncertaintyColumn { get; set; }

    /// <summary>Rows attacked together (default 8).</summary>
    public int BatchSize { get; set; } = 8;

    /// <summary>True when the method needs an <see cref="ISdEditor"/>.</summary>
    [JsonIgnore]
    public bool NeedsSdEditor => Method == AdversarialAttackMethod.DiffPgd;

    /// <summary>
    /// DASP (paper 000, §3.3, §4.1): Diff-PGD, K = 10, γ = 1/255, no ε-ball, T^s = 3, σ² = 4, Eq. 10 loss (W, foreground
    /// only), Eq. 9's gradient through SDEdit (<see cref="DiffPgdGradient.Full"/>).
    /// </summary>
    public static AdversarialAttackOptions Dasp() => new();

    /// <summary>
    /// Diff-PGD's own budget (Xue et al.: ε = 16/255, α = 2/255, 10 iterations, DDIM-50 respacing) with DASP's SDEdit
    /// depth T^s = 3, the plain BCE/CE loss (no W) on every pixel.
    /// </summary>
    public static AdversarialAttackOptions DiffPgdPreset() => new()
    {
        Method = AdversarialAttackMethod.DiffPgd, Epsilon = 16.0 / 255, StepSize = 2.0 / 255, Steps = 10,
        UncertaintyWeighting = false, ForegroundOnly = false,
    };

    /// <summary>PGD with Diff-PGD's budget and a random start (Madry et al.): ε = 16/255, γ = 2/255, K = 10, plain loss.</summary>
    public static AdversarialAttackOptions PgdPreset() => new()
    {
        Method = AdversarialAttackMethod.Pgd, Epsilon = 16.0 / 255, StepSize = 2.0 / 255, Steps = 10, RandomStart = true,
        UncertaintyWeighting = false, ForegroundOnly = false,
    };

    /// <summary>
    /// A row of DASP's Table 2 ablation built from this attack (normally <see cref="Dasp"/>): a copy that differs from it
    /// only in whether the iterates are refined with SDEdit (<paramref name="sdEdit"/>: Diff-PGD, else PGD) and whether
    /// the loss is weighted by W (<paramref name="uncertaintyWeighting"/>). ε, γ, K, the random start, the ỹ factor,
    /// σ², T^s and the gradient form are kept, so rows differ only in what the table varies ("PGD + W" is
    /// <c>Ablation(false, true)</c>, "Diff-PGD without W" <c>Ablation(true, false)</c>, DASP <c>Ablation(true, true)</c>).
    /// Unlike <see cref="PgdPreset"/>, which brings PGD's own budget (ε = 16/255, γ = 2/255, random start, no ỹ factor).
    /// </summary>
    public AdversarialAttackOptions Ablation(bool sdEdit, bool uncertaintyWeighting)
    {
        if (Method is not (AdversarialAttackMethod.Pgd or AdversarialAttackMethod.DiffPgd))
            throw new InvalidOperationException($"Table 2's rows vary a PGD or Diff-PGD attack; this one is {Method}");
        var o = Clone();
        o.Method = sdEdit ? AdversarialAttackMethod.DiffPgd : AdversarialAttackMethod.Pgd;
        o.UncertaintyWeighting = uncertaintyWeighting;
        return o;
    }

    /// <summary>FGSM as paper 001 trains with it: ε = 0.1 (its Table 2 also scores 0.05–0.2), plain loss.</summary>
    public static AdversarialAttackOptions FgsmPreset(double epsilon = 0.1) => new()
    {
        Method = AdversarialAttackMethod.Fgsm, Epsilon = epsilon, Steps = 1, StepSize = epsilon,
        UncertaintyWeighting = false, ForegroundOnly = false,
    };

    /// <summary>Inverse FGSM as paper 001 (Eq. 2): ε = 0.1, plain loss.</summary>
    public static AdversarialAttackOptions InverseFgsmPreset(double epsilon = 0.1)
    {
        var o = FgsmPreset(epsilon);
        o.Method = AdversarialAttackMethod.InverseFgsm;
        return o;
    }

    /// <summary>The preset named <paramref name="name"/>: fgsm, ifgsm, pgd, diffpgd or dasp (the CLI's --method values).</summary>
    public static AdversarialAttackOptions Preset(string name) => name switch
    {
        "fgsm" => FgsmPreset(),
        "ifgsm" => InverseFgsmPreset(),
        "pgd" => PgdPreset(),
        "diffpgd" => DiffPgdPreset(),
        "dasp" => Dasp(),
        _ => throw new ArgumentException($"unknown attack '{name}'; choose one of: {string.Join(", ", PresetNames)}", nameof(name)),
    };

    /// <summary>The names <see cref="Preset"/> accepts.</summary>
    public static IReadOnlyList<string> PresetNames { get; } = ["fgsm", "ifgsm", "pgd", "diffpgd", "dasp"];

    /// <summary>A copy.</summary>
    public AdversarialAttackOptions Clone() => (AdversarialAttackOptions)MemberwiseClone();

    /// <summary>The step count actually taken (1 for FGSM / Inverse FGSM).</summary>
    internal int EffectiveSteps => Method is AdversarialAttackMethod.Fgsm or AdversarialAttackMethod.InverseFgsm ? 1 : Steps;

    /// <summary>The step size actually taken (ε for FGSM / Inverse FGSM).</summary>
    internal double EffectiveStepSize => Method is AdversarialAttackMethod.Fgsm or AdversarialAttackMethod.InverseFgsm ? Epsilon!.Value : StepSize;

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Method)) throw new ArgumentException($"unknown Method {Method}", nameof(Method));
        if (!Enum.IsDefined(Gradient)) throw new ArgumentException($"unknown Gradient {Gradient}", nameof(Gradient));
        bool oneStep = Method is AdversarialAttackMethod.Fgsm or AdversarialAttackMethod.InverseFgsm;
        if (oneStep && Epsilon is null) throw new ArgumentException($"{Method} needs Epsilon (the step size ε)", nameof(Epsilon));
        if (Epsilon is double e && (!double.IsFinite(e) || e <= 0)) throw new ArgumentException($"Epsilon must be > 0 or null, got {e}", nameof(Epsilon));
        if (!oneStep)
        {
            int fewest = Method == AdversarialAttackMethod.DiffPgd ? 0 : 1;   // Diff-PGD with K = 0: SDEdit only
            if (Steps < fewest) throw new ArgumentException($"Steps must be ≥ {fewest} for {Method}, got {Steps}", nameof(Steps));
            if (!double.IsFinite(StepSize) || StepSize <= 0) throw new ArgumentException($"StepSize must be > 0, got {StepSize}", nameof(StepSize));
        }
        if (!double.IsFinite(UncertaintyVariance) || UncertaintyVariance <= 0)
            throw new ArgumentException($"UncertaintyVariance must be > 0, got {UncertaintyVariance}", nameof(UncertaintyVariance));
        if (NeedsSdEditor)
        {
            if (SdEditRespacing < 1) throw new ArgumentException($"SdEditRespacing must be ≥ 1, got {SdEditRespacing}", nameof(SdEditRespacing));
            if (SdEditDepth < 1 || SdEditDepth >= SdEditRespacing)
                throw new ArgumentException(
                    $"SdEditDepth must be in 1..SdEditRespacing − 1 ({SdEditRespacing - 1}): SDEdit noises to that respaced index; got {SdEditDepth}", nameof(SdEditDepth));
        }
        if (BatchSize < 1) throw new ArgumentException($"BatchSize must be ≥ 1, got {BatchSize}", nameof(BatchSize));
        foreach (var (v, n) in new[] { (ImageColumn, nameof(ImageColumn)), (MaskColumn, nameof(MaskColumn)), (AttackedImageColumn, nameof(AttackedImageColumn)) })
            if (string.IsNullOrEmpty(v)) throw new ArgumentException($"{n} must be a column name", n);
        if (PerturbedImageColumn is "") throw new ArgumentException("PerturbedImageColumn must be null or a column name", nameof(PerturbedImageColumn));
        if (UncertaintyColumn is "") throw new ArgumentException("UncertaintyColumn must be null or a column name", nameof(UncertaintyColumn));
        var outputs = new[] { AttackedImageColumn, PerturbedImageColumn, UncertaintyColumn }.Where(c => c is not null).ToArray();
        if (outputs.Distinct(StringComparer.Ordinal).Count() != outputs.Length)
            throw new ArgumentException("AttackedImageColumn, PerturbedImageColumn and UncertaintyColumn must differ", nameof(AttackedImageColumn));
        if (outputs.Contains(MaskColumn)) throw new ArgumentException($"an output column must not overwrite the mask column '{MaskColumn}'", nameof(MaskColumn));
    }
}
