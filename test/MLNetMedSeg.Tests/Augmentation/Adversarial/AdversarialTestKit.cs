using MLNetMedSeg.Augmentation;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Augmentation.Adversarial;

/// <summary>
/// A small, fast SDEdit stand-in for the attack tests (Dasp/DaspFlowTests also attack through the real image diffusion): noise the image with
/// Gaussian noise of standard deviation <c>noisePerStep</c>·depth (default 0.01) drawn from the generator, then "denoise" it with two passes of a
/// 3×3 box blur (border-normalised), clipped to [0,1]. Differentiable when asked. Not a stage, so an attack model
/// saves without it (set <c>SdEditor</c> again after loading; the saved-SDEdit round trip is in StageWorkoutTests with the real image diffusion).
/// </summary>
internal sealed class BlurSdEditor(int channels = 3, double noisePerStep = 0.01) : ISdEditor
{
    public int ImageChannels { get; } = channels;

    /// <summary>Times SdEdit was called.</summary>
    public int Calls { get; private set; }

    public static Tensor Blur(Tensor x)
    {
        for (int k = 0; k < 2; k++) x = nn.functional.avg_pool2d(x, [3, 3], [1, 1], [1, 1], count_include_pad: false);
        return x;
    }

    public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, Generator? generator = null) =>
        Edit(images, masks, depth, differentiable, () => randn(images.shape, images.dtype, images.device, generator: generator));

    /// <summary>One call for the batch, row i's noise from generators[i] (as the image diffusion model does it).</summary>
    public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, IReadOnlyList<Generator> generators) =>
        Edit(images, masks, depth, differentiable, () => generators.Count == 1
            ? randn(images.shape, images.dtype, images.device, generator: generators[0])
            : cat(generators.Select(g => randn([1, .. images.shape[1..]], images.dtype, images.device, generator: g)).ToList(), 0));

    private Tensor Edit(Tensor images, Tensor masks, int depth, bool differentiable, Func<Tensor> noise)
    {
        Calls++;
        if (masks.dim() != 4 || masks.size(1) != 1) throw new ArgumentException("the condition must be [N,1,H,W]");
        if (depth == 0) return images.alias();
        using var scope = NewDisposeScope();
        using var grad = set_grad_enabled(differentiable && is_grad_enabled());
        var noisy = images.add(noise().mul(S(noisePerStep * depth)));
        var r = Blur(noisy).clamp(S(0), S(1));
        if (!differentiable) r = r.detach();
        return r.MoveToOuterDisposeScope();
    }
}

/// <summary>The same SDEdit stand-in without saving (not an ITransformer).</summary>
internal sealed class UnsavedBlurSdEditor : ISdEditor
{
    private readonly BlurSdEditor _inner = new();

    public int ImageChannels => _inner.ImageChannels;

    public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, Generator? generator = null) =>
        _inner.SdEdit(images, masks, respacedSteps, depth, differentiable, generator);

    public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, IReadOnlyList<Generator> generators) =>
        _inner.SdEdit(images, masks, respacedSteps, depth, differentiable, generators);
}

/// <summary>Tiny data and segmenters.</summary>
internal static class AdversarialTestKit
{
    public const int Size = 16;

    /// <summary>A tiny U-Net: 2 levels of 4/8 channels.</summary>
    public static SegmentationNetworkOptions TinyNet(long classes = 1) => new()
    {
        Architecture = SegmentationArchitecture.UNet, Classes = classes, EncoderDepth = 2, EncoderWidths = [4, 8],
    };

    /// <summary>An untrained tiny segmenter with seeded weights (the attacks need only a differentiable network).</summary>
    public static SegmentationTransformer Segmenter(MedSegContext ctx, long classes = 1, ulong seed = 3)
    {
        var options = new SegmentationModelOptions { Network = TinyNet(classes) };
        using var g = new Generator(seed);
        return new SegmentationTransformer(ctx, options, SegmentationNetworks.Create(options.Network, g));
    }

    private static SegmentationTransformer Train(long classes)
    {
        var ctx = new MedSegContext(seed: 21);
        using var data = Discs(8, 21, multiClass: classes > 1);
        return new SegmentationTrainer(ctx, new SegmentationTrainerOptions
        {
            Network = TinyNet(classes), Epochs = 6, BatchSize = 4, LearningRate = 3e-2,
            Loss = new MLNetMedSeg.Segmentation.Losses.SegmentationLossOptions
            {
                Kind = classes == 1 ? MLNetMedSeg.Segmentation.Losses.SegmentationLossKind.DiceBce : MLNetMedSeg.Segmentation.Losses.SegmentationLossKind.DiceCrossEntropy,
            },
        }).Fit(data);
    }

    private static readonly Lazy<SegmentationTransformer> TrainedBinary = new(() => Train(1));
    private static readonly Lazy<SegmentationTransformer> TrainedMultiClass = new(() => Train(3));

    /// <summary>
    /// A tiny segmenter (binary, or 3 classes) trained for a moment on discs, shared by the tests and never disposed:
    /// unlike an untrained network its output depends clearly on the image, so attacks move its loss measurably.
    /// </summary>
    public static SegmentationTransformer TrainedSegmenter(long classes = 1) => classes == 1 ? TrainedBinary.Value : TrainedMultiClass.Value;

    /// <summary>n images 3×16×16 with a disc each on a noisy background, binary masks (or class masks, classes 1–2).</summary>
    public static InMemoryDataView Discs(int n, int seed, bool multiClass = false, bool ids = false)
    {
        var (images, masks) = DiscTensors(n, seed, multiClass);
        var cols = new List<(string, ColumnType, System.Collections.IList)>();
        if (ids) cols.Add(("Id", TextColumnType.Instance, Enumerable.Range(0, n).Select(i => $"case{i}").ToList()));
        cols.Add(("Image", TensorColumnType.Image(3, Size, Size), images));
        cols.Add(("Mask", multiClass ? TensorColumnType.ClassMask(Size, Size) : TensorColumnType.BinaryMask(Size, Size), masks));
        return InMemoryDataView.Create(cols.ToArray());
    }

    /// <summary>The rows of <see cref="Discs"/> as lists of tensors (the caller owns them).</summary>
    public static (List<Tensor> Images, List<Tensor> Masks) DiscTensors(int n, int seed, bool multiClass = false) =>
        TestData.SyntheticDiscs.Generate(Style, n, seed, multiClass);

    /// <summary>16 px, radius 3–5, orange (class 1) or blue (class 2) discs on grey 0.35.</summary>
    private static readonly TestData.DiscStyle Style = new(Size, 3, 2, [0.8, 0.45, 0.25], [0.25, 0.45, 0.8], 0.35);

    /// <summary>A batch of <see cref="Discs"/> rows: images [n,3,16,16], masks [n,1,16,16] (or int64 [n,16,16]).</summary>
    public static (Tensor Images, Tensor Masks) Batch(int n, int seed, bool multiClass = false)
    {
        var (images, masks) = DiscTensors(n, seed, multiClass);
        var x = stack(images.ToArray(), 0);
        var y = stack(masks.ToArray(), 0);
        foreach (var t in images.Concat(masks)) t.Dispose();
        return (x, y);
    }

    /// <summary>The summed per-image attack loss of a segmenter (eval mode, no grad).</summary>
    public static double Loss(SegmentationTransformer s, Tensor images, Tensor masks, Tensor? weights = null, bool foregroundOnly = false)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        s.Network.eval();
        return MLNetMedSeg.Augmentation.Adversarial.AdversarialLoss.PerImage(s.Network.call(images), masks, weights, foregroundOnly).sum().ToDouble();
    }

    public static float[] Values(Tensor t) => t.to(ScalarType.Float32).cpu().contiguous().reshape(-1).ToArray<float>();

    public static double MaxAbs(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.sub(b).abs().max().ToDouble();
    }

    public static double MeanAbs(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        return a.sub(b).abs().mean().ToDouble();
    }
}
