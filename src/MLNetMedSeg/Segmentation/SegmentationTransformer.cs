using MLNetMedSeg.Core;
using System.Text.Json;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation;

/// <summary>What a fitted segmentation model saves and predicts with (written as JSON into the model).</summary>
public sealed class SegmentationModelOptions
{
    /// <summary>The network (rebuilt from these options when the model is loaded; <see cref="SegmentationNetworkOptions.EncoderWeightsPath"/> and <see cref="SegmentationNetworkOptions.ImageNetModelPath"/> are not kept; the weights are).</summary>
    public SegmentationNetworkOptions Network { get; set; } = new();

    /// <summary>Image column read, float32 [C,H,W] (default "Image").</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>Probability column written (default "Probability").</summary>
    public string ProbabilityColumn { get; set; } = "Probability";

    /// <summary>Predicted-mask column written (default "Predicted").</summary>
    public string PredictedColumn { get; set; } = "Predicted";

    /// <summary>Binary heads: a pixel is foreground when its probability is ≥ this (default 0.5, the papers' threshold).</summary>
    public double Threshold { get; set; } = 0.5;

    /// <summary>Average the identity, horizontal-flip and vertical-flip predictions (default false).</summary>
    public bool TestTimeAugmentation { get; set; }

    /// <summary>Rows the output view predicts at once (default 8; see <see cref="SegmentationTransformer"/>).</summary>
    public int BatchSize { get; set; } = 8;

    /// <summary>A copy.</summary>
    public SegmentationModelOptions Clone()
    {
        var c = (SegmentationModelOptions)MemberwiseClone();
        c.Network = Network.Clone();
        return c;
    }
}

/// <summary>
/// A fitted segmentation network (made by <see cref="SegmentationTrainer"/>). <see cref="Transform"/> adds
/// <c>Probability</c> — float32 [1,H,W] sigmoid for a binary head, [C+1,H,W] softmax for a multi-class head — and
/// <c>Predicted</c> — float32 [1,H,W] in {0,1} (probability ≥ 0.5) or int64 [H,W] (argmax). The output view is lazy
/// and computes in batches: nothing runs until a cursor that asks for an output column moves; it then reads
/// <see cref="SegmentationModelOptions.BatchSize"/> rows ahead and runs the network once on them (on the context's
/// device, eval mode, inference mode), giving both columns on the CPU. A cursor that asks for neither output column
/// runs nothing. <see cref="Predict"/> predicts a batch tensor directly. Owns its network: dispose it.
/// </summary>
public sealed class SegmentationTransformer : Core.MLNet.StageTransformer, IDifferentiableSegmenter, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.SEGMENTER";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    private const string Name = "SegmentationTransformer";
    private static readonly JsonSerializerOptions HistoryJson = new() { WriteIndented = true };
    private readonly SegmentationNetwork _network;
    private readonly Device _device;
    private readonly object _lock = new();
    private bool _disposed;

    /// <summary>Wraps a trained network (which it then owns and moves to <paramref name="context"/>'s device).</summary>
    /// <param name="context">Device and logging.</param>
    /// <param name="options">Columns, threshold, TTA and the network's options (must match <paramref name="network"/>).</param>
    /// <param name="network">The network; the transformer owns and disposes it.</param>
    /// <param name="history">Per-epoch training records (may be empty).</param>
    internal SegmentationTransformer(MedSegContext context, SegmentationModelOptions options, SegmentationNetwork network,
        IReadOnlyList<SegmentationEpochRecord>? history = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(network);
        if (!(options.Threshold is > 0 and < 1)) throw new ArgumentOutOfRangeException(nameof(options), options.Threshold, "Threshold must be in (0, 1)");
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be ≥ 1");
        Options = options.Clone();
        Options.Network.EncoderWeightsPath = null;
        Options.Network.ImageNetModelPath = null;
        if (network.Classes != Options.Network.Classes || network.InChannels != Options.Network.InChannels)
            throw new ArgumentException($"the network ({network.InChannels} → {network.Classes} channels) does not match its options ({Options.Network.InChannels} → {Options.Network.Classes})", nameof(network));
        Context = context;
        _device = context.Device;
        _network = network;
        _network.MoveTo(_device);
        _network.eval();
        History = history?.ToArray() ?? [];
    }

    /// <summary>The context the model predicts with.</summary>
    internal MedSegContext Context { get; }

    /// <summary>The options (a copy is kept; do not change this instance's network options).</summary>
    public SegmentationModelOptions Options { get; }

    /// <summary>The network (owned by this transformer; in eval mode on the context's device).</summary>
    public SegmentationNetwork Network => _network;

    /// <summary>True for a binary (sigmoid) head.</summary>
    public bool IsBinary => Options.Network.Classes == 1;

    /// <summary>Image channels the network takes.</summary>
    public long ImageChannels => Options.Network.InChannels;

    /// <summary>Output channels of the network: 1 (binary head) or the number of classes including background.</summary>
    public long Classes => Options.Network.Classes;

    /// <summary>The device the network is on (the context's).</summary>
    public torch.Device Device => _device;

    torch.nn.Module IDifferentiableSegmenter.Network => _network;

    /// <summary>
    /// The network's logits [N,K,H,W] for images on <see cref="Device"/>, differentiable, in the network's current mode
    /// and without test-time augmentation (what the attacks differentiate). <paramref name="generators"/> is ignored
    /// (the network is deterministic).
    /// </summary>
    public torch.Tensor Logits(torch.Tensor images, IReadOnlyList<torch.Generator>? generators = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (images.dim() != 4 || images.size(1) != Options.Network.InChannels)
            throw new ArgumentException($"images must be [N,{Options.Network.InChannels},H,W], got [{string.Join(",", images.shape)}]", nameof(images));
        return _network.call(images);
    }

    /// <summary>Per-epoch training loss and validation Dice, in order (for loss curves).</summary>
    public IReadOnlyList<SegmentationEpochRecord> History { get; }

    /// <summary>The schema with the probability and predicted columns; checks the image column.</summary>
    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema, Options);

    /// <summary>
    /// The best validation mDice seen in training and its epoch (the first epoch reaching it), or null without
    /// validation data. With RestoreBestCheckpoint these are the weights the model holds.
    /// </summary>
    public SegmentationEpochRecord? BestEpoch => History.Where(r => r.ValidationDice is not null).MaxBy(r => r.ValidationDice!.Value);

    internal static DataViewSchema OutputSchema(DataViewSchema inputSchema, SegmentationModelOptions o)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var (h, w) = CheckImage(inputSchema, o.ImageColumn, o.Network.InChannels, Name);
        long k = o.Network.Classes;
        return new DataViewSchema.Builder(inputSchema)
            .AddColumn(o.ProbabilityColumn, new TensorColumnType(ScalarType.Float32, [k, h, w]))
            .AddColumn(o.PredictedColumn, k == 1 ? TensorColumnType.BinaryMask(h, w) : TensorColumnType.ClassMask(h, w))
            .ToSchema();
    }

    /// <summary>Checks the image column (float32 [C,H,W] with C = <paramref name="channels"/>) and returns its (H, W) (-1 when they vary).</summary>
    internal static (long h, long w) CheckImage(DataViewSchema schema, string column, long channels, string consumer)
    {
        var t = (TensorColumnType)schema.RequireTensor(column, TensorColumnType.Image(), consumer).Type;
        if (t.Shape[0] >= 0 && t.Shape[0] != channels)
            throw new SchemaException($"{consumer}: column '{column}' has {t.Shape[0]} channels ({t}) but the network takes {channels}", column);
        return (t.Shape[1], t.Shape[2]);
    }

    /// <summary>Adds the probability and predicted columns, lazily (see the class remarks).</summary>
    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var schema = GetOutputSchema(input.Schema);
        return PredictionView(input, schema);
    }

    /// <summary>
    /// Probabilities of a batch of images float32 [N,C,H,W] (any device; moved to the context's): [N,1,H,W] sigmoid or
    /// [N,C+1,H,W] softmax on the context's device, with flip TTA when enabled. Eval and inference mode.
    /// </summary>
    public Tensor PredictProbabilities(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (images.dim() != 4 || images.size(1) != Options.Network.InChannels)
            throw new ArgumentException($"images must be [N,{Options.Network.InChannels},H,W], got [{string.Join(",", images.shape)}]", nameof(images));
        lock (_lock)
        {
            using var scope = torch.NewDisposeScope();
            using var mode = torch.inference_mode();
            _network.eval();
            var x = images.device == _device ? images : images.to(_device);
            if (x.dtype != ScalarType.Float32) x = x.to(ScalarType.Float32);
            var p = ProbabilitiesOf(_network, x, Options.TestTimeAugmentation);
            return p.MoveToOuterDisposeScope();
        }
    }

    /// <summary>Network probabilities, optionally averaged over identity, h-flip and v-flip (each flipped back).</summary>
    internal static Tensor ProbabilitiesOf(SegmentationNetwork net, Tensor x, bool tta)
    {
        using var scope = torch.NewDisposeScope();
        var p = SegmentationNetwork.Probabilities(net.call(x));
        if (tta)
        {
            var ph = SegmentationNetwork.Probabilities(net.call(x.flip(3))).flip(3);
            var pv = SegmentationNetwork.Probabilities(net.call(x.flip(2))).flip(2);
            p = p.Plus(ph).Plus(pv).div(S(3.0));
        }
        return p.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Probabilities (as <see cref="PredictProbabilities"/>) and predicted masks of a batch: float32 [N,1,H,W] {0,1}
    /// (binary) or int64 [N,H,W] (argmax), on the context's device.
    /// </summary>
    public (Tensor Probability, Tensor Predicted) Predict(Tensor images)
    {
        using var scope = torch.NewDisposeScope();
        var p = PredictProbabilities(images);
        var m = Threshold(p);
        return (p.MoveToOuterDisposeScope(), m.MoveToOuterDisposeScope());
    }

    private Tensor Threshold(Tensor p) => IsBinary ? p.ge(S(Options.Threshold)).to(ScalarType.Float32) : p.argmax(1);

    /// <summary>Writes the header, options (JSON), network weights (safetensors, "weights") and the training history (JSON text).</summary>
    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.WriteHeader(LoaderSignature, CurrentVersion, 1);
        context.WriteOptions(Options);
        context.WriteTensors("weights", _network.StateDictInOrder());
        context.WriteText("history.json", JsonSerializer.Serialize(History, HistoryJson));
    }

    /// <summary>Rebuilds a saved model: the network from its options, weights checked against the expected shapes.</summary>
    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static SegmentationTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static SegmentationTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Version > CurrentVersion)
            throw new InvalidDataException($"{LoaderSignature}: model entry version {context.Version} is newer than this library reads ({CurrentVersion})");
        var options = context.ReadOptions<SegmentationModelOptions>()
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        options.Network.EncoderWeightsPath = null;
        options.Network.ImageNetModelPath = null;
        // The saved weights (ImageNet-initialised ones too) replace the initial ones: no package is needed.
        return context.LoadNetwork("weights", gen => SegmentationNetworks.Create(options.Network, gen, loadEncoderWeights: false),
            net => new SegmentationTransformer(context.Context, options, net, context.ReadHistory<SegmentationEpochRecord>()));
    }

    /// <summary>Frees the network.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _network.Dispose();
    }

    /// <summary>
    /// The output view (<see cref="BatchedMapView"/>): the network runs once per <see cref="SegmentationModelOptions.BatchSize"/>
    /// rows on their stacked images (row by row when their sizes differ); the rows are then served one at a time.
    /// </summary>
    private IDataView PredictionView(IDataView source, DataViewSchema schema) =>
        new BatchedMapView(source, schema, [Options.ProbabilityColumn, Options.PredictedColumn], [Options.ImageColumn], Options.BatchSize, PredictRows);

    private void PredictRows(IReadOnlyList<BatchedRow> rows)
    {
        string img = Options.ImageColumn;
        var images = rows.Select(r => r.Tensor(img)).ToList();
        foreach (var (t, r) in images.Zip(rows))
            if (t.dim() != 3) throw new InvalidOperationException($"{Name}: row {r.Position}: image must be [C,H,W], got [{string.Join(",", t.shape)}]");
        foreach (var g in BatchedMapView.SameShapeGroups(images))
        {
            using var scope = torch.NewDisposeScope();
            var (p, m) = Predict(torch.stack(g.Select(i => images[i]).ToArray()));
            var pc = p.cpu();
            var mc = m.cpu();
            for (int k = 0; k < g.Length; k++)
            {
                rows[g[k]].Outputs[Options.ProbabilityColumn] = pc.narrow(0, k, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope();
                rows[g[k]].Outputs[Options.PredictedColumn] = mc.narrow(0, k, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope();
            }
        }
    }
}
