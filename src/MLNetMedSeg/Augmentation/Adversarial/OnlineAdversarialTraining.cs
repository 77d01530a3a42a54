using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Serialization;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>
/// Online adversarial training, the adversarial-training reading of DASP's Fig. 2: every
/// <see cref="EveryEpochs"/> epochs the segmentation trainer attacks its current network on all training rows
/// (<see cref="Copies"/> attacked copies each, N′ = Copies·N) and trains on real + attacked pairs with Eq. 11,
/// L_sup = mean Dice over the real rows + mean Dice over the attacked rows of each batch. Set it as
/// <see cref="SegmentationTrainerOptions.OnlineAttack"/>.
/// </summary>
public sealed class OnlineAdversarialOptions
{
    /// <summary>The attack (default: DASP's, which needs <see cref="SdEditor"/>; see the presets of <see cref="AdversarialAttackOptions"/>).</summary>
    public AdversarialAttackOptions Attack { get; set; } = new();

    /// <summary>Regenerate the attacked rows every n epochs, from epoch 1 (default 1: every epoch).</summary>
    public int EveryEpochs { get; set; } = 1;

    /// <summary>Attacked copies per real row (default 2: N′ = 2N, DASP §4.1).</summary>
    public int Copies { get; set; } = 2;

    /// <summary>
    /// The rows to attack (default null: the training rows themselves). DASP attacks its generated pairs {x̃, ỹ}
    /// (§3.3), not the real ones: set this to them; their image and mask columns must carry the trainer's column names
    /// and types. Copies·|Source| attacked rows are spread evenly over each epoch's real batches. Not saved.
    /// </summary>
    [JsonIgnore]
    public IDataView? Source { get; set; }

    /// <summary>The SDEdit model Diff-PGD / DASP need (not saved).</summary>
    [JsonIgnore]
    public ISdEditor? SdEditor { get; set; }

    /// <summary>A copy (the attack options copied, the SDEdit model shared).</summary>
    public OnlineAdversarialOptions Clone()
    {
        var c = (OnlineAdversarialOptions)MemberwiseClone();
        c.Attack = Attack.Clone();
        return c;
    }

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (Attack is null) throw new ArgumentException("Attack options are required", nameof(Attack));
        Attack.Validate();
        if (EveryEpochs < 1) throw new ArgumentException($"EveryEpochs must be ≥ 1, got {EveryEpochs}", nameof(EveryEpochs));
        if (Copies < 1) throw new ArgumentException($"Copies must be ≥ 1, got {Copies}", nameof(Copies));
        if (Attack.NeedsSdEditor && SdEditor is null)
            throw new ArgumentException($"the online attack {Attack.Method} needs an SDEdit model: set SdEditor", nameof(SdEditor));
    }
}

/// <summary>
/// The trainer's side of online adversarial training: holds the current set of attacked rows (on the CPU), regenerates
/// it against the network being trained and pairs its batches with the real ones.
/// </summary>
internal sealed class OnlineAdversarialAugmenter : IDisposable
{
    private const string Name = "OnlineAdversarialAugmenter";
    private readonly OnlineAdversarialOptions _options;
    private readonly AdversarialAttack _attack;
    private readonly ulong _seed;
    private InMemoryDataView? _attacked;
    private string _image = "", _mask = "";

    public OnlineAdversarialAugmenter(OnlineAdversarialOptions options, ulong seed)
    {
        _options = options.Clone();
        _options.Validate();
        _attack = new AdversarialAttack(_options.Attack, _options.SdEditor);
        _seed = seed;
    }

    /// <summary>Rows of the current attacked set (0 before the first regeneration).</summary>
    public long Count => _attacked?.RowCount ?? 0;

    /// <summary>True when epoch <paramref name="epoch"/> (1-based) starts with a regeneration (always when there is no set yet, e.g. after a resume).</summary>
    public bool IsDue(int epoch) => _attacked is null || (epoch - 1) % _options.EveryEpochs == 0;

    /// <summary>
    /// Attacks <paramref name="network"/> (in eval mode, its modes restored after) on every row of
    /// <see cref="OnlineAdversarialOptions.Source"/>, or of <paramref name="input"/> when no source is set.
    /// </summary>
    public void Regenerate(MedSegContext ctx, torch.nn.Module network, Func<Tensor, Tensor> logits, IDataView input, string imageColumn, string maskColumn,
        int batchSize, Device device, int epoch, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        _attacked?.Dispose();
        _attacked = null;
        ulong seed = MedSegContext.MixSeed(_seed, "epoch", epoch);
        input = _options.Source ?? input;
        using (ModuleModeScope.Eval(network))
        using (var pairs = AdversarialPairs.Collect(input, imageColumn, maskColumn, null, batchSize, device, _options.Copies, includeReal: false, seed,
                   (x, y, s, keys) => _attack.Run(logits, x, y, s, keys, ct), ct))
            _attacked = pairs.ToView(imageColumn, input.Schema[imageColumn].Type, maskColumn, input.Schema[maskColumn].Type, null, null);
        _image = imageColumn;
        _mask = maskColumn;
        ctx.WriteLog(LogLevel.Info, Name, string.Create(CultureInfo.InvariantCulture,
            $"epoch {epoch}: {_attacked.RowCount} attacked rows ({_options.Attack.Method}) against the current network in {clock.Elapsed.TotalSeconds:F1} s"));
    }

    /// <summary>
    /// The attacked rows of one epoch, shuffled with a seed of the epoch, in as many batches as the epoch has real
    /// batches (⌈<paramref name="realRows"/> / <paramref name="realBatchSize"/>⌉): the n-th goes with the n-th real batch.
    /// Without a source that is <paramref name="realBatchSize"/>·Copies rows per batch. When the real row count is not
    /// known (<paramref name="realRows"/> null) the batches have <paramref name="realBatchSize"/>·Copies rows.
    /// </summary>
    public IEnumerator<DataBatch> Batches(int realBatchSize, long? realRows, int epoch, Device device, CancellationToken ct)
    {
        var view = _attacked ?? throw new InvalidOperationException($"{Name}: no attacked rows yet (Regenerate first)");
        var rand = new Random((int)(MedSegContext.MixSeed(_seed, "shuffle", epoch) & 0x7FFFFFFF));
        int size = realBatchSize * _options.Copies;
        if (realRows is long n && n > 0)
        {
            long realBatches = (n + realBatchSize - 1) / realBatchSize;
            size = (int)Math.Max(1, (view.RowCount + realBatches - 1) / realBatches);
        }
        return view.GetBatches([_image, _mask], size, rand, device, cancellationToken: ct).GetEnumerator();
    }

    /// <summary>
    /// Appends the next attacked batch to a real one and returns Eq. 11's weights for the joint batch: real rows (those
    /// whose <paramref name="flagColumn"/> value is 0, or all without a flag column) weigh 1/N_real, augmented rows
    /// 1/N_aug. Without a next attacked batch the real batch is returned with the weights it had.
    /// </summary>
    public static (Tensor x, Tensor y, Tensor? w) Join(DataBatch real, Tensor x, Tensor y, Tensor? w, string? flagColumn,
        IEnumerator<DataBatch> attacked, string imageColumn, string maskColumn, Device device)
    {
        if (!attacked.MoveNext()) return (x, y, w);
        var a = attacked.Current;
        var flags = (flagColumn is null ? new bool[real.Count] : real.Numbers(flagColumn).Select(v => v != 0).ToArray())
            .Concat(Enumerable.Repeat(true, a.Count)).ToArray();
        return (torch.cat([x, a[imageColumn]], 0), torch.cat([y, a[maskColumn]], 0), SampleWeights.RealAndAugmented(flags, device));
    }

    public void Dispose()
    {
        _attacked?.Dispose();
        _attacked = null;
    }
}
