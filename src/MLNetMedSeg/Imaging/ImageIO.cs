using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using BitMiracle.LibTiff.Classic;
using SkiaSharp;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Imaging;

/// <summary>Compression of TIFF files written by <see cref="ImageIO.WriteTiff(string, Tensor, int, TiffCompression)"/>.</summary>
public enum TiffCompression { None = 0, Deflate = 1 }

/// <summary>File formats the codecs read.</summary>
public enum ImageFormat { Jpeg = 1, Png = 2, Tiff = 3, WebP = 4, Bmp = 5 }

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
/// Reads JPEG, PNG (8/16-bit, gray/gray+alpha/RGB/RGBA), TIFF (8/16-bit), WebP and BMP; writes PNG (8/16-bit), JPEG and TIFF.
/// All managed: SkiaSharp decodes JPEG, 8-bit PNG, WebP and BMP and encodes JPEG and 8-bit PNG; 16-bit PNG (which Skia cannot
/// read or write losslessly) and 8-bit gray+alpha PNG output use the small PNG codec in this file; BitMiracle.LibTiff.NET
/// reads and writes TIFF. The format is detected from the file content (magic bytes), not its extension.
/// </summary>
public static partial class ImageIO
{
    /// <summary>A decode/encode failure; the reason becomes <see cref="ImageFileException.Reason"/>.</summary>
    private sealed class CodecException(string reason) : Exception(reason);

    /// <summary>Decodes an image file. Throws <see cref="ImageFileException"/> (naming the file) when it is missing, corrupt, truncated or unsupported.</summary>
    public static DecodedImage Read(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path)) throw new ImageFileException(path, "the file does not exist");
        byte[] data;
        try { data = File.ReadAllBytes(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or System.Security.SecurityException)
        {
            throw new ImageFileException(path, $"cannot open the file ({e.Message})");
        }
        var format = Detect(data);
        if (format is null)
            throw new ImageFileException(path, data.Length == 0 ? "the file is empty" : "unsupported format (not JPEG, PNG, TIFF, WebP or BMP)");
        string prefix = FormatName(format.Value);
        try
        {
            return format switch
            {
                ImageFormat.Jpeg => ReadJpeg(data),
                ImageFormat.Png => ReadPng(data),
                ImageFormat.Tiff => ReadTiff(data),
                _ => ReadSkiaColor(data, format.Value),
            };
        }
        catch (CodecException e) { throw new ImageFileException(path, e.Message); }
        catch (OutOfMemoryException) { throw new ImageFileException(path, $"{prefix}: out of memory"); }
        catch (Exception e) when (e is not ImageFileException)
        {
            // Anything a decoder throws on malformed data (index/overflow errors in a corrupt TIFF directory, ...).
            throw new ImageFileException(path, $"{prefix}: corrupt or unsupported data ({e.GetType().Name}: {e.Message})");
        }
    }

    private static ImageFormat? Detect(ReadOnlySpan<byte> m)
    {
        if (m.Length >= 3 && m[0] == 0xFF && m[1] == 0xD8 && m[2] == 0xFF) return ImageFormat.Jpeg;
        if (m.Length >= 8 && m[..8].SequenceEqual(PngSignature)) return ImageFormat.Png;
        if (m.Length >= 4 && ((m[0] == 'I' && m[1] == 'I' && m[2] == 42 && m[3] == 0) || (m[0] == 'M' && m[1] == 'M' && m[2] == 0 && m[3] == 42)))
            return ImageFormat.Tiff;
        if (m.Length >= 12 && m[..4].SequenceEqual("RIFF"u8) && m[8..12].SequenceEqual("WEBP"u8)) return ImageFormat.WebP;
        if (m.Length >= 14 && m[0] == 'B' && m[1] == 'M') return ImageFormat.Bmp;
        return null;
    }

    private static string FormatName(ImageFormat f) => f switch
    {
        ImageFormat.Jpeg => "JPEG", ImageFormat.Png => "PNG", ImageFormat.Tiff => "TIFF", ImageFormat.WebP => "WebP", _ => "BMP",
    };

    private static int ArrayLength(string fmt, long width, long height, long channels)
    {
        long n = width * height * channels;
        if (width <= 0 || height <= 0) throw new CodecException($"{fmt}: image has no pixels ({width}x{height})");
        if (n > Array.MaxLength) throw new CodecException($"{fmt}: image too large ({width}x{height}x{channels})");
        return (int)n;
    }

    // ------------------------------------------------------------------ Skia decoding (JPEG, 8-bit PNG, WebP, BMP)

    /// <summary>
    /// Decodes with SkiaSharp into unpremultiplied RGBA8888, or into Gray8 when <paramref name="gray"/> is true or (null) when
    /// the file is gray (Skia's info says so), without colour management; an incomplete or corrupt image is an error.
    /// </summary>
    private static unsafe byte[] SkiaDecode(byte[] data, string fmt, ref bool? gray, out int width, out int height)
    {
        using var stream = new SKMemoryStream(data);
        using var codec = SKCodec.Create(stream, out var created);
        if (codec is null) throw new CodecException($"{fmt}: {CodecReason(created, "cannot read the header")}");
        width = codec.Info.Width;
        height = codec.Info.Height;
        gray ??= codec.Info.ColorType == SKColorType.Gray8;
        var pixels = new byte[ArrayLength(fmt, width, height, gray.Value ? 1 : 4)];
        var info = gray.Value
            ? new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque)
            : new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        SKCodecResult r;
        fixed (byte* p = pixels) r = codec.GetPixels(info, (IntPtr)p);
        if (r != SKCodecResult.Success)
        {
            // Skia reports some truncated JPEGs (progressive ones) as invalid input: name the cause when the end-of-image marker is missing.
            bool noEoi = fmt == "JPEG" && r is SKCodecResult.InvalidInput or SKCodecResult.ErrorInInput && data.AsSpan().LastIndexOf([(byte)0xFF, (byte)0xD9]) < 0;
            throw new CodecException($"{fmt}: {(noEoi ? "the file is truncated (no end-of-image marker)" : CodecReason(r, "cannot decode the image"))}");
        }
        return pixels;
    }

    private static string CodecReason(SKCodecResult r, string what) => r switch
    {
        SKCodecResult.IncompleteInput => "the file is truncated (the image data ends early)",
        SKCodecResult.ErrorInInput => "corrupt image data",
        SKCodecResult.InvalidInput => "corrupt or unreadable data",
        SKCodecResult.Unimplemented => "unsupported variant of the format",
        _ => $"{what} ({r})",
    };

    /// <summary>Keeps the first channels of RGBA pixels: 1 → R (gray), 2 → R and A (gray+alpha), 3 → RGB, 4 → all.</summary>
    private static byte[] SelectChannels(byte[] rgba, int pixelCount, int channels)
    {
        if (channels == 4) return rgba;
        var o = new byte[(long)pixelCount * channels];
        ReadOnlySpan<byte> s = rgba;
        Span<byte> d = o;
        if (channels == 3)
            for (int k = 0, i = 0; k < pixelCount; k++, i += 4) { d[3 * k] = s[i]; d[3 * k + 1] = s[i + 1]; d[3 * k + 2] = s[i + 2]; }
        else if (channels == 2)
            for (int k = 0, i = 0; k < pixelCount; k++, i += 4) { d[2 * k] = s[i]; d[2 * k + 1] = s[i + 3]; }
        else
            for (int k = 0, i = 0; k < pixelCount; k++, i += 4) d[k] = s[i];
        return o;
    }

    private static DecodedImage ReadJpeg(byte[] data)
    {
        if (JpegComponents(data) == 4) throw new CodecException("JPEG: CMYK/YCCK colour is not supported");
        bool? gray = null; // one component → gray, else RGB (as libjpeg's JCS_GRAYSCALE / JCS_RGB output)
        var px = SkiaDecode(data, "JPEG", ref gray, out int w, out int h);
        return gray!.Value
            ? new DecodedImage(w, h, 1, 8, ImageFormat.Jpeg, px, null)
            : new DecodedImage(w, h, 3, 8, ImageFormat.Jpeg, SelectChannels(px, w * h, 3), null);
    }

    /// <summary>The component count of the first SOF marker, or 0 when the marker walk finds none (Skia then decides).</summary>
    private static int JpegComponents(ReadOnlySpan<byte> d)
    {
        int p = 2;
        while (p + 4 <= d.Length)
        {
            if (d[p] != 0xFF) return 0;
            byte m = d[p + 1];
            if (m == 0xFF) { p++; continue; }                                     // fill byte
            if (m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { p += 2; continue; }       // no length
            if (m == 0xDA || m == 0xD9) return 0;                                  // scan or end before any frame header
            int len = (d[p + 2] << 8) | d[p + 3];
            bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
            if (sof) return p + 9 < d.Length ? d[p + 9] : 0;
            p += 2 + len;
        }
        return 0;
    }

    private static DecodedImage ReadSkiaColor(byte[] data, ImageFormat format)
    {
        string fmt = FormatName(format);
        bool? gray = false;
        var rgba = SkiaDecode(data, fmt, ref gray, out int w, out int h);
        bool opaque = true;
        for (int k = 3; k < rgba.Length; k += 4) if (rgba[k] != 255) { opaque = false; break; }
        int ch = opaque ? 3 : 4;
        return new DecodedImage(w, h, ch, 8, format, SelectChannels(rgba, w * h, ch), null);
    }

    // ------------------------------------------------------------------ PNG

    private static ReadOnlySpan<byte> PngSignature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    private sealed class PngHeader
    {
        public int Width, Height, BitDepth, ColorType, Interlace;
        public bool HasTrns;
        public byte[]? Trns;
        public MemoryStream? Idat; // only when collected
    }

    /// <summary>
    /// Walks all chunks up to IEND as libpng does: the first must be IHDR, every critical chunk (and tRNS) must have a correct
    /// CRC, IDAT must come before IEND and the file must not end before IEND. With <paramref name="collectIdat"/> the
    /// IDAT contents are gathered for the managed 16-bit decoder.
    /// </summary>
    private static PngHeader ParsePng(byte[] d, bool collectIdat)
    {
        var h = new PngHeader();
        int p = 8;
        bool first = true, sawIdat = false;
        while (true)
        {
            if (p + 8 > d.Length)
            {
                if (first) throw new CodecException("PNG: the file is truncated (no IHDR chunk)");
                throw new CodecException(sawIdat ? "PNG: the file is truncated (no IEND chunk)" : "PNG: the file is truncated (no image data)");
            }
            uint len = BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(p));
            var type = d.AsSpan(p + 4, 4);
            string name = System.Text.Encoding.ASCII.GetString(type);
            if (len > int.MaxValue) throw new CodecException($"PNG: invalid length of chunk '{name}' (corrupt file)");
            if (first && !type.SequenceEqual("IHDR"u8)) throw new CodecException("PNG: the first chunk is not IHDR (corrupt file)");
            if ((long)p + 12 + len > d.Length) throw new CodecException($"PNG: the file is truncated (chunk '{name}' is cut short)");
            var body = d.AsSpan(p + 8, (int)len);
            bool critical = (type[0] & 0x20) == 0;
            bool isIdat = type.SequenceEqual("IDAT"u8);
            if ((critical || type.SequenceEqual("tRNS"u8)) &&
                Crc32.Compute(d.AsSpan(p + 4, 4 + (int)len)) != BinaryPrimitives.ReadUInt32BigEndian(d.AsSpan(p + 8 + (int)len)))
                throw new CodecException($"PNG: CRC error in chunk '{name}' (corrupt file)");
            if (first)
            {
                if (len != 13) throw new CodecException("PNG: invalid IHDR chunk");
                h.Width = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(body), int.MaxValue);
                h.Height = (int)Math.Min(BinaryPrimitives.ReadUInt32BigEndian(body[4..]), int.MaxValue);
                h.BitDepth = body[8]; h.ColorType = body[9]; h.Interlace = body[12];
                bool ok = h.ColorType switch
                {
                    0 => h.BitDepth is 1 or 2 or 4 or 8 or 16,
                    3 => h.BitDepth is 1 or 2 or 4 or 8,
                    2 or 4 or 6 => h.BitDepth is 8 or 16,
                    _ => false,
                };
                if (!ok) throw new CodecException($"PNG: invalid colour type {h.ColorType} / bit depth {h.BitDepth}");
                if (h.Width == 0 || h.Height == 0) throw new CodecException("PNG: image has no pixels");
                if (body[10] != 0 || body[11] != 0 || h.Interlace > 1) throw new CodecException("PNG: unknown compression, filter or interlace method");
                first = false;
            }
            else if (type.SequenceEqual("tRNS"u8) && !sawIdat) { h.HasTrns = true; h.Trns = body.ToArray(); }
            else if (isIdat)
            {
                sawIdat = true;
                if (collectIdat) (h.Idat ??= new MemoryStream()).Write(body);
            }
            else if (type.SequenceEqual("IEND"u8))
            {
                if (!sawIdat) throw new CodecException("PNG: no image data (IDAT) before IEND");
                return h;
            }
            else if (critical && !type.SequenceEqual("PLTE"u8))
                throw new CodecException($"PNG: unknown critical chunk '{name}'");
            p += 12 + (int)len;
        }
    }

    private static DecodedImage ReadPng(byte[] data)
    {
        var h = ParsePng(data, collectIdat: data.Length > 24 && data[24] == 16); // IHDR's bit depth, checked by the walk
        if (h.BitDepth == 16) return ReadPng16(h);
        // Channels as libpng hands them out with palette→RGB, gray<8→8 and tRNS→alpha expansion.
        int ch = h.ColorType switch
        {
            0 => h.HasTrns ? 2 : 1,
            2 or 3 => h.HasTrns ? 4 : 3,
            4 => 2,
            _ => 4,
        };
        bool? gray = ch == 1;
        var px = SkiaDecode(data, "PNG", ref gray, out int w, out int hh);
        return new DecodedImage(w, hh, ch, 8, ImageFormat.Png, ch == 1 ? px : SelectChannels(px, w * hh, ch), null);
    }

    private static readonly (int X0, int Y0, int Dx, int Dy)[] Adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    /// <summary>16-bit PNG (any colour type, interlaced or not, tRNS → alpha): SkiaSharp only decodes these to 8 bits.</summary>
    private static DecodedImage ReadPng16(PngHeader h)
    {
        int fileCh = h.ColorType switch { 0 => 1, 2 => 3, 4 => 2, _ => 4 };
        int bpp = fileCh * 2;
        int w = h.Width, ht = h.Height;
        var passes = h.Interlace == 0 ? [(0, 0, 1, 1)] : Adam7;
        long expected = 0;
        foreach (var (x0, y0, dx, dy) in passes)
        {
            long pw = (w - x0 + dx - 1) / dx, ph = (ht - y0 + dy - 1) / dy;
            if (pw > 0 && ph > 0) expected += ph * (1 + pw * bpp);
        }
        if (expected > Array.MaxLength) throw new CodecException($"PNG: image too large ({w}x{ht})");
        var raw = new byte[expected];
        h.Idat!.Position = 0;
        try
        {
            using var z = new ZLibStream(h.Idat, CompressionMode.Decompress);
            int got = 0;
            while (got < raw.Length)
            {
                int n = z.Read(raw, got, raw.Length - got);
                if (n == 0) break;
                got += n;
            }
            if (got < raw.Length) throw new CodecException($"PNG: the image data is truncated ({got} of {raw.Length} bytes)");
            _ = z.Read(new byte[1], 0, 1); // reach the end of the zlib stream: checks its Adler-32 (extra data is ignored, as libpng does)
        }
        catch (InvalidDataException e) { throw new CodecException($"PNG: corrupt compressed image data ({e.Message})"); }

        int outCh = h.HasTrns && h.ColorType is 0 or 2 ? fileCh + 1 : fileCh;
        var outPx = new ushort[ArrayLength("PNG", w, ht, outCh)];
        ushort trGray = 0, trR = 0, trG = 0, trB = 0;
        if (outCh != fileCh)
        {
            if (h.ColorType == 0 && h.Trns!.Length >= 2) trGray = BinaryPrimitives.ReadUInt16BigEndian(h.Trns);
            else if (h.ColorType == 2 && h.Trns!.Length >= 6)
            {
                trR = BinaryPrimitives.ReadUInt16BigEndian(h.Trns); trG = BinaryPrimitives.ReadUInt16BigEndian(h.Trns.AsSpan(2)); trB = BinaryPrimitives.ReadUInt16BigEndian(h.Trns.AsSpan(4));
            }
            else throw new CodecException("PNG: invalid tRNS chunk");
        }
        int pos = 0;
        foreach (var (x0, y0, dx, dy) in passes)
        {
            int pw = (w - x0 + dx - 1) / dx, ph = (ht - y0 + dy - 1) / dy;
            if (pw <= 0 || ph <= 0) continue;
            int stride = pw * bpp;
            Span<byte> prev = new byte[stride], cur = new byte[stride];
            for (int py = 0; py < ph; py++)
            {
                byte filter = raw[pos];
                raw.AsSpan(pos + 1, stride).CopyTo(cur);
                pos += 1 + stride;
                Unfilter(filter, cur, prev, bpp);
                int y = y0 + py * dy;
                for (int px = 0; px < pw; px++)
                {
                    long o = ((long)y * w + x0 + (long)px * dx) * outCh;
                    int s = px * bpp;
                    for (int c = 0; c < fileCh; c++) outPx[o + c] = (ushort)((cur[s + 2 * c] << 8) | cur[s + 2 * c + 1]);
                    if (outCh != fileCh)
                    {
                        bool key = fileCh == 1 ? outPx[o] == trGray : outPx[o] == trR && outPx[o + 1] == trG && outPx[o + 2] == trB;
                        outPx[o + fileCh] = key ? (ushort)0 : (ushort)65535;
                    }
                }
                var t = prev; prev = cur; cur = t;
            }
        }
        return new DecodedImage(w, ht, outCh, 16, ImageFormat.Png, null, outPx);
    }

    private static void Unfilter(byte filter, Span<byte> cur, ReadOnlySpan<byte> prev, int bpp)
    {
        switch (filter)
        {
            case 0: break;
            case 1: for (int i = bpp; i < cur.Length; i++) cur[i] += cur[i - bpp]; break;
            case 2: for (int i = 0; i < cur.Length; i++) cur[i] += prev[i]; break;
            case 3:
                for (int i = 0; i < cur.Length; i++) cur[i] += (byte)(((i >= bpp ? cur[i - bpp] : 0) + prev[i]) >> 1);
                break;
            case 4:
                for (int i = 0; i < cur.Length; i++)
                    cur[i] += Paeth(i >= bpp ? cur[i - bpp] : (byte)0, prev[i], i >= bpp ? prev[i - bpp] : (byte)0);
                break;
            default: throw new CodecException($"PNG: invalid row filter type {filter} (corrupt image data)");
        }
    }

    private static byte Paeth(byte a, byte b, byte c)
    {
        int p = a + b - c, pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>
    /// Writes a non-interlaced PNG of 8- or 16-bit big-endian rows (<paramref name="rows"/> gives row y's bytes), choosing each
    /// row's filter by the minimum-sum-of-absolute-differences heuristic (as libpng does), zlib at the default level.
    /// </summary>
    private static void EncodePng(Stream output, int width, int height, int channels, int bitDepth, Action<int, byte[]> rows)
    {
        int bpp = channels * bitDepth / 8;
        int stride = checked(width * bpp);
        var idat = new MemoryStream();
        using (var z = new ZLibStream(idat, CompressionLevel.Optimal, leaveOpen: true))
        {
            var prev = new byte[stride];
            var cur = new byte[stride];
            var best = new byte[stride + 1];
            var trial = new byte[stride + 1];
            for (int y = 0; y < height; y++)
            {
                rows(y, cur);
                long bestSum = long.MaxValue;
                for (byte f = 0; f <= 4; f++)
                {
                    trial[0] = f;
                    long sum = 0;
                    for (int i = 0; i < stride; i++)
                    {
                        byte a = i >= bpp ? cur[i - bpp] : (byte)0, b = prev[i], c = i >= bpp ? prev[i - bpp] : (byte)0;
                        byte v = f switch
                        {
                            0 => cur[i],
                            1 => (byte)(cur[i] - a),
                            2 => (byte)(cur[i] - b),
                            3 => (byte)(cur[i] - ((a + b) >> 1)),
                            _ => (byte)(cur[i] - Paeth(a, b, c)),
                        };
                        trial[i + 1] = v;
                        sum += v < 128 ? v : 256 - v;
                    }
                    if (sum < bestSum) { bestSum = sum; (best, trial) = (trial, best); }
                }
                z.Write(best, 0, stride + 1);
                (prev, cur) = (cur, prev);
            }
        }
        output.Write(PngSignature);
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(ihdr, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(ihdr[4..], (uint)height);
        ihdr[8] = (byte)bitDepth;
        ihdr[9] = channels switch { 1 => 0, 2 => 4, 3 => 2, _ => 6 };
        ihdr[10] = ihdr[11] = ihdr[12] = 0;
        WriteChunk(output, "IHDR"u8, ihdr);
        var compressed = idat.GetBuffer().AsSpan(0, (int)idat.Length);
        const int MaxIdat = 1 << 20;
        for (int o = 0; o < compressed.Length; o += MaxIdat)
            WriteChunk(output, "IDAT"u8, compressed.Slice(o, Math.Min(MaxIdat, compressed.Length - o)));
        WriteChunk(output, "IEND"u8, []);
    }

    private static void WriteChunk(Stream s, ReadOnlySpan<byte> type, ReadOnlySpan<byte> body)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32BigEndian(head, (uint)body.Length);
        type.CopyTo(head[4..]);
        s.Write(head);
        s.Write(body);
        uint crc = Crc32.Update(Crc32.Update(0xFFFFFFFFu, type), body) ^ 0xFFFFFFFFu;
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, crc);
        s.Write(tail);
    }

    /// <summary>CRC-32 (ISO-HDLC, as PNG uses it), table-driven.</summary>
    private static class Crc32
    {
        private static readonly uint[] Table = MakeTable();

        private static uint[] MakeTable()
        {
            var t = new uint[256];
            for (uint n = 0; n < 256; n++)
            {
                uint c = n;
                for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                t[n] = c;
            }
            return t;
        }

        public static uint Update(uint crc, ReadOnlySpan<byte> data)
        {
            foreach (byte b in data) crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            return crc;
        }

        public static uint Compute(ReadOnlySpan<byte> data) => Update(0xFFFFFFFFu, data) ^ 0xFFFFFFFFu;
    }

    // ------------------------------------------------------------------ TIFF

    /// <summary>Collects LibTiff.NET's error messages per thread (warnings are ignored) instead of printing them.</summary>
    private sealed class TiffErrors : TiffErrorHandler
    {
        [ThreadStatic] private static string? t_error;

        public static void Reset() => t_error = null;
        public static string? Last => t_error;

        public override void ErrorHandler(Tiff tif, string method, string format, params object[] args)
        {
            string msg;
            try { msg = args is { Length: > 0 } ? string.Format(System.Globalization.CultureInfo.InvariantCulture, format, args) : format; }
            catch (FormatException) { msg = format; }
            if (msg.StartsWith(TiffName + ": ", StringComparison.Ordinal)) msg = msg[(TiffName.Length + 2)..];
            t_error ??= msg; // the first error is the cause; later ones are consequences
        }

        public override void ErrorHandlerExt(Tiff tif, object clientData, string method, string format, params object[] args) { }
        public override void WarningHandler(Tiff tif, string method, string format, params object[] args) { }
        public override void WarningHandlerExt(Tiff tif, object clientData, string method, string format, params object[] args) { }
    }

    private const string TiffName = "tiff";
    private static readonly object TiffHandlerLock = new();
    private static bool s_tiffHandlerSet;

    private static void EnsureTiffHandler()
    {
        lock (TiffHandlerLock)
        {
            if (s_tiffHandlerSet) return;
            Tiff.SetErrorHandler(new TiffErrors());
            s_tiffHandlerSet = true;
        }
    }

    private static string TiffFail(string fallback) => "TIFF: " + (TiffErrors.Last ?? fallback);

    private static int TiffInt(Tiff tif, TiffTag tag, int fallback, bool defaulted)
    {
        var v = defaulted ? tif.GetFieldDefaulted(tag) : tif.GetField(tag);
        return v is { Length: > 0 } ? v[0].ToInt() : fallback;
    }

    private static DecodedImage ReadTiff(byte[] data)
    {
        EnsureTiffHandler();
        TiffErrors.Reset();
        using var ms = new MemoryStream(data, writable: false);
        using var tif = Tiff.ClientOpen(TiffName, "r", ms, new TiffStream());
        if (tif is null) throw new CodecException(TiffFail("cannot open"));
        int w = TiffInt(tif, TiffTag.IMAGEWIDTH, 0, false), h = TiffInt(tif, TiffTag.IMAGELENGTH, 0, false);
        int spp = TiffInt(tif, TiffTag.SAMPLESPERPIXEL, 1, true), bps = TiffInt(tif, TiffTag.BITSPERSAMPLE, 8, true);
        int planar = TiffInt(tif, TiffTag.PLANARCONFIG, (int)PlanarConfig.CONTIG, true);
        int sampleFormat = TiffInt(tif, TiffTag.SAMPLEFORMAT, (int)SampleFormat.UINT, true);
        int photometric = TiffInt(tif, TiffTag.PHOTOMETRIC, (int)Photometric.MINISBLACK, false);
        if (w <= 0 || h <= 0) throw new CodecException("TIFF: image has no pixels");

        bool direct = !tif.IsTiled() && planar == (int)PlanarConfig.CONTIG && sampleFormat == (int)SampleFormat.UINT &&
                      bps is 8 or 16 && (spp is 1 or 3 or 4 || (spp == 2 && photometric == (int)Photometric.MINISBLACK)) &&
                      photometric is (int)Photometric.MINISBLACK or (int)Photometric.RGB;
        if (direct)
        {
            // Gray, gray+alpha or RGB(A) scanlines as stored: keeps 16-bit precision.
            int n = ArrayLength("TIFF", w, h, spp);
            int stride = w * spp * (bps / 8);
            var row = new byte[Math.Max(stride, tif.ScanlineSize())];
            byte[]? p8 = bps == 8 ? new byte[n] : null;
            ushort[]? p16 = bps == 16 ? new ushort[n] : null;
            for (int y = 0; y < h; y++)
            {
                if (!tif.ReadScanline(row, y) || TiffErrors.Last is not null) throw new CodecException(TiffFail($"cannot read scanline {y}"));
                if (p8 is not null) row.AsSpan(0, stride).CopyTo(p8.AsSpan(y * stride, stride));
                else MemoryMarshal.Cast<byte, ushort>(row.AsSpan(0, stride)).CopyTo(p16.AsSpan(y * w * spp, w * spp)); // host order
            }
            return new DecodedImage(w, h, spp, bps, ImageFormat.Tiff, p8, p16);
        }
        // Anything else LibTiff.NET can render (palette, tiled, YCbCr, 1-bit, ...): 8-bit gray or RGB.
        var rgba = new int[ArrayLength("TIFF", w, h, 1)];
        if (!tif.ReadRGBAImageOriented(w, h, rgba, Orientation.TOPLEFT, false) || TiffErrors.Last is not null)
            throw new CodecException(TiffFail($"unsupported layout (bits {bps}, samples {spp}, photometric {photometric})"));
        bool gray = spp == 1 && photometric != (int)Photometric.PALETTE;
        int ch = gray ? 1 : 3;
        var buf = new byte[ArrayLength("TIFF", w, h, ch)];
        for (int k = 0; k < rgba.Length; k++)
        {
            int p = rgba[k];
            if (gray) buf[k] = (byte)Tiff.GetR(p);
            else { buf[3 * k] = (byte)Tiff.GetR(p); buf[3 * k + 1] = (byte)Tiff.GetG(p); buf[3 * k + 2] = (byte)Tiff.GetB(p); }
        }
        return new DecodedImage(w, h, ch, 8, ImageFormat.Tiff, buf, null);
    }

    /// <summary>Writes 8- or 16-bit (host-order bytes) interleaved pixels as a strip TIFF, little-endian, contiguous planes.</summary>
    private static void EncodeTiff(string file, ReadOnlySpan<byte> bytes, int width, int height, int channels, int bitDepth, TiffCompression compression)
    {
        if (compression is not (TiffCompression.None or TiffCompression.Deflate))
            throw new CodecException($"unknown TIFF compression {(int)compression} (0 none, 1 deflate)");
        EnsureTiffHandler();
        TiffErrors.Reset();
        using var fs = new FileStream(file, FileMode.CreateNew, FileAccess.ReadWrite);
        using (var tif = Tiff.ClientOpen(TiffName, "wl", fs, new TiffStream()))
        {
            if (tif is null) throw new CodecException(TiffFail("cannot create the file"));
            tif.SetField(TiffTag.IMAGEWIDTH, width);
            tif.SetField(TiffTag.IMAGELENGTH, height);
            tif.SetField(TiffTag.SAMPLESPERPIXEL, channels);
            tif.SetField(TiffTag.BITSPERSAMPLE, bitDepth);
            tif.SetField(TiffTag.SAMPLEFORMAT, SampleFormat.UINT);
            tif.SetField(TiffTag.PLANARCONFIG, PlanarConfig.CONTIG);
            tif.SetField(TiffTag.PHOTOMETRIC, channels >= 3 ? Photometric.RGB : Photometric.MINISBLACK);
            tif.SetField(TiffTag.ORIENTATION, Orientation.TOPLEFT);
            if (channels is 2 or 4) tif.SetField(TiffTag.EXTRASAMPLES, 1, new short[] { (short)ExtraSample.UNASSALPHA });
            tif.SetField(TiffTag.COMPRESSION, compression == TiffCompression.Deflate ? Compression.ADOBE_DEFLATE : Compression.NONE);
            tif.SetField(TiffTag.ROWSPERSTRIP, tif.DefaultStripSize(-1));
            if (TiffErrors.Last is not null) throw new CodecException(TiffFail("cannot set the fields"));
            int stride = width * channels * (bitDepth / 8);
            var row = new byte[stride];
            for (int y = 0; y < height; y++)
            {
                bytes.Slice(y * stride, stride).CopyTo(row);
                if (!tif.WriteScanline(row, y) || TiffErrors.Last is not null) throw new CodecException(TiffFail($"cannot write scanline {y}"));
            }
            tif.Close();
            if (TiffErrors.Last is not null) throw new CodecException(TiffFail("cannot finish writing the file"));
        }
    }

    // ------------------------------------------------------------------ tensors

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
            hwc = torch.tensor(f, shape);
        }
        else hwc = torch.tensor(img.Pixels8!, shape).to(ScalarType.Float32) / S(255.0);
        var chw = hwc.permute(2, 0, 1);
        int color = img.Channels is 2 or 4 ? img.Channels - 1 : img.Channels; // drop alpha
        if (color != img.Channels) chw = chw.narrow(0, 0, color);
        int want = channels ?? color;
        if (want == 3 && color == 1) chw = chw.expand(3, img.Height, img.Width);
        else if (want == 1 && color == 3)
        {
            var w = torch.tensor(new float[] { 0.299f, 0.587f, 0.114f }, new long[] { 3, 1, 1 });
            chw = (chw * w).sum(new long[] { 0 }, keepdim: true);
        }
        return chw.contiguous().MoveToOuterDisposeScope();
    }

    // ------------------------------------------------------------------ writers

    /// <summary>
    /// Writes a [C,H,W] (C = 1, 3 or 4) or [H,W] tensor as PNG: float values in [0,1] are scaled to 8 bits
    /// (clamped and rounded), uint8 is written as is. The write is atomic (temporary file, then rename).
    /// </summary>
    public static void WritePng(string path, Tensor image)
    {
        var (pixels, w, h, c) = ToInterleaved8(path, "WritePng", image, [1, 3, 4]);
        WritePng(path, pixels, w, h, c);
    }

    /// <summary>Writes interleaved 8-bit pixels (H×W×C) as PNG, atomically.</summary>
    public static unsafe void WritePng(string path, ReadOnlySpan<byte> pixels, int width, int height, int channels)
    {
        if ((long)width * height * channels != pixels.Length)
            throw new ArgumentException($"WritePng('{path}'): {pixels.Length} bytes do not make a {width}x{height}x{channels} image", nameof(pixels));
        CheckGeometry(path, width, height, channels, 8);
        if (channels == 2)
        {
            // Skia has no gray+alpha colour type: the managed encoder writes it.
            fixed (byte* p = pixels)
            {
                var src = (IntPtr)p;
                int stride = width * 2;
                WriteAtomic(path, tmp =>
                {
                    using var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write);
                    EncodePng(fs, width, height, 2, 8, (y, row) => new ReadOnlySpan<byte>((byte*)src + (long)y * stride, stride).CopyTo(row));
                });
            }
            return;
        }
        var (buf, info) = ToSkia(pixels, width, height, channels);
        WriteAtomic(path, tmp =>
        {
            fixed (byte* p = buf)
            {
                using var pm = new SKPixmap(info, (IntPtr)p);
                using var data = pm.Encode(SKPngEncoderOptions.Default) ?? throw new CodecException("PNG: the encoder failed");
                using var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write);
                data.SaveTo(fs);
            }
        });
    }

    /// <summary>Writes interleaved 16-bit pixels (H×W×C) as a 16-bit PNG, atomically.</summary>
    public static unsafe void WritePng16(string path, ReadOnlySpan<ushort> pixels, int width, int height, int channels)
    {
        if ((long)width * height * channels != pixels.Length)
            throw new ArgumentException($"WritePng16('{path}'): {pixels.Length} samples do not make a {width}x{height}x{channels} image", nameof(pixels));
        CheckGeometry(path, width, height, channels, 16);
        fixed (ushort* p = pixels)
        {
            var src = (IntPtr)p;
            int n = width * channels;
            WriteAtomic(path, tmp =>
            {
                using var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write);
                EncodePng(fs, width, height, channels, 16, (y, row) =>
                {
                    var s = new ReadOnlySpan<ushort>((ushort*)src + (long)y * n, n);
                    for (int k = 0; k < n; k++) BinaryPrimitives.WriteUInt16BigEndian(row.AsSpan(2 * k), s[k]);
                });
            });
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
        if (width <= 0 || height <= 0)
            throw new ImageFileException(path, $"invalid JPEG geometry {width}x{height}x{channels} (channels must be 1 or 3)");
        if (width > 65500 || height > 65500)
            throw new ImageFileException(path, $"JPEG: {width}x{height} exceeds the format's 65500-pixel limit");
        var (buf, info) = ToSkia(pixels, width, height, channels);
        var options = new SKJpegEncoderOptions(quality, SKJpegEncoderDownsample.Downsample420, SKJpegEncoderAlphaOption.Ignore);
        WriteAtomic(path, tmp =>
        {
            fixed (byte* p = buf)
            {
                using var pm = new SKPixmap(info, (IntPtr)p);
                using var data = pm.Encode(options) ?? throw new CodecException("JPEG: the encoder failed");
                using var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write);
                data.SaveTo(fs);
            }
        });
    }

    /// <summary>8-bit gray → Gray8; RGB → opaque RGBA8888; RGBA → unpremultiplied RGBA8888 (no colour space: bytes are written as given).</summary>
    private static (byte[] Buffer, SKImageInfo Info) ToSkia(ReadOnlySpan<byte> pixels, int width, int height, int channels)
    {
        if (channels == 1) return (pixels.ToArray(), new SKImageInfo(width, height, SKColorType.Gray8, SKAlphaType.Opaque));
        if (channels == 4) return (pixels.ToArray(), new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        int n = width * height;
        var rgba = new byte[4L * n];
        for (int k = 0; k < n; k++)
        {
            rgba[4 * k] = pixels[3 * k]; rgba[4 * k + 1] = pixels[3 * k + 1]; rgba[4 * k + 2] = pixels[3 * k + 2]; rgba[4 * k + 3] = 255;
        }
        return (rgba, new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
    }

    private static void CheckGeometry(string path, int width, int height, int channels, int bitDepth)
    {
        if (width <= 0 || height <= 0 || channels < 1 || channels > 4)
            throw new ImageFileException(path, $"invalid image geometry {width}x{height}x{channels} at {bitDepth} bits");
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
        CheckGeometry(path, width, height, channels, 8);
        fixed (byte* p = pixels)
        {
            var src = (IntPtr)p;
            int len = pixels.Length;
            WriteAtomic(path, tmp => EncodeTiff(tmp, new ReadOnlySpan<byte>((void*)src, len), width, height, channels, 8, compression));
        }
    }

    /// <summary>Writes interleaved 16-bit pixels (H×W×C, C = 1..4) as a 16-bit TIFF, atomically.</summary>
    public static unsafe void WriteTiff16(string path, ReadOnlySpan<ushort> pixels, int width, int height, int channels, TiffCompression compression = TiffCompression.Deflate)
    {
        if ((long)width * height * channels != pixels.Length)
            throw new ArgumentException($"WriteTiff16('{path}'): {pixels.Length} samples do not make a {width}x{height}x{channels} image", nameof(pixels));
        CheckGeometry(path, width, height, channels, 16);
        fixed (ushort* p = pixels)
        {
            var src = (IntPtr)p;
            int len = pixels.Length * 2;
            WriteAtomic(path, tmp => EncodeTiff(tmp, new ReadOnlySpan<byte>((void*)src, len), width, height, channels, 16, compression));
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
            : torch.is_floating_point(t) ? (t.to(ScalarType.Float32).clamp(S(0), S(1)) * S(255)).round().to(ScalarType.Byte)
            : throw new ArgumentException($"{op}('{path}'): unsupported dtype {t.dtype} (use float in [0,1] or uint8)", nameof(image));
        var hwc = bytes.permute(1, 2, 0).contiguous();
        var shape = hwc.shape;
        return (hwc.data<byte>().ToArray(), (int)shape[1], (int)shape[0], (int)shape[2]);
    }

    private static (ushort[] Pixels, int Width, int Height, int Channels) ToInterleaved16(string path, string op, Tensor image)
    {
        using var scope = torch.NewDisposeScope();
        var t = ToChw(path, op, image, [1, 2, 3, 4]);
        if (!torch.is_floating_point(t))
            throw new ArgumentException($"{op}('{path}'): 16-bit output takes a float tensor in [0,1], got {t.dtype}", nameof(image));
        var hwc = (t.to(ScalarType.Float32).clamp(S(0), S(1)) * S(65535)).round().to(ScalarType.Int32).permute(1, 2, 0).contiguous();
        var shape = hwc.shape;
        var ints = hwc.data<int>().ToArray();
        var samples = new ushort[ints.Length];
        for (int k = 0; k < ints.Length; k++) samples[k] = (ushort)ints[k];
        return (samples, (int)shape[1], (int)shape[0], (int)shape[2]);
    }

    /// <summary>Runs <paramref name="write"/> on a temporary file beside <paramref name="path"/>, then renames it over <paramref name="path"/>.</summary>
    private static void WriteAtomic(string path, Action<string> write)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        string tmp = Path.Combine(dir, $".{Path.GetFileName(full)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        try
        {
            write(tmp);
            File.Move(tmp, full, overwrite: true);
        }
        catch (CodecException e) { throw new ImageFileException(path, e.Message); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException && e is not ImageFileException)
        {
            throw new ImageFileException(path, $"cannot write the file ({e.Message})");
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
