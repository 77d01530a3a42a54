using MLNetMedSeg.Segmentation.Losses;
using System.Diagnostics;
using System.Globalization;
using MLNetMedSeg.Augmentation;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Cdal;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Dasp;

/// <summary>
/// The DASP flow as one estimator (paper 000, Fig. 2): <see cref="Fit(Microsoft.ML.IDataView)"/> trains the mask diffusion on the masks and the
/// conditional image diffusion on the pairs, generates N′ = k·N pairs {x̃, ỹ}, and trains the segmenter on the real
/// pairs plus the generated ones attacked with Diff-PGD and W (Eq. 9–11) — online by default: the generated images are
/// re-attacked against the segmenter being trained every <see cref="DaspOptions.AttackEveryEpochs"/> epochs. The result
/// is one <see cref="DaspTransformer"/> (the three fitted models), saved as one model file, that predicts masks. The
/// segmenter is a U-Net-family network, or the cDAL diffusion segmenter with <see cref="DaspOptions.Segmenter"/> =
/// <see cref="DaspSegmenter.Cdal"/> (attacked through its differentiable Algorithm-2 prediction).
/// </summary>
public sealed class DaspEstimator : Microsoft.ML.IEstimator<DaspTransformer>, Pipeline.IEngineEstimator<DaspTransformer>
{
    Data.DataViewSchema Pipeline.IEngineEstimator<DaspTransformer>.GetOutputSchema(Data.DataViewSchema inputSchema) => GetOutputSchema(inputSchema);

    DaspTransformer Pipeline.IEngineEstimator<DaspTransformer>.Fit(Data.IDataView input, CancellationToken cancellationToken) => Fit(input, cancellationToken);

    /// <summary>
    /// ML.NET: trains on an ML.NET data view (images as <c>MLImage</c> or float vectors [C,H,W], masks as float vectors
    /// [1,H,W] or [H,W]; see <see cref="Core.MLNet.TensorColumns"/>). The columns are checked first, before any row is read (a missing or unreadable column
    /// is a <see cref="SchemaException"/> naming it); data that cannot be shuffled is then cached in memory for the
    /// fit (and released after it).
    /// </summary>
    public DaspTransformer Fit(Microsoft.ML.IDataView input) =>
        Core.MLNet.MLNetData.Fit(input, GetOutputSchema, data => Fit(data, CancellationToken.None));

    /// <summary>ML.NET schema propagation: checks the columns this stage reads (naming a missing or wrong one) before any training.</summary>
    public Microsoft.ML.SchemaShape GetOutputSchema(Microsoft.ML.SchemaShape inputSchema) =>
        Core.MLNet.MLContextBridge.PropagateShape(inputSchema, GetOutputSchema);

    private const string Name = "DASP";
    private readonly MedSegContext _context;
    private readonly DaspOptions _options;

    /// <summary>Creates the flow (options are copied and validated).</summary>
    internal DaspEstimator(MedSegContext context, DaspOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        _context = context;
        _options = (options ?? new DaspOptions()).Clone();
        Wire(_options);
        _options.Validate();
    }

    /// <summary>A copy of the options, with the column wiring the flow applies.</summary>
    public DaspOptions Options => _options.Clone();

    /// <summary>The input schema plus the segmenter's Probability and Predicted columns; checks the image and mask columns first.</summary>
    internal DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        new MaskDiffusionEstimator(_context, _options.MaskDiffusion).GetOutputSchema(inputSchema);
        new ImageDiffusionEstimator(_context, ImageOptions(_options)).GetOutputSchema(inputSchema);
        return _options.Segmenter == DaspSegmenter.Cdal
            ? new CdalTrainer(_context, _options.Cdal).GetOutputSchema(inputSchema)
            : new SegmentationTrainer(_context, _options.Segmentation).GetOutputSchema(inputSchema);
    }

    /// <summary>Runs the whole flow on real image/mask pairs. Progress goes to the context's progress sink, stage by stage.</summary>
    internal DaspTransformer Fit(IDataView input, CancellationToken cancellationToken = default)
    {
        var (masks, images) = FitGenerators(input, cancellationToken);
        try
        {
            return FitWithGenerators(input, masks, images, ownsGenerators: true, cancellationToken);
        }
        catch
        {
            masks?.Dispose();
            images.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Steps 1–2 alone: trains the mask diffusion (when <see cref="DaspOptions.GeneratedMasks"/>) and the image
    /// diffusion on real pairs. The caller owns the results; <see cref="FitWithGenerators"/> reuses them, e.g. to compare
    /// attacks on the same generated data (Table 2).
    /// </summary>
    internal (MaskDiffusionTransformer? Masks, ImageDiffusionTransformer Images) FitGenerators(IDataView input, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(input);
        GetOutputSchema(input.Schema);
        var o = _options;
        MaskDiffusionTransformer? masks = null;
        try
        {
            if (o.GeneratedMasks)
            {
                Log("1/4 training the Bernoulli mask diffusion");
                masks = new MaskDiffusionEstimator(_context, o.MaskDiffusion).Fit(input, cancellationToken);
            }
            Log("2/4 training the mask-conditioned image diffusion");
            var images = new ImageDiffusionEstimator(_context, ImageOptions(o)).Fit(input, cancellationToken);
            return (masks, images);
        }
        catch
        {
            masks?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Steps 3–4 with given diffusion models: generates the pairs, attacks them and trains the segmenter. The result
    /// owns the diffusion models when <paramref name="ownsGenerators"/> is true (otherwise they stay the caller's and must
    /// outlive it). <paramref name="masks"/> may be null only when <see cref="DaspOptions.GeneratedMasks"/> is false.
    /// </summary>
    internal DaspTransformer FitWithGenerators(IDataView input, MaskDiffusionTransformer? masks, ImageDiffusionTransformer images,
        bool ownsGenerators, CancellationToken cancellationToken = default, GeneratedPairsCache? drawnPairs = null)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(images);
        GetOutputSchema(input.Schema);
        var o = _options;
        if (o.GeneratedMasks && masks is null)
            throw new ArgumentException("GeneratedMasks is set: a fitted mask diffusion is required", nameof(masks));
        var clock = Stopwatch.StartNew();
        // Pairs drawn earlier from the same generators for the same rows (the draws depend on those only) are reused.
        var genMasks = o.GeneratedMasks ? masks : null;
        var reused = drawnPairs?.Find(input, o, genMasks, images);
        Log(reused is null ? $"3/4 generating {o.SyntheticPerImage} pairs per real image" : $"3/4 reusing the {reused.RowCount} pairs drawn before from these generators for these rows");
        using var owned = drawnPairs is null ? Generate(input, genMasks, images, cancellationToken) : null;
        var synthetic = owned ?? reused ?? drawnPairs!.Add(input, o, genMasks, images, Generate(input, genMasks, images, cancellationToken));
        Log($"4/4 training the segmenter on {input.GetRowCount()} real + {synthetic.RowCount} generated pairs"
            + (o.Attack is null ? " (no attack)" : $" attacked with {Describe(o.Attack)}"));
        var segmenter = TrainSegmenter(input, synthetic, images, cancellationToken);
        try
        {
            if (o.FigureFolder is { } folder) DaspFigures.Write(folder, synthetic, segmenter, images, o, _context.DeriveSeed("dasp-figures"));
            Log(string.Create(CultureInfo.InvariantCulture, $"segmenter trained in {clock.Elapsed.TotalMinutes:F1} min"));
            return new DaspTransformer(_context, o, o.GeneratedMasks ? masks : null, images, segmenter, ownsGenerators);
        }
        catch
        {
            ((IDisposable)segmenter).Dispose();
            throw;
        }
    }

    /// <summary>
    /// The generated pairs: for each real row r and j &lt; k, the mask ỹ (mask diffusion sample j of row r, or the real
    /// mask) and an image x̃ drawn for it with the image diffusion's noise of generated row r·k + j, in columns
    /// <see cref="DaspOptions.ImageColumn"/> / <see cref="DaspOptions.MaskColumn"/>, on the CPU.
    /// </summary>
    internal InMemoryDataView Generate(IDataView input, MaskDiffusionTransformer? masks, ImageDiffusionTransformer images, CancellationToken ct)
    {
        var o = _options;
        // The mask diffusion's view already has k rows per input row; real masks are repeated k times.
        IDataView view = masks is null ? input : masks.Transform(input);
        string maskColumn = masks is null ? o.MaskColumn : masks.Options.OutputColumn;
        var pairs = images.DrawPairs(view, maskColumn, masks is null ? o.SyntheticPerImage : 1,
            o.ImageColumn, input.Schema[o.ImageColumn].Type, o.MaskColumn, input.Schema[o.MaskColumn].Type, ct);
        return pairs ?? throw new InvalidOperationException($"{Name}: the training data has no rows");
    }

    private IDifferentiableSegmenter TrainSegmenter(IDataView real, InMemoryDataView synthetic, ImageDiffusionTransformer images, CancellationToken ct)
    {
        var o = _options;
        if (o.Attack is null)
        {
            // Table 2, rows 1–2: the generated pairs as they are, with Eq. 11's weights.
            using var joint = Join(real, synthetic);
            return TrainOn(_context, o, joint, FlagColumn, null, ct);
        }
        if (o.AttackEveryEpochs > 0)
        {
            var online = new OnlineAdversarialOptions
            {
                Attack = o.Attack.Clone(), EveryEpochs = o.AttackEveryEpochs, Copies = 1, Source = synthetic, SdEditor = images,
            };
            return TrainOn(_context, o, real, null, online, ct);
        }
        // Offline: attack once against a segmenter trained on the real pairs, then train a fresh one on real + attacked.
        var first = TrainOn(_context, o, real, null, null, ct);
        try
        {
            var attack = o.Attack.Clone();
            attack.ImageColumn = o.ImageColumn;
            attack.MaskColumn = o.MaskColumn;
            using var attacked = AdversarialPairs.Generate(_context, synthetic, first, attack, images,
                new AdversarialPairsOptions { Copies = 1, IncludeReal = false, IdColumn = null }, ct);
            using var all = Join(real, attacked);
            return TrainOn(_context, o, all, FlagColumn, null, ct);
        }
        finally
        {
            ((IDisposable)first).Dispose();
        }
    }

    /// <summary>
    /// Trains the flow's segmenter (<see cref="DaspOptions.Segmenter"/>: the U-Net family or cDAL) on
    /// <paramref name="data"/>: rows flagged in <paramref name="flagColumn"/> (≠ 0) count as augmented in Eq. 11 (the
    /// segmentation loss's sample weights; cDAL's generator loss per row), and <paramref name="online"/> attacks rows
    /// against the segmenter being trained. <paramref name="classic"/> overrides the U-Net's classic augmentation
    /// (cDAL has none: anything but None is refused).
    /// </summary>
    internal static IDifferentiableSegmenter TrainOn(MedSegContext context, DaspOptions flow, IDataView data, string? flagColumn,
        IOnlineAugmentation? online, CancellationToken ct, Augmentation.Classic.ClassicAugmentationKind? classic = null)
    {
        if (flow.Segmenter == DaspSegmenter.Cdal)
        {
            if (classic is { } k && k != Augmentation.Classic.ClassicAugmentationKind.None)
                throw new NotSupportedException($"{Name}: the cDAL segmenter has no classic augmentation ({k}): compare it without 'basic'");
            var c = flow.Cdal.Clone();
            c.ImageColumn = flow.ImageColumn;
            c.MaskColumn = flow.MaskColumn;
            c.AugmentedFlagColumn = flagColumn;
            c.OnlineAttack = online;
            return new CdalTrainer(context, c).Fit(data, ct);
        }
        var seg = flow.Segmentation.Clone();
        seg.ImageColumn = flow.ImageColumn;
        seg.MaskColumn = flow.MaskColumn;
        if (classic is { } kind) seg.Augmentation = kind;
        if (flagColumn is not null)
        {
            seg.SampleWeightColumn = flagColumn;
            seg.SampleWeightMode = SampleWeightMode.IsAugmentedFlag;
        }
        seg.OnlineAttack = online;
        return new SegmentationTrainer(context, seg).Fit(data, ct);
    }

    private const string FlagColumn = "IsAugmented";

    private InMemoryDataView Join(IDataView real, IDataView augmented) =>
        TrainingPool.Join(real, augmented, _options.ImageColumn, _options.MaskColumn, FlagColumn);

    /// <summary>Points every part at the flow's columns.</summary>
    private static void Wire(DaspOptions o)
    {
        o.MaskDiffusion.MaskColumn = o.MaskColumn;
        o.MaskDiffusion.SamplesPerRow = o.SyntheticPerImage;
        o.Segmentation.ImageColumn = o.ImageColumn;
        o.Segmentation.MaskColumn = o.MaskColumn;
        o.Cdal.ImageColumn = o.ImageColumn;
        o.Cdal.MaskColumn = o.MaskColumn;
        if (o.FigureFolder is { } f)
        {
            o.MaskDiffusion.SampleGridFolder ??= Path.Combine(f, "mask-diffusion");
            o.ImageDiffusion.SampleGridFolder ??= Path.Combine(f, "image-diffusion");
        }
    }

    /// <summary>The image diffusion's options: trained on (image, real mask), conditioned on the mask column when it transforms.</summary>
    private static ImageDiffusionOptions ImageOptions(DaspOptions o)
    {
        var i = o.ImageDiffusion.Clone();
        i.ImageColumn = o.ImageColumn;
        i.MaskColumn = o.MaskColumn;
        i.ConditionColumn = o.MaskColumn;
        return i;
    }

    private static string Describe(AdversarialAttackOptions a) => string.Create(CultureInfo.InvariantCulture,
        $"{a.Method}{(a.UncertaintyWeighting ? " + W" : "")} (K = {a.Steps}, γ = {a.StepSize * 255:G3}/255{(a.Method == AdversarialAttackMethod.DiffPgd ? $", T^s = {a.SdEditDepth}, {(a.Gradient == DiffPgdGradient.Full ? "gradient through SDEdit (Eq. 9)" : "detached gradient (Diff-PGD v2)")}" : "")})");

    private void Log(string message) => _context.WriteLog(LogLevel.Info, Name, message);
}
