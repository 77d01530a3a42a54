using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Tests.Data;

/// <summary>A temporary folder deleted at dispose, with writers for small generated images.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "medseg-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Sub(string name)
    {
        var p = System.IO.Path.Combine(Path, name);
        Directory.CreateDirectory(p);
        return p;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}

internal static class TestImages
{
    /// <summary>Deterministic RGB bytes (H×W×3): a smooth pattern that depends on <paramref name="seed"/>.</summary>
    public static byte[] Rgb(int h, int w, int seed)
    {
        var b = new byte[h * w * 3];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                int k = (y * w + x) * 3;
                b[k] = (byte)((x * 255 / Math.Max(1, w - 1) + seed * 17) % 256);
                b[k + 1] = (byte)((y * 255 / Math.Max(1, h - 1) + seed * 31) % 256);
                b[k + 2] = (byte)((128 + seed * 53) % 256);
            }
        return b;
    }

    /// <summary>A binary mask (0/255, H×W) with the first <paramref name="foreground"/> pixels (row-major) set.</summary>
    public static byte[] Mask(int h, int w, int foreground)
    {
        var m = new byte[h * w];
        for (int k = 0; k < foreground; k++) m[k] = 255;
        return m;
    }

    public static void WriteRgb(string path, int h, int w, int seed)
    {
        var px = Rgb(h, w, seed);
        switch (System.IO.Path.GetExtension(path).ToLowerInvariant())
        {
            case ".png": ImageIO.WritePng(path, px, w, h, 3); break;
            case ".jpg": case ".jpeg": ImageIO.WriteJpeg(path, px, w, h, 3, 95); break;
            case ".tif": case ".tiff": ImageIO.WriteTiff(path, px, w, h, 3); break;
            default: throw new ArgumentException(path);
        }
    }

    public static void WriteMask(string path, int h, int w, int foreground) => ImageIO.WritePng(path, Mask(h, w, foreground), w, h, 1);
}
