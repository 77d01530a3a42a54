using Microsoft.ML.Trainers;

namespace MLNetMedSeg.Clustering;

/// <summary>
/// Options of the image clustering stage (<c>ml.MedSeg().Transforms.ClusterImages</c>; paper 004 §3.2 step 1). The
/// defaults follow the paper where it says something: 20 clusters, k-means with k-means++ seeding (scikit-learn's
/// KMeans, which the paper used), features of the images and of their masks.
/// </summary>
public sealed class ClusterImagesOptions
{
    /// <summary>The cluster column added (a number: the cluster index 0 … k − 1). Default "Cluster".</summary>
    public string OutputColumnName { get; set; } = "Cluster";

    /// <summary>The images (an <c>MLImage</c>, or float [C,H,W] in [0,1] with C = 1 or 3). Default "Image".</summary>
    public string ImageColumnName { get; set; } = "Image";

    /// <summary>
    /// The masks (float [1,H,W] in {0,1}) whose features are concatenated to the images' (paper 004 §3.2: features "for
    /// all images (including the masks)"; one cluster per pair, as each cluster then trains one diffusion model on
    /// image + mask). Default "Mask"; null clusters the images alone.
    /// </summary>
    public string? MaskColumnName { get; set; } = "Mask";

    /// <summary>k, the number of clusters (default 20, paper 004 §3.2). The data must have at least k rows.</summary>
    public int NumberOfClusters { get; set; } = 20;

    /// <summary>
    /// How ML.NET's <see cref="KMeansTrainer"/> picks the initial centroids (default k-means++, scikit-learn's default
    /// that the paper used; ML.NET's own default is <see cref="KMeansTrainer.InitializationAlgorithm.KMeansYinyang"/>).
    /// </summary>
    public KMeansTrainer.InitializationAlgorithm InitializationAlgorithm { get; set; } = KMeansTrainer.InitializationAlgorithm.KMeansPlusPlus;

    /// <summary>KMeans iterations at most (default 1000, ML.NET's).</summary>
    public int MaximumNumberOfIterations { get; set; } = 1000;

    /// <summary>KMeans stops when the relative change of its loss falls below this (default 1e-7, ML.NET's).</summary>
    public float OptimizationTolerance { get; set; } = 1e-7f;

    /// <summary>
    /// Side of the ResNet-18's input (default 224, its training size; ≥ 32). Images and masks are resized to it
    /// (bilinear, antialiased).
    /// </summary>
    public int FeatureInputSize { get; set; } = 224;

    /// <summary>Rows featurised per ResNet-18 batch (default 16).</summary>
    public int BatchSize { get; set; } = 16;

    /// <summary>
    /// Where the <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> package's <c>DnnImageModels</c> are (default null: next
    /// to the application, then the NuGet cache). Needed at Fit and at Transform: the network's weights are not saved
    /// with the model (only the centroids), so an application that loads the model references the package too.
    /// </summary>
    public string? ImageNetModelPath { get; set; }

    internal ClusterImagesOptions Clone() => (ClusterImagesOptions)MemberwiseClone();

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrEmpty(OutputColumnName, nameof(OutputColumnName));
        ArgumentException.ThrowIfNullOrEmpty(ImageColumnName, nameof(ImageColumnName));
        if (MaskColumnName is "") throw new ArgumentException("ClusterImages: MaskColumnName must be a column name or null", nameof(MaskColumnName));
        if (NumberOfClusters < 1) throw new ArgumentOutOfRangeException(nameof(NumberOfClusters), NumberOfClusters, "ClusterImages: NumberOfClusters must be ≥ 1");
        if (MaximumNumberOfIterations < 1) throw new ArgumentOutOfRangeException(nameof(MaximumNumberOfIterations), MaximumNumberOfIterations, "ClusterImages: MaximumNumberOfIterations must be ≥ 1");
        if (!(OptimizationTolerance > 0) || float.IsInfinity(OptimizationTolerance)) throw new ArgumentOutOfRangeException(nameof(OptimizationTolerance), OptimizationTolerance, "ClusterImages: OptimizationTolerance must be > 0");
        if (FeatureInputSize < 32) throw new ArgumentOutOfRangeException(nameof(FeatureInputSize), FeatureInputSize, "ClusterImages: FeatureInputSize must be ≥ 32");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "ClusterImages: BatchSize must be ≥ 1");
        if (!Enum.IsDefined(InitializationAlgorithm)) throw new ArgumentOutOfRangeException(nameof(InitializationAlgorithm), InitializationAlgorithm, "ClusterImages: unknown initialization algorithm");
        if (OutputColumnName == ImageColumnName || OutputColumnName == MaskColumnName)
            throw new ArgumentException($"ClusterImages: OutputColumnName '{OutputColumnName}' would replace an input column", nameof(OutputColumnName));
    }
}
