using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>
/// Base of the segmentation networks (encoder / decoder / head, as segmentation_models_pytorch). Maps images
/// (N, InChannels, H, W) to logits (N, Classes, H, W) for any H and W: inputs whose sides are not multiples of
/// <see cref="SizeMultiple"/> are zero-padded at the bottom and right to the next multiple and the logits are cropped
/// back, so every skip connection meets a feature map of its own size. Classes = 1: one sigmoid logit per pixel;
/// otherwise softmax over dim 1 (see <see cref="Probabilities"/>). State-dict keys: encoder.* (the encoder's own names,
/// torchvision's for ResNet), decoder.*, head.* / heads.*.
/// </summary>
public abstract class SegmentationNetwork : MedSegModule<Tensor, Tensor>
{
    private readonly SegmentationNetworkOptions _options;

    protected SegmentationNetwork(string name, SegmentationNetworkOptions options, SegmentationEncoder encoder) : base(name)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options.Clone();
        Encoder = RegisterModule("encoder", encoder);
    }

    /// <summary>A copy of the options the network was built with.</summary>
    public SegmentationNetworkOptions Options => _options.Clone();

    /// <summary>The backbone.</summary>
    public SegmentationArchitecture Architecture => _options.Architecture;

    /// <summary>The encoder (its weights can be loaded with <see cref="LoadEncoderWeights"/>).</summary>
    public SegmentationEncoder Encoder { get; }

    /// <summary>Input channels.</summary>
    public long InChannels => _options.InChannels;

    /// <summary>Output channels (1 = binary).</summary>
    public long Classes => _options.Classes;

    /// <summary>Inputs are padded internally to multiples of this (the encoder's output stride).</summary>
    public int SizeMultiple => Encoder.OutputStride;

    /// <summary>Loads encoder weights from a safetensors file; see <see cref="SegmentationEncoder.LoadWeights"/>.</summary>
    public void LoadEncoderWeights(string safetensorsPath) => Encoder.LoadWeights(safetensorsPath);

    /// <summary>Logits (N, Classes, H, W) at the input size.</summary>
    public sealed override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var (x, h, w) = Pad(input);
        var logits = Decode(Encoder.call(x), x.size(2), x.size(3));
        return Crop(logits, h, w).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The decoder and head: from the encoder's features of an input of size <paramref name="h"/> × <paramref name="w"/>
    /// (multiples of <see cref="SizeMultiple"/>) to logits of that size.
    /// </summary>
    protected abstract Tensor Decode(IReadOnlyList<Tensor> features, long h, long w);

    /// <summary>Checks the input and zero-pads it at the bottom/right to multiples of <see cref="SizeMultiple"/>.</summary>
    protected (Tensor padded, long h, long w) Pad(Tensor input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (input.dim() != 4 || input.size(1) != InChannels)
            throw new ArgumentException(
                $"{GetName()} expects input (N, {InChannels}, H, W), got [{string.Join(", ", input.shape)}]", nameof(input));
        long h = input.size(2), w = input.size(3);
        int m = SizeMultiple;
        long ph = (m - h % m) % m, pw = (m - w % m) % m;
        return (ph == 0 && pw == 0 ? input : nn.functional.pad(input, [0, pw, 0, ph]), h, w);
    }

    /// <summary>Brings logits to the padded size (bilinear, when a head works below full resolution) and crops to h × w.</summary>
    protected static Tensor Crop(Tensor logits, long h, long w)
        => logits.size(2) == h && logits.size(3) == w ? logits : logits.narrow(2, 0, h).narrow(3, 0, w);

    /// <summary>Probabilities from logits: sigmoid for one channel, softmax over dim 1 otherwise.</summary>
    public static Tensor Probabilities(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        return logits.size(1) == 1 ? logits.sigmoid() : logits.softmax(1);
    }

    /// <summary>A 1×1 conv head to <see cref="Classes"/> channels.</summary>
    protected nn.Module<Tensor, Tensor> NewHead(long channels) => nn.Conv2d(channels, Classes, 1);
}
