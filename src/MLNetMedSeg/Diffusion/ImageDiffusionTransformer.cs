using MLNetMedSeg.Augmentation;
using MLNetMedSeg.Core;
using System.Text.Json;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion;

/// <summary>One epoch of image diffusion training: mean ε-MSE (Eq. 8) and wall time.</summary>
public sealed record ImageDiffusionEpochRecord(int Epoch, double Loss, double Seconds);

/// <summary>
/// A fitted mask-conditioned image diffusion model (made by <see cref="ImageDiffusionEstimator"/>): the ε-network with
/// its EMA weights and the Gaussian process it was trained on. <see cref="Transform(Data.IDataView)"/> adds
/// <see cref="ImageDiffusionOptions.OutputColumn"/> — float32 [C,H,W] in [0,1], an image sampled for the mask in
/// <see cref="ImageDiffusionOptions.ConditionColumn"/> with the configured sampler — lazily and in batches of
/// <see cref="ImageDiffusionOptions.TransformBatchSize"/> rows. Row r's noise comes from a generator seeded by
/// (<see cref="SamplingSeed"/>, r), so its image is the same however rows are batched, and the same after a save/load.
/// Also the <see cref="ISdEditor"/> of the Diff-PGD augmenter. Owns its network: dispose it. Calls are serialised.
/// </summary>
public sealed class ImageDiffusionTransformer : Core.MLNet.StageTransformer, ISdEditor, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.IMAGE_DIFFUSION";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    internal const string Name = "ImageDiffusionTransformer";
    private static readonly JsonSerializerOptions HistoryJson = new() { WriteIndented = true };
    private readonly DiffusionUNet _network;
    private readonly object _lock = new();
    private bool _disposed;

    /// <summary>
    /// Wraps a trained network (its weights should be the EMA weights; the transformer owns it, moves it to the
    /// context's device and puts it in eval mode).
    /// </summary>
    /// <param name="context">Device and logging.</param>
    /// <param name="options">The stage's options; <see cref="ImageDiffusionOptions.SamplingSeed"/> must be set.</param>
    /// <param name="network">The ε-network (its options must be <paramref name="options"/>' resolved network).</param>
    /// <param name="history">Per-epoch training records (may be empty).</param>
    internal ImageDiffusionTransformer(MedSegContext context, ImageDiffusionOptions options, DiffusionUNet network,
        IReadOnlyList<ImageDiffusionEpochRecord>? history = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(network);
        _options = options.Clone();
        _options.Validate();
        if (_options.SamplingSeed is null) throw new ArgumentException("options.SamplingSeed must be set", nameof(options));
        var n = network.Options;
        if (n.InChannels != _options.ImageChannels || n.OutChannels != _options.ImageChannels || n.ConditionChannels != 1)
            throw new ArgumentException(
                $"the network ({n.InChannels} + {n.ConditionChannels} → {n.OutChannels} channels) does not take {_options.ImageChannels}-channel images and one mask", nameof(network));
        _options.Network = n.Clone();
        Context = context;
        _network = network;
        _network.to(context.Device);
        _network.eval();
        Diffusion = new GaussianDiffusion(NoiseSchedule.Create(_options.Schedule, _options.TimeSteps));
        History = history?.ToArray() ?? [];
    }

    /// <summary>The context the model samples with.</summary>
    internal MedSegContext Context { get; }

    private readonly ImageDiffusionOptions _options;

    /// <summary>The options (a copy; <see cref="ImageDiffusionOptions.Network"/> is the network's resolved options).</summary>
    public ImageDiffusionOptions Options => _options.Clone();

    /// <summary>The options themselves (not a copy), for the output view.</summary>
    internal ImageDiffusionOptions OptionsRef => _options;

    /// <summary>The ε-network holding the EMA weights (owned; eval mode; on the context's device).</summary>
    public DiffusionUNet Network => _network;

    /// <summary>The Gaussian process (schedule of T = TimeSteps steps).</summary>
    public GaussianDiffusion Diffusion { get; }

    /// <summary>Seed of the per-row sampling noise.</summary>
    public ulong SamplingSeed => _options.SamplingSeed!.Value;

    /// <summary>Per-epoch training loss, in order.</summary>
    public IReadOnlyList<ImageDiffusionEpochRecord> History { get; }

    /// <inheritdoc/>
    public int ImageChannels => _options.ImageChannels;

    /// <summary>
    /// Generated pairs {x̃, ỹ}: for every row of <paramref name="masks"/> (and each of <paramref name="copies"/> copies
    /// of it) an image drawn for the mask in <paramref name="maskColumn"/> with the noise of generated row n
    /// (<see cref="RowGenerator"/>), batched by <see cref="ImageDiffusionOptions.TransformBatchSize"/>. The result holds
    /// the images in <paramref name="imageColumn"/> and the masks in <paramref name="maskColumnOut"/>, on
    /// <paramref name="storage"/> (default the CPU; the context's device keeps generated pairs there from generation
    /// through attack to training); null when <paramref name="masks"/> has no rows. The caller owns it. The pairs are binary-mask training pairs: a soft
    /// mask (probability map) is binarised at 0.5 (<see cref="BinarizeMask"/>) both as the image's condition and as the
    /// pair's mask, so a mask diffusion with <see cref="BernoulliFinalStep.Mean"/> yields the same pairs as one with
    /// <see cref="BernoulliFinalStep.Threshold"/>.
    /// </summary>
    internal InMemoryDataView? DrawPairs(IDataView masks, string maskColumn, int copies, string imageColumn, ColumnType imageType,
        string maskColumnOut, ColumnType maskType, CancellationToken cancellationToken = default, Device? storage = null)
    {
        var to = storage ?? torch.CPU;
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentOutOfRangeException.ThrowIfLessThan(copies, 1);
        var xs = new List<Tensor>();
        var ys = new List<Tensor>();
        var pending = new List<Tensor>();
        try
        {
            void Flush()
            {
                if (pending.Count == 0) return;
                using var scope = torch.NewDisposeScope();
                long first = ys.Count;
                var gens = Enumerable.Range(0, pending.Count).Select(i => RowGenerator(first + i)).ToArray();
                try
                {
                    var batch = torch.stack(pending.ToArray(), 0);
                    var drawn = Sample(batch, gens).to(to);
                    for (int i = 0; i < pending.Count; i++)
                    {
                        xs.Add(drawn[i].clone().DetachFromDisposeScope());
                        ys.Add(pending[i].to(to).DetachFromDisposeScope());
                        if (!ReferenceEquals(ys[^1], pending[i])) pending[i].Dispose();
                    }
                    pending.Clear();
                }
                finally
                {
                    foreach (var g in gens) g.Dispose();
                }
            }

            using var cursor = masks.GetRowCursor(maskColumn);
            while (cursor.MoveNext())
            {
                cancellationToken.ThrowIfCancellationRequested();
                for (int j = 0; j < copies; j++)
                {
                    using (torch.NewDisposeScope())
                        pending.Add(BinarizeMask(cursor.GetTensor(maskColumn).to(Context.Device)).DetachFromDisposeScope());
                    if (pending.Count == Options.TransformBatchSize) Flush();
                }
            }
            Flush();
            if (xs.Count == 0) return null;
            var result = InMemoryDataView.Create((imageColumn, imageType, xs), (maskColumnOut, maskType, ys));
            xs.Clear();
            ys.Clear();
            return result;
        }
        finally
        {
            foreach (var t in xs) t.Dispose();
            foreach (var t in ys) t.Dispose();
            foreach (var t in pending) t.Dispose();
        }
    }

    /// <summary>The generator of row <paramref name="row"/>'s noise (the caller disposes it).</summary>
    public Generator RowGenerator(long row) => new(MedSegContext.MixSeed(SamplingSeed, "row", checked((int)row)), Context.Device);

    /// <summary>
    /// ML.NET: adds <see cref="ImageDiffusionOptions.OutputColumn"/> (an image sampled for each row's condition mask,
    /// lazily). When the input carries generated masks from a mask diffusion upstream (a chain being fitted, see
    /// <see cref="Augmentation.AugmentedTrainingData"/>), the result also carries the generated pairs: an image drawn for
    /// every generated mask, under the real data's image and mask column names, for the segmentation trainer.
    /// </summary>
    public override Microsoft.ML.IDataView Transform(Microsoft.ML.IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input is not Augmentation.AugmentedTrainingData { HasGeneratedMasks: true } a) return base.Transform(input);
        var o = _options;
        var real = Core.MLNet.MLNetData.AsLibraryView(a.Input).Schema;
        var imageType = real.RequireTensor(o.ImageColumn, TensorColumnType.Image(o.ImageChannels), "ImageDiffusion").Type;
        var maskType = real.RequireTensor(o.MaskColumn, TensorColumnType.BinaryMask(), "ImageDiffusion").Type;
        return a.WithInput(base.Transform(a.Input)).WithGeneratedPairs(() => DrawPairs(a.GeneratedMasks!, a.GeneratedMaskColumn!, 1, o.ImageColumn, imageType, o.MaskColumn, maskType, storage: Context.Device), this);
    }

    /// <summary>The schema with the generated-image column; checks the condition column (float32 [1,H,W]).</summary>
    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var c = (TensorColumnType)inputSchema.RequireTensor(_options.ConditionColumn, TensorColumnType.BinaryMask(), Name).Type;
        return new DataViewSchema.Builder(inputSchema)
            .AddColumn(_options.OutputColumn, new TensorColumnType(ScalarType.Float32, [_options.ImageChannels, c.Shape[1], c.Shape[2]]))
            .ToSchema();
    }

    /// <summary>Adds the generated-image column, lazily and in batches (see the class remarks).</summary>
    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var o = _options;
        return new BatchedMapView(input, GetOutputSchema(input.Schema), [o.OutputColumn], [o.ConditionColumn], o.TransformBatchSize, SampleBatch);
    }

    /// <summary>
    /// Samples one image per mask: <paramref name="masks"/> [N,1,H,W] float32 {0,1} (any device) → [N,C,H,W] in [0,1]
    /// on the context's device, with the configured sampler, steps, η and guidance. Noise from
    /// <paramref name="generators"/>: one for the batch or one per row (see <see cref="RowGenerator"/>); none = the
    /// global generator. No grad.
    /// </summary>
    public Tensor Sample(Tensor masks, IReadOnlyList<Generator>? generators = null)
    {
        ArgumentNullException.ThrowIfNull(masks);
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckMasks(masks, nameof(masks));
        lock (_lock)
        {
            using var scope = torch.NewDisposeScope();
            using var _ = torch.no_grad();
            var cond = Condition(masks);
            long n = cond.size(0);
            var x = Diffusion.Sample(_network.forward, [n, _options.ImageChannels, cond.size(2), cond.size(3)], cond,
                _options.SamplingOptions(), generators, Context.Device);
            return GaussianDiffusion.ToImageRange(x).MoveToOuterDisposeScope();
        }
    }

    /// <summary>Samples one image per mask with noise from <paramref name="generator"/> (see <see cref="Sample(Tensor, IReadOnlyList{Generator})"/>).</summary>
    public Tensor Sample(Tensor masks, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        return Sample(masks, [generator]);
    }

    /// <summary>
    /// SDEdit (see <see cref="ISdEditor"/> and <see cref="GaussianDiffusion.SdEdit"/>): images [N,C,H,W] in [0,1] are
    /// scaled to [−1, 1], noised to index <paramref name="depth"/> (T^s) of the schedule respaced to
    /// <paramref name="respacedSteps"/> steps, denoised with T^s + 1 DDIM (η = 0) steps (indices T^s … 0, DASP Eq. 1)
    /// conditioned on the masks (with the model's guidance scale) and scaled back to [0, 1] (clamped), on the images'
    /// device. Depth 0 returns the images; depth must be below <paramref name="respacedSteps"/>.
    /// </summary>
    public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, Generator? generator = null) =>
        SdEditCore(images, masks, respacedSteps, depth, differentiable, generator is null ? null : [generator]);

    /// <summary>SDEdit with one generator per row (or one for the batch), in one batch: row i's noise comes from generators[i].</summary>
    public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, IReadOnlyList<Generator> generators)
    {
        ArgumentNullException.ThrowIfNull(generators);
        return SdEditCore(images, masks, respacedSteps, depth, differentiable, generators);
    }

    private Tensor SdEditCore(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, IReadOnlyList<Generator>? generators)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(masks);
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckMasks(masks, nameof(masks));
        if (images.dim() != 4 || images.size(1) != _options.ImageChannels || images.size(0) != masks.size(0) ||
            images.size(2) != masks.size(2) || images.size(3) != masks.size(3))
            throw new ArgumentException(
                $"images must be [N,{_options.ImageChannels},H,W] matching masks [{string.Join(",", masks.shape)}], got [{string.Join(",", images.shape)}]", nameof(images));
        if (depth == 0) return differentiable ? images.alias() : images.detach();
        lock (_lock)
        {
            using var scope = torch.NewDisposeScope();
            var x = images.device == Context.Device ? images : images.to(Context.Device);
            var cond = Condition(masks);
            var y = Diffusion.SdEdit(_network.forward, GaussianDiffusion.ToModelRange(x), cond, respacedSteps, depth, differentiable,
                generators, _options.GuidanceScale);
            var result = GaussianDiffusion.ToImageRange(y);
            if (result.device != images.device) result = result.to(images.device);   // the contract: on the images' device
            return result.MoveToOuterDisposeScope();
        }
    }

    /// <summary>
    /// Masks → the network's condition 2·y − 1 ∈ {−1, 1} (so that the null condition 0 is distinct). The network was
    /// trained on binary masks: a soft mask (a probability map, e.g. from a mask diffusion with
    /// <see cref="BernoulliFinalStep.Mean"/>) is binarised first (<see cref="BinarizeMask"/>, y ≥ 0.5).
    /// </summary>
    private Tensor Condition(Tensor masks)
    {
        using var scope = torch.NewDisposeScope();
        var m = BinarizeMask(masks.to(ScalarType.Float32, Context.Device));
        return (m * S(2.0) - S(1.0)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// A mask consumed as binary: 1 where y ≥ 0.5, else 0 (float32). {0,1} masks come back unchanged; probability maps
    /// (a mask diffusion with <see cref="BernoulliFinalStep.Mean"/>) become the masks that
    /// <see cref="BernoulliFinalStep.Threshold"/> would have given.
    /// </summary>
    public static Tensor BinarizeMask(Tensor masks)
    {
        ArgumentNullException.ThrowIfNull(masks);
        using var scope = torch.NewDisposeScope();
        return masks.ge(S(0.5)).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    private static void CheckMasks(Tensor masks, string name)
    {
        if (masks.dim() != 4 || masks.size(1) != 1)
            throw new ArgumentException($"masks must be [N,1,H,W], got [{string.Join(",", masks.shape)}]", name);
    }

    /// <summary>Writes the header, options (JSON, with the sampling seed), the EMA weights ("weights") and the history.</summary>
    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        context.WriteHeader(LoaderSignature, CurrentVersion, 1);
        context.WriteOptions(_options);
        context.WriteTensors("weights", _network.StateDictInOrder());
        context.WriteText("history.json", JsonSerializer.Serialize(History, HistoryJson));
    }

    /// <summary>Rebuilds a saved model: the network from its options, weights checked against the expected shapes.</summary>
    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static ImageDiffusionTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static ImageDiffusionTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.ReadOptions<ImageDiffusionOptions>(CurrentVersion)
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        return context.LoadNetwork("weights", gen => new DiffusionUNet(options.ResolvedNetwork(options.Network.ImageSize), gen),
            net => new ImageDiffusionTransformer(context.Context, options, net, context.ReadHistory<ImageDiffusionEpochRecord>()));
    }

    /// <summary>Frees the network.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _network.Dispose();
    }

    /// <summary>
    /// The output view's batch function: one image per row for its condition mask, sampled at once for same-size masks
    /// (row by row otherwise), each row's noise seeded by its position.
    /// </summary>
    private void SampleBatch(IReadOnlyList<BatchedRow> rows)
    {
        string col = _options.ConditionColumn;
        var masks = rows.Select(r => r.Tensor(col)).ToList();
        foreach (var (t, r) in masks.Zip(rows))
            if (t.dim() != 3 || t.size(0) != 1)
                throw new InvalidOperationException($"{Name}: row {r.Position}: mask '{col}' must be [1,H,W], got [{string.Join(",", t.shape)}]");
        foreach (var g in BatchedMapView.SameShapeGroups(masks))
        {
            var images = SampleRows(g.Select(i => rows[i].Position).ToArray(), g.Select(i => masks[i]).ToArray());
            for (int k = 0; k < g.Length; k++) rows[g[k]].Outputs[_options.OutputColumn] = images[k];
        }
    }

    /// <summary>Samples the rows of one read-ahead batch (row-seeded), giving [C,H,W] CPU tensors outside any scope.</summary>
    internal Tensor[] SampleRows(IReadOnlyList<long> positions, IReadOnlyList<Tensor> masks)
    {
        var gens = positions.Select(RowGenerator).ToArray();
        try
        {
            using var scope = torch.NewDisposeScope();
            var x = Sample(torch.stack(masks.ToArray()), gens).cpu();
            return Enumerable.Range(0, masks.Count)
                .Select(k => x.narrow(0, k, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope()).ToArray();
        }
        finally
        {
            foreach (var g in gens) g.Dispose();
        }
    }
}
