using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>
/// torchvision's ResNet BasicBlock: conv1 (3×3, stride s) → bn1 → relu → conv2 (3×3) → bn2, plus the identity or a
/// downsample (1×1 conv stride s + BN), then ReLU. State-dict names as torchvision's (conv1, bn1, conv2, bn2,
/// downsample.0, downsample.1). With a dilation &gt; 1 both 3×3 convs are atrous (padding = dilation).
/// </summary>
public sealed class BasicBlock : MedSegModule<Tensor, Tensor>
{
    private readonly nn.Module<Tensor, Tensor> _conv1, _bn1, _conv2, _bn2;
    private readonly Sequential? _downsample;

    public BasicBlock(long inplanes, long planes, long stride, long dilation, bool downsample) : base(nameof(BasicBlock))
    {
        _conv1 = RegisterModule("conv1", nn.Conv2d(inplanes, planes, 3, stride: stride, padding: dilation, dilation: dilation, bias: false));
        _bn1 = RegisterModule("bn1", Layers.BatchNorm2d(planes));
        RegisterModule("relu", nn.ReLU(inplace: true));
        _conv2 = RegisterModule("conv2", nn.Conv2d(planes, planes, 3, padding: dilation, dilation: dilation, bias: false));
        _bn2 = RegisterModule("bn2", Layers.BatchNorm2d(planes));
        if (downsample)
            _downsample = RegisterModule("downsample", nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride: stride, bias: false), Layers.BatchNorm2d(planes)));
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var o = _bn1.call(_conv1.call(input)).relu_();
        o = _bn2.call(_conv2.call(o));
        var identity = _downsample is null ? input : _downsample.call(input);
        return o.add_(identity, S(1)).relu_().MoveToOuterDisposeScope();
    }
}

/// <summary>
/// torchvision's ResNet with BasicBlocks (resnet18 = [2, 2, 2, 2], resnet34 = [3, 4, 6, 3]) as a segmentation encoder.
/// Modules and state-dict keys are exactly torchvision's (conv1, bn1, relu, maxpool, layer1..layer4; no avgpool/fc),
/// so an ImageNet ResNet exported from PyTorch to safetensors loads with <see cref="SegmentationEncoder.LoadWeights"/>
/// (its fc.* keys are ignored). Stages: 0 = relu(bn1(conv1(x))) at stride 2, k = layer k (stride 4, 8, 16, 32).
/// With output stride 16 layer4 (8: layer3 and layer4) keeps stride 1 and uses atrous 3×3 convs of rate 2 (4 for
/// layer4 at output stride 8), as segmentation_models_pytorch does for DeepLabv3+. Convolutions start from
/// torchvision's initialisation (Kaiming normal, fan_out, ReLU gain); BN weight 1, bias 0.
/// </summary>
public sealed class ResNetEncoder : SegmentationEncoder, ISeededInit
{
    private readonly nn.Module<Tensor, Tensor> _conv1, _bn1;
    private readonly List<Sequential> _layers = [];
    private readonly long[] _channels;
    private readonly int[] _strides;
    private readonly int[] _blocks;

    /// <param name="inChannels">Input channels (3 for ImageNet weights).</param>
    /// <param name="widths">Stem width then layer1.. widths (length = depth, 2..5); torchvision: 64, 64, 128, 256, 512.</param>
    /// <param name="blocks">BasicBlocks per layer (4 values; the first depth − 1 are used).</param>
    /// <param name="outputStride">32 (no dilation), 16 or 8 (atrous deep layers; needs depth 5).</param>
    /// <param name="inputNormalization">Normalise the input first (an <see cref="ImageNormalization"/> registered as
    /// "normalize", state-dict keys normalize.mean [1, C, 224, 224] / normalize.std; identity until weights set it): the ImageNet
    /// weights' preprocessing (see <see cref="ImageNetEncoder"/>).</param>
    public ResNetEncoder(long inChannels, IReadOnlyList<long> widths, IReadOnlyList<int>? blocks = null, int outputStride = 32,
        bool inputNormalization = false)
        : base(nameof(ResNetEncoder))
    {
        ArgumentNullException.ThrowIfNull(widths);
        blocks ??= [2, 2, 2, 2];
        if (widths.Count is < 1 or > 5) throw new ArgumentException($"ResNetEncoder takes 1..5 stage widths, got {widths.Count}", nameof(widths));
        if (blocks.Count != 4) throw new ArgumentException("ResNetEncoder needs 4 block counts", nameof(blocks));
        if (outputStride is not (32 or 16 or 8)) throw new ArgumentException($"outputStride must be 32, 16 or 8, got {outputStride}", nameof(outputStride));
        if (outputStride != 32 && widths.Count != 5) throw new ArgumentException("a dilated ResNetEncoder needs all 5 stages", nameof(outputStride));
        _channels = widths.ToArray();
        _strides = new int[_channels.Length];
        _strides[0] = 2;

        if (inputNormalization) Normalization = RegisterModule("normalize", new ImageNormalization(inChannels, ImageNetEncoder.MeanImageSize, ImageNetEncoder.MeanImageSize));
        _blocks = blocks.ToArray();
        _conv1 = RegisterModule("conv1", nn.Conv2d(inChannels, _channels[0], 7, stride: 2, padding: 3, bias: false));
        _bn1 = RegisterModule("bn1", Layers.BatchNorm2d(_channels[0]));
        RegisterModule("relu", nn.ReLU(inplace: true));
        RegisterModule("maxpool", nn.MaxPool2d(3, stride: 2, padding: 1));

        long inplanes = _channels[0];
        int stride = 4; // after the max-pool
        for (int k = 1; k < _channels.Length; k++)
        {
            long planes = _channels[k];
            int layerStride = k == 1 ? 1 : 2;
            // Atrous: at output stride 16 layer4 keeps stride 1 with rate 2; at 8 layer3 rate 2 and layer4 rate 4 (smp's layout).
            long dilation = (outputStride, k) switch { (16, 4) => 2, (8, 3) => 2, (8, 4) => 4, _ => 1 };
            bool dilated = dilation > 1;
            var layer = nn.Sequential(Array.Empty<nn.Module<Tensor, Tensor>>());
            for (int b = 0; b < blocks[k - 1]; b++)
            {
                long s = b == 0 && !dilated ? layerStride : 1;
                // The downsample exists exactly where torchvision has one (stride 2 or a width change), so keys match.
                bool down = b == 0 && (layerStride != 1 || inplanes != planes);
                layer.append(new BasicBlock(b == 0 ? inplanes : planes, planes, s, dilation, down));
            }
            inplanes = planes;
            if (!dilated) stride *= layerStride;
            _strides[k] = stride;
            _layers.Add(RegisterModule($"layer{k}", layer));
        }

        InitConvs(null);
    }

    /// <summary>torchvision's ResNet initialisation: He-normal (fan-out, ReLU) convolutions; BatchNorm weight 1, bias 0.</summary>
    public void ResetParameters(Generator generator) => InitConvs(generator);

    private void InitConvs(Generator? generator)
    {
        foreach (var (_, p) in named_parameters())
            if (p.dim() == 4) SeededInit.KaimingNormal(p, generator, fanOut: true);
    }

    public override IReadOnlyList<long> OutChannels => _channels;
    public override IReadOnlyList<int> Strides => _strides;

    /// <summary>BasicBlocks per layer (layer1..layer4, as given; layers beyond the depth are not built).</summary>
    public IReadOnlyList<int> LayerBlocks => _blocks;

    /// <summary>The input normalisation applied before conv1, or null (inputs go in unchanged).</summary>
    public ImageNormalization? Normalization { get; }

    /// <summary>The input normalisation's buffers (normalize.*) may be absent from a torchvision weights file: they keep their values.</summary>
    public override bool IsOptionalWeightKey(string key) => key.StartsWith("normalize.", StringComparison.Ordinal);

    /// <summary>fc.* (torchvision's classifier) and layers this encoder does not build (depth &lt; 5) are ignored.</summary>
    public override bool IsIgnoredWeightKey(string key)
    {
        if (key.StartsWith("fc.", StringComparison.Ordinal)) return true;
        for (int k = _channels.Length; k <= 4; k++)
            if (key.StartsWith($"layer{k}.", StringComparison.Ordinal)) return true;
        return false;
    }

    public override string Describe() => $"ResNetEncoder(stages {Depth}, widths {string.Join("/", _channels)}, blocks {string.Join("/", _blocks)}, output stride {OutputStride})";

    public override IReadOnlyList<Tensor> forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var features = new List<Tensor>(_channels.Length);
        var x = _bn1.call(_conv1.call(Normalization is null ? input : Normalization.call(input))).relu_();
        features.Add(x);
        x = nn.functional.max_pool2d(x, [3, 3], [2, 2], [1, 1]);
        foreach (var layer in _layers)
        {
            x = layer.call(x);
            features.Add(x);
        }
        foreach (var f in features) f.MoveToOuterDisposeScope();
        return features;
    }
}
