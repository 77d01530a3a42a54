using MLNetMedSeg;
using MLNetMedSeg.Clustering;

namespace Microsoft.ML;

/// <summary>Image clustering on <c>ml.MedSeg().Transforms</c> (paper 004 §3.2 step 1).</summary>
public static class MedSegClusteringCatalogExtensions
{
    /// <summary>
    /// Clusters images — with their masks, by default — into <paramref name="numberOfClusters"/> groups by similarity
    /// (paper 004 §3.2, Fig. 2): ImageNet ResNet-18 features of each image and of its mask, concatenated (the paper
    /// uses an ImageNet Inception-v3; ML.NET ships the ResNet-18 of the <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c>
    /// package, which the application must reference), clustered with ML.NET's KMeans (k-means++, seeded from the
    /// MLContext). The fitted stage adds <paramref name="outputColumnName"/>, the cluster index 0 … k − 1 as a number;
    /// it saves with <c>ml.Model.Save</c> (its centroids and options).
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">The cluster column (default "Cluster").</param>
    /// <param name="imageColumnName">The images: an <c>MLImage</c> (LoadImages/ResizeImages) or float [C,H,W] in [0,1] (default "Image").</param>
    /// <param name="maskColumnName">The masks, float [1,H,W] in {0,1}, featured with the images (default "Mask"; null: images alone).</param>
    /// <param name="numberOfClusters">k (default 20, the paper's).</param>
    public static ClusterImagesEstimator ClusterImages(this MedSegTransformsCatalog catalog, string outputColumnName = "Cluster",
        string imageColumnName = "Image", string? maskColumnName = "Mask", int numberOfClusters = 20)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.ClusterImages(new ClusterImagesOptions
        {
            OutputColumnName = outputColumnName, ImageColumnName = imageColumnName, MaskColumnName = maskColumnName,
            NumberOfClusters = numberOfClusters,
        });
    }

    /// <summary>Clusters images with every option (KMeans initialisation and iterations, feature input size, batch size, model path).</summary>
    public static ClusterImagesEstimator ClusterImages(this MedSegTransformsCatalog catalog, ClusterImagesOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new ClusterImagesEstimator(catalog.ContextFor(ClusterImagesTransformer.Name), options);
    }
}
