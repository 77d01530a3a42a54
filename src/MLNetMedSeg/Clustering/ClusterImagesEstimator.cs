using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using static TorchSharp.torch;
using MLDataView = Microsoft.ML.IDataView;

namespace MLNetMedSeg.Clustering;

/// <summary>
/// Clusters image/mask pairs (paper 004 §3.2 step 1, Fig. 2): <see cref="Fit"/> features every row — the ImageNet
/// ResNet-18's 512-d pooled features of the image, and of the mask when <see cref="ClusterImagesOptions.MaskColumnName"/>
/// is set, concatenated (the paper uses an ImageNet Inception-v3; ML.NET ships the ResNet-18 of
/// <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c>) — and fits ML.NET's own <see cref="KMeansTrainer"/> on those features
/// with k = <see cref="ClusterImagesOptions.NumberOfClusters"/> (20), seeded from the MLContext's seed and this stage's
/// name (one thread, so that the same seed gives the same clusters). The result, a <see cref="ClusterImagesTransformer"/>,
/// adds the cluster column. Make it with <c>ml.MedSeg().Transforms.ClusterImages(...)</c>.
/// </summary>
public sealed class ClusterImagesEstimator : Microsoft.ML.IEstimator<ClusterImagesTransformer>
{
    private readonly MedSegContext _context;
    private readonly ClusterImagesOptions _options;

    internal ClusterImagesEstimator(MedSegContext context, ClusterImagesOptions options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        _context = context;
        _options = options.Clone();
        _options.Validate();
    }

    /// <summary>A copy of the options.</summary>
    public ClusterImagesOptions Options => _options.Clone();

    /// <summary>ML.NET schema propagation: checks the image (and mask) column, naming a missing or wrong one; adds the cluster column.</summary>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) =>
        MLContextBridge.PropagateShape(inputSchema, s => ClusterImagesTransformer.OutputSchema(_options, s));

    /// <summary>
    /// Features every row of <paramref name="input"/> and fits KMeans. The columns are checked before any row is read;
    /// fewer rows than clusters is an error saying both numbers.
    /// </summary>
    public ClusterImagesTransformer Fit(MLDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        MLNetData.CheckSchema(input.Schema, s => ClusterImagesTransformer.OutputSchema(_options, s));
        var o = _options;
        var network = new ImageNetFeatures(o.ImageNetModelPath, o.FeatureInputSize, _context.Device);
        try
        {
            using var scope = NewDisposeScope();
            var features = ReadFeatures(network, MLNetData.AsLibraryView(input));
            long n = features.size(0);
            if (n < o.NumberOfClusters)
                throw new InvalidDataException($"{ClusterImagesTransformer.Name}: the data has {n} row(s), fewer than the {o.NumberOfClusters} clusters asked for (NumberOfClusters)");
            var centroids = FitKMeans(features);
            var sizes = ClusterImagesTransformer.Assign(features, centroids).bincount(null, o.NumberOfClusters).data<long>().ToArray();
            _context.WriteLog(LogLevel.Info, ClusterImagesTransformer.Name,
                $"{n} rows in {o.NumberOfClusters} clusters of sizes {string.Join(", ", sizes.Select(s => s.ToString(CultureInfo.InvariantCulture)))}");
            return new ClusterImagesTransformer(_context, o, centroids, sizes, network);
        }
        catch
        {
            network.Dispose();
            throw;
        }
    }

    /// <summary>Features [N, D] (float32, CPU) of every row, computed <see cref="ClusterImagesOptions.BatchSize"/> rows at a time.</summary>
    private Tensor ReadFeatures(ImageNetFeatures network, Data.IDataView data)
    {
        var o = _options;
        string[] columns = o.MaskColumnName is { } m ? [o.ImageColumnName, m] : [o.ImageColumnName];
        var parts = new List<Tensor>();
        var images = new List<Tensor>();
        var masks = new List<Tensor>();
        var positions = new List<long>();
        void Flush()
        {
            if (images.Count == 0) return;
            parts.Add(ClusterImagesTransformer.Featurize(network, o, images, o.MaskColumnName is null ? null : masks, positions, _context.Device)
                .DetachFromDisposeScope());
            foreach (var t in images.Concat(masks)) t.Dispose();
            images.Clear();
            masks.Clear();
            positions.Clear();
        }
        try
        {
            using (var cursor = data.GetRowCursor(columns))
                while (cursor.MoveNext())
                {
                    _context.CancellationToken.ThrowIfCancellationRequested();
                    images.Add(cursor.GetTensor(o.ImageColumnName).clone().DetachFromDisposeScope());
                    if (o.MaskColumnName is { } mask) masks.Add(cursor.GetTensor(mask).clone().DetachFromDisposeScope());
                    positions.Add(cursor.Position);
                    if (images.Count == o.BatchSize) Flush();
                }
            Flush();
            if (parts.Count == 0) throw new InvalidDataException($"{ClusterImagesTransformer.Name}: the data has no rows (column '{o.ImageColumnName}')");
            return cat(parts, 0);
        }
        finally
        {
            foreach (var t in parts.Concat(images).Concat(masks)) t.Dispose();
        }
    }

    /// <summary>
    /// ML.NET's KMeans on <paramref name="features"/> [N, D]: in an MLContext of its own, seeded with
    /// hash(stage seed, "kmeans") — so neither the stages created before nor a second Fit change it — on one thread.
    /// Returns the centroids [k, D].
    /// </summary>
    private Tensor FitKMeans(Tensor features)
    {
        var o = _options;
        int d = (int)features.size(1);
        int seed = (int)(MedSegContext.MixSeed((ulong)_context.Seed, "kmeans", 0) & 0x7FFFFFFF);
        var ml = new MLContext(seed);
        var flat = features.contiguous().data<float>().ToArray();
        var rows = Enumerable.Range(0, (int)features.size(0)).Select(i => new FeatureRow { Features = flat.AsSpan(i * d, d).ToArray() }).ToList();
        var definition = SchemaDefinition.Create(typeof(FeatureRow));
        definition[nameof(FeatureRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, d);
        var data = ml.Data.LoadFromEnumerable(rows, definition);
        var trainer = ml.Clustering.Trainers.KMeans(new KMeansTrainer.Options
        {
            FeatureColumnName = nameof(FeatureRow.Features),
            NumberOfClusters = o.NumberOfClusters,
            InitializationAlgorithm = o.InitializationAlgorithm,
            MaximumNumberOfIterations = o.MaximumNumberOfIterations,
            OptimizationTolerance = o.OptimizationTolerance,
            NumberOfThreads = 1,
        });
        var model = trainer.Fit(data);
        VBuffer<float>[] centroids = [];
        model.Model.GetClusterCentroids(ref centroids, out int k);
        if (k != o.NumberOfClusters) throw new InvalidOperationException($"{ClusterImagesTransformer.Name}: KMeans returned {k} clusters, {o.NumberOfClusters} were asked for");
        var values = new float[k * d];
        for (int c = 0; c < k; c++)
        {
            var dense = centroids[c].DenseValues().ToArray();
            if (dense.Length != d) throw new InvalidOperationException($"{ClusterImagesTransformer.Name}: centroid {c} has {dense.Length} values, {d} expected");
            dense.CopyTo(values, c * d);
        }
        return tensor(values, [k, d]);
    }

    /// <summary>One row of KMeans' training data.</summary>
    internal sealed class FeatureRow
    {
        public float[] Features { get; set; } = [];
    }
}
