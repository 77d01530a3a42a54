using MLNetMedSeg.Imaging;

namespace PolypSegmentation;

/// <summary>
/// A minimal line chart rasterizer for training curves: each series is scaled to the plot's height by its own range
/// (a fixed one, or its [min, max]; stated in the console output), drawn over a light grid with one vertical line per epoch.
/// </summary>
internal static class LineChart
{
    public static void WritePng(string path, int width, int height, IReadOnlyList<(double[] Values, (byte R, byte G, byte B) Color, (double Lo, double Hi)? Range)> series)
    {
        var px = new byte[width * height * 3];
        Array.Fill(px, (byte)255);
        const int margin = 16;
        int n = series.Max(s => s.Values.Length);
        int plotW = width - 2 * margin, plotH = height - 2 * margin;
        for (int k = 0; k <= 4; k++) HLine(px, width, margin, width - margin, margin + k * plotH / 4, (225, 225, 225));
        for (int e = 0; e < n; e++)
        {
            int x = margin + (n == 1 ? plotW / 2 : e * plotW / (n - 1));
            VLine(px, width, x, margin, height - margin, (240, 240, 240));
        }
        HLine(px, width, margin, width - margin, height - margin, (90, 90, 90));
        VLine(px, width, margin, margin, height - margin, (90, 90, 90));
        foreach (var (values, color, range) in series)
        {
            var finite = values.Where(double.IsFinite).ToArray();
            if (finite.Length == 0) continue;
            var (lo, hi) = range ?? (finite.Min(), finite.Max());
            if (hi - lo < 1e-12) { lo -= 0.5; hi += 0.5; }
            (int X, int Y)? prev = null;
            for (int e = 0; e < values.Length; e++)
            {
                if (!double.IsFinite(values[e])) { prev = null; continue; }
                int x = margin + (n == 1 ? plotW / 2 : e * plotW / (n - 1));
                int y = height - margin - (int)Math.Round((values[e] - lo) / (hi - lo) * plotH);
                if (prev is { } p) Line(px, width, p.X, p.Y, x, y, color);
                Dot(px, width, height, x, y, color);
                prev = (x, y);
            }
        }
        ImageIO.WritePng(path, px, width, height, 3);
    }

    private static void Set(byte[] px, int width, int x, int y, (byte R, byte G, byte B) c)
    {
        int k = (y * width + x) * 3;
        if (k < 0 || k + 2 >= px.Length) return;
        px[k] = c.R; px[k + 1] = c.G; px[k + 2] = c.B;
    }

    private static void HLine(byte[] px, int width, int x0, int x1, int y, (byte, byte, byte) c) { for (int x = x0; x <= x1; x++) Set(px, width, x, y, c); }
    private static void VLine(byte[] px, int width, int x, int y0, int y1, (byte, byte, byte) c) { for (int y = y0; y <= y1; y++) Set(px, width, x, y, c); }

    private static void Dot(byte[] px, int width, int height, int x, int y, (byte, byte, byte) c)
    {
        for (int dy = -2; dy <= 2; dy++)
            for (int dx = -2; dx <= 2; dx++)
                if (x + dx >= 0 && x + dx < width && y + dy >= 0 && y + dy < height) Set(px, width, x + dx, y + dy, c);
    }

    private static void Line(byte[] px, int width, int x0, int y0, int x1, int y1, (byte, byte, byte) c)
    {
        // Bresenham, two pixels thick
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, err = dx + dy;
        while (true)
        {
            Set(px, width, x0, y0, c);
            Set(px, width, x0, y0 + 1, c);
            if (x0 == x1 && y0 == y1) break;
            int e2 = 2 * err;
            if (e2 >= dy) { err += dy; x0 += sx; }
            if (e2 <= dx) { err += dx; y0 += sy; }
        }
    }
}
