using MLNetMedSeg.Augmentation.Classic;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Augmentation.Classic;

/// <summary>Synthetic batches whose image channel 0 encodes the mask, so alignment can be read back from the image.</summary>
internal static class AugBatch
{
    /// <summary>
    /// Binary batch: mask [N,1,H,W] = a random ellipse per sample; image [N,3,H,W] with channel 0 = mask*0.8+0.1,
    /// channel 1 = (i+1)/(N+1) (identifies the sample), channel 2 = uniform noise in [0.1,0.9].
    /// </summary>
    public static (Tensor images, Tensor masks) Binary(int n, int h, int w, int seed = 1)
    {
        var rng = new Random(seed);
        var img = new float[n * 3 * h * w];
        var msk = new float[n * h * w];
        for (int i = 0; i < n; i++)
        {
            double cy = h * (0.3 + 0.4 * rng.NextDouble()), cx = w * (0.3 + 0.4 * rng.NextDouble());
            double ry = h * (0.15 + 0.2 * rng.NextDouble()), rx = w * (0.15 + 0.2 * rng.NextDouble());
            for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                double d = Math.Pow((y - cy) / ry, 2) + Math.Pow((x - cx) / rx, 2);
                float m = d <= 1 ? 1f : 0f;
                msk[(i * h + y) * w + x] = m;
                img[((i * 3 + 0) * h + y) * w + x] = m * 0.8f + 0.1f;
                img[((i * 3 + 1) * h + y) * w + x] = (i + 1f) / (n + 1f);
                img[((i * 3 + 2) * h + y) * w + x] = 0.1f + 0.8f * (float)rng.NextDouble();
            }
        }
        return (torch.tensor(img, [n, 3, h, w]), torch.tensor(msk, [n, 1, h, w]));
    }

    /// <summary>Class batch: int64 masks [N,H,W] with classes 0..3 in horizontal bands of random widths; image channel 0 = class*0.2+0.1.</summary>
    public static (Tensor images, Tensor masks) Classes(int n, int h, int w, int seed = 2)
    {
        var rng = new Random(seed);
        var img = new float[n * 2 * h * w];
        var msk = new long[n * h * w];
        for (int i = 0; i < n; i++)
        {
            int a = rng.Next(1, h / 2), b = rng.Next(h / 2, h - 1), c = rng.Next(1, w - 1);
            for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
            {
                long k = y < a ? 0 : y < b ? (x < c ? 1 : 2) : 3;
                msk[(i * h + y) * w + x] = k;
                img[((i * 2 + 0) * h + y) * w + x] = k * 0.2f + 0.1f;
                img[((i * 2 + 1) * h + y) * w + x] = (i + 1f) / (n + 1f);
            }
        }
        return (torch.tensor(img, [n, 2, h, w]), torch.tensor(msk, [n, h, w]));
    }

    /// <summary>Decodes channel 0 of a binary batch to a {0,1} mask (threshold 0.5), [N,1,H,W] float.</summary>
    public static Tensor DecodeBinary(Tensor images) => (images.narrow(1, 0, 1) > S(0.5)).to(ScalarType.Float32);

    /// <summary>Decodes channel 0 of a class batch to int64 classes [N,H,W].</summary>
    public static Tensor DecodeClasses(Tensor images) => ((images.narrow(1, 0, 1).squeeze(1) - S(0.1)) / S(0.2)).round().to(ScalarType.Int64);

    public static float[] F(Tensor t) { using var c = t.contiguous().cpu(); return c.ToArray<float>(); }

    public static long[] L(Tensor t) { using var c = t.contiguous().cpu(); return c.ToArray<long>(); }

    public static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.IsEqual(b);

    public static IEnumerable<ClassicAugmentationKind> AllKinds => Enum.GetValues<ClassicAugmentationKind>();

    /// <summary>The changed pixels of sample i ([H,W] bools) between two images [N,C,H,W] (any channel).</summary>
    public static bool[,] Changed(float[] a, float[] b, int i, int c, int h, int w)
    {
        var r = new bool[h, w];
        for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        {
            int k = ((i * c + ch) * h + y) * w + x;
            if (a[k] != b[k]) r[y, x] = true;
        }
        return r;
    }

    /// <summary>Bounding box (y0,y1,x0,x1, exclusive ends) and count of true cells; count 0 gives an empty box.</summary>
    public static (int y0, int y1, int x0, int x1, int count) Bounds(bool[,] m)
    {
        int h = m.GetLength(0), w = m.GetLength(1), y0 = h, y1 = 0, x0 = w, x1 = 0, count = 0;
        for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
        {
            if (!m[y, x]) continue;
            count++;
            y0 = Math.Min(y0, y); y1 = Math.Max(y1, y + 1); x0 = Math.Min(x0, x); x1 = Math.Max(x1, x + 1);
        }
        return (y0, y1, x0, x1, count);
    }
}
