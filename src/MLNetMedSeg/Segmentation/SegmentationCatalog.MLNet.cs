using MLNetMedSeg;
using MLNetMedSeg.Dasp;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Cdal;
using MLNetMedSeg.Segmentation.Networks;

namespace Microsoft.ML;

/// <summary>Segmentation trainers (<c>ml.MedSeg().Trainers</c>).</summary>
public static class MedSegTrainersCatalogExtensions
{
    /// <summary>
    /// Trains a segmentation network — U-Net (default), U-Net++, LinkNet or DeepLabv3+ — on image/mask pairs with Adam
    /// and the soft Dice + BCE loss (paper 000 §3.4). <paramref name="imageColumnName"/>: <c>MLImage</c> (from
    /// <c>LoadImages</c>/<c>ResizeImages</c>) or float [C,H,W]; <paramref name="labelColumnName"/>: float [1,H,W] in
    /// {0,1} (from <c>LoadMasks</c>). The fitted model adds <c>Probability</c> and <c>Predicted</c>, float [1,H,W].
    /// </summary>
    public static SegmentationTrainer Segmentation(this MedSegTrainersCatalog catalog,
        SegmentationArchitecture architecture = SegmentationArchitecture.UNet, string labelColumnName = "Mask",
        string imageColumnName = "Image", int epochs = 20, int batchSize = 16, double learningRate = 1e-3)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var o = new SegmentationTrainerOptions
        {
            MaskColumn = labelColumnName, ImageColumn = imageColumnName, Epochs = epochs, BatchSize = batchSize, LearningRate = learningRate,
        };
        o.Network.Architecture = architecture;
        return catalog.Segmentation(o);
    }

    /// <summary>Trains a segmentation network with every option (network, loss, schedule, validation, checkpoints, precision).</summary>
    public static SegmentationTrainer Segmentation(this MedSegTrainersCatalog catalog, SegmentationTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new SegmentationTrainer(catalog.ContextFor("Segmentation"), options);
    }

    /// <summary>
    /// Trains cDAL (Hejrati et al., paper 003): a conditional label diffusion with very few steps whose generator predicts
    /// the clean mask from the noisy one, the timestep, a random latent and the image, with a time-step discriminator whose
    /// feature maps weigh the label the generator learns from (§2, Algorithm 1). Columns as
    /// <see cref="Segmentation(MedSegTrainersCatalog, SegmentationArchitecture, string, string, int, int, double)"/> (square
    /// images); the fitted <see cref="CdalTransformer"/> adds <c>Probability</c> (the mean of <paramref name="samples"/>
    /// samples, Algorithm 2) and <c>Predicted</c> (mean ≥ 0.5), float [1,H,W], as the segmentation trainer's model does.
    /// <para>
    /// Paper settings: <paramref name="timesteps"/> T = 2 (§3.2, CXR and Hippocampus; 4 for MoNuSeg), β ∈ [0.1, 20]
    /// (Algorithm 1), <paramref name="samples"/> = 5 (§3.2), <paramref name="attentionScale"/> = 16 (Table 1's best CXR
    /// row: 16×16 discriminator features; 32 for MoNuSeg), <paramref name="latentDim"/> L = 100 (the code's nz), Adam
    /// 2e-4 / 1e-5 with betas (0.5, 0.9) and cosine annealing per epoch (the public code). Not the paper's: the network
    /// is <see cref="CdalTrainerOptions.CpuSizedModel"/> (base width 32, 4 levels) rather than the paper's 6-level
    /// 256² NCSN++ generator, which is impractical on a CPU; the image side is the data's (the paper uses 256²; any
    /// side divisible by 8 with a 16-px discriminator level works here, e.g. 16–128); 50 epochs and batch 8 by default.
    /// Pass a <see cref="CdalTrainerOptions"/> with <c>Cdal = new CdalOptions()</c> for the paper's network.
    /// </para>
    /// </summary>
    /// <param name="catalog">The trainers catalog.</param>
    /// <param name="labelColumnName">Binary masks, float [1,H,W] in {0,1} (default "Mask").</param>
    /// <param name="imageColumnName">Images, <c>MLImage</c> or float [3,H,W], square (default "Image").</param>
    /// <param name="epochs">Training epochs (default 50).</param>
    /// <param name="batchSize">Batch size (default 8, the code's CXR setting).</param>
    /// <param name="timesteps">Diffusion steps T (default 2).</param>
    /// <param name="samples">Samples averaged per image at prediction (default 5).</param>
    /// <param name="attentionScale">Side of the discriminator feature maps whose channel mean is the attention map (default 16).</param>
    /// <param name="latentDim">Dimension L of the latent z (default 100).</param>
    public static CdalTrainer Cdal(this MedSegTrainersCatalog catalog, string labelColumnName = "Mask", string imageColumnName = "Image",
        int epochs = 50, int batchSize = 8, int timesteps = 2, int samples = 5, int attentionScale = 16, int latentDim = 100)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var model = CdalTrainerOptions.CpuSizedModel();
        model.Timesteps = timesteps;
        model.Samples = samples;
        model.AttentionScale = attentionScale;
        model.LatentDim = latentDim;
        return catalog.Cdal(new CdalTrainerOptions
        {
            Cdal = model, MaskColumn = labelColumnName, ImageColumn = imageColumnName, Epochs = epochs, BatchSize = batchSize,
        });
    }

    /// <summary>Trains cDAL with every option (model and networks, ablation switches, schedule, validation, checkpoints); see <see cref="CdalTrainerOptions"/>.</summary>
    public static CdalTrainer Cdal(this MedSegTrainersCatalog catalog, CdalTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new CdalTrainer(catalog.ContextFor("Cdal"), options);
    }

    /// <summary>
    /// The whole DASP flow (paper 000, Fig. 2) as one trainer: a Bernoulli mask diffusion draws unseen masks (§3.1), a
    /// mask-conditioned image diffusion draws an image for each (§3.2), uncertainty-weighted Diff-PGD with SDEdit attacks
    /// those images against the segmenter being trained (§3.3, Eq. 9–10: K = 10, γ = 1/255, T^s = 3, σ² = 4), and the
    /// segmenter learns from the real and the attacked pairs (§3.4, Eq. 11). Columns as
    /// <see cref="Segmentation(MedSegTrainersCatalog, SegmentationArchitecture, string, string, int, int, double)"/>;
    /// the fitted model is the segmenter (it adds <c>Probability</c> and <c>Predicted</c>, float [1,H,W]) with the two
    /// generators saved beside it. The segmenter's defaults are paper 000's Kvasir-SEG settings (§4.1: Adam, learning
    /// rate 4e-3, 200 epochs, batch 16, N′ = 2N generated pairs); the diffusion models keep their CPU-sized defaults
    /// (<see cref="MLNetMedSeg.Diffusion.MaskDiffusionOptions"/>, <see cref="MLNetMedSeg.Diffusion.ImageDiffusionOptions"/>).
    /// </summary>
    /// <param name="catalog">The trainers catalog.</param>
    /// <param name="architecture">The segmentation backbone (default U-Net; paper 000's Table 1 reports all four).</param>
    /// <param name="labelColumnName">Binary masks, float [1,H,W] in {0,1} (default "Mask").</param>
    /// <param name="imageColumnName">Images, <c>MLImage</c> or float [3,H,W] (default "Image").</param>
    /// <param name="epochs">Segmenter epochs (default 200, §4.1).</param>
    /// <param name="batchSize">Segmenter batch size (default 16, §4.1).</param>
    /// <param name="learningRate">Segmenter Adam learning rate (default 4e-3, §4.1 for Kvasir-SEG; 1e-4 for ETIS).</param>
    /// <param name="syntheticPerImage">Generated pairs per real image (default 2: N′ = 2N, §4.1).</param>
    public static DaspEstimator Dasp(this MedSegTrainersCatalog catalog, SegmentationArchitecture architecture = SegmentationArchitecture.UNet,
        string labelColumnName = "Mask", string imageColumnName = "Image", int epochs = 200, int batchSize = 16, double learningRate = 4e-3,
        int syntheticPerImage = 2)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var o = new DaspOptions { MaskColumn = labelColumnName, ImageColumn = imageColumnName, SyntheticPerImage = syntheticPerImage };
        o.Segmentation.Network.Architecture = architecture;
        o.Segmentation.Epochs = epochs;
        o.Segmentation.BatchSize = batchSize;
        o.Segmentation.LearningRate = learningRate;
        return catalog.Dasp(o);
    }

    /// <summary>The DASP flow with every option (each part's own options, the attack or none, offline or online attacks, figures).</summary>
    public static DaspEstimator Dasp(this MedSegTrainersCatalog catalog, DaspOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new DaspEstimator(catalog.ContextFor("Dasp"), options);
    }
}
