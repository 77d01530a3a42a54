using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Attacks;

/// <summary>
/// Pictures of an attack, as float32 RGB tensors [3, H, W] in [0, 1] for <see cref="Imaging.ImageIO.WritePng(string, Tensor)"/>:
/// images, label masks (a fixed palette), V as a diverging blue–white–red map, D as a flow colour wheel (hue = direction,
/// saturation = magnitude), and a grid of such tiles for a figure like Fig. 2/3 of paper 002.
/// </summary>
public static class AttackVisualization
{
    /// <summary>Label colours: background black, then blue, green, orange, red (the paper's pancreas, kidneys, liver, spleen), then more.</summary>
    private static readonly float[][] Palette =
    [
        [0, 0, 0], [0.12f, 0.47f, 0.98f], [0.17f, 0.75f, 0.25f], [1f, 0.6f, 0.1f], [0.9f, 0.15f, 0.15f],
        [0.6f, 0.3f, 0.8f], [0.1f, 0.8f, 0.8f], [0.9f, 0.9f, 0.2f],
    ];

    /// <summary>An image [C, H, W] (C = 1 or 3, values clamped to [0, 1]) as RGB.</summary>
    public static Tensor Image(Tensor image)
    {
        Check(image, "image");
        using var scope = NewDisposeScope();
        var x = image.detach().cpu().to(ScalarType.Float32).clamp(S(0), S(1));
        if (x.size(0) == 1) x = x.expand(3, x.size(1), x.size(2));
        else if (x.size(0) != 3) throw new ArgumentException($"image must have 1 or 3 channels, got [{string.Join(",", image.shape)}]", nameof(image));
        return x.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>A binary mask [1, H, W] (≥ 0.5 = class 1) or class-index mask [H, W] in palette colours.</summary>
    public static Tensor Mask(Tensor mask)
    {
        ArgumentNullException.ThrowIfNull(mask);
        using var scope = NewDisposeScope();
        var m = mask.detach().cpu();
        m = m.dim() == 3 ? m.squeeze(0).ge(S(0.5)).to(ScalarType.Int64) : m.to(ScalarType.Int64);
        if (m.dim() != 2) throw new ArgumentException($"mask must be [1,H,W] or [H,W], got [{string.Join(",", mask.shape)}]", nameof(mask));
        long h = m.size(0), w = m.size(1);
        var labels = m.contiguous().ToArray<long>();
        var rgb = new float[3 * h * w];
        for (long p = 0; p < labels.Length; p++)
        {
            var c = Palette[(int)(Math.Max(0, labels[p]) % Palette.Length)];
            for (int k = 0; k < 3; k++) rgb[k * h * w + p] = c[k];
        }
        return TensorExtensions.FromArray<float>(rgb, [3, h, w]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// V [C, H, W] (averaged over channels) as a diverging map: 0 white, negative towards blue, positive towards red, full
    /// colour at ±<paramref name="scale"/> (default: the largest |V| of this field, at least 0.05 so that a faint field stays pale).
    /// </summary>
    public static Tensor Intensity(Tensor intensity, double? scale = null)
    {
        Check(intensity, "intensity");
        using var scope = NewDisposeScope();
        var v = intensity.detach().cpu().to(ScalarType.Float32).mean([0]).contiguous();
        long h = v.size(0), w = v.size(1);
        var values = v.ToArray<float>();
        double s = scale ?? Math.Max(0.05, values.Max(Math.Abs));
        var rgb = new float[3 * h * w];
        for (long p = 0; p < values.Length; p++)
        {
            float t = (float)Math.Clamp(values[p] / s, -1, 1);
            // white (1,1,1) → red (0.8,0.1,0.1) for t > 0, → blue (0.1,0.2,0.8) for t < 0
            float[] end = t >= 0 ? [0.8f, 0.1f, 0.1f] : [0.1f, 0.2f, 0.8f];
            float a = Math.Abs(t);
            for (int k = 0; k < 3; k++) rgb[k * h * w + p] = 1 - a + a * end[k];
        }
        return TensorExtensions.FromArray<float>(rgb, [3, h, w]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// D [2, H, W] (pixels, x then y) as a flow colour wheel: hue = direction (0° = +x, red), saturation = |D| divided by
    /// <paramref name="maxMagnitude"/> (default: the largest |D| of this field, at least 1 pixel so that a sub-pixel field
    /// stays pale), value 1 (zero displacement is white).
    /// </summary>
    public static Tensor Deformation(Tensor deformation, double? maxMagnitude = null)
    {
        ArgumentNullException.ThrowIfNull(deformation);
        if (deformation.dim() != 3 || deformation.size(0) != 2)
            throw new ArgumentException($"deformation must be [2,H,W], got [{string.Join(",", deformation.shape)}]", nameof(deformation));
        using var scope = NewDisposeScope();
        var d = deformation.detach().cpu().to(ScalarType.Float32).contiguous();
        long h = d.size(1), w = d.size(2), n = h * w;
        var a = d.ToArray<float>();
        double max = maxMagnitude ?? Math.Max(1.0, Enumerable.Range(0, (int)n).Max(p => Math.Sqrt(a[p] * a[p] + a[n + p] * a[n + p])));
        var rgb = new float[3 * n];
        for (long p = 0; p < n; p++)
        {
            double dx = a[p], dy = a[n + p];
            double hue = (Math.Atan2(dy, dx) / (2 * Math.PI) + 1) % 1.0;
            double sat = Math.Clamp(Math.Sqrt(dx * dx + dy * dy) / max, 0, 1);
            var (r, g, b) = HsvToRgb(hue, sat, 1);
            rgb[p] = (float)r;
            rgb[n + p] = (float)g;
            rgb[2 * n + p] = (float)b;
        }
        return TensorExtensions.FromArray<float>(rgb, [3, h, w]).MoveToOuterDisposeScope();
    }

    /// <summary>HSV (each in [0, 1]) to RGB.</summary>
    internal static (double R, double G, double B) HsvToRgb(double h, double s, double v)
    {
        double f = h * 6;
        int i = (int)Math.Floor(f) % 6;
        double frac = f - Math.Floor(f);
        double p = v * (1 - s), q = v * (1 - s * frac), t = v * (1 - s * (1 - frac));
        return i switch
        {
            0 => (v, t, p),
            1 => (q, v, p),
            2 => (p, v, t),
            3 => (p, q, v),
            4 => (t, p, v),
            _ => (v, p, q),
        };
    }

    /// <summary>
    /// A grid of RGB tiles [3, H, W] of one size (rows of equal length; e.g. I₀, S_GT, S₀, I_DV, V, D, S_DV per image)
    /// with <paramref name="gap"/> white pixels between tiles.
    /// </summary>
    public static Tensor Grid(IReadOnlyList<IReadOnlyList<Tensor>> rows, int gap = 2)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (rows.Count == 0 || rows[0].Count == 0) throw new ArgumentException("the figure needs at least one tile", nameof(rows));
        int cols = rows[0].Count;
        if (rows.Any(r => r.Count != cols)) throw new ArgumentException("every row must have the same number of tiles", nameof(rows));
        long h = rows[0][0].size(1), w = rows[0][0].size(2);
        using var scope = NewDisposeScope();
        var canvas = ones([3, rows.Count * h + (rows.Count - 1) * gap, cols * w + (cols - 1) * gap]);
        for (int i = 0; i < rows.Count; i++)
            for (int j = 0; j < cols; j++)
            {
                var t = rows[i][j];
                if (t.dim() != 3 || t.size(0) != 3 || t.size(1) != h || t.size(2) != w)
                    throw new ArgumentException($"tile ({i}, {j}) is [{string.Join(",", t.shape)}], expected [3,{h},{w}]", nameof(rows));
                canvas.narrow(1, i * (h + gap), h).narrow(2, j * (w + gap), w).copy_(t.cpu().to(ScalarType.Float32));
            }
        return canvas.MoveToOuterDisposeScope();
    }

    private static void Check(Tensor t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        if (t.dim() != 3) throw new ArgumentException($"{name} must be [C,H,W], got [{string.Join(",", t.shape)}]", name);
    }
}
