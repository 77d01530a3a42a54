using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Evaluation;

/// <summary>
/// 512-d image features from the ImageNet ResNet-18 of <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> (see
/// <see cref="ImageNetEncoder"/>): RGB images in [0, 1] are resized (bilinear) to <see cref="InputSize"/>² (default 224,
/// the network's training size), normalised as the package's preprocessing does, run through the encoder in eval mode
/// (BatchNorm with its running statistics) and global-average-pooled after layer4 — the features whose Fréchet distance
/// (<see cref="FrechetDistance"/>) this library reports as the "Fréchet ResNet-18 distance" between real and generated
/// images. It is not FID: FID uses Inception-v3's pool3 features at 299 px, and the two scales are not comparable.
/// Dispose it to free the network.
/// </summary>
public sealed class ImageNetFeatures : IDisposable
{
    private readonly ResNetEncoder _encoder;
    private readonly Device _device;

    /// <param name="modelPath">Where the package's DnnImageModels are (see <see cref="ImageNetEncoder.Locate(string?)"/>; null: next to the application, then the NuGet cache).</param>
    /// <param name="inputSize">Side the images are resized to before the network (default 224; ≥ 32).</param>
    /// <param name="device">Device to run on (default CPU).</param>
    /// <exception cref="FileNotFoundException">The package's files are not found (the message says which package to add).</exception>
    public ImageNetFeatures(string? modelPath = null, int inputSize = 224, Device? device = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 32);
        InputSize = inputSize;
        _device = device ?? CPU;
        _encoder = new ResNetEncoder(3, [64, 64, 128, 256, 512], ImageNetEncoder.ResNet18Blocks, 32, inputNormalization: true);
        try
        {
            ImageNetEncoder.LoadInto(_encoder, modelPath);
            _encoder.to(_device);
            _encoder.eval();
        }
        catch
        {
            _encoder.Dispose();
            throw;
        }
    }

    /// <summary>Side of the network's input.</summary>
    public int InputSize { get; }

    /// <summary>Feature dimension (512).</summary>
    public int Dimension => 512;

    /// <summary>
    /// The pooled features [N, 512] (float32, CPU; the caller owns them) of images [N, 3, H, W] in [0, 1], computed
    /// <paramref name="batchSize"/> at a time.
    /// </summary>
    /// <exception cref="ArgumentException">Not [N, 3, H, W] with N ≥ 1.</exception>
    public Tensor Compute(Tensor images, int batchSize = 32)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        if (images.dim() != 4 || images.size(1) != 3 || images.size(0) < 1)
            throw new ArgumentException($"images must be RGB [N, 3, H, W] with N ≥ 1, got [{string.Join(", ", images.shape)}]", nameof(images));
        var parts = new List<Tensor>();
        try
        {
            using (no_grad())
                for (long start = 0; start < images.size(0); start += batchSize)
                {
                    using var scope = NewDisposeScope();
                    var x = images[TensorIndex.Slice(start, Math.Min(images.size(0), start + batchSize))].to(ScalarType.Float32, _device);
                    if (x.size(2) != InputSize || x.size(3) != InputSize)
                        x = nn.functional.interpolate(x, [InputSize, InputSize], mode: InterpolationMode.Bilinear, align_corners: false);
                    var maps = _encoder.forward(x);
                    var pooled = maps[^1].mean([2, 3]).cpu();
                    parts.Add(pooled.MoveToOuterDisposeScope());
                }
            return cat(parts, 0);
        }
        finally
        {
            foreach (var p in parts) p.Dispose();
        }
    }

    /// <inheritdoc/>
    public void Dispose() => _encoder.Dispose();
}
