using System.Globalization;
using System.Text;
using System.Text.Json;

namespace MLNetMedSeg.Evaluation;

/// <summary>One value per metric (NaN where undefined or dropped).</summary>
public readonly record struct MetricValues(double IoU, double Dice, double Precision, double Recall, double Specificity, double Accuracy, double Hd95)
{
    /// <summary>The value of one metric.</summary>
    public double this[SegmentationMetric metric] => metric switch
    {
        SegmentationMetric.IoU => IoU,
        SegmentationMetric.Dice => Dice,
        SegmentationMetric.Precision => Precision,
        SegmentationMetric.Recall => Recall,
        SegmentationMetric.Specificity => Specificity,
        SegmentationMetric.Accuracy => Accuracy,
        SegmentationMetric.Hd95 => Hd95,
        _ => throw new ArgumentOutOfRangeException(nameof(metric), metric, "unknown metric"),
    };

    internal static MetricValues From(Func<SegmentationMetric, double> f) => new(
        f(SegmentationMetric.IoU), f(SegmentationMetric.Dice), f(SegmentationMetric.Precision), f(SegmentationMetric.Recall),
        f(SegmentationMetric.Specificity), f(SegmentationMetric.Accuracy), f(SegmentationMetric.Hd95));
}

/// <summary>One image, one class: counts and metrics.</summary>
public sealed class ClassImageMetrics
{
    internal ClassImageMetrics(int cls, string name, ConfusionCounts counts, MetricValues metrics)
    {
        Class = cls; ClassName = name; Counts = counts; Metrics = metrics;
    }

    /// <summary>The class value (1 = foreground for binary masks).</summary>
    public int Class { get; }
    /// <summary>The class's display name.</summary>
    public string ClassName { get; }
    /// <summary>tp/fp/fn/tn of this image and class.</summary>
    public ConfusionCounts Counts { get; }
    /// <summary>Metrics of this image and class; NaN where 0/0 under Ignore, or HD95 undefined.</summary>
    public MetricValues Metrics { get; }
}

/// <summary>One image: its id, per-class counts and metrics, and their mean over the evaluated classes.</summary>
public sealed class ImageMetrics
{
    internal ImageMetrics(int index, string id, IReadOnlyList<ClassImageMetrics> classes, MetricValues mean)
    {
        Index = index; Id = id; Classes = classes; Mean = mean;
    }

    /// <summary>0-based position in evaluation order.</summary>
    public int Index { get; }
    /// <summary>The row's id (Id column) or its position.</summary>
    public string Id { get; }
    /// <summary>One entry per evaluated class, in <see cref="EvaluationResult.Classes"/> order.</summary>
    public IReadOnlyList<ClassImageMetrics> Classes { get; }
    /// <summary>Per metric, the mean over the evaluated classes whose value is defined (the value itself for binary).</summary>
    public MetricValues Mean { get; }
}

/// <summary>One class over the whole data set.</summary>
public sealed class ClassMetrics
{
    internal ClassMetrics(int cls, string name, ConfusionCounts counts, MetricValues micro, MetricValues perImageMean, IReadOnlyDictionary<SegmentationMetric, int> dropped)
    {
        Class = cls; Name = name; Counts = counts; Micro = micro; PerImageMean = perImageMean; Dropped = dropped;
    }

    /// <summary>The class value.</summary>
    public int Class { get; }
    /// <summary>The class's display name.</summary>
    public string Name { get; }
    /// <summary>Counts summed over all images.</summary>
    public ConfusionCounts Counts { get; }
    /// <summary>Metrics of <see cref="Counts"/> (what <see cref="MetricReduction.Macro"/> averages); HD95 is NaN here.</summary>
    public MetricValues Micro { get; }
    /// <summary>Mean over images of this class's per-image values (NaN values left out).</summary>
    public MetricValues PerImageMean { get; }
    /// <summary>Per metric, the images left out of <see cref="PerImageMean"/> (their value was NaN).</summary>
    public IReadOnlyDictionary<SegmentationMetric, int> Dropped { get; }
}

/// <summary>
/// Metrics of a segmentation evaluation: per-image rows (id, per-class counts and metrics) and the reductions
/// <see cref="PerImageMean"/> (the papers' mIoU/mDice), <see cref="Micro"/> and <see cref="Macro"/>; as an object,
/// JSON, CSV, a Markdown table, and PNG overlays of the worst and best images.
/// </summary>
public sealed partial class EvaluationResult
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private readonly SegmentationEvaluator.ImageRecord[] _records;

    internal EvaluationResult(EvaluationOptions options, bool binary, int numClasses, int[] classes,
        SegmentationEvaluator.ImageRecord[] records, string labelColumn, string predictionColumn)
    {
        Options = options;
        IsBinary = binary;
        NumClasses = numClasses;
        Classes = classes;
        LabelColumn = labelColumn;
        PredictionColumn = predictionColumn;
        _records = records;
        var policy = options.EmptyMaskPolicy;
        var names = classes.Select(ClassName).ToArray();

        double ValueOf(SegmentationEvaluator.ImageRecord r, int j, SegmentationMetric m) =>
            m == SegmentationMetric.Hd95 ? (options.ComputeHd95 ? r.Hd95[j] : double.NaN) : r.Counts[j].Metric(m, policy);

        var images = new List<ImageMetrics>(records.Length);
        for (int i = 0; i < records.Length; i++)
        {
            var r = records[i];
            var cls = new List<ClassImageMetrics>(classes.Length);
            for (int j = 0; j < classes.Length; j++)
                cls.Add(new ClassImageMetrics(classes[j], names[j], r.Counts[j], MetricValues.From(m => ValueOf(r, j, m))));
            images.Add(new ImageMetrics(i, r.Id, cls, MetricValues.From(m => NanMean(cls.Select(c => c.Metrics[m])))));
        }
        Images = images;

        var perClass = new List<ClassMetrics>(classes.Length);
        for (int j = 0; j < classes.Length; j++)
        {
            var sum = default(ConfusionCounts);
            foreach (var r in records) sum += r.Counts[j];
            int jj = j;
            var micro = MetricValues.From(m => m == SegmentationMetric.Hd95 ? double.NaN : sum.Metric(m, policy));
            var mean = MetricValues.From(m => NanMean(images.Select(im => im.Classes[jj].Metrics[m])));
            var dropped = MetricFormulas.AllMetrics.Where(IsReported).ToDictionary(m => m, m => images.Count(im => double.IsNaN(im.Classes[jj].Metrics[m])));
            perClass.Add(new ClassMetrics(classes[j], names[j], sum, micro, mean, dropped));
        }
        PerClass = perClass;

        var total = default(ConfusionCounts);
        foreach (var c in perClass) total += c.Counts;
        TotalCounts = total;
        PerImageMean = MetricValues.From(m => NanMean(images.Select(im => im.Mean[m])));
        Micro = MetricValues.From(m => m == SegmentationMetric.Hd95 ? double.NaN : total.Metric(m, policy));
        Macro = MetricValues.From(m => NanMean(perClass.Select(c => m == SegmentationMetric.Hd95 ? c.PerImageMean.Hd95 : c.Micro[m])));
        Dropped = MetricFormulas.AllMetrics.Where(IsReported).ToDictionary(m => m, m => images.Sum(im => im.Classes.Count(c => double.IsNaN(c.Metrics[m]))));
        DroppedImages = MetricFormulas.AllMetrics.Where(IsReported).ToDictionary(m => m, m => images.Count(im => double.IsNaN(im.Mean[m])));
    }

    /// <summary>The options used (a copy).</summary>
    public EvaluationOptions Options { get; }

    /// <summary>True for binary masks.</summary>
    public bool IsBinary { get; }

    /// <summary>Number of classes, background included (2 for binary masks).</summary>
    public int NumClasses { get; }

    /// <summary>The evaluated class values ([1] for binary masks without background).</summary>
    public IReadOnlyList<int> Classes { get; }

    /// <summary>The ground-truth column read (used again by <c>WriteOverlays</c>).</summary>
    public string LabelColumn { get; }

    /// <summary>The prediction column read (used again by <c>WriteOverlays</c>).</summary>
    public string PredictionColumn { get; }

    /// <summary>Number of images evaluated.</summary>
    public int ImageCount => Images.Count;

    /// <summary>Per-image rows, in evaluation order.</summary>
    public IReadOnlyList<ImageMetrics> Images { get; }

    /// <summary>Per evaluated class: summed counts, micro metrics, per-image means.</summary>
    public IReadOnlyList<ClassMetrics> PerClass { get; }

    /// <summary>Counts summed over images and evaluated classes.</summary>
    public ConfusionCounts TotalCounts { get; }

    /// <summary>The papers' reduction: the per-image value (mean over classes), then the mean over images.</summary>
    public MetricValues PerImageMean { get; }

    /// <summary>Counts summed over images and classes, then the metric. HD95 is NaN (distances do not sum).</summary>
    public MetricValues Micro { get; }

    /// <summary>Mean over evaluated classes of the per-class micro values (HD95: of the per-class per-image means).</summary>
    public MetricValues Macro { get; }

    /// <summary>
    /// Per metric, how many (image, class) values were NaN and left out of the per-image means: 0/0 under
    /// <see cref="EmptyMaskPolicy.Ignore"/>, or an undefined HD95. Metrics not computed (HD95 when off) are absent.
    /// </summary>
    public IReadOnlyDictionary<SegmentationMetric, int> Dropped { get; }

    /// <summary>Per metric, how many images had no defined value for any class and were left out of <see cref="PerImageMean"/>.</summary>
    public IReadOnlyDictionary<SegmentationMetric, int> DroppedImages { get; }

    /// <summary>mIoU as the papers report it (<see cref="PerImageMean"/>.IoU).</summary>
    public double MeanIoU => PerImageMean.IoU;

    /// <summary>mDice as the papers report it (<see cref="PerImageMean"/>.Dice).</summary>
    public double MeanDice => PerImageMean.Dice;

    /// <summary>A metric under a reduction.</summary>
    public double Get(SegmentationMetric metric, MetricReduction reduction = MetricReduction.PerImageMean) => reduction switch
    {
        MetricReduction.PerImageMean => PerImageMean[metric],
        MetricReduction.Micro => Micro[metric],
        MetricReduction.Macro => Macro[metric],
        _ => throw new ArgumentOutOfRangeException(nameof(reduction), reduction, "unknown reduction"),
    };

    /// <summary>True if the metric was computed (HD95 only with <see cref="EvaluationOptions.ComputeHd95"/>).</summary>
    public bool IsReported(SegmentationMetric metric) => metric != SegmentationMetric.Hd95 || Options.ComputeHd95;

    /// <summary>The display name of a class value.</summary>
    public string ClassName(int cls) =>
        Options.ClassNames is { } n && cls < n.Count ? n[cls]
        : IsBinary ? (cls == 1 ? "foreground" : "background")
        : cls == 0 ? "background" : $"class {cls}";

    /// <summary>Short metric names used in tables and files.</summary>
    public static string MetricName(SegmentationMetric metric) => metric switch
    {
        SegmentationMetric.IoU => "IoU",
        SegmentationMetric.Dice => "Dice",
        SegmentationMetric.Precision => "Precision",
        SegmentationMetric.Recall => "Recall",
        SegmentationMetric.Specificity => "Specificity",
        SegmentationMetric.Accuracy => "Accuracy",
        SegmentationMetric.Hd95 => "HD95",
        _ => metric.ToString(),
    };

    internal static double NanMean(IEnumerable<double> values)
    {
        double s = 0;
        int n = 0;
        foreach (var v in values)
            if (!double.IsNaN(v)) { s += v; n++; }
        return n == 0 ? double.NaN : s / n;
    }

    private IEnumerable<SegmentationMetric> ReportedMetrics => MetricFormulas.AllMetrics.Where(IsReported);

    private static string Key(SegmentationMetric m) => m switch
    {
        SegmentationMetric.Hd95 => "hd95",
        SegmentationMetric.IoU => "iou",
        _ => m.ToString().ToLowerInvariant(),
    };

    private static string Num(double v) => double.IsNaN(v) ? "NaN" : double.IsPositiveInfinity(v) ? "Infinity" : v.ToString("R", Inv);

    private static string Fmt(double v) => double.IsNaN(v) ? "n/a" : v.ToString("F4", Inv);

    // ---------------------------------------------------------------- JSON

    /// <summary>
    /// The whole result as indented JSON: settings, the three reductions, dropped counts, per-class and per-image
    /// values. Undefined values (NaN) are written as null.
    /// </summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("mode", IsBinary ? "binary" : "multiclass");
            w.WriteNumber("numClasses", NumClasses);
            w.WriteStartArray("classes");
            foreach (var c in Classes) w.WriteNumberValue(c);
            w.WriteEndArray();
            w.WriteStartArray("classNames");
            foreach (var c in Classes) w.WriteStringValue(ClassName(c));
            w.WriteEndArray();
            if (IsBinary) w.WriteNumber("threshold", Options.Threshold);
            w.WriteString("emptyMaskPolicy", Options.EmptyMaskPolicy.ToString());
            w.WriteBoolean("includeBackground", Options.IncludeBackground);
            w.WriteNumber("imageCount", ImageCount);
            // The papers' headline figures (per-image means at the threshold), also found under aggregate.perImageMean.
            if (double.IsNaN(MeanIoU)) w.WriteNull("mIoU"); else w.WriteNumber("mIoU", MeanIoU);
            if (double.IsNaN(MeanDice)) w.WriteNull("mDice"); else w.WriteNumber("mDice", MeanDice);
            w.WriteStartObject("aggregate");
            WriteMetrics(w, "perImageMean", PerImageMean);
            WriteMetrics(w, "micro", Micro);
            WriteMetrics(w, "macro", Macro);
            w.WriteEndObject();
            WriteDropped(w, "dropped", Dropped);
            WriteDropped(w, "droppedImages", DroppedImages);
            WriteCounts(w, "totalCounts", TotalCounts);
            w.WriteStartArray("perClass");
            foreach (var c in PerClass)
            {
                w.WriteStartObject();
                w.WriteNumber("class", c.Class);
                w.WriteString("name", c.Name);
                WriteCounts(w, "counts", c.Counts);
                WriteMetrics(w, "micro", c.Micro);
                WriteMetrics(w, "perImageMean", c.PerImageMean);
                WriteDropped(w, "dropped", c.Dropped);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartArray("images");
            foreach (var im in Images)
            {
                w.WriteStartObject();
                w.WriteNumber("index", im.Index);
                w.WriteString("id", im.Id);
                WriteMetrics(w, "mean", im.Mean);
                w.WriteStartArray("classes");
                foreach (var c in im.Classes)
                {
                    w.WriteStartObject();
                    w.WriteNumber("class", c.Class);
                    WriteCounts(w, "counts", c.Counts);
                    WriteMetrics(w, "metrics", c.Metrics);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    private void WriteMetrics(Utf8JsonWriter w, string name, MetricValues v)
    {
        w.WriteStartObject(name);
        foreach (var m in ReportedMetrics)
        {
            double x = v[m];
            if (double.IsFinite(x)) w.WriteNumber(Key(m), x);
            else w.WriteNull(Key(m));
        }
        w.WriteEndObject();
    }

    private static void WriteDropped(Utf8JsonWriter w, string name, IReadOnlyDictionary<SegmentationMetric, int> d)
    {
        w.WriteStartObject(name);
        foreach (var (m, n) in d) w.WriteNumber(Key(m), n);
        w.WriteEndObject();
    }

    private static void WriteCounts(Utf8JsonWriter w, string name, ConfusionCounts c)
    {
        w.WriteStartObject(name);
        w.WriteNumber("tp", c.TruePositive);
        w.WriteNumber("fp", c.FalsePositive);
        w.WriteNumber("fn", c.FalseNegative);
        w.WriteNumber("tn", c.TrueNegative);
        w.WriteEndObject();
    }

    // ---------------------------------------------------------------- CSV

    /// <summary>
    /// Per-image CSV (RFC 4180, invariant culture): a header, then one row per image and evaluated class with
    /// index, id, class, class name, tp, fp, fn, tn and the metrics; undefined values are written as NaN.
    /// </summary>
    public string ToCsv()
    {
        var sb = new StringBuilder();
        sb.Append("index,id,class,class_name,tp,fp,fn,tn");
        foreach (var m in ReportedMetrics) sb.Append(',').Append(Key(m));
        sb.Append("\r\n");
        foreach (var im in Images)
            foreach (var c in im.Classes)
            {
                sb.Append(im.Index.ToString(Inv)).Append(',').Append(CsvField(im.Id)).Append(',')
                  .Append(c.Class.ToString(Inv)).Append(',').Append(CsvField(c.ClassName)).Append(',')
                  .Append(c.Counts.TruePositive.ToString(Inv)).Append(',').Append(c.Counts.FalsePositive.ToString(Inv)).Append(',')
                  .Append(c.Counts.FalseNegative.ToString(Inv)).Append(',').Append(c.Counts.TrueNegative.ToString(Inv));
                foreach (var m in ReportedMetrics) sb.Append(',').Append(Num(c.Metrics[m]));
                sb.Append("\r\n");
            }
        return sb.ToString();
    }

    private static string CsvField(string s) =>
        s.IndexOfAny([',', '"', '\r', '\n']) >= 0 ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;

    // ---------------------------------------------------------------- Markdown

    /// <summary>
    /// The aggregate table (metrics × reductions, 4 decimals, "n/a" where undefined), a line with the settings and
    /// dropped counts, and for more than one class a per-class table.
    /// </summary>
    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.Append("| Metric | Per-image mean | Micro | Macro |\n");
        sb.Append("| --- | ---: | ---: | ---: |\n");
        foreach (var m in ReportedMetrics)
        {
            string name = m == SegmentationMetric.Hd95 ? "HD95 (px)" : MetricName(m);
            sb.Append("| ").Append(name).Append(" | ").Append(Fmt(PerImageMean[m])).Append(" | ")
              .Append(Fmt(Micro[m])).Append(" | ").Append(Fmt(Macro[m])).Append(" |\n");
        }
        sb.Append('\n');
        sb.Append(ImageCount.ToString(Inv)).Append(ImageCount == 1 ? " image" : " images")
          .Append(" · classes: ").Append(string.Join(", ", Classes.Select(c => $"{ClassName(c)} ({c})")));
        if (IsBinary) sb.Append(" · threshold ").Append(Options.Threshold.ToString("R", Inv));
        sb.Append(" · empty-mask policy ").Append(Options.EmptyMaskPolicy);
        var dropped = Dropped.Where(kv => kv.Value > 0).ToList();
        sb.Append(" · dropped from per-image means: ")
          .Append(dropped.Count == 0 ? "none" : string.Join(", ", dropped.Select(kv => $"{MetricName(kv.Key)} {kv.Value}")))
          .Append('\n');
        if (Classes.Count > 1)
        {
            sb.Append('\n');
            sb.Append("| Class |");
            foreach (var m in ReportedMetrics) sb.Append(' ').Append(MetricName(m)).Append(" |");
            sb.Append('\n').Append("| --- |");
            foreach (var _ in ReportedMetrics) sb.Append(" ---: |");
            sb.Append('\n');
            foreach (var c in PerClass)
            {
                sb.Append("| ").Append(c.Name).Append(" (").Append(c.Class.ToString(Inv)).Append(") |");
                foreach (var m in ReportedMetrics) sb.Append(' ').Append(Fmt(c.PerImageMean[m])).Append(" |");
                sb.Append('\n');
            }
            sb.Append("\nPer-class values are per-image means over the images of each class.\n");
        }
        return sb.ToString();
    }

    /// <inheritdoc cref="ToMarkdown"/>
    public override string ToString() => ToMarkdown();
}
