using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Evaluation;

/// <summary>Options of <c>ml.MedSeg().EvaluateImageQuality</c> (<see cref="ImageSetQuality"/>).</summary>
public sealed class ImageQualityOptions
{
    /// <summary>
    /// Side both sets are brought to before anything is measured (bilinear, antialiased; non-square images are
    /// stretched), e.g. the generator's size (paper 004 generates at 256 × 256). Null (default): the images are
    /// measured at the size they come in, which must then be one size within each set. Both sets are held in memory at
    /// this size as float32 (1,000 images at 256 px: 0.8 GB).
    /// </summary>
    public int? ImageSize { get; set; }

    /// <summary>
    /// Side of the ResNet-18's input (default 224, the size it was trained at; at least 32). Values at different sizes
    /// are not comparable.
    /// </summary>
    public int FeatureInputSize { get; set; } = 224;

    /// <summary>
    /// Pairs whose MS-SSIM is averaged per set (default 500): every pair i &lt; j when a set has at most that many pairs
    /// (the exact mean), else this many random pairs i ≠ j, seeded from the MLContext.
    /// </summary>
    public int MsSsimPairs { get; set; } = 500;

    /// <summary>MS-SSIM's window, weights and constants (default: Wang et al. 2003's).</summary>
    public MsSsimOptions MsSsim { get; set; } = new();

    /// <summary>Images per ResNet-18 batch (default 32).</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>
    /// Where the <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> package's <c>DnnImageModels</c> are (default null:
    /// next to the application, then the NuGet cache; see <c>ImageNetEncoder.Locate</c>).
    /// </summary>
    public string? ImageNetModelPath { get; set; }

    internal ImageQualityOptions Clone() => (ImageQualityOptions)MemberwiseClone();

    internal void Validate()
    {
        if (ImageSize is int s && s < 1) throw new ArgumentOutOfRangeException(nameof(ImageSize), s, "ImageSize must be ≥ 1 (or null)");
        if (FeatureInputSize < 32) throw new ArgumentOutOfRangeException(nameof(FeatureInputSize), FeatureInputSize, "FeatureInputSize must be ≥ 32");
        if (MsSsimPairs < 1) throw new ArgumentOutOfRangeException(nameof(MsSsimPairs), MsSsimPairs, "MsSsimPairs must be ≥ 1");
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be ≥ 1");
        ArgumentNullException.ThrowIfNull(MsSsim, nameof(MsSsim));
        MsSsim.Validate();
    }
}

/// <summary>
/// How close a generated image set is to a real one, and how diverse each is — paper 004's intrinsic evaluation
/// (§4.4, Tables 1–2), from <c>ml.MedSeg().EvaluateImageQuality(real, generated, "Image")</c> or
/// <c>medseg quality</c>:
/// <list type="bullet">
/// <item><see cref="FrechetResNet18"/>: the Fréchet distance d² (<see cref="FrechetDistance"/>) between Gaussians fitted
/// to the two sets' ImageNet ResNet-18 features (the 512-d global average pool of <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c>'s
/// network, <see cref="ImageNetFeatures"/>). Paper 004 reports FID, the same formula on Inception-v3 pool3 features at
/// 299 px; no Inception-v3 with ImageNet weights ships with ML.NET, so this is named for what it is: values are not
/// comparable with FID values (nor across feature input sizes or set sizes), only with each other.</item>
/// <item><see cref="MsSsim"/>: the generated set's diversity, the mean MS-SSIM over pairs of its images (Table 2; lower
/// is more diverse), and <see cref="RealMsSsim"/> the same for the real set, the reference the paper compares to.</item>
/// </list>
/// <para>Resizing and compression (Parmar et al. 2022, which paper 004 follows for its FID): both sets go through one
/// path — RGB in [0,1] as the data view gives them, an optional common <see cref="ImageQualityOptions.ImageSize"/>,
/// then an antialiased bilinear resize to the network's input size (see <c>ImageSets</c>). Nothing is re-encoded here;
/// decoding is the caller's: load both sets with the same loader, and keep generated images in the real set's file
/// format — a JPEG real set against PNG generated images measures JPEG artefacts too (<c>medseg quality</c> warns).</para>
/// </summary>
public sealed class ImageSetQuality
{
    internal ImageSetQuality(double frechet, double msSsim, double realMsSsim, int realCount, int generatedCount,
        int msSsimPairsGenerated, int msSsimPairsReal, long height, long width, int featureInputSize)
    {
        FrechetResNet18 = frechet;
        MsSsim = msSsim;
        RealMsSsim = realMsSsim;
        RealCount = realCount;
        GeneratedCount = generatedCount;
        MsSsimPairs = msSsimPairsGenerated;
        RealMsSsimPairs = msSsimPairsReal;
        ImageHeight = height;
        ImageWidth = width;
        FeatureInputSize = featureInputSize;
    }

    /// <summary>Fréchet distance d² between the real and generated sets' ResNet-18 features (0 for identical sets; lower is closer).</summary>
    public double FrechetResNet18 { get; }

    /// <summary>Mean pairwise MS-SSIM of the generated set (1 when all its images are equal; lower is more diverse).</summary>
    public double MsSsim { get; }

    /// <summary>Mean pairwise MS-SSIM of the real set, for comparison with <see cref="MsSsim"/>.</summary>
    public double RealMsSsim { get; }

    /// <summary>Images in the real set.</summary>
    public int RealCount { get; }

    /// <summary>Images in the generated set.</summary>
    public int GeneratedCount { get; }

    /// <summary>Pairs averaged for <see cref="MsSsim"/>.</summary>
    public int MsSsimPairs { get; }

    /// <summary>Pairs averaged for <see cref="RealMsSsim"/>.</summary>
    public int RealMsSsimPairs { get; }

    /// <summary>Height the generated set's images were measured at (MS-SSIM).</summary>
    public long ImageHeight { get; }

    /// <summary>Width the generated set's images were measured at (MS-SSIM).</summary>
    public long ImageWidth { get; }

    /// <summary>Side of the ResNet-18's input.</summary>
    public int FeatureInputSize { get; }

    /// <summary>What the features are, in words (written into the JSON).</summary>
    public string FeatureDescription => string.Create(CultureInfo.InvariantCulture,
        $"ImageNet ResNet-18 of Microsoft.ML.DnnImageFeaturizer.ResNet18: 512-d global average pool after layer4, images resized to {FeatureInputSize} px (bilinear, antialiased). Not FID (Inception-v3); not comparable with FID values.");

    /// <summary>
    /// The result as JSON: <c>frechet_resnet18</c>, <c>ms_ssim</c> (generated set), <c>ms_ssim_real</c>,
    /// <c>real_count</c>, <c>generated_count</c>, the pair counts, the measured size and the feature description.
    /// </summary>
    public string ToJson()
    {
        var json = new JsonObject
        {
            ["frechet_resnet18"] = FrechetResNet18,
            ["ms_ssim"] = MsSsim,
            ["ms_ssim_real"] = RealMsSsim,
            ["real_count"] = RealCount,
            ["generated_count"] = GeneratedCount,
            ["ms_ssim_pairs"] = MsSsimPairs,
            ["ms_ssim_pairs_real"] = RealMsSsimPairs,
            ["image_height"] = ImageHeight,
            ["image_width"] = ImageWidth,
            ["feature_input_size"] = FeatureInputSize,
            ["features"] = FeatureDescription,
        };
        return json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <inheritdoc/>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"Fréchet ResNet-18 distance {FrechetResNet18:F4} ({RealCount} real vs {GeneratedCount} generated); MS-SSIM {MsSsim:F4} generated, {RealMsSsim:F4} real");

    /// <summary>
    /// Mean MS-SSIM over every pair i &lt; j of <paramref name="images"/> [N,3,H,W] when there are at most
    /// <paramref name="pairs"/> of them, else over <paramref name="pairs"/> random pairs (<see cref="MsSsim.MeanPairwise"/>,
    /// seeded). Returns the mean and the number of pairs used.
    /// </summary>
    internal static (double Mean, int Pairs) MeanPairwiseMsSsim(Tensor images, int pairs, ulong seed, MsSsimOptions options)
    {
        long n = images.size(0);
        long all = n * (n - 1) / 2;
        if (all > pairs)
        {
            using var g = new Generator(seed);
            return (Evaluation.MsSsim.MeanPairwise(images, pairs, g, options), pairs);
        }
        var ii = new List<long>();
        var jj = new List<long>();
        for (long i = 0; i < n; i++)
            for (long j = i + 1; j < n; j++)
            {
                ii.Add(i);
                jj.Add(j);
            }
        double sum = 0;
        const int chunk = 64;
        for (int s = 0; s < ii.Count; s += chunk)
        {
            using var scope = NewDisposeScope();
            int len = Math.Min(chunk, ii.Count - s);
            var a = images.index_select(0, tensor(ii.GetRange(s, len).ToArray()));
            var b = images.index_select(0, tensor(jj.GetRange(s, len).ToArray()));
            sum += Evaluation.MsSsim.Compute(a, b, options).sum().DoubleValue();
        }
        return (sum / ii.Count, ii.Count);
    }
}

/// <summary>
/// <see cref="ImageSetQuality"/> of any number of generated sets against one real set (paper 004's Table 1 compares
/// fifteen): the real set's features, their Gaussian and its MS-SSIM diversity are computed once, and the ResNet-18 is
/// loaded once. Made by <c>ml.MedSeg().CreateImageQualityEvaluator(real, "Image")</c>; dispose it to free the network.
/// </summary>
public sealed class ImageQualityEvaluator : IDisposable
{
    private readonly MedSegContext _context;
    private readonly ImageQualityOptions _options;
    private readonly ImageNetFeatures _network;
    private readonly Tensor _realMean, _realCovariance;
    private readonly int _realCount, _realPairs;
    private readonly double _realMsSsim;
    private int _evaluated;
    private bool _disposed;

    internal ImageQualityEvaluator(MedSegContext context, IDataView real, string realColumn, ImageQualityOptions options)
    {
        _context = context;
        _options = options.Clone();
        var ct = context.CancellationToken;
        using var scope = NewDisposeScope();
        var images = ImageSets.ReadAll(real, realColumn, options.ImageSize, "real", ct);
        if (images.size(0) < 2) throw new InvalidDataException($"the real set has {images.size(0)} image(s); a covariance and pairwise MS-SSIM need at least 2");
        _network = new ImageNetFeatures(options.ImageNetModelPath, options.FeatureInputSize, context.Device);
        try
        {
            var (mean, cov) = FrechetDistance.Statistics(ImageSets.Features(_network, images, options.BatchSize, context.Device));
            _realMean = mean.DetachFromDisposeScope();
            _realCovariance = cov.DetachFromDisposeScope();
            _realCount = (int)images.size(0);
            (_realMsSsim, _realPairs) = ImageSetQuality.MeanPairwiseMsSsim(images, options.MsSsimPairs, PairSeed("real", 0), options.MsSsim);
        }
        catch
        {
            _network.Dispose();
            _realMean?.Dispose();
            _realCovariance?.Dispose();
            throw;
        }
    }

    /// <summary>Images in the real set.</summary>
    public int RealCount => _realCount;

    /// <summary>Mean pairwise MS-SSIM of the real set.</summary>
    public double RealMsSsim => _realMsSsim;

    private ulong PairSeed(string set, int index) => MedSegContext.MixSeed((ulong)_context.Seed, $"ms-ssim-pairs|{set}", index);

    /// <summary>
    /// Compares <paramref name="generated"/> with the real set. The MS-SSIM pairs of the n-th set evaluated are drawn
    /// with a seed of (MLContext seed, n) when they are sampled.
    /// </summary>
    /// <param name="generated">The generated images.</param>
    /// <param name="imageColumnName">Their column (an <c>MLImage</c>, or float [C,H,W] in [0,1] with C = 1 or 3).</param>
    /// <exception cref="SchemaException">The column is missing or not an image (named).</exception>
    /// <exception cref="InvalidDataException">The set is empty or has one image; images of different sizes without <see cref="ImageQualityOptions.ImageSize"/>.</exception>
    public ImageSetQuality Evaluate(Microsoft.ML.IDataView generated, string imageColumnName = "Image")
    {
        ArgumentNullException.ThrowIfNull(generated);
        ArgumentException.ThrowIfNullOrEmpty(imageColumnName);
        ObjectDisposedException.ThrowIf(_disposed, this);
        Core.MLNet.MLNetData.CheckSchema(generated.Schema, s => { s.RequireTensor(imageColumnName, TensorColumnType.Image(), "EvaluateImageQuality (generated set)"); return s; });
        return Evaluate(Core.MLNet.MLNetData.AsLibraryView(generated), imageColumnName);
    }

    internal ImageSetQuality Evaluate(IDataView generated, string column)
    {
        using var scope = NewDisposeScope();
        var images = ImageSets.ReadAll(generated, column, _options.ImageSize, "generated", _context.CancellationToken);
        if (images.size(0) < 2) throw new InvalidDataException($"the generated set has {images.size(0)} image(s); a covariance and pairwise MS-SSIM need at least 2");
        var (mean, cov) = FrechetDistance.Statistics(ImageSets.Features(_network, images, _options.BatchSize, _context.Device));
        double frechet = FrechetDistance.FromStatistics(_realMean, _realCovariance, mean, cov);
        var (ms, pairs) = ImageSetQuality.MeanPairwiseMsSsim(images, _options.MsSsimPairs, PairSeed("generated", _evaluated++), _options.MsSsim);
        return new ImageSetQuality(frechet, ms, _realMsSsim, _realCount, (int)images.size(0), pairs, _realPairs,
            images.size(2), images.size(3), _options.FeatureInputSize);
    }

    /// <summary>Frees the network and the real set's statistics.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _network.Dispose();
        _realMean.Dispose();
        _realCovariance.Dispose();
    }
}
