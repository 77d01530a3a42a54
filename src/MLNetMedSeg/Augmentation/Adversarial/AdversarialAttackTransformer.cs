using MLNetMedSeg.Augmentation;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>What an <see cref="AdversarialAttackTransformer"/> writes into the model (JSON).</summary>
public sealed class AdversarialAttackModelOptions
{
    /// <summary>The attack.</summary>
    public AdversarialAttackOptions Attack { get; set; } = new();

    /// <summary>The seed every row's draws derive from.</summary>
    public ulong Seed { get; set; }

    /// <summary>True when the SDEdit model was saved as the child entry "sdeditor" (it is an <see cref="ITransformer"/>).</summary>
    public bool SdEditorSaved { get; set; }
}

/// <summary>
/// A fitted adversarial augmenter: adds the attacked image (and optionally x̃ᴷ before SDEdit and the uncertainty map W)
/// of every row; the mask column passes through unchanged, so the pairs (attacked image, mask) train a segmenter. The
/// output view is lazy and batched: a cursor that asks for an output column reads
/// <see cref="AdversarialAttackOptions.BatchSize"/> rows ahead, attacks them at once on the segmenter's device and
/// serves them one at a time (rows of different sizes are attacked one by one). Row r (the cursor's position) draws its
/// random start from (seed, r) and a batch its SDEdit noise from (seed, first row): the same seed, order and batch size
/// give bit-identical outputs, also after save and load. It is an augmenter: append it to an ML.NET chain
/// with <c>TransformerScope.Training</c> so that it applies only while later stages are fitted.
/// The segmenter is any <see cref="IDifferentiableSegmenter"/>: a U-Net's <see cref="SegmentationTransformer"/> or a
/// cDAL model (<c>CdalTransformer</c>, attacked through Algorithm 2 unrolled with autograd).
/// Saving writes the segmenter (either kind) as the child entry "segmenter" and the SDEdit model, when it is an
/// <see cref="ITransformer"/>, as "sdeditor". An SDEdit model that is not a transformer is not saved: after loading,
/// set <see cref="SdEditor"/> again before transforming (the error says so).
/// </summary>
public sealed class AdversarialAttackTransformer : Core.MLNet.StageTransformer, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.ADVERSARIAL_ATTACK";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    private const string Name = "AdversarialAttackTransformer";
    private readonly AdversarialAttackOptions _options;
    private readonly bool _ownsSegmenter, _ownsSdEditor;
    private ISdEditor? _sdEditor;
    private AdversarialAttack? _attack;
    private bool _disposed;

    internal AdversarialAttackTransformer(AdversarialAttackOptions options, IDifferentiableSegmenter segmenter, ISdEditor? sdEditor,
        ulong seed, bool ownsSegmenter, bool ownsSdEditor)
    {
        _options = options.Clone();
        _options.Validate();
        Segmenter = segmenter;
        Seed = seed;
        _ownsSegmenter = ownsSegmenter;
        _ownsSdEditor = ownsSdEditor;
        if (sdEditor is not null) SdEditor = sdEditor;
    }

    /// <summary>The options (a copy).</summary>
    public AdversarialAttackOptions Options => _options.Clone();

    /// <summary>The attacked segmenter (a U-Net's <see cref="SegmentationTransformer"/> or a cDAL model; in eval mode; never changed).</summary>
    public IDifferentiableSegmenter Segmenter { get; }

    /// <summary>The seed every row's draws derive from.</summary>
    public ulong Seed { get; }

    /// <summary>
    /// The SDEdit model Diff-PGD refines with. Set it after loading a model whose SDEdit model could not be saved
    /// (one that is not an <see cref="ITransformer"/>); its image channels must match the segmenter's.
    /// </summary>
    public ISdEditor? SdEditor
    {
        get => _sdEditor;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (value.ImageChannels != Segmenter.ImageChannels)
                throw new ArgumentException($"{Name}: the SDEdit model works on {value.ImageChannels} channels but the segmenter takes {Segmenter.ImageChannels}", nameof(value));
            _sdEditor = value;
            _attack = null;
        }
    }

    /// <summary>The attack core with the current SDEdit model.</summary>
    private AdversarialAttack Attack
    {
        get
        {
            if (_options.NeedsSdEditor && _sdEditor is null)
                throw new InvalidOperationException(
                    $"{Name}: {_options.Method} needs an SDEdit model, and this one was not saved with the stage (it is not an ITransformer); set SdEditor on the loaded transformer before transforming");
            return _attack ??= new AdversarialAttack(_options, _sdEditor);
        }
    }

    /// <summary>Checks the image and mask columns against the segmenter and adds the output columns.</summary>
    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema, _options, Segmenter);

    internal static DataViewSchema OutputSchema(DataViewSchema inputSchema, AdversarialAttackOptions o, IDifferentiableSegmenter segmenter)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var (h, w) = SegmentationTransformer.CheckImage(inputSchema, o.ImageColumn, segmenter.ImageChannels, Name);
        bool classMask = TransformHelpers.RequireMask(inputSchema, o.MaskColumn, Name);
        if (classMask == segmenter.IsBinary)
            throw new SchemaException(
                $"{Name}: column '{o.MaskColumn}' is a {(classMask ? "class-index" : "binary")} mask ({inputSchema[o.MaskColumn].Type}) but the segmenter has a {(segmenter.IsBinary ? "binary head and needs a binary mask" : "multi-class head and needs a class-index mask")}", o.MaskColumn);
        var imageType = (TensorColumnType)inputSchema[o.ImageColumn].Type;
        var b = new DataViewSchema.Builder(inputSchema).AddColumn(o.AttackedImageColumn, new TensorColumnType(ScalarType.Float32, (long[])imageType.Shape.Clone()));
        if (o.PerturbedImageColumn is { } pc) b.AddColumn(pc, new TensorColumnType(ScalarType.Float32, (long[])imageType.Shape.Clone()));
        if (o.UncertaintyColumn is { } uc) b.AddColumn(uc, TensorColumnType.BinaryMask(h, w));
        return b.ToSchema();
    }

    /// <summary>Adds the attacked-image column (and the optional ones), lazily; see the class remarks.</summary>
    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var schema = GetOutputSchema(input.Schema);
        _ = Attack; // fail now, not at the first row, when the SDEdit model is missing
        var o = _options;
        string?[] added = [o.AttackedImageColumn, o.PerturbedImageColumn, o.UncertaintyColumn];
        return new BatchedMapView(input, schema, added.OfType<string>(), [o.ImageColumn, o.MaskColumn], o.BatchSize, AttackRows);
    }

    /// <summary>
    /// Attacks one batch (images [N,C,H,W] in [0,1], masks as the segmenter's head needs) with this stage's attack and
    /// seed; <paramref name="rowKeys"/> (default 0..N−1) seed the rows. The results join the caller's dispose scope.
    /// </summary>
    public AdversarialAttackResult AttackBatch(Tensor images, Tensor masks, IReadOnlyList<long>? rowKeys = null, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return Attack.Run(Segmenter, images, masks, Seed, rowKeys, cancellationToken);
    }

    /// <summary>Writes the header, the options (with the seed), the segmenter and, when it is a transformer, the SDEdit model.</summary>
    internal override void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool saveSd = _sdEditor is ITransformer;
        context.WriteOptionsEntry(LoaderSignature, CurrentVersion, new AdversarialAttackModelOptions { Attack = _options.Clone(), Seed = Seed, SdEditorSaved = saveSd });
        context.WriteChild("segmenter", DifferentiableSegmenters.AsChild(Segmenter, Name));
        if (saveSd) context.WriteChild("sdeditor", (ITransformer)_sdEditor!);
    }

    /// <summary>
    /// Rebuilds a saved stage with its segmenter (and SDEdit model when it was saved; otherwise set
    /// <see cref="SdEditor"/> before transforming). The loaded stage owns what it loaded.
    /// </summary>
    // ML.NET's loader (ml.Model.Load), registered in Core/MLNet/LoadableStages.cs.
    private static AdversarialAttackTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static AdversarialAttackTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var saved = context.ReadOptions<AdversarialAttackModelOptions>(CurrentVersion)
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        var child = context.ReadChild("segmenter");
        if (child is not IDifferentiableSegmenter segmenter)
        {
            (child as IDisposable)?.Dispose();
            throw new InvalidDataException($"{LoaderSignature}: the child entry 'segmenter' is a {child.GetType().Name}, not a segmentation model the attacks can differentiate (IDifferentiableSegmenter)");
        }
        ISdEditor? sd = null;
        try
        {
            if (saved.SdEditorSaved)
            {
                var s = context.ReadChild("sdeditor");
                sd = s as ISdEditor;
                if (sd is null)
                {
                    (s as IDisposable)?.Dispose();
                    throw new InvalidDataException($"{LoaderSignature}: the child entry 'sdeditor' is a {s.GetType().Name}, which does not implement ISdEditor");
                }
            }
            return new AdversarialAttackTransformer(saved.Attack, segmenter, sd, saved.Seed, ownsSegmenter: true, ownsSdEditor: true);
        }
        catch
        {
            (segmenter as IDisposable)?.Dispose();
            (sd as IDisposable)?.Dispose();
            throw;
        }
    }

    /// <summary>Frees what this stage loaded itself (a segmenter or SDEdit model passed in by the caller stays the caller's).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_ownsSegmenter) (Segmenter as IDisposable)?.Dispose();
        if (_ownsSdEditor) (_sdEditor as IDisposable)?.Dispose();
    }

    /// <summary>
    /// The output view's batch function (<see cref="BatchedMapView"/>): rows of one image size are attacked together,
    /// each seeded by its position, and their outputs kept as CPU copies.
    /// </summary>
    private void AttackRows(IReadOnlyList<BatchedRow> rows)
    {
        var o = _options;
        foreach (var group in rows.GroupBy(r => string.Join(",", r.Tensor(o.ImageColumn).shape)))
        {
            var g = group.ToArray();
            using var scope = torch.NewDisposeScope();
            var images = torch.stack(g.Select(r => r.Tensor(o.ImageColumn)).ToArray(), 0);
            var masks = torch.stack(g.Select(r => r.Tensor(o.MaskColumn)).ToArray(), 0);
            var result = AttackBatch(images, masks, g.Select(r => r.Position).ToArray());
            var attacked = result.Attacked.to(ScalarType.Float32).cpu();
            var perturbed = result.Perturbed.to(ScalarType.Float32).cpu();
            var uncertainty = result.Uncertainty?.cpu();
            for (int k = 0; k < g.Length; k++)
            {
                void Put(string? column, Tensor? t)
                {
                    if (column is null || t is null) return;
                    g[k].Outputs[column] = t.narrow(0, k, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope();
                }
                Put(o.AttackedImageColumn, attacked);
                Put(o.PerturbedImageColumn, perturbed);
                Put(o.UncertaintyColumn, uncertainty);
            }
        }
    }
}
