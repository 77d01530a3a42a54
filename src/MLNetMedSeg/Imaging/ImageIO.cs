using System.Reflection;
using System.Runtime.InteropServices;
using MLNetMedSeg.Torch;

namespace MLNetMedSeg.Imaging;

/// <summary>Compression of TIFF files written by <see cref="ImageIO.WriteTiff(string, Tensor, int, TiffCompression)"/>.</summary>
public enum TiffCompression { None = 0, Deflate = 1 }

/// <summary>File formats the codecs read.</summary>
public enum ImageFormat { Jpeg = 1, Png = 2, Tiff = 3 }

/// <summary>Decoded pixels, interleaved (row-major H×W×C), 8- or 16-bit.</summary>
public sealed class DecodedImage
{
    internal DecodedImage(int width, int height, int channels, int bitDepth, ImageFormat format, byte[]? p8, ushort[]? p16)
    {
        Width = width; Height = height; Channels = channels; BitDepth = bitDepth; Format = format; Pixels8 = p8; Pixels16 = p16;
    }

    public int Width { get; }
    public int Height { get; }
    /// <summary>1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA).</summary>
    public int Channels { get; }
    /// <summary>8 or 16.</summary>
    public int BitDepth { get; }
    public ImageFormat Format { get; }
    /// <summary>Samples when <see cref="BitDepth"/> is 8.</summary>
    public byte[]? Pixels8 { get; }
    /// <summary>Samples when <see cref="BitDepth"/> is 16.</summary>
    public ushort[]? Pixels16 { get; }
}

/// <summary>An image file could not be read or written; the message names the file and the reason.</summary>
public sealed class ImageFileException(string path, string reason)
    : IOException($"image '{path}': {reason}")
{
    public string FilePath { get; } = path;
    public string Reason { get; } = reason;
}

/// <summary>
/// Reads JPEG, PNG (8/16-bit, gray/RGB) and TIFF, writes PNG, JPEG and TIFF — through Debian's libjpeg-turbo, libpng and libtiff
/// (native/imaging.c). The format is detected from the file content.
/// </summary>
public static partial class ImageIO
{
    private const string Lib = "medseg_imaging";

    [StructLayout(LayoutKind.Sequential)]
    private struct MiImage
    {
        public int Width, Height, Channels, BitDepth, Format;
        public IntPtr Data;
    }

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] private static partial int mi_read(string path, out MiImage image);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] private static partial int mi_write_png(string path, IntPtr data, int width, int height, int channels, int bitDepth);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] private static partial int mi_write_jpeg(string path, IntPtr data, int width, int height, int channels, int quality);
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)] private static partial int mi_write_tiff(string path, IntPtr data, int width, int height, int channels, int bitDepth, int compression);
    [LibraryImport(Lib)] private static partial void mi_free(IntPtr p);
    [LibraryImport(Lib)] private static partial IntPtr mi_last_error();

    static ImageIO()
    {
        NativeLibrary.SetDllImportResolver(typeof(ImageIO).Assembly, (name, asm, path) =>
        {
            if (name != Lib) return IntPtr.Zero;
            string? dir = Path.GetDirectoryName(asm.Location);
            string candidate = Path.Combine(dir ?? AppContext.BaseDirectory, "libmedseg_imaging.so");
            return File.Exists(candidate) ? NativeLibrary.Load(candidate) : IntPtr.Zero;
        });
    }

    private static string LastError() => Marshal.PtrToStringUTF8(mi_last_error()) ?? "unknown error";

    /// <summary>Decodes an image file. Throws <see cref="ImageFileException"/> (naming the file) when it is missing, corrupt, truncated or unsupported.</summary>
    public static unsafe DecodedImage Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new ImageFileException(path, "the file does not exist");
        if (mi_read(path, out var img) != 0) throw new ImageFileException(path, LastError());
        try
        {
            long n = (long)img.Width * img.Height * img.Channels;
            if (img.BitDepth == 16)
            {
                var a = new ushort[n];
                new ReadOnlySpan<ushort>((void*)img.Data, checked((int)n)).CopyTo(a);
                return new DecodedImage(img.Width, img.Height, img.Channels, 16, (ImageFormat)img.Format, null, a);
            }
            var b = new byte[n];
            new ReadOnlySpan<byte>((void*)img.Data, checked((int)n)).CopyTo(b);
            return new DecodedImage(img.Width, img.Height, img.Channels, 8, (ImageFormat)img.Format, b, null);
        }
        finally
        {
            mi_free(img.Data);
        }
    }

    /// <summary>
    /// Reads an image as a float32 tensor [C,H,W] in [0,1] (8-bit /255, 16-bit /65535). Alpha is dropped.
    /// <paramref name="channels"/> (1 or 3) converts gray↔RGB (RGB→gray with ITU-R BT.601 luma weights); null keeps the file's.
    /// </summary>
    public static Tensor ReadTensor(string path, int? channels = null)
    {
        if (channels is not null and not 1 and not 3)
            throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1, 3 or null");
        var img = Read(path);
        return ToTensor(img, channels);
    }

    /// <summary>Converts decoded pixels to a float32 [C,H,W] tensor in [0,1]; see <see cref="ReadTensor"/>.</summary>
    public static Tensor ToTensor(DecodedImage img, int? channels = null)
    {
        using var scope = torch.NewDisposeScope();
        long[] shape = [img.Height, img.Width, img.Channels];
        Tensor hwc;
        if (img.BitDepth == 16)
        {
            var src = img.Pixels16!;
            var f = new float[src.Length];
            for (int k = 0; k < f.Length; k++) f[k] = src[k] / 65535f;
            hwc = torch.from_array<float>(f, shape);
        }
        else hwc = torch.from_array<byte>(img.Pixels8, shape).to(ScalarType.Float32) / 255.0;
        var chw = hwc.permute(2, 0, 1);
        int color = img.Channels is 2 or 4 ? img.Channels - 1 : img.Channels; // drop alpha
        if (color != img.Channels) chw = chw.narrow(0, 0, color);
        int want = channels ?? color;
        if (want == 3 && color == 1) chw = chw.expand(3, img.Height, img.Width);
        else if (want == 1 && color == 3)
        {
            using var w = torch.tensor(new float[] { 0.299f, 0.587f, 0.114f }, [3, 1, 1]);
            chw = (chw * w).sum([0], keepdim: true);
        }
        return chw.contiguous().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Writes a [C,H,W] (C = 1, 3 or 4) or [H,W] tensor as PNG: float values in [0,1] are scaled to 8 bits
    /// (clamped and rounded), uint8 is written as is. The write is atomic (temporary file, then rename).
    /// </summary>
    public static void WritePng(string path, Tensor image)
    {
        using var scope = torch.NewDisposeScope();
        var t = image.detach().cpu();
        if (t.dim() == 2) t = t.unsqueeze(0);
        if (t.dim() != 3 || t.size(0) is not (1 or 3 or 4))
            throw new ArgumentException($"WritePng('{path}'): expected a [C,H,W] tensor with C in {{1,3,4}} or [H,W], got [{string.Join(",", image.shape)}]", nameof(image));
        Tensor bytes = t.dtype == ScalarType.Byte ? t
            : torch.is_floating_point(t.dtype) ? (t.to(ScalarType.Float32).clamp(0, 1) * 255).round().to(ScalarType.Byte)
            : throw new ArgumentException($"WritePng('{path}'): unsupported dtype {t.dtype} (use float in [0,1] or uint8)", nameof(image));
        var hwc = bytes.permute(1, 2, 0).contiguous();
        var shape = hwc.shape;
        WritePng(path, hwc.ToArray<byte>(), (int)shape[1], (int)shape[0], (int)shape[2]);
    }

    /// <summary>Writes interleaved 8-bit pixels (H×W×C) as PNG, atomically.</summary>
    public static unsafe void WritePng(string path, ReadOnlySpan<byte> pixels, int width, int height, int channels)
    {
        if ((long)width * height * channels != pixels.Length)
            throw new ArgumentException($"WritePng('{path}'): {pixels.Length} bytes do not make a {width}x{height}x{channels} image", nameof(pixels));
        fixed (byte* p = pixels)
        {
            IntPtr data = (IntPtr)p;
            WriteAtomic(path, tmp => mi_write_png(tmp, data, width, height, channels, 8));
        }
    }

    /// <summary>Writes interleaved 16-bit pixels (H×W×C) as a 16-bit PNG, atomically.</summary>
    public static unsafe void WritePng16(string path, ReadOnlySpan<ushort> pixels, int width, int height, int channels)
    {
        if ((long)width * height * channels != pixels.Length)
            throw new ArgumentException($"WritePng16('{path}'): {pixels.Length} samples do not make a {width}x{height}x{channels} image", nameof(pixels));
        fixed (ushort* p = pixels)
        {
            IntPtr data = (IntPtr)p;
            WriteAtomic(path, tmp => mi_write_png(tmp, data, width, height, channels, 16));
        }
    }

    /// <summary>
    /// Writes a [C,H,W] (C = 1 or 3) or [H,W] tensor as a baseline JPEG of the given <paramref name="quality"/> (1..100):
    /// float values in [0,1] are scaled to 8 bits (clamped and rounded), uint8 is written as is. Atomic, as <see cref="WritePng(string, Tensor)"/>.
    /// JPEG is lossy: reading the file back gives values close to, not equal to, the tensor's.
    /// </summary>
    public static void WriteJpeg(string path, Tensor image, int quality = 95)
    {
        var (pixels, w, h, c) = ToInterleaved8(path, "WriteJpeg", image, [1, 3]);
        WriteJpeg(path, pixels, w, h, c, quality);
    }

    /// <summary>Writes interleaved 8-bit gray or RGB pixels (H×W×C, C = 1 or 3) as JPEG, atomically.</summary>
    public static unsafe void WriteJpeg(string path, ReadOnlySpan<byte> pixels, int width, int height, int channels, int quality = 95)
    {
        if (quality is < 1 or > 100) throw new ArgumentOutOfRangeException(nameof(quality), quality, $"WriteJpeg('{path}'): quality must be in 1..100");
        if (channels is not (1 or 3)) throw new ArgumentException($"WriteJpeg('{path}'): JPEG takes 1 or 3 channels, got {channels}", nameof(channels));
        if ((long)width * height * channels != pixels.Length)
            throw new ArgumentException($"WriteJpeg('{path}'): {pixels.Length} bytes do not make a {width}x{height}x{channels} image", nameof(pixels));
        fixed (byte* p = pixels)
        {
            IntPtr data = (IntPtr)p;
            WriteAtomic(path, tmp => mi_write_jpeg(tmp, data, width, height, channels, quality));
        }
    }

    /// <summary>
    /// Writes a [C,H,W] (C = 1, 2, 3 or 4) or [H,W] tensor as a TIFF of <paramref name="bitDepth"/> 8 or 16 bits per sample:
    /// float values in [0,1] are scaled to full scale (clamped and rounded); uint8 is written as is (8-bit only).
    /// Atomic, as <see cref="WritePng(string, Tensor)"/>.
    /// </summary>
    public static void WriteTiff(string path, Tensor image, int bitDepth = 8, TiffCompression compression = TiffCompression.Deflate)
    {
        if (bitDepth == 8)
        {
            var (pixels, w, h, c) = ToInterleaved8(path, "WriteTiff", image, [1, 2, 3, 4]);
            WriteTiff(path, pixels, w, h, c, compression);
        }
        else if (bitDepth == 16)
        {
            var (pixels, w, h, c) = ToInterleaved16(path, "WriteTiff", image);
            WriteTiff16(path, pixels, w, h, c, compression);
        }
        else throw new ArgumentOutOfRangeException(nameof(bitDepth), bitDepth, $"WriteTiff('{path}'): bitDepth must be 8 or 16");
    }

    /// <summary>Writes interleaved 8-bit pixels (H×W×C, C = 1..4) as TIFF, atomically.</summary>
    public static unsafe void WriteTiff(string path, ReadOnlySpan<byte> pixels, int width, int height, int channels, TiffCompression compression = TiffCompression.Deflate)
    {
        if ((long)width * height * channels != pixels.Length)
            throw new ArgumentException($"WriteTiff('{path}'): {pixels.Length} bytes do not make a {width}x{height}x{channels} image", nameof(pixels));
        fixed (byte* p = pixels)
        {
            IntPtr data = (IntPtr)p;
            WriteAtomic(path, tmp => mi_write_tiff(tmp, data, width, height, channels, 8, (int)compression));
        }
    }

    /// <summary>Writes interleaved 16-bit pixels (H×W×C, C = 1..4) as a 16-bit TIFF, atomically.</summary>
    public static unsafe void WriteTiff16(string path, ReadOnlySpan<ushort> pixels, int width, int height, int channels, TiffCompression compression = TiffCompression.Deflate)
    {
        if ((long)width * height * channels != pixels.Length)
            throw new ArgumentException($"WriteTiff16('{path}'): {pixels.Length} samples do not make a {width}x{height}x{channels} image", nameof(pixels));
        fixed (ushort* p = pixels)
        {
            IntPtr data = (IntPtr)p;
            WriteAtomic(path, tmp => mi_write_tiff(tmp, data, width, height, channels, 16, (int)compression));
        }
    }

    /// <summary>
    /// Writes a [C,H,W] (C = 1..4) or [H,W] float tensor in [0,1] as a 16-bit PNG (values scaled to 0..65535, clamped
    /// and rounded), atomically.
    /// </summary>
    public static void WritePng16(string path, Tensor image)
    {
        var (pixels, w, h, c) = ToInterleaved16(path, "WritePng16", image);
        WritePng16(path, pixels, w, h, c);
    }

    private static Tensor ToChw(string path, string op, Tensor image, int[] allowedChannels)
    {
        var t = image.detach().cpu();
        if (t.dim() == 2) t = t.unsqueeze(0);
        if (t.dim() != 3 || !allowedChannels.Contains((int)t.size(0)))
            throw new ArgumentException($"{op}('{path}'): expected a [C,H,W] tensor with C in {{{string.Join(",", allowedChannels)}}} or [H,W], got [{string.Join(",", image.shape)}]", nameof(image));
        return t;
    }

    private static (byte[] Pixels, int Width, int Height, int Channels) ToInterleaved8(string path, string op, Tensor image, int[] allowedChannels)
    {
        using var scope = torch.NewDisposeScope();
        var t = ToChw(path, op, image, allowedChannels);
        Tensor bytes = t.dtype == ScalarType.Byte ? t
            : torch.is_floating_point(t.dtype) ? (t.to(ScalarType.Float32).clamp(0, 1) * 255).round().to(ScalarType.Byte)
            : throw new ArgumentException($"{op}('{path}'): unsupported dtype {t.dtype} (use float in [0,1] or uint8)", nameof(image));
        var hwc = bytes.permute(1, 2, 0).contiguous();
        var shape = hwc.shape;
        return (hwc.ToArray<byte>(), (int)shape[1], (int)shape[0], (int)shape[2]);
    }

    private static (ushort[] Pixels, int Width, int Height, int Channels) ToInterleaved16(string path, string op, Tensor image)
    {
        using var scope = torch.NewDisposeScope();
        var t = ToChw(path, op, image, [1, 2, 3, 4]);
        if (!torch.is_floating_point(t.dtype))
            throw new ArgumentException($"{op}('{path}'): 16-bit output takes a float tensor in [0,1], got {t.dtype}", nameof(image));
        var hwc = (t.to(ScalarType.Float32).clamp(0, 1) * 65535).round().to(ScalarType.Int32).permute(1, 2, 0).contiguous();
        var shape = hwc.shape;
        var ints = hwc.ToArray<int>();
        var samples = new ushort[ints.Length];
        for (int k = 0; k < ints.Length; k++) samples[k] = (ushort)ints[k];
        return (samples, (int)shape[1], (int)shape[0], (int)shape[2]);
    }

    private static void WriteAtomic(string path, Func<string, int> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            if (write(tmp) != 0) throw new ImageFileException(path, LastError());
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
