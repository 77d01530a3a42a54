using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>
/// Atrous spatial pyramid pooling (DeepLabv3, Chen et al. 2017): a 1×1 conv branch, one 3×3 atrous conv branch per
/// rate, and image pooling (global average → 1×1 conv → ReLU → broadcast back), concatenated and projected by a 1×1 conv
/// (+ BN + ReLU + dropout). Every conv but the pooling one is bias-free and followed by BN + ReLU; the pooling branch has
/// a biased conv and no BN, so that training works with batch size 1 (BN over a 1×1 map of one image is undefined).
/// State-dict names: convs.{k}.* (k = 0: 1×1, then one per rate), pool.*, project.*.
/// </summary>
public sealed class Aspp : MedSegModule<Tensor, Tensor>
{
    private readonly ModuleList<Sequential> _convs = new();
    private readonly nn.Module<Tensor, Tensor> _pool;
    private readonly Sequential _project;

    public Aspp(long inChannels, long outChannels, IReadOnlyList<int> rates, double dropout) : base(nameof(Aspp))
    {
        _convs.append(Blocks.ConvBnRelu(inChannels, outChannels, 1, 0));
        foreach (int r in rates) _convs.append(Blocks.ConvBnRelu(inChannels, outChannels, 3, r, r));
        RegisterModule("convs", _convs);
        _pool = RegisterModule("pool", nn.Conv2d(inChannels, outChannels, 1));
        _project = RegisterModule("project", nn.Sequential(
            nn.Conv2d(outChannels * (rates.Count + 2), outChannels, 1, bias: false), Layers.BatchNorm2d(outChannels), nn.ReLU(inplace: true),
            Layers.Dropout(dropout)));
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var branches = _convs.Select(c => c.call(x)).ToList();
        var pooled = _pool.call(nn.functional.adaptive_avg_pool2d(x, [1, 1])).relu();
        branches.Add(pooled.expand(pooled.size(0), pooled.size(1), x.size(2), x.size(3)));
        return _project.call(cat(branches, 1)).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// DeepLabv3+ (Chen et al. 2018) on a dilated ResNet encoder (default resnet18 at output stride 16: layer4 atrous,
/// rate 2). Decoder: ASPP (rates 6/12/18 + image pooling, width 256) on layer4; bilinear up-sampling to the stride-4
/// layer1 feature, which is reduced to 48 channels by 1×1 conv + BN + ReLU; concatenation; two 3×3 conv + BN + ReLU
/// (256); 1×1 head; bilinear up-sampling ×4 to the input size. State-dict names: decoder.aspp.*, decoder.low.*,
/// decoder.fuse.*, head.*.
/// </summary>
public sealed class DeepLabV3Plus : SegmentationNetwork
{
    private readonly Aspp _aspp;
    private readonly Sequential _low, _fuse;
    private readonly nn.Module<Tensor, Tensor> _head;

    public DeepLabV3Plus(SegmentationNetworkOptions options)
        : base(nameof(DeepLabV3Plus), options, SegmentationNetworks.CreateEncoder(options))
    {
        var e = Encoder.OutChannels;
        long width = options.DecoderWidths?[0] ?? 256;
        var decoder = new DecoderModule();
        _aspp = decoder.Add("aspp", new Aspp(e[^1], width, options.AtrousRates, options.AsppDropout));
        _low = decoder.Add("low", Blocks.ConvBnRelu(e[1], options.LowLevelChannels, 1, 0));
        var c1 = Blocks.ConvBnRelu(width + options.LowLevelChannels, width);
        var c2 = Blocks.ConvBnRelu(width, width);
        _fuse = decoder.Add("fuse", nn.Sequential(c1, c2));
        RegisterModule("decoder", decoder);
        _head = RegisterModule("head", NewHead(width));
    }

    protected override Tensor Decode(IReadOnlyList<Tensor> f, long h, long w)
    {
        using var scope = NewDisposeScope();
        var low = _low.call(f[1]);
        var a = Blocks.Resize(_aspp.call(f[^1]), low.size(2), low.size(3));
        var x = _fuse.call(cat([a, low], 1));
        return Blocks.Resize(_head.call(x), h, w).MoveToOuterDisposeScope();
    }
}
