using MLNetMedSeg;
using MLNetMedSeg.Attacks;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Segmentation;

namespace Microsoft.ML;

/// <summary>
/// Adversarial augmenters and the deformation attacker (<c>ml.MedSeg().Augmentation</c>). Each attacks a fitted
/// segmenter (an <see cref="IDifferentiableSegmenter"/>: a U-Net's <see cref="SegmentationTransformer"/> or a cDAL model's
/// <see cref="MLNetMedSeg.Segmentation.Cdal.CdalTransformer"/>, e.g. the last transformer of a fitted segmentation chain, or
/// one loaded with <c>ml.Model.Load</c>), which stays the caller's: the stages use it and never dispose it. Images are read
/// from an <c>MLImage</c> column or float [C,H,W] in [0,1]; masks as float [1,H,W] in {0,1} (binary segmenters) or
/// integer [H,W] class maps (multi-class ones). Amounts (ε, γ) are in [0,1] image units: the papers' 0–255 values
/// divided by 255.
/// </summary>
public static class MedSegAugmentationCatalogExtensions
{
    /// <summary>
    /// FGSM augmentation (paper 001, Eq. 1; Goodfellow et al.): one step x′ = clip(x + ε·sign(∇ₓL), 0, 1) towards a
    /// higher segmentation loss L (BCE, or cross-entropy for multi-class segmenters) of <paramref name="segmenter"/>,
    /// written to <paramref name="outputColumnName"/> (float [C,H,W]); the mask is left as it is.
    /// </summary>
    /// <param name="catalog">The augmentation catalog.</param>
    /// <param name="segmenter">The fitted segmenter to attack.</param>
    /// <param name="outputColumnName">The attacked image (default "AttackedImage").</param>
    /// <param name="imageColumnName">The image to attack (default "Image").</param>
    /// <param name="labelColumnName">The ground-truth mask the loss is taken against (default "Mask").</param>
    /// <param name="epsilon">The step ε (default 0.1: paper 001 trains with 0.1; its Table 2 scores 0–0.2).</param>
    public static AdversarialAttackEstimator Fgsm(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter,
        string outputColumnName = "AttackedImage", string imageColumnName = "Image", string labelColumnName = "Mask", double epsilon = 0.1)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var o = AdversarialAttackOptions.FgsmPreset(epsilon);
        SetColumns(o, outputColumnName, imageColumnName, labelColumnName);
        return catalog.Fgsm(segmenter, o);
    }

    /// <summary>FGSM with every option (loss weighting, batch size, extra output columns); <c>Method</c> must be FGSM.</summary>
    public static AdversarialAttackEstimator Fgsm(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter, AdversarialAttackOptions options) =>
        Attack(catalog, segmenter, options, null, AdversarialAttackMethod.Fgsm);

    /// <summary>
    /// Inverse FGSM augmentation (paper 001, Eq. 2): one step x′ = clip(x − ε·sign(∇ₓL), 0, 1) towards a lower loss, an
    /// "anti-adversarial" image that paper 001 adds to the training pairs next to FGSM's.
    /// </summary>
    /// <param name="catalog">The augmentation catalog.</param>
    /// <param name="segmenter">The fitted segmenter.</param>
    /// <param name="outputColumnName">The perturbed image (default "AttackedImage").</param>
    /// <param name="imageColumnName">The image to perturb (default "Image").</param>
    /// <param name="labelColumnName">The ground-truth mask (default "Mask").</param>
    /// <param name="epsilon">The step ε (default 0.1, paper 001's training setting).</param>
    public static AdversarialAttackEstimator InverseFgsm(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter,
        string outputColumnName = "AttackedImage", string imageColumnName = "Image", string labelColumnName = "Mask", double epsilon = 0.1)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var o = AdversarialAttackOptions.InverseFgsmPreset(epsilon);
        SetColumns(o, outputColumnName, imageColumnName, labelColumnName);
        return catalog.InverseFgsm(segmenter, o);
    }

    /// <summary>Inverse FGSM with every option; <c>Method</c> must be InverseFgsm.</summary>
    public static AdversarialAttackEstimator InverseFgsm(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter, AdversarialAttackOptions options) =>
        Attack(catalog, segmenter, options, null, AdversarialAttackMethod.InverseFgsm);

    /// <summary>
    /// PGD (Madry et al.; paper 000 §2): K steps x ← Π(x + γ·sign(∇ₓL)), Π the projection onto the L∞ ball of radius ε
    /// around the clean image and onto [0,1], from a random start in the ball. Each row's random start is seeded by
    /// the MLContext's seed and the row's position.
    /// </summary>
    /// <param name="catalog">The augmentation catalog.</param>
    /// <param name="segmenter">The fitted segmenter to attack.</param>
    /// <param name="outputColumnName">The attacked image (default "AttackedImage").</param>
    /// <param name="imageColumnName">The image to attack (default "Image").</param>
    /// <param name="labelColumnName">The ground-truth mask (default "Mask").</param>
    /// <param name="epsilon">The ball's radius ε (default 16/255, Diff-PGD's budget); null: no ball, only the [0,1] clip (paper 000's Eq. 9).</param>
    /// <param name="stepSize">γ (default 2/255, Diff-PGD's α).</param>
    /// <param name="steps">K (default 10, paper 000 §4.1 and Diff-PGD).</param>
    /// <param name="randomStart">Start from a uniform point of the ball (default true, Madry et al.).</param>
    public static AdversarialAttackEstimator Pgd(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter,
        string outputColumnName = "AttackedImage", string imageColumnName = "Image", string labelColumnName = "Mask",
        double? epsilon = 16.0 / 255, double stepSize = 2.0 / 255, int steps = 10, bool randomStart = true)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var o = AdversarialAttackOptions.PgdPreset();
        o.Epsilon = epsilon;
        o.StepSize = stepSize;
        o.Steps = steps;
        o.RandomStart = randomStart;
        SetColumns(o, outputColumnName, imageColumnName, labelColumnName);
        return catalog.Pgd(segmenter, o);
    }

    /// <summary>PGD with every option (uncertainty weighting, foreground-only loss, extra output columns); <c>Method</c> must be Pgd.</summary>
    public static AdversarialAttackEstimator Pgd(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter, AdversarialAttackOptions options) =>
        Attack(catalog, segmenter, options, null, AdversarialAttackMethod.Pgd);

    /// <summary>
    /// DASP's uncertainty-aware Diff-PGD (paper 000 §3.3): K steps x̃ᵏ⁺¹ = clip(x̃ᵏ + γ·sign(∇L_adv)) (Eq. 9), where
    /// L_adv is taken on the SDEdit-refined image x̃₀ᵏ (Eq. 1: T^s forward steps, then the reverse process of
    /// <paramref name="sdEditModel"/>, conditioned on the mask) and, with <paramref name="uncertaintyWeighting"/>, is the
    /// foreground BCE weighted per pixel by W = exp(−z²/(2σ²)), z the segmenter's logits on the clean image (Eq. 10).
    /// Writes SDEdit(x̃ᴷ) to <paramref name="outputColumnName"/>, and W to <paramref name="uncertaintyColumnName"/>
    /// when given. The defaults are paper 000's (§4.1: K = 10, γ = 1 (of 255), T^s = 3, σ² = 4).
    /// </summary>
    /// <param name="catalog">The augmentation catalog.</param>
    /// <param name="segmenter">The fitted segmenter to attack.</param>
    /// <param name="sdEditModel">The SDEdit model: a fitted mask-conditioned image diffusion model (<c>Generation.ImageDiffusion</c>) for the same image channels. Not owned.</param>
    /// <param name="outputColumnName">The attacked, refined image x̃₀ᴷ (default "AttackedImage").</param>
    /// <param name="imageColumnName">The image to attack (default "Image"; "SyntheticImage" in the DASP flow).</param>
    /// <param name="labelColumnName">The mask the loss is taken against and SDEdit is conditioned on (default "Mask").</param>
    /// <param name="steps">K (default 10, §4.1).</param>
    /// <param name="stepSize">γ (default 1/255: §4.1's γ = 1 in 0–255 units).</param>
    /// <param name="sdEditDepth">T^s, in steps of the schedule respaced to 50 (default 3, §4.1).</param>
    /// <param name="uncertaintyWeighting">Weight the loss with W and keep Eq. 10's foreground factor (default true); false gives plain Diff-PGD (Xue et al.).</param>
    /// <param name="uncertaintyVariance">σ² of W's Gaussian g(·) (default 4, §4.1).</param>
    /// <param name="uncertaintyColumnName">Optional output column of W, float [1,H,W] in (0,1] (default null: not written).</param>
    public static AdversarialAttackEstimator DiffPgd(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter,
        ImageDiffusionTransformer sdEditModel, string outputColumnName = "AttackedImage", string imageColumnName = "Image",
        string labelColumnName = "Mask", int steps = 10, double stepSize = 1.0 / 255, int sdEditDepth = 3, bool uncertaintyWeighting = true,
        double uncertaintyVariance = 4.0, string? uncertaintyColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var o = AdversarialAttackOptions.Dasp();
        o.Steps = steps;
        o.StepSize = stepSize;
        o.SdEditDepth = sdEditDepth;
        o.UncertaintyWeighting = uncertaintyWeighting;
        o.ForegroundOnly = uncertaintyWeighting;
        o.UncertaintyVariance = uncertaintyVariance;
        o.UncertaintyColumn = uncertaintyColumnName;
        SetColumns(o, outputColumnName, imageColumnName, labelColumnName);
        return catalog.DiffPgd(segmenter, sdEditModel, o);
    }

    /// <summary>
    /// Diff-PGD with every option (ε-ball, SDEdit respacing, full gradient through SDEdit, x̃ᴷ column); <c>Method</c>
    /// must be DiffPgd. <see cref="AdversarialAttackOptions.Dasp"/> and <see cref="AdversarialAttackOptions.DiffPgdPreset"/>
    /// are the two published settings.
    /// </summary>
    public static AdversarialAttackEstimator DiffPgd(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter,
        ImageDiffusionTransformer sdEditModel, AdversarialAttackOptions options)
    {
        ArgumentNullException.ThrowIfNull(sdEditModel);
        return Attack(catalog, segmenter, options, sdEditModel, AdversarialAttackMethod.DiffPgd);
    }

    /// <summary>
    /// Any of the adversarial augmenters by its options (e.g. <c>AdversarialAttackOptions.Preset("pgd")</c>);
    /// <paramref name="sdEditModel"/> is required by Diff-PGD. Same stage, same seed as the method's own entry
    /// (<see cref="Fgsm(MedSegAugmentationCatalog, IDifferentiableSegmenter, AdversarialAttackOptions)"/> and the others).
    /// </summary>
    public static AdversarialAttackEstimator AdversarialAttack(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter,
        AdversarialAttackOptions options, ImageDiffusionTransformer? sdEditModel = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Attack(catalog, segmenter, options, sdEditModel, options.Method);
    }

    /// <summary>
    /// The VAE-GAN deformation attacker of paper 002 (Chen et al.), trained against <paramref name="segmenter"/> (held
    /// fixed): a generator draws a dense deformation D and an intensity field V per image so that the masked
    /// cross-entropy between the segmentations of the clean and the attacked image approaches ξ (Eq. 4–5), with
    /// λ_D‖D‖² + λ_V‖V‖² (Eq. 2, λ_D = 0.1, λ_V = 0.01, §3.3) and a WGAN critic for realism (Eq. 3, 6); RMSProp at 1e-4
    /// (§3.3). The fitted model adds <paramref name="outputColumnName"/> (I_DV, float [C,H,W]), <c>DeformedMask</c> (the
    /// label moved by D), <c>Deformation</c> (D, float [2,H,W] in pixels) and <c>Intensity</c> (V); with
    /// <paramref name="samplesPerImage"/> = k it gives k rows per input row.
    /// </summary>
    /// <param name="catalog">The augmentation catalog.</param>
    /// <param name="segmenter">The fitted segmenter to attack; its input channels set the generator's.</param>
    /// <param name="outputColumnName">The attacked image (default "AttackedImage").</param>
    /// <param name="imageColumnName">The image to attack (default "Image").</param>
    /// <param name="labelColumnName">The ground truth moved by D into "DeformedMask" (default "Mask"); null: none read or written.</param>
    /// <param name="xi">ξ of Eq. 4 (default 2.0: paper 002's Fig. 2 setting, the smallest ξ of Table 1 that attacks every organ).</param>
    /// <param name="samplesPerImage">Attacks drawn per image at transform time, k (default 1).</param>
    /// <param name="epochs">Training epochs (default 20).</param>
    /// <param name="batchSize">Images per step (default 8).</param>
    public static DeformationAttackEstimator DeformationAttack(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter,
        string outputColumnName = "AttackedImage", string imageColumnName = "Image", string? labelColumnName = "Mask", double xi = 2.0,
        int samplesPerImage = 1, int epochs = 20, int batchSize = 8)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(segmenter);
        var o = new DeformationAttackOptions
        {
            AttackedImageColumn = outputColumnName, ImageColumn = imageColumnName, MaskColumn = labelColumnName, Xi = xi,
            Samples = samplesPerImage, Epochs = epochs, BatchSize = batchSize,
        };
        o.Generator.InChannels = segmenter.ImageChannels;
        return catalog.DeformationAttack(segmenter, o);
    }

    /// <summary>
    /// The deformation attacker with every option (generator and critic widths, variant D+V / D / V, critic
    /// regularisation, loss weights); see <see cref="DeformationAttackOptions"/>.
    /// </summary>
    public static DeformationAttackEstimator DeformationAttack(this MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter,
        DeformationAttackOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(segmenter);
        ArgumentNullException.ThrowIfNull(options);
        return new DeformationAttackEstimator(catalog.ContextFor("DeformationAttack"), options, segmenter);
    }

    private static void SetColumns(AdversarialAttackOptions o, string output, string image, string label)
    {
        o.AttackedImageColumn = output;
        o.ImageColumn = image;
        o.MaskColumn = label;
    }

    /// <summary>The stage for <paramref name="method"/>: its seed comes from the method's name, whichever entry made it.</summary>
    private static AdversarialAttackEstimator Attack(MedSegAugmentationCatalog catalog, IDifferentiableSegmenter segmenter,
        AdversarialAttackOptions options, ImageDiffusionTransformer? sdEditModel, AdversarialAttackMethod method)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(segmenter);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Method != method)
            throw new ArgumentException($"the options are for {options.Method}, but this entry makes {method}; use AdversarialAttack(...) for any method", nameof(options));
        return new AdversarialAttackEstimator(catalog.ContextFor(method.ToString()), segmenter, options, sdEditModel);
    }

    /// <summary>
    /// DASP's adversarial training (paper 000, §3.3–3.4) as a chain stage between the generators and the segmentation
    /// trainer: the trainer attacks the generated pairs against the segmenter it is training every
    /// <paramref name="everyEpochs"/> epochs — by default Diff-PGD with W (Eq. 9–10: K = 10 steps of γ = 1/255, W =
    /// exp(−z²/8), SDEdit depth 3 through the image diffusion upstream) — and trains on real + attacked rows (Eq. 11).
    /// </summary>
    /// <param name="catalog">The augmentation catalog.</param>
    /// <param name="attack">The attack (default <see cref="AdversarialAttackOptions.Dasp"/>).</param>
    /// <param name="everyEpochs">Re-attack every n epochs (default 1).</param>
    /// <param name="copies">Attacked copies of each generated pair per attack round (default 1).</param>
    public static AdversarialTrainingEstimator AdversarialTraining(this MedSegAugmentationCatalog catalog,
        AdversarialAttackOptions? attack = null, int everyEpochs = 1, int copies = 1)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new AdversarialTrainingEstimator(new OnlineAdversarialOptions
        {
            Attack = attack ?? AdversarialAttackOptions.Dasp(), EveryEpochs = everyEpochs, Copies = copies,
        });
    }

    /// <summary>
    /// Offline adversarial augmentation (DASP §3.4, paper 001 §3): attacks <paramref name="segmenter"/> on every row of
    /// <paramref name="data"/> (image and mask columns as <paramref name="options"/> names them) and returns the real
    /// rows followed by N′ = Copies·N attacked pairs (attacked image, unchanged mask) as an in-memory ML.NET data view
    /// with an <c>IsAugmented</c> number column (0 real, 1 attacked). Train on it again with
    /// <see cref="SegmentationTrainerOptions.SampleWeightColumn"/> = "IsAugmented" for Eq. 11's weighting. The images
    /// and masks are float vectors with their dimensions; text columns (e.g. Id) are kept.
    /// </summary>
    /// <param name="catalog">The augmentation catalog.</param>
    /// <param name="data">The rows to attack.</param>
    /// <param name="segmenter">The fitted segmenter attacked (its weights are not changed).</param>
    /// <param name="options">The attack (default DASP's Diff-PGD with W; FGSM, Inverse-FGSM and PGD have presets).</param>
    /// <param name="sdEditor">The SDEdit model Diff-PGD needs (a fitted image diffusion).</param>
    /// <param name="pairs">Copies (default 2, DASP's N′ = 2N), flag and id columns.</param>
    /// <param name="cancellationToken">Checked between batches and steps.</param>
    public static IDataView AdversarialPairs(this MedSegAugmentationCatalog catalog, IDataView data, IDifferentiableSegmenter segmenter,
        AdversarialAttackOptions? options = null, ImageDiffusionTransformer? sdEditor = null, AdversarialPairsOptions? pairs = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(segmenter);
        var ctx = catalog.ContextFor("AdversarialPairs");
        using var generated = MLNetMedSeg.Augmentation.Adversarial.AdversarialPairs.Generate(ctx,
            MLNetMedSeg.Core.MLNet.MLNetData.AsLibraryView(data), segmenter, options, sdEditor, pairs, cancellationToken);
        return MLNetMedSeg.Core.MLNet.MLNetData.ToMLNet(catalog.Owner.MLContext, generated,
            [.. generated.Schema.Where(c => c.Type is MLNetMedSeg.Data.TextColumnType or MLNetMedSeg.Data.TensorColumnType or MLNetMedSeg.Data.NumberColumnType).Select(c => c.Name)],
            cancellationToken);
    }
}
