using MLNetMedSeg.Core.Training;
using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>The losses of one <see cref="CdalTrainingStep.Step"/> (batch means).</summary>
/// <param name="DiscriminatorReal">softplus(−D(x_{t−1}, x_t, t)) on real pairs.</param>
/// <param name="DiscriminatorFake">softplus(D(x̂_{t−1}, x_t, t)) on generated pairs.</param>
/// <param name="R1Penalty">γ/2 · E‖∇_{x_{t−1}} D‖² on real pairs (0 on steps without R1).</param>
/// <param name="Discriminator">The discriminator's loss: real + fake + R1.</param>
/// <param name="GeneratorMse">Eq. 4: mean ‖x₀ − x_θ(x_t^att, t, z, I)‖² (per element, labels in [−1, 1]).</param>
/// <param name="GeneratorAdversarial">softplus(−D(x̂_{t−1}, x_t, t)) when <see cref="CdalOptions.AdversarialWeight"/> &gt; 0, else 0.</param>
/// <param name="Generator">The generator's loss: MSE + AdversarialWeight · adversarial.</param>
public sealed record CdalStepLosses(
    double DiscriminatorReal, double DiscriminatorFake, double R1Penalty, double Discriminator,
    double GeneratorMse, double GeneratorAdversarial, double Generator);

/// <summary>
/// One training iteration of cDAL (paper 003, Algorithm 1, with §2.2's definitions; as the public code):
/// <list type="number">
/// <item>Labels x₀ in [−1, 1] (<see cref="CdalLabels"/>), condition 2I − 1. Draw t ~ U{1..T} per sample and a real pair
///   x_{t−1} ~ q(x_{t−1} | x₀), x_t ~ q(x_t | x_{t−1}).</item>
/// <item>Discriminator step, generator frozen (its forward runs without gradients): real loss softplus(−D(x_{t−1}, x_t, t))
///   plus R1 γ/2 · E‖∇_{x_{t−1}} D‖² (every <see cref="CdalOptions.R1Interval"/>-th step); z ~ N(0, I);
///   x̂₀ = x_θ(x_t, t, z, I); x̂_{t−1} ~ q(x_{t−1} | x_t, x̂₀); fake loss softplus(D(x̂_{t−1}, x_t, t)). One Adam step.</item>
/// <item>Generator step, discriminator frozen (its parameters stop requiring grad): a fresh t and real pair;
///   A_D = D's channel-mean features at the attention scale, upsampled; x₀^att = x₀ ⊙ A_D; x_t^att ~ q(x_t | x₀^att)
///   (without attention: x_t ~ q(x_t | x₀)); z ~ N(0, I) (zeros without the latent);
///   loss ‖x₀ − x_θ(x_t^att, t, z, I)‖² (Eq. 4) [+ AdversarialWeight · softplus(−D(x̂_{t−1}, x_t^att, t))]. One Adam step.</item>
/// </list>
/// Every random draw comes from the <see cref="Generator"/> given to <see cref="Step"/>, in a fixed order: the same
/// generator state, weights and batch give the same losses and weights on the CPU. Each step runs in a dispose scope;
/// a non-finite loss throws <see cref="TrainingDivergedException"/> before any weight changes.
/// The two Adam optimisers (lr from the options, betas (β₁, β₂)) are created here and owned by this object; the
/// networks are not.
/// </summary>
public sealed class CdalTrainingStep : IDisposable
{
    private readonly OptimizerHelper _optG, _optD;
    private bool _disposed;

    /// <summary>A step over <paramref name="generator"/> and <paramref name="discriminator"/> (built from the same options).</summary>
    /// <exception cref="ArgumentException">The networks were built from options that differ in shape from <paramref name="options"/>.</exception>
    public CdalTrainingStep(CdalOptions options, CdalGeneratorNetwork generator, CdalDiscriminatorNetwork discriminator)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(discriminator);
        options.Validate();
        Options = options.Clone();
        if (generator.Options.LabelChannels != Options.LabelChannels || generator.Options.ImageChannels != Options.ImageChannels ||
            generator.Options.LatentDim != Options.LatentDim)
            throw new ArgumentException("the generator was built for other label/image channels or latent dim than these options", nameof(generator));
        if (discriminator.Options.LabelChannels != Options.LabelChannels || discriminator.Options.ImageSize != Options.ImageSize ||
            discriminator.Options.AttentionScale != Options.AttentionScale)
            throw new ArgumentException("the discriminator was built for other label channels, ImageSize or AttentionScale than these options", nameof(discriminator));
        GeneratorNetwork = generator;
        DiscriminatorNetwork = discriminator;
        Schedule = new CdalSchedule(Options);
        _optG = Optimizers.Adam(generator.parameters(), lr: Options.GeneratorLearningRate, beta1: Options.AdamBeta1, beta2: Options.AdamBeta2);
        _optD = Optimizers.Adam(discriminator.parameters(), lr: Options.DiscriminatorLearningRate, beta1: Options.AdamBeta1, beta2: Options.AdamBeta2);
    }

    /// <summary>The options (a copy).</summary>
    public CdalOptions Options { get; }

    /// <summary>The generator x_θ being trained (not owned).</summary>
    public CdalGeneratorNetwork GeneratorNetwork { get; }

    /// <summary>The discriminator D being trained (not owned).</summary>
    public CdalDiscriminatorNetwork DiscriminatorNetwork { get; }

    /// <summary>The diffusion schedule.</summary>
    public CdalSchedule Schedule { get; }

    /// <summary>The generator's Adam optimiser (owned; exposed for learning-rate schedules and checkpoints).</summary>
    public OptimizerHelper GeneratorOptimizer => _optG;

    /// <summary>The discriminator's Adam optimiser (owned).</summary>
    public OptimizerHelper DiscriminatorOptimizer => _optD;

    /// <summary>Steps completed so far (R1 runs on steps whose 0-based index is a multiple of R1Interval). Settable when resuming.</summary>
    public long StepsTaken { get; set; }

    /// <summary>
    /// One discriminator update and one generator update on a batch: <paramref name="images"/> float [N,C,H,W] in [0,1],
    /// <paramref name="masks"/> float [N,1,H,W] in {0,1} (binary) or int64 [N,H,W] class indices (Classes &gt; 1); all
    /// randomness from <paramref name="generator"/>. <paramref name="epoch"/> only labels a
    /// <see cref="TrainingDivergedException"/>.
    /// </summary>
    /// <param name="images">Images float [N,C,H,W] in [0,1].</param>
    /// <param name="masks">Masks float [N,1,H,W] in {0,1} or int64 [N,H,W] class indices.</param>
    /// <param name="generator">Every random draw of the step.</param>
    /// <param name="epoch">Labels a <see cref="TrainingDivergedException"/>.</param>
    /// <param name="sampleWeights">
    /// Optional per-row weights w [N] of the generator's loss: Σ_n w_n·l_n with l_n row n's Eq. 4 MSE (plus
    /// AdversarialWeight · its adversarial term) — e.g. Eq. 11's 1/N_real and 1/N_aug
    /// (<see cref="Losses.SampleWeights.RealAndAugmented"/>). Null (default): the batch mean, as Algorithm 1. The
    /// discriminator's losses are batch means either way.
    /// </param>
    /// <exception cref="ArgumentException">A tensor has the wrong shape, dtype or values (the message names it).</exception>
    /// <exception cref="TrainingDivergedException">A loss is NaN or infinite.</exception>
    public CdalStepLosses Step(Tensor images, Tensor masks, Generator generator, int epoch = 1, Tensor? sampleWeights = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(generator);
        var o = Options;
        if (images.dim() != 4 || images.size(1) != o.ImageChannels || !images.is_floating_point())
            throw new ArgumentException($"images must be float [N, {o.ImageChannels}, H, W] in [0,1], got {images.dtype} [{string.Join(", ", images.shape)}]", nameof(images));
        if (images.size(0) < 1) throw new ArgumentException("an empty batch", nameof(images));

        if (sampleWeights is not null && (sampleWeights.dim() != 1 || sampleWeights.size(0) != images.size(0) || !sampleWeights.is_floating_point()))
            throw new ArgumentException($"sample weights must be float [N] = [{images.size(0)}], got {sampleWeights.dtype} [{string.Join(", ", sampleWeights.shape)}]", nameof(sampleWeights));

        using var scope = NewDisposeScope();
        var device = GeneratorNetwork.parameters().First().device;
        var x0 = CdalLabels.Encode(masks.to(device), o.Classes, nameof(masks));
        if (x0.size(0) != images.size(0) || x0.size(2) != images.size(2) || x0.size(3) != images.size(3))
            throw new ArgumentException(
                $"masks [{string.Join(", ", masks.shape)}] do not match images [{string.Join(", ", images.shape)}] (same N, H, W)", nameof(masks));
        var cond = CdalLabels.EncodeImage(images.to(device));
        long n = x0.size(0);
        long step = StepsTaken + 1;
        GeneratorNetwork.train();
        DiscriminatorNetwork.train();

        // ---- discriminator step, generator frozen ----
        var t = RandomTimesteps(n, generator, device);
        var (xPrev, xt) = Schedule.SamplePair(x0, t, generator);
        bool r1 = o.R1Gamma > 0 && StepsTaken % o.R1Interval == 0;
        xPrev = xPrev.detach().requires_grad_(r1);
        var dReal = DiscriminatorNetwork.call(xPrev, xt, t);
        var lossReal = Softplus(-dReal).mean();
        Tensor penalty;
        if (r1)
        {
            var grad = Gradients.Grad(dReal.sum(), [xPrev], createGraph: true, what: "cDAL R1 penalty")[0];
            penalty = grad.reshape(n, -1).pow(S(2)).sum(1).mean() * S(o.R1Gamma / 2);
        }
        else penalty = zeros([], ScalarType.Float32, device);
        var z = Latent(n, generator, device);
        Tensor xPrevFake;
        using (no_grad())
        {
            var x0Pred = GeneratorNetwork.call(xt, t, z, cond);
            xPrevFake = Schedule.SamplePosterior(x0Pred, xt, t, CdalSchedule.Noise(xt.shape, generator, device));
        }
        var dFake = DiscriminatorNetwork.call(xPrevFake, xt, t);
        var lossFake = Softplus(dFake).mean();
        var lossD = lossReal.Plus(lossFake).Plus(penalty);
        double vReal = lossReal.DoubleValue(), vFake = lossFake.DoubleValue(), vPen = penalty.DoubleValue(), vD = lossD.DoubleValue();
        CheckFinite("discriminator", vD, epoch, step);
        _optD.zero_grad();
        lossD.backward();
        _optD.step();

        // ---- generator step, discriminator frozen ----
        var dParams = DiscriminatorNetwork.parameters().ToList();
        foreach (var p in dParams) p.requires_grad = false;
        double vMse, vAdv, vG;
        try
        {
            var t2 = RandomTimesteps(n, generator, device);
            Tensor xtIn;
            if (o.UseAttention)
            {
                var (xPrev2, xt2) = Schedule.SamplePair(x0, t2, generator);
                var x0Att = DiscriminatorNetwork.ApplyAttention(x0, xPrev2, xt2, t2);
                xtIn = Schedule.SampleQ(x0Att, t2, CdalSchedule.Noise(x0.shape, generator, device));
            }
            else xtIn = Schedule.SampleQ(x0, t2, CdalSchedule.Noise(x0.shape, generator, device));
            var z2 = Latent(n, generator, device);
            var x0Hat = GeneratorNetwork.call(xtIn, t2, z2, cond);
            var w = sampleWeights?.to(ScalarType.Float32, device);
            // Batch mean (Algorithm 1), or Σ_n w_n·(row n's mean) with per-row weights.
            Tensor Reduce(Tensor perElement) => w is null ? perElement.mean() : (perElement.reshape(n, -1).mean([1]) * w).sum();
            var mse = Reduce((x0 - x0Hat).pow(S(2)));
            var lossG = mse;
            Tensor adv = zeros([], ScalarType.Float32, device);
            if (o.AdversarialWeight > 0)
            {
                var xPrevHat = Schedule.SamplePosterior(x0Hat, xtIn, t2, CdalSchedule.Noise(x0.shape, generator, device));
                adv = Reduce(Softplus(-DiscriminatorNetwork.call(xPrevHat, xtIn, t2)));
                lossG = mse.Plus(adv * S(o.AdversarialWeight));
            }
            vMse = mse.DoubleValue(); vAdv = adv.DoubleValue(); vG = lossG.DoubleValue();
            CheckFinite("generator", vG, epoch, step);
            _optG.zero_grad();
            lossG.backward();
            _optG.step();
        }
        finally
        {
            foreach (var p in dParams) p.requires_grad = true;
        }
        StepsTaken++;
        return new CdalStepLosses(vReal, vFake, vPen, vD, vMse, vAdv, vG);
    }

    /// <summary>t ~ U{1..T} per sample, int64 [n] on <paramref name="device"/> (drawn on the generator's device).</summary>
    internal Tensor RandomTimesteps(long n, Generator generator, Device device)
        => SeededRandom.Randint(1, Options.Timesteps + 1, [n], device, generator);

    /// <summary>z ~ N(0, I) [n, L] from <paramref name="generator"/>, or zeros (no draw) without the latent.</summary>
    internal Tensor Latent(long n, Generator generator, Device device)
        => Options.UseLatent
            ? CdalSchedule.Noise([n, Options.LatentDim], generator, device)
            : zeros([n, Options.LatentDim], ScalarType.Float32, device);

    private static void CheckFinite(string which, double value, int epoch, long step)
    {
        if (!double.IsFinite(value))
            throw new TrainingDivergedException(
                $"cDAL: the {which} loss became {value} at step {step} (epoch {epoch}); lower the learning rates or check the data", epoch, step);
    }

    /// <summary>Disposes the two optimisers (not the networks).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _optG.Dispose();
        _optD.Dispose();
    }
}
