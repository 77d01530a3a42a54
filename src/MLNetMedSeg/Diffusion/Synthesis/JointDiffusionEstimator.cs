using System.Globalization;
using MLNetMedSeg.Core.Training;
using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>
/// Trains the joint image + mask diffusion model of paper 004 (Saragih et al. §3.2 step 2, §4.1): the image diffusion
/// stage's ADM U-Net with <see cref="JointDiffusionOptions.ImageChannels"/> + 1 input and output channels (the mask as
/// the 4th channel, 2·y − 1, beside the image scaled to [−1, 1]), unconditional, minimising ‖ε − ε_θ(x_t, t)‖² (Appendix
/// A.1) with Adam and an EMA of the weights — on all the data, or, with <see cref="JointDiffusionOptions.ClusterColumnName"/>
/// set, one network per distinct cluster value, each on its cluster's rows (in the values' order: numbers ascending,
/// text ordinal). Every model trains through the shared <see cref="TrainingLoop"/> (progress with the cluster in the
/// stage name, cancellation, NaN → <see cref="TrainingDivergedException"/>, checkpoint/resume per cluster); seeds are
/// derived from the context's seed and the cluster value, so training is deterministic on the CPU.
/// </summary>
public sealed class JointDiffusionEstimator : Microsoft.ML.IEstimator<JointDiffusionTransformer>
{
    internal const string Name = "JointDiffusion";
    private readonly MedSegContext _context;
    private readonly JointDiffusionOptions _options;
    private readonly ulong _seed;

    /// <summary>An estimator for <paramref name="context"/> (seed, device, progress) with <paramref name="options"/> (copied; validated now).</summary>
    internal JointDiffusionEstimator(MedSegContext context, JointDiffusionOptions options)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Clone();
        _options.Validate();
        _context = context;
        _seed = context.DeriveSeed(Name);
        _options.SamplingSeed ??= MedSegContext.MixSeed(_seed, "sampling", 0);
    }

    /// <summary>The options (a copy; <see cref="JointDiffusionOptions.SamplingSeed"/> resolved).</summary>
    public JointDiffusionOptions Options => _options.Clone();

    /// <summary>
    /// ML.NET: trains on an ML.NET data view (images as <c>MLImage</c> or float vectors [C,H,W], masks as float vectors
    /// [1,H,W] or [H,W], the cluster column as text or a number). Columns are checked first: a missing or wrongly typed
    /// column, or image and mask sizes that differ, is a <see cref="SchemaException"/> naming it, before any row is read.
    /// </summary>
    public JointDiffusionTransformer Fit(Microsoft.ML.IDataView input) =>
        Core.MLNet.MLNetData.Fit(input, s => { CheckTrainingSchema(s, _options); return s; }, data => Fit(data, _context.CancellationToken));

    /// <summary>ML.NET schema propagation: checks the training columns and adds the generated image and mask columns.</summary>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema) =>
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, GetOutputSchema);

    internal DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        var (h, w) = CheckTrainingSchema(inputSchema, _options);
        return JointDiffusionTransformer.OutputSchema(inputSchema, _options, h, w);
    }

    /// <summary>Checks the image, mask and cluster columns; returns the images' height and width (−1 when unknown).</summary>
    internal static (long H, long W) CheckTrainingSchema(DataViewSchema schema, JointDiffusionOptions o)
    {
        var it = (TensorColumnType)schema.RequireTensor(o.ImageColumn, TensorColumnType.Image(), Name).Type;
        if (it.Shape[0] >= 0 && it.Shape[0] != o.ImageChannels)
            throw new SchemaException($"{Name}: column '{o.ImageColumn}' has {it.Shape[0]} channels ({it}) but ImageChannels is {o.ImageChannels}", o.ImageColumn);
        var mt = (TensorColumnType)schema.RequireTensor(o.MaskColumn, TensorColumnType.BinaryMask(), Name).Type;
        if ((it.Shape[1] >= 0 && mt.Shape[1] >= 0 && it.Shape[1] != mt.Shape[1]) || (it.Shape[2] >= 0 && mt.Shape[2] >= 0 && it.Shape[2] != mt.Shape[2]))
            throw new SchemaException(
                $"{Name}: mask column '{o.MaskColumn}' is {mt.Shape[1]}×{mt.Shape[2]} but image column '{o.ImageColumn}' is {it.Shape[1]}×{it.Shape[2]}; resize both to one size", o.MaskColumn);
        long f = 1L << (o.Network.Levels - 1);
        foreach (var d in new[] { it.Shape[1], it.Shape[2] })
            if (d >= 0 && d % f != 0)
                throw new SchemaException(
                    $"{Name}: column '{o.ImageColumn}' is {d} px, not divisible by 2^(levels − 1) = {f} (Network.ChannelMultipliers has {o.Network.Levels} levels); resize the data", o.ImageColumn);
        if (o.ClusterColumnName is { } cc) ClusterKeys.Require(schema, cc, Name);
        return (it.Shape[1], it.Shape[2]);
    }

    /// <summary>
    /// Trains and returns the fitted model (one network, or one per cluster). Throws <see cref="SchemaException"/>
    /// before any work on a bad schema, <see cref="InvalidDataException"/> on a row whose mask and image sizes differ,
    /// <see cref="TrainingDivergedException"/> on a NaN/infinite loss, <see cref="OperationCanceledException"/> when cancelled.
    /// </summary>
    internal JointDiffusionTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        CheckTrainingSchema(input.Schema, _options);
        if (!input.CanShuffle) throw new InvalidOperationException($"{Name}: the training data cannot be shuffled; cache it first");
        cancellationToken.ThrowIfCancellationRequested();
        var o = _options.Clone();
        var (h, w) = FirstRowSize(input, o);
        o.Height = h;
        o.Width = w;
        o.Network = o.ResolvedNetwork(h);
        try { o.Network.Validate(); }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{Name}: the network options do not fit {h} px training images: {e.Message}", e.ParamName, e);
        }

        var parts = new List<(string? Key, IDataView Data)>();
        if (o.ClusterColumnName is { } cc)
        {
            var groups = ClusterKeys.Group(input, cc, Name, cancellationToken);
            foreach (var (key, rows) in groups)
                parts.Add((key, input is IRowAccessDataView ra ? new SubsetDataView(ra, rows) : CachedDataView.Create(new FilteredDataView(input, rows), cancellationToken)));
        }
        else parts.Add((null, input));

        var models = new List<(string? Key, DiffusionUNet Net)>();
        var history = new List<JointDiffusionEpochRecord>();
        try
        {
            foreach (var (key, data) in parts)
            {
                ulong seed = key is null ? _seed : MedSegContext.MixSeed(_seed, "cluster " + key, 0);
                string? folder = o.CheckpointFolder is { } cf && key is not null ? Path.Combine(cf, "cluster-" + ClusterKeys.FileSafe(key)) : o.CheckpointFolder;
                long rows = data.CountRows();
                int epochs = o.EpochsFor(rows);
                if (key is not null)
                    _context.WriteLog(LogLevel.Info, Name, $"training the model of cluster '{key}' ({rows} rows, {epochs} epochs)");
                using var run = new Run(_context, o, epochs, key, seed, data, folder, cancellationToken);
                var (net, records) = run.Execute();
                models.Add((key, net));
                history.AddRange(records);
            }
            var model = new JointDiffusionTransformer(_context, o, models, history);
            models.Clear();
            return model;
        }
        finally
        {
            foreach (var (_, net) in models) net.Dispose();
            foreach (var (_, data) in parts) if (!ReferenceEquals(data, input)) (data as IDisposable)?.Dispose();
        }
    }

    /// <summary>The first row's image size; checks that its mask has the same size.</summary>
    private static (int H, int W) FirstRowSize(IDataView input, JointDiffusionOptions o)
    {
        using var cur = input.GetRowCursor([input.Schema[o.ImageColumn], input.Schema[o.MaskColumn]]);
        if (!cur.MoveNext()) throw new InvalidOperationException($"{Name}: the training data has no rows");
        var x = cur.GetTensor(o.ImageColumn);
        var m = cur.GetTensor(o.MaskColumn);
        if (m.size(-1) != x.size(-1) || m.size(-2) != x.size(-2))
            throw new InvalidDataException($"{Name}: row 0: mask '{o.MaskColumn}' is {m.size(-2)}×{m.size(-1)} but image '{o.ImageColumn}' is {x.size(-2)}×{x.size(-1)}");
        return ((int)x.size(-2), (int)x.size(-1));
    }

    /// <summary>One model's training on the shared loop (with an EMA handler); disposes all it made but the returned network.</summary>
    private sealed class Run(MedSegContext ctx, JointDiffusionOptions o, int epochs, string? cluster, ulong seed, IDataView input, string? checkpointFolder,
        CancellationToken ct)
        : GaussianTrainingRun(ctx, o.Network, o.Schedule, o.TimeSteps, o.LearningRate, o.EmaDecay, o.BatchSize, seed, input, [o.ImageColumn, o.MaskColumn])
    {
        public override string Name => "joint-diffusion";

        public (DiffusionUNet Net, List<JointDiffusionEpochRecord> History) Execute()
        {
            string stage = cluster is null ? JointDiffusionEstimator.Name : $"{JointDiffusionEstimator.Name}[{cluster}]";
            var loop = new TrainingLoop(Context, stage, epochs)
            {
                CheckpointFolder = checkpointFolder,
                Fingerprint = new
                {
                    Options = TrainingLoop.OptionsFingerprint(o, nameof(o.Epochs), nameof(o.TrainingSteps)),
                    Seed = Seed.ToString(CultureInfo.InvariantCulture),
                    Cluster = cluster,
                },
                EpochCompleted = o.EpochCompleted is { } callback ? e => callback(Record(e)) : null,
            };
            loop.Handlers.Add(new EmaHandler(Ema, Net, o.EmaDecay, o.EmaWarmup));
            var state = loop.Run(this, ct);
            return (TakeNetwork(), state.History.Select(Record).ToList());
        }

        private JointDiffusionEpochRecord Record(EpochSummary e) => new(cluster, e.Epoch, e.Loss, e.Seconds);

        protected override (Tensor X0, Tensor? Condition, double ConditionDropout) ModelInputs(DataBatch batch) =>
            (JointDiffusionTransformer.ToModelSpace(batch[o.ImageColumn], batch[o.MaskColumn], o.MaskColumn), null, 0);
    }
}

/// <summary>Cluster values (a text or number column) as the string keys of per-cluster models.</summary>
internal static class ClusterKeys
{
    /// <summary>Checks that <paramref name="column"/> is a text or number column.</summary>
    public static void Require(DataViewSchema schema, string column, string consumer)
    {
        var c = schema.GetColumnOrNull(column) ?? throw SchemaException.Missing(column, schema, consumer);
        if (c.Type is not TextColumnType and not NumberColumnType)
            throw new SchemaException($"{consumer}: cluster column '{column}' must be text or a number, got {c.Type}", column);
    }

    /// <summary>A cluster value's key: the text itself, or the number in invariant round-trip form.</summary>
    public static string Key(object value, string column) => value switch
    {
        string s => s,
        double d when double.IsFinite(d) => d.ToString("R", CultureInfo.InvariantCulture),
        double d => throw new InvalidDataException($"cluster column '{column}' holds {d}, not a cluster id"),
        _ => throw new InvalidDataException($"cluster column '{column}' holds a {value?.GetType().Name ?? "null"}, not text or a number"),
    };

    /// <summary>The rows of each cluster, clusters in value order (numbers ascending, text ordinal).</summary>
    public static List<(string Key, List<long> Rows)> Group(IDataView data, string column, string consumer, CancellationToken ct)
    {
        Require(data.Schema, column, consumer);
        var rows = new Dictionary<string, List<long>>(StringComparer.Ordinal);
        bool numeric = data.Schema[column].Type is NumberColumnType;
        long r = 0;
        using (var cur = data.GetRowCursor([data.Schema[column]]))
            while (cur.MoveNext())
            {
                ct.ThrowIfCancellationRequested();
                var key = Key(cur.GetValue(data.Schema[column]), column);
                if (!rows.TryGetValue(key, out var list)) rows[key] = list = [];
                list.Add(r++);
            }
        if (rows.Count == 0) throw new InvalidOperationException($"{consumer}: the training data has no rows");
        var keys = numeric
            ? rows.Keys.OrderBy(k => double.Parse(k, CultureInfo.InvariantCulture)).ToList()
            : rows.Keys.OrderBy(k => k, StringComparer.Ordinal).ToList();
        return keys.Select(k => (k, rows[k])).ToList();
    }

    /// <summary>A key as a folder-name part (characters outside [A-Za-z0-9._-] as _XX hex).</summary>
    public static string FileSafe(string key) =>
        string.Concat(key.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '-' ? ch.ToString() : $"_{(int)ch:X2}"));
}
