using MLNetMedSeg.Core;
using System.Globalization;
using System.Text;
using MLNetMedSeg.Data;
using MLNetMedSeg.Imaging;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Evaluation;

public sealed partial class EvaluationResult
{
    private static readonly byte[][] Palette =
    [
        [0, 0, 0], [255, 255, 255], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
        [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [0, 128, 128],
    ];

    /// <summary>
    /// Writes PNG overlays of the <paramref name="worst"/> and <paramref name="best"/> images by
    /// <paramref name="metric"/> (per-image value, mean over the evaluated classes; images where it is undefined
    /// are not ranked; an image is written once, as a worst case first). Each PNG is three panels side by side,
    /// 3W × H: the image with the ground-truth contour in green and the prediction contour in red (yellow where they
    /// coincide), the ground truth, and the prediction (white on black; a colour per class for multi-class masks).
    /// File names: <c>worst-01-{id}-dice0.1234.png</c>, <c>best-01-...</c> (rank, id, metric and score).
    /// </summary>
    /// <param name="folder">Output folder (created if missing).</param>
    /// <param name="data">The evaluated data (or data with the same rows): its image, label and prediction columns
    /// are read again. Rows are matched by the Id column when the data has one, else by position.</param>
    /// <param name="worst">How many of the worst images to write.</param>
    /// <param name="best">How many of the best images to write.</param>
    /// <param name="metric">The ranking metric (HD95: larger is worse).</param>
    /// <param name="imageColumn">The image column (default <see cref="EvaluationOptions.ImageColumn"/>).</param>
    /// <returns>The paths written, worst first then best, each in rank order.</returns>
    public IReadOnlyList<string> WriteOverlays(string folder, Microsoft.ML.IDataView data, int worst = 5, int best = 5,
        SegmentationMetric metric = SegmentationMetric.Dice, string? imageColumn = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        return WriteOverlays(folder, Core.MLNet.MLNetData.AsLibraryView(data), worst, best, metric, imageColumn);
    }

    internal IReadOnlyList<string> WriteOverlays(string folder, IDataView data, int worst = 5, int best = 5,
        SegmentationMetric metric = SegmentationMetric.Dice, string? imageColumn = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentOutOfRangeException.ThrowIfNegative(worst);
        ArgumentOutOfRangeException.ThrowIfNegative(best);
        if (!IsReported(metric))
            throw new ArgumentException($"{MetricName(metric)} was not computed (EvaluationOptions.ComputeHd95 is off)", nameof(metric));
        imageColumn ??= Options.ImageColumn;
        const string consumer = "WriteOverlays";
        var schema = data.Schema;
        var imgCol = schema.RequireTensor(imageColumn, TensorColumnType.Image(), consumer);
        var labelCol = DataViewEvaluation.CheckLabelColumn(schema, LabelColumn, IsBinary, consumer);
        var predCol = DataViewEvaluation.CheckPredictionColumn(schema, PredictionColumn, IsBinary, NumClasses, consumer);
        var idCol = DataViewEvaluation.CheckIdColumn(schema, Options.IdColumn, consumer);

        // Rank.
        bool higherBetter = MetricFormulas.HigherIsBetter(metric);
        var ranked = Images.Where(im => !double.IsNaN(im.Mean[metric]))
            .OrderBy(im => higherBetter ? im.Mean[metric] : -im.Mean[metric]).ThenBy(im => im.Index).ToList();
        var picks = new List<(string Kind, int Rank, ImageMetrics Image)>();
        var taken = new HashSet<int>();
        foreach (var im in ranked.Take(worst))
        {
            taken.Add(im.Index);
            picks.Add(("worst", picks.Count + 1, im));
        }
        int rank = 0;
        foreach (var im in Enumerable.Reverse(ranked).Where(im => !taken.Contains(im.Index)).Take(best))
            picks.Add(("best", ++rank, im));
        if (picks.Count == 0) return [];

        // Match rows: by id when the data has an id column, else by position.
        var byKey = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        for (int k = 0; k < picks.Count; k++)
        {
            string key = idCol is null ? picks[k].Image.Index.ToString(CultureInfo.InvariantCulture) : picks[k].Image.Id;
            if (!byKey.TryGetValue(key, out var list)) byKey[key] = list = [];
            list.Add(k);
        }

        Directory.CreateDirectory(folder);
        var ev = IsBinary ? SegmentationEvaluator.Binary(Options) : SegmentationEvaluator.MultiClass(NumClasses, Options);
        var paths = new string?[picks.Count];
        var cols = new List<DataViewSchema.Column> { imgCol, labelCol, predCol };
        if (idCol is not null) cols.Add(idCol);
        using (var cursor = data.GetRowCursor(cols))
        {
            long row = -1;
            while (cursor.MoveNext())
            {
                row++;
                string key = idCol is null ? row.ToString(CultureInfo.InvariantCulture) : cursor.GetText(idCol.Name);
                if (!byKey.Remove(key, out var which)) continue;
                using var scope = torch.NewDisposeScope();
                var image = cursor.GetTensor(imgCol.Name);
                var (p, t) = ev.ToLabels(cursor.GetTensor(predCol.Name), cursor.GetTensor(labelCol.Name));
                byte[] png = Compose(image, t, p, key, imgCol.Name, out int w, out int h);
                foreach (int k in which)
                {
                    var (kind, r, im) = picks[k];
                    string score = im.Mean[metric].ToString("F4", CultureInfo.InvariantCulture);
                    string name = $"{kind}-{r:D2}-{SafeName(im.Id)}-{MetricName(metric).ToLowerInvariant()}{score}.png";
                    string path = Path.Combine(folder, name);
                    ImageIO.WritePng(path, png, 3 * w, h, 3);
                    paths[k] = path;
                }
                if (byKey.Count == 0) break;
            }
        }
        if (byKey.Count > 0)
            throw new ArgumentException(
                $"{consumer}: rows {string.Join(", ", byKey.Keys.Select(k => $"'{k}'"))} were not found in the data ({(idCol is null ? "matched by position" : $"matched by column '{idCol.Name}'")})", nameof(data));
        return paths.Select(p => p!).ToArray();
    }

    private static string SafeName(string id)
    {
        var sb = new StringBuilder(id.Length);
        foreach (char c in id) sb.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' ? c : '_');
        return sb.Length == 0 ? "_" : sb.ToString();
    }

    private static byte[] Compose(Tensor image, Tensor target, Tensor pred, string row, string imageColumn, out int width, out int height)
    {
        height = (int)target.size(1);
        width = (int)target.size(2);
        if (image.size(1) != height || image.size(2) != width || image.size(0) is not (1 or 3))
            throw new ArgumentException($"row '{row}': column '{imageColumn}' is [{string.Join(",", image.shape)}] but the masks are {height}x{width} (expected [1|3,{height},{width}])");
        var img = image.detach().cpu().to(ScalarType.Float32).clamp(S(0), S(1)).mul(S(255)).round().to(ScalarType.Byte).contiguous().ToArray<byte>();
        long[] tl = target.cpu().contiguous().ToArray<long>();
        long[] pl = pred.cpu().contiguous().ToArray<long>();
        int channels = (int)image.size(0), h = height, w = width, stride = 3 * w;
        var px = new byte[h * stride * 3];
        bool[] gtEdge = Contour(tl, h, w), prEdge = Contour(pl, h, w);
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                int o = (y * stride + x) * 3;
                for (int c = 0; c < 3; c++) px[o + c] = img[(channels == 1 ? 0 : c) * h * w + i];
                if (gtEdge[i] || prEdge[i])
                {
                    px[o] = prEdge[i] ? (byte)255 : (byte)0;
                    px[o + 1] = gtEdge[i] ? (byte)255 : (byte)0;
                    px[o + 2] = 0;
                }
                byte[] g = Palette[(int)(tl[i] % Palette.Length)], q = Palette[(int)(pl[i] % Palette.Length)];
                int og = (y * stride + w + x) * 3, op = (y * stride + 2 * w + x) * 3;
                for (int c = 0; c < 3; c++) { px[og + c] = g[c]; px[op + c] = q[c]; }
            }
        return px;
    }

    /// <summary>Foreground pixels (label ≠ 0) with a 4-neighbour of a different label or on the image border.</summary>
    private static bool[] Contour(long[] labels, int h, int w)
    {
        var e = new bool[h * w];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int i = y * w + x;
                long v = labels[i];
                if (v == 0) continue;
                e[i] = x == 0 || y == 0 || x == w - 1 || y == h - 1
                    || labels[i - 1] != v || labels[i + 1] != v || labels[i - w] != v || labels[i + w] != v;
            }
        return e;
    }
}
