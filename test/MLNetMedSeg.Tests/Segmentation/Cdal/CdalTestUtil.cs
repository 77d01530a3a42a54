using MLNetMedSeg.Segmentation.Cdal;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation.Cdal;

/// <summary>Small cDAL configurations for CPU tests.</summary>
internal static class CdalTestUtil
{
    /// <summary>A small network for <paramref name="size"/>² images (3 U-Net levels, 16 channels, 3 discriminator levels at 32²).</summary>
    public static CdalOptions Small(int size = 32, int classes = 1) => new()
    {
        ImageSize = size,
        Classes = classes,
        ImageChannels = 3,
        AttentionScale = size / 2,
        LatentDim = 16,
        LatentEmbeddingDim = 32,
        MappingLayers = 1,
        BaseChannels = 16,
        ChannelMultipliers = [1, 2, 2],
        ResBlocksPerLevel = 1,
        SelfAttentionResolutions = [size / 4],
        ConditionEncoderBlocks = 1,
        DiscriminatorChannels = 8,
        DiscriminatorTimeEmbeddingDim = 32,
    };

    /// <summary>
    /// Gives every parameter that starts at exactly zero (zero-initialised output convs, biases) N(0, 0.2²) values from
    /// <paramref name="generator"/>, so that an untrained generator's output depends on all its inputs.
    /// </summary>
    public static void Perturb(TorchSharp.torch.nn.Module net, Generator generator)
    {
        using var noGrad = no_grad();
        foreach (var (_, p) in net.named_parameters())
        {
            using var scope = NewDisposeScope();
            if (p.abs().max().ToSingle() == 0)
                p.copy_(randn(p.shape, ScalarType.Float32, generator: generator) * S(0.2));
        }
    }

    /// <summary>A batch of n images [n,3,S,S] and binary masks [n,1,S,S] (or class indices [n,S,S]) of synthetic discs.</summary>
    public static (Tensor Images, Tensor Masks) Discs(int size, int n, int seed, bool multiClass = false)
    {
        var style = new MLNetMedSeg.Tests.TestData.DiscStyle(size, size / 6.0, size / 8.0, [0.9, 0.4, 0.2], [0.2, 0.4, 0.9], 0.3);
        var (images, masks) = MLNetMedSeg.Tests.TestData.SyntheticDiscs.Generate(style, n, seed, multiClass);
        try
        {
            return (stack(images.ToArray(), 0), stack(masks.ToArray(), 0));
        }
        finally
        {
            foreach (var t in images) t.Dispose();
            foreach (var t in masks) t.Dispose();
        }
    }
}
