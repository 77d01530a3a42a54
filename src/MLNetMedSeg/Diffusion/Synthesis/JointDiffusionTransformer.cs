using System.Text.Json;
using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion.Synthesis;

/// <summary>
/// A fitted joint image + mask diffusion model (made by <see cref="JointDiffusionEstimator"/>): one ε-network with EMA
/// weights, or one per cluster. Transform gives k = <see cref="JointDiffusionOptions.SamplesPerRow"/> rows per input row,
/// each with a generated pair: <see cref="JointDiffusionOptions.OutputImageColumn"/> (float32 [C,H,W] in [0,1]) and
/// <see cref="JointDiffusionOptions.OutputMaskColumn"/> (float32 [1,H,W], the mask channel thresholded at 0.5 — binary),
/// drawn from the model of the row's cluster (per-cluster models) or the single model. The input needs no column but
/// the cluster column. Output row r·k + j's noise comes from a generator seeded by (<see cref="SamplingSeed"/>, r, j):
/// the same however rows are batched and after a save/load. Also the model RePaint inpaints with. Owns its networks.
/// </summary>
public sealed class JointDiffusionTransformer : Core.MLNet.StageTransformer, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.JOINT_DIFFUSION";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    internal const string Name = "JointDiffusionTransformer";
    private readonly (string? Key, DiffusionUNet Net)[] _models;
    private readonly Dictionary<string, DiffusionUNet> _byCluster = new(StringComparer.Ordinal);
    private readonly JointDiffusionOptions _options;
    private readonly object _lock = new();
    private bool _disposed;

    internal JointDiffusionTransformer(MedSegContext context, JointDiffusionOptions options, IReadOnlyList<(string? Key, DiffusionUNet Net)> models,
        IReadOnlyList<JointDiffusionEpochRecord>? history = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(models);
        _options = options.Clone();
        _options.Validate();
        if (_options.SamplingSeed is null) throw new ArgumentException("options.SamplingSeed must be set", nameof(options));
        if (_options.Height < 1 || _options.Width < 1) throw new ArgumentException("options.Height and Width must be set (the fitted size)", nameof(options));
        if (models.Count == 0) throw new ArgumentException("no model", nameof(models));
        if (_options.ClusterColumnName is null && (models.Count != 1 || models[0].Key is not null))
            throw new ArgumentException("without ClusterColumnName there is exactly one model, with no cluster key", nameof(models));
        foreach (var (key, net) in models)
        {
            var n = net.Options;
            if (n.InChannels != _options.ImageChannels + 1 || n.OutChannels != _options.ImageChannels + 1 || n.ConditionChannels != 0)
                throw new ArgumentException($"the network ({n.InChannels} + {n.ConditionChannels} → {n.OutChannels} channels) is not an unconditional {_options.ImageChannels} + 1 channel model", nameof(models));
            if (_options.ClusterColumnName is not null && (key is null || !_byCluster.TryAdd(key, net)))
                throw new ArgumentException($"per-cluster models need distinct cluster keys; got '{key}'", nameof(models));
        }
        _options.Network = models[0].Net.Options.Clone();
        Context = context;
        _models = models.ToArray();
        foreach (var (_, net) in _models)
        {
            net.MoveTo(context.Device);
            net.eval();
        }
        Diffusion = new GaussianDiffusion(NoiseSchedule.Create(_options.Schedule, _options.TimeSteps));
        History = history?.ToArray() ?? [];
    }

    /// <summary>The context the model samples with (device, log).</summary>
    internal MedSegContext Context { get; }

    /// <summary>The options (a copy; Network, Height, Width and SamplingSeed are the fitted ones).</summary>
    public JointDiffusionOptions Options => _options.Clone();

    /// <summary>The Gaussian process the networks were trained on.</summary>
    public GaussianDiffusion Diffusion { get; }

    /// <summary>The cluster values with a model, in training order; empty for a single model.</summary>
    public IReadOnlyList<string> Clusters => _models.Where(m => m.Key is not null).Select(m => m.Key!).ToArray();

    /// <summary>Seed of the per-row sampling noise.</summary>
    public ulong SamplingSeed => _options.SamplingSeed!.Value;

    /// <summary>Per-epoch training records of every model, in training order.</summary>
    public IReadOnlyList<JointDiffusionEpochRecord> History { get; }

    /// <summary>k output rows per input row.</summary>
    public override int OutputRowsPerInputRow => _options.SamplesPerRow;

    /// <summary>
    /// The network of <paramref name="cluster"/> (null for the single model); an unknown cluster is an error naming it
    /// and the known ones.
    /// </summary>
    internal DiffusionUNet NetworkFor(string? cluster)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_options.ClusterColumnName is null)
        {
            if (cluster is not null) throw new ArgumentException($"{Name}: the model has no clusters; pass no cluster (got '{cluster}')", nameof(cluster));
            return _models[0].Net;
        }
        if (cluster is null) throw new ArgumentException($"{Name}: the model has one network per cluster ({string.Join(", ", Clusters)}); name the cluster", nameof(cluster));
        return _byCluster.TryGetValue(cluster, out var net) ? net
            : throw new ArgumentException($"{Name}: no model was trained for cluster '{cluster}' of column '{_options.ClusterColumnName}' (clusters: {string.Join(", ", Clusters)})", nameof(cluster));
    }

    /// <summary>Serialises calls into the networks (shared with RePaint).</summary>
    internal object SyncRoot => _lock;

    /// <summary>Image [N,C,H,W] in [0,1] and mask [N,1,H,W] in {0,1} → the model's x₀ [N,C+1,H,W] in [−1,1] (masks binarised at 0.5).</summary>
    internal static Tensor ToModelSpace(Tensor images, Tensor masks, string maskColumn)
    {
        if (masks.size(-1) != images.size(-1) || masks.size(-2) != images.size(-2))
            throw new InvalidDataException($"mask '{maskColumn}' is {masks.size(-2)}×{masks.size(-1)} but the images are {images.size(-2)}×{images.size(-1)}");
        using var scope = torch.NewDisposeScope();
        var m = masks.to(images.dtype).ge(S(0.5)).to(images.dtype) * S(2.0) - S(1.0);
        return torch.cat([GaussianDiffusion.ToModelRange(images), m], 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A model-space sample [N,C+1,H,W] → (image [N,C,H,W] in [0,1], mask [N,1,H,W] in {0,1}: the mask channel ≥ 0,
    /// i.e. ≥ 0.5 in [0,1]).
    /// </summary>
    public static (Tensor Images, Tensor Masks) Split(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (x.dim() != 4 || x.size(1) < 2) throw new ArgumentException($"x must be [N,C+1,H,W], got [{string.Join(",", x.shape)}]", nameof(x));
        using var scope = torch.NewDisposeScope();
        long c = x.size(1) - 1;
        var images = GaussianDiffusion.ToImageRange(x.narrow(1, 0, c)).contiguous();
        var masks = x.narrow(1, c, 1).ge(S(0.0)).to(ScalarType.Float32).contiguous();
        return (images.MoveToOuterDisposeScope(), masks.MoveToOuterDisposeScope());
    }

    /// <summary>The generator of output row <paramref name="row"/>'s sample <paramref name="index"/> (the caller disposes it).</summary>
    public Generator RowGenerator(long row, int index) =>
        new(MedSegContext.MixSeed(SamplingSeed, "row " + row.ToString(System.Globalization.CultureInfo.InvariantCulture), index), Context.Device);

    /// <summary>
    /// Draws <paramref name="count"/> pairs from the model of <paramref name="cluster"/> (null for a single model): pair
    /// i uses the noise of input row <paramref name="firstRow"/> + i, sample 0 (as Transform's first sample of that row).
    /// Returns images [N,C,H,W] in [0,1] and binary masks [N,1,H,W] on the context's device (the caller owns them).
    /// </summary>
    public (Tensor Images, Tensor Masks) Generate(int count, string? cluster = null, long firstRow = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(firstRow);
        using var scope = torch.NewDisposeScope();
        var x = SampleModelSpace(cluster, Enumerable.Range(0, count).Select(i => (firstRow + i, 0)).ToArray());
        var (images, masks) = Split(x);
        return (images.MoveToOuterDisposeScope(), masks.MoveToOuterDisposeScope());
    }

    /// <summary>Model-space samples [N,C+1,H,W] for (row, sample) ids, in batches of TransformBatchSize; no grad.</summary>
    internal Tensor SampleModelSpace(string? cluster, IReadOnlyList<(long Row, int Index)> ids)
    {
        var net = NetworkFor(cluster);
        var o = _options;
        var parts = new List<Tensor>();
        try
        {
            for (int s = 0; s < ids.Count; s += o.TransformBatchSize)
            {
                int len = Math.Min(o.TransformBatchSize, ids.Count - s);
                var gens = Enumerable.Range(s, len).Select(i => RowGenerator(ids[i].Row, ids[i].Index)).ToArray();
                try
                {
                    lock (_lock)
                    {
                        using var _ = torch.no_grad();
                        parts.Add(Diffusion.Sample(net.forward, [len, o.ImageChannels + 1, o.Height, o.Width], null, o.SamplingOptions(), gens, Context.Device));
                    }
                }
                finally
                {
                    foreach (var g in gens) g.Dispose();
                }
            }
            using var scope = torch.NewDisposeScope();
            return (parts.Count == 1 ? parts[0].alias() : torch.cat(parts.ToArray(), 0)).MoveToOuterDisposeScope();
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <inheritdoc/>
    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema, _options, _options.Height, _options.Width);

    internal static DataViewSchema OutputSchema(DataViewSchema inputSchema, JointDiffusionOptions o, long h, long w)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        if (o.ClusterColumnName is { } cc) ClusterKeys.Require(inputSchema, cc, Name);
        return new DataViewSchema.Builder(inputSchema)
            .AddColumn(o.OutputImageColumn, TensorColumnType.Image(o.ImageChannels, h, w))
            .AddColumn(o.OutputMaskColumn, TensorColumnType.BinaryMask(h, w))
            .ToSchema();
    }

    /// <summary>k generated pairs per input row, lazily and in batches (see the class remarks).</summary>
    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var o = _options;
        var schema = GetOutputSchema(input.Schema);
        string[] inputs = o.ClusterColumnName is { } cc ? [cc] : [];
        return new BatchedMapView(new RepeatRowsView(input, o.SamplesPerRow), schema, [o.OutputImageColumn, o.OutputMaskColumn], inputs,
            o.TransformBatchSize, SampleBatch);
    }

    private void SampleBatch(IReadOnlyList<BatchedRow> rows)
    {
        var o = _options;
        int k = o.SamplesPerRow;
        var groups = rows.Select((r, i) => (Key: o.ClusterColumnName is { } cc ? ClusterKeys.Key(r.Inputs[cc], cc) : null, Index: i))
            .GroupBy(g => g.Key).ToList();
        foreach (var g in groups)
        {
            var members = g.Select(m => m.Index).ToArray();
            using var scope = torch.NewDisposeScope();
            var x = SampleModelSpace(g.Key, members.Select(i => (rows[i].Position / k, (int)(rows[i].Position % k))).ToArray());
            var (images, masks) = Split(x);
            var ci = images.cpu();
            var cm = masks.cpu();
            for (int t = 0; t < members.Length; t++)
            {
                var row = rows[members[t]];
                row.Outputs[o.OutputImageColumn] = ci[t].contiguous().clone().DetachFromDisposeScope();
                row.Outputs[o.OutputMaskColumn] = cm[t].contiguous().clone().DetachFromDisposeScope();
            }
        }
    }

    /// <summary>Writes the header, options, the cluster keys, each model's EMA weights ("weights_i") and the history.</summary>
    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.WriteHeader(LoaderSignature, CurrentVersion, 1);
        context.WriteOptions(_options);
        context.WriteText("clusters.json", JsonSerializer.Serialize(_models.Select(m => m.Key).ToArray()));
        for (int i = 0; i < _models.Length; i++) context.WriteTensors($"weights_{i}", _models[i].Net.StateDictInOrder());
        context.WriteText("history.json", JsonSerializer.Serialize(History));
    }

    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static JointDiffusionTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    /// <summary>Rebuilds a saved model: each network from the options, its weights checked against the expected shapes.</summary>
    internal static JointDiffusionTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.ReadOptions<JointDiffusionOptions>(CurrentVersion)
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        var keys = JsonSerializer.Deserialize<string?[]>(context.ReadText("clusters.json"))
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no cluster list");
        var models = new List<(string?, DiffusionUNet)>();
        try
        {
            for (int i = 0; i < keys.Length; i++)
            {
                DiffusionUNet net;
                using (var gen = new Generator(0))
                    net = new DiffusionUNet(options.ResolvedNetwork(options.Network.ImageSize), gen);
                models.Add((keys[i], net));
                context.ReadModuleWeights($"weights_{i}", net);
            }
            var history = context.ReadHistory<JointDiffusionEpochRecord>();
            var model = new JointDiffusionTransformer(context.Context, options, models, history);
            models.Clear();
            return model;
        }
        finally
        {
            foreach (var (_, net) in models) net.Dispose();
        }
    }

    /// <summary>Frees the networks.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var (_, net) in _models) net.Dispose();
    }
}
