using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion;

/// <summary>What the mask-diffusion network predicts (DASP §3.1, BerDiff §3).</summary>
public enum BernoulliParameterization
{
    /// <summary>
    /// The flip noise ε = y_t ⊕ y_0 (DASP Eq. 5, BerDiff's default): the network gives the logit of P(pixel was
    /// flipped), and ŷ_0 = |y_t − ε̂|. Default.
    /// </summary>
    FlipNoise,

    /// <summary>The clean mask y_0 itself: the network gives the logit of P(y_0 = 1), and ŷ_0 = σ(output).</summary>
    Mask,
}

/// <summary>
/// What the last reverse step (t = 0) returns. As BerDiff's sampler, the last step returns the network's prediction ŷ_0
/// (not the posterior θ of q(y_{−1} | y_0, ŷ_0), which with ȳ_{−1} = 1 and α_0 ≈ 1 stays ≈ y_0 and so keeps the
/// isolated noisy pixels of the last stochastic sample).
/// </summary>
public enum BernoulliFinalStep
{
    /// <summary>
    /// The network's ŷ_0 at t = 0 as a probability map in [0, 1] (not a binary mask). Where such masks are consumed as
    /// binary — the image diffusion's condition and the generated training pairs
    /// (<see cref="ImageDiffusionTransformer.DrawPairs"/>) — they are thresholded at 0.5, which gives
    /// <see cref="Threshold"/>'s masks.
    /// </summary>
    Mean,

    /// <summary>The network's ŷ_0 at t = 0 thresholded at 0.5: a binary {0, 1} mask (the default of the mask diffusion stage).</summary>
    Threshold,
}

/// <summary>
/// The denoiser a <see cref="BernoulliDiffusion"/> samples with: given y_t [N,C,H,W] ({0, 1} float32) and the timesteps
/// [N] (int64 indices of the <em>original</em>, un-respaced schedule, <see cref="NoiseSchedule.Timesteps"/>), the
/// network's logits [N,C,H,W] (of ε or of y_0, see <see cref="BernoulliParameterization"/>).
/// </summary>
public delegate Tensor BernoulliDenoiser(Tensor yt, Tensor timesteps);

/// <summary>The training loss of one batch and its parts (scalars on the batch's device).</summary>
/// <param name="Total">Bce + KlWeight·Kl: the tensor to back-propagate.</param>
/// <param name="Bce">Binary cross-entropy between the network's prediction and its target (DASP Eq. 5), mean per pixel.</param>
/// <param name="Kl">
/// KL(q(y_{t−1} | y_t, y_0) ‖ p_θ(y_{t−1} | y_t)) between the Bernoulli posteriors, mean per pixel in nats (at t = 0 the
/// true posterior is y_0 itself, so this is the decoder's negative log-likelihood); null when its weight is 0.
/// </param>
public sealed record BernoulliLossTerms(Tensor Total, Tensor Bce, Tensor? Kl);

/// <summary>
/// The Bernoulli diffusion process for binary masks (BerDiff, Chen et al. 2023; DASP paper 000, §3.1, Eq. 2–5):
/// <list type="bullet">
/// <item>forward kernel q(y_t | y_{t−1}) = B((1 − β_t)·y_{t−1} + β_t/2) (Eq. 2), and in closed form
/// q(y_t | y_0) = B(ȳ_t·y_0 + (1 − ȳ_t)/2) with ȳ_t = Π_{s≤t}(1 − β_s) (Eq. 3, <see cref="NoiseSchedule.AlphasCumprod"/>),
/// so y_T ≈ B(½). BerDiff's public code (<c>binomial_diffusion.py</c>, <c>q_mean</c>) loses the "+ (1 − ȳ_t)/2" term
/// to a line break (the second line is a separate, discarded expression statement), which makes y_T collapse to all
/// zeros instead of B(½); this class implements the formula of the papers.</item>
/// <item>the flip noise ε = y_t ⊕ y_0 ~ B((1 − ȳ_t)/2), which the network predicts (Eq. 5), or y_0 directly
/// (<see cref="BernoulliParameterization"/>).</item>
/// <item>the reverse step p_θ(y_{t−1} | y_t) = B(θ) (Eq. 4) with the Bernoulli posterior θ = θ₂/(θ₁ + θ₂),
/// θ₂ = [α_t·y_t + (1 − α_t)/2]·[ȳ_{t−1}·ŷ_0 + (1 − ȳ_{t−1})/2], θ₁ = [α_t·(1 − y_t) + (1 − α_t)/2]·[ȳ_{t−1}·(1 − ŷ_0) + (1 − ȳ_{t−1})/2],
/// ŷ_0 = |y_t − ε̂| (ε̂ the predicted flip probability), ȳ_{−1} = 1.</item>
/// </list>
/// Steps are 0-based: index t of the schedule is the paper's step t + 1. Respacing (<see cref="Respace"/>) keeps a
/// subset of the steps; since flips compose (keeping a pixel with probability a then b keeps it with probability a·b),
/// the transition between two kept steps is again a Bernoulli kernel whose α is the respaced schedule's
/// α_i = ȳ_{s_i}/ȳ_{s_{i−1}}, which is what <see cref="NoiseSchedule.Respace"/> computes — so the same posterior,
/// evaluated on the respaced schedule, gives the strided sampler. The network is always given the original step
/// indices (<see cref="NoiseSchedule.Timesteps"/>). Immutable; all randomness comes from the generators passed in.
/// </summary>
public sealed class BernoulliDiffusion
{
    /// <summary>A process on <paramref name="schedule"/> with the given parameterisation.</summary>
    public BernoulliDiffusion(NoiseSchedule schedule, BernoulliParameterization parameterization = BernoulliParameterization.FlipNoise)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        if (!Enum.IsDefined(parameterization)) throw new ArgumentOutOfRangeException(nameof(parameterization), parameterization, "unknown parameterization");
        Schedule = schedule;
        Parameterization = parameterization;
    }

    /// <summary>A process on the standard schedule of <paramref name="kind"/> with <paramref name="steps"/> steps (T).</summary>
    public BernoulliDiffusion(BetaScheduleKind kind, int steps, BernoulliParameterization parameterization = BernoulliParameterization.FlipNoise)
        : this(NoiseSchedule.Create(kind, steps), parameterization) { }

    /// <summary>The schedule (β_t, α_t, ȳ_t).</summary>
    public NoiseSchedule Schedule { get; }

    /// <summary>What the network predicts.</summary>
    public BernoulliParameterization Parameterization { get; }

    /// <summary>Number of steps T of the schedule.</summary>
    public int Steps => Schedule.Length;

    /// <summary>The same process on <paramref name="steps"/> evenly spaced steps of this schedule (strided sampling).</summary>
    public BernoulliDiffusion Respace(int steps) => steps == Steps ? this : new BernoulliDiffusion(Schedule.Respace(steps), Parameterization);

    /// <summary>
    /// The forward marginal's probability ȳ_t·y_0 + (1 − ȳ_t)/2 (Eq. 3). <paramref name="y0"/>: [N,...] in [0, 1];
    /// <paramref name="t"/>: [N] int64 step indices of this schedule. Same dtype and device as <paramref name="y0"/>.
    /// </summary>
    public Tensor ForwardProbability(Tensor y0, Tensor t)
    {
        ArgumentNullException.ThrowIfNull(y0);
        using var scope = torch.NewDisposeScope();
        var abar = PerSample(Schedule.AlphasCumprod, t, y0);
        return (abar * y0).Plus(S(1).Minus(abar) * S(0.5)).MoveToOuterDisposeScope();
    }

    /// <summary>y_t ~ q(y_t | y_0) = B(ȳ_t·y_0 + (1 − ȳ_t)/2), drawn from <paramref name="generator"/> (float32 {0, 1}).</summary>
    public Tensor ForwardSample(Tensor y0, Tensor t, Generator? generator)
    {
        using var scope = torch.NewDisposeScope();
        var p = ForwardProbability(y0, t);
        var u = SeededRandom.Rand(p.shape, p.dtype, p.device, generator);
        return u.lt(p).to(y0.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>The flip noise ε = y_t ⊕ y_0 = |y_t − y_0| (for {0, 1} tensors).</summary>
    public static Tensor FlipNoise(Tensor yt, Tensor y0)
    {
        ArgumentNullException.ThrowIfNull(yt);
        ArgumentNullException.ThrowIfNull(y0);
        return (yt - y0).abs();
    }

    /// <summary>The training target of the network for (y_t, y_0): ε = y_t ⊕ y_0 or y_0 (see <see cref="Parameterization"/>).</summary>
    public Tensor Target(Tensor yt, Tensor y0) => Parameterization == BernoulliParameterization.FlipNoise ? FlipNoise(yt, y0) : y0.clone();

    /// <summary>
    /// ŷ_0 from the network's predicted probability (σ of its logits): |y_t − ε̂| for <see cref="BernoulliParameterization.FlipNoise"/>
    /// (for y_t ∈ {0, 1} this is y_t·(1 − ε̂) + (1 − y_t)·ε̂, differentiable in ε̂), the prediction itself for
    /// <see cref="BernoulliParameterization.Mask"/>.
    /// </summary>
    public Tensor PredictedMask(Tensor yt, Tensor predictedProbability)
    {
        ArgumentNullException.ThrowIfNull(yt);
        ArgumentNullException.ThrowIfNull(predictedProbability);
        return Parameterization == BernoulliParameterization.FlipNoise ? (yt - predictedProbability).abs() : predictedProbability.alias();
    }

    /// <summary>
    /// The Bernoulli posterior mean θ of q(y_{t−1} | y_t, y_0 = <paramref name="y0"/>) on this schedule:
    /// θ₂/(θ₁ + θ₂) with θ₂ = [α_t·y_t + (1 − α_t)/2]·[ȳ_{t−1}·y_0 + (1 − ȳ_{t−1})/2] and θ₁ the same with 1 − y_t and
    /// 1 − y_0 (ȳ_{−1} = 1). <paramref name="y0"/> may be a probability map ŷ_0 (the reverse step p_θ). <paramref name="t"/>:
    /// [N] int64 step indices of this schedule (or a single value for all).
    /// </summary>
    public Tensor PosteriorMean(Tensor yt, Tensor y0, Tensor t)
    {
        ArgumentNullException.ThrowIfNull(yt);
        ArgumentNullException.ThrowIfNull(y0);
        using var scope = torch.NewDisposeScope();
        var a = PerSample(Schedule.Alphas, t, yt);
        var abarPrev = PerSample(Schedule.AlphasCumprodPrev, t, yt);
        var theta2 = (a * yt).Plus(S(1).Minus(a) * S(0.5)) * (abarPrev * y0).Plus(S(1).Minus(abarPrev) * S(0.5));
        var theta1 = (a * S(1).Minus(yt)).Plus(S(1).Minus(a) * S(0.5)) * (abarPrev * S(1).Minus(y0)).Plus(S(1).Minus(abarPrev) * S(0.5));
        return (theta2 / theta1.Plus(theta2)).MoveToOuterDisposeScope();
    }

    /// <summary>Step indices t ~ U{0, …, T − 1} for a batch of <paramref name="n"/>, int64 [N] on <paramref name="device"/>.</summary>
    public Tensor SampleTimesteps(int n, Generator? generator, Device? device = null) =>
        SeededRandom.Randint(0, Steps, [n], device ?? generator?.device ?? torch.CPU, generator);

    /// <summary>
    /// The loss of one batch: BCE(σ(<paramref name="logits"/>), target) (DASP Eq. 5; target ε = y_t ⊕ y_0 or y_0) plus,
    /// when <paramref name="klWeight"/> &gt; 0, klWeight × KL(q(y_{t−1} | y_t, y_0) ‖ p_θ(y_{t−1} | y_t)) between the
    /// Bernoulli posteriors (BerDiff's L_KL + λ·L_BCE, here written Bce + w·Kl). Both terms are per-pixel means.
    /// </summary>
    /// <param name="y0">Clean masks [N,C,H,W] {0, 1}.</param>
    /// <param name="yt">Noised masks from <see cref="ForwardSample"/> at <paramref name="t"/>.</param>
    /// <param name="t">[N] int64 step indices of this schedule.</param>
    /// <param name="logits">The network's output on (y_t, t), [N,C,H,W].</param>
    /// <param name="klWeight">Weight of the KL term (≥ 0; 0 = BCE only, DASP).</param>
    public BernoulliLossTerms Loss(Tensor y0, Tensor yt, Tensor t, Tensor logits, double klWeight = 0)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (!(klWeight >= 0) || double.IsInfinity(klWeight)) throw new ArgumentOutOfRangeException(nameof(klWeight), klWeight, "klWeight must be a finite number ≥ 0");
        if (!logits.shape.SequenceEqual(y0.shape) || !yt.shape.SequenceEqual(y0.shape))
            throw new ArgumentException($"logits [{string.Join(",", logits.shape)}], y_t [{string.Join(",", yt.shape)}] and y_0 [{string.Join(",", y0.shape)}] must have the same shape", nameof(logits));
        using var scope = torch.NewDisposeScope();
        var target = Target(yt, y0);
        var bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target);
        if (klWeight == 0) return new BernoulliLossTerms(bce.MoveToOuterDisposeScope(), bce, null);
        var truth = PosteriorMean(yt, y0, t);
        var predicted = PosteriorMean(yt, PredictedMask(yt, logits.sigmoid()), t);
        var kl = BernoulliKl(truth, predicted).mean();
        var total = bce.Plus(kl * S(klWeight));
        total.MoveToOuterDisposeScope();
        bce.MoveToOuterDisposeScope();
        kl.MoveToOuterDisposeScope();
        return new BernoulliLossTerms(total, bce, kl);
    }

    /// <summary>
    /// Per-element KL(B(q) ‖ B(p)) = q·log(q/p) + (1 − q)·log((1 − q)/(1 − p)) in nats, with 0·log 0 = 0 and p clamped
    /// to [1e-6, 1 − 1e-6] (a deterministic p next to a deterministic, equal q then costs ≈ 1e-6 instead of NaN).
    /// </summary>
    public static Tensor BernoulliKl(Tensor q, Tensor p)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(p);
        using var scope = torch.NewDisposeScope();
        const double eps = 1e-6;
        var pc = p.clamp(S(eps), S(1 - eps));
        var q1 = S(1).Minus(q);
        var kl = (q * (q.clamp_min(S(1e-12)).log() - pc.log())).Plus(q1 * (q1.clamp_min(S(1e-12)).log() - S(1).Minus(pc).log()));
        return kl.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Samples masks with the reverse process p_θ (Eq. 4) over this schedule (respace first for strided sampling):
    /// y_T ~ B(½); for t = T−1 … 1: ŷ_0 from the denoiser, y_{t−1} ~ B(θ(y_t, ŷ_0)); at t = 0 the denoiser's ŷ_0
    /// itself (BerDiff's last step), as a probability map or thresholded at 0.5 (<paramref name="finalStep"/>). Sample n draws all of its noise from <paramref name="generators"/>[n]
    /// (uniforms of shape <paramref name="shape"/>, one draw per step), so each sample depends only on its own generator
    /// and the denoiser, not on which other samples share its batch. Runs in inference mode; every step in a dispose
    /// scope. Returns [N,C,H,W] float32 on <paramref name="device"/>, N = generators.Count.
    /// </summary>
    /// <param name="denoiser">The network (conditioning, if any, captured by the delegate).</param>
    /// <param name="generators">One generator per sample, on <paramref name="device"/>.</param>
    /// <param name="shape">[C,H,W] of one mask.</param>
    /// <param name="finalStep">ŷ_0 as a probability map, or thresholded at 0.5, at the last step.</param>
    /// <param name="device">Where the samples are made.</param>
    /// <param name="cancellationToken">Checked before every step.</param>
    /// <param name="stepDone">Called after every step with (steps done, total steps).</param>
    public Tensor Sample(BernoulliDenoiser denoiser, IReadOnlyList<Generator> generators, long[] shape,
        BernoulliFinalStep finalStep = BernoulliFinalStep.Mean, Device? device = null, CancellationToken cancellationToken = default,
        Action<int, int>? stepDone = null)
    {
        ArgumentNullException.ThrowIfNull(denoiser);
        ArgumentNullException.ThrowIfNull(generators);
        ArgumentNullException.ThrowIfNull(shape);
        if (generators.Count == 0) throw new ArgumentException("at least one generator (one per sample) is needed", nameof(generators));
        if (shape.Length != 3 || shape.Any(s => s < 1)) throw new ArgumentException($"shape must be [C,H,W], got [{string.Join(",", shape)}]", nameof(shape));
        if (!Enum.IsDefined(finalStep)) throw new ArgumentOutOfRangeException(nameof(finalStep), finalStep, "unknown final step");
        device ??= generators[0].device;
        int n = generators.Count;
        using var mode = torch.inference_mode();
        Tensor y;
        using (var scope = torch.NewDisposeScope())
            y = Uniforms(generators, shape, device).lt(S(0.5)).to(ScalarType.Float32).DetachFromDisposeScope();
        try
        {
            for (int i = Steps - 1; i >= 0; i--)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Tensor next;
                using (var scope = torch.NewDisposeScope())
                {
                    var tOrig = torch.full([n], S(Schedule.Timesteps[i]), ScalarType.Int64, device);
                    var logits = denoiser(y, tOrig);
                    if (!logits.shape.SequenceEqual(y.shape))
                        throw new InvalidOperationException($"the denoiser returned [{string.Join(",", logits.shape)}] for y_t [{string.Join(",", y.shape)}]");
                    var y0Hat = PredictedMask(y, logits.to(ScalarType.Float32).sigmoid());
                    if (i > 0)
                    {
                        var theta = PosteriorMean(y, y0Hat, torch.full([n], S(i), ScalarType.Int64, device));
                        next = Uniforms(generators, shape, device).lt(theta).to(ScalarType.Float32);
                    }
                    else
                    {
                        // BerDiff's last step: the prediction ŷ_0, not the posterior θ (which would keep y_0's noisy pixels).
                        next = finalStep == BernoulliFinalStep.Mean ? y0Hat.clone() : y0Hat.ge(S(0.5)).to(ScalarType.Float32);
                    }
                    next.DetachFromDisposeScope();
                }
                y.Dispose();
                y = next;
                stepDone?.Invoke(Steps - i, Steps);
            }
            return y;
        }
        catch
        {
            y.Dispose();
            throw;
        }
    }

    /// <summary>[N,C,H,W] uniforms in [0, 1), row n drawn from generators[n].</summary>
    private static Tensor Uniforms(IReadOnlyList<Generator> generators, long[] shape, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var rows = new Tensor[generators.Count];
        for (int k = 0; k < rows.Length; k++)
        {
            var g = generators[k] ?? throw new ArgumentException($"generator {k} is null", nameof(generators));
            rows[k] = SeededRandom.Rand(shape, ScalarType.Float32, torch.CPU, g);
        }
        var u = torch.stack(rows, 0);
        return (u.device == device ? u : u.to(device)).MoveToOuterDisposeScope();
    }

    /// <summary>table[t] per sample as a [N,1,…,1] tensor broadcastable against <paramref name="like"/> (its dtype and device).</summary>
    private Tensor PerSample(IReadOnlyList<double> table, Tensor t, Tensor like)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (t.dim() > 1) throw new ArgumentException($"t must be [N] step indices, got [{string.Join(",", t.shape)}]", nameof(t));
        var idx = t.to(ScalarType.Int64, torch.CPU).reshape(-1).ToArray<long>();
        if (idx.Length != 1 && idx.Length != like.size(0))
            throw new ArgumentException($"t has {idx.Length} values for a batch of {like.size(0)}", nameof(t));
        var values = new double[idx.Length];
        for (int k = 0; k < idx.Length; k++)
        {
            long s = idx[k];
            if (s < 0 || s >= table.Count) throw new ArgumentOutOfRangeException(nameof(t), s, $"step index outside 0..{table.Count - 1}");
            values[k] = table[(int)s];
        }
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = idx.Length;
        var dtype = torch.is_floating_point(like.dtype) ? like.dtype : ScalarType.Float32;
        return TensorExtensions.FromArray<double>(values, shape).to(dtype, like.device);
    }
}
