using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Clustering;

/// <summary>
/// The fitted image clustering stage (paper 004 §3.2 step 1): it features each row's image — and mask, concatenated —
/// with the ImageNet ResNet-18 (<see cref="ImageNetFeatures"/>) and adds the index of the nearest of the k centroids
/// that ML.NET's KMeans fitted (squared Euclidean distance, as KMeans assigns), as a number column (0 … k − 1;
/// ML.NET's own KMeans predicts a 1-based key). Filter one cluster with
/// <c>ml.Data.FilterRowsByColumn(data, "Cluster", c, c + 1)</c>; <see cref="WriteExamples"/> draws a few images per
/// cluster (the paper's Fig. 2). Lazy: features are computed when a cursor asks for the column, each time — cache the
/// output (<c>ml.Data.Cache</c>) before filtering it k times. Saved by <c>ml.Model.Save</c> with its options and its
/// centroids; the ResNet-18 itself is read from the <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> package when the
/// loaded model first transforms. Dispose it to free the network.
/// </summary>
public sealed class ClusterImagesTransformer : StageTransformer, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.CLUSTERIMAGES";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    internal const string Name = "ClusterImages";
    private readonly MedSegContext _context;
    private readonly ClusterImagesOptions _options;
    private readonly Tensor _centroids;
    private readonly long[] _clusterSizes;
    private readonly object _networkLock = new();
    private ImageNetFeatures? _network;
    private bool _disposed;

    /// <summary>
    /// A fitted stage: <paramref name="centroids"/> [k, D] (copied), the training rows per cluster, and optionally the
    /// ResNet-18 the fit used (then owned by this transformer).
    /// </summary>
    internal ClusterImagesTransformer(MedSegContext context, ClusterImagesOptions options, Tensor centroids, long[] clusterSizes, ImageNetFeatures? network = null)
    {
        _context = context;
        _options = options.Clone();
        _options.Validate();
        if (centroids.dim() != 2 || centroids.size(0) != _options.NumberOfClusters || centroids.size(1) != FeatureDimensionOf(_options))
            throw new InvalidDataException($"{Name}: centroids must be [{_options.NumberOfClusters}, {FeatureDimensionOf(_options)}], got [{string.Join(",", centroids.shape)}]");
        if (clusterSizes.Length != _options.NumberOfClusters)
            throw new InvalidDataException($"{Name}: {clusterSizes.Length} cluster sizes for {_options.NumberOfClusters} clusters");
        using (var scope = NewDisposeScope())
            _centroids = centroids.detach().to(ScalarType.Float32, CPU).contiguous().clone().DetachFromDisposeScope();
        _clusterSizes = [.. clusterSizes];
        _network = network;
    }

    /// <summary>A copy of the options.</summary>
    public ClusterImagesOptions Options => _options.Clone();

    /// <summary>k.</summary>
    public int NumberOfClusters => _options.NumberOfClusters;

    /// <summary>Length of a row's feature vector: 512 (image), or 1024 (image and mask).</summary>
    public int FeatureDimension => FeatureDimensionOf(_options);

    /// <summary>How many training rows each cluster got at Fit.</summary>
    public IReadOnlyList<long> ClusterSizes => _clusterSizes;

    /// <summary>The k centroids (a copy), each of <see cref="FeatureDimension"/> features.</summary>
    public float[][] GetCentroids()
    {
        var flat = _centroids.data<float>().ToArray();
        int d = FeatureDimension;
        return Enumerable.Range(0, NumberOfClusters).Select(c => flat.AsSpan(c * d, d).ToArray()).ToArray();
    }

    internal static int FeatureDimensionOf(ClusterImagesOptions o) => o.MaskColumnName is null ? 512 : 1024;

    /// <inheritdoc/>
    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(_options, inputSchema);

    /// <summary>The input schema checked (image and mask columns) plus the cluster column.</summary>
    internal static DataViewSchema OutputSchema(ClusterImagesOptions o, DataViewSchema input)
    {
        ArgumentNullException.ThrowIfNull(input);
        input.RequireTensor(o.ImageColumnName, TensorColumnType.Image(), Name);
        if (o.MaskColumnName is { } mask) input.RequireTensor(mask, TensorColumnType.BinaryMask(), Name);
        return new DataViewSchema.Builder(input).AddColumn(o.OutputColumnName, NumberColumnType.Instance).ToSchema();
    }

    /// <inheritdoc/>
    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var schema = GetOutputSchema(input.Schema);
        string[] inputs = _options.MaskColumnName is { } m ? [_options.ImageColumnName, m] : [_options.ImageColumnName];
        return new BatchedMapView(input, schema, [_options.OutputColumnName], inputs, _options.BatchSize, AssignRows);
    }

    private void AssignRows(IReadOnlyList<BatchedRow> rows)
    {
        using var scope = NewDisposeScope();
        var features = Featurize(
            rows.Select(r => r.Tensor(_options.ImageColumnName)).ToList(),
            _options.MaskColumnName is { } m ? rows.Select(r => r.Tensor(m)).ToList() : null,
            rows.Select(r => r.Position).ToList());
        var clusters = Assign(features, _centroids).data<long>().ToArray();
        for (int i = 0; i < rows.Count; i++) rows[i].Outputs[_options.OutputColumnName] = (double)clusters[i];
    }

    /// <summary>
    /// Features [B, D] (float32, CPU) of one batch of rows: the ResNet-18's pooled features of the images, then of the
    /// masks (each as RGB, resized to the network's input, bilinear and antialiased; see <c>ImageSets</c>).
    /// </summary>
    internal Tensor Featurize(IReadOnlyList<Tensor> images, IReadOnlyList<Tensor>? masks, IReadOnlyList<long> positions)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (_networkLock)
        {
            _network ??= new ImageNetFeatures(_options.ImageNetModelPath, _options.FeatureInputSize, _context.Device);
            return Featurize(_network, _options, images, masks, positions, _context.Device);
        }
    }

    internal static Tensor Featurize(ImageNetFeatures network, ClusterImagesOptions o, IReadOnlyList<Tensor> images,
        IReadOnlyList<Tensor>? masks, IReadOnlyList<long> positions, Device device)
    {
        using var scope = NewDisposeScope();
        int s = network.InputSize;
        Tensor Batch(IReadOnlyList<Tensor> xs, string column) =>
            stack(xs.Select((x, i) => ImageSets.ToRgb(x, s, s, $"{Name}: column '{column}', row {positions[i]}")).ToArray(), 0);
        var f = ImageSets.Features(network, Batch(images, o.ImageColumnName), o.BatchSize, device);
        if (masks is not null) f = cat([f, ImageSets.Features(network, Batch(masks, o.MaskColumnName!), o.BatchSize, device)], 1);
        return f.MoveToOuterDisposeScope();
    }

    /// <summary>The index (int64 [B]) of the nearest centroid, in squared Euclidean distance computed in float64.</summary>
    internal static Tensor Assign(Tensor features, Tensor centroids)
    {
        using var scope = NewDisposeScope();
        var x = features.to(ScalarType.Float64, CPU);
        var c = centroids.to(ScalarType.Float64, CPU);
        var d = (x.pow(S(2)).sum(1, keepdim: true) - S(2) * x.matmul(c.t())).Plus(c.pow(S(2)).sum(1).unsqueeze(0));
        return d.argmin(1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Writes a PNG with one row per cluster and up to <paramref name="imagesPerCluster"/> images in it — the first rows
    /// of <paramref name="data"/> that fall in the cluster, in data order — each <paramref name="tileSize"/> px square
    /// (paper 004's Fig. 2). With <paramref name="withMasks"/> each tile is (mask | image). Empty slots stay gray.
    /// Returns how many images each cluster showed.
    /// </summary>
    /// <param name="data">Rows with the image (and mask) columns, as given to Fit or Transform.</param>
    /// <param name="path">The PNG written (folders created).</param>
    /// <param name="imagesPerCluster">Images per row (default 8).</param>
    /// <param name="tileSize">Side of each image in pixels (default 64).</param>
    /// <param name="withMasks">Show each image's mask beside it (needs <see cref="ClusterImagesOptions.MaskColumnName"/>).</param>
    public int[] WriteExamples(Microsoft.ML.IDataView data, string path, int imagesPerCluster = 8, int tileSize = 64, bool withMasks = false)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentOutOfRangeException.ThrowIfLessThan(imagesPerCluster, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(tileSize, 4);
        if (withMasks && _options.MaskColumnName is null) throw new ArgumentException($"{Name}: withMasks needs MaskColumnName", nameof(withMasks));
        MLNetData.CheckSchema(data.Schema, GetOutputSchema);
        var view = Transform(MLNetData.AsLibraryView(data));
        int k = NumberOfClusters;
        var tiles = new List<Tensor>?[k];
        int filled = 0;
        using var scope = NewDisposeScope();
        string[] columns = withMasks ? [_options.ImageColumnName, _options.MaskColumnName!, _options.OutputColumnName] : [_options.ImageColumnName, _options.OutputColumnName];
        using (var cursor = view.GetRowCursor(columns))
            while (filled < k && cursor.MoveNext())
            {
                int c = (int)cursor.GetNumber(_options.OutputColumnName);
                var list = tiles[c] ??= [];
                if (list.Count >= imagesPerCluster) continue;
                string what = $"{Name}: column '{_options.ImageColumnName}', row {cursor.Position}";
                var image = ImageSets.ToRgb(cursor.GetTensor(_options.ImageColumnName), tileSize, tileSize, what);
                if (withMasks)
                {
                    var mask = ImageSets.ToRgb(cursor.GetTensor(_options.MaskColumnName!), tileSize, tileSize, what)[..1];
                    image = SampleGrid.Pairs(mask.unsqueeze(0), image.unsqueeze(0))[0];
                }
                list.Add(image);
                if (list.Count == imagesPerCluster) filled++;
            }
        long h = tileSize, w = withMasks ? 2 * tileSize + 2 : tileSize;
        var blank = full([3, h, w], S(0.5f));
        var all = new List<Tensor>();
        for (int c = 0; c < k; c++)
            for (int j = 0; j < imagesPerCluster; j++)
                all.Add(tiles[c] is { } l && j < l.Count ? l[j] : blank);
        SampleGrid.Write(path, stack(all, 0), imagesPerCluster);
        return tiles.Select(l => l?.Count ?? 0).ToArray();
    }

    /// <inheritdoc/>
    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.WriteHeader(LoaderSignature, CurrentVersion, 1);
        context.WriteOptions(_options);
        using var sizes = tensor(_clusterSizes);
        context.WriteTensors("centroids", new Dictionary<string, Tensor> { ["centroids"] = _centroids, ["cluster_sizes"] = sizes });
    }

    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static ClusterImagesTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    /// <summary>Rebuilds a saved stage: options, then the centroids checked against k and the feature dimension.</summary>
    internal static ClusterImagesTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.ReadOptions<ClusterImagesOptions>(CurrentVersion);
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{LoaderSignature}: the saved options are invalid: {e.Message}", e);
        }
        // A path of the machine that fitted the model: fall back to the default places when it is not here.
        if (options.ImageNetModelPath is { } p && !Directory.Exists(p) && !File.Exists(p)) options.ImageNetModelPath = null;
        var tensors = context.ReadTensors("centroids", CPU, new Dictionary<string, long[]>
        {
            ["centroids"] = [options.NumberOfClusters, FeatureDimensionOf(options)],
            ["cluster_sizes"] = [options.NumberOfClusters],
        });
        try
        {
            return new ClusterImagesTransformer(context.Context, options, tensors["centroids"], tensors["cluster_sizes"].data<long>().ToArray());
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
    }

    /// <summary>Frees the centroids and the network.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        lock (_networkLock)
        {
            _network?.Dispose();
            _network = null;
        }
        _centroids.Dispose();
    }
}
