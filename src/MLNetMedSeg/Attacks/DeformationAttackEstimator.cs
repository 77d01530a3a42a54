using MLNetMedSeg.Core;
using MLNetMedSeg.Core.Training;
using System.Diagnostics;
using System.Globalization;
using MLNetMedSeg.Attacks.Networks;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Attacks;

/// <summary>
/// Trains the deformation attacker of paper 002 (Chen et al., §3) against a fixed, fitted segmenter (any
/// <see cref="IDifferentiableSegmenter"/>: a U-Net's <see cref="SegmentationTransformer"/>, or a cDAL model, whose
/// S = f_seg(I) is then the averaged Algorithm-2 prediction, differentiated through its unrolled sampler): a two-branch
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
public sealed class DeformationAttackEstimator : Microsoft.ML.IEstimator<DeformationAttackTransformer>, Pipeline.IEngineEstimator<DeformationAttackTransformer>
{
    Data.DataViewSchema Pipeline.IEngineEstimator<DeformationAttackTransformer>.GetOutputSchema(Data.DataViewSchema inputSchema) => GetOutputSchema(inputSchema);

    DeformationAttackTransformer Pipeline.IEngineEstimator<DeformationAttackTransformer>.Fit(Data.IDataView input, CancellationToken cancellationToken) => Fit(input, cancellationToken);

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

    internal const string Name = "DeformationAttackEstimator";
    private readonly MedSegContext _context;
    private readonly DeformationAttackOptions _options;
    private readonly IDifferentiableSegmenter _segmenter;
    private readonly ulong _seed;

    /// <param name="context">Seed, device, progress, log.</param>
    /// <param name="options">The options (copied; validated now).</param>
    /// <param name="segmenter">The fitted segmenter to attack; it is not changed, and not owned (the caller disposes it after the fitted transformer).</param>
    internal DeformationAttackEstimator(MedSegContext context, DeformationAttackOptions options, IDifferentiableSegmenter segmenter)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(segmenter);
        _options = options.Clone();
        _options.Validate();
        if (_options.Generator.InChannels != segmenter.ImageChannels)
            throw new ArgumentException($"the generator takes {_options.Generator.InChannels} image channels but the segmenter {segmenter.ImageChannels}", nameof(options));
        _context = context;
        _segmenter = segmenter;
        _seed = context.DeriveSeed(Name);
    }

    /// <summary>The options (a copy).</summary>
    public DeformationAttackOptions Options => _options.Clone();

    /// <summary>Checks the image (and mask) column; returns the fitted transformer's output schema.</summary>
    internal DataViewSchema GetOutputSchema(DataViewSchema inputSchema) =>
        DeformationAttackTransformer.OutputSchema(inputSchema, ModelOptions(), _segmenter.IsBinary);

    private DeformationAttackModelOptions ModelOptions() => DeformationAttackModelOptions.From(_options, _seed);

    /// <summary>
    /// Trains the generator and critic and returns the fitted attacker (which refers to, but does not own, the
    /// segmenter). Throws <see cref="SchemaException"/> before any work on a bad schema, <see cref="TrainingDivergedException"/>
    /// on a NaN/infinite loss, <see cref="OperationCanceledException"/> when cancelled.
    /// </summary>
    internal DeformationAttackTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        GetOutputSchema(input.Schema);
        if (!input.CanShuffle) throw new InvalidOperationException($"{Name}: the training data cannot be shuffled; cache it first (ml.Data.Cache)");
        cancellationToken.ThrowIfCancellationRequested();
        using var run = new Run(_context, _options, _seed, _segmenter, input, cancellationToken);
        var (generator, history) = run.Execute();
        try { return new DeformationAttackTransformer(_context, ModelOptions(), generator, _segmenter, ownsSegmenter: false, history); }
        catch { generator.Dispose(); throw; }
    }

    /// <summary>
    /// One Fit call, trained by the shared <see cref="TrainingLoop"/>: each step runs n_critic critic steps and one
    /// generator step. Disposes everything it made except the returned generator.
    /// </summary>
    private sealed class Run : TrainingProcess, IDisposable
    {
        private readonly MedSegContext _ctx;
        private readonly DeformationAttackOptions _o;
        private readonly ulong _seed;
        private readonly IDifferentiableSegmenter _segmenter;
        private readonly IDataView _input;
        private readonly CancellationToken _ct;
        private readonly Device _device;
        private DeformationGenerator? _generator;
        private DeformationCritic? _critic;
        private RMSProp? _genOpt, _criticOpt;
        private Generator? _noise;

        public Run(MedSegContext ctx, DeformationAttackOptions o, ulong seed, IDifferentiableSegmenter segmenter, IDataView input, CancellationToken ct)
        {
            _ctx = ctx;
            _o = o;
            _seed = seed;
            _segmenter = segmenter;
            _input = input;
            _ct = ct;
            _device = ctx.Device;
        }

        public override string Name => "attacker";

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
            _noise = new Generator(MedSegContext.MixSeed(_seed, "noise", 0));   // CPU: the same draws on any device (SeededRandom)
            _genOpt = Optimizers.RMSProp(_generator.parameters(), lr: o.LearningRate, alpha: o.RmsPropDecay, eps: o.RmsPropEpsilon);
            _criticOpt = Optimizers.RMSProp(_critic.parameters(), lr: o.LearningRate, alpha: o.RmsPropDecay, eps: o.RmsPropEpsilon);

            var segNet = _segmenter.Network;
            var frozen = segNet.parameters().Select(p => (p, p.requires_grad)).ToList();
            bool wasTraining = segNet.training;
            TrainingState state;
            try
            {
                foreach (var (p, _) in frozen) p.requires_grad = false;
                segNet.eval();
                var loop = new TrainingLoop(_ctx, DeformationAttackEstimator.Name, o.Epochs)
                {
                    CheckpointFolder = o.CheckpointFolder,
                    Fingerprint = new
                    {
                        Options = TrainingLoop.OptionsFingerprint(o, nameof(o.Epochs)),
                        Seed = _seed.ToString(CultureInfo.InvariantCulture),
                        Segmenter = WeightsChecksum(segNet),
                    },
                    EpochCompleted = o.EpochCompleted is { } callback ? e => callback(Record(e)) : null,
                };
                state = loop.Run(this, _ct);
            }
            finally
            {
                foreach (var (p, rg) in frozen) p.requires_grad = rg;
                segNet.train(wasTraining);
            }
            var g = _generator;
            _generator = null; // the transformer owns it now
            g.eval();
            return (g, state.History.Select(Record).ToList());
        }

        private static DeformationAttackEpochRecord Record(EpochSummary e) =>
            new(e.Epoch, e.Loss, e.Term("critic") ?? double.NaN, e.Term("masked CE") ?? double.NaN, e.Seconds);

        /// <summary>A checksum of the segmenter's weights, so a checkpoint is not resumed against another segmenter.</summary>
        private static string WeightsChecksum(nn.Module net)
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            double sum = 0;
            foreach (var (k, t) in net.StateDictInOrder())
                if (is_floating_point(t.dtype)) sum += t.to(ScalarType.Float64).abs().sum().DoubleValue() * (1 + k.Length % 7);
            return sum.ToString("G17", CultureInfo.InvariantCulture);
        }

        public override long? StepsPerEpoch => _input.GetRowCount() is long n ? (n + _o.BatchSize - 1) / _o.BatchSize : null;

        public override double? LearningRate => _o.LearningRate;

        internal override IEnumerable<DataBatch> Batches(TrainingState state)
        {
            _generator!.train();
            _critic!.train();
            var rand = new Random((int)(MedSegContext.MixSeed(_seed, "shuffle", state.Epoch) & 0x7FFFFFFF));
            return _input.GetBatches([_o.ImageColumn], _o.BatchSize, rand, _device, cancellationToken: state.CancellationToken);
        }

        internal override StepResult Step(DataBatch batch, TrainingState state)
        {
            var x = batch[_o.ImageColumn];
            Tensor s0;
            using (no_grad()) s0 = DeformationAttackLosses.Probabilities(_segmenter.Logits(x));
            double criticLoss = 0;
            for (int i = 0; i < _o.CriticIterations; i++) criticLoss = CriticStep(x);
            if (!double.IsFinite(criticLoss))
                return new StepResult(criticLoss, batch.Count, new Dictionary<string, double> { ["critic"] = criticLoss });
            var (genLoss, ce) = GeneratorStep(x, s0);
            return new StepResult(genLoss, batch.Count, new Dictionary<string, double> { ["critic"] = criticLoss, ["masked CE"] = ce });
        }

        public override void SaveState(CheckpointState c)
        {
            c.Put("generator", _generator!);
            c.Put("critic", _critic!);
            c.Put("generator-opt", _genOpt!);
            c.Put("critic-opt", _criticOpt!);
            c.Put("rng", _noise!);
        }

        public override void LoadState(CheckpointState c)
        {
            c.Load("generator", _generator!);
            c.Load("critic", _critic!);
            c.Load("generator-opt", _genOpt!);
            c.Load("critic-opt", _criticOpt!);
            c.Load("rng", _noise!);
        }

        private Tensor Noise(long[] shape) => SeededRandom.Randn(shape, ScalarType.Float32, _device, _noise);

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
                var eps = SeededRandom.Rand([real.size(0)], ScalarType.Float32, _device, _noise);
                loss = loss.Plus(DeformationAttackLosses.GradientPenalty(critic.call, real, fake, eps).mul(S(o.GradientPenaltyWeight)));
            }
            _criticOpt!.ZeroGrad();
            loss.backward();
            _criticOpt!.step();
            if (o.CriticRegularization == CriticRegularization.WeightClipping)
                using (no_grad())
                    foreach (var p in critic.parameters()) p.clamp_(S(-o.ClipValue), S(o.ClipValue));
            return loss.DoubleValue();
        }

        private (double Loss, double CrossEntropy) GeneratorStep(Tensor real, Tensor s0)
        {
            using var scope = NewDisposeScope();
            var critic = _critic!;
            var fields = DeformationSampler.Forward(_generator!, real, Noise);
            var logSdv = DeformationAttackLosses.LogProbabilities(_segmenter.Logits(fields.Attacked));
            Tensor realScores;
            using (no_grad()) realScores = critic.call(real);
            var terms = DeformationAttackLosses.GeneratorLoss(realScores, critic.call(fields.Attacked), s0, logSdv,
                fields.Deformation, fields.Intensity, fields.Kl, _o);
            _genOpt!.ZeroGrad();
            terms.Total.backward();
            _genOpt!.step();
            return (terms.Total.DoubleValue(), terms.CrossEntropy.DoubleValue());
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
