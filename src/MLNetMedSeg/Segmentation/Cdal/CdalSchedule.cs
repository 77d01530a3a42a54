using MLNetMedSeg.Core;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>
/// cDAL's Gaussian label diffusion with T steps (paper 003, §2.1 and Algorithms 1–2). Coefficients are computed in
/// float64 and applied to float32 tensors.
/// <list type="bullet">
/// <item>Schedule (Algorithm 1's closed form): β_t = 1 − exp(−β_min/T − ½(β_max − β_min)(2t − 1)/T²), t = 1..T — the
///   variance-preserving SDE's β(s) = β_min + s(β_max − β_min) integrated over s ∈ [(t−1)/T, t/T]. (The public code,
///   after the denoising diffusion GAN, shifts s by ε = 1e-3; Algorithm 1 does not, nor does this class.)</item>
/// <item>α_t = 1 − β_t, ᾱ_t = ∏_{s ≤ t} α_s, ᾱ_0 = 1.</item>
/// <item>q(x_t | x₀) = N(√ᾱ_t x₀, (1 − ᾱ_t) I) (§2.1; the paper's text writes the noise scale as (1 − ᾱ_t), its
///   distribution as the variance (1 − ᾱ_t): the latter is used); q(x_t | x_{t−1}) = N(√α_t x_{t−1}, β_t I).</item>
/// <item>Posterior q(x_{t−1} | x_t, x₀) = N(c₀ x₀ + c_t x_t, β̃_t I) with c₀ = β_t √ᾱ_{t−1}/(1 − ᾱ_t),
///   c_t = (1 − ᾱ_{t−1}) √α_t/(1 − ᾱ_t), β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) (Algorithm 2's β̃_t; DDPM Eq. 7). At t = 1:
///   c₀ = 1, c_t = 0, β̃ = 0, so the last reverse step returns x̂₀.</item>
/// </list>
/// Timesteps are 1-based (t ∈ 1..T) everywhere in this class; tensors of timesteps are int64 [N].
/// </summary>
public sealed class CdalSchedule
{
    private readonly double[] _betas;      // index t = 1..T (index 0 unused, 0)
    private readonly double[] _alphaBars;  // index t = 0..T

    /// <summary>The schedule of <paramref name="timesteps"/> steps between <paramref name="betaMin"/> and <paramref name="betaMax"/>.</summary>
    /// <exception cref="ArgumentOutOfRangeException">timesteps &lt; 1, betaMin ≤ 0 or betaMax &lt; betaMin.</exception>
    public CdalSchedule(int timesteps, double betaMin = 0.1, double betaMax = 20)
    {
        if (timesteps < 1) throw new ArgumentOutOfRangeException(nameof(timesteps), timesteps, "at least one diffusion step");
        if (!(betaMin > 0)) throw new ArgumentOutOfRangeException(nameof(betaMin), betaMin, "β_min must be > 0");
        if (!(betaMax >= betaMin)) throw new ArgumentOutOfRangeException(nameof(betaMax), betaMax, "β_max must be ≥ β_min");
        Timesteps = timesteps; BetaMin = betaMin; BetaMax = betaMax;
        _betas = new double[timesteps + 1];
        _alphaBars = new double[timesteps + 1];
        _alphaBars[0] = 1;
        for (int t = 1; t <= timesteps; t++)
        {
            _betas[t] = ClosedFormBeta(t, timesteps, betaMin, betaMax);
            _alphaBars[t] = _alphaBars[t - 1] * (1 - _betas[t]);
        }
    }

    /// <summary>The schedule <paramref name="options"/> describe (Timesteps, BetaMin, BetaMax).</summary>
    public CdalSchedule(CdalOptions options) : this(options.Timesteps, options.BetaMin, options.BetaMax) { }

    /// <summary>T.</summary>
    public int Timesteps { get; }

    /// <summary>β_min.</summary>
    public double BetaMin { get; }

    /// <summary>β_max.</summary>
    public double BetaMax { get; }

    /// <summary>Algorithm 1's β_t = 1 − exp(−β_min/T − ½(β_max − β_min)(2t − 1)/T²) for t ∈ 1..T.</summary>
    public static double ClosedFormBeta(int t, int timesteps, double betaMin, double betaMax)
    {
        if (t < 1 || t > timesteps) throw new ArgumentOutOfRangeException(nameof(t), t, $"t must be in 1..{timesteps}");
        double T = timesteps;
        return 1 - Math.Exp(-betaMin / T - 0.5 * (betaMax - betaMin) * (2.0 * t - 1) / (T * T));
    }

    /// <summary>β_t, t ∈ 1..T.</summary>
    public double Beta(int t) => _betas[Check(t, 1)];

    /// <summary>α_t = 1 − β_t, t ∈ 1..T.</summary>
    public double Alpha(int t) => 1 - _betas[Check(t, 1)];

    /// <summary>ᾱ_t = ∏_{s ≤ t} α_s, t ∈ 0..T (ᾱ_0 = 1).</summary>
    public double AlphaBar(int t) => _alphaBars[Check(t, 0)];

    /// <summary>The posterior mean's coefficients (of x̂₀, of x_t) at t ∈ 1..T.</summary>
    public (double X0, double Xt) PosteriorMeanCoefficients(int t)
    {
        Check(t, 1);
        double b = _betas[t], ab = _alphaBars[t], abPrev = _alphaBars[t - 1];
        return (b * Math.Sqrt(abPrev) / (1 - ab), (1 - abPrev) * Math.Sqrt(1 - b) / (1 - ab));
    }

    /// <summary>The posterior variance β̃_t = β_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) at t ∈ 1..T (0 at t = 1).</summary>
    public double PosteriorVariance(int t)
    {
        Check(t, 1);
        return _betas[t] * (1 - _alphaBars[t - 1]) / (1 - _alphaBars[t]);
    }

    /// <summary>
    /// x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε, a draw of q(x_t | x₀) for per-sample <paramref name="t"/> ∈ 0..T (t = 0 gives x₀).
    /// </summary>
    public Tensor SampleQ(Tensor x0, Tensor t, Tensor noise)
    {
        CheckShapes(x0, t, noise, nameof(noise));
        using var scope = NewDisposeScope();
        var a = Gather(i => Math.Sqrt(_alphaBars[i]), t, x0, 0);
        var s = Gather(i => Math.Sqrt(1 - _alphaBars[i]), t, x0, 0);
        return (a * x0).Plus(s * noise).MoveToOuterDisposeScope();
    }

    /// <summary>x_t = √α_t x_{t−1} + √β_t ε, a draw of q(x_t | x_{t−1}) for per-sample <paramref name="t"/> ∈ 1..T.</summary>
    public Tensor SampleStep(Tensor xPrev, Tensor t, Tensor noise)
    {
        CheckShapes(xPrev, t, noise, nameof(noise));
        using var scope = NewDisposeScope();
        var a = Gather(i => Math.Sqrt(1 - _betas[i]), t, xPrev, 1);
        var s = Gather(i => Math.Sqrt(_betas[i]), t, xPrev, 1);
        return (a * xPrev).Plus(s * noise).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A real pair of the forward chain (§2.2): x_{t−1} ~ q(x_{t−1} | x₀), then x_t ~ q(x_t | x_{t−1}), for per-sample
    /// <paramref name="t"/> ∈ 1..T. Two noise draws of x₀'s shape from <paramref name="generator"/> (first for x_{t−1}).
    /// </summary>
    public (Tensor Previous, Tensor Current) SamplePair(Tensor x0, Tensor t, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        using var scope = NewDisposeScope();
        var e1 = Noise(x0.shape, generator, x0.device);
        var e2 = Noise(x0.shape, generator, x0.device);
        var prev = SampleQ(x0, t - S(1), e1);
        var cur = SampleStep(prev, t, e2);
        return (prev.MoveToOuterDisposeScope(), cur.MoveToOuterDisposeScope());
    }

    /// <summary>The posterior q(x_{t−1} | x_t, x̂₀): its mean and variance (broadcastable [N,1,1,1]) for per-sample t ∈ 1..T.</summary>
    public (Tensor Mean, Tensor Variance) Posterior(Tensor x0, Tensor xt, Tensor t)
    {
        CheckShapes(x0, t, xt, nameof(xt));
        using var scope = NewDisposeScope();
        var c0 = Gather(i => PosteriorMeanCoefficients(i).X0, t, x0, 1);
        var ct = Gather(i => PosteriorMeanCoefficients(i).Xt, t, x0, 1);
        var v = Gather(PosteriorVariance, t, x0, 1);
        return ((c0 * x0).Plus(ct * xt).MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// x̂_{t−1} = mean + √β̃_t ε, a draw of the posterior q(x_{t−1} | x_t, x̂₀) (Eq. 2). At t = 1 the variance is 0 and the
    /// result is x̂₀.
    /// </summary>
    public Tensor SamplePosterior(Tensor x0, Tensor xt, Tensor t, Tensor noise)
    {
        CheckShapes(x0, t, noise, nameof(noise));
        using var scope = NewDisposeScope();
        var (mean, variance) = Posterior(x0, xt, t);
        return mean.Plus(variance.sqrt() * noise).MoveToOuterDisposeScope();
    }

    /// <summary>Standard normal noise of <paramref name="shape"/> drawn from <paramref name="generator"/> on its device, then moved to <paramref name="device"/>.</summary>
    public static Tensor Noise(long[] shape, Generator generator, Device device)
    {
        ArgumentNullException.ThrowIfNull(generator);
        return SeededRandom.Randn(shape, ScalarType.Float32, device, generator);
    }

    private int Check(int t, int min)
    {
        if (t < min || t > Timesteps) throw new ArgumentOutOfRangeException(nameof(t), t, $"t must be in {min}..{Timesteps}");
        return t;
    }

    /// <summary>Per-sample coefficient f(t_i) as [N,1,1,…] float32 on <paramref name="like"/>'s device; t values checked to be in min..T.</summary>
    private Tensor Gather(Func<int, double> f, Tensor t, Tensor like, int min)
    {
        var values = new float[Timesteps + 1];
        for (int i = min; i <= Timesteps; i++) values[i] = (float)f(i);
        using var tc = t.to(ScalarType.Int64, CPU);
        var ts = tc.data<long>().ToArray();
        foreach (var v in ts)
            if (v < min || v > Timesteps) throw new ArgumentOutOfRangeException(nameof(t), v, $"timesteps must be in {min}..{Timesteps}");
        var table = tensor(values, ScalarType.Float32, like.device);
        var idx = t.to(ScalarType.Int64, like.device);
        var shape = new long[like.dim()];
        shape[0] = -1;
        for (int d = 1; d < shape.Length; d++) shape[d] = 1;
        return table.index_select(0, idx).view(shape).to(like.dtype);
    }

    private static void CheckShapes(Tensor x, Tensor t, Tensor other, string otherName)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(t);
        ArgumentNullException.ThrowIfNull(other);
        if (x.dim() < 1 || t.dim() != 1 || t.size(0) != x.size(0))
            throw new ArgumentException($"timesteps must be [N] for a batch of N = {(x.dim() > 0 ? x.size(0) : 0)}, got [{string.Join(", ", t.shape)}]", nameof(t));
        if (!other.shape.SequenceEqual(x.shape))
            throw new ArgumentException($"{otherName} must have the shape of x [{string.Join(", ", x.shape)}], got [{string.Join(", ", other.shape)}]", otherName);
    }
}
