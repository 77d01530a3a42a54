using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Augmentation.Classic;

/// <summary>Options of <see cref="CutMix"/>.</summary>
public sealed class CutMixOptions
{
    /// <summary>
    /// α of the Beta(α, α) prior on the kept-area ratio λ. Default 1 (λ uniform), Yun et al. (2019)'s choice for
    /// ImageNet and CIFAR.
    /// </summary>
    public double Alpha { get; set; } = 1.0;

    /// <summary>
    /// Probability that a sample receives a pasted box. Default 0.5 (Yun et al.'s CIFAR setting, <c>cutmix_prob</c>
    /// 0.5; their ImageNet runs used 1.0).
    /// </summary>
    public double Probability { get; set; } = 0.5;
}

/// <summary>One sample's CutMix draw: box [Y0,Y1) x [X0,X1) pasted from batch sample <see cref="Source"/>.</summary>
/// <param name="Applied">Whether the sample was augmented (drawn with the option's probability).</param>
/// <param name="Lambda">λ ~ Beta(α, α); the unclipped box covers a (1 − λ) fraction of the image.</param>
/// <param name="Source">Index of the sample in the batch the box is copied from (a random permutation).</param>
/// <param name="Y0">First row of the box (inclusive).</param>
/// <param name="Y1">End row of the box (exclusive).</param>
/// <param name="X0">First column of the box (inclusive).</param>
/// <param name="X1">End column of the box (exclusive).</param>
public readonly record struct CutMixBox(bool Applied, double Lambda, long Source, long Y0, long Y1, long X0, long X1)
{
    /// <summary>Box area in pixels (0 when not applied).</summary>
    public long Area => Applied ? (Y1 - Y0) * (X1 - X0) : 0;
}

/// <summary>
/// CutMix (Yun et al., ICCV 2019) for segmentation: per sample, with probability p, draw λ ~ Beta(α, α), a box of
/// height H√(1−λ) and width W√(1−λ) centred at a uniformly drawn pixel and clipped to the image (as in the reference
/// code), and paste that region of another sample of the batch (a random permutation) into both the image and the
/// mask, so the pasted mask region labels the pasted image region.
/// </summary>
public sealed class CutMix : IBatchAugmentation
{
    /// <summary>Creates the augmentation; null options mean the defaults.</summary>
    public CutMix(CutMixOptions? options = null)
    {
        Options = options ?? new CutMixOptions();
        Check.Positive(Options.Alpha, nameof(CutMixOptions.Alpha));
        Check.Probability(Options.Probability, nameof(CutMixOptions.Probability));
    }

    /// <summary>The options in use.</summary>
    public CutMixOptions Options { get; }

    /// <inheritdoc/>
    public string Name => "cutmix";

    /// <summary>
    /// Draws the boxes for a batch of <paramref name="n"/> images of size <paramref name="height"/> x
    /// <paramref name="width"/> (what <see cref="Apply"/> uses; exposed for inspection and tests).
    /// </summary>
    public CutMixBox[] SampleBoxes(long n, long height, long width, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(generator);
        var perm = BatchAug.Permutation(generator, n);
        var u = BatchAug.Uniform(generator, 3 * n); // per sample: apply, centre row, centre column
        var boxes = new CutMixBox[n];
        for (long i = 0; i < n; i++)
        {
            if (u[3 * i] >= Options.Probability) { boxes[i] = new CutMixBox(false, 1, i, 0, 0, 0, 0); continue; }
            double lam = BatchAug.SymmetricBeta(Options.Alpha, generator);
            double cutRat = Math.Sqrt(1 - lam);
            long cutH = (long)(height * cutRat), cutW = (long)(width * cutRat);
            long cy = BatchAug.Int(u[3 * i + 1], height), cx = BatchAug.Int(u[3 * i + 2], width);
            long y0 = Math.Clamp(cy - cutH / 2, 0, height), y1 = Math.Clamp(cy + cutH / 2, 0, height);
            long x0 = Math.Clamp(cx - cutW / 2, 0, width), x1 = Math.Clamp(cx + cutW / 2, 0, width);
            boxes[i] = new CutMixBox(true, lam, perm[i], y0, y1, x0, x1);
        }
        return boxes;
    }

    /// <inheritdoc/>
    public (Tensor images, Tensor masks) Apply(Tensor images, Tensor masks, Generator generator)
    {
        var (n, h, w) = BatchAug.Check(images, masks, generator, nameof(CutMix));
        using var scope = torch.NewDisposeScope();
        var boxes = SampleBoxes(n, h, w, generator);
        var device = images.device;
        var box = BatchAug.BoxMask(n, h, w,
            boxes.Select(b => b.Y0).ToArray(), boxes.Select(b => b.Y1).ToArray(),
            boxes.Select(b => b.X0).ToArray(), boxes.Select(b => b.X1).ToArray(), device);
        var src = TensorExtensions.FromArray(boxes.Select(b => b.Source).ToArray(), [n], device);
        var img = torch.where(box, images.index_select(0, src), images);
        var msk = torch.where(BatchAug.ForMask(box, masks), masks.index_select(0, src), masks);
        return BatchAug.Out(img, msk);
    }
}
