using MLNetMedSeg.Core;
using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Data;

/// <summary>Decoded mask files → mask tensors: binary masks by threshold, class maps by a value table.</summary>
internal static class MaskDecoding
{
    /// <summary>
    /// float32 [1,H,W] in {0,1}: a pixel is foreground when its value (the largest colour channel) is above
    /// <paramref name="threshold"/> × full scale. <paramref name="nonBinary"/> counts pixels that were neither 0 nor
    /// full scale; with <paramref name="strict"/> any such pixel is an error naming the file.
    /// </summary>
    public static Tensor ToBinaryMask(DecodedImage m, double threshold, bool strict, string path, out long nonBinary)
    {
        int full = m.BitDepth == 16 ? 65535 : 255;
        double cut = threshold * full;
        int color = m.Channels is 2 or 4 ? m.Channels - 1 : m.Channels;
        int n = m.Width * m.Height;
        var outv = new float[n];
        nonBinary = 0;
        for (int k = 0; k < n; k++)
        {
            int v = 0;
            for (int c = 0; c < color; c++)
            {
                int s = m.BitDepth == 16 ? m.Pixels16![k * m.Channels + c] : m.Pixels8![k * m.Channels + c];
                if (s > v) v = s;
            }
            if (v != 0 && v != full) nonBinary++;
            outv[k] = v > cut ? 1f : 0f;
        }
        if (nonBinary > 0 && strict)
            throw new ImageFileException(path, $"{nonBinary} of {n} mask pixels are neither 0 nor {full} (strict binary masks; turn StrictBinaryMasks off to threshold them at {threshold})");
        return TensorExtensions.FromArray<float>(outv, [1, m.Height, m.Width]);
    }

    /// <summary>The log line for a mask with non-binary pixels.</summary>
    public static string NonBinaryMessage(string path, long nonBinary, DecodedImage m, double threshold) =>
        $"mask '{path}': {nonBinary} of {m.Width * m.Height} pixels were neither 0 nor {(m.BitDepth == 16 ? 65535 : 255)}; thresholded at {threshold} of full scale";

    /// <summary>A value → class table (65536 entries, −1 = not mapped).</summary>
    public static long[] Lookup(IReadOnlyDictionary<int, long> map)
    {
        var lookup = Enumerable.Repeat(-1L, 65536).ToArray();
        foreach (var (k, v) in map) lookup[k] = v;
        return lookup;
    }

    /// <summary>int64 [H,W] class indices from the first channel's values; an unmapped value is an error naming the file.</summary>
    public static Tensor ToClassMask(DecodedImage m, long[] lookup, string path, IEnumerable<int> mappedValues)
    {
        int n = m.Width * m.Height;
        var outv = new long[n];
        for (int k = 0; k < n; k++)
        {
            int s = m.BitDepth == 16 ? m.Pixels16![k * m.Channels] : m.Pixels8![k * m.Channels];
            long cls = lookup[s];
            if (cls < 0)
                throw new ImageFileException(path,
                    $"mask value {s} (at x={k % m.Width}, y={k / m.Width}) is not in MaskValueToClass (mapped values: {string.Join(", ", mappedValues.Order())})");
            outv[k] = cls;
        }
        return TensorExtensions.FromArray<long>(outv, [m.Height, m.Width]);
    }
}
