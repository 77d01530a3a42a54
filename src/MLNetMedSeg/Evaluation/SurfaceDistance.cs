namespace MLNetMedSeg.Evaluation;

/// <summary>
/// Boundaries, an exact Euclidean distance transform and the 95th percentile Hausdorff distance (HD95) of 2-D
/// masks, on the CPU. Masks are row-major <c>bool[height*width]</c>.
/// </summary>
/// <remarks>
/// Conventions:
/// <list type="bullet">
/// <item>Boundary: the foreground pixels with at least one 4-neighbour (up, down, left, right) that is background;
/// pixels outside the image count as background, so foreground touching the image border is boundary.</item>
/// <item>Distances are Euclidean, in pixels, between pixel centres.</item>
/// <item>HD95 pools the distances from every prediction boundary pixel to the nearest ground-truth boundary pixel and
/// from every ground-truth boundary pixel to the nearest prediction boundary pixel (the symmetric surface
/// distances), and takes their 95th percentile with linear interpolation (numpy's default): this is medpy's
/// <c>hd95</c>. MONAI's <c>compute_hausdorff_distance(percentile=95)</c> instead takes the larger of the two directed
/// 95th percentiles, which is never smaller.</item>
/// <item>When either mask is empty there are no distances: <see cref="Hd95"/> returns NaN and the evaluator applies
/// its rule (see <see cref="SegmentationEvaluator"/>: both empty = 0 under <see cref="EmptyMaskPolicy.One"/>,
/// otherwise NaN, dropped from means and counted).</item>
/// </list>
/// </remarks>
public static class SurfaceDistance
{
    private const double Far = 1e20;

    /// <summary>The 4-neighbour boundary of a mask (see the class remarks).</summary>
    public static bool[] Boundary(ReadOnlySpan<bool> mask, int height, int width)
    {
        CheckSize(mask.Length, height, width, nameof(mask));
        var b = new bool[mask.Length];
        for (int y = 0; y < height; y++)
        {
            int row = y * width;
            for (int x = 0; x < width; x++)
            {
                int i = row + x;
                if (!mask[i]) continue;
                b[i] = x == 0 || x == width - 1 || y == 0 || y == height - 1
                    || !mask[i - 1] || !mask[i + 1] || !mask[i - width] || !mask[i + width];
            }
        }
        return b;
    }

    /// <summary>
    /// Exact squared Euclidean distance from every pixel to the nearest <paramref name="feature"/> pixel
    /// (Felzenszwalb &amp; Huttenlocher, "Distance Transforms of Sampled Functions", 2012: the lower envelope of
    /// parabolas, one pass over columns, then one over rows; O(H·W)). Pixels when there is no feature pixel at all
    /// are +∞.
    /// </summary>
    public static double[] SquaredDistanceTransform(ReadOnlySpan<bool> feature, int height, int width)
    {
        CheckSize(feature.Length, height, width, nameof(feature));
        var d = new double[feature.Length];
        bool any = false;
        for (int i = 0; i < feature.Length; i++)
        {
            d[i] = feature[i] ? 0 : Far;
            any |= feature[i];
        }
        if (!any)
        {
            Array.Fill(d, double.PositiveInfinity);
            return d;
        }
        int n = Math.Max(height, width);
        var f = new double[n];
        var outp = new double[n];
        var v = new int[n];
        var z = new double[n + 1];
        // columns
        for (int x = 0; x < width; x++)
        {
            for (int y = 0; y < height; y++) f[y] = d[y * width + x];
            Transform1D(f, outp, height, v, z);
            for (int y = 0; y < height; y++) d[y * width + x] = outp[y];
        }
        // rows
        for (int y = 0; y < height; y++)
        {
            int row = y * width;
            for (int x = 0; x < width; x++) f[x] = d[row + x];
            Transform1D(f, outp, width, v, z);
            for (int x = 0; x < width; x++) d[row + x] = outp[x];
        }
        return d;
    }

    /// <summary>1-D squared distance transform of a sampled function: d(q) = min_p (q − p)² + f(p).</summary>
    private static void Transform1D(double[] f, double[] d, int n, int[] v, double[] z)
    {
        int k = 0;
        v[0] = 0;
        z[0] = double.NegativeInfinity;
        z[1] = double.PositiveInfinity;
        for (int q = 1; q < n; q++)
        {
            double s = Intersection(f, q, v[k]);
            while (s <= z[k])
            {
                k--; // z[0] = -inf ends the loop
                s = Intersection(f, q, v[k]);
            }
            k++;
            v[k] = q;
            z[k] = s;
            z[k + 1] = double.PositiveInfinity;
        }
        k = 0;
        for (int q = 0; q < n; q++)
        {
            while (z[k + 1] < q) k++;
            double dq = q - v[k];
            d[q] = dq * dq + f[v[k]];
        }
    }

    /// <summary>Abscissa where the parabolas rooted at q and p intersect.</summary>
    private static double Intersection(double[] f, int q, int p) =>
        (f[q] + (double)q * q - (f[p] + (double)p * p)) / (2.0 * (q - p));

    /// <summary>
    /// Distances from every boundary pixel of <paramref name="from"/> to the nearest boundary pixel of
    /// <paramref name="to"/>, in row-major order of the <paramref name="from"/> boundary pixels. Empty when
    /// <paramref name="from"/> is empty; +∞ each when <paramref name="to"/> is empty.
    /// </summary>
    public static double[] DirectedSurfaceDistances(ReadOnlySpan<bool> from, ReadOnlySpan<bool> to, int height, int width)
    {
        var bFrom = Boundary(from, height, width);
        var bTo = Boundary(to, height, width);
        var dt = SquaredDistanceTransform(bTo, height, width);
        var list = new List<double>();
        for (int i = 0; i < bFrom.Length; i++)
            if (bFrom[i]) list.Add(Math.Sqrt(dt[i]));
        return list.ToArray();
    }

    /// <summary>
    /// HD95 in pixels between two masks of the same size (see the class remarks): the 95th percentile of the pooled
    /// symmetric surface distances. NaN when either mask is empty; 0 for identical non-empty masks.
    /// </summary>
    public static double Hd95(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> target, int height, int width) =>
        HausdorffPercentile(prediction, target, height, width, 95);

    /// <summary>The <paramref name="percentile"/>-th percentile (0–100) of the pooled symmetric surface distances; 100 is the Hausdorff distance.</summary>
    public static double HausdorffPercentile(ReadOnlySpan<bool> prediction, ReadOnlySpan<bool> target, int height, int width, double percentile)
    {
        CheckSize(prediction.Length, height, width, nameof(prediction));
        CheckSize(target.Length, height, width, nameof(target));
        if (!prediction.Contains(true) || !target.Contains(true)) return double.NaN;
        var a = DirectedSurfaceDistances(prediction, target, height, width);
        var b = DirectedSurfaceDistances(target, prediction, height, width);
        var all = new double[a.Length + b.Length];
        a.CopyTo(all, 0);
        b.CopyTo(all, a.Length);
        return Percentile(all, percentile);
    }

    /// <summary>The q-th percentile (0–100) with linear interpolation between closest ranks (numpy's default); NaN if empty. Sorts <paramref name="values"/>.</summary>
    public static double Percentile(double[] values, double q)
    {
        if (q is < 0 or > 100 || double.IsNaN(q)) throw new ArgumentOutOfRangeException(nameof(q), q, "the percentile must be in [0, 100]");
        if (values.Length == 0) return double.NaN;
        Array.Sort(values);
        double scaled = q * (values.Length - 1); // rank × 100, exact for integer q
        int lo = (int)Math.Floor(scaled / 100.0);
        if ((double)lo * 100 > scaled) lo--;
        int hi = Math.Min(lo + 1, values.Length - 1);
        double frac = (scaled - 100.0 * lo) / 100.0;
        return frac == 0 ? values[lo] : values[lo] + frac * (values[hi] - values[lo]);
    }

    private static void CheckSize(int length, int height, int width, string name)
    {
        if (height < 1 || width < 1) throw new ArgumentOutOfRangeException(nameof(height), $"the mask size must be positive, got {height}x{width}");
        if (length != (long)height * width) throw new ArgumentException($"{name} has {length} pixels but the size is {height}x{width}", name);
    }
}
