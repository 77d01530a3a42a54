using MLNetMedSeg.Data;
using MLNetMedSeg.Segmentation;
using MLColumn = Microsoft.ML.DataViewSchema.Column;
using MLDataView = Microsoft.ML.IDataView;
using MLRowCursor = Microsoft.ML.DataViewRowCursor;
using MLSchema = Microsoft.ML.DataViewSchema;

namespace MLNetMedSeg.Augmentation;

/// <summary>
/// How augmenters act only while a chain is being fitted, and vanish when the fitted model scores (DASP's flow as an
/// ML.NET <c>EstimatorChain</c>: mask diffusion → image diffusion → adversarial training → segmentation trainer).
/// <para>To ML.NET this view IS its input: same schema, same rows, same cursors. What it adds is for the library's
/// stages downstream only: generated masks (from a mask diffusion), generated pairs {x̃, ỹ} (an image diffusion draws
/// an image for each generated mask), and an adversarial attack to run on those pairs against the segmenter being
/// trained (Diff-PGD with W, Eq. 9–11). The segmentation trainer trains on the real rows plus the generated pairs,
/// weighted by Eq. 11. Everything is computed lazily, when the trainer asks, so when the saved model transforms new
/// data these stages cost nothing and change nothing — and a <c>PredictionEngine</c> passes rows straight through them.</para>
/// <para>Place the augmenters next to each other right before the trainer: an ML.NET transform in between wraps this
/// view and hides what it carries (the trainer then trains on the real rows only).</para>
/// </summary>
public sealed class AugmentedTrainingData : MLDataView, IAugmentedTrainingInput
{
    private readonly Lazy<Data.IDataView>? _masks;
    private readonly Lazy<InMemoryDataView?>? _pairs;

    private AugmentedTrainingData(MLDataView input, Lazy<Data.IDataView>? masks, string? maskColumn,
        Lazy<InMemoryDataView?>? pairs, ISdEditor? sdEditor, IOnlineAugmentation? attack)
    {
        Input = input;
        _masks = masks;
        GeneratedMaskColumn = maskColumn;
        _pairs = pairs;
        SdEditor = sdEditor;
        OnlineAttack = attack;
    }

    /// <summary>The real data, which is all ML.NET sees.</summary>
    public MLDataView Input { get; }

    /// <summary>The column of <see cref="GeneratedMasks"/> that holds the generated masks.</summary>
    public string? GeneratedMaskColumn { get; }

    /// <summary>True when a mask diffusion upstream generates masks.</summary>
    public bool HasGeneratedMasks => _masks is not null;

    /// <summary>True when an image diffusion upstream draws generated pairs.</summary>
    public bool HasGeneratedPairs => _pairs is not null;

    /// <summary>The generated masks (library view; computed on first use).</summary>
    internal Data.IDataView? GeneratedMasks => _masks?.Value;

    /// <summary>The generated pairs, image and mask under the real data's column names (computed on first use, cached).</summary>
    internal InMemoryDataView? GeneratedPairs => _pairs?.Value;

    InMemoryDataView? IAugmentedTrainingInput.GeneratedPairs => GeneratedPairs;

    IOnlineAugmentation? IAugmentedTrainingInput.OnlineAugmentationOn(Data.IDataView pairs) => OnlineAugmentationOn(pairs);

    /// <summary>The SDEdit model for Diff-PGD (the image diffusion that drew the pairs).</summary>
    public ISdEditor? SdEditor { get; }

    /// <summary>The attack the trainer runs on the generated pairs against the segmenter being trained, or null.</summary>
    public IOnlineAugmentation? OnlineAttack { get; }

    /// <summary>The input as augmented training data (itself when it already is).</summary>
    public static AugmentedTrainingData From(MLDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return input as AugmentedTrainingData ?? new AugmentedTrainingData(input, null, null, null, null, null);
    }

    /// <summary>With what ML.NET sees replaced by <paramref name="input"/> (a row-to-row stage applied to the real rows); the rest is kept.</summary>
    public AugmentedTrainingData WithInput(MLDataView input) =>
        new(input ?? throw new ArgumentNullException(nameof(input)), _masks, GeneratedMaskColumn, _pairs, SdEditor, OnlineAttack);

    /// <summary>With generated masks (replaces earlier ones; generated pairs drawn before are dropped).</summary>
    internal AugmentedTrainingData WithGeneratedMasks(Func<Data.IDataView> masks, string maskColumn) =>
        new(Input, new Lazy<Data.IDataView>(masks), maskColumn, null, null, OnlineAttack);

    /// <summary>With generated pairs drawn by <paramref name="sdEditor"/>.</summary>
    internal AugmentedTrainingData WithGeneratedPairs(Func<InMemoryDataView?> pairs, ISdEditor sdEditor) =>
        new(Input, _masks, GeneratedMaskColumn, new Lazy<InMemoryDataView?>(pairs), sdEditor, OnlineAttack);

    /// <summary>With an attack for the trainer to run on the generated pairs.</summary>
    public AugmentedTrainingData WithOnlineAttack(IOnlineAugmentation attack) =>
        new(Input, _masks, GeneratedMaskColumn, _pairs, SdEditor, attack.Clone());

    /// <summary>
    /// The chain's online attack set to run on <paramref name="pairs"/> (DASP attacks its generated pairs, §3.3), with
    /// the image diffusion that drew them as its SDEdit model unless one is set; null without an online attack.
    /// </summary>
    internal IOnlineAugmentation? OnlineAugmentationOn(Data.IDataView pairs)
    {
        return OnlineAttack switch
        {
            null => null,
            ISourcedOnlineAugmentation sourced => sourced.On(pairs, SdEditor),
            var other => other.Clone(),
        };
    }

    /// <summary>Frees the generated pairs (the trainer calls it once it has trained on them).</summary>
    public void ReleaseGenerated()
    {
        if (_pairs is { IsValueCreated: true, Value: { } p }) p.Dispose();
    }

    // ML.NET sees the real data only.
    public bool CanShuffle => Input.CanShuffle;

    public MLSchema Schema => Input.Schema;

    public long? GetRowCount() => Input.GetRowCount();

    public MLRowCursor GetRowCursor(IEnumerable<MLColumn> columnsNeeded, Random? rand = null) => Input.GetRowCursor(columnsNeeded, rand);

    public MLRowCursor[] GetRowCursorSet(IEnumerable<MLColumn> columnsNeeded, int n, Random? rand = null) => Input.GetRowCursorSet(columnsNeeded, n, rand);
}

/// <summary>
/// An online augmentation that can be aimed at other rows than the training rows — DASP attacks its generated pairs
/// (§3.3) — with an SDEdit model for the attacks that need one.
/// </summary>
internal interface ISourcedOnlineAugmentation : IOnlineAugmentation
{
    /// <summary>A copy that regenerates from <paramref name="source"/>, using <paramref name="sdEditor"/> unless it has an SDEdit model.</summary>
    IOnlineAugmentation On(Data.IDataView source, ISdEditor? sdEditor);
}
