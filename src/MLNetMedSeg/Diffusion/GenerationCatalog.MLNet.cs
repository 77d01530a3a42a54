using MLNetMedSeg;
using MLNetMedSeg.Diffusion;

namespace Microsoft.ML;

/// <summary>Generative stages (<c>ml.MedSeg().Generation</c>): Bernoulli mask diffusion, mask-conditioned image diffusion.</summary>
public static class MedSegGenerationCatalogExtensions
{
    /// <summary>
    /// Trains a Bernoulli diffusion model of binary masks (DASP, paper 000 §3.1: forward process Eq. 2–3, the network
    /// predicts the flip noise y_t ⊕ y_0 under the BCE loss of Eq. 5; BerDiff's settings, which DASP follows, §4.1) on
    /// <paramref name="maskColumnName"/> (float [1,H,W] in {0,1}, e.g. from <c>LoadMasks</c>; H and W divisible by 4).
    /// The fitted model adds <paramref name="outputColumnName"/>, float [1,H,W] in {0,1}, a mask sampled with the
    /// strided (respaced) reverse process, and a <c>SampleIndex</c> number column; with
    /// <paramref name="samplesPerRow"/> = k it gives k rows per input row (DASP draws N′ = 2N masks, §4.1).
    /// </summary>
    /// <param name="catalog">The generation catalog.</param>
    /// <param name="outputColumnName">The generated mask column (default "SyntheticMask").</param>
    /// <param name="maskColumnName">The training masks (default "Mask").</param>
    /// <param name="samplesPerRow">Masks drawn per input row, k (default 1).</param>
    /// <param name="epochs">Training epochs (default 50: a CPU-sized run at 64 px; the papers train for days on GPUs).</param>
    /// <param name="batchSize">Masks per step (default 16, paper 000 §4.1).</param>
    /// <param name="learningRate">Adam learning rate (default 2e-3, the library's choice for short CPU runs; BerDiff uses 1e-4 for long GPU runs).</param>
    /// <param name="diffusionSteps">T of Eq. 2 (default 1000, BerDiff and DASP).</param>
    /// <param name="samplingSteps">Reverse steps used to sample, the T-step schedule respaced (default 50).</param>
    public static MaskDiffusionEstimator MaskDiffusion(this MedSegGenerationCatalog catalog, string outputColumnName = "SyntheticMask",
        string maskColumnName = "Mask", int samplesPerRow = 1, int epochs = 50, int batchSize = 16, double learningRate = 2e-3,
        int diffusionSteps = 1000, int samplingSteps = 50)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.MaskDiffusion(new MaskDiffusionOptions
        {
            OutputColumn = outputColumnName, MaskColumn = maskColumnName, SamplesPerRow = samplesPerRow, Epochs = epochs,
            BatchSize = batchSize, LearningRate = learningRate, Steps = diffusionSteps, SampleSteps = samplingSteps,
        });
    }

    /// <summary>
    /// Trains a Bernoulli mask diffusion model with every option (network, schedule, KL weight, EMA, image condition,
    /// sample grids); see <see cref="MaskDiffusionOptions"/>.
    /// </summary>
    public static MaskDiffusionEstimator MaskDiffusion(this MedSegGenerationCatalog catalog, MaskDiffusionOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new MaskDiffusionEstimator(catalog.ContextFor("MaskDiffusion"), options);
    }

    /// <summary>
    /// Trains a mask-conditioned Gaussian diffusion model of images (DASP, paper 000 §3.2: forward process Eq. 6, reverse
    /// Eq. 7, the ε-MSE loss of Eq. 8; the ADM U-Net of [8] with the mask concatenated to x_t) on
    /// <paramref name="imageColumnName"/> (an <c>MLImage</c> from <c>LoadImages</c>/<c>ResizeImages</c>, or float
    /// [C,H,W] in [0,1]) and <paramref name="maskColumnName"/> (float [1,H,W] in {0,1}). The fitted model adds
    /// <paramref name="outputColumnName"/>, float [C,H,W] in [0,1]: an image drawn for the mask in
    /// <paramref name="conditionColumnName"/> ("SyntheticMask" after <see cref="MaskDiffusion(MedSegGenerationCatalog, string, string, int, int, int, double, int, int)"/>),
    /// with DDIM (η = 0) or DDPM over <paramref name="samplingSteps"/> respaced steps; row r's noise is seeded by r.
    /// The fitted model is also the SDEdit model of <c>ml.MedSeg().Augmentation.DiffPgd</c>.
    /// </summary>
    /// <param name="catalog">The generation catalog.</param>
    /// <param name="outputColumnName">The generated image column (default "SyntheticImage").</param>
    /// <param name="conditionColumnName">The mask column images are drawn for at transform time (default "Mask").</param>
    /// <param name="imageColumnName">The training images (default "Image").</param>
    /// <param name="maskColumnName">The training masks (default "Mask").</param>
    /// <param name="epochs">Training epochs (default 20: a CPU-sized run at 64 px).</param>
    /// <param name="batchSize">Images per step (default 8, CPU-sized; ADM uses 256 on GPUs).</param>
    /// <param name="learningRate">Adam learning rate (default 1e-4, ADM's [8], which DASP follows, §4.1).</param>
    /// <param name="diffusionSteps">T′ of Eq. 6 (default 1000, DDPM/ADM; linear β schedule).</param>
    /// <param name="sampler">DDIM (default, deterministic given the noise) or DDPM ancestral sampling (Eq. 7).</param>
    /// <param name="samplingSteps">Respaced sampling steps (default 50).</param>
    public static ImageDiffusionEstimator ImageDiffusion(this MedSegGenerationCatalog catalog, string outputColumnName = "SyntheticImage",
        string conditionColumnName = "Mask", string imageColumnName = "Image", string maskColumnName = "Mask", int epochs = 20,
        int batchSize = 8, double learningRate = 1e-4, int diffusionSteps = 1000, GaussianSamplerKind sampler = GaussianSamplerKind.Ddim,
        int samplingSteps = 50)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.ImageDiffusion(new ImageDiffusionOptions
        {
            OutputColumn = outputColumnName, ConditionColumn = conditionColumnName, ImageColumn = imageColumnName, MaskColumn = maskColumnName,
            Epochs = epochs, BatchSize = batchSize, LearningRate = learningRate, TimeSteps = diffusionSteps, Sampler = sampler,
            SampleSteps = samplingSteps,
        });
    }

    /// <summary>
    /// Trains a mask-conditioned image diffusion model with every option (network, channels, schedule, EMA,
    /// classifier-free guidance, DDIM η, sample grids); see <see cref="ImageDiffusionOptions"/>.
    /// </summary>
    public static ImageDiffusionEstimator ImageDiffusion(this MedSegGenerationCatalog catalog, ImageDiffusionOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new ImageDiffusionEstimator(catalog.ContextFor("ImageDiffusion"), options);
    }

    /// <summary>
    /// Draws generated pairs for their own sake (a synthetic data set, a figure): for every row of
    /// <paramref name="input"/> (one row per pair wanted, e.g. ids from <c>ml.Data.LoadFromEnumerable</c>) the mask
    /// model samples k masks (its <c>SamplesPerRow</c>) and the image model an image for each. Inside a chain before a
    /// segmentation trainer the mask diffusion is an augmenter that adds no column ML.NET sees; this call is the way to
    /// get the pairs themselves. The result is computed now and held in memory, as an ML.NET data view with the
    /// input's text columns (e.g. <c>Id</c>), the mask model's output column (float [1,H,W] in {0,1}, default
    /// "SyntheticMask") and the image model's (float [C,H,W] in [0,1], default "SyntheticImage"), both vectors with
    /// their dimensions. Read them with <see cref="MLNetMedSeg.Core.MLNet.MLNetData.ReadTensors"/>.
    /// </summary>
    /// <exception cref="MLNetMedSeg.Data.SchemaException">The image model's condition column is not the mask model's output.</exception>
    public static IDataView GeneratePairs(this MedSegGenerationCatalog catalog, MaskDiffusionTransformer masks,
        ImageDiffusionTransformer images, IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(input);
        var engine = images.Transform(masks.Transform(MLNetMedSeg.Core.MLNet.MLNetData.AsLibraryView(input)));
        return MLNetMedSeg.Core.MLNet.MLNetData.ToMLNet(catalog.Owner.MLContext, engine,
            [.. input.Schema.Where(c => !c.IsHidden && c.Type is Microsoft.ML.Data.TextDataViewType).Select(c => c.Name),
             masks.Options.OutputColumn, images.Options.OutputColumn], cancellationToken);
    }
}
