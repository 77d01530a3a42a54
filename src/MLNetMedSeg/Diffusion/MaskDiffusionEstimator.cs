using MLNetMedSeg.Core;
using System.Diagnostics;
using System.Globalization;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;

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
public sealed class MaskDiffusionEstimator : IEstimator<MaskDiffusionTransformer>, Microsoft.ML.IEstimator<MaskDiffusionTransformer>
{
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

    private const string Name = "MaskDiffusion";
    private readonly MedSegContext _context;
    private readonly MaskDiffusionOptions _options;
    private readonly ulong _seed;

    /// <param name="context">Seed, device, progress, log.</param>
    /// <param name="options">The options (copied; validated now).</param>
    public MaskDiffusionEstimator(MedSegContext context, MaskDiffusionOptions options)
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
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
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
    public MaskDiffusionTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        var (_, _, c) = CheckTrainingSchema(input.Schema);
        if (!input.CanShuffle) throw new InvalidOperationException($"{Name}: the training data cannot be shuffled; cache it first (ctx.Data.Cache)");
        cancellationToken.ThrowIfCancellationRequested();
        using var run = new Run(this, input, c, cancellationToken);
        return run.Execute();
    }

    /// <summary>The state of one Fit call; disposes everything it made except the returned network.</summary>
    private sealed class Run(MaskDiffusionEstimator owner, IDataView input, long conditionChannels, CancellationToken ct) : IDisposable
    {
        private readonly MaskDiffusionOptions _o = owner._options;
        private readonly MedSegContext _ctx = owner._context;
        private readonly Device _device = owner._context.Device;
        private readonly BernoulliDiffusion _process = new(owner._options.Schedule, owner._options.Steps, owner._options.Parameterization);
        private DiffusionUNet? _net, _emaNet;
        private ExponentialMovingAverage? _ema;
        private Adam? _optimizer;
        private Generator? _generator;

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
            _generator = new Generator(MedSegContext.MixSeed(owner._seed, "noise", 0), _device);
            _net.DropoutGenerator = _generator;
            _ema = new ExponentialMovingAverage(_net, o.EmaDecay);
            _optimizer = torch.optim.Adam(_net.parameters(), lr: o.LearningRate);

            long rows = input.GetRowCount() ?? input.CountRows();
            if (rows == 0) throw new InvalidOperationException($"{Name}: the training data has no rows");
            long stepsPerEpoch = (rows + o.BatchSize - 1) / o.BatchSize;
            var tracker = new ProgressTracker(_ctx, Name, o.Epochs, stepsPerEpoch, ct);
            var history = new List<MaskDiffusionEpochRecord>();
            string[] columns = o.ConditionColumn is { } cc ? [o.MaskColumn, cc] : [o.MaskColumn];
            (int h, int w) size = (0, 0);
            for (int epoch = 1; epoch <= o.Epochs; epoch++)
            {
                var sw = Stopwatch.StartNew();
                var (loss, bce, kl) = TrainEpoch(epoch, columns, tracker, ref size);
                if (o.SampleGridFolder is { } folder && o.SampleGridEvery > 0 && epoch % o.SampleGridEvery == 0 && epoch < o.Epochs)
                    WriteGrid(folder, $"epoch-{epoch:D4}.png", size, input);
                var rec = new MaskDiffusionEpochRecord(epoch, loss, bce, kl, sw.Elapsed.TotalSeconds);
                history.Add(rec);
                _ctx.WriteLog(LogLevel.Info, Name, string.Create(CultureInfo.InvariantCulture,
                    $"epoch {epoch}/{o.Epochs}: loss {loss:G5} (BCE {bce:G5}{(kl is double k ? $", KL {k:G5}" : "")}), {rec.Seconds:F1} s"));
                tracker.EndEpoch();
                o.EpochCompleted?.Invoke(rec);
            }

            _ema.CopyTo(_emaNet);
            var model = owner.ModelOptions(size.h, size.w, c);
            var net = _emaNet;
            _emaNet = null; // the transformer owns it now
            MaskDiffusionTransformer result;
            try { result = new MaskDiffusionTransformer(_ctx, model, net, history); }
            catch { net.Dispose(); throw; }
            if (o.SampleGridFolder is { } f)
            {
                try { WriteGrid(f, "final.png", size, input, result); }
                catch { result.Dispose(); throw; }
            }
            return result;
        }

        private long FirstConditionChannels()
        {
            using var cur = input.GetRowCursor([input.Schema[_o.ConditionColumn!]]);
            if (!cur.MoveNext()) return 0;
            return cur.GetTensor(_o.ConditionColumn!).size(0);
        }

        private (double loss, double bce, double? kl) TrainEpoch(int epoch, string[] columns, ProgressTracker tracker, ref (int h, int w) size)
        {
            var o = _o;
            var net = _net!;
            var opt = _optimizer!;
            net.train();
            var rand = new Random((int)(MedSegContext.MixSeed(owner._seed, "shuffle", epoch) & 0x7FFFFFFF));
            double sumLoss = 0, sumBce = 0, sumKl = 0;
            long steps = 0;
            foreach (var batch in input.GetBatches(columns, o.BatchSize, rand, _device, cancellationToken: ct))
            {
                using var scope = torch.NewDisposeScope();
                var y0 = batch[o.MaskColumn];
                CheckMasks(y0, epoch, steps + 1);
                if (size.h == 0) size = ((int)y0.size(2), (int)y0.size(3));
                else if (y0.size(2) != size.h || y0.size(3) != size.w)
                    throw new InvalidOperationException($"{Name}: masks in column '{o.MaskColumn}' vary in size ({size.h}×{size.w} and {y0.size(2)}×{y0.size(3)}); resize them first");
                Tensor? cond = o.ConditionColumn is { } cc ? batch[cc] : null;
                int n = (int)y0.size(0);
                var t = _process.SampleTimesteps(n, _generator, _device);
                var yt = _process.ForwardSample(y0, t, _generator);
                opt.ZeroGrad();
                var logits = net.call(yt, t, cond);
                var terms = _process.Loss(y0, yt, t, logits, o.KlWeight);
                double value = terms.Total.ToDouble();
                steps++;
                if (!double.IsFinite(value))
                    throw new TrainingDivergedException(
                        $"{Name}: the loss is {value.ToString(CultureInfo.InvariantCulture)} at epoch {epoch}, step {steps} (batch of {n} masks, lr {o.LearningRate.ToString("G3", CultureInfo.InvariantCulture)}); training diverged — lower the learning rate or check the masks",
                        epoch, steps);
                terms.Total.backward();
                opt.step();
                var ema = _ema!;
                ema.Update(net, o.EmaWarmup);
                sumLoss += value;
                sumBce += terms.Bce.ToDouble();
                if (terms.Kl is { } kl) sumKl += kl.ToDouble();
                tracker.Step(value, n);
            }
            if (steps == 0) throw new InvalidOperationException($"{Name}: the training data has no rows");
            return (sumLoss / steps, sumBce / steps, o.KlWeight > 0 ? sumKl / steps : null);
        }

        private void CheckMasks(Tensor y0, int epoch, long step)
        {
            using var scope = torch.NewDisposeScope();
            bool binary = y0.eq(0).logical_or(y0.eq(1)).all().ToBoolean();
            if (!binary)
                throw new InvalidOperationException(
                    $"{Name}: column '{_o.MaskColumn}' holds values other than 0 and 1 (epoch {epoch}, batch {step}); binarize the masks first (ctx.Data.BinarizeMask)");
        }

        /// <summary>A grid of SampleGridCount masks from the current EMA weights (or the fitted model), same seeds every time.</summary>
        private void WriteGrid(string folder, string file, (int h, int w) size, IDataView data, MaskDiffusionTransformer? fitted = null)
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
                var gens = Enumerable.Range(0, count).Select(i => new Generator(MedSegContext.MixSeed(owner._seed, "grid", i), _device)).ToArray();
                try { masks = sampler.Sample((yt, ts) => _emaNet!.call(yt, ts, cond), gens, [1, size.h, size.w], o.FinalStep, _device, ct); }
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

/// <summary>The mask diffusion stage on <c>ctx.Generation</c>.</summary>
public static class MaskDiffusionCatalogExtensions
{
    /// <summary>
    /// A Bernoulli mask diffusion estimator (DASP §3.1; see <see cref="MaskDiffusionOptions"/> for the defaults): fit it on
    /// a view with a binary "Mask" column; the fitted transformer adds k generated masks per row ("SyntheticMask").
    /// </summary>
    public static MaskDiffusionEstimator MaskDiffusion(this GenerationCatalog catalog, MaskDiffusionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new MaskDiffusionEstimator(catalog.Context, options ?? new MaskDiffusionOptions());
    }
}
