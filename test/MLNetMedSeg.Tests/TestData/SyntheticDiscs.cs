using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.TestData;

/// <summary>How <see cref="SyntheticDiscs.Generate"/> draws its images.</summary>
/// <param name="Size">Image side in pixels.</param>
/// <param name="MinRadius">Smallest disc radius; radii are uniform in [MinRadius, MinRadius + RadiusSpan).</param>
/// <param name="RadiusSpan">Width of the radius range.</param>
/// <param name="Class1Tint">RGB of a class-1 disc (every disc of a binary set).</param>
/// <param name="Class2Tint">RGB of a class-2 disc.</param>
/// <param name="Background">Grey level of the background.</param>
internal sealed record DiscStyle(int Size, double MinRadius, double RadiusSpan, double[] Class1Tint, double[] Class2Tint, double Background);

/// <summary>The synthetic segmentation data of the tests: one tinted disc per RGB image on a noisy background.</summary>
internal static class SyntheticDiscs
{
    /// <summary>
    /// n images float32 [3,S,S] (values ± 0.05 noise) with one disc each, fully inside the image, and their masks: binary
    /// float32 [1,S,S], or (multi-class) int64 [S,S] with the disc's class 1 or 2 drawn per image. The same seed gives the
    /// same data. <paramref name="editImage"/> may change an image's raw values before it becomes a tensor. The caller
    /// owns the tensors.
    /// </summary>
    public static (List<Tensor> Images, List<Tensor> Masks) Generate(DiscStyle style, int n, int seed, bool multiClass = false,
        Action<int, float[]>? editImage = null)
    {
        int s = style.Size;
        var rng = new Random(seed);
        var images = new List<Tensor>();
        var masks = new List<Tensor>();
        for (int k = 0; k < n; k++)
        {
            double r = style.MinRadius + rng.NextDouble() * style.RadiusSpan;
            double cy = r + rng.NextDouble() * (s - 2 * r), cx = r + rng.NextDouble() * (s - 2 * r);
            int cls = multiClass ? 1 + rng.Next(2) : 1;
            var tint = cls == 1 ? style.Class1Tint : style.Class2Tint;
            var img = new float[3 * s * s];
            var m = new float[s * s];
            var mc = new long[s * s];
            for (int i = 0; i < s; i++)
                for (int j = 0; j < s; j++)
                {
                    bool inside = (i + 0.5 - cy) * (i + 0.5 - cy) + (j + 0.5 - cx) * (j + 0.5 - cx) <= r * r;
                    m[i * s + j] = inside ? 1 : 0;
                    mc[i * s + j] = inside ? cls : 0;
                    for (int c = 0; c < 3; c++)
                        img[(c * s + i) * s + j] = (float)((inside ? tint[c] : style.Background) + 0.1 * (rng.NextDouble() - 0.5));
                }
            editImage?.Invoke(k, img);
            images.Add(tensor(img, [3, s, s]));
            masks.Add(multiClass ? tensor(mc, [s, s]) : tensor(m, [1, s, s]));
        }
        return (images, masks);
    }
}
