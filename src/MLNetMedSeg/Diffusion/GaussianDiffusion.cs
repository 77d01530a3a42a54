using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion;

/// <summary>
/// A noise predictor ε_φ(x_t, y, t) (DASP Eq. 7–8): <paramref name="x"/> [N, C, H, W] in model space,
/// <paramref name="timesteps"/> [N] int64 indices of the original (un-respaced) schedule, <paramref name="condition"/>
/// [N, C_y, H, W] or null. Returns ε̂ shaped like x. <see cref="Networks.DiffusionUNet.forward"/> is one.
/// </summary>
public delegate Tensor NoisePredictor(Tensor x, Tensor timesteps, Tensor? condition);

/// <summary>The reverse process used to generate images.</summary>
public enum GaussianSamplerKind
{
    /// <summary>
    /// DDPM ancestral sampling (Ho et al. 2020): x_{t−1} ~ N(μ̃(x_t, x̂₀), β̃_t·I) with the posterior variance
    /// β̃_t = β_t·(1 − ᾱ_{t−1})/(1 − ᾱ_t) (guided-diffusion's "fixed small"; DASP Eq. 7's σ_t determined by β'_t).
    /// </summary>
    Ddpm,

    /// <summary>DDIM (Song et al. 2021) with stochasticity η (η = 0: deterministic; η = 1: DDPM-like variance).</summary>
    Ddim,
}

/// <summary>How <see cref="GaussianDiffusion.Sample"/> and <see cref="GaussianDiffusion.Denoise"/> run the reverse process.</summary>
public sealed class GaussianSamplingOptions
{
    /// <summary>DDPM or DDIM (default DDIM).</summary>
    public GaussianSamplerKind Sampler { get; set; } = GaussianSamplerKind.Ddim;

    /// <summary>
    /// Number of steps of the respaced schedule (<see cref="NoiseSchedule.Respace"/>, 1..T); the network is
    /// conditioned on the original indices of the kept steps. Default 50.
    /// </summary>
    public int Steps { get; set; } = 50;

    /// <summary>DDIM's η ≥ 0 (ignored by DDPM). Default 0 (deterministic given x_T).</summary>
    public double Eta { get; set; }

    /// <summary>
    /// Classifier-free guidance weight w ≥ 0 (Ho &amp; Salimans 2021): ε = (1 + w)·ε(x, y) − w·ε(x, ∅), ∅ a zero
    /// condition. 0 (the default) uses the conditional prediction only.
    /// </summary>
    public double GuidanceScale { get; set; }

    /// <summary>A copy.</summary>
    public GaussianSamplingOptions Clone() => (GaussianSamplingOptions)MemberwiseClone();

    /// <summary>Checks the options against a schedule of <paramref name="scheduleLength"/> steps.</summary>
    public void Validate(int scheduleLength)
    {
        if (!Enum.IsDefined(Sampler)) throw new ArgumentException($"unknown Sampler {Sampler}", nameof(Sampler));
        if (Steps < 1 || Steps > scheduleLength)
            throw new ArgumentException($"Steps must be in 1..{scheduleLength} (the trained schedule's length), got {Steps}", nameof(Steps));
        if (!(Eta >= 0)) throw new ArgumentException($"Eta must be ≥ 0, got {Eta}", nameof(Eta));
        if (!(GuidanceScale >= 0)) throw new ArgumentException($"GuidanceScale must be ≥ 0, got {GuidanceScale}", nameof(GuidanceScale));
    }
}

/// <summary>
/// The Gaussian diffusion process of DASP §3.2 (Eq. 6–8; Ho et al. 2020) with ε-prediction, separated from the network
/// (as MONAI's schedulers): forward noising q(x_t | x₀) = N(√ᾱ_t·x₀, (1 − ᾱ_t)·I), the training loss
/// ‖ε − ε_φ(x_t, y, t)‖² at t uniform in 0..T−1, DDPM and DDIM reverse processes over a respaced schedule, optional
/// classifier-free guidance, and SDEdit (Meng et al. 2022; DASP Eq. 1). Everything works in model space: images are
/// scaled from [0, 1] to [−1, 1] (<see cref="ToModelRange"/>) and every predicted x̂₀ is clipped to [−1, 1]. A
/// condition is passed to the predictor as given; for classifier-free guidance its "null" value is all zeros, so
/// encode conditions such that 0 means "no information" (the image diffusion stage feeds masks as 2·y − 1 ∈ {−1, 1}).
/// Index convention: step i = 0..T−1 of a schedule is DDPM's t = i + 1 (x₀ is the clean data, reached after step 0).
/// Every loop step runs in its own dispose scope. Stateless apart from the schedule; thread-safe.
/// </summary>
public sealed class GaussianDiffusion
{
    /// <summary>A process over <paramref name="schedule"/> (the schedule the network is trained on).</summary>
    public GaussianDiffusion(NoiseSchedule schedule)
    {
        ArgumentNullException.ThrowIfNull(schedule);
        Schedule = schedule;
    }

    /// <summary>The training schedule (T = Schedule.Length steps).</summary>
    public NoiseSchedule Schedule { get; }

    /// <summary>[0, 1] → [−1, 1]: 2·x − 1.</summary>
    public static Tensor ToModelRange(Tensor images) => images * S(2.0) - S(1.0);

    /// <summary>[−1, 1] → [0, 1]: (x + 1)/2, clamped to [0, 1].</summary>
    public static Tensor ToImageRange(Tensor x)
    {
        using var scope = NewDisposeScope();
        return (x.Plus(S(1.0)) * S(0.5)).clamp(S(0.0), S(1.0)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Forward noising (Eq. 6 in closed form): √ᾱ_t·x₀ + √(1 − ᾱ_t)·ε for per-sample steps <paramref name="t"/> [N]
    /// (int64 indices of <see cref="Schedule"/>).
    /// </summary>
    public Tensor QSample(Tensor x0, Tensor t, Tensor noise)
    {
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(t);
        ArgumentNullException.ThrowIfNull(noise);
        if (!noise.shape.SequenceEqual(x0.shape)) throw new ArgumentException("noise must have x0's shape", nameof(noise));
        if (t.dim() != 1 || t.size(0) != x0.size(0)) throw new ArgumentException($"t must be [{x0.size(0)}]", nameof(t));
        using var scope = NewDisposeScope();
        var a = Gather(Schedule.AlphasCumprod.Select(Math.Sqrt), t, x0);
        var s = Gather(Schedule.AlphasCumprod.Select(v => Math.Sqrt(1 - v)), t, x0);
        return (a * x0).Plus(s * noise).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The training loss of Eq. 8, mean over all elements: MSE(ε_φ(x_t, y, t), ε) with t uniform in 0..T−1 and
    /// ε ~ N(0, I), both drawn from <paramref name="generator"/>. With <paramref name="conditionDropout"/> p &gt; 0 each
    /// sample's condition is replaced by zeros with probability p (classifier-free guidance training). The result keeps
    /// the graph through <paramref name="model"/>. <paramref name="x0"/>: [N, C, H, W] in model space.
    /// </summary>
    public Tensor TrainingLoss(NoisePredictor model, Tensor x0, Tensor? condition, double conditionDropout = 0, Generator? generator = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x0);
        if (!(conditionDropout >= 0 && conditionDropout <= 1))
            throw new ArgumentOutOfRangeException(nameof(conditionDropout), conditionDropout, "must be in [0, 1]");
        using var scope = NewDisposeScope();
        long n = x0.size(0);
        var t = SeededRandom.Randint(0, Schedule.Length, [n], x0.device, generator);
        var noise = SeededRandom.Randn(x0.shape, x0.dtype, x0.device, generator);
        var xt = QSample(x0, t, noise);
        var cond = condition;
        if (condition is not null && conditionDropout > 0)
        {
            var keep = SeededRandom.Rand([n], ScalarType.Float32, x0.device, generator).ge(S(conditionDropout)).to(condition.dtype);
            cond = condition * keep.reshape(n, 1, 1, 1);
        }
        var eps = model(xt, t, cond);
        return nn.functional.mse_loss(eps, noise).MoveToOuterDisposeScope();
    }

    /// <summary>Classifier-free guidance: (1 + w)·ε_cond − w·ε_uncond.</summary>
    public static Tensor Guide(Tensor epsConditional, Tensor epsUnconditional, double guidanceScale)
    {
        using var scope = NewDisposeScope();
        return (epsConditional * S(1 + guidanceScale) - epsUnconditional * S(guidanceScale)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// ε̂ at network step <paramref name="timestep"/> for the whole batch, with classifier-free guidance when
    /// <paramref name="guidanceScale"/> &gt; 0 and a condition is given (one forward over the doubled batch
    /// [x; x] with [y; 0]).
    /// </summary>
    public static Tensor PredictNoise(NoisePredictor model, Tensor x, int timestep, Tensor? condition, double guidanceScale)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var scope = NewDisposeScope();
        long n = x.size(0);
        if (guidanceScale == 0 || condition is null)
            return model(x, full([n], S(timestep), ScalarType.Int64, x.device), condition).MoveToOuterDisposeScope();
        var both = model(cat([x, x], 0), full([2 * n], S(timestep), ScalarType.Int64, x.device), cat([condition, zeros_like(condition)], 0));
        var parts = both.chunk(2, 0);
        return Guide(parts[0], parts[1], guidanceScale).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Generates samples: x_T ~ N(0, I) of <paramref name="shape"/>, then the reverse process of
    /// <paramref name="options"/> down to x₀ (model space, in [−1, 1]). Random draws come from
    /// <paramref name="generators"/>: one generator for the whole batch, or one per row (row k's noise then depends only
    /// on its generator, so results do not depend on how rows are batched); none = the global generator.
    /// No graph is recorded.
    /// </summary>
    public Tensor Sample(NoisePredictor model, long[] shape, Tensor? condition, GaussianSamplingOptions options,
        IReadOnlyList<Generator>? generators = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate(Schedule.Length);
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var xT = Noise(shape, ScalarType.Float32, device ?? condition?.device ?? CPU, generators);
        var spaced = Schedule.Respace(options.Steps);
        return Denoise(model, xT, condition, spaced, spaced.Length, options, generators).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Runs the reverse process on <paramref name="x"/>, which is at step <paramref name="fromStep"/> − 1 of the
    /// respaced schedule <paramref name="spaced"/> (made from <see cref="Schedule"/> by Respace/Subset), for
    /// <paramref name="fromStep"/> steps i = fromStep − 1 .. 0, and returns x₀ (model space). Per step: ε̂ (guided),
    /// x̂₀ = (x_i − √(1 − ᾱ_i)·ε̂)/√ᾱ_i clipped to [−1, 1], then
    /// DDIM: ε' = (x_i − √ᾱ_i·x̂₀)/√(1 − ᾱ_i), σ = η·√((1 − ᾱ_{i−1})/(1 − ᾱ_i))·√(1 − ᾱ_i/ᾱ_{i−1}),
    /// x_{i−1} = √ᾱ_{i−1}·x̂₀ + √(1 − ᾱ_{i−1} − σ²)·ε' + σ·z;
    /// DDPM: x_{i−1} = β_i√ᾱ_{i−1}/(1 − ᾱ_i)·x̂₀ + (1 − ᾱ_{i−1})√α_i/(1 − ᾱ_i)·x_i + √β̃_i·z
    /// (β, α of the respaced schedule; no noise at the last step, where ᾱ_{−1} = 1 makes the result x̂₀).
    /// Records the graph through the model when grad mode is on (the differentiable SDEdit).
    /// <paramref name="fromStep"/> = 0 returns an alias of x.
    /// </summary>
    public Tensor Denoise(NoisePredictor model, Tensor x, Tensor? condition, NoiseSchedule spaced, int fromStep,
        GaussianSamplingOptions options, IReadOnlyList<Generator>? generators = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(spaced);
        ArgumentNullException.ThrowIfNull(options);
        if (fromStep < 0 || fromStep > spaced.Length)
            throw new ArgumentOutOfRangeException(nameof(fromStep), fromStep, $"must be in 0..{spaced.Length}");
        if (spaced.Timesteps.Any(s => s < 0 || s >= Schedule.Length))
            throw new ArgumentException("the respaced schedule does not come from this process's schedule", nameof(spaced));
        if (!(options.Eta >= 0)) throw new ArgumentException($"Eta must be ≥ 0, got {options.Eta}", nameof(options));
        CheckGenerators(generators, x.size(0));
        var cur = x.alias();
        for (int i = fromStep - 1; i >= 0; i--)
        {
            var next = ReverseStepCore(model, cur, condition, spaced, i, options, generators);
            cur.Dispose();
            cur = next;
        }
        return cur;
    }

    /// <summary>
    /// One step of the reverse process of <see cref="Denoise"/>: from <paramref name="x"/> at respaced step
    /// <paramref name="step"/> (x_i) to x_{i−1} with the sampler, η and guidance of <paramref name="options"/> (noise
    /// from <paramref name="generators"/>, none at step 0, where the result is the clipped x̂₀). The building block of
    /// samplers that interleave other operations with the reverse steps (RePaint's merge of the known region).
    /// Records the graph through the model when grad mode is on.
    /// </summary>
    public Tensor ReverseStep(NoisePredictor model, Tensor x, Tensor? condition, NoiseSchedule spaced, int step,
        GaussianSamplingOptions options, IReadOnlyList<Generator>? generators = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(spaced);
        ArgumentNullException.ThrowIfNull(options);
        if (step < 0 || step >= spaced.Length)
            throw new ArgumentOutOfRangeException(nameof(step), step, $"must be in 0..{spaced.Length - 1}");
        if (spaced.Timesteps.Any(s => s < 0 || s >= Schedule.Length))
            throw new ArgumentException("the respaced schedule does not come from this process's schedule", nameof(spaced));
        if (!(options.Eta >= 0)) throw new ArgumentException($"Eta must be ≥ 0, got {options.Eta}", nameof(options));
        CheckGenerators(generators, x.size(0));
        return ReverseStepCore(model, x, condition, spaced, step, options, generators);
    }

    private static Tensor ReverseStepCore(NoisePredictor model, Tensor cur, Tensor? condition, NoiseSchedule spaced, int i,
        GaussianSamplingOptions options, IReadOnlyList<Generator>? generators)
    {
        using var scope = NewDisposeScope();
        double ab = spaced.AlphasCumprod[i], abPrev = spaced.AlphasCumprodPrev[i];
        var eps = PredictNoise(model, cur, spaced.Timesteps[i], condition, options.GuidanceScale);
        var x0 = ((cur - eps * S(Math.Sqrt(1 - ab))) * S(1 / Math.Sqrt(ab))).clamp(S(-1.0), S(1.0));
        Tensor next;
        double sigma;
        if (options.Sampler == GaussianSamplerKind.Ddim)
        {
            var epsClipped = (cur - x0 * S(Math.Sqrt(ab))) * S(1 / Math.Sqrt(1 - ab));
            sigma = options.Eta * Math.Sqrt((1 - abPrev) / (1 - ab)) * Math.Sqrt(1 - ab / abPrev);
            next = (x0 * S(Math.Sqrt(abPrev))).Plus(epsClipped * S(Math.Sqrt(Math.Max(1 - abPrev - sigma * sigma, 0))));
        }
        else
        {
            double beta = spaced.Betas[i], alpha = spaced.Alphas[i];
            next = (x0 * S(beta * Math.Sqrt(abPrev) / (1 - ab))).Plus(cur * S((1 - abPrev) * Math.Sqrt(alpha) / (1 - ab)));
            sigma = Math.Sqrt(beta * (1 - abPrev) / (1 - ab));
        }
        if (i > 0 && sigma > 0) next = next.Plus(Noise(cur.shape, cur.dtype, cur.device, generators) * S(sigma));
        return next.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// SDEdit (DASP Eq. 1; Diff-PGD's <c>SDEdit.sdedit</c>): noises <paramref name="x"/> (model space) to index
    /// <paramref name="depth"/> of the schedule respaced to <paramref name="respacedSteps"/> steps,
    /// x_{T^s} = √ᾱ_{T^s}·x + √(1 − ᾱ_{T^s})·z, and denoises it back with <paramref name="depth"/> + 1 deterministic DDIM
    /// (η = 0) steps at respaced indices T^s, T^s − 1, …, 0 conditioned on <paramref name="condition"/> — Eq. 1's
    /// R_φ(…R_φ(R_φ(x_{T^s}, T^s), T^s − 1)…, 0), which is Diff-PGD's <c>range(t + 1)</c> loop. Depth is counted in
    /// respaced steps (DASP's T^s), in 0..respacedSteps − 1; depth 0 means "no SDEdit" and returns x (an alias), it does
    /// not run Eq. 1's single step at index 0. With <paramref name="differentiable"/> the graph through the denoiser is
    /// kept (the result's gradient reaches x, as Eq. 9 needs); otherwise it is computed without grad and detached. z comes
    /// from <paramref name="generators"/> (one, or one per row).
    /// </summary>
    public Tensor SdEdit(NoisePredictor model, Tensor x, Tensor? condition, int respacedSteps, int depth, bool differentiable,
        IReadOnlyList<Generator>? generators = null, double guidanceScale = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x);
        if (respacedSteps < 1 || respacedSteps > Schedule.Length)
            throw new ArgumentOutOfRangeException(nameof(respacedSteps), respacedSteps, $"must be in 1..{Schedule.Length}");
        if (depth < 0 || depth >= respacedSteps)
            throw new ArgumentOutOfRangeException(nameof(depth), depth,
                $"must be in 0..{respacedSteps - 1} (the respaced index SDEdit noises to; {respacedSteps} respaced steps)");
        CheckGenerators(generators, x.size(0));
        if (depth == 0) return differentiable ? x.alias() : x.detach();
        using var scope = NewDisposeScope();
        using var grad = set_grad_enabled(differentiable && is_grad_enabled());
        var spaced = Schedule.Respace(respacedSteps);
        double ab = spaced.AlphasCumprod[depth];
        var xt = (x * S(Math.Sqrt(ab))).Plus(Noise(x.shape, x.dtype, x.device, generators) * S(Math.Sqrt(1 - ab)));
        var options = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddim, Steps = respacedSteps, Eta = 0, GuidanceScale = guidanceScale };
        var y = Denoise(model, xt, condition, spaced, depth + 1, options);
        return (differentiable ? y : y.detach()).MoveToOuterDisposeScope();
    }

    /// <summary>Standard normal noise of <paramref name="shape"/>: from one generator, or row by row from one generator per row.</summary>
    internal static Tensor Noise(long[] shape, ScalarType dtype, Device device, IReadOnlyList<Generator>? generators)
    {
        if (generators is null || generators.Count == 0) return SeededRandom.Randn(shape, dtype, device, null);
        if (generators.Count == 1) return SeededRandom.Randn(shape, dtype, device, generators[0]);
        CheckGenerators(generators, shape[0]);
        using var scope = NewDisposeScope();
        var row = shape.ToArray();
        row[0] = 1;
        return cat(generators.Select(g => SeededRandom.Randn(row, dtype, device, g)).ToList(), 0).MoveToOuterDisposeScope();
    }

    private static void CheckGenerators(IReadOnlyList<Generator>? generators, long n)
    {
        if (generators is not null && generators.Count > 1 && generators.Count != n)
            throw new ArgumentException($"give one generator, or one per row ({n}); got {generators.Count}", nameof(generators));
    }

    /// <summary>values[t] reshaped to [N, 1, 1, 1] (as many ones as like has dims − 1) in like's dtype and device.</summary>
    private static Tensor Gather(IEnumerable<double> values, Tensor t, Tensor like)
    {
        using var scope = NewDisposeScope();
        var table = tensor(values.ToArray()).to(like.dtype, like.device);
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[0] = t.size(0);
        return table.index_select(0, t.to(ScalarType.Int64, like.device)).reshape(shape).MoveToOuterDisposeScope();
    }
}
