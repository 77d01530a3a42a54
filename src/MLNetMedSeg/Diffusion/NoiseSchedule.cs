namespace MLNetMedSeg.Diffusion;

/// <summary>How the noise scales β_t of a diffusion process are laid out over its T steps.</summary>
public enum BetaScheduleKind
{
    /// <summary>
    /// Linear β from 1e-4 to 0.02, both scaled by 1000/T so that any T spans the same noise range (Ho et al. 2020;
    /// guided-diffusion's "linear"). For T &lt; 20 the scaled β would exceed 1; they are clipped at 0.999.
    /// </summary>
    Linear,

    /// <summary>
    /// Squared-cosine ᾱ_t = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s)·π/2), s = 0.008, β clipped at 0.999
    /// (Nichol &amp; Dhariwal 2021; diffusers' "squaredcos_cap_v2").
    /// </summary>
    Cosine,
}

/// <summary>
/// A discrete noise schedule: β_t, α_t = 1 − β_t and ᾱ_t = Π_{s≤t} α_s for t = 0..Length−1 (index 0 is the first
/// diffusion step). The same numbers drive the Gaussian process (√ᾱ_t·x₀ + √(1 − ᾱ_t)·ε) and the Bernoulli one
/// (DASP Eq. 2–3: ȳ_t = Π(1 − β_s)). A respaced schedule keeps a subset of the steps of its parent
/// (<see cref="Timesteps"/> maps each kept step to the parent's index, which is what the network is conditioned on)
/// and recomputes β so that its ᾱ equal the parent's at the kept steps (Nichol &amp; Dhariwal, §4; SDEdit/DDIM
/// respacing). Immutable; computed in double precision.
/// </summary>
public sealed class NoiseSchedule
{
    private NoiseSchedule(double[] betas, int[] timesteps)
    {
        _betas = betas;
        Timesteps = Array.AsReadOnly(timesteps);
        Alphas = Array.AsReadOnly(betas.Select(b => 1 - b).ToArray());
        _alphasCumprod = new double[betas.Length];
        double p = 1;
        for (int i = 0; i < betas.Length; i++) { p *= 1 - betas[i]; _alphasCumprod[i] = p; }
        AlphasCumprodPrev = Array.AsReadOnly<double>([1.0, .. _alphasCumprod[..^1]]);
    }

    private readonly double[] _betas;
    private readonly double[] _alphasCumprod;

    /// <summary>Number of steps.</summary>
    public int Length => _betas.Length;

    /// <summary>β_t.</summary>
    public IReadOnlyList<double> Betas => _betas;

    /// <summary>α_t = 1 − β_t.</summary>
    public IReadOnlyList<double> Alphas { get; }

    /// <summary>ᾱ_t = Π_{s≤t} α_s (DASP's ȳ_t).</summary>
    public IReadOnlyList<double> AlphasCumprod => _alphasCumprod;

    /// <summary>ᾱ_{t−1}, with ᾱ_{−1} = 1.</summary>
    public IReadOnlyList<double> AlphasCumprodPrev { get; }

    /// <summary>For each step, the step index of the original (un-respaced) schedule the network was trained on.</summary>
    public IReadOnlyList<int> Timesteps { get; }

    /// <summary>The standard schedule of <paramref name="kind"/> with <paramref name="steps"/> steps.</summary>
    public static NoiseSchedule Create(BetaScheduleKind kind, int steps)
    {
        if (steps < 1) throw new ArgumentOutOfRangeException(nameof(steps), steps, "A schedule needs at least one step.");
        var betas = new double[steps];
        switch (kind)
        {
            case BetaScheduleKind.Linear:
                double scale = 1000.0 / steps, lo = scale * 1e-4, hi = scale * 0.02;
                for (int i = 0; i < steps; i++) betas[i] = Math.Min(steps == 1 ? lo : lo + (hi - lo) * i / (steps - 1), 0.999);
                break;
            case BetaScheduleKind.Cosine:
                static double F(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
                for (int i = 0; i < steps; i++)
                    betas[i] = Math.Min(1 - F((i + 1.0) / steps) / F((double)i / steps), 0.999);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown beta schedule.");
        }
        return FromBetas(betas);
    }

    /// <summary>A schedule from explicit β values (each in (0, 1]).</summary>
    public static NoiseSchedule FromBetas(IReadOnlyList<double> betas)
    {
        ArgumentNullException.ThrowIfNull(betas);
        if (betas.Count == 0) throw new ArgumentException("A schedule needs at least one step.", nameof(betas));
        for (int i = 0; i < betas.Count; i++)
            if (!(betas[i] > 0 && betas[i] <= 1))
                throw new ArgumentOutOfRangeException(nameof(betas), $"β[{i}] = {betas[i]} is outside (0, 1].");
        return new NoiseSchedule(betas.ToArray(), Enumerable.Range(0, betas.Count).ToArray());
    }

    /// <summary>
    /// The <paramref name="count"/> evenly spaced steps of this schedule, first and last included
    /// (index round(i·(T − 1)/(count − 1))), with β recomputed so that ᾱ is unchanged at the kept steps.
    /// <c>Respace(Length)</c> is this schedule.
    /// </summary>
    public NoiseSchedule Respace(int count)
    {
        if (count < 1 || count > Length)
            throw new ArgumentOutOfRangeException(nameof(count), count, $"Respacing needs 1..{Length} steps.");
        var keep = new int[count];
        for (int i = 0; i < count; i++)
            keep[i] = count == 1 ? Length - 1 : (int)Math.Round(i * (Length - 1.0) / (count - 1), MidpointRounding.AwayFromZero);
        return Subset(keep);
    }

    /// <summary>The schedule restricted to the given increasing step indices (see <see cref="Respace"/>).</summary>
    public NoiseSchedule Subset(IReadOnlyList<int> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        if (steps.Count == 0) throw new ArgumentException("A subset needs at least one step.", nameof(steps));
        var betas = new double[steps.Count];
        var map = new int[steps.Count];
        double prev = 1;
        for (int i = 0; i < steps.Count; i++)
        {
            int s = steps[i];
            if (s < 0 || s >= Length || (i > 0 && s <= steps[i - 1]))
                throw new ArgumentException($"Subset steps must be increasing indices in 0..{Length - 1}; got {s} at {i}.", nameof(steps));
            betas[i] = 1 - _alphasCumprod[s] / prev;
            prev = _alphasCumprod[s];
            map[i] = Timesteps[s];
        }
        return new NoiseSchedule(betas, map);
    }
}
