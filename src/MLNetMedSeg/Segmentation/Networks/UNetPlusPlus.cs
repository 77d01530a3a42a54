using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>
/// U-Net++ (Zhou et al. 2018). With encoder features X^{i,0} (level i, i = 0..L, L = EncoderDepth − 1) every nested
/// node is X^{i,j} = H([X^{i,0}, ..., X^{i,j−1}, Up(X^{i+1,j−1})]) for j ≥ 1, i + j ≤ L, where H is a double 3×3 conv +
/// BN + ReLU to the level's decoder width and Up a 2×2 transposed conv (to that width) or bilinear ×2. The output is a
/// 1×1 head on X^{0,L}. With deep supervision every X^{0,j} has a head: in training mode the output is the mean of
/// their logits, in evaluation mode the head of X^{0,L} alone; <see cref="ForwardAllHeads"/> gives every head (to
/// average per-head losses as Zhou et al.). State-dict names: decoder.x{i}_{j}.{up,conv}.*, head.* or heads.{j−1}.*.
/// </summary>
public sealed class UNetPlusPlus : SegmentationNetwork
{
    private readonly UNetDecoderBlockNested[,] _nodes;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> _heads = new();
    private readonly int _levels;

    public UNetPlusPlus(SegmentationNetworkOptions options)
        : base(nameof(UNetPlusPlus), options, SegmentationNetworks.CreateEncoder(options))
    {
        var e = Encoder.OutChannels;
        int L = _levels = e.Count - 1;
        var c = options.DecoderWidths ?? e.Take(L).ToArray();
        DeepSupervision = options.DeepSupervision;
        _nodes = new UNetDecoderBlockNested[L, L + 1];
        var decoder = new DecoderModule();
        for (int j = 1; j <= L; j++)
            for (int i = 0; i + j <= L; i++)
            {
                long src = j == 1 ? e[i + 1] : c[i + 1];
                long dense = e[i] + (j - 1) * c[i];
                _nodes[i, j] = decoder.Add($"x{i}_{j}", new UNetDecoderBlockNested(src, dense, c[i], options.Upsampling));
            }
        RegisterModule("decoder", decoder);
        if (DeepSupervision)
        {
            for (int j = 1; j <= L; j++) _heads.append(NewHead(c[0]));
            RegisterModule("heads", _heads);
        }
        else _heads.append(RegisterModule("head", NewHead(c[0])));
    }

    /// <summary>True when every X^{0,j} has a head (see the class summary).</summary>
    public bool DeepSupervision { get; }

    /// <summary>
    /// The logits of every head at the input size: with deep supervision L tensors (X^{0,1}..X^{0,L}), otherwise one.
    /// </summary>
    public IReadOnlyList<Tensor> ForwardAllHeads(Tensor input)
    {
        using var scope = NewDisposeScope();
        var (x, h, w) = Pad(input);
        var outs = AllHeads(Encoder.call(x), x.size(2), x.size(3)).Select(o => Crop(o, h, w)).ToList();
        foreach (var o in outs) o.MoveToOuterDisposeScope();
        return outs;
    }

    protected override Tensor Decode(IReadOnlyList<Tensor> features, long h, long w)
    {
        using var scope = NewDisposeScope();
        var outs = AllHeads(features, h, w);
        Tensor y = outs.Count == 1 ? outs[0] : training ? stack(outs, 0).mean([0L]) : outs[^1];
        return y.MoveToOuterDisposeScope();
    }

    private List<Tensor> AllHeads(IReadOnlyList<Tensor> f, long h, long w)
    {
        int L = _levels;
        var X = new Tensor[L + 1, L + 1];
        for (int i = 0; i <= L; i++) X[i, 0] = f[i];
        for (int j = 1; j <= L; j++)
            for (int i = 0; i + j <= L; i++)
            {
                var dense = new List<Tensor>(j);
                for (int k = 0; k < j; k++) dense.Add(X[i, k]);
                X[i, j] = _nodes[i, j].call(X[i + 1, j - 1], dense.Count == 1 ? dense[0] : cat(dense, 1));
            }
        var outs = new List<Tensor>();
        if (DeepSupervision)
            for (int j = 1; j <= L; j++) outs.Add(Blocks.Resize(_heads[j - 1].call(X[0, j]), h, w));
        else outs.Add(Blocks.Resize(_heads[0].call(X[0, L]), h, w));
        return outs;
    }
}

/// <summary>A U-Net++ node: Up(deeper node) concatenated after the same-level dense inputs, then a double conv.</summary>
public sealed class UNetDecoderBlockNested : MedSegModule<Tensor, Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor>? _up;
    private readonly Sequential _conv;

    public UNetDecoderBlockNested(long deeperChannels, long denseChannels, long outChannels, UpsamplingMode mode)
        : base(nameof(UNetDecoderBlockNested))
    {
        long upC = deeperChannels;
        if (mode == UpsamplingMode.TransposedConv)
        {
            _up = RegisterModule("up", nn.ConvTranspose2d(deeperChannels, outChannels, 2, stride: 2));
            upC = outChannels;
        }
        _conv = RegisterModule("conv", Blocks.DoubleConv(denseChannels + upC, outChannels));
    }

    /// <summary>Up-samples <paramref name="deeper"/>, concatenates it after <paramref name="dense"/> and convolves.</summary>
    public override Tensor forward(Tensor deeper, Tensor dense)
    {
        using var scope = NewDisposeScope();
        var u = _up is null ? Blocks.Up2(deeper) : _up.call(deeper);
        return _conv.call(cat([dense, u], 1)).MoveToOuterDisposeScope();
    }
}
