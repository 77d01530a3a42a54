using MLNetMedSeg.Core;
using MLNetMedSeg.Diffusion.Networks;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>
/// The unweighted loss terms of one guided step, each summed over the batch's rows, and the weighted total
/// (Σ λ·term) whose gradient was taken. A term whose weight is 0 is not computed and reads 0.
/// </summary>
public sealed record StylingLossTerms(double ZeCon, double Perceptual, double Mse, double Style, double L2, double Semantic, double Range, double Total);

/// <summary>What <see cref="StylingScheduler"/> did at one reverse step (passed to its observer; tensors valid only during the call).</summary>
/// <param name="Index">0 for the first reverse step.</param>
/// <param name="Count">Reverse steps in all (SampleSteps − SkipSteps).</param>
/// <param name="Step">The respaced step i (x_i → x_{i−1}).</param>
/// <param name="State">x_{i−1} after guidance (and, with a known channel, after its merge), model space.</param>
/// <param name="Estimate">x̂₀(x_i) (Tweedie, unclipped), model space; null for an unguided run (all weights 0).</param>
/// <param name="Terms">The loss terms, or null for an unguided run.</param>
public sealed record StylingStep(int Index, int Count, int Step, Tensor State, Tensor? Estimate, StylingLossTerms? Terms);

/// <summary>
/// Image styling by guided reverse diffusion (paper 004 Appendix A.1.2; DiffuseIT, Kwon &amp; Ye 2023; ZeCon, Yang et al.
/// 2023) over a <see cref="GaussianDiffusion"/> and its ADM U-Net, separated from the stage. The source x_src (model
/// space) is noised to respaced step s = SampleSteps − SkipSteps − 1 (x_s = √ᾱ_s·x_src + √(1 − ᾱ_s)·z), then for
/// i = s..0: ε̂ = ε_θ(x_i, t_i) (with the model's condition and guidance), x̂₀ = (x_i − √(1 − ᾱ_i)·ε̂)/√ᾱ_i (Tweedie,
/// unclipped for the losses), x'_{i−1} = the DDPM step of Eq. 2 from that ε̂ (x̂₀ clipped to [−1, 1] inside it, noise
/// σ·z), and x_{i−1} = x'_{i−1} − r·s_i·∇_{x_i} ℓ_total(x̂₀(x_i)), the gradient through the network, s_i the posterior
/// variance β̃_i as DiffuseIT's and ZeCon's code scale it (<see cref="StyleGuidanceScaling.PosteriorVariance"/>, the default; β̃_1
/// at i = 0) or 1 as the appendix prints it (<see cref="StyleGuidanceScaling.None"/>), r = H·W / WeightsImageSize² the
/// resolution compensation (<see cref="StyleOptions.WeightsImageSize"/>). ℓ_total =
/// λ_ZeCon·ℓ_ZeCon + λ_VGG·ℓ_perc + λ_MSE·ℓ_MSE + λ_sty·ℓ_sty + λ_L2·ℓ_L2 + λ_sem·ℓ_sem + λ_rng·ℓ_rng
/// (<see cref="StylingLosses"/>; each a per-row value, summed over the rows). With a known channel (the joint model's
/// mask) that channel is replaced after every step by the target's channel noised to the new level, exactly as
/// RePaint's merge. When every weight is 0 nothing is differentiated and the steps are the plain reverse process.
/// A step whose state is not finite or beyond ±100 (guidance that diverged) throws, naming the step and the loss terms.
/// Every step runs in its own dispose scope.
/// </summary>
public sealed class StylingScheduler
{
    private static readonly int[] ZeConDefaultLayers = [0, 2, 5, 8, 11];

    /// <summary>A guided state beyond this magnitude (or not finite) has diverged: model-space images lie in [−1, 1].</summary>
    internal const double DivergedState = 100;
    private readonly StyleOptions _options;
    private readonly StyleFeatureNetwork? _features;

    internal StylingScheduler(GaussianDiffusion diffusion, StyleOptions options, StyleFeatureNetwork? features)
    {
        ArgumentNullException.ThrowIfNull(diffusion);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (options.NeedsFeatureNetwork && features is null)
            throw new ArgumentException("the perceptual, style and semantic terms need the ResNet-18 feature network", nameof(features));
        if (options.SampleSteps > diffusion.Schedule.Length)
            throw new ArgumentException($"SampleSteps ({options.SampleSteps}) must not exceed the model's TimeSteps ({diffusion.Schedule.Length})", nameof(options));
        Diffusion = diffusion;
        _options = options.Clone();
        _features = features;
        Spaced = diffusion.Schedule.Respace(options.SampleSteps);
    }

    /// <summary>The Gaussian process.</summary>
    public GaussianDiffusion Diffusion { get; }

    /// <summary>The respaced schedule (SampleSteps steps).</summary>
    public NoiseSchedule Spaced { get; }

    /// <summary>The respaced step the source is noised to (SampleSteps − SkipSteps − 1).</summary>
    public int StartStep => _options.SampleSteps - _options.SkipSteps - 1;

    /// <summary>
    /// The factor s_i of the guidance gradient at respaced step <paramref name="step"/>: 1 without scaling, else the
    /// posterior variance β̃_i = β_i·(1 − ᾱ_{i−1})/(1 − ᾱ_i) (β̃_1 at i = 0, where β̃_0 = 0).
    /// </summary>
    public double GradientScale(int step)
    {
        if (step < 0 || step >= Spaced.Length) throw new ArgumentOutOfRangeException(nameof(step), step, $"must be in 0..{Spaced.Length - 1}");
        if (_options.GuidanceScaling == StyleGuidanceScaling.None) return 1.0;
        int i = step == 0 && Spaced.Length > 1 ? 1 : step;
        return Spaced.Betas[i] * (1 - Spaced.AlphasCumprodPrev[i]) / (1 - Spaced.AlphasCumprod[i]);
    }

    /// <summary>The resolution factor of the guidance gradient for H×W images: H·W / WeightsImageSize² (1 when off).</summary>
    public double ResolutionScale(long height, long width) =>
        _options.WeightsImageSize is int s and > 0 ? (double)height * width / ((double)s * s) : 1.0;

    /// <summary>Whether ℓ_sem applies at respaced step <paramref name="step"/>: step &gt; SemanticCutoff·SampleSteps.</summary>
    public bool SemanticActive(int step) => step > _options.SemanticCutoff * _options.SampleSteps;

    /// <summary>The embedding ℓ_sty and ℓ_sem compare: e/‖e‖·√D with <see cref="StyleOptions.NormalizeEmbedding"/>, else e.</summary>
    private Tensor Embedding(Tensor e) => _options.NormalizeEmbedding
        ? e / e.pow(S(2)).sum(1, true).Plus(S(1e-12)).sqrt() * S(Math.Sqrt(e.size(1)))
        : e;

    private Tensor EmbeddingLoss(Tensor a, Tensor b) => _options.EmbeddingLoss == StyleEmbeddingLoss.Norm
        ? StylingLosses.EmbeddingDistance(a, b) : StylingLosses.EmbeddingMeanSquared(a, b);

    /// <summary>The ZeCon layers used with <paramref name="network"/> (the option, or ZeCon's 0, 2, 5, 8, 11 that it has).</summary>
    internal static int[] ZeConLayersFor(StyleOptions options, DiffusionUNet network)
    {
        int count = network.EncoderFeatureCount;
        if (options.ZeConLayers is { } given)
        {
            var bad = given.Where(l => l >= count).ToArray();
            if (bad.Length > 0)
                throw new ArgumentException($"ZeConLayers [{string.Join(", ", bad)}] do not exist: the diffusion U-Net has encoder layers 0..{count - 1}", nameof(options.ZeConLayers));
            return given.Distinct().Order().ToArray();
        }
        return ZeConDefaultLayers.Where(l => l < count).ToArray();
    }

    /// <summary>The inputs of one styling call, with the reference features computed once.</summary>
    internal sealed class Inputs : IDisposable
    {
        public required DiffusionUNet Network { get; init; }
        public Tensor? Condition { get; init; }
        public double GuidanceScale { get; init; }
        public required int ImageChannels { get; init; }
        /// <summary>Known channels (bool [1,C_total,1,1]) or null.</summary>
        public Tensor? Keep { get; init; }
        public required Tensor Source { get; init; }
        public required Tensor Target { get; init; }
        public required int[] ZeConLayers { get; init; }
        public IReadOnlyList<Tensor>? ReferenceZeCon { get; set; }
        public IReadOnlyList<Tensor>? ReferenceMaps { get; set; }
        public Tensor? TargetEmbedding { get; set; }
        public Tensor Reference => ReferenceKind == StyleContentReference.Source ? Source : Target;
        public StyleContentReference ReferenceKind { get; init; }

        public void Dispose()
        {
            foreach (var t in ReferenceZeCon ?? []) t.Dispose();
            foreach (var t in ReferenceMaps ?? []) t.Dispose();
            TargetEmbedding?.Dispose();
        }
    }

    private Tensor ZeroTimesteps(Tensor x) => zeros([x.size(0)], ScalarType.Int64, x.device);

    /// <summary>The image channels in [0, 1] without clamping (keeps the gradient): (x + 1)/2.</summary>
    private static Tensor ToUnit(Tensor x) => x.Plus(S(1.0)) * S(0.5);

    /// <summary>Computes the reference features (no grad) once per call.</summary>
    internal void Prepare(Inputs inputs)
    {
        var o = _options;
        using var noGrad = no_grad();
        if (o.ZeConWeight != 0)
        {
            var r = inputs.Network.EncoderFeatures(inputs.Reference, ZeroTimesteps(inputs.Reference), inputs.Condition, inputs.ZeConLayers);
            inputs.ReferenceZeCon = r.Select(t => t.DetachFromDisposeScope()).ToList();
        }
        if (o.PerceptualWeight != 0)
        {
            using var scope = NewDisposeScope();
            var (maps, _) = _features!.Features(ToUnit(inputs.Reference.narrow(1, 0, inputs.ImageChannels)));
            inputs.ReferenceMaps = maps.Select(t => t.DetachFromDisposeScope()).ToList();
        }
        if (o.StyleWeight != 0)
        {
            using var scope = NewDisposeScope();
            var (_, emb) = _features!.Features(ToUnit(inputs.Target.narrow(1, 0, inputs.ImageChannels)));
            inputs.TargetEmbedding = Embedding(emb).DetachFromDisposeScope();
        }
    }

    /// <summary>
    /// The guidance at respaced step <paramref name="step"/>: ε̂(x_i) (with the graph), x̂₀, the loss terms and
    /// ∇_{x_i} ℓ_total. <paramref name="previousEmbedding"/> is e(x̂₀) of the previous step (ℓ_sem; null at the first).
    /// Returns detached tensors: (gradient, ε̂, x̂₀, e(x̂₀) or null, terms).
    /// </summary>
    internal (Tensor Gradient, Tensor Eps, Tensor Estimate, Tensor? Embedding, StylingLossTerms Terms) Guidance(
        Inputs inputs, Tensor x, int step, Tensor? previousEmbedding, IReadOnlyList<Generator> patchGenerators)
    {
        var o = _options;
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        var xt = x.detach().requires_grad_(true);
        double ab = Spaced.AlphasCumprod[step];
        var eps = GaussianDiffusion.PredictNoise(inputs.Network.forward, xt, Spaced.Timesteps[step], inputs.Condition, inputs.GuidanceScale);
        var xhat = (xt - eps * S(Math.Sqrt(1 - ab))) * S(1 / Math.Sqrt(ab));
        var img = xhat.narrow(1, 0, inputs.ImageChannels);
        var refImg = inputs.Reference.narrow(1, 0, inputs.ImageChannels);
        var tgtImg = inputs.Target.narrow(1, 0, inputs.ImageChannels);
        double zecon = 0, perc = 0, mse = 0, sty = 0, l2 = 0, sem = 0, rng = 0;
        Tensor total = zeros([x.size(0)], x.dtype, x.device);
        if (o.ZeConWeight != 0)
        {
            var input = inputs.Keep is null ? xhat : where(inputs.Keep, inputs.Target, xhat);
            var feats = inputs.Network.EncoderFeatures(input, ZeroTimesteps(input), inputs.Condition, inputs.ZeConLayers);
            var locs = feats.Select(f => StylingLosses.DrawLocations(f.size(0), f.size(2) * f.size(3), o.ZeConPatches, patchGenerators, f.device)).ToList();
            var term = StylingLosses.ZeCon(feats, inputs.ReferenceZeCon!, locs, o.ZeConTemperature);
            zecon = term.sum().DoubleValue();
            total = total.Plus(term * S(o.ZeConWeight));
        }
        Tensor? emb = null;
        if (_features is not null && (o.PerceptualWeight != 0 || o.StyleWeight != 0 || o.SemanticWeight != 0))
        {
            var (maps, raw) = _features.Features(ToUnit(img));
            var e = Embedding(raw);
            emb = e;
            if (o.PerceptualWeight != 0)
            {
                var term = StylingLosses.Perceptual(maps, inputs.ReferenceMaps!);
                perc = term.sum().DoubleValue();
                total = total.Plus(term * S(o.PerceptualWeight));
            }
            if (o.StyleWeight != 0)
            {
                var term = EmbeddingLoss(inputs.TargetEmbedding!, e);
                sty = term.sum().DoubleValue();
                total = total.Plus(term * S(o.StyleWeight));
            }
            if (o.SemanticWeight != 0 && previousEmbedding is not null && SemanticActive(step))
            {
                var term = -EmbeddingLoss(e, previousEmbedding.detach());
                sem = term.sum().DoubleValue();
                total = total.Plus(term * S(o.SemanticWeight));
            }
        }
        if (o.MseWeight != 0)
        {
            var term = StylingLosses.PixelMse(img, refImg);
            mse = term.sum().DoubleValue();
            total = total.Plus(term * S(o.MseWeight));
        }
        if (o.L2Weight != 0)
        {
            var term = StylingLosses.PixelMse(img, tgtImg);
            l2 = term.sum().DoubleValue();
            total = total.Plus(term * S(o.L2Weight));
        }
        if (o.RangeWeight != 0)
        {
            var term = StylingLosses.Range(img);
            rng = term.sum().DoubleValue();
            total = total.Plus(term * S(o.RangeWeight));
        }
        var loss = total.sum();
        double totalValue = loss.DoubleValue();
        Tensor gradient;
        if (loss.requires_grad)
            gradient = Gradients.Grad(loss, [xt], allowUnused: true, what: "styling guidance")[0];
        else
            gradient = zeros_like(x);   // e.g. only ℓ_sem on the first step, where it has no previous estimate
        var terms = new StylingLossTerms(zecon, perc, mse, sty, l2, sem, rng, totalValue);
        return (gradient.detach().MoveToOuterDisposeScope(), eps.detach().MoveToOuterDisposeScope(), xhat.detach().MoveToOuterDisposeScope(),
            emb?.detach().MoveToOuterDisposeScope(), terms);
    }

    /// <summary>
    /// Styles <paramref name="inputs"/>' source towards its target (see the class remarks) and returns x₀ (model space,
    /// all channels). Noise from <paramref name="noise"/> (one generator, or one per row), ZeCon's locations from
    /// <paramref name="patches"/> (likewise).
    /// </summary>
    internal Tensor Style(Inputs inputs, IReadOnlyList<Generator> noise, IReadOnlyList<Generator> patches, Action<StylingStep>? observer,
        CancellationToken cancellationToken)
    {
        var o = _options;
        bool guided = o.IsGuided;
        using var outer = NewDisposeScope();
        if (guided) Prepare(inputs);
        var sampling = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddpm, Steps = Spaced.Length, GuidanceScale = 0 };
        var plain = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddpm, Steps = Spaced.Length, GuidanceScale = inputs.GuidanceScale };
        int start = StartStep, count = start + 1;
        Tensor cur;
        Tensor? keep = null;
        using (no_grad())
        {
            double ab0 = Spaced.AlphasCumprod[start];
            cur = (inputs.Source * S(Math.Sqrt(ab0))).Plus(GaussianDiffusion.Noise(inputs.Source.shape, inputs.Source.dtype, inputs.Source.device, noise) * S(Math.Sqrt(1 - ab0)));
            if (inputs.Keep is not null) keep = inputs.Keep.expand(inputs.Source.shape);
        }
        Tensor? prevEmb = null;
        double resolution = ResolutionScale(inputs.Source.size(2), inputs.Source.size(3));
        for (int i = start; i >= 0; i--)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            Tensor next;
            Tensor? estimate = null;
            StylingLossTerms? terms = null;
            if (guided)
            {
                var g = Guidance(inputs, cur, i, prevEmb, patches);
                terms = g.Terms;
                estimate = g.Estimate;
                using (no_grad())
                {
                    var eps = g.Eps;
                    next = Diffusion.ReverseStep((_, _, _) => eps.detach(), cur, inputs.Condition, Spaced, i, sampling, noise) - g.Gradient * S(GradientScale(i) * resolution);
                    double largest = next.abs().max().DoubleValue();
                    if (!(largest <= DivergedState))
                        throw new InvalidOperationException(
                            $"styling diverged at respaced step {i} (reverse step {start - i + 1} of {count}): the guided state reached |x| = {largest:G4} " +
                            $"(images lie in [−1, 1], noised states within a few units); " +
                            $"loss terms ZeCon {terms.ZeCon:G4}, perceptual {terms.Perceptual:G4}, MSE {terms.Mse:G4}, style {terms.Style:G4}, L2 {terms.L2:G4}, " +
                            $"semantic {terms.Semantic:G4}, range {terms.Range:G4}, total {terms.Total:G4} (GuidanceScaling {o.GuidanceScaling}). Lower the loss weights.");
                }
                prevEmb?.Dispose();
                prevEmb = g.Embedding?.MoveToOuterDisposeScope();
            }
            else
            {
                using (no_grad())
                {
                    next = Diffusion.ReverseStep(inputs.Network.forward, cur, inputs.Condition, Spaced, i, plain, noise);
                }
            }
            if (keep is not null)
                using (no_grad())
                    next = RePaintScheduler.Merge(KnownSample(inputs.Target, i, noise), next, keep);
            observer?.Invoke(new StylingStep(start - i, count, i, next, estimate, terms));
            cur.Dispose();
            cur = next.MoveToOuterDisposeScope();
        }
        prevEmb?.Dispose();
        return cur.MoveToOuterDisposeScope();
    }

    /// <summary>The target's sample at noise level <paramref name="level"/> (after respaced step <paramref name="level"/>; the target itself at 0).</summary>
    private Tensor KnownSample(Tensor target, int level, IReadOnlyList<Generator> noise)
    {
        if (level == 0) return target.alias();
        using var scope = NewDisposeScope();
        double ab = Spaced.AlphasCumprod[level - 1];
        var eps = GaussianDiffusion.Noise(target.shape, target.dtype, target.device, noise);
        return (target * S(Math.Sqrt(ab))).Plus(eps * S(Math.Sqrt(1 - ab))).MoveToOuterDisposeScope();
    }
}
