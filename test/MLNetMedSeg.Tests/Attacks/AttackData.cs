using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Segmentation.Networks;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Attacks;

/// <summary>
/// A tiny synthetic "abdomen": 1-channel 32×32 images on a noisy background 0.2 with two organs, a bright disc
/// (class 1, intensity 0.85) and a mid-grey square (class 2, intensity 0.55), at random non-overlapping places;
/// class-index masks int64 [H,W]. A binary variant keeps the disc only (mask float [1,H,W]).
/// </summary>
internal static class AttackData
{
    public const int Size = 32;

    public static InMemoryDataView Organs(int n, int seed, bool binary = false)
    {
        var rng = new Random(seed);
        var images = new List<Tensor>();
        var masks = new List<Tensor>();
        for (int k = 0; k < n; k++)
        {
            var img = new float[Size * Size];
            var mc = new long[Size * Size];
            double r = 4.5 + rng.NextDouble() * 2.5;
            double cy = 8 + rng.NextDouble() * 16, cx = 7 + rng.NextDouble() * 5;
            int half = 3 + rng.Next(3);
            int sy = 8 + rng.Next(16), sx = 21 + rng.Next(4);
            for (int i = 0; i < Size; i++)
                for (int j = 0; j < Size; j++)
                {
                    long c = 0;
                    if ((i + 0.5 - cy) * (i + 0.5 - cy) + (j + 0.5 - cx) * (j + 0.5 - cx) <= r * r) c = 1;
                    else if (!binary && Math.Abs(i - sy) <= half && Math.Abs(j - sx) <= half) c = 2;
                    mc[i * Size + j] = c;
                    double v = c == 1 ? 0.85 : c == 2 ? 0.55 : 0.2;
                    img[i * Size + j] = (float)(v + 0.08 * (rng.NextDouble() - 0.5));
                }
            images.Add(tensor(img, [1, Size, Size]));
            masks.Add(binary ? tensor(mc.Select(v => (float)v).ToArray(), [1, Size, Size]) : tensor(mc, [Size, Size]));
        }
        return InMemoryDataView.Create(
            ("Image", TensorColumnType.Image(1, Size, Size), images),
            ("Mask", binary ? TensorColumnType.BinaryMask(Size, Size) : TensorColumnType.ClassMask(Size, Size), masks));
    }

    /// <summary>All values of a tensor column stacked into one tensor (in the caller's dispose scope).</summary>
    public static Tensor Column(IDataView data, string column = "Image")
    {
        foreach (var b in data.GetBatches([column], (int)data.CountRows())) return b[column].clone();
        throw new InvalidOperationException("no rows");
    }

    /// <summary>A tiny U-Net (8/16/32) trained on <paramref name="data"/>: 3 outputs (background + 2 organs) or 1 (binary).</summary>
    public static SegmentationTransformer TrainSegmenter(MedSegContext ctx, IDataView data, bool binary = false, int epochs = 12) =>
        new SegmentationTrainer(ctx, new SegmentationTrainerOptions
        {
            Network = new SegmentationNetworkOptions
            {
                Architecture = SegmentationArchitecture.UNet, InChannels = 1, Classes = binary ? 1 : 3, EncoderDepth = 3, EncoderWidths = [8, 16, 32],
            },
            Loss = new SegmentationLossOptions { Kind = binary ? SegmentationLossKind.DiceBce : SegmentationLossKind.DiceCrossEntropy },
            Epochs = epochs, BatchSize = 8, LearningRate = 1e-2,
        }).Fit(data);
}
