using MLNetMedSeg.Core;
using System.Text.Json;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Diffusion;

/// <summary>
/// A fitted Bernoulli mask diffusion model (made by <see cref="MaskDiffusionEstimator"/>) that generates binary masks
/// (DASP §3.1: unseen masks ỹ sampled from p_θ, Eq. 4) with the strided sampler of <see cref="BernoulliDiffusion"/>
/// (<see cref="MaskDiffusionModelOptions.SampleSteps"/> of the T steps) and the EMA weights.
/// <para><b>Output view.</b> <see cref="Transform(Data.IDataView)"/> gives <b>k rows per input row</b>
/// (k = <see cref="MaskDiffusionModelOptions.SamplesPerRow"/>): output row r·k + j repeats input row r's columns and
/// adds <c>SyntheticMask</c> — float32 [1,H,W], {0, 1} with the default threshold final step — and <c>SampleIndex</c>
/// (Number, j = 0..k−1). One row per mask keeps every later stage (the image diffusion that draws an image for each
/// mask, the segmentation trainer) a plain row-wise consumer. The view is lazy: a cursor that asks for neither new
/// column runs nothing; one that does reads input rows ahead and samples up to
/// <see cref="MaskDiffusionModelOptions.SampleBatchSize"/> masks at once. Without <see cref="MaskDiffusionModelOptions.ConditionColumn"/>
/// the input's columns are not read to generate (any view works as a row count: DASP samples masks from noise).</para>
/// <para><b>Seeds.</b> Mask j of input row r draws all of its noise from its own generator seeded with
/// <c>MedSegContext.MixSeed(Seed, "row " + r, j)</c> (<see cref="MaskDiffusionModelOptions.Seed"/>, fixed at fit time and
/// saved): the same model gives the same masks for the same rows, whatever the batch size, the cursor or k (raising k
/// adds masks, it does not change the first ones). Rows are numbered in the input's order, so the view cannot be
/// shuffled (<see cref="IDataView.CanShuffle"/> is false: cache it to shuffle). On the CPU the network's arithmetic
/// does not depend on the batch either; on a GPU, kernels chosen per batch size may round differently, which can
/// flip a pixel whose draw lands within rounding of its probability.</para>
/// Owns its network: dispose it.
/// </summary>
public sealed class MaskDiffusionTransformer : Core.MLNet.StageTransformer, IDisposable
{
    /// <summary>The signature of this stage's model entries.</summary>
    public const string LoaderSignature = "MEDSEG.MASKDIFFUSION";

    /// <summary>The model-entry format version this class writes and reads.</summary>
    public const int CurrentVersion = 1;

    private const string Name = "MaskDiffusionTransformer";
    private static readonly JsonSerializerOptions HistoryJson = new() { WriteIndented = true };
    private readonly DiffusionUNet _network;
    private readonly Device _device;
    private readonly BernoulliDiffusion _sampler;
    private readonly object _lock = new();
    private bool _disposed;

    /// <summary>Wraps a trained network (which it then owns and moves to <paramref name="context"/>'s device).</summary>
    /// <param name="context">Device and logging.</param>
    /// <param name="options">Schedule, sampler, size, columns, seed; the network options must match <paramref name="network"/>.</param>
    /// <param name="network">The (EMA) network; the transformer owns and disposes it.</param>
    /// <param name="history">Per-epoch training records (may be empty).</param>
    internal MaskDiffusionTransformer(MedSegContext context, MaskDiffusionModelOptions options, DiffusionUNet network,
        IReadOnlyList<MaskDiffusionEpochRecord>? history = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(network);
        Options = options.Clone();
        Options.Validate();
        var n = network.Options;
        if (n.InChannels != Options.Network.InChannels || n.OutChannels != Options.Network.OutChannels || n.ConditionChannels != Options.Network.ConditionChannels)
            throw new ArgumentException($"the network ({n.InChannels}+{n.ConditionChannels} → {n.OutChannels} channels) does not match its options", nameof(network));
        Context = context;
        _device = context.Device;
        _network = network;
        _network.MoveTo(_device);
        _network.eval();
        _sampler = new BernoulliDiffusion(Options.Schedule, Options.Steps, Options.Parameterization).Respace(Options.SampleSteps);
        History = history?.ToArray() ?? [];
    }

    /// <summary>The context the model samples with.</summary>
    internal MedSegContext Context { get; }

    /// <summary>The options (do not change them).</summary>
    public MaskDiffusionModelOptions Options { get; }

    /// <summary>The denoising network (owned by this transformer; eval mode, on the context's device).</summary>
    public DiffusionUNet Network => _network;

    /// <summary>The respaced process the masks are sampled with.</summary>
    public BernoulliDiffusion Sampler => _sampler;

    /// <summary>Per-epoch training records, in order.</summary>
    public IReadOnlyList<MaskDiffusionEpochRecord> History { get; }

    /// <summary>The input schema plus the generated-mask and sample-index columns; checks the condition column if any.</summary>
    /// <summary>
    /// ML.NET: an augmenter. The result is the input itself to ML.NET (same schema and rows, so a fitted chain scores
    /// unchanged and a PredictionEngine passes rows through); it carries, for the library's stages downstream, the masks
    /// this model generates from the input rows (k per row, computed only when an image diffusion and the trainer ask;
    /// see <see cref="Augmentation.AugmentedTrainingData"/>). To draw masks for their own sake, use <see cref="Transform(IDataView)"/>
    /// on library data or <c>medseg generate</c>.
    /// </summary>
    public override Microsoft.ML.IDataView Transform(Microsoft.ML.IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var a = Augmentation.AugmentedTrainingData.From(input);
        GetOutputSchema(Core.MLNet.MLNetData.AsLibraryView(a.Input).Schema);
        return a.WithGeneratedMasks(() => Transform(Core.MLNet.MLNetData.AsLibraryView(a.Input)), Options.OutputColumn);
    }

    /// <summary>ML.NET: the input schema (checked: the model's condition column, when it has one); the augmenter adds nothing ML.NET sees.</summary>
    public override Microsoft.ML.DataViewSchema GetOutputSchema(Microsoft.ML.DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        GetOutputSchema(new Core.MLNet.MLNetInputView.SchemaOnly(inputSchema).Schema);
        return inputSchema;
    }

    /// <summary>ML.NET: passes rows through (the augmenter acts only while a chain is fitted).</summary>
    public override Microsoft.ML.Data.IRowToRowMapper GetRowToRowMapper(Microsoft.ML.DataViewSchema inputSchema) => IdentityMapper(GetOutputSchema(inputSchema));

    internal override DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => OutputSchema(inputSchema, Options, Options.Height, Options.Width, Options.Network.ConditionChannels);

    internal static DataViewSchema OutputSchema(DataViewSchema inputSchema, MaskDiffusionModelOptions o, long h, long w, long conditionChannels)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        if (o.ConditionColumn is { } cc) CheckCondition(inputSchema, cc, conditionChannels, h, w, Name);
        foreach (var c in new[] { o.OutputColumn, o.SampleIndexColumn })
            if (inputSchema.Contains(c))
                throw new SchemaException($"{Name}: the input already has a column '{c}'; choose another output column name", c);
        return new DataViewSchema.Builder(inputSchema)
            .AddColumn(o.OutputColumn, TensorColumnType.BinaryMask(h, w))
            .AddColumn(o.SampleIndexColumn, NumberColumnType.Instance)
            .ToSchema();
    }

    /// <summary>Checks an image condition column: float32 [C,H,W] with the given channels and size (−1 = any).</summary>
    internal static void CheckCondition(DataViewSchema schema, string column, long channels, long h, long w, string consumer)
    {
        var t = (TensorColumnType)schema.RequireTensor(column, TensorColumnType.Image(), consumer).Type;
        if (channels > 0 && t.Shape[0] >= 0 && t.Shape[0] != channels)
            throw new SchemaException($"{consumer}: condition column '{column}' has {t.Shape[0]} channels ({t}) but the network takes {channels}", column);
        if ((h > 0 && t.Shape[1] >= 0 && t.Shape[1] != h) || (w > 0 && t.Shape[2] >= 0 && t.Shape[2] != w))
            throw new SchemaException($"{consumer}: condition column '{column}' is {t} but the masks are {h}×{w}", column);
    }

    /// <summary>Adds k generated masks per row, lazily (see the class remarks).</summary>
    internal override IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new MaskDiffusionView(this, input, GetOutputSchema(input.Schema));
    }

    /// <summary>
    /// Samples mask j = 0..<paramref name="count"/>−1 of row <paramref name="row"/> (the masks the output view gives for
    /// that row when k ≥ count): [count,1,H,W] float32 on the context's device. <paramref name="condition"/>: the row's
    /// image [C,H,W] for a conditional model, else null.
    /// </summary>
    public Tensor GenerateForRow(long row, int count, Tensor? condition = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        using var scope = torch.NewDisposeScope();
        Tensor? cond = condition is null ? null : CheckConditionTensor(condition.dim() == 3 ? condition.unsqueeze(0) : condition, 1).expand(count, -1, -1, -1);
        var ids = Enumerable.Range(0, count).Select(j => (row, j)).ToArray();
        return GenerateCore(ids, cond).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The same model drawing <paramref name="samplesPerRow"/> masks per row (a copy of the network; the same seed, so
    /// sample j of row r is the mask this model draws there): how a flow asks a trained generator for its N′ = kN masks.
    /// The caller owns the copy.
    /// </summary>
    internal MaskDiffusionTransformer WithSamplesPerRow(int samplesPerRow)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(samplesPerRow, 1);
        var o = Options.Clone();
        o.SamplesPerRow = samplesPerRow;
        var net = new DiffusionUNet(_network.Options);
        try
        {
            using (torch.no_grad())
            {
                var source = _network.state_dict();
                foreach (var (k, v) in net.state_dict()) v.copy_(source[k]);
            }
            net.MoveTo(Context.Device);
            return new MaskDiffusionTransformer(Context, o, net, History);
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Samples mask 0 of rows <paramref name="firstRow"/> … firstRow + count − 1 of an unconditional model (the masks the
    /// output view gives for those rows' first sample): [count,1,H,W] float32 on the context's device.
    /// </summary>
    public Tensor Generate(int count, long firstRow = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(firstRow);
        if (Options.ConditionColumn is not null) throw new InvalidOperationException($"{Name}: the model is conditioned on '{Options.ConditionColumn}'; pass a condition image");
        return GenerateCore(Enumerable.Range(0, count).Select(i => (firstRow + i, 0)).ToArray(), null);
    }

    private Tensor CheckConditionTensor(Tensor c, long n)
    {
        var o = Options;
        if (o.ConditionColumn is null) throw new ArgumentException($"{Name}: the model is unconditional; pass no condition", "condition");
        if (c.dim() != 4 || c.size(0) != n || c.size(1) != o.Network.ConditionChannels || c.size(2) != o.Height || c.size(3) != o.Width)
            throw new ArgumentException($"{Name}: the condition must be [{n},{o.Network.ConditionChannels},{o.Height},{o.Width}], got [{string.Join(",", c.shape)}]", "condition");
        return c.to(ScalarType.Float32, _device);
    }

    /// <summary>Samples the masks (row, j) in chunks of SampleBatchSize; conditions [N,C,H,W] aligned with ids (or null).</summary>
    internal Tensor GenerateCore(IReadOnlyList<(long Row, int Index)> ids, Tensor? conditions)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var o = Options;
        if (o.ConditionColumn is not null && conditions is null) throw new ArgumentException($"{Name}: the model is conditioned on '{o.ConditionColumn}'; a condition is needed", nameof(conditions));
        if (conditions is not null) conditions = CheckConditionTensor(conditions, ids.Count);
        var parts = new List<Tensor>();
        try
        {
            for (int s = 0; s < ids.Count; s += o.SampleBatchSize)
            {
                int len = Math.Min(o.SampleBatchSize, ids.Count - s);
                var gens = new Generator[len];
                try
                {
                    for (int k = 0; k < len; k++) gens[k] = new Generator(SeedOf(o.Seed, ids[s + k].Row, ids[s + k].Index), _device);
                    using var scope = torch.NewDisposeScope();
                    var cond = conditions?.narrow(0, s, len);
                    lock (_lock)
                    {
                        _network.eval();
                        var y = _sampler.Sample((yt, ts) => _network.call(yt, ts, cond), gens, [1, o.Height, o.Width], o.FinalStep, _device);
                        parts.Add(y);
                    }
                }
                finally
                {
                    foreach (var g in gens) g?.Dispose();
                }
            }
            using var outer = torch.NewDisposeScope();
            return (parts.Count == 1 ? parts[0].alias() : torch.cat(parts.ToArray(), 0)).MoveToOuterDisposeScope();
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>The seed of mask <paramref name="index"/> of row <paramref name="row"/>.</summary>
    public static ulong SeedOf(ulong modelSeed, long row, int index) =>
        MedSegContext.MixSeed(modelSeed, "row " + row.ToString(System.Globalization.CultureInfo.InvariantCulture), index);

    /// <summary>Writes the header, options (JSON), the network's (EMA) weights ("weights") and the history.</summary>
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
    private static MaskDiffusionTransformer Create(Microsoft.ML.Runtime.IHostEnvironment env, Microsoft.ML.ModelLoadContext ctx) =>
        Core.MLNet.ModelFiles.Load(env, ctx, LoaderSignature, CurrentVersion, Load);

    internal static MaskDiffusionTransformer Load(ModelLoadContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = context.ReadOptions<MaskDiffusionModelOptions>(CurrentVersion)
            ?? throw new InvalidDataException($"{LoaderSignature}: the model entry has no options");
        options.Validate();
        return context.LoadNetwork("weights", gen => new DiffusionUNet(options.Network, gen),
            net => new MaskDiffusionTransformer(context.Context, options, net, context.ReadHistory<MaskDiffusionEpochRecord>()));
    }

    /// <summary>Frees the network.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _network.Dispose();
    }

    /// <summary>The output view: k rows per input row (see the class remarks).</summary>
    private sealed class MaskDiffusionView(MaskDiffusionTransformer owner, IDataView source, DataViewSchema schema) : IDataView
    {
        public DataViewSchema Schema { get; } = schema;

        public long? GetRowCount() => source.GetRowCount() * owner.Options.SamplesPerRow;

        /// <summary>False: masks are seeded by input row number, so rows are visited in order (cache the view to shuffle).</summary>
        public bool CanShuffle => false;

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            var needed = columnsNeeded.Select(c => Schema[c.Name]).ToArray();
            var o = owner.Options;
            bool generate = needed.Any(c => c.Name == o.OutputColumn);
            var srcCols = new HashSet<string>(needed.Where(c => c.Name != o.OutputColumn && c.Name != o.SampleIndexColumn).Select(c => c.Name));
            if (generate && o.ConditionColumn is { } cc) srcCols.Add(cc);
            var cols = srcCols.Select(n => source.Schema[n]).ToArray();
            return new Cursor(owner, this, needed, cols, generate, source.GetRowCursor(cols));
        }

        /// <summary>One input row (its requested values, cloned) and its k masks.</summary>
        private sealed class Row(long index, Dictionary<string, object> values)
        {
            public long Index { get; } = index;
            public Dictionary<string, object> Values { get; } = values;
            public Tensor?[] Masks { get; set; } = [];

            public void Dispose()
            {
                foreach (var v in Values.Values) (v as Tensor)?.Dispose();
                foreach (var m in Masks) m?.Dispose();
            }
        }

        private sealed class Cursor : DataViewRowCursor
        {
            private readonly MaskDiffusionTransformer _owner;
            private readonly MaskDiffusionView _view;
            private readonly DataViewSchema.Column[] _srcCols;
            private readonly bool _generate;
            private readonly DataViewRowCursor _src;
            private readonly bool[] _active;
            private readonly int _k;
            private readonly Queue<Row> _ahead = new();
            private Row? _current;
            private int _j;
            private long _srcIndex = -1;
            private bool _srcDone, _disposed;

            public Cursor(MaskDiffusionTransformer owner, MaskDiffusionView view, DataViewSchema.Column[] needed,
                DataViewSchema.Column[] srcCols, bool generate, DataViewRowCursor src)
            {
                _owner = owner;
                _view = view;
                _srcCols = srcCols;
                _generate = generate;
                _src = src;
                _k = owner.Options.SamplesPerRow;
                _active = view.Schema.Select(c => needed.Any(n => n.Index == c.Index)).ToArray();
            }

            public override DataViewSchema Schema => _view.Schema;

            public override bool MoveNext()
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_current is not null && _j + 1 < _k)
                {
                    _j++;
                    Position++;
                    return true;
                }
                _current?.Dispose();
                _current = null;
                if (_ahead.Count == 0 && !_srcDone) ReadAhead();
                if (_ahead.Count == 0)
                {
                    Position = -1;
                    return false;
                }
                _current = _ahead.Dequeue();
                _j = 0;
                Position = _current.Index * _k;
                return true;
            }

            private void ReadAhead()
            {
                var o = _owner.Options;
                int n = _generate ? Math.Max(1, o.SampleBatchSize / _k) : 1;
                var rows = new List<Row>(n);
                try
                {
                    while (rows.Count < n)
                    {
                        if (!_src.MoveNext()) { _srcDone = true; break; }
                        // The row's number is its source position (its visit order for a plain view; the row's
                        // number in the caller's data when a PredictionEngine feeds rows one at a time).
                        _srcIndex = _src.Position;
                        var values = new Dictionary<string, object>(StringComparer.Ordinal);
                        var row = new Row(_srcIndex, values);
                        rows.Add(row);
                        foreach (var c in _srcCols)
                        {
                            var v = _src.GetValue(c);
                            values[c.Name] = v is Tensor t ? t.clone().DetachFromDisposeScope() : v;
                        }
                    }
                    if (rows.Count > 0 && _generate) Generate(rows);
                    foreach (var r in rows) _ahead.Enqueue(r);
                    rows.Clear();
                }
                finally
                {
                    foreach (var r in rows) r.Dispose();
                }
            }

            private void Generate(List<Row> rows)
            {
                var o = _owner.Options;
                using var scope = torch.NewDisposeScope();
                var ids = rows.SelectMany(r => Enumerable.Range(0, _k).Select(j => (r.Index, j))).ToArray();
                Tensor? cond = null;
                if (o.ConditionColumn is { } cc)
                {
                    var images = rows.Select(r => (Tensor)r.Values[cc]).ToArray();
                    foreach (var (t, r) in images.Zip(rows))
                        if (t.dim() != 3 || t.size(0) != o.Network.ConditionChannels || t.size(1) != o.Height || t.size(2) != o.Width)
                            throw new InvalidOperationException($"{Name}: row {r.Index}: condition '{cc}' must be [{o.Network.ConditionChannels},{o.Height},{o.Width}], got [{string.Join(",", t.shape)}]");
                    cond = torch.stack(images, 0).repeat_interleave_rows(_k);
                }
                var masks = _owner.GenerateCore(ids, cond).cpu();
                int m = 0;
                foreach (var r in rows)
                {
                    r.Masks = new Tensor?[_k];
                    for (int j = 0; j < _k; j++, m++)
                        r.Masks[j] = masks.narrow(0, m, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope();
                }
            }

            public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

            public override object GetValue(DataViewSchema.Column column)
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (!_active[column.Index]) throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was created");
                var row = _current ?? throw new InvalidOperationException("the cursor is not on a row (call MoveNext first)");
                var o = _owner.Options;
                if (column.Name == o.OutputColumn) return row.Masks[_j]!;
                if (column.Name == o.SampleIndexColumn) return (double)_j;
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
}

internal static class MaskDiffusionTensorExtensions
{
    /// <summary>[N,...] → [N·k,...] with each row repeated k times in place (row r at r·k … r·k + k − 1).</summary>
    public static Tensor repeat_interleave_rows(this Tensor t, int k)
    {
        if (k == 1) return t.alias();
        using var scope = torch.NewDisposeScope();
        long n = t.size(0);
        var rest = t.shape.Skip(1).ToArray();
        var e = t.unsqueeze(1).expand([n, k, .. rest]);
        return e.reshape([n * k, .. rest]).MoveToOuterDisposeScope();
    }
}
