using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation;

/// <summary>
/// Rows regenerated against the network being trained, every <see cref="EveryEpochs"/> epochs — online adversarial
/// training (<c>Augmentation.Adversarial.OnlineAdversarialOptions</c> implements it). Set as
/// <see cref="SegmentationTrainerOptions.OnlineAttack"/>; the trainer draws each epoch's batches from the pool of its
/// real rows and the current augmented rows with Eq. 11's weights. The trainer knows only this contract, so the
/// segmentation namespace does not depend on the attacks that depend on it.
/// </summary>
public interface IOnlineAugmentation
{
    /// <summary>Regenerate every this many epochs, from epoch 1.</summary>
    int EveryEpochs { get; }

    /// <summary>How many rows one regeneration gives for <paramref name="trainingRows"/> training rows (for the ETA).</summary>
    long RowsFor(long trainingRows);

    /// <summary>One line for the log (e.g. "Diff-PGD + W, 2 copies, every epoch").</summary>
    string Description { get; }

    /// <summary>A fresh augmenter for one Fit, owned by the trainer (engine side: implementations live in this library).</summary>
    internal IOnlineAugmenter CreateAugmenter(ulong seed);

    /// <summary>A copy (what the trainer keeps).</summary>
    IOnlineAugmentation Clone();

    /// <summary>Checks the settings; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    void Validate();
}

/// <summary>One Fit's online augmenter: regenerates its rows against the current network.</summary>
internal interface IOnlineAugmenter : IDisposable
{
    /// <summary>
    /// The rows for the coming epochs, under the trainer's image and mask columns; owned by the augmenter (valid until
    /// the next call or <see cref="IDisposable.Dispose"/>). The network's train/eval mode is restored on return.
    /// </summary>
    IDataView Regenerate(OnlineAugmentationRequest request);
}

/// <summary>What the trainer hands an <see cref="IOnlineAugmenter"/> when the rows are due.</summary>
/// <param name="Context">Seed, device, log.</param>
/// <param name="Network">The network being trained.</param>
/// <param name="Logits">Its forward pass (logits).</param>
/// <param name="TrainingData">The trainer's real rows.</param>
/// <param name="ImageColumn">The trainer's image column.</param>
/// <param name="MaskColumn">The trainer's mask column.</param>
/// <param name="BatchSize">The trainer's batch size.</param>
/// <param name="Device">Where the network runs.</param>
/// <param name="Epoch">The 1-based epoch about to start.</param>
/// <param name="CancellationToken">The run's cancellation.</param>
internal sealed record OnlineAugmentationRequest(MedSegContext Context, nn.Module Network, Func<Tensor, Tensor> Logits, IDataView TrainingData,
    string ImageColumn, string MaskColumn, int BatchSize, Device Device, int Epoch, CancellationToken CancellationToken);

/// <summary>
/// What a chain's augmenters hand the segmentation trainer when ML.NET fits it (see
/// <c>Augmentation.AugmentedTrainingData</c>): to ML.NET it is the real data; to the trainer it also carries generated
/// pairs and an online augmentation to run on them.
/// </summary>
internal interface IAugmentedTrainingInput
{
    /// <summary>The real data, which is all ML.NET sees.</summary>
    Microsoft.ML.IDataView Input { get; }

    /// <summary>True when a mask diffusion upstream generates masks.</summary>
    bool HasGeneratedMasks { get; }

    /// <summary>True when an image diffusion upstream draws generated pairs.</summary>
    bool HasGeneratedPairs { get; }

    /// <summary>The generated pairs, image and mask under the real data's column names (computed on first use).</summary>
    InMemoryDataView? GeneratedPairs { get; }

    /// <summary>The online augmentation to run on <paramref name="pairs"/> against the trainer's network, or null.</summary>
    IOnlineAugmentation? OnlineAugmentationOn(IDataView pairs);

    /// <summary>Frees the generated pairs (the trainer calls it once it has trained on them).</summary>
    void ReleaseGenerated();
}

/// <summary>Real rows followed by augmented rows, in memory, with the flag column Eq. 11's weights are read from.</summary>
public static class TrainingPool
{
    /// <summary>
    /// Real rows (flag 0) followed by augmented rows (flag 1), in memory on <paramref name="device"/> (default CPU): the
    /// image and mask columns (under the real data's names and types) and <paramref name="flagColumn"/>. With
    /// <paramref name="realFlagColumn"/>, a real row whose value there is ≠ 0 is flagged augmented too.
    /// </summary>
    internal static InMemoryDataView Join(IDataView real, IDataView augmented, string imageColumn, string maskColumn, string flagColumn,
        string? realFlagColumn = null, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(real);
        ArgumentNullException.ThrowIfNull(augmented);
        var xs = new List<Tensor>();
        var ys = new List<Tensor>();
        var flags = new List<double>();
        var to = device ?? CPU;
        try
        {
            foreach (var (view, flag, flagFrom) in new[] { (real, 0.0, realFlagColumn), (augmented, 1.0, null) })
            {
                using var cursor = flagFrom is null ? view.GetRowCursor(imageColumn, maskColumn) : view.GetRowCursor(imageColumn, maskColumn, flagFrom);
                while (cursor.MoveNext())
                {
                    using var rowScope = NewDisposeScope();
                    xs.Add(cursor.GetTensor(imageColumn).to(to).clone().DetachFromDisposeScope());
                    ys.Add(cursor.GetTensor(maskColumn).to(to).clone().DetachFromDisposeScope());
                    flags.Add(flagFrom is null ? flag : cursor.GetNumber(flagFrom) != 0 ? 1.0 : 0.0);
                }
            }
            var result = InMemoryDataView.Create((imageColumn, real.Schema[imageColumn].Type, xs),
                (maskColumn, real.Schema[maskColumn].Type, ys), (flagColumn, NumberColumnType.Instance, flags));
            xs.Clear();
            ys.Clear();
            return result;
        }
        finally
        {
            foreach (var t in xs) t.Dispose();
            foreach (var t in ys) t.Dispose();
        }
    }
}

/// <summary>
/// How a segmenter's trainer fits after a chain's augmenters (<see cref="IAugmentedTrainingInput"/>), the same for every
/// trainer: no generated pairs → the real rows (a mask diffusion without an image diffusion, or adversarial training
/// without generated pairs, is an error saying what to add); generated pairs attacked online → the real rows with the
/// online augmentation; generated pairs without an attack → the real + generated pool with its Eq. 11 flag column.
/// The generated pairs are released afterwards.
/// </summary>
internal static class AugmentedFit
{
    /// <summary>The flag column of the pooled rows (1 for generated pairs).</summary>
    public const string FlagColumn = "IsAugmented";

    /// <param name="a">What the chain hands the trainer.</param>
    /// <param name="real">The real rows (the engine's view of <c>a.Input</c>).</param>
    /// <param name="stage">The trainer's name, for errors and the log.</param>
    /// <param name="context">Log and device.</param>
    /// <param name="imageColumn">The trainer's image column.</param>
    /// <param name="maskColumn">The trainer's mask column.</param>
    /// <param name="plain">Fit on these rows as they are.</param>
    /// <param name="online">Fit on the real rows, regenerating attacked rows with this augmentation.</param>
    /// <param name="pooled">Fit on the real + generated pool (flag column <see cref="FlagColumn"/>).</param>
    /// <param name="checkPairs">Checks the trainer makes before using generated pairs (e.g. binary masks only).</param>
    public static T Run<T>(IAugmentedTrainingInput a, IDataView real, string stage, MedSegContext context, string imageColumn, string maskColumn,
        Func<IDataView, T> plain, Func<IDataView, IOnlineAugmentation, T> online, Func<IDataView, T> pooled, Action? checkPairs = null)
    {
        try
        {
            if (!a.HasGeneratedPairs)
            {
                if (a.HasGeneratedMasks)
                    throw new InvalidOperationException($"{stage}: the chain generates masks but no images for them: add ml.MedSeg().Generation.ImageDiffusion(...) after the mask diffusion");
                if (a.OnlineAugmentationOn(real) is not null)
                    throw new InvalidOperationException($"{stage}: adversarial training attacks generated pairs: add a mask diffusion and an image diffusion before it");
                return plain(real);
            }
            checkPairs?.Invoke();
            var pairs = a.GeneratedPairs ?? throw new InvalidOperationException($"{stage}: the generators produced no pairs (the training data has no rows)");
            var attack = a.OnlineAugmentationOn(pairs);
            context.WriteLog(LogLevel.Info, stage, $"training on {real.GetRowCount()} real rows + {pairs.RowCount} generated pairs" +
                (attack is not null ? $", attacked online ({attack.Description})" : ""));
            if (attack is not null) return online(real, attack);
            using var joint = TrainingPool.Join(real, pairs, imageColumn, maskColumn, FlagColumn, device: context.Device);
            return pooled(joint);
        }
        finally
        {
            a.ReleaseGenerated();
        }
    }
}

/// <summary>
/// A trainer's online augmentation for one Fit, the same in every trainer: the augmenter, the current pool of real +
/// augmented rows (flag column <see cref="FlagColumn"/> for Eq. 11), when a regeneration is due, and the steps an
/// epoch takes. Due every <see cref="IOnlineAugmentation.EveryEpochs"/> epochs from epoch 1, and at a resumed run's
/// first epoch (the rows are not in checkpoints).
/// </summary>
internal sealed class OnlineAttackPool : IDisposable
{
    /// <summary>The pool's flag column (1 for augmented rows).</summary>
    public const string FlagColumn = "__IsAttacked";

    private readonly IOnlineAugmentation _options;
    private readonly IOnlineAugmenter _augmenter;
    private InMemoryDataView? _pool;

    /// <param name="options">The trainer's online augmentation.</param>
    /// <param name="runSeed">The Fit's seed (the augmenter's is mixed from it).</param>
    public OnlineAttackPool(IOnlineAugmentation options, ulong runSeed)
    {
        _options = options;
        _augmenter = options.CreateAugmenter(MedSegContext.MixSeed(runSeed, "online-attack", 0));
    }

    /// <summary>The current pool, null before the first regeneration.</summary>
    public InMemoryDataView? Pool => _pool;

    /// <summary>Batches an epoch takes: the pool's rows, or before the first regeneration the rows it will have.</summary>
    public long? StepsPerEpoch(long? realRows, int batchSize)
    {
        long? rows = _pool?.RowCount ?? (realRows is long n ? n + _options.RowsFor(n) : null);
        return rows is long r ? (r + batchSize - 1) / batchSize : null;
    }

    /// <summary>
    /// When due at <paramref name="epoch"/>, regenerates the augmented rows with <paramref name="request"/> and pools them
    /// with <paramref name="real"/> (a real row flagged in <paramref name="realFlagColumn"/> counts as augmented).
    /// </summary>
    public void OnEpochStarted(int epoch, Func<OnlineAugmentationRequest> request, IDataView real, string imageColumn, string maskColumn,
        string? realFlagColumn, Device device)
    {
        if (_pool is not null && (epoch - 1) % _options.EveryEpochs != 0) return;
        _pool?.Dispose();
        _pool = null;
        var rows = _augmenter.Regenerate(request());
        _pool = TrainingPool.Join(real, rows, imageColumn, maskColumn, FlagColumn, realFlagColumn, device);
    }

    public void Dispose()
    {
        _pool?.Dispose();
        _pool = null;
        _augmenter.Dispose();
    }
}
