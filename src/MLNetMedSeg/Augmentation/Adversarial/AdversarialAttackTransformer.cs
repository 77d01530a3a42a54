using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Torch;

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
/// give bit-identical outputs, also after save and load. It is an augmenter: in a chain it applies in
/// <see cref="TransformerScope.Training"/> only by default.
/// Saving writes the segmenter as the child entry "segmenter" and the SDEdit model, when it is an
/// <see cref="ITransformer"/>, as "sdeditor". An SDEdit model that is not a transformer is not saved: after loading,
/// set <see cref="SdEditor"/> again before transforming (the error says so).
/// </summary>
public sealed class AdversarialAttackTransformer : IScopedTransformer, IDisposable
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

    internal AdversarialAttackTransformer(AdversarialAttackOptions options, SegmentationTransformer segmenter, ISdEditor? sdEditor,
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

    /// <summary>The attacked segmenter (in eval mode; never changed).</summary>
    public SegmentationTransformer Segmenter { get; }

    /// <summary>The seed every row's draws derive from.</summary>
    public ulong Seed { get; }

    /// <summary>Augmenters apply when training only.</summary>
    public TransformerScope DefaultScope => TransformerScope.Training;

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
            if (value.ImageChannels != Segmenter.Options.Network.InChannels)
                throw new ArgumentException($"{Name}: the SDEdit model works on {value.ImageChannels} channels but the segmenter takes {Segmenter.Options.Network.InChannels}", nameof(value));
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
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema, _options, Segmenter);

    internal static DataViewSchema OutputSchema(DataViewSchema inputSchema, AdversarialAttackOptions o, SegmentationTransformer segmenter)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var (h, w) = SegmentationTransformer.CheckImage(inputSchema, o.ImageColumn, segmenter.Options.Network.InChannels, Name);
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
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        var schema = GetOutputSchema(input.Schema);
        _ = Attack; // fail now, not at the first row, when the SDEdit model is missing
        return new AttackedView(this, input, schema);
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
    public void Save(ModelSaveContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        ObjectDisposedException.ThrowIf(_disposed, this);
        bool saveSd = _sdEditor is ITransformer;
        context.WriteOptionsEntry(LoaderSignature, CurrentVersion, new AdversarialAttackModelOptions { Attack = _options.Clone(), Seed = Seed, SdEditorSaved = saveSd });
        context.WriteChild("segmenter", Segmenter);
        if (saveSd) context.WriteChild("sdeditor", (ITransformer)_sdEditor!);
    }

    /// <summary>
    /// Rebuilds a saved stage with its segmenter (and SDEdit model when it was saved; otherwise set
    /// <see cref="SdEditor"/> before transforming). The loaded stage owns what it loaded.
    /// </summary>
    public static AdversarialAttackTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var saved = context.ReadOptions<AdversarialAttackModelOptions>(CurrentVersion)
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        var child = context.ReadChild("segmenter");
        if (child is not SegmentationTransformer segmenter)
        {
            (child as IDisposable)?.Dispose();
            throw new InvalidDataException($"{LoaderSignature}: the child entry 'segmenter' is a {child.GetType().Name}, not a segmentation model");
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
            segmenter.Dispose();
            (sd as IDisposable)?.Dispose();
            throw;
        }
    }

    /// <summary>Frees what this stage loaded itself (a segmenter or SDEdit model passed in by the caller stays the caller's).</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_ownsSegmenter) Segmenter.Dispose();
        if (_ownsSdEditor) (_sdEditor as IDisposable)?.Dispose();
    }

    /// <summary>The output view: the input plus the attack's columns, computed a batch at a time.</summary>
    private sealed class AttackedView(AdversarialAttackTransformer owner, IDataView source, DataViewSchema schema) : IDataView
    {
        public DataViewSchema Schema { get; } = schema;

        public long? GetRowCount() => source.GetRowCount();

        public bool CanShuffle => source.CanShuffle;

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            var o = owner._options;
            var outputs = new HashSet<string>(new[] { o.AttackedImageColumn, o.PerturbedImageColumn, o.UncertaintyColumn }.OfType<string>(), StringComparer.Ordinal);
            var needed = columnsNeeded.Select(c => Schema[c.Name]).ToArray();
            bool compute = needed.Any(c => outputs.Contains(c.Name));
            var srcNames = new HashSet<string>(needed.Where(c => !outputs.Contains(c.Name)).Select(c => c.Name), StringComparer.Ordinal);
            if (compute)
            {
                srcNames.Add(o.ImageColumn);
                srcNames.Add(o.MaskColumn);
            }
            var srcCols = srcNames.Select(n => source.Schema[n]).ToArray();
            return new Cursor(owner, Schema, needed, outputs, srcCols, compute, source.GetRowCursor(srcCols, rand));
        }
    }

    /// <summary>One read-ahead row: copies of its requested source values and its outputs.</summary>
    private sealed class Row(long position) : IDisposable
    {
        public long Position { get; } = position;
        public Dictionary<string, object> Values { get; } = new(StringComparer.Ordinal);

        public void Dispose()
        {
            foreach (var v in Values.Values) (v as Tensor)?.Dispose();
            Values.Clear();
        }
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly AdversarialAttackTransformer _owner;
        private readonly DataViewSchema _schema;
        private readonly HashSet<string> _outputs;
        private readonly DataViewSchema.Column[] _srcCols;
        private readonly bool _compute;
        private readonly DataViewRowCursor _src;
        private readonly bool[] _active;
        private readonly Queue<Row> _ahead = new();
        private Row? _current;
        private bool _srcDone, _disposed;

        public Cursor(AdversarialAttackTransformer owner, DataViewSchema schema, DataViewSchema.Column[] needed, HashSet<string> outputs,
            DataViewSchema.Column[] srcCols, bool compute, DataViewRowCursor src)
        {
            _owner = owner;
            _schema = schema;
            _outputs = outputs;
            _srcCols = srcCols;
            _compute = compute;
            _src = src;
            _active = new bool[schema.Count];
            foreach (var c in needed) _active[c.Index] = true;
        }

        public override DataViewSchema Schema => _schema;

        public override bool MoveNext()
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _current?.Dispose();
            _current = null;
            if (!_compute)
            {
                bool ok = _src.MoveNext();
                Position = _src.Position;
                return ok;
            }
            if (_ahead.Count == 0 && !_srcDone) ReadAhead();
            if (_ahead.Count == 0)
            {
                Position = -1;
                return false;
            }
            _current = _ahead.Dequeue();
            Position = _current.Position;
            return true;
        }

        private void ReadAhead()
        {
            var o = _owner._options;
            var rows = new List<Row>(o.BatchSize);
            try
            {
                while (rows.Count < o.BatchSize)
                {
                    if (!_src.MoveNext()) { _srcDone = true; break; }
                    var row = new Row(_src.Position);
                    rows.Add(row);
                    foreach (var c in _srcCols)
                    {
                        var v = _src.GetValue(c);
                        row.Values[c.Name] = v is Tensor t ? t.clone().DetachFromDisposeScope() : v;
                    }
                }
                if (rows.Count == 0) return;
                foreach (var group in rows.GroupBy(r => string.Join(",", ((Tensor)r.Values[o.ImageColumn]).shape)))
                    AttackGroup(group.ToArray());
                foreach (var r in rows) _ahead.Enqueue(r);
                rows.Clear();
            }
            finally
            {
                foreach (var r in rows) r.Dispose();
            }
        }

        /// <summary>Attacks rows of one image size together and stores their outputs (CPU copies).</summary>
        private void AttackGroup(Row[] rows)
        {
            var o = _owner._options;
            using var scope = torch.NewDisposeScope();
            var images = torch.stack(rows.Select(r => (Tensor)r.Values[o.ImageColumn]).ToArray(), 0);
            var masks = torch.stack(rows.Select(r => (Tensor)r.Values[o.MaskColumn]).ToArray(), 0);
            var result = _owner.AttackBatch(images, masks, rows.Select(r => r.Position).ToArray());
            var attacked = result.Attacked.to(ScalarType.Float32).cpu();
            var perturbed = result.Perturbed.to(ScalarType.Float32).cpu();
            var uncertainty = result.Uncertainty?.cpu();
            for (int k = 0; k < rows.Length; k++)
            {
                // Outputs are stored under their own names; a source value read under the same name is replaced.
                void Put(string? column, Tensor? t)
                {
                    if (column is null || t is null) return;
                    if (rows[k].Values.Remove(column, out var old)) (old as Tensor)?.Dispose();
                    rows[k].Values[column] = t.narrow(0, k, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope();
                }
                Put(o.AttackedImageColumn, attacked);
                Put(o.PerturbedImageColumn, perturbed);
                Put(o.UncertaintyColumn, uncertainty);
            }
        }

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override object GetValue(DataViewSchema.Column column)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was created");
            if (!_compute) return _src.GetValue(_src.Schema[column.Name]);
            var row = _current ?? throw new InvalidOperationException("the cursor is not on a row (call MoveNext first)");
            return row.Values[column.Name];
        }

        protected override void Dispose(bool disposing)
        {
            if (_disposed) return;
            _disposed = true;
            _current?.Dispose();
            _current = null;
            while (_ahead.Count > 0) _ahead.Dequeue().Dispose();
            _src.Dispose();
        }
    }
}
