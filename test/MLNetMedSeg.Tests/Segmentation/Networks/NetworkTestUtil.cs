using MLNetMedSeg.Segmentation.Networks;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation.Networks;

internal static class NetworkTestUtil
{
    public static readonly SegmentationArchitecture[] All =
        [SegmentationArchitecture.UNet, SegmentationArchitecture.UNetPlusPlus, SegmentationArchitecture.LinkNet, SegmentationArchitecture.DeepLabV3Plus];

    /// <summary>Small widths so that every architecture runs in milliseconds on the CPU.</summary>
    public static SegmentationNetworkOptions Small(SegmentationArchitecture arch, long classes = 1, int? depth = null) => arch switch
    {
        SegmentationArchitecture.UNet or SegmentationArchitecture.UNetPlusPlus => new SegmentationNetworkOptions
        {
            Architecture = arch, Classes = classes, EncoderDepth = depth ?? 4, EncoderWidths = new long[] { 8, 16, 32, 64 }.Take(depth ?? 4).ToArray(),
        },
        SegmentationArchitecture.LinkNet => new SegmentationNetworkOptions
        {
            Architecture = arch, Classes = classes, EncoderDepth = depth ?? 5, EncoderWidths = new long[] { 16, 16, 32, 64, 64 }.Take(depth ?? 5).ToArray(),
            ResNetBlocks = [1, 1, 1, 1], DecoderWidths = [16],
        },
        _ => new SegmentationNetworkOptions
        {
            Architecture = arch, Classes = classes, EncoderWidths = [16, 16, 32, 64, 64], ResNetBlocks = [1, 1, 1, 1],
            DecoderWidths = [32], LowLevelChannels = 16, AtrousRates = [2, 4, 6], AsppDropout = 0,
        },
    };

    /// <summary>
    /// n synthetic RGB images with one bright disc each on a darker noisy background, and their binary masks:
    /// x (n, 3, s, s) float32, y (n, 1, s, s) float32 {0, 1}. Radius 4..9 px, centre anywhere the disc fits.
    /// </summary>
    public static (Tensor x, Tensor y) Discs(int n, int size, int seed)
    {
        var rng = new Random(seed);
        var img = new float[n * 3 * size * size];
        var mask = new float[n * size * size];
        for (int k = 0; k < n; k++)
        {
            double r = 4 + rng.NextDouble() * 5;
            double cy = r + rng.NextDouble() * (size - 2 * r), cx = r + rng.NextDouble() * (size - 2 * r);
            var tint = new[] { 0.6 + 0.3 * rng.NextDouble(), 0.3 + 0.3 * rng.NextDouble(), 0.5 * rng.NextDouble() };
            for (int i = 0; i < size; i++)
                for (int j = 0; j < size; j++)
                {
                    bool inside = (i + 0.5 - cy) * (i + 0.5 - cy) + (j + 0.5 - cx) * (j + 0.5 - cx) <= r * r;
                    mask[(k * size + i) * size + j] = inside ? 1 : 0;
                    for (int c = 0; c < 3; c++)
                        img[((k * 3 + c) * size + i) * size + j] =
                            (float)((inside ? tint[c] : 0.25) + 0.1 * (rng.NextDouble() - 0.5));
                }
        }
        return (tensor(img).reshape(n, 3, size, size), tensor(mask).reshape(n, 1, size, size));
    }

    /// <summary>Mean per-image Dice of the thresholded probabilities (empty prediction and empty mask count 1).</summary>
    public static double MeanDice(Tensor logits, Tensor y)
    {
        using var scope = NewDisposeScope();
        var p = (logits.sigmoid() > S(0.5)).to(ScalarType.Float32);
        var inter = (p * y).sum([1, 2, 3]);
        var denom = p.sum([1, 2, 3]) + y.sum([1, 2, 3]);
        var d = (S(2) * inter + S(1e-6)) / (denom + S(1e-6));
        return d.mean().ToSingle();
    }

    /// <summary>Soft Dice (per batch) + BCE with logits.</summary>
    public static Tensor Loss(Tensor logits, Tensor y)
    {
        var p = logits.sigmoid();
        var dice = S(1) - (S(2) * (p * y).sum() + S(1)) / (p.sum() + y.sum() + S(1));
        return dice + nn.functional.binary_cross_entropy_with_logits(logits, y);
    }
}
