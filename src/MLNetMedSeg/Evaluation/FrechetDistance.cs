using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Evaluation;

/// <summary>
/// The Fréchet distance between two sets of feature vectors, each summarised as a Gaussian N(μ, Σ) (Dowson &amp;
/// Landau 1982; the formula behind Heusel et al.'s FID): d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2(Σ₁Σ₂)^{1/2}). Computed in
/// float64 on the CPU. Tr((Σ₁Σ₂)^{1/2}) is taken as the sum of the square roots of the eigenvalues of the symmetric
/// positive semi-definite matrix Σ₁^{1/2} Σ₂ Σ₁^{1/2} (which has the eigenvalues of Σ₁Σ₂), with tiny negative
/// eigenvalues from rounding clamped to 0 — so rank-deficient covariances (fewer samples than dimensions) are fine.
/// With few samples the estimate is biased upwards (as FID's): compare distances computed with the same set sizes.
/// <para>This class is the formula only. What the features are decides what the number means: with
/// <see cref="ImageNetFeatures"/> it is a "Fréchet ResNet-18 distance", not FID (which uses Inception-v3's pool3
/// features at 299 px; values of the two are not comparable).</para>
/// </summary>
public static class FrechetDistance
{
    /// <summary>The mean [D] and the unbiased covariance [D, D] (divided by N − 1) of features [N, D], in float64 on the CPU.</summary>
    /// <exception cref="ArgumentException">Not [N, D] with N ≥ 2, or not finite.</exception>
    public static (Tensor Mean, Tensor Covariance) Statistics(Tensor features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.dim() != 2) throw new ArgumentException($"features must be [N, D], got [{string.Join(", ", features.shape)}]", nameof(features));
        if (features.size(0) < 2) throw new ArgumentException($"a covariance needs at least 2 feature vectors, got {features.size(0)}", nameof(features));
        using var scope = NewDisposeScope();
        var x = features.detach().to(ScalarType.Float64, CPU);
        if (!x.isfinite().all().BooleanValue()) throw new ArgumentException("features hold NaN or infinite values", nameof(features));
        var mu = x.mean([0]);
        var centred = x - mu;
        var cov = centred.t().matmul(centred) / S(x.size(0) - 1);
        return (mu.MoveToOuterDisposeScope(), cov.MoveToOuterDisposeScope());
    }

    /// <summary>The Fréchet distance d² between N(<paramref name="mean1"/>, <paramref name="cov1"/>) and N(<paramref name="mean2"/>, <paramref name="cov2"/>).</summary>
    /// <exception cref="ArgumentException">Shapes that do not match ([D] means, [D, D] covariances of one D).</exception>
    public static double FromStatistics(Tensor mean1, Tensor cov1, Tensor mean2, Tensor cov2)
    {
        ArgumentNullException.ThrowIfNull(mean1);
        ArgumentNullException.ThrowIfNull(cov1);
        ArgumentNullException.ThrowIfNull(mean2);
        ArgumentNullException.ThrowIfNull(cov2);
        long d = mean1.size(-1);
        if (mean1.dim() != 1 || mean2.dim() != 1 || mean2.size(0) != d || !cov1.shape.SequenceEqual([d, d]) || !cov2.shape.SequenceEqual([d, d]))
            throw new ArgumentException($"expected means [D] and covariances [D, D] of one D; got [{string.Join(", ", mean1.shape)}], [{string.Join(", ", cov1.shape)}], [{string.Join(", ", mean2.shape)}], [{string.Join(", ", cov2.shape)}]");
        using var scope = NewDisposeScope();
        var m1 = mean1.to(ScalarType.Float64, CPU);
        var m2 = mean2.to(ScalarType.Float64, CPU);
        var s1 = Symmetric(cov1.to(ScalarType.Float64, CPU));
        var s2 = Symmetric(cov2.to(ScalarType.Float64, CPU));
        double meanTerm = (m1 - m2).pow(S(2)).sum().DoubleValue();
        var root1 = SqrtPsd(s1);
        var inner = Symmetric(root1.matmul(s2).matmul(root1));
        var (eigen, vectors) = linalg.eigh(inner);
        vectors.Dispose();
        double traceSqrt = eigen.clamp_min(S(0)).sqrt().sum().DoubleValue();
        double value = meanTerm + s1.trace().DoubleValue() + s2.trace().DoubleValue() - 2 * traceSqrt;
        return Math.Max(0, value); // rounding can make d² of identical sets −1e-12
    }

    /// <summary>The Fréchet distance d² between the Gaussians fitted to two feature sets [N₁, D] and [N₂, D].</summary>
    public static double Compute(Tensor features1, Tensor features2)
    {
        ArgumentNullException.ThrowIfNull(features1);
        ArgumentNullException.ThrowIfNull(features2);
        if (features1.dim() == 2 && features2.dim() == 2 && features1.size(1) != features2.size(1))
            throw new ArgumentException($"the two feature sets have {features1.size(1)} and {features2.size(1)} dimensions");
        using var scope = NewDisposeScope();
        var (m1, c1) = Statistics(features1);
        var (m2, c2) = Statistics(features2);
        return FromStatistics(m1, c1, m2, c2);
    }

    private static Tensor Symmetric(Tensor a) => a.Plus(a.t()) * S(0.5);

    /// <summary>The PSD square root V·diag(√max(λ, 0))·Vᵀ of a symmetric matrix.</summary>
    private static Tensor SqrtPsd(Tensor a)
    {
        var (lambda, v) = linalg.eigh(a);
        return v.matmul(diag(lambda.clamp_min(S(0)).sqrt())).matmul(v.t());
    }
}
