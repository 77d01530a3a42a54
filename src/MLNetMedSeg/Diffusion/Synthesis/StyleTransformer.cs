using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>
/// The styling stage's estimator: wraps a fitted diffusion model — a <see cref="JointDiffusionTransformer"/> (image +
/// mask channels, one model or one per cluster) or a mask-conditioned <see cref="ImageDiffusionTransformer"/> — and,
/// when fitted, checks the input's columns and gives the <see cref="StyleTransformer"/>. Nothing is trained.
/// </summary>
public sealed class StyleEstimator : ModelStageEstimator<StyleTransformer>
{
    internal const string Name = "Style";
    private readonly StyleOptions _options;

    internal StyleEstimator(MedSegContext context, Core.MLNet.StageTransformer model, StyleOptions options) : base(context, model)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Clone();
        _options.Validate();
        StyleTransformer.CheckModel(model, _options);
        _options.SamplingSeed ??= MedSegContext.MixSeed(context.DeriveSeed(Name), "sampling", 0);
    }

    /// <summary>The options (a copy; SamplingSeed resolved).</summary>
    public StyleOptions Options => _options.Clone();

    private protected override DataViewSchema OutputSchema(DataViewSchema input) => StyleTransformer.OutputSchema(input, _options, Model);

    private protected override StyleTransformer CreateTransformer() => new(Context, _options, Model, ownsModel: false);
}

/// <summary>
/// Diffusion styling as an ML.NET stage (paper 004 §3.2, Appendix A.1.2, Table A.3; DiffuseIT and ZeCon): every input
/// row gains <see cref="StyleOptions.OutputColumn"/>, its source image (<see cref="StyleOptions.SourceColumn"/>, e.g.
/// RePaint's "InpaintedImage") noised to the skip depth and brought back by reverse steps of the diffusion model guided
/// towards the row's target (<see cref="StyleOptions.TargetColumn"/>, the original "Image") by the losses of
/// <see cref="StylingScheduler"/>. With a joint image + mask model the mask channel is known (the row's mask) and a
/// per-cluster model styles each row with its cluster's network; a mask-conditioned image model is conditioned on the
/// row's mask. Row r's noise and ZeCon locations come from generators seeded by (<see cref="SamplingSeed"/>, r).
/// Lazy, batched; each batch is logged and every reverse step reported to the context's progress (stage "Style"), and
/// the cancellation token is checked at every step. Stand-ins for the paper's VGG and DINO: see <see cref="StyleOptions"/>.
/// </summary>
public sealed class StyleTransformer : Core.MLNet.StageTransformer, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.STYLE";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    internal const string Name = "StyleTransformer";
    private readonly StyleOptions _options;
    private readonly Core.MLNet.StageTransformer _model;
    private readonly bool _ownsModel;
    private readonly StyleFeatureNetwork? _features;
    private readonly object _lock = new();
    private bool _disposed;

    internal StyleTransformer(MedSegContext context, StyleOptions options, Core.MLNet.StageTransformer model, bool ownsModel,
        StyleFeatureNetwork? features = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(model);
        _options = options.Clone();
        _options.Validate();
        if (_options.SamplingSeed is null) throw new ArgumentException("options.SamplingSeed must be set", nameof(options));
        CheckModel(model, _options);
        Context = context;
        _model = model;
        _ownsModel = ownsModel;
        _features = features ?? (_options.NeedsFeatureNetwork
            ? StyleFeatureNetwork.ImageNet(_options.FeatureModelPath, _options.FeatureImageSize, DeviceOfModel)
            : null);
        Scheduler = new StylingScheduler(Diffusion, _options, _features);
    }

    /// <summary>The stage's context (log, progress, cancellation).</summary>
    internal MedSegContext Context { get; }

    /// <summary>The options (a copy).</summary>
    public StyleOptions Options => _options.Clone();

    /// <summary>The diffusion model styled with: a <see cref="JointDiffusionTransformer"/> or an <see cref="ImageDiffusionTransformer"/>.</summary>
    public Microsoft.ML.ITransformer Model => _model;

    /// <summary>The scheduler (the guided reverse process).</summary>
    public StylingScheduler Scheduler { get; }

    /// <summary>Seed of the per-row randomness.</summary>
    public ulong SamplingSeed => _options.SamplingSeed!.Value;

    private GaussianDiffusion Diffusion => _model switch
    {
        JointDiffusionTransformer j => j.Diffusion,
        ImageDiffusionTransformer i => i.Diffusion,
        _ => throw new InvalidOperationException("unreachable"),
    };

    private int ImageChannels => ChannelsOf(_model);

    private static int ChannelsOf(Core.MLNet.StageTransformer model) =>
        model is JointDiffusionTransformer j ? j.Options.ImageChannels : ((ImageDiffusionTransformer)model).ImageChannels;

    private static int LevelsOf(Core.MLNet.StageTransformer model) =>
        model is JointDiffusionTransformer j ? j.Options.Network.Levels : ((ImageDiffusionTransformer)model).Network.Options.Levels;

    private string? ClusterColumn => (_model as JointDiffusionTransformer)?.Options.ClusterColumnName;

    private Device DeviceOfModel => _model switch
    {
        JointDiffusionTransformer j => j.Context.Device,
        ImageDiffusionTransformer i => i.Context.Device,
        _ => throw new InvalidOperationException("unreachable"),
    };

    /// <summary>Checks that <paramref name="model"/> is a diffusion model the stage can use with <paramref name="options"/>.</summary>
    internal static void CheckModel(Core.MLNet.StageTransformer model, StyleOptions options)
    {
        var (timeSteps, network) = model switch
        {
            JointDiffusionTransformer j => (j.Options.TimeSteps, j.NetworkFor(j.Options.ClusterColumnName is null ? null : j.Clusters[0])),
            ImageDiffusionTransformer i => (i.Options.TimeSteps, i.Network),
            _ => throw new ArgumentException(
                $"Styling runs a joint image + mask diffusion model (JointDiffusion) or a mask-conditioned image diffusion model (ImageDiffusion), not a {model.GetType().Name}", nameof(model)),
        };
        if (options.SampleSteps > timeSteps)
            throw new ArgumentException($"SampleSteps ({options.SampleSteps}) must not exceed the model's TimeSteps ({timeSteps})", nameof(options.SampleSteps));
        if (options.ZeConWeight != 0) StylingScheduler.ZeConLayersFor(options, network);
    }

    /// <summary>The output schema: checks source, target, mask and cluster columns; adds the styled image column.</summary>
    internal static DataViewSchema OutputSchema(DataViewSchema inputSchema, StyleOptions o, Core.MLNet.StageTransformer model)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        int channels = ChannelsOf(model);
        var st = (TensorColumnType)inputSchema.RequireTensor(o.SourceColumn, TensorColumnType.Image(), StyleEstimator.Name).Type;
        var tt = (TensorColumnType)inputSchema.RequireTensor(o.TargetColumn, TensorColumnType.Image(), StyleEstimator.Name).Type;
        var mt = (TensorColumnType)inputSchema.RequireTensor(o.MaskColumn, TensorColumnType.BinaryMask(), StyleEstimator.Name).Type;
        foreach (var (col, t) in new[] { (o.SourceColumn, st), (o.TargetColumn, tt) })
            if (t.Shape[0] >= 0 && t.Shape[0] != channels)
                throw new SchemaException($"{StyleEstimator.Name}: column '{col}' has {t.Shape[0]} channels ({t}) but the diffusion model takes {channels}", col);
        static bool Differ(long a, long b) => a >= 0 && b >= 0 && a != b;
        foreach (var (col, t) in new[] { (o.TargetColumn, tt), (o.MaskColumn, mt) })
            if (Differ(st.Shape[1], t.Shape[1]) || Differ(st.Shape[2], t.Shape[2]))
                throw new SchemaException(
                    $"{StyleEstimator.Name}: column '{col}' is {t.Shape[1]}×{t.Shape[2]} but source column '{o.SourceColumn}' is {st.Shape[1]}×{st.Shape[2]}", col);
        long f = 1L << (LevelsOf(model) - 1);
        foreach (var d in new[] { st.Shape[1], st.Shape[2] })
            if (d >= 0 && d % f != 0)
                throw new SchemaException($"{StyleEstimator.Name}: column '{o.SourceColumn}' is {d} px, not divisible by {f} as the diffusion network needs; resize the data", o.SourceColumn);
        if ((model as JointDiffusionTransformer)?.Options.ClusterColumnName is { } cc) ClusterKeys.Require(inputSchema, cc, StyleEstimator.Name);
        if (inputSchema.Contains(o.OutputColumn))
            throw new SchemaException($"{StyleEstimator.Name}: the input already has a column '{o.OutputColumn}'; choose another OutputColumn", o.OutputColumn);
        return new DataViewSchema.Builder(inputSchema).AddColumn(o.OutputColumn, TensorColumnType.Image(channels, st.Shape[1], st.Shape[2])).ToSchema();
    }

    /// <inheritdoc/>
    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema, _options, _model);

    /// <summary>One styled row per input row, lazily and in batches (see the class remarks).</summary>
    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var o = _options;
        var schema = GetOutputSchema(input.Schema);
        string[] inputs = ClusterColumn is { } cc ? [o.SourceColumn, o.TargetColumn, o.MaskColumn, cc] : [o.SourceColumn, o.TargetColumn, o.MaskColumn];
        return new BatchedMapView(input, schema, [o.OutputColumn], inputs, o.TransformBatchSize, StyleBatch);
    }

    /// <summary>
    /// Styles <paramref name="sources"/> [N,C,H,W] in [0,1] towards <paramref name="targets"/> (the same shape) with masks
    /// <paramref name="masks"/> [N,1,H,W] {0,1}, with the model of <paramref name="cluster"/> (null unless the model has
    /// per-cluster networks): row i uses the randomness of row <paramref name="firstRow"/> + i, as Transform. Returns
    /// [N,C,H,W] in [0,1] on the sources' device. <paramref name="observer"/> sees every reverse step.
    /// </summary>
    public Tensor Style(Tensor sources, Tensor targets, Tensor masks, string? cluster = null, long firstRow = 0, Action<StylingStep>? observer = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentOutOfRangeException.ThrowIfNegative(firstRow);
        return StyleCore(sources, targets, masks, cluster, Enumerable.Range(0, (int)sources.size(0)).Select(i => firstRow + i).ToArray(), observer);
    }

    private Tensor StyleCore(Tensor sources, Tensor targets, Tensor masks, string? cluster, IReadOnlyList<long> rows, Action<StylingStep>? observer)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int c = ImageChannels;
        if (sources.dim() != 4 || sources.size(1) != c)
            throw new ArgumentException($"sources must be [N,{c},H,W], got [{string.Join(",", sources.shape)}]", nameof(sources));
        if (!targets.shape.SequenceEqual(sources.shape))
            throw new ArgumentException($"targets must have the sources' shape [{string.Join(",", sources.shape)}], got [{string.Join(",", targets.shape)}]", nameof(targets));
        if (masks.dim() != 4 || masks.size(1) != 1 || masks.size(0) != sources.size(0) || masks.size(2) != sources.size(2) || masks.size(3) != sources.size(3))
            throw new ArgumentException($"masks must be [N,1,H,W] matching the sources [{string.Join(",", sources.shape)}], got [{string.Join(",", masks.shape)}]", nameof(masks));
        long f = 1L << (LevelsOf(_model) - 1);
        if (sources.size(2) % f != 0 || sources.size(3) % f != 0)
            throw new ArgumentException($"the images are {sources.size(2)}×{sources.size(3)}, not divisible by {f} as the diffusion network needs", nameof(sources));
        var device = DeviceOfModel;
        string Id(long r) => r.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var noise = rows.Select(r => new Generator(MedSegContext.MixSeed(SamplingSeed, "row " + Id(r), 0), device)).ToArray();
        var patches = rows.Select(r => new Generator(MedSegContext.MixSeed(SamplingSeed, "zecon row " + Id(r), 0), CPU)).ToArray();
        try
        {
            using var scope = NewDisposeScope();
            var src = sources.to(ScalarType.Float32, device);
            var tgt = targets.to(ScalarType.Float32, device);
            var m = masks.to(ScalarType.Float32, device);
            Tensor result;
            if (_model is JointDiffusionTransformer joint)
            {
                var net = joint.NetworkFor(cluster);
                var keep = cat([zeros([1, c, 1, 1], ScalarType.Bool, device), ones([1, 1, 1, 1], ScalarType.Bool, device)], 1);
                using var inputs = new StylingScheduler.Inputs
                {
                    Network = net, ImageChannels = c, Keep = keep, ZeConLayers = StylingScheduler.ZeConLayersFor(_options, net),
                    Source = JointDiffusionTransformer.ToModelSpace(src, m, _options.MaskColumn),
                    Target = JointDiffusionTransformer.ToModelSpace(tgt, m, _options.MaskColumn),
                    ReferenceKind = _options.ContentReference,
                };
                lock (joint.SyncRoot)
                    lock (_lock)
                        result = Scheduler.Style(inputs, noise, patches, observer, Context.CancellationToken);
            }
            else
            {
                var image = (ImageDiffusionTransformer)_model;
                if (cluster is not null) throw new ArgumentException($"{Name}: the image diffusion model has no clusters (got '{cluster}')", nameof(cluster));
                using var inputs = new StylingScheduler.Inputs
                {
                    Network = image.Network, ImageChannels = c, Condition = ImageDiffusionTransformer.BinarizeMask(m) * S(2.0) - S(1.0),
                    GuidanceScale = image.Options.GuidanceScale, ZeConLayers = StylingScheduler.ZeConLayersFor(_options, image.Network),
                    Source = GaussianDiffusion.ToModelRange(src), Target = GaussianDiffusion.ToModelRange(tgt),
                    ReferenceKind = _options.ContentReference,
                };
                lock (_lock)
                    result = Scheduler.Style(inputs, noise, patches, observer, Context.CancellationToken);
            }
            var output = GaussianDiffusion.ToImageRange(result.narrow(1, 0, c)).contiguous();
            if (output.device != sources.device) output = output.to(sources.device);
            return output.MoveToOuterDisposeScope();
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("styling diverged", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"{Name}: rows {rows[0]}..{rows[^1]}: {e.Message}", e);
        }
        finally
        {
            foreach (var g in noise) g.Dispose();
            foreach (var g in patches) g.Dispose();
        }
    }

    /// <summary>The output view's batch function: rows grouped by cluster and size, each row's randomness seeded by its position.</summary>
    private void StyleBatch(IReadOnlyList<BatchedRow> rows)
    {
        var o = _options;
        var cc = ClusterColumn;
        foreach (var r in rows)
        {
            var s = r.Tensor(o.SourceColumn);
            foreach (var col in new[] { o.TargetColumn, o.MaskColumn })
            {
                var t = r.Tensor(col);
                if (t.dim() != 3 || s.dim() != 3 || t.size(1) != s.size(1) || t.size(2) != s.size(2) || (col == o.TargetColumn && t.size(0) != s.size(0)))
                    throw new InvalidDataException(
                        $"{Name}: row {r.Position}: column '{col}' [{string.Join(",", t.shape)}] does not match source '{o.SourceColumn}' [{string.Join(",", s.shape)}]");
            }
        }
        var groups = rows.Select((r, i) => (Key: cc is null ? null : ClusterKeys.Key(r.Inputs[cc], cc), Shape: string.Join(",", r.Tensor(o.SourceColumn).shape), Index: i))
            .GroupBy(g => (g.Key, g.Shape)).ToList();
        foreach (var g in groups)
        {
            var members = g.Select(m => m.Index).ToArray();
            using var scope = NewDisposeScope();
            var s = stack(members.Select(i => rows[i].Tensor(o.SourceColumn)).ToArray());
            var t = stack(members.Select(i => rows[i].Tensor(o.TargetColumn)).ToArray());
            var m = stack(members.Select(i => rows[i].Tensor(o.MaskColumn)).ToArray());
            var watch = System.Diagnostics.Stopwatch.StartNew();
            void Report(StylingStep step) => Context.ReportProgress(new TrainingProgress(StyleEstimator.Name, 1, 1, step.Index + 1, step.Count,
                step.Terms?.Total, null, watch.Elapsed, null, $"rows {rows[members[0]].Position}..{rows[members[^1]].Position}, respaced step {step.Step}"));
            var y = StyleCore(s, t, m, g.Key.Key, members.Select(i => rows[i].Position).ToArray(), Report).cpu();
            Context.WriteLog(LogLevel.Info, Name,
                $"styled rows {rows[members[0]].Position}..{rows[members[^1]].Position} ({members.Length} images, {Scheduler.StartStep + 1} guided reverse steps each) in {watch.Elapsed.TotalSeconds:F1} s");
            for (int k = 0; k < members.Length; k++)
                rows[members[k]].Outputs[o.OutputColumn] = y[k].contiguous().clone().DetachFromDisposeScope();
        }
    }

    /// <summary>Writes the header, the options and the diffusion model (child "model"); the ResNet-18 is the package's and is not copied.</summary>
    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.WriteHeader(LoaderSignature, CurrentVersion, 1);
        context.WriteOptions(_options);
        context.WriteChild("model", _model);
    }

    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static StyleTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    /// <summary>Rebuilds a saved stage (it owns the diffusion model it loads).</summary>
    internal static StyleTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.ReadOptions<StyleOptions>(CurrentVersion)
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        var child = context.ReadChild("model");
        if (child is not (JointDiffusionTransformer or ImageDiffusionTransformer))
        {
            (child as IDisposable)?.Dispose();
            throw new InvalidDataException($"{LoaderSignature}: the child entry 'model' is a {child.GetType().Name}, not a diffusion model");
        }
        try
        {
            return new StyleTransformer(context.Context, options, (Core.MLNet.StageTransformer)child, ownsModel: true);
        }
        catch
        {
            (child as IDisposable)?.Dispose();
            throw;
        }
    }

    /// <summary>Frees the ResNet-18 and, when this stage owns it (a loaded stage does), the diffusion model.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _features?.Dispose();
        if (_ownsModel) (_model as IDisposable)?.Dispose();
    }
}
