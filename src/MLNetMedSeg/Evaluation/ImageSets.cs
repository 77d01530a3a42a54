using MLNetMedSeg.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Evaluation;

/// <summary>
/// The one path by which the image-set metrics (<see cref="ImageSetQuality"/>) and the clustering stage
/// (<c>Clustering/ClusterImagesTransformer</c>) turn images into ImageNet ResNet-18 features, so that every set is
/// treated alike (Parmar et al. 2022, "On aliased resizing and surprising subtleties in GAN evaluation": the resize
/// filter and the encoding of the two sets change Fréchet distances more than real differences do):
/// <list type="number">
/// <item>an image [C,H,W] with C = 1 (gray, or a {0,1} mask) or 3, values in [0,1], becomes RGB (a single channel
/// repeated);</item>
/// <item>it is resized with bilinear filtering and antialiasing (PyTorch's <c>interpolate(..., antialias=True)</c>,
/// which is PIL's bilinear filter: the "clean" resize of Parmar et al.) — never the aliasing bilinear resize without
/// antialiasing that <c>ImageNetFeatures.Compute</c> would apply;</item>
/// <item>the ResNet-18 runs at <see cref="ImageNetFeatures.InputSize"/> and its 512-d global-average-pooled layer4
/// output is the feature.</item>
/// </list>
/// </summary>
internal static class ImageSets
{
    /// <summary>
    /// <paramref name="image"/> [C,H,W] (C = 1 or 3) as float32 RGB [3,h,w], resized (bilinear, antialiased) when its
    /// size differs (always a new tensor, never a view of the input); <paramref name="what"/> names the column and row in errors.
    /// </summary>
    public static Tensor ToRgb(Tensor image, long height, long width, string what)
    {
        if (image.dim() != 3 || image.size(0) is not (1 or 3))
            throw new InvalidDataException($"{what}: expected an image [1,H,W] or [3,H,W], got [{string.Join(",", image.shape)}]");
        using var scope = NewDisposeScope();
        var x = image.to(ScalarType.Float32);
        if (x.size(0) == 1) x = x.expand(3, -1, -1);
        x = x.size(1) != height || x.size(2) != width ? Resize(x.unsqueeze(0), height, width)[0].contiguous() : x.contiguous().clone();
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Bilinear, antialiased resize of a batch [N,C,H,W] (a no-op copy when the size already matches).</summary>
    public static Tensor Resize(Tensor batch, long height, long width)
    {
        if (batch.size(2) == height && batch.size(3) == width) return batch.alias();
        return nn.functional.interpolate(batch, [height, width], mode: InterpolationMode.Bilinear, align_corners: false, antialias: true);
    }

    /// <summary>
    /// ResNet-18 features [N, 512] (float32, CPU) of images [N,3,H,W] in [0,1] (any device): each batch of
    /// <paramref name="batchSize"/> is resized to the network's input size (bilinear, antialiased) on the network's
    /// device and run through it.
    /// </summary>
    public static Tensor Features(ImageNetFeatures network, Tensor images, int batchSize, Device device)
    {
        var parts = new List<Tensor>();
        try
        {
            for (long start = 0; start < images.size(0); start += batchSize)
            {
                using var scope = NewDisposeScope();
                var x = images.narrow(0, start, Math.Min(batchSize, images.size(0) - start)).to(ScalarType.Float32, device);
                x = Resize(x, network.InputSize, network.InputSize);
                parts.Add(network.Compute(x, batchSize).MoveToOuterDisposeScope());
            }
            return cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <summary>
    /// Every image of <paramref name="column"/> of <paramref name="data"/> as one float32 CPU batch [N,3,H,W]: each
    /// image made RGB and brought to <paramref name="size"/> × <paramref name="size"/> (bilinear, antialiased) when a
    /// size is given; without one, all images must already share one size (an error naming the column says otherwise).
    /// <paramref name="set"/> names the set in errors ("real", "generated"). An empty set is an error.
    /// </summary>
    public static Tensor ReadAll(IDataView data, string column, int? size, string set, CancellationToken cancellationToken = default)
    {
        var images = new List<Tensor>();
        try
        {
            using (var cursor = data.GetRowCursor([data.Schema[column]]))
                while (cursor.MoveNext())
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var image = cursor.GetTensor(column);
                    string what = $"the {set} set's column '{column}', row {cursor.Position}";
                    long h = size ?? image.size(-2), w = size ?? image.size(-1);
                    if (images.Count > 0 && size is null && (images[0].size(1) != h || images[0].size(2) != w))
                        throw new InvalidDataException(
                            $"{what}: the image is {h}×{w} but the first one is {images[0].size(1)}×{images[0].size(2)}; resize the images " +
                            "in the pipeline (ResizeImages) or set ImageQualityOptions.ImageSize (medseg quality --size) to compare them at one size");
                    images.Add(ToRgb(image, h, w, what).DetachFromDisposeScope());
                }
            if (images.Count == 0) throw new InvalidDataException($"the {set} set has no rows (column '{column}')");
            return stack(images, 0);
        }
        finally
        {
            foreach (var t in images) t.Dispose();
        }
    }
}
