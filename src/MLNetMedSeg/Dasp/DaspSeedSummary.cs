using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using MLNetMedSeg.Augmentation.Adversarial;

namespace MLNetMedSeg.Dasp;

/// <summary>One FGSM strength over several training seeds: held-out mIoU/mDice as mean ± sample sd (NaN with one seed).</summary>
/// <param name="Epsilon">The FGSM ε in [0,1] pixel units (0: clean).</param>
/// <param name="MeanIoU">Mean over seeds of the held-out mIoU under that attack.</param>
/// <param name="SdIoU">Sample standard deviation over seeds (NaN with one seed).</param>
/// <param name="MeanDice">Mean over seeds of the held-out mDice under that attack.</param>
/// <param name="SdDice">Sample standard deviation over seeds (NaN with one seed).</param>
public sealed record RobustnessSummary(double Epsilon, double MeanIoU, double SdIoU, double MeanDice, double SdDice);

/// <summary>One method over several training seeds: held-out mIoU/mDice as mean ± sample standard deviation.</summary>
/// <param name="Method">The method's short name.</param>
/// <param name="Description">What it trains on.</param>
/// <param name="Seeds">How many seeds it ran with.</param>
/// <param name="MeanIoU">Mean over seeds of the held-out mIoU.</param>
/// <param name="SdIoU">Sample standard deviation over seeds (NaN with one seed).</param>
/// <param name="MeanDice">Mean over seeds of the held-out mDice.</param>
/// <param name="SdDice">Sample standard deviation over seeds (NaN with one seed).</param>
/// <param name="Seconds">Mean training time per seed.</param>
public sealed record DaspMethodSummary(string Method, string Description, int Seeds, double MeanIoU, double SdIoU, double MeanDice, double SdDice, double Seconds);

/// <summary>
/// A method against a baseline on the same held-out images: the mean over images of (method − baseline) Dice, each
/// image's Dice first averaged over the seeds, with a 95% paired bootstrap interval over the images (the test set's
/// sampling noise; the seeds' spread is in <see cref="DaspMethodSummary"/>).
/// </summary>
/// <param name="Method">The method.</param>
/// <param name="Baseline">The baseline.</param>
/// <param name="Images">Held-out images compared.</param>
/// <param name="Difference">Mean Dice difference (method − baseline), in [−1, 1].</param>
/// <param name="Low">2.5th percentile of the bootstrap means.</param>
/// <param name="High">97.5th percentile of the bootstrap means.</param>
public sealed record PairedDifference(string Method, string Baseline, int Images, double Difference, double Low, double High)
{
    /// <summary>True when the 95% interval excludes 0: the difference is beyond the test set's noise.</summary>
    public bool BeyondNoise => Low > 0 || High < 0;

    /// <summary>One plain line, e.g. "dasp − noaug: +1.20 mDice points (95% paired bootstrap interval −0.80 … +3.10 over 24 images): within the noise".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Method} − {Baseline}: {100 * Difference:+0.00;−0.00;0.00} mDice points (95% paired bootstrap interval {100 * Low:+0.00;−0.00;0.00} … {100 * High:+0.00;−0.00;0.00} over {Images} images): ") +
        (BeyondNoise ? (Difference > 0 ? "better, beyond the noise" : "worse, beyond the noise") : "within the noise");
}

/// <summary>
/// DASP's comparison repeated over training seeds on one split (the main job's table): per method mean ± sd over seeds,
/// and each method against a baseline (default No-Aug) by a paired bootstrap over the held-out images — so a reader can
/// tell whether a method's difference from the baseline is beyond the noise of a small test set and of training.
/// </summary>
public sealed class DaspSeedSummary
{
    /// <summary>Bootstrap resamples (default 10,000).</summary>
    public const int Resamples = 10_000;

    /// <param name="runs">Each seed's rows (<see cref="DaspExperimentResult.Rows"/>), with per-image Dice.</param>
    /// <param name="baseline">The method the others are compared with (default "noaug"; no comparison when it did not run).</param>
    /// <param name="bootstrapSeed">Seed of the bootstrap draws.</param>
    public DaspSeedSummary(IReadOnlyList<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)> runs, string baseline = "noaug", int bootstrapSeed = 0)
    {
        ArgumentNullException.ThrowIfNull(runs);
        if (runs.Count == 0) throw new ArgumentException("no runs to summarise", nameof(runs));
        Runs = runs;
        var methods = runs.SelectMany(r => r.Rows.Select(x => x.Method)).Distinct().ToList();
        Methods = methods.Select(m =>
        {
            var rows = runs.SelectMany(r => r.Rows.Where(x => x.Method == m)).ToList();
            return new DaspMethodSummary(m, rows[0].Description, rows.Count, rows.Average(x => x.MeanIoU), Sd(rows.Select(x => x.MeanIoU)),
                rows.Average(x => x.MeanDice), Sd(rows.Select(x => x.MeanDice)), rows.Average(x => x.Seconds));
        }).ToList();
        Baseline = baseline;
        Differences = methods.Contains(baseline)
            ? methods.Where(m => m != baseline).Select(m => Paired(runs, m, baseline, bootstrapSeed)).ToList()
            : [];
        Robustness = SummariseRobustness();
    }

    /// <summary>The seeds' rows, as given.</summary>
    public IReadOnlyList<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)> Runs { get; }

    /// <summary>Per method, mean ± sd over seeds, in the order the methods first ran.</summary>
    public IReadOnlyList<DaspMethodSummary> Methods { get; }

    /// <summary>The baseline of <see cref="Differences"/>.</summary>
    public string Baseline { get; }

    /// <summary>Every other method against the baseline (empty when the baseline did not run).</summary>
    public IReadOnlyList<PairedDifference> Differences { get; }

    private static double Sd(IEnumerable<double> values)
    {
        var v = values.ToList();
        if (v.Count < 2) return double.NaN;
        double m = v.Average();
        return Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / (v.Count - 1));
    }

    /// <summary>
    /// Per image (ids every seed of both methods scored), Dice averaged over the seeds both methods ran with (a method
    /// that lacks some seeds, e.g. a table still being filled, is compared on the seeds it has); a percentile bootstrap
    /// of the mean difference.
    /// </summary>
    internal static PairedDifference Paired(IReadOnlyList<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)> runs, string method, string baseline, int seed)
    {
        runs = runs.Where(r => r.Rows.Any(x => x.Method == method) && r.Rows.Any(x => x.Method == baseline)).ToList();
        if (runs.Count == 0) throw new ArgumentException($"methods '{method}' and '{baseline}' share no training seed");
        Dictionary<string, double> MeanOverSeeds(string m)
        {
            var maps = runs.Select(r => r.Rows.FirstOrDefault(x => x.Method == m)?.ImageDice).Where(d => d is not null).Select(d => d!).ToList();
            if (maps.Count == 0) throw new ArgumentException($"method '{m}' has no per-image Dice");
            var ids = maps.Skip(1).Aggregate(new HashSet<string>(maps[0].Keys, StringComparer.Ordinal), (set, d) => { set.IntersectWith(d.Keys); return set; });
            return ids.ToDictionary(id => id, id => maps.Average(d => d[id]), StringComparer.Ordinal);
        }
        var a = MeanOverSeeds(method);
        var b = MeanOverSeeds(baseline);
        var diffs = a.Keys.Where(b.ContainsKey).Order(StringComparer.Ordinal).Select(id => a[id] - b[id]).ToArray();
        if (diffs.Length == 0) throw new ArgumentException($"methods '{method}' and '{baseline}' share no scored image");
        var rand = new Random(seed);
        var means = new double[Resamples];
        for (int r = 0; r < Resamples; r++)
        {
            double sum = 0;
            for (int i = 0; i < diffs.Length; i++) sum += diffs[rand.Next(diffs.Length)];
            means[r] = sum / diffs.Length;
        }
        Array.Sort(means);
        double Quantile(double q) => means[Math.Clamp((int)Math.Floor(q * (Resamples - 1)), 0, Resamples - 1)];
        return new PairedDifference(method, baseline, diffs.Length, diffs.Average(), Quantile(0.025), Quantile(0.975));
    }

    /// <summary>The table (mIoU/mDice in %, mean ± sd over seeds) and one line per method against the baseline.</summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        int seeds = Runs.Count;
        // Methods that ran with fewer seeds than others (parts of a table still running) say how many in a column.
        bool uneven = Methods.Any(m => m.Seeds != seeds);
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Held-out scores over {seeds} training seed{(seeds == 1 ? "" : "s")} ({string.Join(", ", Runs.Select(r => r.Seed))})")
            + (uneven ? "; not every method has run with all of them (see Seeds)" : "") + ", mean ± sd:");
        sb.AppendLine();
        sb.AppendLine($"| Method | Trained on |{(uneven ? " Seeds |" : "")} mIoU (%) | mDice (%) | Time per seed (s) |");
        sb.AppendLine($"| --- | --- |{(uneven ? " ---: |" : "")} ---: | ---: | ---: |");
        foreach (var m in Methods)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {m.Method} | {m.Description} |{(uneven ? $" {m.Seeds} |" : "")} {Pm(m.MeanIoU, m.SdIoU)} | {Pm(m.MeanDice, m.SdDice)} | {m.Seconds:F0} |"));
        if (Differences.Count > 0)
        {
            sb.AppendLine();
            foreach (var d in Differences) sb.AppendLine("- " + d);
        }
        var robust = Robustness;
        if (robust.Count > 0)
        {
            var eps = robust[0].Points.Select(p => p.Epsilon).ToList();
            sb.AppendLine().AppendLine("Held-out mDice (%) under FGSM of strength ε (paper 001, Table 2), mean ± sd over seeds:").AppendLine();
            sb.AppendLine("| Method | " + string.Join(" | ", eps.Select(e => string.Create(CultureInfo.InvariantCulture, $"ε = {e:G3}"))) + " |");
            sb.AppendLine("| --- |" + string.Concat(eps.Select(_ => " ---: |")));
            foreach (var (method, points) in robust)
                sb.AppendLine($"| {method} | " + string.Join(" | ", points.Select(p => Pm(p.MeanDice, p.SdDice))) + " |");
        }
        return sb.ToString();
    }

    /// <summary>
    /// Per method that was scored under FGSM in every seed it ran with (paper 001's Table 2, <see cref="DaspComparisonRow.Robustness"/>),
    /// each ε's held-out mIoU/mDice as mean ± sample sd over the seeds, in <see cref="Methods"/>' order. Empty when no
    /// row carries robustness scores.
    /// </summary>
    public IReadOnlyList<(string Method, IReadOnlyList<RobustnessSummary> Points)> Robustness { get; }

    private List<(string, IReadOnlyList<RobustnessSummary>)> SummariseRobustness()
    {
        var list = new List<(string, IReadOnlyList<RobustnessSummary>)>();
        foreach (var m in Methods)
        {
            var rows = Runs.SelectMany(r => r.Rows.Where(x => x.Method == m.Method)).ToList();
            if (rows.Any(r => r.Robustness is null)) continue;
            var eps = rows[0].Robustness!.Select(p => p.Epsilon).ToList();
            if (rows.Any(r => !r.Robustness!.Select(p => p.Epsilon).SequenceEqual(eps)))
                throw new ArgumentException($"method '{m.Method}': the seeds were scored under different FGSM strengths");
            list.Add((m.Method, eps.Select((e, i) => new RobustnessSummary(e,
                rows.Average(r => r.Robustness![i].MeanIoU), Sd(rows.Select(r => r.Robustness![i].MeanIoU)),
                rows.Average(r => r.Robustness![i].MeanDice), Sd(rows.Select(r => r.Robustness![i].MeanDice)))).ToList()));
        }
        return list;
    }

    /// <summary>
    /// The seeds' rows as JSON (what <see cref="RunsFromJson"/> reads back; <c>medseg dasp</c> writes it as
    /// <c>runs.json</c>): <c>[{"seed": 1, "rows": [{"method", "description", "mIoU", "mDice", "seconds",
    /// "fgsm_robustness": [{"epsilon", "mIoU", "mDice"}] or null, "image_dice": {id: Dice} or null}]}]</c>.
    /// </summary>
    public static string RunsToJson(IReadOnlyList<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)> runs)
    {
        ArgumentNullException.ThrowIfNull(runs);
        var array = new JsonArray();
        foreach (var (seed, rows) in runs)
        {
            var jr = new JsonArray();
            foreach (var r in rows)
                jr.Add(new JsonObject
                {
                    ["method"] = r.Method, ["description"] = r.Description, ["mIoU"] = r.MeanIoU, ["mDice"] = r.MeanDice, ["seconds"] = r.Seconds,
                    ["fgsm_robustness"] = r.Robustness is null ? null
                        : new JsonArray(r.Robustness.Select(p => (JsonNode)new JsonObject { ["epsilon"] = p.Epsilon, ["mIoU"] = p.MeanIoU, ["mDice"] = p.MeanDice }).ToArray()),
                    ["image_dice"] = r.ImageDice is null ? null
                        : new JsonObject(r.ImageDice.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)kv.Value))),
                });
            array.Add(new JsonObject { ["seed"] = seed, ["rows"] = jr });
        }
        return array.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }

    /// <summary>Reads what <see cref="RunsToJson"/> wrote; <paramref name="source"/> (a file name) names the input in errors.</summary>
    public static List<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)> RunsFromJson(string json, string source = "runs.json")
    {
        ArgumentNullException.ThrowIfNull(json);
        JsonNode? root;
        try { root = JsonNode.Parse(json); }
        catch (JsonException e) { throw new InvalidDataException($"{source}: not JSON ({e.Message})", e); }
        if (root is not JsonArray array) throw new InvalidDataException($"{source}: expected a JSON array of seeds' runs (as 'medseg dasp' writes runs.json)");
        try
        {
            return array.Select(run =>
            {
                int seed = run!["seed"]!.GetValue<int>();
                var rows = run["rows"]!.AsArray().Select(r => new DaspComparisonRow(
                    r!["method"]!.GetValue<string>(), r["description"]!.GetValue<string>(), r["mIoU"]!.GetValue<double>(),
                    r["mDice"]!.GetValue<double>(), r["seconds"]!.GetValue<double>(),
                    r["fgsm_robustness"] is JsonArray rob
                        ? rob.Select(p => new RobustnessPoint(p!["epsilon"]!.GetValue<double>(), p["mIoU"]!.GetValue<double>(), p["mDice"]!.GetValue<double>())).ToList()
                        : null,
                    r["image_dice"] is JsonObject dice
                        ? dice.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>(), StringComparer.Ordinal)
                        : null)).ToList();
                return (seed, (IReadOnlyList<DaspComparisonRow>)rows);
            }).ToList();
        }
        catch (Exception e) when (e is NullReferenceException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"{source}: not a runs.json of 'medseg dasp' (a seed, method, score or image Dice is missing or mistyped)", e);
        }
    }

    /// <summary>
    /// Joins runs made in parts (e.g. one process per seed, or the methods split over processes on one split): the rows of
    /// each seed are concatenated in the order given. A method scored twice for the same seed is an error.
    /// </summary>
    public static List<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)> Merge(IEnumerable<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        var bySeed = new List<(int Seed, List<DaspComparisonRow> Rows)>();
        foreach (var (seed, rows) in parts)
        {
            var entry = bySeed.FirstOrDefault(x => x.Seed == seed);
            if (entry.Rows is null) { entry = (seed, []); bySeed.Add(entry); }
            foreach (var r in rows)
            {
                if (entry.Rows.Any(x => x.Method == r.Method))
                    throw new ArgumentException($"seed {seed}: method '{r.Method}' appears in more than one run; give each (seed, method) once");
                entry.Rows.Add(r);
            }
        }
        return bySeed.Select(x => (x.Seed, (IReadOnlyList<DaspComparisonRow>)x.Rows)).ToList();
    }

    private static string Pm(double mean, double sd) => double.IsNaN(sd)
        ? string.Create(CultureInfo.InvariantCulture, $"{100 * mean:F2}")
        : string.Create(CultureInfo.InvariantCulture, $"{100 * mean:F2} ± {100 * sd:F2}");

    /// <summary>The summary as JSON: <c>seeds</c>, <c>methods</c> (mean/sd of mIoU and mDice in [0,1]) and <c>paired</c> (difference, interval, verdict).</summary>
    public string ToJson() => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["seeds"] = Runs.Select(r => r.Seed).ToList(),
        ["baseline"] = Baseline,
        ["methods"] = Methods.Select(m => new Dictionary<string, object?>
        {
            ["method"] = m.Method, ["description"] = m.Description, ["runs"] = m.Seeds,
            ["mIoU"] = m.MeanIoU, ["mIoU_sd"] = double.IsNaN(m.SdIoU) ? null : m.SdIoU,
            ["mDice"] = m.MeanDice, ["mDice_sd"] = double.IsNaN(m.SdDice) ? null : m.SdDice,
            ["seconds"] = Math.Round(m.Seconds, 1),
            ["fgsm_robustness"] = Robustness.FirstOrDefault(x => x.Method == m.Method).Points?.Select(p => new Dictionary<string, object?>
            {
                ["epsilon"] = p.Epsilon, ["mIoU"] = p.MeanIoU, ["mIoU_sd"] = double.IsNaN(p.SdIoU) ? null : p.SdIoU,
                ["mDice"] = p.MeanDice, ["mDice_sd"] = double.IsNaN(p.SdDice) ? null : p.SdDice,
            }).ToList(),
        }).ToList(),
        ["paired"] = Differences.Select(d => new Dictionary<string, object>
        {
            ["method"] = d.Method, ["baseline"] = d.Baseline, ["images"] = d.Images, ["dice_difference"] = d.Difference,
            ["ci95_low"] = d.Low, ["ci95_high"] = d.High, ["beyond_noise"] = d.BeyondNoise, ["line"] = d.ToString(),
        }).ToList(),
    }, new JsonSerializerOptions { WriteIndented = true });
}
