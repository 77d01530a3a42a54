using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>Factory of the segmentation networks.</summary>
public static class SegmentationNetworks
{
    /// <summary>
    /// Builds the network <paramref name="options"/> describe (validated first). Initial weights are drawn from
    /// <paramref name="generator"/> when given (see <see cref="SeededInit"/>: the same seed gives the same
    /// network), else from torch's global generator. Loads <see cref="SegmentationNetworkOptions.EncoderWeightsPath"/>
    /// when set, and the ImageNet weights when <see cref="SegmentationNetworkOptions.EncoderWeights"/> = ImageNet (see
    /// <see cref="ImageNetEncoder"/>). The network is on the CPU in training mode; the caller owns (disposes) it.
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid (the message names it).</exception>
    /// <exception cref="FileNotFoundException">ImageNet weights are asked for and the package's model is not found
    /// (the message says which package to add).</exception>
    /// <exception cref="InvalidDataException">A weights file is unreadable or does not fit the encoder (the message names it).</exception>
    public static SegmentationNetwork Create(SegmentationNetworkOptions options, Generator? generator = null)
        => Create(options, generator, loadEncoderWeights: true);

    /// <summary>
    /// As <see cref="Create(SegmentationNetworkOptions, Generator?)"/>; with <paramref name="loadEncoderWeights"/> false
    /// neither <see cref="SegmentationNetworkOptions.EncoderWeightsPath"/> nor the ImageNet weights are read (the
    /// network's layout, including the ImageNet input normalisation, is the same): for rebuilding a saved model whose
    /// weights are loaded next.
    /// </summary>
    public static SegmentationNetwork Create(SegmentationNetworkOptions options, Generator? generator, bool loadEncoderWeights)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        SegmentationNetwork net;
        using (var scope = NewDisposeScope())   // temporaries of TorchSharp's layer initialisation are released now
        net = options.Architecture switch
            {
                SegmentationArchitecture.UNet => new UNet(options),
                SegmentationArchitecture.UNetPlusPlus => new UNetPlusPlus(options),
                SegmentationArchitecture.LinkNet => new LinkNet(options),
                SegmentationArchitecture.DeepLabV3Plus => new DeepLabV3Plus(options),
                _ => throw new ArgumentException($"unknown architecture {options.Architecture}", nameof(options)),
            };
        if (generator is not null)
        {
            try { SeededInit.Apply(net, generator); }
            catch { net.Dispose(); throw; }
        }
        if (loadEncoderWeights && options.EncoderWeightsPath is { } path)
        {
            try { net.LoadEncoderWeights(path); }
            catch { net.Dispose(); throw; }
        }
        if (loadEncoderWeights && options.EncoderWeights == EncoderWeights.ImageNet)
        {
            try { ImageNetEncoder.LoadInto((ResNetEncoder)net.Encoder, options.ImageNetModelPath); }
            catch { net.Dispose(); throw; }
        }
        return net;
    }

    /// <summary>The encoder <paramref name="options"/> describe (used by the networks' constructors).</summary>
    public static SegmentationEncoder CreateEncoder(SegmentationNetworkOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var widths = options.ResolvedEncoderWidths;
        return options.ResolvedEncoder == EncoderKind.Plain
            ? new PlainEncoder(options.InChannels, widths)
            : new ResNetEncoder(options.InChannels, widths, options.ResolvedResNetBlocks,
                options.Architecture == SegmentationArchitecture.DeepLabV3Plus ? options.OutputStride : 32,
                inputNormalization: options.EncoderWeights == EncoderWeights.ImageNet);
    }
}
