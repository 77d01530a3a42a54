using MLNetMedSeg.Core;
using MLNetMedSeg.Core.Training;
using System.Globalization;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion;

/// <summary>
/// Trains a Bernoulli diffusion model of binary masks (DASP paper 000, §3.1; BerDiff): every step draws
/// t ~ U{0..T−1} and y_t ~ B(ȳ_t·y_0 + (1 − ȳ_t)/2) (Eq. 3) for a batch of masks, runs the ADM U-Net on (y_t, t)
/// (and the image condition, concatenated, if <see cref="MaskDiffusionOptions.ConditionColumn"/> is set) and minimises
/// BCE against the flip noise y_t ⊕ y_0 (Eq. 5) or y_0, plus w·KL if asked (see <see cref="BernoulliDiffusion.Loss"/>),
/// with Adam; an exponential moving average of the weights is kept and is what the fitted
/// <see cref="MaskDiffusionTransformer"/> samples with. Batches come from <see cref="DataBatchExtensions.GetBatches"/>
/// on the context's device, shuffled every epoch (cache the data first); each step runs in a dispose scope. Progress
/// (epoch, step, loss, items/s, ETA) goes to <see cref="MedSegContext.Progress"/> and the log; cancellation is honoured at
/// every step; a NaN or infinite loss stops training with a <see cref="TrainingDivergedException"/>. Masks must be
/// {0, 1}: anything else is refused with the column named. Initial weights, batch orders, timesteps, noise and dropout
/// all come from seeds derived from the context's seed: training is deterministic on the CPU.
/// </summary>
public sealed class MaskDiffusionEstimator : Microsoft.ML.IEstimator<MaskDiffusionTransformer>, Pipeline.IEngineEstimator<MaskDiffusionTransformer>
{
    Data.DataViewSchema Pipeline.IEngineEstimator<MaskDiffusionTransformer>.GetOutputSchema(Data.DataViewSchema inputSchema) => GetOutputSchema(inputSchema);

    MaskDiffusionTransformer Pipeline.IEngineEstimator<MaskDiffusionTransformer>.Fit(Data.IDataView input, CancellationToken cancellationToken) => Fit(input, cancellationToken);

    /// <summary>
    /// ML.NET: trains on an ML.NET data view (images as <c>MLImage</c> or float vectors [C,H,W], masks as float vectors
    /// [1,H,W] or [H,W]; see <see cref="Core.MLNet.TensorColumns"/>). The columns are checked first, before any row is read (a missing or unreadable column
    /// is a <see cref="SchemaException"/> naming it); data that cannot be shuffled is then cached in memory for the
    /// fit (and released after it).
    /// </summary>
    public MaskDiffusionTransformer Fit(Microsoft.ML.IDataView input) =>
        Core.MLNet.MLNetData.Fit(input, GetOutputSchema, data => Fit(data, CancellationToken.None));

    /// <summary>ML.NET schema propagation: checks the columns this stage reads (naming a missing or wrong one) before any training.</summary>
    /// <remarks>The fitted model is an augmenter in ML.NET chains (its masks travel to the trainer, see
    /// <see cref="Augmentation.AugmentedTrainingData"/>): the columns are checked and the schema comes back unchanged.</remarks>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema)
    {
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, GetOutputSchema);
        return inputSchema;
    }

    internal const string Name = "MaskDiffusion";
    private readonly MedSegContext _context;
    private readonly MaskDiffusionOptions _options;
    private readonly ulong _seed;

    /// <param name="context">Seed, device, progress, log.</param>
    /// <param name="options">The options (copied; validated now).</param>
    internal MaskDiffusionEstimator(MedSegContext context, MaskDiffusionOptions options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Clone();
        _options.Validate();
        _context = context;
        _seed = context.DeriveSeed(Name);
    }

    /// <summary>The options (a copy).</summary>
    public MaskDiffusionOptions Options => _options.Clone();

    /// <summary>Checks the mask (and condition) columns; returns the fitted transformer's output schema.</summary>
    internal DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var (h, w, c) = CheckTrainingSchema(inputSchema);
        return MaskDiffusionTransformer.OutputSchema(inputSchema, ModelOptions(h, w, c), h, w, c);
    }

    /// <summary>The mask size (−1 when unknown) and the condition's channels (0 without; −1 when unknown).</summary>
    private (long h, long w, long c) CheckTrainingSchema(DataViewSchema schema)
    {
        var o = _options;
        var t = (TensorColumnType)schema.RequireTensor(o.MaskColumn, TensorColumnType.BinaryMask(), Name).Type;
        long h = t.Shape[1], w = t.Shape[2];
        long f = 1L << (o.Network.Levels - 1);
        if ((h > 0 && h % f != 0) || (w > 0 && w % f != 0))
            throw new SchemaException($"{Name}: mask column '{o.MaskColumn}' is {t}; the network needs sizes divisible by 2^(levels − 1) = {f} (resize first)", o.MaskColumn);
        long c = 0;
        if (o.ConditionColumn is { } cc)
        {
            MaskDiffusionTransformer.CheckCondition(schema, cc, o.Network.ConditionChannels, h, w, Name);
            var ct = (TensorColumnType)schema[cc].Type;
            c = ct.Shape[0] >= 0 ? ct.Shape[0] : o.Network.ConditionChannels > 0 ? o.Network.ConditionChannels : -1;
        }
        return (h, w, c);
    }

    private MaskDiffusionModelOptions ModelOptions(long h, long w, long conditionChannels) => new()
    {
        Network = _options.NetworkFor((int)Math.Max(0, conditionChannels)),
        Steps = _options.Steps, Schedule = _options.Schedule, Parameterization = _options.Parameterization,
        SampleSteps = _options.SampleSteps, FinalStep = _options.FinalStep, SamplesPerRow = _options.SamplesPerRow,
        SampleBatchSize = _options.SampleBatchSize, Height = (int)h, Width = (int)w, ConditionColumn = _options.ConditionColumn,
        OutputColumn = _options.OutputColumn, SampleIndexColumn = _options.SampleIndexColumn,
        Seed = MedSegContext.MixSeed(_seed, "sample", 0),
    };

    /// <summary>Trains on the mask column of <paramref name="input"/> (shuffled every epoch: it must be shuffleable, e.g. cached).</summary>
    internal MaskDiffusionTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        var (_, _, c) = CheckTrainingSchema(input.Schema);
        if (!input.CanShuffle) throw new InvalidOperationException($"{Name}: the training data cannot be shuffled; cache it first (ml.Data.Cache)");
        cancellationToken.ThrowIfCancellationRequested();
        using var run = new Run(this, input, c, cancellationToken);
        return run.Execute();
    }

    /// <summary>
    /// One Fit call, trained by the shared <see cref="TrainingLoop"/> with an <see cref="EmaHandler"/> and a sample-grid
    /// handler; disposes everything it made except the returned network.
    /// </summary>
    private sealed class Run(MaskDiffusionEstimator owner, IDataView input, long conditionChannels, CancellationToken ct) : TrainingProcess, IDisposable
    {
        private readonly MaskDiffusionOptions _o = owner._options;
        private readonly MedSegContext _ctx = owner._context;
        private readonly Device _device = owner._context.Device;
        private readonly BernoulliDiffusion _process = new(owner._options.Schedule, owner._options.Steps, owner._options.Parameterization);
        private DiffusionUNet? _net, _emaNet;
        private ExponentialMovingAverage? _ema;
        private Adam? _optimizer;
        private Generator? _generator;
        private string[] _columns = [];
        private (int h, int w) _size;
        private long _rows;

        public override string Name => "diffusion";

        public MaskDiffusionTransformer Execute()
        {
            var o = _o;
            long c = conditionChannels;
            if (o.ConditionColumn is not null && c < 1) c = FirstConditionChannels();
            var netOptions = o.NetworkFor((int)c);
            using (var initGen = new Generator(MedSegContext.MixSeed(owner._seed, "init", 0)))
                _net = new DiffusionUNet(netOptions, initGen);
            _net.MoveTo(_device);
            using (var initGen = new Generator(MedSegContext.MixSeed(owner._seed, "init", 0)))
                _emaNet = new DiffusionUNet(netOptions, initGen);
            _emaNet.MoveTo(_device);
            _emaNet.eval();
            _generator = new Generator(MedSegContext.MixSeed(owner._seed, "noise", 0));
            _net.DropoutGenerator = _generator;
            _ema = new ExponentialMovingAverage(_net, o.EmaDecay);
            _optimizer = Optimizers.Adam(_net.parameters(), lr: o.LearningRate);

            _rows = input.GetRowCount() ?? input.CountRows();
            if (_rows == 0) throw new InvalidOperationException($"{MaskDiffusionEstimator.Name}: the training data has no rows");
            _columns = o.ConditionColumn is { } cc ? [o.MaskColumn, cc] : [o.MaskColumn];
            var loop = new TrainingLoop(_ctx, MaskDiffusionEstimator.Name, o.Epochs)
            {
                CheckpointFolder = o.CheckpointFolder,
                Fingerprint = new
                {
                    Options = TrainingLoop.OptionsFingerprint(o, nameof(o.Epochs), nameof(o.SampleGridFolder), nameof(o.SampleGridEvery)),
                    Seed = owner._seed.ToString(CultureInfo.InvariantCulture),
                },
                EpochCompleted = o.EpochCompleted is { } callback ? e => callback(Record(e)) : null,
            };
            loop.Handlers.Add(new EmaHandler(_ema, _net, o.EmaDecay, o.EmaWarmup));
            if (o.SampleGridFolder is { } folder && o.SampleGridEvery > 0)
                loop.Handlers.Add(new EveryEpochsHandler("grid", o.SampleGridEvery, s => WriteGrid(folder, $"epoch-{s.Epoch:D4}.png", input)));
            var state = loop.Run(this, ct);

            _ema.CopyTo(_emaNet);
            if (_size.h == 0) _size = FirstMaskSize();   // a run resumed after its last epoch trains no step
            var model = owner.ModelOptions(_size.h, _size.w, c);
            var net = _emaNet;
            _emaNet = null; // the transformer owns it now
            MaskDiffusionTransformer result;
            try { result = new MaskDiffusionTransformer(_ctx, model, net, state.History.Select(Record).ToList()); }
            catch { net.Dispose(); throw; }
            if (o.SampleGridFolder is { } f)
            {
                try { WriteGrid(f, "final.png", input, result); }
                catch { result.Dispose(); throw; }
            }
            return result;
        }

        private static MaskDiffusionEpochRecord Record(EpochSummary e) =>
            new(e.Epoch, e.Loss, e.Term("BCE") ?? double.NaN, e.Term("KL"), e.Seconds);

        private long FirstConditionChannels()
        {
            using var cur = input.GetRowCursor([input.Schema[_o.ConditionColumn!]]);
            if (!cur.MoveNext()) return 0;
            return cur.GetTensor(_o.ConditionColumn!).size(0);
        }

        private (int h, int w) FirstMaskSize()
        {
            using var cur = input.GetRowCursor([input.Schema[_o.MaskColumn]]);
            if (!cur.MoveNext()) return (0, 0);
            using var m = cur.GetTensor(_o.MaskColumn);
            return ((int)m.size(-2), (int)m.size(-1));
        }

        public override long? StepsPerEpoch => (_rows + _o.BatchSize - 1) / _o.BatchSize;

        public override double? LearningRate => _o.LearningRate;

        internal override IEnumerable<DataBatch> Batches(TrainingState state)
        {
            _net!.train();
            var rand = new Random((int)(MedSegContext.MixSeed(owner._seed, "shuffle", state.Epoch) & 0x7FFFFFFF));
            return input.GetBatches(_columns, _o.BatchSize, rand, _device, cancellationToken: state.CancellationToken);
        }

        internal override StepResult Step(DataBatch batch, TrainingState state)
        {
            var o = _o;
            var y0 = batch[o.MaskColumn];
            CheckMasks(y0, state.Epoch, state.StepInEpoch + 1);
            if (_size.h == 0) _size = ((int)y0.size(2), (int)y0.size(3));
            else if (y0.size(2) != _size.h || y0.size(3) != _size.w)
                throw new InvalidOperationException($"{MaskDiffusionEstimator.Name}: masks in column '{o.MaskColumn}' vary in size ({_size.h}×{_size.w} and {y0.size(2)}×{y0.size(3)}); resize them first");
            Tensor? cond = o.ConditionColumn is { } cc ? batch[cc] : null;
            int n = (int)y0.size(0);
            var t = _process.SampleTimesteps(n, _generator, _device);
            var yt = _process.ForwardSample(y0, t, _generator);
            _optimizer!.ZeroGrad();
            var logits = _net!.call(yt, t, cond);
            var terms = _process.Loss(y0, yt, t, logits, o.KlWeight);
            double value = terms.Total.DoubleValue();
            var named = new Dictionary<string, double>(StringComparer.Ordinal) { ["BCE"] = terms.Bce.DoubleValue() };
            if (terms.Kl is { } kl) named["KL"] = kl.DoubleValue();
            if (!double.IsFinite(value)) return new StepResult(value, n, named);
            terms.Total.backward();
            _optimizer!.step();
            return new StepResult(value, n, named);
        }

        private void CheckMasks(Tensor y0, int epoch, long step)
        {
            using var scope = torch.NewDisposeScope();
            bool binary = y0.eq(S(0)).logical_or(y0.eq(S(1))).all().BooleanValue();
            if (!binary)
                throw new InvalidOperationException(
                    $"{MaskDiffusionEstimator.Name}: column '{_o.MaskColumn}' holds values other than 0 and 1 (epoch {epoch}, batch {step}); binarize the masks first (ml.MedSeg().Transforms.BinarizeMask, or LoadMasks, which binarises)");
        }

        public override void SaveState(CheckpointState c)
        {
            c.Put("net", _net!);
            c.Put("opt", _optimizer!);
            c.Put("rng", _generator!);
        }

        public override void LoadState(CheckpointState c)
        {
            c.Load("net", _net!);
            c.Load("opt", _optimizer!);
            c.Load("rng", _generator!);
        }

        /// <summary>A grid of SampleGridCount masks from the current EMA weights (or the fitted model), same seeds every time.</summary>
        private void WriteGrid(string folder, string file, IDataView data, MaskDiffusionTransformer? fitted = null)
        {
            var o = _o;
            using var scope = torch.NewDisposeScope();
            Tensor? cond = null;
            if (o.ConditionColumn is { } cc)
            {
                var images = new List<Tensor>();
                using var cur = data.GetRowCursor([data.Schema[cc]]);
                while (images.Count < o.SampleGridCount && cur.MoveNext()) images.Add(cur.GetTensor(cc).clone());
                if (images.Count == 0) return;
                cond = torch.stack(images.Select((_, i) => images[i % images.Count]).ToArray(), 0).to(_device);
            }
            int count = cond is null ? o.SampleGridCount : (int)cond.size(0);
            Tensor masks;
            if (fitted is not null)
                masks = fitted.GenerateCore(Enumerable.Range(0, count).Select(i => ((long)i, 0)).ToArray(), cond);
            else
            {
                _ema!.CopyTo(_emaNet!);
                var sampler = _process.Respace(o.SampleSteps);
                var gens = Enumerable.Range(0, count).Select(i => new Generator(MedSegContext.MixSeed(owner._seed, "grid", i))).ToArray();
                try { masks = sampler.Sample((yt, ts) => _emaNet!.call(yt, ts, cond), gens, [1, _size.h, _size.w], o.FinalStep, _device, ct); }
                finally { foreach (var g in gens) g.Dispose(); }
            }
            try { SampleGrid.Write(Path.Combine(folder, file), masks, (int)Math.Ceiling(Math.Sqrt(count))); }
            finally { masks.Dispose(); }
        }

        public void Dispose()
        {
            _net?.Dispose();
            _emaNet?.Dispose();
            _ema?.Dispose();
            _optimizer?.Dispose();
            _generator?.Dispose();
        }
    }
}
