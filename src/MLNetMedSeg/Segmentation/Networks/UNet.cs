using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>
/// One U-Net decoder block: ×2 up-sampling (2×2 transposed conv to the block's width, or bilinear), concatenation with
/// the skip feature (up-sampled first), double 3×3 conv + BN + ReLU. State-dict names: up.* (transposed only), conv.*.
/// </summary>
public sealed class UNetDecoderBlock : MedSegModule<Tensor, Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor>? _up;
    private readonly Sequential _conv;

    public UNetDecoderBlock(long inChannels, long skipChannels, long outChannels, UpsamplingMode mode) : base(nameof(UNetDecoderBlock))
    {
        long upC = inChannels;
        if (mode == UpsamplingMode.TransposedConv)
        {
            _up = RegisterModule("up", nn.ConvTranspose2d(inChannels, outChannels, 2, stride: 2));
            upC = outChannels;
        }
        _conv = RegisterModule("conv", Blocks.DoubleConv(upC + skipChannels, outChannels));
    }

    /// <summary>Up-samples <paramref name="x"/>, concatenates <paramref name="skip"/> and convolves.</summary>
    public override Tensor forward(Tensor x, Tensor skip)
    {
        using var scope = NewDisposeScope();
        var u = _up is null ? Blocks.Up2(x) : _up.call(x);
        return _conv.call(cat([u, skip], 1)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// U-Net (Ronneberger et al. 2015): encoder (default <see cref="PlainEncoder"/>, widths 32..512), one decoder block per
/// skip level (up-sampling, concatenated skip, double conv), 1×1 head. With the defaults this is layer for layer the
/// benchmark U-Net (7,763,041 parameters for 3 input channels, 1 class). With a ResNet encoder the deepest-to-stride-2
/// path is decoded and the logits are up-sampled bilinearly ×2 to the input size.
/// </summary>
public sealed class UNet : SegmentationNetwork
{
    private readonly ModuleList<UNetDecoderBlock> _blocks = new();
    private readonly nn.Module<Tensor, Tensor> _head;

    public UNet(SegmentationNetworkOptions options) : base(nameof(UNet), options, SegmentationNetworks.CreateEncoder(options))
    {
        var ch = Encoder.OutChannels;
        int n = ch.Count - 1;
        var dec = options.DecoderWidths ?? Enumerable.Range(0, n).Select(j => ch[n - 1 - j]).ToArray();
        long prev = ch[n];
        for (int j = 0; j < n; j++)
        {
            _blocks.append(new UNetDecoderBlock(prev, ch[n - 1 - j], dec[j], options.Upsampling));
            prev = dec[j];
        }
        var decoder = new DecoderModule();
        decoder.Add("blocks", _blocks);
        RegisterModule("decoder", decoder);
        _head = RegisterModule("head", NewHead(prev));
    }

    protected override Tensor Decode(IReadOnlyList<Tensor> f, long h, long w)
    {
        using var scope = NewDisposeScope();
        int n = f.Count - 1;
        var x = f[n];
        for (int j = 0; j < n; j++) x = _blocks[j].call(x, f[n - 1 - j]);
        return Blocks.Resize(_head.call(x), h, w).MoveToOuterDisposeScope();
    }
}

/// <summary>A named holder of decoder submodules (gives the "decoder." prefix of the state dict).</summary>
internal sealed class DecoderModule : MedSegModule
{
    public DecoderModule() : base("Decoder") { }

    public T Add<T>(string name, T module) where T : nn.Module => RegisterModule(name, module);
}
