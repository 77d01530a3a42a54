using MLNetMedSeg.Core;
using System.Diagnostics;
using System.Globalization;
using MLNetMedSeg.Attacks.Networks;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Attacks;

/// <summary>
/// Trains the deformation attacker of paper 002 (Chen et al., §3) against a fixed, fitted segmenter: a two-branch
/// VAE-like generator (<see cref="DeformationGenerator"/>) learns to produce a smooth deformation D and intensity
/// variation V such that the segmenter's masked cross-entropy between S₀ = f_seg(I₀) and S_DV = f_seg(I_DV) reaches ξ,
/// while a WGAN critic (<see cref="DeformationCritic"/>) keeps I_DV realistic. Every step, in its own dispose scope:
/// n_critic critic steps (Eq. 3, plus the gradient penalty or weight clipping) on fresh samples of the batch, then one
/// generator step on Eq. 6 plus the KL terms; both with RMSProp. The segmenter is held fixed: its network stays in
/// eval mode (BatchNorm statistics frozen), its parameters have requires_grad switched off for the fit (restored
/// afterwards), so gradients flow through it to the image but never into its weights. Training data need only the
/// image column (S₀ comes from the segmenter, not from ground truth). Weights, batch orders and latent noise come
/// from generators derived from the context's seed: fitting is deterministic on the CPU.
/// </summary>
public sealed class DeformationAttackEstimator : IEstimator<DeformationAttackTransformer>, Microsoft.ML.IEstimator<DeformationAttackTransformer>
{
    /// <summary>
    /// ML.NET: trains on an ML.NET data view (images as <c>MLImage</c> or float vectors [C,H,W], masks as float vectors
    /// [1,H,W] or [H,W]; see <see cref="Core.MLNet.TensorColumns"/>). The columns are checked first, before any row is read (a missing or unreadable column
    /// is a <see cref="SchemaException"/> naming it); data that cannot be shuffled is then cached in memory for the
    /// fit (and released after it).
    /// </summary>
    public DeformationAttackTransformer Fit(Microsoft.ML.IDataView input) =>
        Core.MLNet.MLNetData.Fit(input, GetOutputSchema, data => Fit(data, CancellationToken.None));

    /// <summary>ML.NET schema propagation: checks the columns this stage reads (naming a missing or wrong one) before any training.</summary>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema) =>
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, GetOutputSchema);

    private const string Name = "DeformationAttackEstimator";
    private readonly MedSegContext _context;
    private readonly DeformationAttackOptions _options;
    private readonly SegmentationTransformer _segmenter;
    private readonly ulong _seed;

    /// <param name="context">Seed, device, progress, log.</param>
    /// <param name="options">The options (copied; validated now).</param>
    /// <param name="segmenter">The fitted segmenter to attack; it is not changed, and not owned (the caller disposes it after the fitted transformer).</param>
    public DeformationAttackEstimator(MedSegContext context, DeformationAttackOptions options, SegmentationTransformer segmenter)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(segmenter);
        _options = options.Clone();
        _options.Validate();
        if (_options.Generator.InChannels != segmenter.Options.Network.InChannels)
            throw new ArgumentException($"the generator takes {_options.Generator.InChannels} image channels but the segmenter {segmenter.Options.Network.InChannels}", nameof(options));
        _context = context;
        _segmenter = segmenter;
        _seed = context.DeriveSeed(Name);
    }

    /// <summary>The options (a copy).</summary>
    public DeformationAttackOptions Options => _options.Clone();

    /// <summary>Checks the image (and mask) column; returns the fitted transformer's output schema.</summary>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) =>
        DeformationAttackTransformer.OutputSchema(inputSchema, ModelOptions(), _segmenter.IsBinary);

    private DeformationAttackModelOptions ModelOptions() => DeformationAttackModelOptions.From(_options, _seed);

    /// <summary>
    /// Trains the generator and critic and returns the fitted attacker (which refers to, but does not own, the
    /// segmenter). Throws <see cref="SchemaException"/> before any work on a bad schema, <see cref="Segmentation.TrainingDivergedException"/>
    /// on a NaN/infinite loss, <see cref="OperationCanceledException"/> when cancelled.
    /// </summary>
    public DeformationAttackTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        GetOutputSchema(input.Schema);
        if (!input.CanShuffle) throw new InvalidOperationException($"{Name}: the training data cannot be shuffled; cache it first (ctx.Data.Cache)");
        cancellationToken.ThrowIfCancellationRequested();
        using var run = new Run(_context, _options, _seed, _segmenter, input, cancellationToken);
        var (generator, history) = run.Execute();
        try { return new DeformationAttackTransformer(_context, ModelOptions(), generator, _segmenter, ownsSegmenter: false, history); }
        catch { generator.Dispose(); throw; }
    }

    /// <summary>The state of one Fit call; disposes everything it made except the returned generator.</summary>
    private sealed class Run : IDisposable
    {
        private readonly MedSegContext _ctx;
        private readonly DeformationAttackOptions _o;
        private readonly ulong _seed;
        private readonly SegmentationTransformer _segmenter;
        private readonly IDataView _input;
        private readonly CancellationToken _ct;
        private readonly Device _device;
        private DeformationGenerator? _generator;
        private DeformationCritic? _critic;
        private RMSProp? _genOpt, _criticOpt;
        private Generator? _noise;

        public Run(MedSegContext ctx, DeformationAttackOptions o, ulong seed, SegmentationTransformer segmenter, IDataView input, CancellationToken ct)
        {
            _ctx = ctx;
            _o = o;
            _seed = seed;
            _segmenter = segmenter;
            _input = input;
            _ct = ct;
            _device = ctx.Device;
        }

        public (DeformationGenerator, IReadOnlyList<DeformationAttackEpochRecord>) Execute()
        {
            var o = _o;
            using (var initGen = new Generator(MedSegContext.MixSeed(_seed, "init", 0)))
            {
                _generator = new DeformationGenerator(o.Generator, initGen);
                _critic = new DeformationCritic(o.Generator.InChannels, o.CriticWidths, initGen);
            }
            _generator.MoveTo(_device);
            _critic.MoveTo(_device);
            _noise = new Generator(MedSegContext.MixSeed(_seed, "noise", 0), _device);
            _genOpt = torch.optim.RMSProp(_generator.parameters(), lr: o.LearningRate, alpha: o.RmsPropDecay, eps: o.RmsPropEpsilon);
            _criticOpt = torch.optim.RMSProp(_critic.parameters(), lr: o.LearningRate, alpha: o.RmsPropDecay, eps: o.RmsPropEpsilon);

            var segNet = _segmenter.Network;
            var frozen = segNet.parameters().Select(p => (p, p.requires_grad)).ToList();
            bool wasTraining = segNet.training;
            var history = new List<DeformationAttackEpochRecord>();
            try
            {
                foreach (var (p, _) in frozen) p.requires_grad = false;
                segNet.eval();
                long? rows = _input.GetRowCount();
                long stepsPerEpoch = rows is long n ? (n + o.BatchSize - 1) / o.BatchSize : 0;
                var tracker = new ProgressTracker(_ctx, Name, o.Epochs, stepsPerEpoch, _ct);
                for (int epoch = 1; epoch <= o.Epochs; epoch++)
                {
                    var rec = TrainEpoch(epoch, tracker);
                    history.Add(rec);
                    _ctx.WriteLog(LogLevel.Info, Name, string.Create(CultureInfo.InvariantCulture,
                        $"epoch {epoch}/{o.Epochs}: generator loss {rec.GeneratorLoss:G5}, critic loss {rec.CriticLoss:G5}, masked CE {rec.CrossEntropy:F4} (ξ = {o.Xi}), {rec.Seconds:F1} s"));
                    tracker.EndEpoch();
                    o.EpochCompleted?.Invoke(rec);
                }
            }
            finally
            {
                foreach (var (p, rg) in frozen) p.requires_grad = rg;
                segNet.train(wasTraining);
            }
            var g = _generator;
            _generator = null; // the transformer owns it now
            g.eval();
            return (g, history);
        }

        private DeformationAttackEpochRecord TrainEpoch(int epoch, ProgressTracker tracker)
        {
            var o = _o;
            var sw = Stopwatch.StartNew();
            _generator!.train();
            _critic!.train();
            var rand = new Random((int)(MedSegContext.MixSeed(_seed, "shuffle", epoch) & 0x7FFFFFFF));
            double genSum = 0, criticSum = 0, ceSum = 0;
            long steps = 0;
            foreach (var batch in _input.GetBatches([o.ImageColumn], o.BatchSize, rand, _device, cancellationToken: _ct))
            {
                using var scope = NewDisposeScope();
                var x = batch[o.ImageColumn];
                Tensor s0;
                using (no_grad()) s0 = DeformationAttackLosses.Probabilities(_segmenter.Network.call(x));
                double criticLoss = 0;
                for (int i = 0; i < o.CriticIterations; i++) criticLoss = CriticStep(x);
                var (genLoss, ce) = GeneratorStep(x, s0);
                steps++;
                if (!double.IsFinite(genLoss) || !double.IsFinite(criticLoss))
                    throw new Segmentation.TrainingDivergedException(
                        $"{Name}: the {(double.IsFinite(genLoss) ? "critic" : "generator")} loss is not finite at epoch {epoch}, step {steps}; lower the learning rate or ξ, or check the data for NaN/Inf values",
                        epoch, steps);
                genSum += genLoss;
                criticSum += criticLoss;
                ceSum += ce;
                tracker.Step(genLoss, batch.Count);
            }
            if (steps == 0) throw new InvalidOperationException($"{Name}: the training data has no rows");
            return new DeformationAttackEpochRecord(epoch, genSum / steps, criticSum / steps, ceSum / steps, sw.Elapsed.TotalSeconds);
        }

        private Tensor Noise(long[] shape) => randn(shape, ScalarType.Float32, _device, generator: _noise);

        private double CriticStep(Tensor real)
        {
            using var scope = NewDisposeScope();
            var o = _o;
            var critic = _critic!;
            Tensor fake;
            using (no_grad()) fake = DeformationSampler.Forward(_generator!, real, Noise).Attacked;
            var loss = DeformationAttackLosses.CriticLoss(critic.call(real), critic.call(fake));
            if (o.CriticRegularization == CriticRegularization.GradientPenalty)
            {
                var eps = rand([real.size(0)], ScalarType.Float32, _device, generator: _noise);
                loss = loss.add(DeformationAttackLosses.GradientPenalty(critic.call, real, fake, eps).mul(o.GradientPenaltyWeight));
            }
            _criticOpt!.ZeroGrad();
            loss.backward();
            _criticOpt!.step();
            if (o.CriticRegularization == CriticRegularization.WeightClipping)
                using (no_grad())
                    foreach (var p in critic.parameters()) p.clamp_(-o.ClipValue, o.ClipValue);
            return loss.ToDouble();
        }

        private (double Loss, double CrossEntropy) GeneratorStep(Tensor real, Tensor s0)
        {
            using var scope = NewDisposeScope();
            var critic = _critic!;
            var fields = DeformationSampler.Forward(_generator!, real, Noise);
            var logSdv = DeformationAttackLosses.LogProbabilities(_segmenter.Network.call(fields.Attacked));
            Tensor realScores;
            using (no_grad()) realScores = critic.call(real);
            var terms = DeformationAttackLosses.GeneratorLoss(realScores, critic.call(fields.Attacked), s0, logSdv,
                fields.Deformation, fields.Intensity, fields.Kl, _o);
            _genOpt!.ZeroGrad();
            terms.Total.backward();
            _genOpt!.step();
            return (terms.Total.ToDouble(), terms.CrossEntropy.ToDouble());
        }

        public void Dispose()
        {
            _generator?.Dispose();
            _critic?.Dispose();
            _genOpt?.Dispose();
            _criticOpt?.Dispose();
            _noise?.Dispose();
        }
    }
}

/// <summary>The deformation attacker on <c>ctx.Augmentation</c>.</summary>
public static class DeformationAttackCatalogExtensions
{
    /// <summary>
    /// The VAE-GAN deformation attacker of paper 002 against a fitted <paramref name="segmenter"/> (held fixed; see
    /// <see cref="DeformationAttackOptions"/> for the defaults). Its transformer doubles as an augmenter: the attacked
    /// image with the ground truth moved by the same D.
    /// </summary>
    public static DeformationAttackEstimator DeformationAttack(this AugmentationCatalog catalog, SegmentationTransformer segmenter, DeformationAttackOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new DeformationAttackEstimator(catalog.Context, options ?? new DeformationAttackOptions(), segmenter);
    }
}
