using MLNetMedSeg.Core;
using MLNetMedSeg.Core.Training;
using System.Globalization;
using System.Text.Json;
using MLNetMedSeg.Augmentation.Classic;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation;

/// <summary>
/// Trains a segmentation network (U-Net, U-Net++, LinkNet, DeepLabv3+) on image/mask pairs, as DASP's last step
/// (paper 000, §3.4): minimise L_sup (Eq. 11; real and augmented rows weighted through
/// <see cref="SegmentationTrainerOptions.SampleWeightColumn"/>) with Adam. Batches come from
/// <see cref="DataBatchExtensions.GetBatches"/> on the context's device, shuffled every epoch (the order of epoch e is
/// drawn from a Random seeded by the trainer's seed and e, so a resumed run sees the same orders); each step runs
/// in a dispose scope. Progress goes to <see cref="MedSegContext.Progress"/> and the log; with validation data the
/// per-image mDice is computed after every epoch. Initial weights, batch orders, augmentations and dropout masks all
/// come from seeds derived from the context's seed, never from torch's global generator: training is deterministic on
/// the CPU given the context's seed (the seed is
/// derived when the trainer is created: fitting the same trainer twice gives the same model).
/// </summary>
public sealed class SegmentationTrainer : Microsoft.ML.IEstimator<SegmentationTransformer>, Pipeline.IEngineEstimator<SegmentationTransformer>
{
    Data.DataViewSchema Pipeline.IEngineEstimator<SegmentationTransformer>.GetOutputSchema(Data.DataViewSchema inputSchema) => GetOutputSchema(inputSchema);

    SegmentationTransformer Pipeline.IEngineEstimator<SegmentationTransformer>.Fit(Data.IDataView input, CancellationToken cancellationToken) => Fit(input, cancellationToken);

    /// <summary>
    /// ML.NET: trains on an ML.NET data view (images as <c>MLImage</c> or float vectors [C,H,W], masks as float vectors
    /// [1,H,W] or [H,W]; see <see cref="Core.MLNet.TensorColumns"/>). The columns are checked first, before any row is read (a missing or unreadable column
    /// is a <see cref="SchemaException"/> naming it); data that cannot be shuffled is then cached in memory for the
    /// fit (and released after it).
    /// </summary>
    /// <remarks>
    /// After augmenters in a chain (a mask diffusion, an image diffusion, adversarial training; see
    /// <see cref="IAugmentedTrainingInput"/> (<c>Augmentation.AugmentedTrainingData</c>)), trains on the real rows plus the generated pairs with Eq. 11's weights —
    /// attacked against the segmenter being trained every n epochs when adversarial training asks for it.
    /// </remarks>
    public SegmentationTransformer Fit(Microsoft.ML.IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input is not IAugmentedTrainingInput a)
            return Core.MLNet.MLNetData.Fit(input, GetOutputSchema, data => Fit(data, CancellationToken.None));
        return Core.MLNet.MLNetData.Fit(a.Input, GetOutputSchema, real => FitAugmented(a, real));
    }

    private SegmentationTransformer FitAugmented(IAugmentedTrainingInput a, IDataView real) =>
        AugmentedFit.Run(a, real, Name, _context, _options.ImageColumn, _options.MaskColumn,
            plain: rows => Fit(rows, CancellationToken.None),
            online: (rows, attack) =>
            {
                var o = _options.Clone();
                o.OnlineAttack = attack;
                return FitWith(o, rows);
            },
            pooled: joint =>
            {
                var o = _options.Clone();
                o.SampleWeightColumn = AugmentedFit.FlagColumn;
                o.SampleWeightMode = SampleWeightMode.IsAugmentedFlag;
                return FitWith(o, joint);
            });

    /// <summary>
    /// ML.NET: trains on <paramref name="trainData"/> and scores <paramref name="validationData"/> after every epoch (mDice;
    /// the best epoch's weights are kept with <see cref="SegmentationTrainerOptions.RestoreBestCheckpoint"/>, and
    /// early stopping watches it), as ML.NET's trainers that take validation data do. The validation rows are read once
    /// into memory.
    /// </summary>
    public SegmentationTransformer Fit(Microsoft.ML.IDataView trainData, Microsoft.ML.IDataView validationData)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        ArgumentNullException.ThrowIfNull(validationData);
        Core.MLNet.MLNetData.CheckSchema(validationData.Schema, GetOutputSchema);
        return Core.MLNet.MLNetData.Fit(trainData, GetOutputSchema, train =>
        {
            using var validation = CachedDataView.Create(Core.MLNet.MLNetData.AsLibraryView(validationData));
            var o = _options.Clone();
            o.ValidationData = validation;
            return FitWith(o, train);
        });
    }

    /// <summary>Fits with other options (same seed, same context).</summary>
    private SegmentationTransformer FitWith(SegmentationTrainerOptions o, IDataView input)
    {
        o.Validate();
        CheckTrainingSchema(input.Schema, o);
        if (o.ValidationData is { } vd) CheckTrainingSchema(vd.Schema, o);
        if (!input.CanShuffle) throw new InvalidOperationException($"{Name}: the training data cannot be shuffled");
        using var run = new Run(_context, o, _seed, input, CancellationToken.None);
        return run.Execute();
    }

    /// <summary>ML.NET schema propagation: checks the columns this stage reads (naming a missing or wrong one) before any training.</summary>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema) =>
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, GetOutputSchema);

    internal const string Name = "SegmentationTrainer";
    private readonly MedSegContext _context;
    private readonly SegmentationTrainerOptions _options;
    private readonly ulong _seed;

    /// <param name="context">Seed, device, progress, log.</param>
    /// <param name="options">The options (copied; validated now).</param>
    internal SegmentationTrainer(MedSegContext context, SegmentationTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Clone();
        _options.Validate();
        _context = context;
        _seed = context.DeriveSeed(Name);
    }

    /// <summary>The options (a copy).</summary>
    public SegmentationTrainerOptions Options => _options.Clone();

    /// <summary>Checks the image, mask and weight columns; returns the fitted transformer's output schema.</summary>
    internal DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CheckTrainingSchema(inputSchema, _options);
        return SegmentationTransformer.OutputSchema(inputSchema, ModelOptions(_options));
    }

    private static SegmentationModelOptions ModelOptions(SegmentationTrainerOptions o) => new()
    {
        Network = o.Network.Clone(), ImageColumn = o.ImageColumn, ProbabilityColumn = o.ProbabilityColumn,
        PredictedColumn = o.PredictedColumn, TestTimeAugmentation = o.TestTimeAugmentation, BatchSize = o.ValidationBatchSize,
    };

    private static void CheckTrainingSchema(DataViewSchema schema, SegmentationTrainerOptions o)
    {
        var (h, w) = SegmentationTransformer.CheckImage(schema, o.ImageColumn, o.Network.InChannels, Name);
        var mc = schema.GetColumnOrNull(o.MaskColumn) ?? throw new SchemaException(
            $"{Name}: column '{o.MaskColumn}' was not found; the data has columns: {string.Join(", ", schema.Select(c => c.Name))}", o.MaskColumn);
        bool binary = o.Network.Classes == 1;
        var expected = binary ? TensorColumnType.BinaryMask(h, w) : TensorColumnType.ClassMask(h, w);
        if (mc.Type is not TensorColumnType mt || mt.DType != expected.DType || mt.Shape.Length != expected.Shape.Length ||
            mt.Shape.Zip(expected.Shape).Any(d => d.First >= 0 && d.Second >= 0 && d.First != d.Second))
            throw new SchemaException(
                $"{Name}: column '{o.MaskColumn}' has type {mc.Type} but the network's {(binary ? "binary head (Classes = 1) needs a binary mask" : $"{o.Network.Classes}-class head needs a class-index mask")} {expected}", o.MaskColumn);
        if (o.SampleWeightColumn is { } wc) schema.Require(wc, NumberColumnType.Instance, Name);
    }

    /// <summary>
    /// Trains (or resumes from <see cref="SegmentationTrainerOptions.CheckpointFolder"/>) and returns the fitted model.
    /// Throws <see cref="SchemaException"/> before any work on a bad schema, <see cref="TrainingDivergedException"/>
    /// on a NaN/infinite loss, <see cref="OperationCanceledException"/> when cancelled (the last completed epoch's
    /// checkpoint stays in the folder). After a resume, progress reports count epochs from the resume point (the log
    /// and <see cref="SegmentationEpochRecord"/>s use absolute epoch numbers).
    /// </summary>
    internal SegmentationTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        CachedDataView? validationSet = null;
        if (o.ValidationData is null && o.ValidationSet is { } set)
        {
            // The ML.NET validation set of the options (a chain's trainer): checked, then read once into memory.
            Core.MLNet.MLNetData.CheckValidationSet(set.Schema, Name, s => { CheckTrainingSchema(s, o); return s; });
            validationSet = CachedDataView.Create(Core.MLNet.MLNetData.AsLibraryView(set), cancellationToken);
            o = o.Clone();
            o.ValidationData = validationSet;
        }
        using (validationSet)
        {
            CheckTrainingSchema(input.Schema, o);
            if (o.ValidationData is { } vd) CheckTrainingSchema(vd.Schema, o);
            if (!input.CanShuffle) throw new InvalidOperationException($"{Name}: the training data cannot be shuffled; cache it first (ml.Data.Cache)");
            cancellationToken.ThrowIfCancellationRequested();
            using var run = new Run(_context, o, _seed, input, cancellationToken);
            return run.Execute();
        }
    }

    /// <summary>
    /// One Fit call: the network, optimizer, scheduler and generator, trained by the shared <see cref="TrainingLoop"/>
    /// with a <see cref="ValidationHandler"/> (best weights, early stopping) when there is validation data. Disposes
    /// everything it made except the returned network.
    /// </summary>
    private sealed class Run : TrainingProcess, IDisposable
    {
        private readonly MedSegContext _ctx;
        private readonly SegmentationTrainerOptions _o;
        private readonly ulong _seed;
        private readonly IDataView _input;
        private readonly CancellationToken _ct;
        private readonly Device _device;
        private SegmentationNetwork? _net;
        private bool _hasBatchNorm;
        private MixedPrecision? _mixed;
        private Optimizer? _optimizer;
        private LRScheduler? _scheduler;
        private double[] _ratesAtStart = [];
        private Generator? _generator;
        private ValidationHandler? _validation;
        private readonly SegmentationLoss _loss;
        private readonly List<IBatchAugmentation> _augmentations = [];
        private OnlineAttackPool? _online;

        public Run(MedSegContext ctx, SegmentationTrainerOptions o, ulong seed, IDataView input, CancellationToken ct)
        {
            _ctx = ctx;
            _o = o;
            _seed = seed;
            _input = input;
            _ct = ct;
            _device = ctx.Device;
            _loss = new SegmentationLoss(o.Loss, o.Network.Classes);
            if (o.Augmentation != ClassicAugmentationKind.None) _augmentations.Add(ClassicAugmentations.Create(o.Augmentation));
            if (o.Augmentations is { } more) _augmentations.AddRange(more);
        }

        public override string Name => "trainer";

        public SegmentationTransformer Execute()
        {
            var o = _o;
            using (var initGen = new Generator(MedSegContext.MixSeed(_seed, "init", 0)))
                _net = SegmentationNetworks.Create(o.Network, initGen);
            _hasBatchNorm = _net.modules().Any(m => m is TorchSharp.Modules.BatchNorm);
            _net.MoveTo(_device);
            _generator = new Generator(MedSegContext.MixSeed(_seed, "augment", 0));   // CPU: the same draws on any device
            SetDropoutGenerator(_net, _generator);
            if (o.OnlineAttack is { } online) _online = new OnlineAttackPool(online, _seed);
            if (o.Precision != TrainingPrecision.Float32)
            {
                if (o.Precision == TrainingPrecision.Float16 && _device.type != DeviceType.CUDA)
                    throw new ArgumentException($"{SegmentationTrainer.Name}: Precision = Float16 needs a CUDA device (the context's device is {Devices.Name(_device)}); use BFloat16 on the CPU", nameof(o.Precision));
                var copy = SegmentationNetworks.Create(o.Network);
                try { _mixed = new MixedPrecision(_net, copy, o.Precision); }
                catch { copy.Dispose(); throw; }
                SetDropoutGenerator((SegmentationNetwork)_mixed.Compute, _generator);
            }
            var parameters = _net.parameters().ToList();
            _optimizer = o.Optimizer == SegmentationOptimizer.AdamW
                ? Optimizers.AdamW(parameters, lr: o.LearningRate, weight_decay: o.WeightDecay)
                : Optimizers.Adam(parameters, lr: o.LearningRate, weight_decay: o.WeightDecay);
            _scheduler = CreateScheduler(_optimizer, o);
            _ratesAtStart = _optimizer.ParamGroups.Select(g => g.LearningRate).ToArray();

            var loop = new TrainingLoop(_ctx, SegmentationTrainer.Name, o.Epochs)
            {
                CheckpointFolder = o.CheckpointFolder,
                Fingerprint = OptionsFingerprint(),
                EpochCompleted = o.EpochCompleted is { } callback ? e => callback(Record(e)) : null,
            };
            if (o.ValidationData is { } vd)
            {
                _validation = new ValidationHandler(ValidationMetric, _net, _ => Validate(vd))
                {
                    RestoreBest = o.RestoreBestCheckpoint, Patience = o.EarlyStoppingPatience,
                };
                loop.Handlers.Add(_validation);
            }
            var state = loop.Run(this, _ct);

            var model = ModelOptions(o);
            var net = _net;
            SetDropoutGenerator(net, null); // the generator is disposed with this run
            _net = null; // the transformer owns it now
            try { return new SegmentationTransformer(_ctx, model, net, state.History.Select(Record).ToList()); }
            catch { net.Dispose(); throw; }
        }

        private const string ValidationMetric = "val mDice";

        private static SegmentationEpochRecord Record(EpochSummary e) =>
            new(e.Epoch, e.Loss, e.Metric(ValidationMetric), e.LearningRate ?? double.NaN, e.Seconds);

        /// <summary>
        /// Dropout layers (DeepLabv3+'s ASPP) draw their masks from the trainer's generator rather than torch's global
        /// one, so that training is reproducible from the context's seed and resumes exactly (the generator's state is
        /// in the checkpoint).
        /// </summary>
        private static void SetDropoutGenerator(SegmentationNetwork net, Generator? generator)
        {
            foreach (var (_, m) in net.PreOrder())
            {
                if (m is SeededDropout d) d.generator = generator;
            }
        }

        public override double? LearningRate => _optimizer?.LearningRate();

        public override long? StepsPerEpoch
        {
            get
            {
                long? rows = _input.GetRowCount();
                return _online is { } on ? on.StepsPerEpoch(rows, _o.BatchSize) : rows is long r ? (r + _o.BatchSize - 1) / _o.BatchSize : null;
            }
        }

        /// <summary>
        /// Online adversarial training (Eq. 11 as the offline mode): when due, the attacked rows are regenerated against
        /// the network being trained, and the epoch draws batches of <see cref="SegmentationTrainerOptions.BatchSize"/>
        /// from the pool of real and attacked rows, weighted 1/N_real and 1/N_aug.
        /// </summary>
        public override void OnEpochStarted(TrainingState state)
        {
            _online?.OnEpochStarted(state.Epoch, () => new OnlineAugmentationRequest(_ctx, _net!, _net!.call, _input, _o.ImageColumn, _o.MaskColumn,
                _o.BatchSize, _device, state.Epoch, state.CancellationToken), _input, _o.ImageColumn, _o.MaskColumn, _o.SampleWeightColumn, _device);
        }

        internal override IEnumerable<DataBatch> Batches(TrainingState state)
        {
            var o = _o;
            _net!.train();
            _mixed?.Compute.train();
            var rand = new Random((int)(MedSegContext.MixSeed(_seed, "shuffle", state.Epoch) & 0x7FFFFFFF));
            if (_online?.Pool is { } pool)
                return pool.GetBatches([o.ImageColumn, o.MaskColumn, OnlineAttackPool.FlagColumn], o.BatchSize, rand, _device, cancellationToken: state.CancellationToken);
            string[] columns = o.SampleWeightColumn is { } wc ? [o.ImageColumn, o.MaskColumn, wc] : [o.ImageColumn, o.MaskColumn];
            return _input.GetBatches(columns, o.BatchSize, rand, _device, cancellationToken: state.CancellationToken);
        }

        internal override StepResult Step(DataBatch batch, TrainingState state)
        {
            var o = _o;
            var net = _net!;
            var opt = _optimizer!;
            var x = batch[o.ImageColumn];
            var y = batch[o.MaskColumn];
            Tensor? w = null;
            if (_online?.Pool is not null) w = SampleWeights.FromBatch(batch, OnlineAttackPool.FlagColumn, SampleWeightMode.IsAugmentedFlag, _device);
            else if (o.SampleWeightColumn is { } wc) w = SampleWeights.FromBatch(batch, wc, o.SampleWeightMode, _device);
            if (x.shape[0] == 1 && _hasBatchNorm)
            {
                // One image through BatchNorm in training mode: at a 1×1 bottleneck the batch statistics are a
                // single value, the running variance turns NaN and the model predicts NaN (PyTorch refuses such a
                // batch). Leave it out, as drop_last would.
                return StepResult.Skip($"a training batch of one image ({_input.GetRowCount()} rows, batch size {o.BatchSize}): BatchNorm cannot train on one image — a network with BatchNorm needs batches of at least 2 images");
            }
            (x, y) = Augment(x, y);
            opt.ZeroGrad();
            if (o.ChannelsLast && x.dim() == 4) x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
            var model = (SegmentationNetwork?)_mixed?.Compute ?? net;
            if (_mixed is null)
            {
                var loss = _loss.Compute(model.call(x), y, w);
                double value = loss.DoubleValue();
                if (!double.IsFinite(value)) return new StepResult(value, batch.Count);
                loss.backward();
                opt.step();
                return new StepResult(value, batch.Count);
            }
            using (_mixed.ComputeScope())
            {
                var logits = model.call(x.to(_mixed.ComputeType)).to(ScalarType.Float32);
                var loss = _loss.Compute(logits, y, w);
                double value = loss.DoubleValue();
                if (!double.IsFinite(value)) return new StepResult(value, batch.Count);
                _mixed.Scale(loss).backward();
                if (_mixed.TakeGradients()) opt.step();
                _mixed.PushWeights();
                return new StepResult(value, batch.Count);
            }
        }

        public override void OnEpochCompleted(TrainingState state, EpochSummary epoch) => _scheduler?.step();

        private (Tensor x, Tensor y) Augment(Tensor x, Tensor y)
        {
            foreach (var a in _augmentations) (x, y) = a.Apply(x, y, _generator!);
            return (x, y);
        }

        private double Validate(IDataView data)
        {
            var o = _o;
            var net = _net!;
            var eval = o.Network.Classes == 1
                ? SegmentationEvaluator.Binary(new EvaluationOptions { ComputeHd95 = false })
                : SegmentationEvaluator.MultiClass((int)o.Network.Classes, new EvaluationOptions { ComputeHd95 = false });
            net.eval();
            try
            {
                foreach (var batch in data.GetBatches([o.ImageColumn, o.MaskColumn], o.ValidationBatchSize, null, _device, cancellationToken: _ct))
                {
                    using var scope = torch.NewDisposeScope();
                    using var mode = torch.inference_mode();
                    var p = SegmentationTransformer.ProbabilitiesOf(net, batch[o.ImageColumn], false);
                    eval.Add(p, batch[o.MaskColumn]);
                }
            }
            finally { net.train(); }
            if (eval.Count == 0) throw new InvalidOperationException($"{SegmentationTrainer.Name}: the validation data has no rows");
            return eval.GetResult().MeanDice;
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
            _mixed?.PushWeights();
            c.Load("opt", _optimizer!);
            c.Load("rng", _generator!);
        }

        public override void OnStarted(TrainingState state)
        {
            if (state.ResumedEpochs == 0 || _scheduler is null) return;
            // The restored optimizer state carries the last epoch's rate, but the schedulers are new and step from the
            // group's current rate (PyTorch's recursive forms): start from the rates the original run had when its
            // schedulers were made, and replay its chain of steps, so the rates are the same bit for bit.
            var groups = _optimizer!.ParamGroups.ToArray();
            for (int i = 0; i < groups.Length; i++) groups[i].LearningRate = _ratesAtStart[i];
            for (int e = 0; e < state.ResumedEpochs; e++) _scheduler.step();
        }

        private static LRScheduler? CreateScheduler(Optimizer opt, SegmentationTrainerOptions o)
        {
            int w = o.WarmupEpochs;
            LRScheduler? main = o.Schedule switch
            {
                LearningRateSchedule.Cosine => torch.optim.lr_scheduler.CosineAnnealingLR(opt, Math.Max(1, o.Epochs - w), o.MinLearningRate),
                LearningRateSchedule.Step => torch.optim.lr_scheduler.StepLR(opt, o.StepSize, o.StepGamma),
                _ => null,
            };
            if (w == 0) return main;
            var warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor: 1.0 / (w + 1), end_factor: 1.0, total_iters: w);
            return main is null ? warm : torch.optim.lr_scheduler.SequentialLR(opt, [warm, main], [w]);
        }

        private object OptionsFingerprint()
        {
            var o = _o;
            return new
            {
                Network = o.Network, o.ImageColumn, o.MaskColumn, o.SampleWeightColumn, o.SampleWeightMode, o.Loss, o.Optimizer,
                o.LearningRate, o.WeightDecay, o.Schedule, o.WarmupEpochs, o.MinLearningRate, o.StepSize, o.StepGamma, o.Precision, o.ChannelsLast,
                o.BatchSize, Seed = _seed.ToString(CultureInfo.InvariantCulture),
                Augmentations = string.Join("+", _augmentations.Select(a => a.Name)), Validation = o.ValidationData is not null,
                OnlineAttack = o.OnlineAttack is { } oa ? JsonSerializer.SerializeToNode(oa, oa.GetType()) : null,
            };
        }

        public void Dispose()
        {
            _validation?.Dispose();
            _online?.Dispose();
            _mixed?.Dispose();
            _net?.Dispose();
            _optimizer?.Dispose();
            _generator?.Dispose();
        }
    }
}
