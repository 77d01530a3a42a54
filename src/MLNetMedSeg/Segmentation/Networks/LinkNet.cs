using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>
/// A LinkNet decoder block (Chaurasia and Culurciello 2017, Fig. 3): 1×1 conv m → m/4, 3×3 transposed conv m/4 → m/4
/// with stride 2 (padding 1, output padding 1: exactly ×2), 1×1 conv m/4 → n; each followed by BN + ReLU (convs without
/// bias). State-dict names: 0.*, 1.*, 2.* (each a conv/bn pair: .0, .1).
/// </summary>
public sealed class LinkNetDecoderBlock : MedSegModule<Tensor, Tensor>
{
    private readonly Sequential _reduce, _up, _expand;

    public LinkNetDecoderBlock(long inChannels, long outChannels) : base(nameof(LinkNetDecoderBlock))
    {
        long mid = inChannels / 4;
        _reduce = RegisterModule("0", Blocks.ConvBnRelu(inChannels, mid, 1, 0));
        _up = RegisterModule("1", nn.Sequential(
            nn.ConvTranspose2d(mid, mid, 3, stride: 2, padding: 1, output_padding: 1, bias: false),
            Layers.BatchNorm2d(mid), nn.ReLU(inplace: true)));
        _expand = RegisterModule("2", Blocks.ConvBnRelu(mid, outChannels, 1, 0));
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return _expand.call(_up.call(_reduce.call(input))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// LinkNet with a ResNet encoder (default resnet18), laid out as segmentation_models_pytorch's Linknet: one decoder
/// block per encoder stage from the deepest, each ×2 and ADDED to the next shallower stage's feature (layer3, layer2,
/// layer1, stem), then a last block (stem width → <see cref="SegmentationNetworkOptions.DecoderWidths"/>[0], default
/// 32) without skip that reaches the input resolution, and a 1×1 head. State-dict names: decoder.blocks.{k}.*, head.*.
/// </summary>
public sealed class LinkNet : SegmentationNetwork
{
    private readonly ModuleList<LinkNetDecoderBlock> _blocks = new();
    private readonly nn.Module<Tensor, Tensor> _head;

    public LinkNet(SegmentationNetworkOptions options) : base(nameof(LinkNet), options, SegmentationNetworks.CreateEncoder(options))
    {
        var e = Encoder.OutChannels;
        int n = e.Count - 1;
        long final = options.DecoderWidths?[0] ?? 32;
        for (int k = n; k >= 1; k--) _blocks.append(new LinkNetDecoderBlock(e[k], e[k - 1]));
        _blocks.append(new LinkNetDecoderBlock(e[0], final));
        var decoder = new DecoderModule();
        decoder.Add("blocks", _blocks);
        RegisterModule("decoder", decoder);
        _head = RegisterModule("head", NewHead(final));
    }

    protected override Tensor Decode(IReadOnlyList<Tensor> f, long h, long w)
    {
        using var scope = NewDisposeScope();
        int n = f.Count - 1;
        var x = f[n];
        for (int k = 0; k < n; k++) x = _blocks[k].call(x).Plus(f[n - 1 - k]);
        x = _blocks[n].call(x);
        return Blocks.Resize(_head.call(x), h, w).MoveToOuterDisposeScope();
    }
}
