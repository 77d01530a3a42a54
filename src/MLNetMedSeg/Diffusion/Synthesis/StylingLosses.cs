using MLNetMedSeg.Core;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>
/// The loss terms of the styling stage (paper 004 Appendix A.1.2; ZeCon, Yang et al. 2023; DiffuseIT, Kwon &amp; Ye 2023),
/// each per sample: every function returns [N], one value per row, so that a batch's total (their sum) gives each row
/// the gradient it would get alone. Differentiable in any floating dtype; nothing is detached unless said.
/// </summary>
public static class StylingLosses
{
    /// <summary>
    /// PatchNCE (CUT's and ZeCon's InfoNCE over patches): queries <paramref name="query"/> [N,P,C] and keys
    /// <paramref name="key"/> [N,P,C] are L2-normalised along C (x/(‖x‖ + 1e-7)); for query p the positive is key p and the
    /// negatives are the other keys of the same row (their logits with the same location set to −10, as ZeCon does for
    /// the diagonal of the negatives); logits / τ, cross-entropy with the positive as the class. Returns [N]: the mean
    /// over the P locations. The keys are the reference and are detached.
    /// </summary>
    public static Tensor PatchNce(Tensor query, Tensor key, double temperature = 0.07)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(key);
        if (query.dim() != 3 || !query.shape.SequenceEqual(key.shape))
            throw new ArgumentException($"query and key must both be [N,P,C]; got [{string.Join(",", query.shape)}] and [{string.Join(",", key.shape)}]", nameof(key));
        if (!(temperature > 0)) throw new ArgumentOutOfRangeException(nameof(temperature), temperature, "must be > 0");
        using var scope = NewDisposeScope();
        var q = query / query.pow(S(2)).sum(-1, true).sqrt().Plus(S(1e-7));
        var kd = key.detach();
        var k = kd / kd.pow(S(2)).sum(-1, true).sqrt().Plus(S(1e-7));
        long p = q.size(1);
        var pos = (q * k).sum(-1, true);                                    // [N,P,1]
        var neg = matmul(q, k.transpose(1, 2));                             // [N,P,P]
        var diag = eye(p, dtype: ScalarType.Bool, device: q.device).unsqueeze(0);
        neg = neg.masked_fill(diag, S(-10.0));
        var logits = cat([pos, neg], -1) / S(temperature);                     // [N,P,1+P]
        var ce = logits.logsumexp(-1) - logits.select(-1, 0);               // [N,P]
        return ce.mean([1]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The random spatial locations of one ZeCon layer: for each row a permutation of the H·W locations drawn from its
    /// generator (one generator for all rows, or one per row), cut to <paramref name="patches"/>. Returns int64 [N,P].
    /// </summary>
    public static Tensor DrawLocations(long rows, long locations, int patches, IReadOnlyList<Generator> generators, Device device)
    {
        ArgumentNullException.ThrowIfNull(generators);
        if (generators.Count != 1 && generators.Count != rows)
            throw new ArgumentException($"give one generator, or one per row ({rows}); got {generators.Count}", nameof(generators));
        ArgumentOutOfRangeException.ThrowIfLessThan(patches, 1);
        using var scope = NewDisposeScope();
        long p = Math.Min(patches, locations);
        var ids = new List<Tensor>();
        for (long r = 0; r < rows; r++)
            ids.Add(SeededRandom.Randperm(locations, CPU, generators[generators.Count == 1 ? 0 : (int)r])[TensorIndex.Slice(0, p)]);
        return stack(ids).to(device).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// ℓ_ZeCon (Eq. 4): Σ over layers of <see cref="PatchNce"/> between the features of the estimate
    /// (<paramref name="features"/>, queries ẑ_l) and of the reference (<paramref name="referenceFeatures"/>, keys z_l), both
    /// [N,C_l,H_l,W_l], at the locations <paramref name="locations"/>[l] (int64 [N,P_l], from <see cref="DrawLocations"/>).
    /// Returns [N].
    /// </summary>
    public static Tensor ZeCon(IReadOnlyList<Tensor> features, IReadOnlyList<Tensor> referenceFeatures, IReadOnlyList<Tensor> locations, double temperature = 0.07)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(referenceFeatures);
        ArgumentNullException.ThrowIfNull(locations);
        if (features.Count == 0 || features.Count != referenceFeatures.Count || features.Count != locations.Count)
            throw new ArgumentException($"give the same number (≥ 1) of feature maps, reference maps and location sets; got {features.Count}, {referenceFeatures.Count}, {locations.Count}");
        using var scope = NewDisposeScope();
        Tensor? total = null;
        for (int l = 0; l < features.Count; l++)
        {
            var q = Gather(features[l], locations[l]);
            var k = Gather(referenceFeatures[l], locations[l]);
            var term = PatchNce(q, k, temperature);
            total = total is null ? term : total.Plus(term);
        }
        return total!.MoveToOuterDisposeScope();
    }

    /// <summary>[N,C,H,W] features at int64 [N,P] flat locations → [N,P,C].</summary>
    private static Tensor Gather(Tensor feature, Tensor locations)
    {
        if (feature.dim() != 4 || locations.dim() != 2 || locations.size(0) != feature.size(0))
            throw new ArgumentException($"features must be [N,C,H,W] and locations [N,P]; got [{string.Join(",", feature.shape)}] and [{string.Join(",", locations.shape)}]");
        using var scope = NewDisposeScope();
        long n = feature.size(0), c = feature.size(1);
        var flat = feature.flatten(2).transpose(1, 2);                      // [N,HW,C]
        var idx = locations.to(ScalarType.Int64, feature.device).unsqueeze(-1).expand(n, locations.size(1), c);
        return flat.gather(1, idx).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The perceptual loss (the paper's "VGG loss", here on ResNet-18 maps): Σ over maps of the mean over C,H,W of the
    /// squared difference. Returns [N].
    /// </summary>
    public static Tensor Perceptual(IReadOnlyList<Tensor> maps, IReadOnlyList<Tensor> referenceMaps)
    {
        ArgumentNullException.ThrowIfNull(maps);
        ArgumentNullException.ThrowIfNull(referenceMaps);
        if (maps.Count == 0 || maps.Count != referenceMaps.Count)
            throw new ArgumentException($"give the same number (≥ 1) of maps and reference maps; got {maps.Count} and {referenceMaps.Count}");
        using var scope = NewDisposeScope();
        Tensor? total = null;
        for (int i = 0; i < maps.Count; i++)
        {
            var term = PixelMse(maps[i], referenceMaps[i]);
            total = total is null ? term : total.Plus(term);
        }
        return total!.MoveToOuterDisposeScope();
    }

    /// <summary>Mean squared difference per row (over every non-batch dimension): ℓ_MSE and ℓ_L2. Returns [N].</summary>
    public static Tensor PixelMse(Tensor x, Tensor reference)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(reference);
        if (!x.shape.SequenceEqual(reference.shape))
            throw new ArgumentException($"shapes differ: [{string.Join(",", x.shape)}] and [{string.Join(",", reference.shape)}]", nameof(reference));
        using var scope = NewDisposeScope();
        return (x - reference).pow(S(2)).flatten(1).mean([1]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// ‖a − b‖₂ per row of [N,D] embeddings, as √(Σ(a − b)² + 1e-12) (smooth at a = b). ℓ_sty = EmbeddingDistance(e(x₀),
    /// e(x̂₀)) (Eq. 5); ℓ_sem = −EmbeddingDistance(e(x̂₀(x_{t−1})), e(x̂₀(x_t))) (Eq. 6). Returns [N].
    /// </summary>
    public static Tensor EmbeddingDistance(Tensor a, Tensor b)
    {
        CheckEmbeddings(a, b);
        using var scope = NewDisposeScope();
        return (a - b).pow(S(2)).sum([1]).Plus(S(1e-12)).sqrt().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The mean over D of (a − b)² per row of [N,D] embeddings — what DiffuseIT's code computes for ℓ_sty and ℓ_sem
    /// (<c>F.mse_loss</c> of the [CLS] tokens) where Eqs. 5–6 print ‖a − b‖₂ (see <see cref="StyleEmbeddingLoss"/>). Returns [N].
    /// </summary>
    public static Tensor EmbeddingMeanSquared(Tensor a, Tensor b)
    {
        CheckEmbeddings(a, b);
        using var scope = NewDisposeScope();
        return (a - b).pow(S(2)).mean([1]).MoveToOuterDisposeScope();
    }

    private static void CheckEmbeddings(Tensor a, Tensor b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.dim() != 2 || !a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"embeddings must both be [N,D]; got [{string.Join(",", a.shape)}] and [{string.Join(",", b.shape)}]", nameof(b));
    }

    /// <summary>DiffuseIT's and ZeCon's range loss: mean over C,H,W of (x − clamp(x, −1, 1))² (model space). Returns [N].</summary>
    public static Tensor Range(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        using var scope = NewDisposeScope();
        return (x - x.clamp(S(-1.0), S(1.0))).pow(S(2)).flatten(1).mean([1]).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The ResNet-18 that stands in for the paper's VGG (perceptual maps) and DINO ViT (global embedding): the ImageNet
/// ResNet-18 of <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> (<see cref="ImageNetEncoder"/>), eval mode (BatchNorm
/// running statistics), input normalised as the package does. Images in [0,1] are resized (bilinear, differentiable) to
/// the feature size; one-channel images are repeated to RGB. Maps = the stem (conv1 + BN + ReLU) and layer1 outputs;
/// embedding = layer4 globally average-pooled (512-d). Differentiable with respect to the images.
/// </summary>
internal sealed class StyleFeatureNetwork : IDisposable
{
    private readonly ResNetEncoder _encoder;

    private StyleFeatureNetwork(ResNetEncoder encoder, int size)
    {
        _encoder = encoder;
        Size = size;
    }

    /// <summary>Side of the network's input.</summary>
    public int Size { get; }

    /// <summary>The ImageNet network (the package's weights; <paramref name="modelPath"/> as <see cref="ImageNetEncoder.Locate(string?)"/>).</summary>
    /// <exception cref="FileNotFoundException">The package's files are not found.</exception>
    public static StyleFeatureNetwork ImageNet(string? modelPath, int size, Device device)
    {
        var e = new ResNetEncoder(3, [64, 64, 128, 256, 512], ImageNetEncoder.ResNet18Blocks, 32, inputNormalization: true);
        try
        {
            ImageNetEncoder.LoadInto(e, modelPath);
            return Finish(e, size, device, ScalarType.Float32);
        }
        catch
        {
            e.Dispose();
            throw;
        }
    }

    /// <summary>A seeded random-weight network of the same layout (tests: finite differences in float64).</summary>
    public static StyleFeatureNetwork Random(ulong seed, int size, Device device, ScalarType dtype, long[]? widths = null)
    {
        var e = new ResNetEncoder(3, widths ?? [64, 64, 128, 256, 512], ImageNetEncoder.ResNet18Blocks, 32, inputNormalization: true);
        using var g = new Generator(seed, CPU);
        Core.SeededInit.Apply(e, g);
        return Finish(e, size, device, dtype);
    }

    private static StyleFeatureNetwork Finish(ResNetEncoder e, int size, Device device, ScalarType dtype)
    {
        e.to(device);
        if (dtype != ScalarType.Float32) e.to(dtype);
        e.eval();
        foreach (var p in e.parameters()) p.requires_grad = false;
        return new StyleFeatureNetwork(e, size);
    }

    /// <summary>(maps: stem and layer1, embedding [N, D]) of images [N,1 or 3,H,W] in [0,1].</summary>
    public (IReadOnlyList<Tensor> Maps, Tensor Embedding) Features(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = images.size(1) == 1 ? images.expand(-1, 3, -1, -1) : images;
        if (x.size(1) != 3) throw new ArgumentException($"the ResNet-18 terms need 1- or 3-channel images, got [{string.Join(",", images.shape)}]", nameof(images));
        if (x.size(2) != Size || x.size(3) != Size)
            x = nn.functional.interpolate(x, [Size, Size], mode: InterpolationMode.Bilinear, align_corners: false);
        var f = _encoder.forward(x);
        var maps = new List<Tensor> { f[0].MoveToOuterDisposeScope(), f[1].MoveToOuterDisposeScope() };
        var emb = f[^1].mean([2, 3]).MoveToOuterDisposeScope();
        return (maps, emb);
    }

    public void Dispose() => _encoder.Dispose();
}
