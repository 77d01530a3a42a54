using MLNetMedSeg;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;

namespace Microsoft.ML;

/// <summary>Evaluation of generated image sets on <c>ml.MedSeg()</c> (segmentation metrics: <see cref="MedSegCatalog.Evaluate"/>).</summary>
public static class MedSegImageQualityCatalogExtensions
{
    /// <summary>
    /// Paper 004's intrinsic evaluation of generated images (§4.4, Tables 1–2): the Fréchet ResNet-18 distance between
    /// the <paramref name="real"/> and <paramref name="generated"/> images (the Fréchet distance of ImageNet ResNet-18
    /// pooled features — not FID, see <see cref="ImageSetQuality"/>) and each set's MS-SSIM diversity (mean pairwise
    /// MS-SSIM; lower is more diverse). Both sets go through the same resize path (antialiased bilinear; a common
    /// <see cref="ImageQualityOptions.ImageSize"/> when given) — load them with the same loader too.
    /// </summary>
    /// <param name="catalog">The <c>ml.MedSeg()</c> catalog (device from the MLContext; the MS-SSIM pairs are seeded from its seed).</param>
    /// <param name="real">The real images.</param>
    /// <param name="generated">The generated images.</param>
    /// <param name="imageColumnName">The image column of <paramref name="real"/> (an <c>MLImage</c>, or float [C,H,W] in [0,1] with C = 1 or 3).</param>
    /// <param name="generatedImageColumnName">The image column of <paramref name="generated"/> (default: <paramref name="imageColumnName"/>; e.g. "SyntheticImage").</param>
    /// <param name="options">Comparison size, feature input size, MS-SSIM pairs (defaults: <see cref="ImageQualityOptions"/>).</param>
    /// <exception cref="SchemaException">A set lacks the image column, or it is not an image (named).</exception>
    /// <exception cref="InvalidDataException">A set is empty or has one image; images of different sizes without <see cref="ImageQualityOptions.ImageSize"/>.</exception>
    /// <exception cref="FileNotFoundException">The ResNet-18 package's files are not found (the message names the package).</exception>
    public static ImageSetQuality EvaluateImageQuality(this MedSegCatalog catalog, IDataView real, IDataView generated,
        string imageColumnName = "Image", string? generatedImageColumnName = null, ImageQualityOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(generated);
        string generatedColumn = generatedImageColumnName ?? imageColumnName;
        ArgumentException.ThrowIfNullOrEmpty(generatedColumn);
        // Both sets' columns are checked before the real set is read.
        MLNetData.CheckSchema(generated.Schema, s => { s.RequireTensor(generatedColumn, TensorColumnType.Image(), "EvaluateImageQuality (generated set)"); return s; });
        using var evaluator = catalog.CreateImageQualityEvaluator(real, imageColumnName, options);
        return evaluator.Evaluate(generated, generatedColumn);
    }

    /// <summary>
    /// An evaluator that compares any number of generated sets with <paramref name="real"/> (as
    /// <see cref="EvaluateImageQuality"/> does for one): the real set is read, featured and measured once, here. Dispose it.
    /// </summary>
    /// <param name="catalog">The <c>ml.MedSeg()</c> catalog (device from the MLContext; MS-SSIM pairs seeded from its seed).</param>
    /// <param name="real">The real images.</param>
    /// <param name="imageColumnName">Their column (an <c>MLImage</c>, or float [C,H,W] in [0,1] with C = 1 or 3).</param>
    /// <param name="options">Comparison size, feature input size, MS-SSIM pairs (defaults: <see cref="ImageQualityOptions"/>).</param>
    public static ImageQualityEvaluator CreateImageQualityEvaluator(this MedSegCatalog catalog, IDataView real, string imageColumnName = "Image",
        ImageQualityOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(real);
        ArgumentException.ThrowIfNullOrEmpty(imageColumnName);
        options ??= new ImageQualityOptions();
        options.Validate();
        MLNetData.CheckSchema(real.Schema, s => { s.RequireTensor(imageColumnName, TensorColumnType.Image(), "EvaluateImageQuality (real set)"); return s; });
        return new ImageQualityEvaluator(catalog.ContextFor("EvaluateImageQuality"), MLNetData.AsLibraryView(real), imageColumnName, options);
    }
}
