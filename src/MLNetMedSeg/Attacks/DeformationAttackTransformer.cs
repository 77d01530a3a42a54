using MLNetMedSeg.Core;
using System.Text.Json;
using MLNetMedSeg.Attacks.Networks;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Attacks;

/// <summary>What a fitted deformation attacker saves and samples with (written as JSON into the model).</summary>
public sealed class DeformationAttackModelOptions
{
    /// <summary>The generator's architecture (rebuilt from it when loading).</summary>
    public DeformationGeneratorOptions Generator { get; set; } = new();

    /// <summary>ξ the generator was trained for (reported, not used to sample).</summary>
    public double Xi { get; set; }

    /// <summary>k, attacks per input row.</summary>
    public int Samples { get; set; } = 1;

    /// <summary>Rows the output view attacks at once.</summary>
    public int BatchSize { get; set; } = 8;

    /// <summary>The seed of the per-row latent noise.</summary>
    public ulong Seed { get; set; }

    /// <summary>Image column read.</summary>
    public string ImageColumn { get; set; } = "Image";

    /// <summary>Mask column read (null: none).</summary>
    public string? MaskColumn { get; set; } = "Mask";

    /// <summary>Output column of I_DV.</summary>
    public string AttackedImageColumn { get; set; } = "AttackedImage";

    /// <summary>Output column of the deformed ground truth.</summary>
    public string DeformedMaskColumn { get; set; } = "DeformedMask";

    /// <summary>Output column of D.</summary>
    public string DeformationColumn { get; set; } = "Deformation";

    /// <summary>Output column of V.</summary>
    public string IntensityColumn { get; set; } = "Intensity";

    /// <summary>A copy.</summary>
    public DeformationAttackModelOptions Clone()
    {
        var c = (DeformationAttackModelOptions)MemberwiseClone();
        c.Generator = Generator.Clone();
        return c;
    }

    internal static DeformationAttackModelOptions From(DeformationAttackOptions o, ulong seed) => new()
    {
        Generator = o.Generator.Clone(), Xi = o.Xi, Samples = o.Samples, BatchSize = o.BatchSize, Seed = seed,
        ImageColumn = o.ImageColumn, MaskColumn = o.MaskColumn, AttackedImageColumn = o.AttackedImageColumn,
        DeformedMaskColumn = o.DeformedMaskColumn, DeformationColumn = o.DeformationColumn, IntensityColumn = o.IntensityColumn,
    };

    internal IEnumerable<string> OutputColumns() => MaskColumn is null
        ? [AttackedImageColumn, DeformationColumn, IntensityColumn]
        : [AttackedImageColumn, DeformedMaskColumn, DeformationColumn, IntensityColumn];
}

/// <summary>A batch of attacks: row r's sample s is at index r·k + s of every tensor (on the context's device).</summary>
/// <param name="Attacked">I_DV [B·k, C, H, W].</param>
/// <param name="DeformedMask">The ground truth warped by D (nearest), [B·k, 1, H, W] float or [B·k, H, W] int64; null without masks.</param>
/// <param name="Deformation">D [B·k, 2, H, W] in pixels (zeros for the V-only variant).</param>
/// <param name="Intensity">V [B·k, C, H, W] (zeros for the D-only variant).</param>
public sealed record DeformationAttackBatch(Tensor Attacked, Tensor? DeformedMask, Tensor Deformation, Tensor Intensity) : IDisposable
{
    /// <summary>Frees the tensors.</summary>
    public void Dispose()
    {
        Attacked.Dispose();
        DeformedMask?.Dispose();
        Deformation.Dispose();
        Intensity.Dispose();
    }
}

/// <summary>
/// A fitted deformation attacker (made by <see cref="DeformationAttackEstimator"/>). <see cref="Transform"/> gives k
/// rows per input row (input columns repeated) with the attacked image I_DV, the ground truth moved by D (nearest),
/// and the fields D and V, each attack drawn from the learned latent Gaussians z ~ N(μ(I₀), σ(I₀)²). The noise of
/// sample s of the row at cursor position r comes from a generator seeded by (the model's seed, r, s): the same row
/// gets the same attacks whatever the batching, and a saved and reloaded model reproduces them. The output view is
/// lazy and batched (<see cref="DeformationAttackModelOptions.BatchSize"/> input rows per generator pass, eval mode,
/// no gradients). <c>Evaluate</c> scores the segmenter before and after the attack (per-class Dice, success rate
/// at a 30% Dice decrease, perceptibility p). The segmenter is saved as a child entry; a loaded attacker owns the
/// segmenter it loaded, a fitted one only refers to the estimator's. Dispose it.
/// </summary>
public sealed class DeformationAttackTransformer : Core.MLNet.StageTransformer, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.DEFORMATION_ATTACK";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    private const string Name = "DeformationAttackTransformer";
    private readonly DeformationGenerator _generator;
    private readonly bool _ownsSegmenter;
    private readonly Device _device;
    private readonly object _lock = new();
    private bool _disposed;

    /// <summary>Wraps a trained generator (which it then owns and moves to the context's device, eval mode).</summary>
    /// <param name="context">Device and logging.</param>
    /// <param name="options">Columns, k, seed and the generator's options (must match <paramref name="generator"/>).</param>
    /// <param name="generator">The generator; owned and disposed by this transformer.</param>
    /// <param name="segmenter">The attacked segmenter (for <c>Evaluate</c> and saving).</param>
    /// <param name="ownsSegmenter">Dispose <paramref name="segmenter"/> with this transformer.</param>
    /// <param name="history">Per-epoch training records (may be empty).</param>
    internal DeformationAttackTransformer(MedSegContext context, DeformationAttackModelOptions options, DeformationGenerator generator,
        IDifferentiableSegmenter segmenter, bool ownsSegmenter, IReadOnlyList<DeformationAttackEpochRecord>? history = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(generator);
        ArgumentNullException.ThrowIfNull(segmenter);
        if (options.Samples < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Samples, "Samples must be ≥ 1");
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, "BatchSize must be ≥ 1");
        if (JsonSerializer.Serialize(generator.Options) != JsonSerializer.Serialize(options.Generator))
            throw new ArgumentException("the generator does not match its options", nameof(generator));
        Options = options.Clone();
        Context = context;
        Segmenter = segmenter;
        _ownsSegmenter = ownsSegmenter;
        _device = context.Device;
        _generator = generator;
        _generator.MoveTo(_device);
        _generator.eval();
        History = history?.ToArray() ?? [];
    }

    /// <summary>The context the attacker runs in.</summary>
    internal MedSegContext Context { get; }

    /// <summary>The options (do not change this instance).</summary>
    public DeformationAttackModelOptions Options { get; }

    /// <summary>The attacked segmenter (a U-Net's <see cref="SegmentationTransformer"/> or a cDAL model).</summary>
    public IDifferentiableSegmenter Segmenter { get; }

    /// <summary>The generator (owned; eval mode).</summary>
    public DeformationGenerator Generator => _generator;

    /// <summary>Per-epoch training losses.</summary>
    public IReadOnlyList<DeformationAttackEpochRecord> History { get; }

    /// <summary>The output schema: the input's columns and I_DV, the deformed mask (with a mask column), D and V.</summary>
    /// <summary>k output rows per input row (ML.NET views repeat the input row's columns on each).</summary>
    public override int OutputRowsPerInputRow => Options.Samples;

    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema, Options, Segmenter.IsBinary);

    internal static DataViewSchema OutputSchema(DataViewSchema inputSchema, DeformationAttackModelOptions o, bool binary)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var (h, w) = SegmentationTransformer.CheckImage(inputSchema, o.ImageColumn, o.Generator.InChannels, Name);
        if (o.MaskColumn is { } mc)
        {
            var expected = binary ? TensorColumnType.BinaryMask(h, w) : TensorColumnType.ClassMask(h, w);
            inputSchema.RequireTensor(mc, expected, Name);
        }
        foreach (var c in o.OutputColumns())
            if (inputSchema.Contains(c)) throw new SchemaException($"{Name}: the input already has a column '{c}'; choose another output column name", c);
        var b = new DataViewSchema.Builder(inputSchema).AddColumn(o.AttackedImageColumn, TensorColumnType.Image(o.Generator.InChannels, h, w));
        if (o.MaskColumn is { } m) b.AddColumn(o.DeformedMaskColumn, inputSchema[m].Type);
        return b.AddColumn(o.DeformationColumn, new TensorColumnType(ScalarType.Float32, [2, h, w]))
            .AddColumn(o.IntensityColumn, TensorColumnType.Image(o.Generator.InChannels, h, w))
            .ToSchema();
    }

    /// <summary>k attacked rows per input row, lazily (see the class remarks).</summary>
    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new DeformationAttackView(this, input, GetOutputSchema(input.Schema));
    }

    /// <summary>
    /// Attacks a batch: images float32 [B, C, H, W] (any device), optional ground-truth masks ([B,1,H,W] float or
    /// [B,H,W] int64); k samples per image, image r's noise seeded by (seed, <paramref name="firstRow"/> + r, s).
    /// Eval mode, no gradients; results on the context's device.
    /// </summary>
    public DeformationAttackBatch Attack(Tensor images, Tensor? masks = null, long firstRow = 0)
    {
        ArgumentNullException.ThrowIfNull(images);
        ObjectDisposedException.ThrowIf(_disposed, this);
        long c = Options.Generator.InChannels;
        if (images.dim() != 4 || images.size(1) != c)
            throw new ArgumentException($"images must be [N,{c},H,W], got [{string.Join(",", images.shape)}]", nameof(images));
        int k = Options.Samples;
        long n = images.size(0);
        lock (_lock)
        {
            using var scope = NewDisposeScope();
            using var mode = no_grad();
            _generator.eval();
            var x = Repeat(images.to(_device).to(ScalarType.Float32), k);
            var seeds = new List<Generator>();
            try
            {
                for (long r = 0; r < n; r++)
                    for (int s = 0; s < k; s++)
                        seeds.Add(new Generator(MedSegContext.MixSeed(Options.Seed, $"row{firstRow + r}", s)));
                Tensor Noise(long[] shape)
                {
                    long[] one = [1, .. shape[1..]];
                    return cat(seeds.Select(g => SeededRandom.Randn(one, ScalarType.Float32, _device, g)).ToArray(), 0);
                }
                var f = DeformationSampler.Forward(_generator, x, Noise);
                var d = f.Deformation ?? zeros([x.size(0), 2, x.size(2), x.size(3)], ScalarType.Float32, _device);
                var v = f.Intensity ?? zeros_like(x);
                Tensor? m = masks is null ? null : DeformationWarp.WarpMask(Repeat(masks.to(_device), k), d);
                var batch = new DeformationAttackBatch(f.Attacked.contiguous(), m, d.contiguous(), v.contiguous());
                scope.MoveToOuter([.. new[] { batch.Attacked, batch.DeformedMask, batch.Deformation, batch.Intensity }.OfType<Tensor>()]);
                return batch;
            }
            finally
            {
                foreach (var g in seeds) g.Dispose();
            }
        }
    }

    /// <summary>Each row of [B, ...] repeated k times in place: [B·k, ...], row r's copies at r·k .. r·k + k − 1.</summary>
    private static Tensor Repeat(Tensor x, int k)
    {
        if (k == 1) return x;
        long[] shape = [x.size(0), k, .. x.shape[1..]];
        long[] flat = [x.size(0) * k, .. x.shape[1..]];
        return x.unsqueeze(1).expand(shape).reshape(flat);
    }

    /// <summary>
    /// Scores the attack on data with images and ground-truth masks (<see cref="DeformationAttackModelOptions.MaskColumn"/>):
    /// per class the segmenter's Dice on I₀ against the ground truth and on I_DV against the ground truth moved by D,
    /// the success rate at a 30% Dice decrease, and the perceptibility p (Eq. 7). See <see cref="DeformationAttackReport"/>.
    /// </summary>
    public DeformationAttackReport Evaluate(Microsoft.ML.IDataView data, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        return Evaluate(Core.MLNet.MLNetData.AsLibraryView(data), cancellationToken);
    }

    internal DeformationAttackReport Evaluate(IDataView data, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var o = Options;
        if (o.MaskColumn is null) throw new InvalidOperationException($"{Name}: Evaluate needs ground-truth masks; the attacker was built with MaskColumn = null");
        GetOutputSchema(data.Schema);
        int classes = Segmenter.IsBinary ? 2 : (int)Segmenter.Classes;
        var acc = new DeformationAttackReport.Accumulator(classes, o.Samples);
        long row = 0;
        foreach (var batch in data.GetBatches([o.ImageColumn, o.MaskColumn], o.BatchSize, device: _device, cancellationToken: cancellationToken))
        {
            using var scope = NewDisposeScope();
            var x = batch[o.ImageColumn];
            var gt = batch[o.MaskColumn];
            using var attack = Attack(x, gt, row);
            var (_, before) = Segmenter.Predict(x);
            var (_, after) = Segmenter.Predict(attack.Attacked);
            acc.Add(Repeat(before, o.Samples), Repeat(gt, o.Samples), after, attack.DeformedMask!,
                attack.Attacked.sub(Repeat(x, o.Samples)).abs().flatten(1).mean([1]));
            row += batch.Count;
        }
        return acc.Result(o.Xi, o.Generator.Variant);
    }

    /// <summary>Writes the header, options, generator weights ("generator"), the segmenter (child "segmenter") and the history.</summary>
    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.WriteHeader(LoaderSignature, CurrentVersion, 1);
        context.WriteOptions(Options);
        context.WriteTensors("generator", _generator.StateDictInOrder());
        context.WriteChild("segmenter", DifferentiableSegmenters.AsChild(Segmenter, Name));
        context.WriteText("history.json", JsonSerializer.Serialize(History));
    }

    /// <summary>Rebuilds a saved attacker: generator from its options (weights checked against the expected shapes) and the segmenter.</summary>
    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static DeformationAttackTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static DeformationAttackTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.ReadOptions<DeformationAttackModelOptions>(CurrentVersion)
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        var child = context.ReadChild("segmenter");
        if (child is not IDifferentiableSegmenter segmenter)
        {
            (child as IDisposable)?.Dispose();
            throw new InvalidDataException($"{LoaderSignature}: the child entry 'segmenter' is a {child.GetType().Name}, not a segmentation model the attacker can differentiate (IDifferentiableSegmenter)");
        }
        DeformationGenerator? net = null;
        try
        {
            net = new DeformationGenerator(options.Generator);   // weights are read next
            context.ReadModuleWeights("generator", net);
            var history = context.ReadHistory<DeformationAttackEpochRecord>();
            return new DeformationAttackTransformer(context.Context, options, net, segmenter, ownsSegmenter: true, history);
        }
        catch
        {
            net?.Dispose();
            (segmenter as IDisposable)?.Dispose();
            throw;
        }
    }

    /// <summary>Frees the generator (and the segmenter when owned).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _generator.Dispose();
        if (_ownsSegmenter) (Segmenter as IDisposable)?.Dispose();
    }
}
