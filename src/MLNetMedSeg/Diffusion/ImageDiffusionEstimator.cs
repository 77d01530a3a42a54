using MLNetMedSeg.Augmentation;
using MLNetMedSeg.Core;
using MLNetMedSeg.Core.Training;
using System.Diagnostics;
using System.Globalization;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion;

/// <summary>
/// Trains the mask-conditioned image diffusion model of DASP §3.2: an ADM U-Net ε_φ(x_t, y, t) on images scaled to
/// [−1, 1] with the mask concatenated to x_t (as 2·y − 1), minimising Eq. 8 (‖ε − ε_φ‖², t uniform) with Adam and
/// keeping an EMA of the weights (with warm-up, see <see cref="ImageDiffusionOptions.EmaWarmup"/>), which is what the
/// fitted <see cref="ImageDiffusionTransformer"/> samples with and saves. Batches are shuffled every epoch (epoch e's
/// order from a Random seeded by the estimator's seed and e); initial weights, timesteps, noise, condition dropout and
/// dropout masks come from generators derived from the context's seed: training is deterministic on the CPU. Each step
/// runs in a dispose scope. Progress (epoch, step, loss, ETA) goes to the context; cancellation is honoured at every
/// step; a NaN/infinite loss throws <see cref="TrainingDivergedException"/>. With
/// <see cref="ImageDiffusionOptions.SampleGridFolder"/> set, grids of (mask | generated image) rows for the first
/// training masks are written as PNG every <see cref="ImageDiffusionOptions.SampleGridEvery"/> epochs
/// (<c>grid_epoch_NNN.png</c>) and after training (<c>grid_final.png</c>).
/// </summary>
public sealed class ImageDiffusionEstimator : Microsoft.ML.IEstimator<ImageDiffusionTransformer>, Pipeline.IEngineEstimator<ImageDiffusionTransformer>
{
    Data.DataViewSchema Pipeline.IEngineEstimator<ImageDiffusionTransformer>.GetOutputSchema(Data.DataViewSchema inputSchema) => GetOutputSchema(inputSchema);

    ImageDiffusionTransformer Pipeline.IEngineEstimator<ImageDiffusionTransformer>.Fit(Data.IDataView input, CancellationToken cancellationToken) => Fit(input, cancellationToken);

    /// <summary>
    /// ML.NET: trains on an ML.NET data view (images as <c>MLImage</c> or float vectors [C,H,W], masks as float vectors
    /// [1,H,W] or [H,W]; see <see cref="Core.MLNet.TensorColumns"/>). The columns are checked first, before any row is read (a missing or unreadable column
    /// is a <see cref="SchemaException"/> naming it); data that cannot be shuffled is then cached in memory for the
    /// fit (and released after it).
    /// </summary>
    public ImageDiffusionTransformer Fit(Microsoft.ML.IDataView input) =>
        Core.MLNet.MLNetData.Fit(input, TrainingSchema, data => Fit(data, CancellationToken.None));

    /// <summary>
    /// ML.NET schema propagation: checks the image and mask columns it trains on (naming a missing or wrong one) before
    /// any training, and adds <see cref="ImageDiffusionOptions.OutputColumn"/> when the condition column is there. The
    /// condition column may be missing at fit time: the fitted model is also used on masks that arrive later, e.g. a
    /// mask diffusion's generated masks (which travel to the trainer, not as a column).
    /// </summary>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema) =>
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, s => s.Contains(_options.ConditionColumn) ? GetOutputSchema(s) : TrainingSchema(s));

    private DataViewSchema TrainingSchema(DataViewSchema inputSchema)
    {
        CheckTrainingSchema(inputSchema, _options);
        return inputSchema;
    }

    internal const string Name = "ImageDiffusion";
    private readonly MedSegContext _context;
    private readonly ImageDiffusionOptions _options;
    private readonly ulong _seed;

    /// <param name="context">Seed, device, progress, log.</param>
    /// <param name="options">The options (copied; validated now).</param>
    internal ImageDiffusionEstimator(MedSegContext context, ImageDiffusionOptions options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Clone();
        _options.Validate();
        _context = context;
        _seed = context.DeriveSeed(Name);
        _options.SamplingSeed ??= MedSegContext.MixSeed(_seed, "sampling", 0);
    }

    /// <summary>The options (a copy; <see cref="ImageDiffusionOptions.SamplingSeed"/> resolved).</summary>
    public ImageDiffusionOptions Options => _options.Clone();

    /// <summary>Checks the image and mask columns; returns the fitted transformer's output schema.</summary>
    internal DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        CheckTrainingSchema(inputSchema, _options);
        var o = _options;
        var c = (TensorColumnType)inputSchema.RequireTensor(o.ConditionColumn, TensorColumnType.BinaryMask(), Name).Type;
        return new DataViewSchema.Builder(inputSchema)
            .AddColumn(o.OutputColumn, new TensorColumnType(ScalarType.Float32, [o.ImageChannels, c.Shape[1], c.Shape[2]]))
            .ToSchema();
    }

    private static (long h, long w) CheckTrainingSchema(DataViewSchema schema, ImageDiffusionOptions o)
    {
        var it = (TensorColumnType)schema.RequireTensor(o.ImageColumn, TensorColumnType.Image(), Name).Type;
        if (it.Shape[0] >= 0 && it.Shape[0] != o.ImageChannels)
            throw new SchemaException($"{Name}: column '{o.ImageColumn}' has {it.Shape[0]} channels ({it}) but ImageChannels is {o.ImageChannels}", o.ImageColumn);
        var mt = (TensorColumnType)schema.RequireTensor(o.MaskColumn, TensorColumnType.BinaryMask(), Name).Type;
        long f = 1L << (o.Network.Levels - 1);
        foreach (var (col, d) in new[] { (o.ImageColumn, it.Shape[1]), (o.ImageColumn, it.Shape[2]), (o.MaskColumn, mt.Shape[1]), (o.MaskColumn, mt.Shape[2]) })
            if (d >= 0 && d % f != 0)
                throw new SchemaException(
                    $"{Name}: column '{col}' is {d} px, not divisible by 2^(levels − 1) = {f} (Network.ChannelMultipliers has {o.Network.Levels} levels); resize the data", col);
        return (it.Shape[1], it.Shape[2]);
    }

    /// <summary>
    /// Trains and returns the fitted model. Throws <see cref="SchemaException"/> before any work on a bad schema,
    /// <see cref="TrainingDivergedException"/> on a NaN/infinite loss, <see cref="OperationCanceledException"/> when
    /// cancelled.
    /// </summary>
    internal ImageDiffusionTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        var (h, _) = CheckTrainingSchema(input.Schema, _options);
        if (!input.CanShuffle) throw new InvalidOperationException($"{Name}: the training data cannot be shuffled; cache it first (ml.Data.Cache)");
        cancellationToken.ThrowIfCancellationRequested();
        var o = _options.Clone();
        if (h > 0) o.Network.ImageSize = (int)h;
        else
        {
            // Variable sizes: take the first row's height for the attention levels.
            using var cur = input.GetRowCursor([input.Schema[o.ImageColumn]]);
            if (!cur.MoveNext()) throw new InvalidOperationException($"{Name}: the training data has no rows");
            o.Network.ImageSize = (int)((Tensor)cur.GetValue(input.Schema[o.ImageColumn])).size(1);
        }
        o.Network = o.ResolvedNetwork();
        try { o.Network.Validate(); }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{Name}: the network options do not fit {o.Network.ImageSize} px training images: {e.Message}", e.ParamName, e);
        }
        using var run = new Run(_context, o, _seed, input, cancellationToken);
        return run.Execute();
    }

    /// <summary>
    /// One Fit call, trained by the shared <see cref="TrainingLoop"/> with an <see cref="EmaHandler"/> and a sample-grid
    /// handler; disposes everything it made except the returned network.
    /// </summary>
    private sealed class Run(MedSegContext ctx, ImageDiffusionOptions o, ulong seed, IDataView input, CancellationToken ct)
        : GaussianTrainingRun(ctx, o.Network, o.Schedule, o.TimeSteps, o.LearningRate, o.EmaDecay, o.BatchSize, seed, input, [o.ImageColumn, o.MaskColumn])
    {
        private DiffusionUNet? _sampler;
        private Tensor? _gridMasks;

        public override string Name => "diffusion";

        public ImageDiffusionTransformer Execute()
        {
            if (o.SampleGridFolder is { } folder)
            {
                Directory.CreateDirectory(folder);
                _gridMasks = GridMasks();
            }

            var loop = new TrainingLoop(Context, ImageDiffusionEstimator.Name, o.Epochs)
            {
                CheckpointFolder = o.CheckpointFolder,
                Fingerprint = new
                {
                    Options = TrainingLoop.OptionsFingerprint(o, nameof(o.Epochs), nameof(o.SampleGridFolder), nameof(o.SampleGridEvery)),
                    Seed = Seed.ToString(CultureInfo.InvariantCulture),
                },
                EpochCompleted = o.EpochCompleted is { } callback ? e => callback(Record(e)) : null,
            };
            loop.Handlers.Add(new EmaHandler(Ema, Net, o.EmaDecay, o.EmaWarmup));
            if (_gridMasks is not null && o.SampleGridEvery > 0)
                loop.Handlers.Add(new EveryEpochsHandler("grid", o.SampleGridEvery,
                    s => WriteGrid(Path.Combine(o.SampleGridFolder!, $"grid_epoch_{s.Epoch:D3}.png"))));
            var state = loop.Run(this, ct);

            var net = TakeNetwork(); // the transformer owns it now
            ImageDiffusionTransformer model;
            try { model = new ImageDiffusionTransformer(Context, o, net, state.History.Select(Record).ToList()); }
            catch { net.Dispose(); throw; }
            if (_gridMasks is not null)
            {
                var path = Path.Combine(o.SampleGridFolder!, "grid_final.png");
                WriteGrid(model, _gridMasks, path);
                Context.WriteLog(LogLevel.Info, ImageDiffusionEstimator.Name, $"wrote the sample grid '{path}'");
            }
            return model;
        }

        protected override (Tensor X0, Tensor? Condition, double ConditionDropout) ModelInputs(DataBatch batch) =>
            (GaussianDiffusion.ToModelRange(batch[o.ImageColumn]), batch[o.MaskColumn] * S(2.0) - S(1.0), o.ConditionDropout);

        private static ImageDiffusionEpochRecord Record(EpochSummary e) => new(e.Epoch, e.Loss, e.Seconds);

        /// <summary>The first SampleGridCount training masks [K,1,H,W] on the device (detached, owned by this run).</summary>
        private Tensor GridMasks()
        {
            using var scope = torch.NewDisposeScope();
            foreach (var batch in Input.GetBatches([o.MaskColumn], o.SampleGridCount, null, Device, cancellationToken: ct))
            {
                var m = batch[o.MaskColumn].clone();
                batch.Dispose();
                return m.DetachFromDisposeScope();
            }
            throw new InvalidOperationException($"{Name}: the training data has no rows");
        }

        /// <summary>A grid with the current EMA weights (in a separate sampling network).</summary>
        private void WriteGrid(string path)
        {
            if (_sampler is null)
            {
                using var g = new Generator(0);
                _sampler = new DiffusionUNet(o.Network, g);
                _sampler.MoveTo(Device);
            }
            Ema.CopyTo(_sampler);
            var view = new ImageDiffusionTransformer(Context, o, _sampler, []);
            WriteGrid(view, _gridMasks!, path);   // not disposed: _sampler is reused and disposed by the run
        }

        private static void WriteGrid(ImageDiffusionTransformer model, Tensor masks, string path)
        {
            using var scope = torch.NewDisposeScope();
            long k = masks.size(0);
            var gens = Enumerable.Range(0, (int)k).Select(i => model.RowGenerator(i)).ToArray();
            try
            {
                var images = model.Sample(masks, gens).cpu();
                ImageIO.WritePng(path, SampleGrid(masks.cpu(), images));
            }
            finally { foreach (var g in gens) g.Dispose(); }
        }

        public override void Dispose()
        {
            base.Dispose();
            _sampler?.Dispose();
            _gridMasks?.Dispose();
        }
    }

    /// <summary>
    /// A grid image [C, K·(H + 2) − 2, 2·W + 2] of K rows "mask | image" (masks [K,1,H,W] {0,1} repeated to C channels,
    /// images [K,C,H,W] in [0,1]), separated by 2 px white lines.
    /// </summary>
    public static Tensor SampleGrid(Tensor masks, Tensor images)
    {
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = torch.NewDisposeScope();
        long k = images.size(0), c = images.size(1), h = images.size(2), w = images.size(3);
        var m = masks.to(ScalarType.Float32, images.device).expand(k, c, h, w);
        var vsep = torch.ones([k, c, h, 2], ScalarType.Float32, images.device);
        var rows = torch.cat([m, vsep, images.to(ScalarType.Float32)], 3);                 // [K, C, H, 2W + 2]
        var hsep = torch.ones([k, c, 2, 2 * w + 2], ScalarType.Float32, images.device);
        var withSep = torch.cat([rows, hsep], 2);                                        // [K, C, H + 2, 2W + 2]
        var grid = withSep.permute(1, 0, 2, 3).reshape(c, k * (h + 2), 2 * w + 2);
        return grid.narrow(1, 0, k * (h + 2) - 2).contiguous().MoveToOuterDisposeScope();
    }
}
