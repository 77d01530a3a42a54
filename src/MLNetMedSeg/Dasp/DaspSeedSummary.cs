using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MLNetMedSeg.Dasp;

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

    /// <summary>Per image (ids every seed of both methods scored), Dice averaged over seeds; a percentile bootstrap of the mean difference.</summary>
    internal static PairedDifference Paired(IReadOnlyList<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)> runs, string method, string baseline, int seed)
    {
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
        sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Held-out scores over {seeds} training seed{(seeds == 1 ? "" : "s")} ({string.Join(", ", Runs.Select(r => r.Seed))}), mean ± sd:"));
        sb.AppendLine();
        sb.AppendLine("| Method | Trained on | mIoU (%) | mDice (%) | Time per seed (s) |");
        sb.AppendLine("| --- | --- | ---: | ---: | ---: |");
        foreach (var m in Methods)
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {m.Method} | {m.Description} | {Pm(m.MeanIoU, m.SdIoU)} | {Pm(m.MeanDice, m.SdDice)} | {m.Seconds:F0} |"));
        if (Differences.Count > 0)
        {
            sb.AppendLine();
            foreach (var d in Differences) sb.AppendLine("- " + d);
        }
        return sb.ToString();
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
        }).ToList(),
        ["paired"] = Differences.Select(d => new Dictionary<string, object>
        {
            ["method"] = d.Method, ["baseline"] = d.Baseline, ["images"] = d.Images, ["dice_difference"] = d.Difference,
            ["ci95_low"] = d.Low, ["ci95_high"] = d.High, ["beyond_noise"] = d.BeyondNoise, ["line"] = d.ToString(),
        }).ToList(),
    }, new JsonSerializerOptions { WriteIndented = true });
}
