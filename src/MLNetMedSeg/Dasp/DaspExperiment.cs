using MLNetMedSeg.Segmentation.Losses;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Augmentation.Classic;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;

namespace MLNetMedSeg.Dasp;

/// <summary>One row of a comparison: a training recipe, its held-out scores (papers' per-image convention) and its time.</summary>
/// <param name="Method">The method's short name (see <see cref="DaspExperiment.Methods"/>).</param>
/// <param name="Description">What the method trains on.</param>
/// <param name="MeanIoU">Held-out mIoU in [0,1].</param>
/// <param name="MeanDice">Held-out mDice in [0,1].</param>
/// <param name="Seconds">Training time of the segmenter, including its attacks (the shared diffusion training is reported once).</param>
/// <param name="Robustness">Held-out scores under FGSM at each ε asked for (paper 001, Table 2), or null.</param>
/// <param name="ImageDice">Each held-out image's Dice, by image id (for paired comparisons across methods and seeds), or null.</param>
public sealed record DaspComparisonRow(string Method, string Description, double MeanIoU, double MeanDice, double Seconds,
    IReadOnlyList<RobustnessPoint>? Robustness = null, IReadOnlyDictionary<string, double>? ImageDice = null);

/// <summary>The outcome of <see cref="DaspExperiment.Run"/>. Owns the DASP model when one was trained: dispose it.</summary>
public sealed class DaspExperimentResult : IDisposable
{
    internal DaspExperimentResult(IReadOnlyList<DaspComparisonRow> rows, double generatorSeconds, DaspTransformer? model, EvaluationResult? daspEvaluation,
        IDisposable? owned = null)
    {
        _owned = owned;
        Rows = rows;
        GeneratorSeconds = generatorSeconds;
        Model = model;
        DaspEvaluation = daspEvaluation;
    }

    private IDisposable? _owned;

    /// <summary>One row per method, in the order asked.</summary>
    public IReadOnlyList<DaspComparisonRow> Rows { get; }

    /// <summary>Seconds spent training the two diffusion models (shared by every generative method; 0 when none ran).</summary>
    public double GeneratorSeconds { get; }

    /// <summary>The fitted DASP flow (when "dasp" was among the methods), which owns the diffusion models.</summary>
    public DaspTransformer? Model { get; private set; }

    /// <summary>The full held-out evaluation of the DASP model (when it ran).</summary>
    public EvaluationResult? DaspEvaluation { get; }

    /// <summary>The comparison as a Markdown table (mIoU and mDice in %, as the papers print them).</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine("| Method | Trained on | mIoU (%) | mDice (%) | Time (s) |");
        sb.AppendLine("| --- | --- | ---: | ---: | ---: |");
        foreach (var r in Rows)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Method} | {r.Description} | {100 * r.MeanIoU:F2} | {100 * r.MeanDice:F2} | {r.Seconds:F0} |"));
        if (GeneratorSeconds > 0)
            sb.AppendLine().AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"Training the mask and image diffusion models (shared by the generative rows) took {GeneratorSeconds:F0} s."));
        if (Rows.FirstOrDefault(r => r.Robustness is not null)?.Robustness is { } eps)
        {
            sb.AppendLine().AppendLine("Held-out mDice (%) under FGSM of strength ε (paper 001, Table 2):").AppendLine();
            sb.AppendLine("| Method | " + string.Join(" | ", eps.Select(p => string.Create(CultureInfo.InvariantCulture, $"ε = {p.Epsilon:G3}"))) + " |");
            sb.AppendLine("| --- |" + string.Concat(eps.Select(_ => " ---: |")));
            foreach (var r in Rows.Where(r => r.Robustness is not null))
                sb.AppendLine($"| {r.Method} | " + string.Join(" | ", r.Robustness!.Select(p => string.Create(CultureInfo.InvariantCulture, $"{100 * p.MeanDice:F2}"))) + " |");
        }
        return sb.ToString();
    }

    /// <summary>The comparison as JSON: <c>methods</c> (rows with mIoU/mDice in [0,1]), <c>generator_seconds</c>, and <c>mIoU</c>/<c>mDice</c> of DASP when it ran.</summary>
    public string ToJson()
    {
        var doc = new Dictionary<string, object?>
        {
            ["mIoU"] = DaspEvaluation?.MeanIoU,
            ["mDice"] = DaspEvaluation?.MeanDice,
            ["methods"] = Rows.Select(r => new Dictionary<string, object>
            {
                ["method"] = r.Method, ["description"] = r.Description, ["mIoU"] = r.MeanIoU, ["mDice"] = r.MeanDice,
                ["seconds"] = Math.Round(r.Seconds, 1),
                ["fgsm_robustness"] = r.Robustness?.Select(p => new Dictionary<string, double> { ["epsilon"] = p.Epsilon, ["mIoU"] = p.MeanIoU, ["mDice"] = p.MeanDice }).ToList()
                    ?? (object)Array.Empty<object>(),
            }).ToList(),
            ["generator_seconds"] = Math.Round(GeneratorSeconds, 1),
        };
        return JsonSerializer.Serialize(doc, new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Takes the DASP model out of the result (the caller then owns it).</summary>
    public DaspTransformer? TakeModel()
    {
        var m = Model;
        Model = null;
        return m;
    }

    /// <summary>
    /// Frees the DASP model if it was not taken, and what the result holds for it (a copy of given generators drawing
    /// another number of masks per row): a taken model built on given generators is used while the result lives.
    /// </summary>
    public void Dispose()
    {
        Model?.Dispose();
        Model = null;
        _owned?.Dispose();
        _owned = null;
    }
}

/// <summary>
/// DASP's comparison (paper 000, Tables 1–2; paper 001, Table 1) on one train/test split: every method trains the same
/// segmenter (<see cref="DaspOptions.Segmentation"/>) and is scored on the same held-out pairs. The diffusion models are
/// trained once and shared by the generative methods.
/// </summary>
public static class DaspExperiment
{
    /// <summary>The methods and what each trains on.</summary>
    public static IReadOnlyDictionary<string, string> Methods { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["noaug"] = "real pairs",
        ["basic"] = "real pairs, random flips",
        ["fgsm"] = "real + FGSM pairs against the No-Aug model (paper 001)",
        ["ifgsm"] = "real + Inverse-FGSM pairs against the No-Aug model (paper 001)",
        ["generated-y"] = "real + images generated for the real masks y",
        ["generated"] = "real + generated pairs (ỹ, x̃), no attack",
        ["pgd"] = "real + generated pairs, PGD with W (online)",
        ["diffpgd"] = "real + generated pairs, Diff-PGD without W (online)",
        ["sdedit"] = "real + generated pairs through SDEdit, no attack (online; a control)",
        ["dasp"] = "real + generated pairs, Diff-PGD with W (online): DASP",
    };

    /// <summary>
    /// Trains every method in <paramref name="methods"/> on <paramref name="train"/> and scores it on
    /// <paramref name="test"/>. <paramref name="flow"/> configures the diffusion models, the segmenter and DASP's attack
    /// (FGSM/Inverse-FGSM use ε = <paramref name="fgsmEpsilon"/>). With <paramref name="robustnessEpsilons"/> each
    /// segmenter is also scored on the held-out images attacked with FGSM at those strengths (paper 001, Table 2).
    /// <paramref name="rowDone"/> is called after each method. With <paramref name="generators"/> (trained earlier, e.g.
    /// the shipped ones) the generative methods use them instead of training the diffusion models; they stay the caller's.
    /// </summary>
    internal static DaspExperimentResult Run(MedSegContext context, IDataView train, IDataView test, DaspOptions flow,
        IReadOnlyList<string> methods, double fgsmEpsilon = 0.1, IReadOnlyList<double>? robustnessEpsilons = null,
        Action<DaspComparisonRow>? rowDone = null, CancellationToken cancellationToken = default,
        (MaskDiffusionTransformer? Masks, ImageDiffusionTransformer Images)? generators = null, GeneratedPairsCache? drawnPairs = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(test);
        ArgumentNullException.ThrowIfNull(flow);
        ArgumentNullException.ThrowIfNull(methods);
        if (methods.Count == 0) throw new ArgumentException("no methods to compare", nameof(methods));
        foreach (var m in methods)
            if (!Methods.ContainsKey(m))
                throw new ArgumentException($"unknown method '{m}'; choose from: {string.Join(", ", Methods.Keys)}", nameof(methods));
        new DaspEstimator(context, flow).GetOutputSchema(train.Schema);

        var rows = new List<DaspComparisonRow>();
        bool given = generators is not null;
        MaskDiffusionTransformer? masks = generators?.Masks;
        ImageDiffusionTransformer? images = generators?.Images;
        MaskDiffusionTransformer? resampled = null; // the given mask model drawing SyntheticPerImage masks per row (owned here)
        if (given && methods.Any(NeedsGeneratedMasks) && masks is null)
            throw new ArgumentException($"the generators given have no mask diffusion, and a method asked for needs generated masks ({string.Join(", ", Methods.Keys.Where(NeedsGeneratedMasks))})", nameof(generators));
        if (masks is not null && given && masks.Options.SamplesPerRow != flow.SyntheticPerImage)
            masks = drawnPairs is not null
                ? drawnPairs.Resampled(masks, flow.SyntheticPerImage)   // the caller's cache keeps it (and its pairs) across runs
                : resampled = masks.WithSamplesPerRow(flow.SyntheticPerImage);
        IDifferentiableSegmenter? noAug = null;
        DaspTransformer? daspModel = null;
        EvaluationResult? daspEval = null;
        double generatorSeconds = 0;
        // With given generators the generated pairs depend only on them and the training rows: draw them once for every
        // generative method (and, with a caller's cache, every training seed).
        var ownCache = given && drawnPairs is null ? new GeneratedPairsCache() : null;
        var cache = given ? drawnPairs ?? ownCache : null;
        try
        {
            foreach (var method in methods)
            {
                cancellationToken.ThrowIfCancellationRequested();
                context.WriteLog(LogLevel.Info, "DASP comparison", $"method '{method}': {Methods[method]}");
                var clock = Stopwatch.StartNew();
                // Each method trains from its own seed (the context's seed and the method's name), so its row is the
                // same whichever methods run beside it: a comparison split over processes joins into the joint run's.
                var mctx = context.Fork("method:" + method);
                IDifferentiableSegmenter? segmenter = null;
                DaspTransformer? dasp = null;
                try
                {
                    switch (method)
                    {
                        case "noaug":
                        case "basic":
                            segmenter = DaspEstimator.TrainOn(mctx, flow, train, null, null, cancellationToken,
                                method == "basic" ? ClassicAugmentationKind.Basic : ClassicAugmentationKind.None);
                            break;
                        case "fgsm":
                        case "ifgsm":
                            if (noAug is null)
                            {
                                // The No-Aug model the attack runs against is the noaug row's (same seed).
                                noAug = DaspEstimator.TrainOn(context.Fork("method:noaug"), flow, train, null, null, cancellationToken, ClassicAugmentationKind.None);
                            }
                            var attack = method == "fgsm" ? AdversarialAttackOptions.FgsmPreset(fgsmEpsilon) : AdversarialAttackOptions.InverseFgsmPreset(fgsmEpsilon);
                            attack.ImageColumn = flow.ImageColumn;
                            attack.MaskColumn = flow.MaskColumn;
                            using (var pairs = AdversarialPairs.Generate(mctx, train, noAug, attack, null,
                                       new AdversarialPairsOptions { Copies = 1, IdColumn = null }, cancellationToken))
                            {
                                segmenter = DaspEstimator.TrainOn(mctx, flow, pairs, "IsAugmented", null, cancellationToken);
                            }
                            break;
                        default:
                            var variant = Variant(flow, method);
                            var estimator = new DaspEstimator(mctx, variant);
                            if (!given && (images is null || (variant.GeneratedMasks && masks is null)))
                            {
                                var g = Stopwatch.StartNew();
                                var fit = new DaspEstimator(context.Fork("generators"), WithGeneratedMasks(flow, methods)).FitGenerators(train, cancellationToken);
                                masks?.Dispose();
                                images?.Dispose();
                                (masks, images) = fit;
                                generatorSeconds += g.Elapsed.TotalSeconds;
                                clock.Restart();
                            }
                            dasp = estimator.FitWithGenerators(train, masks, images!, ownsGenerators: false, cancellationToken, cache);
                            segmenter = dasp.Segmenter;
                            break;
                    }
                    var eval = DataViewEvaluation.EvaluateBinary(mctx, ((ITransformer)segmenter).Transform(test), flow.MaskColumn);
                    double seconds = clock.Elapsed.TotalSeconds;
                    var robustness = robustnessEpsilons is null ? null
                        : AdversarialRobustness.UnderFgsm(segmenter, test, robustnessEpsilons, flow.ImageColumn, flow.MaskColumn, cancellationToken: cancellationToken);
                    var imageDice = new Dictionary<string, double>(StringComparer.Ordinal);
                    foreach (var im in eval.Images) imageDice[im.Id] = im.Mean.Dice;
                    var row = new DaspComparisonRow(method, Methods[method], eval.MeanIoU, eval.MeanDice, seconds, robustness, imageDice);
                    rows.Add(row);
                    rowDone?.Invoke(row);
                    if (method == "dasp")
                    {
                        daspModel?.Dispose();
                        daspModel = dasp;
                        dasp = null;
                        daspEval = eval;
                    }
                    if (method == "noaug" && noAug is null && dasp is null)
                    {
                        noAug = segmenter;
                        segmenter = null;
                    }
                }
                finally
                {
                    if (dasp is not null) dasp.Dispose();
                    else if (segmenter is not null && !ReferenceEquals(segmenter, daspModel?.Segmenter)) ((IDisposable)segmenter).Dispose();
                }
            }
            DaspTransformer? result = null;
            if (daspModel is not null)
            {
                // The result owns the models: rebuild the DASP transformer so that it owns the shared diffusion models too
                // (unless they were given: then they stay the caller's).
                result = new DaspTransformer(context, daspModel.Options, daspModel.MaskDiffusion, daspModel.ImageDiffusion, daspModel.Segmenter, ownsGenerators: !given);
                if (!given)
                {
                    masks = null;
                    images = null;
                }
                daspModel = null;
            }
            var outcome = new DaspExperimentResult(rows, generatorSeconds, result, daspEval, resampled);
            resampled = null;
            return outcome;
        }
        finally
        {
            ownCache?.Dispose();
            daspModel?.Dispose();
            (noAug as IDisposable)?.Dispose();
            if (!given)
            {
                masks?.Dispose();
                images?.Dispose();
            }
            resampled?.Dispose();
        }
    }

    /// <summary>
    /// The flow's options for a generative method (Table 2's rows): the attacked rows take <see cref="DaspOptions.Attack"/>
    /// and change only SDEdit and W (<see cref="AdversarialAttackOptions.Ablation"/>), so ε, γ, K, the random start and
    /// the ỹ factor are the same in every row.
    /// </summary>
    public static DaspOptions Variant(DaspOptions flow, string method)
    {
        var o = flow.Clone();
        var dasp = flow.Attack ?? AdversarialAttackOptions.Dasp();
        switch (method)
        {
            case "generated-y":
                o.GeneratedMasks = false;
                o.Attack = null;
                break;
            case "generated":
                o.Attack = null;
                break;
            case "pgd":
                o.Attack = dasp.Ablation(sdEdit: false, uncertaintyWeighting: true);
                break;
            case "diffpgd":
                o.Attack = dasp.Ablation(sdEdit: true, uncertaintyWeighting: false);
                break;
            case "sdedit":
                // Not a row of Table 2: DASP's SDEdit of the generated pairs (same T^s, respacing, noise) without the
                // attack, to tell what SDEdit alone does to the pairs from what Diff-PGD's steps do.
                o.Attack = dasp.Ablation(sdEdit: true, uncertaintyWeighting: false);
                o.Attack.Steps = 0;
                o.Attack.RandomStart = false;
                break;
            case "dasp":
                o.Attack = dasp.Clone();
                break;
            default:
                throw new ArgumentException($"'{method}' is not a generative method", nameof(method));
        }
        if (method != "dasp") o.FigureFolder = null;
        return o;
    }

    /// <summary>The methods trained on generated masks ỹ.</summary>
    private static bool NeedsGeneratedMasks(string method) => method is "generated" or "pgd" or "diffpgd" or "sdedit" or "dasp";

    /// <summary>Generators are trained once: with the mask diffusion whenever any method needs generated masks.</summary>
    private static DaspOptions WithGeneratedMasks(DaspOptions flow, IReadOnlyList<string> methods)
    {
        var o = flow.Clone();
        o.GeneratedMasks = methods.Any(NeedsGeneratedMasks);
        return o;
    }
}

/// <summary>
/// Generated pairs drawn once and reused (DASP's comparison with given generators): keyed by the training rows, the
/// generators and the options the draw depends on. Owns the pairs and the copies of the mask model that draw another
/// number of masks per row (which the DASP models of the runs use): dispose it after those runs and their models.
/// </summary>
internal sealed class GeneratedPairsCache : IDisposable
{
    private readonly Dictionary<(MaskDiffusionTransformer, int), MaskDiffusionTransformer> _resampled = [];

    /// <summary>The given mask model drawing <paramref name="samplesPerRow"/> masks per row: one copy per model and count.</summary>
    public MaskDiffusionTransformer Resampled(MaskDiffusionTransformer masks, int samplesPerRow)
    {
        if (!_resampled.TryGetValue((masks, samplesPerRow), out var copy)) _resampled[(masks, samplesPerRow)] = copy = masks.WithSamplesPerRow(samplesPerRow);
        return copy;
    }

    private readonly Dictionary<(IDataView Input, object? Masks, object Images, bool GeneratedMasks, int PerImage, string Image, string Mask), InMemoryDataView> _pairs = [];

    private static (IDataView, object?, object, bool, int, string, string) Key(IDataView input, DaspOptions options, MaskDiffusionTransformer? masks, ImageDiffusionTransformer images)
        => (input, masks, images, options.GeneratedMasks, options.SyntheticPerImage, options.ImageColumn, options.MaskColumn);

    /// <summary>The pairs drawn before for these rows, generators (<paramref name="masks"/> null: the real masks) and options, or null.</summary>
    public InMemoryDataView? Find(IDataView input, DaspOptions options, MaskDiffusionTransformer? masks, ImageDiffusionTransformer images)
        => _pairs.GetValueOrDefault(Key(input, options, masks, images));

    /// <summary>Keeps <paramref name="pairs"/> (now owned by the cache) for these rows, generators and options; returns them.</summary>
    public InMemoryDataView Add(IDataView input, DaspOptions options, MaskDiffusionTransformer? masks, ImageDiffusionTransformer images, InMemoryDataView pairs)
    {
        _pairs.Add(Key(input, options, masks, images), pairs);
        return pairs;
    }

    public void Dispose()
    {
        foreach (var p in _pairs.Values) p.Dispose();
        _pairs.Clear();
        foreach (var m in _resampled.Values) m.Dispose();
        _resampled.Clear();
    }
}
