using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Evaluation;

/// <summary>Options of <see cref="MsSsim"/>. The defaults are Wang, Simoncelli &amp; Bovik (2003).</summary>
public sealed class MsSsimOptions
{
    /// <summary>Side of the Gaussian window (odd; default 11).</summary>
    public int WindowSize { get; set; } = 11;

    /// <summary>Standard deviation of the Gaussian window in pixels (default 1.5).</summary>
    public double Sigma { get; set; } = 1.5;

    /// <summary>
    /// Per-scale exponents, finest first (default the standard five: 0.0448, 0.2856, 0.3001, 0.2363, 0.1333).
    /// When the images are too small for all of them, the first M are used, renormalised to sum to 1 (see
    /// <see cref="MsSsim.ScalesFor"/>).
    /// </summary>
    public double[] Weights { get; set; } = [.. MsSsim.StandardWeights];

    /// <summary>K₁ of the luminance term, C₁ = (K₁·L)² (default 0.01).</summary>
    public double K1 { get; set; } = 0.01;

    /// <summary>K₂ of the contrast-structure term, C₂ = (K₂·L)² (default 0.03).</summary>
    public double K2 { get; set; } = 0.03;

    /// <summary>The dynamic range L of the pixel values (default 1: images in [0, 1]).</summary>
    public double DataRange { get; set; } = 1;

    internal void Validate()
    {
        if (WindowSize < 1 || WindowSize % 2 == 0) throw new ArgumentException($"WindowSize must be odd and ≥ 1, got {WindowSize}", nameof(WindowSize));
        if (!(Sigma > 0) || double.IsInfinity(Sigma)) throw new ArgumentException($"Sigma must be > 0, got {Sigma}", nameof(Sigma));
        if (Weights is null || Weights.Length == 0 || Weights.Any(w => !(w >= 0) || double.IsInfinity(w)) || Weights.Sum() <= 0)
            throw new ArgumentException("Weights must be a non-empty list of finite numbers ≥ 0 with a positive sum", nameof(Weights));
        if (!(K1 > 0) || !(K2 > 0)) throw new ArgumentException($"K1 and K2 must be > 0, got {K1}, {K2}", nameof(K1));
        if (!(DataRange > 0) || double.IsInfinity(DataRange)) throw new ArgumentException($"DataRange must be > 0, got {DataRange}", nameof(DataRange));
    }
}

/// <summary>
/// Multi-scale structural similarity (MS-SSIM; Wang, Simoncelli &amp; Bovik, "Multiscale structural similarity for image
/// quality assessment", 2003). At each of M scales (the image average-pooled by 2 between scales, odd sizes padded as
/// <c>pytorch_msssim</c> does) the SSIM terms are computed with a Gaussian window ("valid" filtering, no padding):
/// cs = (2σ_xy + C₂)/(σ_x² + σ_y² + C₂) at every scale and the luminance l = (2μ_xμ_y + C₁)/(μ_x² + μ_y² + C₁) at the
/// coarsest; MS-SSIM = Π_{j&lt;M} relu(mean cs_j)^{w_j} · relu(mean l_M·cs_M)^{w_M}, per channel, then averaged over the
/// channels. This is the definition of <c>pytorch_msssim.ms_ssim</c> (and of TensorFlow's <c>ssim_multiscale</c> up to
/// its padding), computed in float64.
/// <para>Small images: the five standard scales need the coarsest scale to be at least as large as the window, i.e. a
/// smaller side of at least 161 px (11 px after four halvings, as pytorch_msssim's "side &gt; 160" check); for smaller
/// images this class uses the largest M whose coarsest scale still holds one window, with the first M weights
/// renormalised to sum to 1 (e.g. M = 3 at 64 px: 64, 32, 16); below one window (side &lt; 11) it shrinks the window to
/// the largest odd size that fits, with σ scaled in proportion (σ = 1.5·size/11), and computes single-scale SSIM.
/// <see cref="ScalesFor"/> tells which.</para>
/// Diversity of a set of images (paper 004, Table 2; Odena et al. 2017) is the mean MS-SSIM over random pairs of
/// distinct images, <see cref="MeanPairwise"/>: lower means more diverse; compare generated sets against the real set.
/// </summary>
public static class MsSsim
{
    /// <summary>The standard per-scale weights of Wang et al. (2003), finest first.</summary>
    public static IReadOnlyList<double> StandardWeights { get; } = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333];

    /// <summary>
    /// The (scales, window size, σ) used for images of <paramref name="height"/>×<paramref name="width"/>: the largest
    /// M ≤ the number of weights such that the coarsest scale (sizes halved M − 1 times, rounding up) is ≥ the window;
    /// below one window, M = 1 and a smaller window (see the class remarks).
    /// </summary>
    public static (int Scales, int WindowSize, double Sigma) ScalesFor(long height, long width, MsSsimOptions? options = null)
    {
        options ??= new MsSsimOptions();
        options.Validate();
        if (height < 1 || width < 1) throw new ArgumentOutOfRangeException(nameof(height), $"image size {height}×{width} must be positive");
        long side = Math.Min(height, width);
        int win = options.WindowSize;
        if (side < win)
        {
            int w = (int)(side % 2 == 1 ? side : side - 1);
            return (1, w, options.Sigma * w / win);
        }
        int m = 1;
        long h = height, wd = width;
        while (m < options.Weights.Length)
        {
            h = (h + 1) / 2;
            wd = (wd + 1) / 2;
            if (Math.Min(h, wd) < win) break;
            m++;
        }
        return (m, win, options.Sigma);
    }

    /// <summary>
    /// MS-SSIM of each pair (a[n], b[n]): images [N,C,H,W] (or [C,H,W]) with values in [0, L], equal shapes. Returns a
    /// float64 [N] tensor on the inputs' device (1 for identical images).
    /// </summary>
    public static Tensor Compute(Tensor a, Tensor b, MsSsimOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        options ??= new MsSsimOptions();
        options.Validate();
        if (!a.shape.SequenceEqual(b.shape))
            throw new ArgumentException($"the images must have equal shapes, got [{string.Join(",", a.shape)}] and [{string.Join(",", b.shape)}]", nameof(b));
        if (a.dim() is not (3 or 4)) throw new ArgumentException($"images must be [N,C,H,W] or [C,H,W], got [{string.Join(",", a.shape)}]", nameof(a));
        using var scope = torch.NewDisposeScope();
        if (a.dim() == 3)
        {
            a = a.unsqueeze(0);
            b = b.unsqueeze(0);
        }
        long channels = a.size(1);
        var (scales, win, sigma) = ScalesFor(a.size(2), a.size(3), options);
        var weights = options.Weights.Take(scales).ToArray();
        double wsum = weights.Sum();
        var x = a.to(ScalarType.Float64);
        var y = b.to(ScalarType.Float64);
        var window = GaussianWindow(win, sigma, channels, x.device);
        double c1 = Math.Pow(options.K1 * options.DataRange, 2), c2 = Math.Pow(options.K2 * options.DataRange, 2);
        Tensor? result = null;
        for (int j = 0; j < scales; j++)
        {
            var (ssim, cs) = Ssim(x, y, window, c1, c2);
            var term = (j < scales - 1 ? cs : ssim).relu().pow(S(weights[j] / wsum));
            result = result is null ? term : result * term;
            if (j < scales - 1)
            {
                long[] pad = [x.size(2) % 2, x.size(3) % 2];
                x = torch.nn.functional.avg_pool2d(x, [2, 2], [2, 2], pad);
                y = torch.nn.functional.avg_pool2d(y, [2, 2], [2, 2], pad);
            }
        }
        return result!.mean([1]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The mean MS-SSIM over <paramref name="pairs"/> random pairs (i, j), i ≠ j, of <paramref name="images"/>
    /// [N,C,H,W] (N ≥ 2), drawn uniformly with <paramref name="generator"/> (so the same seed gives the same pairs).
    /// The diversity measure of paper 004 (Table 2): lower = more diverse.
    /// </summary>
    public static double MeanPairwise(Tensor images, int pairs, Generator generator, MsSsimOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(generator);
        if (images.dim() != 4) throw new ArgumentException($"images must be [N,C,H,W], got [{string.Join(",", images.shape)}]", nameof(images));
        long n = images.size(0);
        if (n < 2) throw new ArgumentException($"pairwise MS-SSIM needs at least 2 images, got {n}", nameof(images));
        if (pairs < 1) throw new ArgumentOutOfRangeException(nameof(pairs), pairs, "pairs must be ≥ 1");
        using var scope = torch.NewDisposeScope();
        var i = SeededRandom.Randint(0, n, [pairs], torch.CPU, generator);
        var j = SeededRandom.Randint(0, n - 1, [pairs], torch.CPU, generator);
        j = j.Plus(j.ge(i).to(ScalarType.Int64)); // j ≠ i, uniform over the other N − 1
        var ii = i.to(images.device);
        var jj = j.to(images.device);
        double sum = 0;
        const int chunk = 64;
        for (int s = 0; s < pairs; s += chunk)
        {
            using var inner = torch.NewDisposeScope();
            int len = Math.Min(chunk, pairs - s);
            var a = images.index_select(0, ii.narrow(0, s, len));
            var b = images.index_select(0, jj.narrow(0, s, len));
            sum += Compute(a, b, options).sum().DoubleValue();
        }
        return sum / pairs;
    }

    /// <summary>The normalised 1-D Gaussian of <paramref name="size"/> taps as separable depthwise weights [C,1,1,size].</summary>
    private static Tensor GaussianWindow(int size, double sigma, long channels, Device device)
    {
        var g = new double[size];
        for (int k = 0; k < size; k++)
        {
            double c = k - size / 2;
            g[k] = Math.Exp(-c * c / (2 * sigma * sigma));
        }
        double s = g.Sum();
        for (int k = 0; k < size; k++) g[k] /= s;
        using var scope = torch.NewDisposeScope();
        return TensorExtensions.FromArray<double>(g, [1, 1, 1, size]).expand(channels, 1, 1, size).contiguous().to(device).MoveToOuterDisposeScope();
    }

    private static Tensor Filter(Tensor x, Tensor window)
    {
        long c = x.size(1);
        var h = torch.nn.functional.conv2d(x, window, groups: c);
        return torch.nn.functional.conv2d(h, window.transpose(2, 3), groups: c);
    }

    /// <summary>Per-image, per-channel means of the SSIM map and of the cs map: ([N,C], [N,C]).</summary>
    private static (Tensor ssim, Tensor cs) Ssim(Tensor x, Tensor y, Tensor window, double c1, double c2)
    {
        var mu1 = Filter(x, window);
        var mu2 = Filter(y, window);
        var mu1Sq = mu1 * mu1;
        var mu2Sq = mu2 * mu2;
        var mu12 = mu1 * mu2;
        var s1 = Filter(x * x, window) - mu1Sq;
        var s2 = Filter(y * y, window) - mu2Sq;
        var s12 = Filter(x * y, window) - mu12;
        var csMap = (S(2) * s12).Plus(S(c2)) / s1.Plus(s2).Plus(S(c2));
        var ssimMap = (S(2) * mu12).Plus(S(c1)) / mu1Sq.Plus(mu2Sq).Plus(S(c1)) * csMap;
        return (ssimMap.flatten(2).mean([2]), csMap.flatten(2).mean([2]));
    }
}
