using System.Runtime.InteropServices;
using System.Text.Json;
using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>What a fitted cDAL model saves and predicts with (written as JSON into the model).</summary>
public sealed class CdalModelOptions
{
    /// <summary>The model (the generator is rebuilt from it when loaded; <see cref="CdalOptions.ImageSize"/> is the training size).</summary>
    public CdalOptions Cdal { get; set; } = new();

    /// <summary>Image column read, float32 [C,H,W] (default "Image").</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>Probability column written (default "Probability").</summary>
    public string ProbabilityColumn { get; set; } = "Probability";

    /// <summary>Predicted-mask column written (default "Predicted").</summary>
    public string PredictedColumn { get; set; } = "Predicted";

    /// <summary>Seed of the prediction noise; each image's stream is <see cref="CdalSampler.ImageSeed"/>(this seed, a hash of the image's values).</summary>
    public ulong SamplingSeed { get; set; }

    /// <summary>Rows the output view samples at once (default 4).</summary>
    public int BatchSize { get; set; } = 4;

    /// <summary>A deep copy.</summary>
    public CdalModelOptions Clone()
    {
        var c = (CdalModelOptions)MemberwiseClone();
        c.Cdal = Cdal.Clone();
        return c;
    }
}

/// <summary>
/// A fitted cDAL segmenter (made by <see cref="CdalTrainer"/>; paper 003, Algorithm 2). <see cref="Transform"/> adds the
/// same columns as <see cref="SegmentationTransformer"/>, so the evaluator, the attacks' consumers and the CLI use it as
/// they use a U-Net: <c>Probability</c> — float32 [1,H,W] for a binary model (the mean over
/// <see cref="CdalOptions.Samples"/> samples of clamp((x₀ + 1)/2, 0, 1)), [Classes,H,W] for a multi-class one — and
/// <c>Predicted</c> — float32 [1,H,W] in {0,1} (mean ≥ <see cref="CdalOptions.Threshold"/>) or int64 [H,W] (arg-max).
/// <para>
/// Seeded per image by its content: image i's K initial noises, latents and posterior draws come from a generator
/// seeded by (<see cref="CdalModelOptions.SamplingSeed"/>, a 64-bit hash of the image's float values), so a row's
/// prediction does not depend on its position, on the other rows of its batch or on the batch size (up to
/// floating-point summation order), and a <c>PredictionEngine</c> gives what <c>Transform</c> gives. The output view is
/// lazy and batched (<see cref="CdalModelOptions.BatchSize"/> rows at once) as the segmentation transformer's. Owns its
/// generator network: dispose it.
/// </para>
/// </summary>
public sealed class CdalTransformer : Core.MLNet.StageTransformer, IDifferentiableSegmenter, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.CDAL";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    private const string Name = "CdalTransformer";
    private static readonly JsonSerializerOptions HistoryJson = new() { WriteIndented = true };
    private readonly CdalGeneratorNetwork _generator;
    private readonly CdalSampler _sampler;
    private readonly Device _device;
    private readonly object _lock = new();
    private bool _disposed;

    /// <summary>Wraps a trained generator (which it then owns and moves to <paramref name="context"/>'s device).</summary>
    /// <param name="context">Device and logging.</param>
    /// <param name="options">Columns, seed, batch size and the model's options (must match <paramref name="generator"/>).</param>
    /// <param name="generator">The generator x_θ; the transformer owns and disposes it.</param>
    /// <param name="history">Per-epoch training records (may be empty).</param>
    internal CdalTransformer(MedSegContext context, CdalModelOptions options, CdalGeneratorNetwork generator, IReadOnlyList<CdalEpochRecord>? history = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(generator);
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be ≥ 1");
        Options = options.Clone();
        _sampler = new CdalSampler(Options.Cdal, generator);   // validates the options and checks the generator against them
        Context = context;
        _device = context.Device;
        _generator = generator;
        _generator.DropoutGenerator = null;
        _generator.MoveTo(_device);
        _generator.eval();
        History = history?.ToArray() ?? [];
    }

    /// <summary>The context the model predicts with.</summary>
    internal MedSegContext Context { get; }

    /// <summary>The options (a copy is kept; do not change this instance's).</summary>
    public CdalModelOptions Options { get; }

    /// <summary>The generator x_θ (owned by this transformer; in eval mode on the context's device).</summary>
    public CdalGeneratorNetwork Network => _generator;

    /// <summary>True for a binary model (one label channel).</summary>
    public bool IsBinary => Options.Cdal.Classes == 1;

    /// <summary>Image channels the model is conditioned on.</summary>
    public long ImageChannels => Options.Cdal.ImageChannels;

    /// <summary>Channels of the probability and of <see cref="Logits"/>: 1 (binary) or the number of classes including background.</summary>
    public long Classes => Options.Cdal.LabelChannels;

    /// <summary>The device the generator is on (the context's).</summary>
    public Device Device => _device;

    nn.Module IDifferentiableSegmenter.Network => _generator;

    /// <summary>
    /// Differentiable logits of the prediction for images float [N,C,H,W] (moved to <see cref="Device"/>): Algorithm 2
    /// unrolled with autograd over <see cref="CdalOptions.Samples"/> samples and averaged
    /// (<see cref="CdalSampler.Logits"/>: binary logit(p̄), multi-class log p̄), in the generator's current mode (the
    /// attacks put it in eval mode). The sampling noise (initial x_T, latents z, posterior draws) is drawn from one
    /// generator per image: <paramref name="generators"/> when given, else the prediction's own content-seeded ones, so
    /// that sigmoid(Logits(x)) is <see cref="PredictProbabilities"/>(x) (up to the 1e-6 floor). Either way the noise is a
    /// constant of the graph: an attack step differentiates a deterministic function of the image. (With the default
    /// seeding the noise is re-drawn from each new iterate's content, as the deployed model would; no expectation over
    /// the noise — EOT — is taken.) Memory grows with T × K generator calls held for the backward pass.
    /// </summary>
    public Tensor Logits(Tensor images, IReadOnlyList<Generator>? generators = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (images.dim() != 4 || images.size(1) != Options.Cdal.ImageChannels)
            throw new ArgumentException($"images must be [N,{Options.Cdal.ImageChannels},H,W], got [{string.Join(",", images.shape)}]", nameof(images));
        if (generators is not null) return _sampler.Logits(images.device == _device ? images : images.to(_device), generators);
        return SeededLogits(_sampler, Options.SamplingSeed, images, _device);
    }

    /// <summary>One generator per image, seeded by (<see cref="CdalModelOptions.SamplingSeed"/>, the image's content hash).</summary>
    private List<Generator> ImageGenerators(Tensor images) => ImageGenerators(images, Options.SamplingSeed);

    /// <summary>
    /// One generator per image of <paramref name="images"/> [N,C,H,W], seeded by (<paramref name="samplingSeed"/>, the
    /// image's content hash): the prediction's seeding (the trainer's online attack uses it on the network it trains).
    /// The caller disposes them.
    /// </summary>
    internal static List<Generator> ImageGenerators(Tensor images, ulong samplingSeed)
    {
        var gens = new List<Generator>((int)images.size(0));
        using var scope = NewDisposeScope();
        var cpu = images.detach().cpu();
        for (long i = 0; i < images.size(0); i++)
            gens.Add(new Generator(CdalSampler.ImageSeed(unchecked((long)samplingSeed), unchecked((long)ContentHash(cpu[i])))));
        return gens;
    }

    /// <summary>
    /// <paramref name="sampler"/>'s differentiable logits of images on <paramref name="device"/>, seeded per image by
    /// (<paramref name="samplingSeed"/>, content) — what <see cref="Logits"/> computes for a fitted model, for a generator still in training.
    /// </summary>
    internal static Tensor SeededLogits(CdalSampler sampler, ulong samplingSeed, Tensor images, Device device)
    {
        var own = ImageGenerators(images, samplingSeed);
        try { return sampler.Logits(images.device == device ? images : images.to(device), own); }
        finally { foreach (var g in own) g.Dispose(); }
    }

    /// <summary>Per-epoch training losses and validation Dice, in order.</summary>
    public IReadOnlyList<CdalEpochRecord> History { get; }

    /// <summary>The best validation mDice seen in training and its epoch, or null without validation data.</summary>
    public CdalEpochRecord? BestEpoch => History.Where(r => r.ValidationDice is not null).MaxBy(r => r.ValidationDice!.Value);

    /// <summary>The schema with the probability and predicted columns; checks the image column.</summary>
    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema, Options);

    internal static DataViewSchema OutputSchema(DataViewSchema inputSchema, CdalModelOptions o)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var (h, w) = SegmentationTransformer.CheckImage(inputSchema, o.ImageColumn, o.Cdal.ImageChannels, Name);
        long k = o.Cdal.LabelChannels;
        return new DataViewSchema.Builder(inputSchema)
            .AddColumn(o.ProbabilityColumn, new TensorColumnType(ScalarType.Float32, [k, h, w]))
            .AddColumn(o.PredictedColumn, k == 1 ? TensorColumnType.BinaryMask(h, w) : TensorColumnType.ClassMask(h, w))
            .ToSchema();
    }

    /// <summary>Adds the probability and predicted columns, lazily (see the class remarks).</summary>
    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var schema = GetOutputSchema(input.Schema);
        return new BatchedMapView(input, schema, [Options.ProbabilityColumn, Options.PredictedColumn], [Options.ImageColumn], Options.BatchSize, PredictRows);
    }

    /// <summary>
    /// The averaged probability of <see cref="CdalOptions.Samples"/> samples per image for images float32 [N,C,H,W] in
    /// [0,1] (any device), each image seeded by its content (see the class remarks): [N,1,H,W] or [N,Classes,H,W] on the
    /// context's device.
    /// </summary>
    public Tensor PredictProbabilities(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (images.dim() != 4 || images.size(1) != Options.Cdal.ImageChannels)
            throw new ArgumentException($"images must be [N,{Options.Cdal.ImageChannels},H,W], got [{string.Join(",", images.shape)}]", nameof(images));
        var gens = ImageGenerators(images);
        try
        {
            lock (_lock)
            {
                using var scope = NewDisposeScope();
                var x = images.device == _device ? images : images.to(_device);
                if (x.dtype != ScalarType.Float32) x = x.to(ScalarType.Float32);
                return _sampler.PredictProbability(x, gens).MoveToOuterDisposeScope();
            }
        }
        finally
        {
            foreach (var g in gens) g.Dispose();
        }
    }

    /// <summary>
    /// Probabilities (as <see cref="PredictProbabilities"/>) and predicted masks of a batch: float32 [N,1,H,W] {0,1}
    /// (binary) or int64 [N,H,W] (arg-max), on the context's device.
    /// </summary>
    public (Tensor Probability, Tensor Predicted) Predict(Tensor images)
    {
        using var scope = NewDisposeScope();
        var p = PredictProbabilities(images);
        var m = _sampler.ToMask(p);
        return (p.MoveToOuterDisposeScope(), m.MoveToOuterDisposeScope());
    }

    /// <summary>A 64-bit hash (FNV-1a over 32-bit words, then a SplitMix64 finaliser) of an image's shape and float32 values.</summary>
    internal static ulong ContentHash(Tensor image)
    {
        using var scope = NewDisposeScope();
        var values = image.to(ScalarType.Float32).contiguous().data<float>().ToArray();
        ulong h = 0xCBF29CE484222325UL;
        foreach (var d in image.shape) h = (h ^ (ulong)d) * 0x100000001B3UL;
        foreach (int bits in MemoryMarshal.Cast<float, int>(values.AsSpan())) h = (h ^ (uint)bits) * 0x100000001B3UL;
        h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9UL;
        h = (h ^ (h >> 27)) * 0x94D049BB133111EBUL;
        return h ^ (h >> 31);
    }

    private void PredictRows(IReadOnlyList<BatchedRow> rows)
    {
        string img = Options.ImageColumn;
        var images = rows.Select(r => r.Tensor(img)).ToList();
        foreach (var (t, r) in images.Zip(rows))
            if (t.dim() != 3) throw new InvalidOperationException($"{Name}: row {r.Position}: column '{img}' must be [C,H,W], got [{string.Join(",", t.shape)}]");
        foreach (var g in BatchedMapView.SameShapeGroups(images))
        {
            using var scope = NewDisposeScope();
            var (p, m) = Predict(stack(g.Select(i => images[i]).ToArray()));
            var pc = p.cpu();
            var mc = m.cpu();
            for (int k = 0; k < g.Length; k++)
            {
                rows[g[k]].Outputs[Options.ProbabilityColumn] = pc.narrow(0, k, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope();
                rows[g[k]].Outputs[Options.PredictedColumn] = mc.narrow(0, k, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope();
            }
        }
    }

    /// <summary>Writes the header, options (JSON, with the sampling seed), the generator's weights ("generator", safetensors) and the training history.</summary>
    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.WriteHeader(LoaderSignature, CurrentVersion, 1);
        context.WriteOptions(Options);
        context.WriteTensors("generator", _generator.StateDictInOrder());
        context.WriteText("history.json", JsonSerializer.Serialize(History, HistoryJson));
    }

    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static CdalTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    /// <summary>Rebuilds a saved model: the generator from its options, weights checked against the expected names and shapes.</summary>
    internal static CdalTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Version > CurrentVersion)
            throw new InvalidDataException($"{LoaderSignature}: model entry version {context.Version} is newer than this library reads ({CurrentVersion})");
        var options = context.ReadOptions<CdalModelOptions>()
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        if (options.Cdal is null) throw new InvalidDataException($"{LoaderSignature}: the model entry's options have no 'Cdal' settings");
        try { options.Cdal.Validate(); }
        catch (ArgumentException e) { throw new InvalidDataException($"{LoaderSignature}: the model entry's options are invalid: {e.Message}", e); }
        return context.LoadNetwork("generator", gen => new CdalGeneratorNetwork(options.Cdal, gen),
            net => new CdalTransformer(context.Context, options, net, context.ReadHistory<CdalEpochRecord>()));
    }

    /// <summary>Frees the generator.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _generator.Dispose();
    }
}
