using MLNetMedSeg;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Synthesis;

namespace Microsoft.ML;

/// <summary>
/// Synthetic image + mask pairs (<c>ml.MedSeg().Generation</c>), paper 004 (Saragih et al.): joint image + mask
/// diffusion (on all data or per cluster), RePaint inpainting of the polyp region of real images, and diffusion styling
/// of the inpainted images towards the originals.
/// </summary>
public static class MedSegSynthesisCatalogExtensions
{
    /// <summary>
    /// Trains a joint image + mask diffusion model (paper 004 §3.2, §4.1: the ADM U-Net with the mask as a 4th input and
    /// output channel, unconditional; Appendix A.1's ε-MSE) on <paramref name="imageColumnName"/> (an <c>MLImage</c> or
    /// float [C,H,W] in [0,1]) and <paramref name="maskColumnName"/> (float [1,H,W] in {0,1}, the same size) — on all
    /// rows, or with <paramref name="clusterColumnName"/> (text or number) one model per distinct value. The fitted
    /// model gives <paramref name="samplesPerRow"/> rows per input row, each adding a generated pair:
    /// <paramref name="outputImageColumnName"/> (float [C,H,W] in [0,1]) and <paramref name="outputMaskColumnName"/> (float
    /// [1,H,W] in {0,1}), from the row's cluster's model. Defaults are CPU-sized; <see cref="JointDiffusionOptions.PaperPreset"/>
    /// has Table A.1's.
    /// </summary>
    /// <param name="catalog">The generation catalog.</param>
    /// <param name="outputImageColumnName">The generated image column (default "SyntheticImage").</param>
    /// <param name="outputMaskColumnName">The generated mask column (default "SyntheticMask").</param>
    /// <param name="imageColumnName">The training images (default "Image").</param>
    /// <param name="maskColumnName">The training masks (default "Mask").</param>
    /// <param name="clusterColumnName">The cluster column for one model per cluster, or null (default) for one model.</param>
    /// <param name="samplesPerRow">Pairs per input row (default 1).</param>
    /// <param name="epochs">Training epochs per model (default 20, CPU-sized; the paper: 110,000 iterations at batch 1).</param>
    /// <param name="batchSize">Pairs per step (default 8; Table A.1: 1).</param>
    /// <param name="learningRate">Adam learning rate (default 1e-4, Table A.1).</param>
    /// <param name="diffusionSteps">T (default 1000, Table A.1; linear β schedule).</param>
    /// <param name="samplingSteps">Respaced DDIM steps of the generator (default 50; Table A.1's timestep_respacing: 200).</param>
    public static JointDiffusionEstimator JointDiffusion(this MedSegGenerationCatalog catalog, string outputImageColumnName = "SyntheticImage",
        string outputMaskColumnName = "SyntheticMask", string imageColumnName = "Image", string maskColumnName = "Mask", string? clusterColumnName = null,
        int samplesPerRow = 1, int epochs = 20, int batchSize = 8, double learningRate = 1e-4, int diffusionSteps = 1000, int samplingSteps = 50)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.JointDiffusion(new JointDiffusionOptions
        {
            OutputImageColumn = outputImageColumnName, OutputMaskColumn = outputMaskColumnName, ImageColumn = imageColumnName,
            MaskColumn = maskColumnName, ClusterColumnName = clusterColumnName, SamplesPerRow = samplesPerRow, Epochs = epochs,
            BatchSize = batchSize, LearningRate = learningRate, TimeSteps = diffusionSteps, SampleSteps = samplingSteps,
        });
    }

    /// <summary>Trains a joint image + mask diffusion model with every option (see <see cref="JointDiffusionOptions"/>).</summary>
    public static JointDiffusionEstimator JointDiffusion(this MedSegGenerationCatalog catalog, JointDiffusionOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new JointDiffusionEstimator(catalog.ContextFor("JointDiffusion"), options);
    }

    /// <summary>
    /// RePaint inpainting (paper 004 §4.2, Appendix A.1.1, Table A.2; Lugmayr et al. 2022) with a fitted diffusion model:
    /// a <see cref="JointDiffusionTransformer"/> or an <see cref="ImageDiffusionTransformer"/> — or a fitted chain (e.g.
    /// loaded with <c>ml.Model.Load</c>) or RePaint stage whose last such model is used. For every row it gives
    /// <paramref name="samplesPerImage"/> rows, each adding <paramref name="outputColumnName"/> (float [C,H,W] in [0,1]):
    /// the image with the region under the mask dilated by <paramref name="dilationPixels"/> px regenerated and the rest
    /// kept exactly; the new pair is (that image, the row's mask).
    /// </summary>
    /// <param name="catalog">The generation catalog.</param>
    /// <param name="diffusionModel">The fitted diffusion model (not disposed by the stage).</param>
    /// <param name="outputColumnName">The inpainted image column (default "InpaintedImage").</param>
    /// <param name="imageColumnName">The real images (default "Image").</param>
    /// <param name="maskColumnName">The real masks (default "Mask").</param>
    /// <param name="samplesPerImage">Inpainted samples per image (default 3, §4.2).</param>
    /// <param name="dilationPixels">Mask dilation radius in px (default 20, §3.2).</param>
    /// <param name="samplingSteps">RePaint's T, the model's schedule respaced (default 250, RePaint's).</param>
    /// <param name="jumpLength">Jump length (default 10, Table A.2).</param>
    /// <param name="jumpResamplings">Jump resamplings, jump_n_sample (default 5, Table A.2).</param>
    public static RePaintEstimator RePaint(this MedSegGenerationCatalog catalog, ITransformer diffusionModel, string outputColumnName = "InpaintedImage",
        string imageColumnName = "Image", string maskColumnName = "Mask", int samplesPerImage = 3, int dilationPixels = 20, int samplingSteps = 250,
        int jumpLength = 10, int jumpResamplings = 5)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.RePaint(diffusionModel, new RePaintOptions
        {
            OutputColumn = outputColumnName, ImageColumn = imageColumnName, MaskColumn = maskColumnName, SamplesPerImage = samplesPerImage,
            DilationPixels = dilationPixels, SampleSteps = samplingSteps, JumpLength = jumpLength, JumpResamplings = jumpResamplings,
        });
    }

    /// <summary>RePaint inpainting with every option (see <see cref="RePaintOptions"/>).</summary>
    public static RePaintEstimator RePaint(this MedSegGenerationCatalog catalog, ITransformer diffusionModel, RePaintOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(diffusionModel);
        ArgumentNullException.ThrowIfNull(options);
        var model = FindDiffusionModel(diffusionModel)
            ?? throw new ArgumentException(
                $"RePaint needs a fitted JointDiffusion or ImageDiffusion model (or a chain holding one); got a {diffusionModel.GetType().Name}", nameof(diffusionModel));
        return new RePaintEstimator(catalog.ContextFor("RePaint"), model, options);
    }

    /// <summary>
    /// Diffusion styling (paper 004 §3.2, Appendix A.1.2, Table A.3; DiffuseIT, ZeCon) with a fitted diffusion model: a
    /// <see cref="JointDiffusionTransformer"/> or an <see cref="ImageDiffusionTransformer"/> — or a fitted chain or
    /// RePaint/Style stage whose last such model is used. Every row gains <paramref name="outputColumnName"/> (float
    /// [C,H,W] in [0,1]): <paramref name="sourceColumnName"/> (e.g. RePaint's inpainted image) noised to the skip depth and
    /// brought back by reverse steps guided towards <paramref name="targetColumnName"/> (the original image) by the
    /// content and style losses of Table A.3, with the paper's weights. The paper's VGG and DINO ViT are replaced by the
    /// ImageNet ResNet-18 of <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> (see <see cref="StyleOptions"/>).
    /// </summary>
    /// <param name="catalog">The generation catalog.</param>
    /// <param name="diffusionModel">The fitted diffusion model (not disposed by the stage).</param>
    /// <param name="outputColumnName">The styled image column (default "StyledImage").</param>
    /// <param name="sourceColumnName">The images to style (default "InpaintedImage").</param>
    /// <param name="targetColumnName">The target images x₀ (default "Image").</param>
    /// <param name="maskColumnName">The masks (default "Mask").</param>
    /// <param name="samplingSteps">The model's schedule respaced to this many steps (default 20, CPU-sized; Table A.1: 200).</param>
    /// <param name="skipSteps">Respaced steps skipped at the noisy end (default 8; Table A.1: 80).</param>
    public static StyleEstimator Style(this MedSegGenerationCatalog catalog, ITransformer diffusionModel, string outputColumnName = "StyledImage",
        string sourceColumnName = "InpaintedImage", string targetColumnName = "Image", string maskColumnName = "Mask", int samplingSteps = 20, int skipSteps = 8)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.Style(diffusionModel, new StyleOptions
        {
            OutputColumn = outputColumnName, SourceColumn = sourceColumnName, TargetColumn = targetColumnName, MaskColumn = maskColumnName,
            SampleSteps = samplingSteps, SkipSteps = skipSteps,
        });
    }

    /// <summary>Diffusion styling with every option (see <see cref="StyleOptions"/>; <see cref="StyleOptions.PaperPreset"/> for Table A.1/A.3).</summary>
    public static StyleEstimator Style(this MedSegGenerationCatalog catalog, ITransformer diffusionModel, StyleOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(diffusionModel);
        ArgumentNullException.ThrowIfNull(options);
        var model = FindDiffusionModel(diffusionModel)
            ?? throw new ArgumentException(
                $"Style needs a fitted JointDiffusion or ImageDiffusion model (or a chain holding one); got a {diffusionModel.GetType().Name}", nameof(diffusionModel));
        return new StyleEstimator(catalog.ContextFor("Style"), model, options);
    }

    private static MLNetMedSeg.Core.MLNet.StageTransformer? FindDiffusionModel(ITransformer t) => t switch
    {
        JointDiffusionTransformer j => j,
        ImageDiffusionTransformer i => i,
        RePaintTransformer r => FindDiffusionModel(r.Model),
        StyleTransformer s => FindDiffusionModel(s.Model),
        IEnumerable<ITransformer> chain => chain.Reverse().Select(FindDiffusionModel).FirstOrDefault(m => m is not null),
        _ => null,
    };
}
