using System.Globalization;
using MLNetMedSeg.Core;
using MLNetMedSeg.Core.Training;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>
/// Trains cDAL (paper 003, Algorithm 1) as a segmentation stage: per batch one discriminator update and one generator
/// update (<see cref="CdalTrainingStep"/>), through the shared <see cref="TrainingLoop"/> (progress, cancellation, NaN
/// → <see cref="TrainingDivergedException"/>, checkpoint/resume). Both learning rates follow the public code's cosine
/// annealing per epoch (<see cref="CdalTrainerOptions.CosineSchedule"/>). With validation data the K-sample prediction's
/// per-image mDice is computed after every epoch (<see cref="ValidationHandler"/>: best generator weights, early
/// stopping). Initial weights, batch orders, timesteps, noises and latents all come from seeds derived from the
/// context's seed and the stage name (fixed when the trainer is created): training is deterministic on the CPU, and a
/// run resumed from its checkpoint gives the same model bit for bit. The fitted <see cref="CdalTransformer"/> keeps
/// only the generator.
/// </summary>
public sealed class CdalTrainer : Microsoft.ML.IEstimator<CdalTransformer>, Pipeline.IEngineEstimator<CdalTransformer>
{
    Data.DataViewSchema Pipeline.IEngineEstimator<CdalTransformer>.GetOutputSchema(Data.DataViewSchema inputSchema) => GetOutputSchema(inputSchema);

    CdalTransformer Pipeline.IEngineEstimator<CdalTransformer>.Fit(Data.IDataView input, CancellationToken cancellationToken) => Fit(input, cancellationToken);

    internal const string Name = "CdalTrainer";
    private readonly MedSegContext _context;
    private readonly CdalTrainerOptions _options;
    private readonly ulong _seed;

    /// <param name="context">Seed, device, progress, log.</param>
    /// <param name="options">The options (copied; validated now).</param>
    internal CdalTrainer(MedSegContext context, CdalTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Clone();
        _options.Validate();
        _context = context;
        _seed = context.DeriveSeed(Name);
        _options.SamplingSeed ??= MedSegContext.MixSeed(_seed, "sampling", 0);
    }

    /// <summary>The options (a copy; <see cref="CdalTrainerOptions.SamplingSeed"/> resolved).</summary>
    public CdalTrainerOptions Options => _options.Clone();

    /// <summary>
    /// ML.NET: trains on an ML.NET data view (images as <c>MLImage</c> or float vectors [C,H,W], square; masks as float
    /// vectors [1,H,W] in {0,1}, or int64 [H,W] class indices for a multi-class model). The columns are checked first,
    /// before any row is read (a missing or wrongly typed column is a <see cref="SchemaException"/> naming it).
    /// </summary>
    /// <remarks>
    /// After a mask diffusion and an image diffusion in a chain (augmenters, see <see cref="IAugmentedTrainingInput"/>),
    /// trains on the real rows plus the generated pairs, the generator's per-row loss weighted with Eq. 11 (mean over
    /// the real rows + mean over the generated rows of each batch; see <see cref="CdalTrainerOptions.OnlineAttack"/>).
    /// With adversarial training in the chain (<c>ml.MedSeg().Augmentation.AdversarialTraining</c>), the generated pairs
    /// are attacked against the generator being trained every n epochs (<see cref="CdalTrainerOptions.OnlineAttack"/>)
    /// and each epoch trains on the real rows plus the current attacked pairs.
    /// </remarks>
    public CdalTransformer Fit(Microsoft.ML.IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input is not IAugmentedTrainingInput a)
            return Core.MLNet.MLNetData.Fit(input, GetOutputSchema, data => Fit(data, CancellationToken.None));
        return Core.MLNet.MLNetData.Fit(a.Input, GetOutputSchema, real => FitAugmented(a, real));
    }

    private CdalTransformer FitAugmented(IAugmentedTrainingInput a, IDataView real) =>
        AugmentedFit.Run(a, real, Name, _context, _options.ImageColumn, _options.MaskColumn,
            plain: rows => Fit(rows, CancellationToken.None),
            online: (rows, attack) =>
            {
                var o = _options.Clone();
                o.OnlineAttack = attack;
                return FitOptions(o, rows, CancellationToken.None);
            },
            pooled: joint =>
            {
                var o = _options.Clone();
                o.AugmentedFlagColumn = AugmentedFit.FlagColumn;
                return FitOptions(o, joint, CancellationToken.None);
            },
            checkPairs: () =>
            {
                if (_options.Cdal.Classes != 1)
                    throw new InvalidOperationException($"{Name}: the chain's generated pairs have binary masks, and this cDAL model has {_options.Cdal.Classes} classes");
            });

    /// <summary>
    /// ML.NET: trains on <paramref name="trainData"/> and scores <paramref name="validationData"/> after every epoch
    /// (mDice of the K-sample prediction; the best epoch's generator is kept with
    /// <see cref="CdalTrainerOptions.RestoreBestCheckpoint"/>). The validation rows are read once into memory.
    /// </summary>
    public CdalTransformer Fit(Microsoft.ML.IDataView trainData, Microsoft.ML.IDataView validationData)
    {
        ArgumentNullException.ThrowIfNull(trainData);
        ArgumentNullException.ThrowIfNull(validationData);
        Core.MLNet.MLNetData.CheckSchema(validationData.Schema, GetOutputSchema);
        return Core.MLNet.MLNetData.Fit(trainData, GetOutputSchema, train =>
        {
            using var validation = CachedDataView.Create(Core.MLNet.MLNetData.AsLibraryView(validationData));
            var o = _options.Clone();
            o.ValidationData = validation;
            return FitWith(o, train, CancellationToken.None);
        });
    }

    /// <summary>ML.NET schema propagation: checks the columns this stage reads (naming a missing or wrong one) before any training.</summary>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema) =>
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, GetOutputSchema);

    /// <summary>Checks the image and mask columns; returns the fitted transformer's output schema.</summary>
    internal DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var (h, _) = CheckTrainingSchema(inputSchema, _options);
        var m = ModelOptions(_options, h > 0 ? (int)h : _options.Cdal.ImageSize);
        return CdalTransformer.OutputSchema(inputSchema, m);
    }

    private static CdalModelOptions ModelOptions(CdalTrainerOptions o, int imageSize)
    {
        var cdal = o.Cdal.Clone();
        cdal.ImageSize = imageSize;
        return new CdalModelOptions
        {
            Cdal = cdal, ImageColumn = o.ImageColumn, ProbabilityColumn = o.ProbabilityColumn, PredictedColumn = o.PredictedColumn,
            SamplingSeed = o.SamplingSeed ?? 0, BatchSize = o.PredictionBatchSize,
        };
    }

    /// <summary>Checks the image (square, C channels) and mask columns; returns the image's (H, W) (−1 when they vary).</summary>
    private static (long h, long w) CheckTrainingSchema(DataViewSchema schema, CdalTrainerOptions o)
    {
        var (h, w) = SegmentationTransformer.CheckImage(schema, o.ImageColumn, o.Cdal.ImageChannels, Name);
        if (h >= 0 && w >= 0 && h != w)
            throw new SchemaException($"{Name}: column '{o.ImageColumn}' is {h}×{w}; cDAL trains on square images (its discriminator's depth and the attention scale follow the side): resize them", o.ImageColumn);
        var mc = schema.GetColumnOrNull(o.MaskColumn) ?? throw new SchemaException(
            $"{Name}: column '{o.MaskColumn}' was not found; the data has columns: {string.Join(", ", schema.Select(c => c.Name))}", o.MaskColumn);
        bool binary = o.Cdal.Classes == 1;
        var expected = binary ? TensorColumnType.BinaryMask(h, w) : TensorColumnType.ClassMask(h, w);
        if (mc.Type is not TensorColumnType mt || mt.DType != expected.DType || mt.Shape.Length != expected.Shape.Length ||
            mt.Shape.Zip(expected.Shape).Any(d => d.First >= 0 && d.Second >= 0 && d.First != d.Second))
            throw new SchemaException(
                $"{Name}: column '{o.MaskColumn}' has type {mc.Type} but {(binary ? "a binary model (Classes = 1) needs a binary mask" : $"a {o.Cdal.Classes}-class model needs a class-index mask")} {expected}", o.MaskColumn);
        return (h, w);
    }

    /// <summary>
    /// Trains (or resumes from <see cref="CdalTrainerOptions.CheckpointFolder"/>) and returns the fitted model. Throws
    /// <see cref="SchemaException"/> before any work on a bad schema, <see cref="ArgumentException"/> when the model's
    /// options do not fit the image size (e.g. the attention scale), <see cref="TrainingDivergedException"/> on a
    /// NaN/infinite loss, <see cref="OperationCanceledException"/> when cancelled (the last completed epoch's checkpoint
    /// stays in the folder).
    /// </summary>
    internal CdalTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        return FitOptions(_options, input, cancellationToken);
    }

    /// <summary>Fits with <paramref name="options"/> (same seed and context), reading their ML.NET validation set first.</summary>
    private CdalTransformer FitOptions(CdalTrainerOptions options, IDataView input, CancellationToken cancellationToken)
    {
        if (options.ValidationData is not null || options.ValidationSet is not { } set) return FitWith(options, input, cancellationToken);
        // The ML.NET validation set of the options (a chain's trainer): checked, then read once into memory.
        Core.MLNet.MLNetData.CheckValidationSet(set.Schema, Name, s => { CheckTrainingSchema(s, options); return s; });
        using var validation = CachedDataView.Create(Core.MLNet.MLNetData.AsLibraryView(set), cancellationToken);
        var o = options.Clone();
        o.ValidationData = validation;
        return FitWith(o, input, cancellationToken);
    }

    private CdalTransformer FitWith(CdalTrainerOptions options, IDataView input, CancellationToken cancellationToken)
    {
        var (h, _) = CheckTrainingSchema(input.Schema, options);
        if (options.ValidationData is { } vd) CheckTrainingSchema(vd.Schema, options);
        if (options.AugmentedFlagColumn is { } fc) input.Schema.Require(fc, NumberColumnType.Instance, Name);
        if (!input.CanShuffle) throw new InvalidOperationException($"{Name}: the training data cannot be shuffled; cache it first (ml.Data.Cache)");
        cancellationToken.ThrowIfCancellationRequested();
        var o = options.Clone();
        o.Cdal.ImageSize = h > 0 ? (int)h : FirstImageSide(input, o.ImageColumn);
        try { o.Cdal.Validate(); }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{Name}: the model options do not fit {o.Cdal.ImageSize} px training images: {e.Message}", e.ParamName, e);
        }
        using var run = new Run(_context, o, _seed, input, cancellationToken);
        return run.Execute();
    }

    private static int FirstImageSide(IDataView input, string column)
    {
        using var cur = input.GetRowCursor([input.Schema[column]]);
        if (!cur.MoveNext()) throw new InvalidOperationException($"{Name}: the training data has no rows");
        var t = (Tensor)cur.GetValue(input.Schema[column]);
        if (t.size(1) != t.size(2))
            throw new SchemaException($"{Name}: column '{column}' holds a {t.size(1)}×{t.size(2)} image; cDAL trains on square images: resize them", column);
        return (int)t.size(1);
    }

    /// <summary>
    /// One Fit call: generator, discriminator, the training step (with its two Adam optimisers), the two cosine
    /// schedules and the training generator, run by the shared <see cref="TrainingLoop"/>. Disposes everything it made
    /// except the returned generator.
    /// </summary>
    private sealed class Run : TrainingProcess, IDisposable
    {
        private const string ValidationMetric = "val mDice";
        private readonly MedSegContext _ctx;
        private readonly CdalTrainerOptions _o;
        private readonly ulong _seed;
        private readonly IDataView _input;
        private readonly CancellationToken _ct;
        private readonly Device _device;
        private CdalGeneratorNetwork? _g;
        private CdalDiscriminatorNetwork? _d;
        private CdalTrainingStep? _step;
        private LRScheduler? _schedG, _schedD;
        private Generator? _rng;
        private ValidationHandler? _validation;
        private OnlineAttackPool? _online;

        public Run(MedSegContext ctx, CdalTrainerOptions o, ulong seed, IDataView input, CancellationToken ct)
        {
            _ctx = ctx;
            _o = o;
            _seed = seed;
            _input = input;
            _ct = ct;
            _device = ctx.Device;
        }

        public override string Name => "cdal";

        public CdalTransformer Execute()
        {
            var o = _o;
            var cdal = o.Cdal;
            using (var initGen = new Generator(MedSegContext.MixSeed(_seed, "init", 0)))
            {
                _g = new CdalGeneratorNetwork(cdal, initGen);
                _d = new CdalDiscriminatorNetwork(cdal, initGen);
            }
            _g.MoveTo(_device);
            _d.MoveTo(_device);
            _rng = new Generator(MedSegContext.MixSeed(_seed, "train", 0));   // timesteps, noises, latents (CPU: the same draws on any device)
            _g.DropoutGenerator = _rng;
            _step = new CdalTrainingStep(cdal, _g, _d);
            if (o.OnlineAttack is { } online)
            {
                _online = new OnlineAttackPool(online, _seed);
                _ctx.WriteLog(LogLevel.Info, CdalTrainer.Name, $"online attack against the generator being trained: {online.Description}");
            }
            if (o.CosineSchedule)
            {
                _schedG = torch.optim.lr_scheduler.CosineAnnealingLR(_step.GeneratorOptimizer, o.Epochs, Math.Min(o.MinLearningRate, cdal.GeneratorLearningRate));
                _schedD = torch.optim.lr_scheduler.CosineAnnealingLR(_step.DiscriminatorOptimizer, o.Epochs, Math.Min(o.MinLearningRate, cdal.DiscriminatorLearningRate));
            }

            var loop = new TrainingLoop(_ctx, CdalTrainer.Name, o.Epochs)
            {
                CheckpointFolder = o.CheckpointFolder,
                Fingerprint = OptionsFingerprint(),
                EpochCompleted = o.EpochCompleted is { } callback ? e => callback(Record(e)) : null,
            };
            if (o.ValidationData is { } vd)
            {
                _validation = new ValidationHandler(ValidationMetric, _g, _ => Validate(vd))
                {
                    RestoreBest = o.RestoreBestCheckpoint, Patience = o.EarlyStoppingPatience,
                };
                loop.Handlers.Add(_validation);
            }
            var state = loop.Run(this, _ct);

            var model = ModelOptions(o, cdal.ImageSize);
            var g = _g;
            g.DropoutGenerator = null;   // the generator is disposed with this run
            _g = null;                   // the transformer owns it now
            try { return new CdalTransformer(_ctx, model, g, state.History.Select(Record).ToList()); }
            catch { g.Dispose(); throw; }
        }

        private static CdalEpochRecord Record(EpochSummary e) =>
            new(e.Epoch, e.Loss, e.Term("D") ?? double.NaN, e.Metric(ValidationMetric), e.LearningRate ?? double.NaN, e.Seconds);

        public override double? LearningRate => _step?.GeneratorOptimizer.LearningRate();

        public override long? StepsPerEpoch
        {
            get
            {
                long? rows = _input.GetRowCount();
                return _online is { } on ? on.StepsPerEpoch(rows, _o.BatchSize) : rows is long r ? (r + _o.BatchSize - 1) / _o.BatchSize : null;
            }
        }

        /// <summary>
        /// Online adversarial training: when due (every EveryEpochs epochs from epoch 1, and at a resumed run's first
        /// epoch — the rows are not in checkpoints), the rows are attacked against the generator being trained through
        /// its seeded, differentiable Algorithm-2 prediction (the augmenter puts it in eval mode and restores its modes),
        /// then pooled with the real rows (flagged for Eq. 11).
        /// </summary>
        public override void OnEpochStarted(TrainingState state)
        {
            if (_online is not { } on) return;
            var g = _g!;
            OnlineAugmentationRequest Request()
            {
                var sampler = new CdalSampler(_o.Cdal, g);
                ulong samplingSeed = _o.SamplingSeed ?? 0;
                return new OnlineAugmentationRequest(_ctx, g, x => CdalTransformer.SeededLogits(sampler, samplingSeed, x, _device),
                    _input, _o.ImageColumn, _o.MaskColumn, _o.BatchSize, _device, state.Epoch, state.CancellationToken);
            }
            on.OnEpochStarted(state.Epoch, Request, _input, _o.ImageColumn, _o.MaskColumn, _o.AugmentedFlagColumn, _device);
            g.train();
        }

        internal override IEnumerable<DataBatch> Batches(TrainingState state)
        {
            var rand = new Random((int)(MedSegContext.MixSeed(_seed, "shuffle", state.Epoch) & 0x7FFFFFFF));
            var o = _o;
            if (_online?.Pool is { } pool)
                return pool.GetBatches([o.ImageColumn, o.MaskColumn, OnlineAttackPool.FlagColumn], o.BatchSize, rand, _device, cancellationToken: state.CancellationToken);
            string[] columns = o.AugmentedFlagColumn is { } fc ? [o.ImageColumn, o.MaskColumn, fc] : [o.ImageColumn, o.MaskColumn];
            return _input.GetBatches(columns, o.BatchSize, rand, _device, cancellationToken: state.CancellationToken);
        }

        internal override StepResult Step(DataBatch batch, TrainingState state)
        {
            // Eq. 11 on the generator's per-row loss: 1/N_real for the batch's real rows, 1/N_aug for its augmented ones.
            string? flag = _online?.Pool is not null ? OnlineAttackPool.FlagColumn : _o.AugmentedFlagColumn;
            using var w = flag is null ? null : Losses.SampleWeights.FromBatch(batch, flag, Losses.SampleWeightMode.IsAugmentedFlag, _device);
            var l = _step!.Step(batch[_o.ImageColumn], batch[_o.MaskColumn], _rng!, state.Epoch, w);
            var terms = new Dictionary<string, double>(StringComparer.Ordinal)
            {
                ["D"] = l.Discriminator, ["D real"] = l.DiscriminatorReal, ["D fake"] = l.DiscriminatorFake, ["R1"] = l.R1Penalty,
            };
            if (_o.Cdal.AdversarialWeight > 0) terms["G adv"] = l.GeneratorAdversarial;
            return new StepResult(l.Generator, batch.Count, terms);
        }

        public override void OnStarted(TrainingState state)
        {
            if (state.ResumedEpochs == 0 || _schedG is null) return;
            // The restored optimizer states carry the last epoch's rates, but the schedules are new and step from the
            // group's current rate (the recursive cosine form): start both from the initial rates and replay the
            // original run's chain of steps, so that the rates are the same bit for bit.
            foreach (var pg in _step!.GeneratorOptimizer.ParamGroups) pg.LearningRate = _o.Cdal.GeneratorLearningRate;
            foreach (var pg in _step.DiscriminatorOptimizer.ParamGroups) pg.LearningRate = _o.Cdal.DiscriminatorLearningRate;
            for (int e = 0; e < state.ResumedEpochs; e++)
            {
                _schedG?.step();
                _schedD?.step();
            }
        }

        public override void OnEpochCompleted(TrainingState state, EpochSummary epoch)
        {
            _schedG?.step();
            _schedD?.step();
        }

        /// <summary>Per-image mDice of the K-sample prediction (images seeded by their index in the validation data: the same draws every epoch).</summary>
        private double Validate(IDataView data)
        {
            var o = _o;
            var g = _g!;
            var sampler = new CdalSampler(o.Cdal, g);
            var eval = o.Cdal.Classes == 1
                ? SegmentationEvaluator.Binary(new EvaluationOptions { ComputeHd95 = false })
                : SegmentationEvaluator.MultiClass(o.Cdal.Classes, new EvaluationOptions { ComputeHd95 = false });
            long seed = unchecked((long)MedSegContext.MixSeed(_seed, "validation", 0));
            long index = 0;
            foreach (var batch in data.GetBatches([o.ImageColumn, o.MaskColumn], o.ValidationBatchSize, null, _device, cancellationToken: _ct))
            {
                using var scope = torch.NewDisposeScope();
                var x = batch[o.ImageColumn];
                var p = sampler.PredictProbability(x, seed, index);
                eval.Add(p, batch[o.MaskColumn]);
                index += x.size(0);
            }
            if (eval.Count == 0) throw new InvalidOperationException($"{CdalTrainer.Name}: the validation data has no rows");
            return eval.GetResult().MeanDice;
        }

        public override void SaveState(CheckpointState c)
        {
            c.Put("generator", _g!);
            c.Put("discriminator", _d!);
            c.Put("optG", _step!.GeneratorOptimizer);
            c.Put("optD", _step.DiscriminatorOptimizer);
            c.Put("rng", _rng!);
            c.PutValue("steps", _step.StepsTaken);
        }

        public override void LoadState(CheckpointState c)
        {
            c.Load("generator", _g!);
            c.Load("discriminator", _d!);
            c.Load("optG", _step!.GeneratorOptimizer);
            c.Load("optD", _step.DiscriminatorOptimizer);
            c.Load("rng", _rng!);
            _step.StepsTaken = c.Value<long>("steps");
        }

        private object OptionsFingerprint() => new
        {
            Options = TrainingLoop.OptionsFingerprint(_o, nameof(CdalTrainerOptions.Epochs), nameof(CdalTrainerOptions.PredictionBatchSize),
                nameof(CdalTrainerOptions.ValidationBatchSize), nameof(CdalTrainerOptions.EarlyStoppingPatience)),
            Epochs = _o.CosineSchedule ? _o.Epochs : (int?)null,   // the cosine schedule's period
            Seed = _seed.ToString(CultureInfo.InvariantCulture),
            Validation = _o.ValidationData is not null,
            _o.AugmentedFlagColumn,
            OnlineAttack = _o.OnlineAttack is { } oa ? System.Text.Json.JsonSerializer.SerializeToNode(oa, oa.GetType()) : null,
        };

        public void Dispose()
        {
            _validation?.Dispose();
            _online?.Dispose();
            _step?.Dispose();
            _g?.Dispose();
            _d?.Dispose();
            _rng?.Dispose();
        }
    }
}
