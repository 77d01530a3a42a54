using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Augmentation;
using System.Globalization;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>Options of offline adversarial augmentation (<see cref="AdversarialPairs"/>).</summary>
public sealed class AdversarialPairsOptions
{
    /// <summary>
    /// Attacked copies per row, each from its own seed (default 2: N′ = 2N, DASP §4.1). Copies differ only through the
    /// attack's randomness (a random start, SDEdit's noise): a deterministic attack (FGSM, PGD without random start) gives
    /// identical copies, so use 1 there (paper 001 doubles the data: N′ = N).
    /// </summary>
    public int Copies { get; set; } = 2;

    /// <summary>Put the N real rows (flag 0) before the N′ attacked ones (flag 1) (default true).</summary>
    public bool IncludeReal { get; set; } = true;

    /// <summary>The Number column flagging attacked rows with 1 and real ones with 0 (default "IsAugmented"), for the trainer's Eq. 11.</summary>
    public string IsAugmentedColumn { get; set; } = "IsAugmented";

    /// <summary>
    /// The image column of the result (default null: the attack's <see cref="AdversarialAttackOptions.ImageColumn"/>),
    /// e.g. "Image" when attacking DASP's synthetic "SyntheticImage" column.
    /// </summary>
    public string? OutputImageColumn { get; set; }

    /// <summary>The mask column of the result (default null: the attack's <see cref="AdversarialAttackOptions.MaskColumn"/>).</summary>
    public string? OutputMaskColumn { get; set; }

    /// <summary>A text column copied when the data has it; an attacked row's id is "id#advK" for copy K (default "Id").</summary>
    public string? IdColumn { get; set; } = "Id";

    /// <summary>A copy.</summary>
    public AdversarialPairsOptions Clone() => (AdversarialPairsOptions)MemberwiseClone();

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (Copies < 1) throw new ArgumentException($"Copies must be ≥ 1, got {Copies}", nameof(Copies));
        if (string.IsNullOrEmpty(IsAugmentedColumn)) throw new ArgumentException("IsAugmentedColumn must be a column name", nameof(IsAugmentedColumn));
        if (IdColumn is "") throw new ArgumentException("IdColumn must be null or a column name", nameof(IdColumn));
        if (OutputImageColumn is "") throw new ArgumentException("OutputImageColumn must be null or a column name", nameof(OutputImageColumn));
        if (OutputMaskColumn is "") throw new ArgumentException("OutputMaskColumn must be null or a column name", nameof(OutputMaskColumn));
    }
}

/// <summary>
/// Offline adversarial augmentation (DASP §3.4, paper 001 §3): attack a fitted segmenter on every row of a data view
/// and return the real pairs plus N′ = Copies·N attacked pairs (attacked image, unchanged mask) as one in-memory view
/// with an IsAugmented flag, ready for a second fit whose loss is Eq. 11 — set the trainer's
/// <see cref="SegmentationTrainerOptions.SampleWeightColumn"/> to the flag column (mode
/// <see cref="SampleWeightMode.IsAugmentedFlag"/>, the default). Rows are attacked in batches of
/// <see cref="AdversarialAttackOptions.BatchSize"/> on the segmenter's device and kept on the CPU.
/// </summary>
public static class AdversarialPairs
{
    private const string Name = "AdversarialPairs";

    /// <summary>Runs the attack over <paramref name="data"/> (see the class remarks); the seed is derived from <paramref name="context"/>.</summary>
    /// <param name="context">Seed and log.</param>
    /// <param name="data">Image and mask columns as <paramref name="options"/> names them.</param>
    /// <param name="segmenter">The fitted segmenter attacked (switched to eval mode for the attack; its weights are not changed).</param>
    /// <param name="options">The attack (default DASP's).</param>
    /// <param name="sdEditor">The SDEdit model; required by Diff-PGD / DASP.</param>
    /// <param name="pairs">Copies, flag and id columns (default: 2 copies, real rows included).</param>
    /// <param name="cancellationToken">Checked between batches and steps.</param>
    internal static InMemoryDataView Generate(MedSegContext context, IDataView data, IDifferentiableSegmenter segmenter,
        AdversarialAttackOptions? options = null, ISdEditor? sdEditor = null, AdversarialPairsOptions? pairs = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(segmenter);
        var o = (options ?? new AdversarialAttackOptions()).Clone();
        var p = (pairs ?? new AdversarialPairsOptions()).Clone();
        p.Validate();
        AdversarialAttackTransformer.OutputSchema(data.Schema, o, segmenter);
        var attack = new AdversarialAttack(o, sdEditor);
        if (p.Copies > 1 && !o.RandomStart && !o.NeedsSdEditor)
            context.WriteLog(LogLevel.Warning, Name, $"{o.Method} without a random start is deterministic: its {p.Copies} copies of each row are identical");
        ulong seed = context.DeriveSeed(Name);
        string? id = p.IdColumn is { } ic && data.Schema.GetColumnOrNull(ic)?.Type is TextColumnType ? ic : null;
        string image = p.OutputImageColumn ?? o.ImageColumn, mask = p.OutputMaskColumn ?? o.MaskColumn;
        var names = new[] { id, image, mask, p.IsAugmentedColumn }.OfType<string>().ToArray();
        if (names.Distinct(StringComparer.Ordinal).Count() != names.Length)
            throw new ArgumentException($"{Name}: the result's columns must have distinct names, got {string.Join(", ", names)}", nameof(pairs));
        long batches = data.GetRowCount() is long n ? (n + o.BatchSize - 1) / o.BatchSize : 0;
        var tracker = new ProgressTracker(context, Name, 1, batches * p.Copies, cancellationToken);
        using var collected = Collect(data, o.ImageColumn, o.MaskColumn, id, o.BatchSize, segmenter.Device, p.Copies, p.IncludeReal, seed,
            (x, y, s, keys) => attack.Run(segmenter, x, y, s, keys, cancellationToken), cancellationToken, tracker);
        tracker.EndEpoch();
        return collected.ToView(image, data.Schema[o.ImageColumn].Type, mask, data.Schema[o.MaskColumn].Type, id, p.IsAugmentedColumn);
    }

    /// <summary>An attack of one batch: images, masks, seed, row keys → result.</summary>
    internal delegate AdversarialAttackResult BatchAttack(Tensor images, Tensor masks, ulong seed, long[] rowKeys);

    /// <summary>
    /// Reads <paramref name="data"/> in order, in batches, and attacks each batch <paramref name="copies"/> times (copy c
    /// seeded by (seed, c), row keys = row indices); keeps CPU copies of the real rows (when asked) and of the attacked
    /// ones. Each attacked batch is a step of <paramref name="tracker"/> when one is given.
    /// </summary>
    internal static CollectedPairs Collect(IDataView data, string imageColumn, string maskColumn, string? idColumn, int batchSize, Device device,
        int copies, bool includeReal, ulong seed, BatchAttack attack, CancellationToken ct, ProgressTracker? tracker = null, Device? storage = null)
    {
        string[] columns = idColumn is null ? [imageColumn, maskColumn] : [imageColumn, maskColumn, idColumn];
        var real = new CollectedPairs(storage);
        var attacked = Enumerable.Range(0, copies).Select(_ => new CollectedPairs(storage)).ToArray();
        try
        {
            long row = 0;
            foreach (var batch in data.GetBatches(columns, batchSize, null, device, cancellationToken: ct))
            {
                var keys = Enumerable.Range(0, batch.Count).Select(i => row + i).ToArray();
                var ids = idColumn is null ? null : batch.Texts(idColumn);
                var x = batch[imageColumn];
                var y = batch[maskColumn];
                if (includeReal) real.Add(x, y, ids, 0);
                for (int c = 0; c < copies; c++)
                {
                    ct.ThrowIfCancellationRequested();
                    using var scope = torch.NewDisposeScope();
                    var r = attack(x, y, MedSegContext.MixSeed(seed, "copy", c), keys);
                    attacked[c].Add(r.Attacked, y, ids?.Select(s => s + "#adv" + c.ToString(CultureInfo.InvariantCulture)).ToArray(), 1);
                    tracker?.Step(items: batch.Count);
                }
                row += batch.Count;
            }
            foreach (var a in attacked) real.Append(a);
            return real;
        }
        catch
        {
            real.Dispose();
            throw;
        }
        finally
        {
            foreach (var a in attacked) a.Dispose();
        }
    }
}

/// <summary>Rows gathered on the CPU (images, masks, ids, flags) until they become a view.</summary>
internal sealed class CollectedPairs(Device? storage = null) : IDisposable
{
    private readonly Device _storage = storage ?? torch.CPU;
    private readonly List<Tensor> _images = [], _masks = [];
    private readonly List<string> _ids = [];
    private readonly List<double> _flags = [];

    public int Count => _images.Count;

    /// <summary>Adds copies of each row of a batch, kept on the storage device (default the CPU).</summary>
    public void Add(Tensor images, Tensor masks, string[]? ids, double flag)
    {
        using var scope = torch.NewDisposeScope();
        var xi = images.to(ScalarType.Float32).to(_storage);
        var yi = masks.to(_storage);
        for (int k = 0; k < xi.size(0); k++)
        {
            _images.Add(xi.narrow(0, k, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope());
            _masks.Add(yi.narrow(0, k, 1).squeeze(0).contiguous().clone().DetachFromDisposeScope());
            if (ids is not null) _ids.Add(ids[k]);
            _flags.Add(flag);
        }
    }

    /// <summary>Moves every row of <paramref name="other"/> to the end of this one.</summary>
    public void Append(CollectedPairs other)
    {
        _images.AddRange(other._images);
        _masks.AddRange(other._masks);
        _ids.AddRange(other._ids);
        _flags.AddRange(other._flags);
        other._images.Clear();
        other._masks.Clear();
        other._ids.Clear();
        other._flags.Clear();
    }

    /// <summary>The rows as a view (which takes the tensors over); this collection is left empty.</summary>
    public InMemoryDataView ToView(string imageColumn, ColumnType imageType, string maskColumn, ColumnType maskType, string? idColumn, string? flagColumn)
    {
        var cols = new List<(string, ColumnType, System.Collections.IList)>();
        if (idColumn is not null) cols.Add((idColumn, TextColumnType.Instance, _ids.ToList()));
        cols.Add((imageColumn, imageType, _images.ToList()));
        cols.Add((maskColumn, maskType, _masks.ToList()));
        if (flagColumn is not null) cols.Add((flagColumn, NumberColumnType.Instance, _flags.ToList()));
        var view = InMemoryDataView.Create(cols.ToArray());
        _images.Clear();
        _masks.Clear();
        _ids.Clear();
        _flags.Clear();
        return view;
    }

    public void Dispose()
    {
        foreach (var t in _images) t.Dispose();
        foreach (var t in _masks) t.Dispose();
        _images.Clear();
        _masks.Clear();
    }
}
