using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>
/// cDAL's sampler (paper 003, Algorithm 2, with Eq. 2's posterior sampling as the public code): per sample
/// x_T ~ N(0, I); for t = T..1: z ~ N(0, I) (zeros without the latent), x̂₀ = x_θ(x_t, t, z, I),
/// x_{t−1} ~ q(x_{t−1} | x_t, x̂₀) (at t = 1 the posterior's variance is 0 and x_0 = x̂₀). K =
/// <see cref="CdalOptions.Samples"/> samples per image are mapped to probabilities clamp((x_0 + 1)/2, 0, 1) and averaged
/// (§3.2); <see cref="ToMask"/> thresholds the mean (binary) or takes the arg-max channel (multi-class).
/// <para>
/// Seeded per image: image i draws everything (its K initial noises, then per step its K latents and K posterior
/// noises) from its own generator, so its prediction does not depend on the other images of the batch or on the batch
/// size (up to floating-point summation order).
/// </para>
/// </summary>
public sealed class CdalSampler
{
    /// <summary>A sampler over <paramref name="generator"/> (not owned) with <paramref name="options"/>' schedule, K and threshold.</summary>
    public CdalSampler(CdalOptions options, CdalGeneratorNetwork generator)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(generator);
        options.Validate();
        Options = options.Clone();
        if (generator.Options.LabelChannels != Options.LabelChannels || generator.Options.ImageChannels != Options.ImageChannels ||
            generator.Options.LatentDim != Options.LatentDim)
            throw new ArgumentException("the generator was built for other label/image channels or latent dim than these options", nameof(generator));
        GeneratorNetwork = generator;
        Schedule = new CdalSchedule(Options);
    }

    /// <summary>The options (a copy).</summary>
    public CdalOptions Options { get; }

    /// <summary>The generator x_θ (not owned).</summary>
    public CdalGeneratorNetwork GeneratorNetwork { get; }

    /// <summary>The diffusion schedule.</summary>
    public CdalSchedule Schedule { get; }

    /// <summary>
    /// <paramref name="samples"/> label samples x_0 ∈ [−1, 1] per image: <paramref name="images"/> float [N,C,H,W] in [0,1],
    /// one generator per image → [N, samples, LabelChannels, H, W]. Runs in evaluation mode without gradients (the
    /// network's mode is restored).
    /// </summary>
    /// <exception cref="ArgumentException">Wrong image shape, or not one generator per image.</exception>
    public Tensor SampleLabels(Tensor images, IReadOnlyList<Generator> generators, int samples)
    {
        var net = GeneratorNetwork;
        bool wasTraining = net.training;
        net.eval();
        try
        {
            using var noGrad = no_grad();
            return Sample(images, generators, samples);
        }
        finally
        {
            net.train(wasTraining);
        }
    }

    /// <summary>
    /// Algorithm 2 unrolled with autograd: <paramref name="samples"/> label samples x_0 per image as
    /// <see cref="SampleLabels"/> draws them (the same noise from the same generators), but in the network's current
    /// mode and keeping the graph, so that gradients reach <paramref name="images"/> (through the image condition of
    /// every one of the T generator calls and through x_t) and the weights. The noise is a constant of the graph: with
    /// fixed generators this is a deterministic, differentiable function of the image. → [N, samples, LabelChannels, H, W].
    /// </summary>
    /// <exception cref="ArgumentException">Wrong image shape, or not one generator per image.</exception>
    public Tensor SampleLabelsDifferentiable(Tensor images, IReadOnlyList<Generator> generators, int samples) =>
        Sample(images, generators, samples);

    private Tensor Sample(Tensor images, IReadOnlyList<Generator> generators, int samples)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(generators);
        var o = Options;
        if (images.dim() != 4 || images.size(1) != o.ImageChannels || !images.is_floating_point())
            throw new ArgumentException($"images must be float [N, {o.ImageChannels}, H, W] in [0,1], got {images.dtype} [{string.Join(", ", images.shape)}]", nameof(images));
        long n = images.size(0), h = images.size(2), w = images.size(3);
        if (generators.Count != n)
            throw new ArgumentException($"one generator per image: {n} images, {generators.Count} generators", nameof(generators));
        if (samples < 1) throw new ArgumentOutOfRangeException(nameof(samples), samples, "at least one sample per image");
        int lc = o.LabelChannels;
        var net = GeneratorNetwork;
        using var scope = NewDisposeScope();
        var device = net.parameters().First().device;
        var cond = CdalLabels.EncodeImage(images.to(device)).repeat_interleave(samples, dim: 0);   // image-major
        long[] one = [samples, lc, h, w];
        var x = cat(generators.Select(g => CdalSchedule.Noise(one, g, device)).ToArray(), 0);
        for (int t = o.Timesteps; t >= 1; t--)
        {
            var ts = full([n * samples], S(t), ScalarType.Int64, device);
            var z = o.UseLatent
                ? cat(generators.Select(g => CdalSchedule.Noise([samples, o.LatentDim], g, device)).ToArray(), 0)
                : zeros([n * samples, o.LatentDim], ScalarType.Float32, device);
            var x0 = net.call(x, ts, z, cond);
            if (t == 1) { x = x0; break; }
            var noise = cat(generators.Select(g => CdalSchedule.Noise(one, g, device)).ToArray(), 0);
            x = Schedule.SamplePosterior(x0, x, ts, noise);
        }
        return x.reshape(n, samples, lc, h, w).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Differentiable logits of the averaged prediction (<see cref="SampleLabelsDifferentiable"/> with
    /// <see cref="CdalOptions.Samples"/> samples): with p̄ the mean over the samples of (x_0 + 1)/2 (the generator ends
    /// in tanh, so this is the prediction's clamp((x_0 + 1)/2, 0, 1) without a flat clamp), a binary model gives
    /// [N,1,H,W] logit(p̄) = log p̄ − log(1 − p̄) (sigmoid of it is the prediction) and a multi-class model [N,Classes,H,W]
    /// log p̄ (softmax of it is the prediction renormalised over the classes). p̄ is kept in [1e-6, 1 − 1e-6] so the
    /// logits stay finite.
    /// </summary>
    public Tensor Logits(Tensor images, IReadOnlyList<Generator> generators)
    {
        using var scope = NewDisposeScope();
        var x = SampleLabelsDifferentiable(images, generators, Options.Samples);
        var p = x.Plus(S(1)).mul(S(0.5)).mean([1]).clamp(S(LogitFloor), S(1 - LogitFloor));
        var logits = Options.Classes == 1 ? p.log().sub(p.neg().Plus(S(1)).log()) : p.log();
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary>The smallest probability (and 1 − the largest) <see cref="Logits"/> takes the logarithm of.</summary>
    public const double LogitFloor = 1e-6;

    /// <summary>
    /// The averaged probability of <see cref="CdalOptions.Samples"/> samples per image: [N,1,H,W] (binary) or
    /// [N,Classes,H,W] (multi-class: per-class means of the clamped one-hot estimates, not renormalised).
    /// </summary>
    public Tensor PredictProbability(Tensor images, IReadOnlyList<Generator> generators)
    {
        using var scope = NewDisposeScope();
        var x = SampleLabels(images, generators, Options.Samples);
        return CdalLabels.ToProbability(x).mean([1]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <see cref="PredictProbability(Tensor, IReadOnlyList{Generator})"/> with image i of the batch seeded by
    /// <see cref="ImageSeed"/>(<paramref name="seed"/>, <paramref name="firstIndex"/> + i).
    /// </summary>
    public Tensor PredictProbability(Tensor images, long seed, long firstIndex = 0)
    {
        ArgumentNullException.ThrowIfNull(images);
        var gens = Enumerable.Range(0, (int)images.size(0)).Select(i => new Generator(ImageSeed(seed, firstIndex + i))).ToList();
        try { return PredictProbability(images, gens); }
        finally { foreach (var g in gens) g.Dispose(); }
    }

    /// <summary>The predicted mask of a probability: binary float [N,1,H,W] (p ≥ Threshold) or, multi-class, int64 [N,H,W] arg-max.</summary>
    public Tensor ToMask(Tensor probability)
    {
        ArgumentNullException.ThrowIfNull(probability);
        if (probability.dim() != 4 || probability.size(1) != Options.LabelChannels)
            throw new ArgumentException($"probability must be [N, {Options.LabelChannels}, H, W], got [{string.Join(", ", probability.shape)}]", nameof(probability));
        using var scope = NewDisposeScope();
        var m = Options.Classes == 1 ? probability.ge(S(Options.Threshold)).to(ScalarType.Float32) : probability.argmax(1);
        return m.MoveToOuterDisposeScope();
    }

    /// <summary>The seed of image <paramref name="index"/> under run seed <paramref name="seed"/> (SplitMix64 of both: distinct, uncorrelated streams).</summary>
    public static ulong ImageSeed(long seed, long index)
    {
        ulong z = unchecked((ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)index + 0x632BE59BD9B4E019UL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
