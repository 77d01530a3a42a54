using System.Text.Json.Serialization;
using MLNetMedSeg.Attacks.Networks;

namespace MLNetMedSeg.Attacks;

/// <summary>How the critic is kept 1-Lipschitz for the WGAN objective (Eq. 3).</summary>
public enum CriticRegularization
{
    /// <summary>WGAN-GP (Gulrajani et al. 2017): a gradient penalty of weight <see cref="DeformationAttackOptions.GradientPenaltyWeight"/> (λ = 10). Default.</summary>
    GradientPenalty,

    /// <summary>The original WGAN (Arjovsky et al. 2017): every critic weight clipped to ±<see cref="DeformationAttackOptions.ClipValue"/> after each step.</summary>
    WeightClipping,
}

/// <summary>
/// Options of <see cref="DeformationAttackEstimator"/>: the VAE-GAN deformation attacker of paper 002 (Chen et al.).
/// Defaults follow §3.3 where the paper gives a value (RMSProp with decay 0.9 and ε = 1e−10, learning rate 1e−4 for
/// both networks, λ_D = 0.1, λ_V = 0.01, LeakyReLU 0.2, BatchNorm) and are small, CPU-friendly choices elsewhere
/// (network widths, epochs, batch size, KL weight, critic iterations).
/// </summary>
public sealed class DeformationAttackOptions
{
    /// <summary>ξ of Eq. 4, the target masked cross-entropy between S₀ and S_DV (default 2.0, the paper's Fig. 2 setting; Table 1 sweeps 0.5–3).</summary>
    public double Xi { get; set; } = 2.0;

    /// <summary>λ_D of Eq. 2, the weight of ‖D‖² (mean squared displacement in pixels²; default 0.1, §3.3).</summary>
    public double DeformationWeight { get; set; } = 0.1;

    /// <summary>λ_V of Eq. 2, the weight of ‖V‖² (mean squared intensity change; default 0.01, §3.3).</summary>
    public double IntensityWeight { get; set; } = 0.01;

    /// <summary>
    /// β, the weight of the KL terms KL(q(z_D)‖N(0,1)) + KL(q(z_V)‖N(0,1)) (means over the latent elements). The paper
    /// learns z_D and z_V as Gaussians but gives no weight; default 0.01 keeps the latents near the prior, so that
    /// sampling them gives varied attacks, without outweighing the attack term.
    /// </summary>
    public double KlWeight { get; set; } = 0.01;

    /// <summary>
    /// The weight of the generator's adversarial term L_adv^gen (default 1, Eq. 6 as written). Lower it when the critic's
    /// gradients, rather than ξ, drive the fields (small data, few critic steps).
    /// </summary>
    public double AdversarialWeight { get; set; } = 1;

    /// <summary>Generator architecture (widths, latent channels, variant D+V / D only / V only). Its InChannels must equal the segmenter's.</summary>
    public DeformationGeneratorOptions Generator { get; set; } = new();

    /// <summary>Critic level widths (default [16, 32, 64]).</summary>
    public long[] CriticWidths { get; set; } = [16, 32, 64];

    /// <summary>How the critic is kept Lipschitz (default the gradient penalty, WGAN-GP).</summary>
    public CriticRegularization CriticRegularization { get; set; } = CriticRegularization.GradientPenalty;

    /// <summary>λ of the gradient penalty (default 10, Gulrajani et al.).</summary>
    public double GradientPenaltyWeight { get; set; } = 10;

    /// <summary>Weight clipping: the bound c (default 0.01, Arjovsky et al.).</summary>
    public double ClipValue { get; set; } = 0.01;

    /// <summary>n_critic: critic steps per generator step, each on a fresh (D, V) sample of the same batch (default 1).</summary>
    public int CriticIterations { get; set; } = 1;

    /// <summary>RMSProp learning rate of both networks (default 1e−4, §3.3).</summary>
    public double LearningRate { get; set; } = 1e-4;

    /// <summary>RMSProp's decay α of the squared-gradient average (default 0.9, §3.3).</summary>
    public double RmsPropDecay { get; set; } = 0.9;

    /// <summary>RMSProp's ε (default 1e−10, §3.3).</summary>
    public double RmsPropEpsilon { get; set; } = 1e-10;

    /// <summary>Training epochs over the images (default 20).</summary>
    public int Epochs { get; set; } = 20;

    /// <summary>Images per training step, and per transform batch (default 8).</summary>
    public int BatchSize { get; set; } = 8;

    /// <summary>k: attacks sampled per image by the fitted transformer (its output has k rows per input row; default 1).</summary>
    public int Samples { get; set; } = 1;

    /// <summary>Image column, float32 [C,H,W] (default "Image").</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>
    /// Ground-truth mask column moved by D into <see cref="DeformedMaskColumn"/>: float32 [1,H,W] for a binary segmenter,
    /// int64 [H,W] for a multi-class one (default "Mask"); null: no mask is read or written. Not used to train.
    /// </summary>
    public string? MaskColumn { get; set; } = "Mask";

    /// <summary>Output column of I_DV, float32 [C,H,W] (default "AttackedImage"). Values are not clamped to [0,1].</summary>
    public string AttackedImageColumn { get; set; } = "AttackedImage";

    /// <summary>Output column of the ground truth warped by D with nearest sampling (default "DeformedMask").</summary>
    public string DeformedMaskColumn { get; set; } = "DeformedMask";

    /// <summary>Output column of D, float32 [2,H,W] in pixels (x, y) (default "Deformation"; zeros for the V-only variant).</summary>
    public string DeformationColumn { get; set; } = "Deformation";

    /// <summary>Output column of V, float32 [C,H,W] (default "Intensity"; zeros for the D-only variant).</summary>
    public string IntensityColumn { get; set; } = "Intensity";

    /// <summary>
    /// Folder for a resume checkpoint written after every epoch (default null: none). A Fit finding one there
    /// continues after its last epoch — the same result as an uninterrupted run — provided the options (other than
    /// <c>Epochs</c>, the folders and the callbacks), the context's seed, the device and the segmenter's weights are
    /// those it was written with.
    /// </summary>
    [JsonIgnore]
    public string? CheckpointFolder { get; set; }

    /// <summary>Called after every epoch with its mean losses. Not saved.</summary>
    [JsonIgnore]
    public Action<DeformationAttackEpochRecord>? EpochCompleted { get; set; }

    /// <summary>A copy (generator options and widths copied).</summary>
    public DeformationAttackOptions Clone()
    {
        var c = (DeformationAttackOptions)MemberwiseClone();
        c.Generator = Generator.Clone();
        c.CriticWidths = CriticWidths.ToArray();
        return c;
    }

    /// <summary>The output column names, in the order they are added.</summary>
    internal IEnumerable<string> OutputColumns() => MaskColumn is null
        ? [AttackedImageColumn, DeformationColumn, IntensityColumn]
        : [AttackedImageColumn, DeformedMaskColumn, DeformationColumn, IntensityColumn];

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (CheckpointFolder is "") throw new ArgumentException("CheckpointFolder must be null or a folder", nameof(CheckpointFolder));
        if (Generator is null) throw new ArgumentException("Generator options are required", nameof(Generator));
        Generator.Validate();
        foreach (var (v, n) in new[] { (Xi, nameof(Xi)), (DeformationWeight, nameof(DeformationWeight)), (IntensityWeight, nameof(IntensityWeight)), (KlWeight, nameof(KlWeight)), (AdversarialWeight, nameof(AdversarialWeight)), (GradientPenaltyWeight, nameof(GradientPenaltyWeight)) })
            if (!double.IsFinite(v) || v < 0) throw new ArgumentException($"{n} must be ≥ 0, got {v}", n);
        if (CriticWidths is null || CriticWidths.Length == 0 || CriticWidths.Any(w => w < 1)) throw new ArgumentException("CriticWidths must hold at least one positive width", nameof(CriticWidths));
        if (!Enum.IsDefined(CriticRegularization)) throw new ArgumentException($"unknown CriticRegularization {CriticRegularization}", nameof(CriticRegularization));
        if (!double.IsFinite(ClipValue) || ClipValue <= 0) throw new ArgumentException($"ClipValue must be > 0, got {ClipValue}", nameof(ClipValue));
        if (CriticIterations < 1) throw new ArgumentException($"CriticIterations must be ≥ 1, got {CriticIterations}", nameof(CriticIterations));
        if (!double.IsFinite(LearningRate) || LearningRate <= 0) throw new ArgumentException($"LearningRate must be > 0, got {LearningRate}", nameof(LearningRate));
        if (!(RmsPropDecay is >= 0 and < 1)) throw new ArgumentException($"RmsPropDecay must be in [0, 1), got {RmsPropDecay}", nameof(RmsPropDecay));
        if (!double.IsFinite(RmsPropEpsilon) || RmsPropEpsilon < 0) throw new ArgumentException($"RmsPropEpsilon must be ≥ 0, got {RmsPropEpsilon}", nameof(RmsPropEpsilon));
        if (Epochs < 1) throw new ArgumentException($"Epochs must be ≥ 1, got {Epochs}", nameof(Epochs));
        if (BatchSize < 1) throw new ArgumentException($"BatchSize must be ≥ 1, got {BatchSize}", nameof(BatchSize));
        if (Samples < 1) throw new ArgumentException($"Samples must be ≥ 1, got {Samples}", nameof(Samples));
        if (string.IsNullOrEmpty(ImageColumn)) throw new ArgumentException("ImageColumn must be a column name", nameof(ImageColumn));
        if (MaskColumn is "") throw new ArgumentException("MaskColumn must be null or a column name", nameof(MaskColumn));
        var outs = OutputColumns().ToList();
        if (outs.Any(string.IsNullOrEmpty)) throw new ArgumentException("output column names must not be empty", nameof(AttackedImageColumn));
        if (outs.Distinct(StringComparer.Ordinal).Count() != outs.Count) throw new ArgumentException($"output column names must differ: {string.Join(", ", outs)}", nameof(AttackedImageColumn));
    }
}

/// <summary>Mean losses of one training epoch.</summary>
/// <param name="Epoch">1-based epoch.</param>
/// <param name="GeneratorLoss">Mean generator loss (Eq. 6 + KL).</param>
/// <param name="CriticLoss">Mean critic loss (Eq. 3, plus the penalty under WGAN-GP).</param>
/// <param name="CrossEntropy">Mean f_xent^M(S₀, S_DV) (Eq. 5); training drives it towards ξ.</param>
/// <param name="Seconds">Wall time of the epoch.</param>
public sealed record DeformationAttackEpochRecord(int Epoch, double GeneratorLoss, double CriticLoss, double CrossEntropy, double Seconds);
