using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>One transition of RePaint's time schedule between noise levels (see <see cref="RePaintScheduler.TimeSchedule"/>).</summary>
public enum RePaintTransition
{
    /// <summary>A reverse (denoising) step from level s to s − 1, followed by the merge with the known region.</summary>
    Denoise,

    /// <summary>A forward (re-noising) step from level s to s + 1: x_{s+1} ~ N(√(1 − β)·x_s, β·I) (RePaint's "jump back").</summary>
    Renoise,
}

/// <summary>What <see cref="RePaintScheduler.Inpaint"/> did at one transition (passed to its observer; the tensors are valid only during the call).</summary>
/// <param name="Index">The transition's position in the schedule (0-based).</param>
/// <param name="Kind">Denoise (then merge) or renoise.</param>
/// <param name="FromLevel">The noise level before (T = pure noise, 0 = clean).</param>
/// <param name="ToLevel">The noise level after.</param>
/// <param name="State">The state after the transition (after the merge for a denoising step), model space.</param>
/// <param name="Known">For a denoising step, the known region's sample at <paramref name="ToLevel"/> (q-sampled from the
/// known image; the image itself at level 0) that was merged in; null for a renoising step.</param>
/// <param name="Keep">The known-region mask (true = known), broadcastable to the state.</param>
public sealed record RePaintStep(int Index, RePaintTransition Kind, int FromLevel, int ToLevel, Tensor State, Tensor? Known, Tensor Keep);

/// <summary>
/// RePaint (Lugmayr et al. 2022, "RePaint: Inpainting using Denoising Diffusion Probabilistic Models", Algorithm 1 and
/// §4.2's resampling schedule; paper 004 Appendix A.1.1, Eq. 3) over a <see cref="GaussianDiffusion"/> and its noise
/// predictor, separated from any stage (as MONAI separates schedulers from inferers). Noise levels s = T..0 of the
/// schedule respaced to T = <c>steps</c> steps: level s &gt; 0 is respaced step s − 1 (x_s), level 0 the clean image.
/// <list type="bullet">
/// <item>Denoising s → s − 1: the unknown part is one DDPM ancestral step (Eq. 2, <see cref="GaussianDiffusion.ReverseStep"/>);
/// the known part is q-sampled from the known image x₀ at level s − 1 (Eq. 1: √ᾱ·x₀ + √(1 − ᾱ)·ε; x₀ itself at level 0);
/// the two are merged, x = m ⊙ known + (1 − m) ⊙ unknown (Eq. 3), with m = 1 on the known region — exactly: the known
/// region of the merged state IS the known sample (<see cref="Merge"/> selects, it does not blend).</item>
/// <item>Renoising s → s + 1 (resampling, "jumps"): x_{s+1} = √(1 − β_{s+1})·x_s + √β_{s+1}·z on the whole image, so
/// that the next denoising steps harmonise the generated region with the known one.</item>
/// <item>The time schedule (<see cref="TimeSchedule"/>): going down from T, at every jump point (levels 1 + k·L with
/// s + L ≤ T) the process jumps back up L levels and comes down again, r − 1 times (r = jump resamplings, RePaint's
/// <c>jump_n_sample</c>; L = jump length, <c>jump_length</c>); with u = step resamplings (<c>n_sample</c>) &gt; 1 every
/// denoising step below T − 1 is also undone and redone u − 1 times (Algorithm 1's inner loop).</item>
/// </list>
/// Random draws come from one generator, or one per row (row k's result then depends only on its generator). Every
/// transition runs in its own dispose scope; no graph is recorded. Stateless apart from the process; thread-safe.
/// </summary>
public sealed class RePaintScheduler
{
    /// <summary>A scheduler over <paramref name="diffusion"/> (the process the noise predictor was trained on).</summary>
    public RePaintScheduler(GaussianDiffusion diffusion)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        Diffusion = diffusion;
    }

    /// <summary>The Gaussian process.</summary>
    public GaussianDiffusion Diffusion { get; }

    /// <summary>
    /// The sequence of noise levels RePaint visits, from <paramref name="steps"/> (x_T, pure noise) to 0 (the result);
    /// consecutive levels differ by exactly one (down: denoise and merge; up: renoise). With
    /// <paramref name="jumpResamplings"/> = 1 and <paramref name="stepResamplings"/> = 1 it is T, T − 1, …, 0.
    /// </summary>
    /// <param name="steps">T, the respaced schedule's length (≥ 1).</param>
    /// <param name="jumpLength">L, levels jumped back at a jump point (≥ 1; Table A.2: 10).</param>
    /// <param name="jumpResamplings">r, passes through each jump interval (≥ 1; Table A.2: 5); r − 1 jumps per point.</param>
    /// <param name="stepResamplings">u, passes through each single step (≥ 1; Table A.2's n_sample: 1).</param>
    public static IReadOnlyList<int> TimeSchedule(int steps, int jumpLength, int jumpResamplings, int stepResamplings = 1)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "must be ≥ 1");
        if (jumpLength < 1) throw new ArgumentOutOfRangeException(nameof(jumpLength), jumpLength, "must be ≥ 1");
        if (jumpResamplings < 1) throw new ArgumentOutOfRangeException(nameof(jumpResamplings), jumpResamplings, "must be ≥ 1");
        if (stepResamplings < 1) throw new ArgumentOutOfRangeException(nameof(stepResamplings), stepResamplings, "must be ≥ 1");
        var jumpsLeft = new Dictionary<int, int>();
        for (int s = 1; s + jumpLength <= steps; s += jumpLength) jumpsLeft[s] = jumpResamplings - 1;
        var levels = new List<int> { steps };
        int level = steps;
        while (level > 0)
        {
            level--;
            levels.Add(level);
            if (level < steps - 1)
                for (int u = 1; u < stepResamplings; u++)
                {
                    levels.Add(level + 1);
                    levels.Add(level);
                }
            if (jumpsLeft.TryGetValue(level, out int left) && left > 0)
            {
                jumpsLeft[level] = left - 1;
                for (int j = 0; j < jumpLength; j++) levels.Add(++level);
            }
        }
        return levels;
    }

    /// <summary>Number of network evaluations (denoising transitions) of <see cref="TimeSchedule"/>'s schedule.</summary>
    public static int NetworkEvaluations(IReadOnlyList<int> levels)
    {
        ArgumentNullException.ThrowIfNull(levels);
        int n = 0;
        for (int k = 1; k < levels.Count; k++) if (levels[k] < levels[k - 1]) n++;
        return n;
    }

    /// <summary>ᾱ at noise level <paramref name="level"/> of <paramref name="spaced"/> (1 at level 0).</summary>
    public static double AlphaBarAtLevel(NoiseSchedule spaced, int level)
    {
        ArgumentNullException.ThrowIfNull(spaced);
        if (level < 0 || level > spaced.Length) throw new ArgumentOutOfRangeException(nameof(level), level, $"must be in 0..{spaced.Length}");
        return level == 0 ? 1.0 : spaced.AlphasCumprod[level - 1];
    }

    /// <summary>
    /// The known region's sample at <paramref name="level"/> (Eq. 1): √ᾱ·x₀ + √(1 − ᾱ)·ε with ε from
    /// <paramref name="generators"/>; at level 0, x₀ itself (an alias, no draw).
    /// </summary>
    public Tensor KnownSample(Tensor x0, NoiseSchedule spaced, int level, IReadOnlyList<Generator>? generators)
    {
        ArgumentNullException.ThrowIfNull(x0);
        double ab = AlphaBarAtLevel(spaced, level);
        if (level == 0) return x0.alias();
        using var scope = NewDisposeScope();
        var eps = GaussianDiffusion.Noise(x0.shape, x0.dtype, x0.device, generators);
        return (x0 * S(Math.Sqrt(ab))).Plus(eps * S(Math.Sqrt(1 - ab))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Eq. 3's merge: <paramref name="known"/> where <paramref name="keep"/> is true, <paramref name="unknown"/> elsewhere
    /// (a selection, so the known region is copied bit for bit). <paramref name="keep"/>: bool, broadcastable.
    /// </summary>
    public static Tensor Merge(Tensor known, Tensor unknown, Tensor keep)
    {
        ArgumentNullException.ThrowIfNull(known);
        ArgumentNullException.ThrowIfNull(unknown);
        ArgumentNullException.ThrowIfNull(keep);
        if (keep.dtype != ScalarType.Bool) throw new ArgumentException($"keep must be a bool mask, got {keep.dtype}", nameof(keep));
        return where(keep, known, unknown);
    }

    /// <summary>
    /// One renoising transition from <paramref name="level"/> to <paramref name="level"/> + 1:
    /// √(1 − β)·x + √β·z with β the respaced schedule's β at level + 1 (its step <paramref name="level"/>).
    /// </summary>
    public static Tensor Renoise(Tensor x, NoiseSchedule spaced, int level, IReadOnlyList<Generator>? generators)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(spaced);
        if (level < 0 || level >= spaced.Length) throw new ArgumentOutOfRangeException(nameof(level), level, $"must be in 0..{spaced.Length - 1}");
        using var scope = NewDisposeScope();
        double beta = spaced.Betas[level];
        var z = GaussianDiffusion.Noise(x.shape, x.dtype, x.device, generators);
        return (x * S(Math.Sqrt(1 - beta))).Plus(z * S(Math.Sqrt(beta))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Inpaints: starts from x_T ~ N(0, I) and follows <paramref name="levels"/> (from <see cref="TimeSchedule"/>), each
    /// denoising step a DDPM step of <paramref name="model"/> (with <paramref name="condition"/> and classifier-free
    /// guidance <paramref name="guidanceScale"/>) merged with the known region of <paramref name="x0"/>, each upward step a
    /// renoising. Returns x₀ [N, C, H, W] in model space: equal to <paramref name="x0"/> on the known region.
    /// <paramref name="observer"/>, if given, sees every transition (for tests and visualisation).
    /// </summary>
    /// <param name="model">The noise predictor.</param>
    /// <param name="x0">The known image(s), model space, [N, C, H, W].</param>
    /// <param name="keep">Known region, bool, broadcastable to x0 (e.g. [N, 1 or C, H, W]).</param>
    /// <param name="condition">The predictor's condition or null.</param>
    /// <param name="spaced">The respaced schedule (from <see cref="Diffusion"/>'s schedule); its length is T.</param>
    /// <param name="levels">The time schedule; must start at T, end at 0, move by one level at a time.</param>
    /// <param name="generators">One generator, or one per row; none = the global generator.</param>
    /// <param name="guidanceScale">Classifier-free guidance weight (0 = none).</param>
    /// <param name="observer">Called after every transition.</param>
    /// <param name="cancellationToken">Checked before every transition.</param>
    public Tensor Inpaint(NoisePredictor model, Tensor x0, Tensor keep, Tensor? condition, NoiseSchedule spaced, IReadOnlyList<int> levels,
        IReadOnlyList<Generator>? generators = null, double guidanceScale = 0, Action<RePaintStep>? observer = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(x0);
        ArgumentNullException.ThrowIfNull(keep);
        ArgumentNullException.ThrowIfNull(spaced);
        ArgumentNullException.ThrowIfNull(levels);
        if (x0.dim() != 4) throw new ArgumentException($"x0 must be [N,C,H,W], got [{string.Join(",", x0.shape)}]", nameof(x0));
        if (keep.dtype != ScalarType.Bool) throw new ArgumentException($"keep must be a bool mask, got {keep.dtype}", nameof(keep));
        if (spaced.Timesteps.Any(s => s < 0 || s >= Diffusion.Schedule.Length))
            throw new ArgumentException("the respaced schedule does not come from this process's schedule", nameof(spaced));
        CheckLevels(levels, spaced.Length);
        if (generators is not null && generators.Count > 1 && generators.Count != x0.size(0))
            throw new ArgumentException($"give one generator, or one per row ({x0.size(0)}); got {generators.Count}", nameof(generators));
        var sampling = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddpm, Steps = spaced.Length, GuidanceScale = guidanceScale };
        using var outer = NewDisposeScope();
        using var _ = no_grad();
        var keepB = keep.to(x0.device).expand(x0.shape);
        var cur = GaussianDiffusion.Noise(x0.shape, x0.dtype, x0.device, generators);
        for (int k = 1; k < levels.Count; k++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            int from = levels[k - 1], to = levels[k];
            Tensor next;
            Tensor? known = null;
            if (to < from)
            {
                // Unknown region: one reverse step from level `from` (respaced step from − 1); known region: q(x_to | x0).
                var unknown = Diffusion.ReverseStep(model, cur, condition, spaced, from - 1, sampling, generators);
                known = KnownSample(x0, spaced, to, generators);
                next = Merge(known, unknown, keepB);
            }
            else
            {
                next = Renoise(cur, spaced, from, generators);
            }
            observer?.Invoke(new RePaintStep(k - 1, to < from ? RePaintTransition.Denoise : RePaintTransition.Renoise, from, to, next, known, keepB));
            cur.Dispose();
            cur = next.MoveToOuterDisposeScope();
        }
        return cur.MoveToOuterDisposeScope();
    }

    private static void CheckLevels(IReadOnlyList<int> levels, int steps)
    {
        if (levels.Count < 2 || levels[0] != steps || levels[^1] != 0)
            throw new ArgumentException($"the time schedule must go from {steps} (the respaced schedule's length) to 0", nameof(levels));
        for (int k = 1; k < levels.Count; k++)
            if (Math.Abs(levels[k] - levels[k - 1]) != 1 || levels[k] < 0 || levels[k] > steps)
                throw new ArgumentException($"the time schedule must move one level at a time within 0..{steps}; entry {k} goes {levels[k - 1]} → {levels[k]}", nameof(levels));
    }
}
