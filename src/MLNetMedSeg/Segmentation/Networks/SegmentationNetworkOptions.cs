namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>The four segmentation backbones through which DASP reports its results (paper 000, Table 1).</summary>
public enum SegmentationArchitecture
{
    /// <summary>U-Net (Ronneberger et al. 2015): encoder, up-sampling + concatenated skip + double 3×3 conv per level.</summary>
    UNet,

    /// <summary>U-Net++ (Zhou et al. 2018): nested dense skip pathways X^{i,j}, optional deep supervision.</summary>
    UNetPlusPlus,

    /// <summary>LinkNet (Chaurasia and Culurciello 2017): ResNet encoder, light decoder blocks, additive skips.</summary>
    LinkNet,

    /// <summary>DeepLabv3+ (Chen et al. 2018): atrous ResNet encoder (output stride 16), ASPP, low-level skip.</summary>
    DeepLabV3Plus,
}

/// <summary>Which encoder a network uses.</summary>
public enum EncoderKind
{
    /// <summary>The architecture's usual encoder: <see cref="Plain"/> for U-Net and U-Net++, <see cref="ResNet"/> for LinkNet and DeepLabv3+.</summary>
    Default,

    /// <summary><see cref="PlainEncoder"/>: U-Net's double 3×3 conv + BN + ReLU blocks with 2×2 max-pool down-sampling.</summary>
    Plain,

    /// <summary><see cref="ResNetEncoder"/>: torchvision's ResNet with BasicBlocks (resnet18 / resnet34 layouts).</summary>
    ResNet,
}

/// <summary>Initial weights of the encoder (segmentation_models_pytorch's <c>encoder_weights</c>).</summary>
public enum EncoderWeights
{
    /// <summary>Random initialisation (torchvision's for ResNet): train from scratch. The default.</summary>
    None,

    /// <summary>
    /// ImageNet-trained ResNet-18 from the NuGet package <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> (0.24.0, MIT),
    /// read from its ONNX file (see <see cref="ImageNetEncoder"/>); the encoder then normalises its RGB [0, 1] input
    /// as that model's preprocessing does. The package is needed only when a network is first built with these
    /// weights: a saved model keeps them.
    /// </summary>
    ImageNet,
}

/// <summary>How U-Net and U-Net++ decoders up-sample by 2.</summary>
public enum UpsamplingMode
{
    /// <summary>2×2 transposed convolution with stride 2 to the level's width (Ronneberger's "up-convolution").</summary>
    TransposedConv,

    /// <summary>Bilinear interpolation (align_corners = false); the channels pass through unchanged into the double conv.</summary>
    Bilinear,
}

/// <summary>
/// Options of <see cref="SegmentationNetworks.Create(SegmentationNetworkOptions, Generator?)"/>. Defaults give DASP's backbones (paper 000, Table 1) at the
/// widths of the original papers' common implementations, trained from scratch.
/// </summary>
public sealed class SegmentationNetworkOptions
{
    /// <summary>The backbone (default U-Net).</summary>
    public SegmentationArchitecture Architecture { get; set; } = SegmentationArchitecture.UNet;

    /// <summary>Input channels (default 3, RGB endoscopy images).</summary>
    public long InChannels { get; set; } = 3;

    /// <summary>
    /// Output channels of the logits: 1 for binary segmentation (one sigmoid logit per pixel, the default), or C + 1
    /// for C foreground classes plus background (softmax over dim 1).
    /// </summary>
    public long Classes { get; set; } = 1;

    /// <summary>Encoder family; <see cref="EncoderKind.Default"/> picks the architecture's own (LinkNet and DeepLabv3+ need ResNet).</summary>
    public EncoderKind Encoder { get; set; } = EncoderKind.Default;

    /// <summary>
    /// Number of encoder stages (feature maps handed to the decoder), 2–5, default 5. Plain: stage k works at stride
    /// 2^k. ResNet: stage 0 is the stem (conv1/bn1/relu, stride 2), stage k ≥ 1 is torchvision's layer k (stride 2^(k+1));
    /// DeepLabv3+ needs all 5.
    /// </summary>
    public int EncoderDepth { get; set; } = 5;

    /// <summary>
    /// Channels of each encoder stage, shallow to deep (length <see cref="EncoderDepth"/>). Null: Plain 32/64/128/256/512
    /// (half of Ronneberger's 64–1024; the benchmark U-Net's widths), ResNet 64/64/128/256/512 (torchvision's: stem,
    /// layer1..layer4).
    /// </summary>
    public long[]? EncoderWidths { get; set; }

    /// <summary>BasicBlocks per ResNet layer (layer1..layer4): [2, 2, 2, 2] = resnet18 (default), [3, 4, 6, 3] = resnet34.
    /// <see cref="EncoderName"/>, when set, decides this instead (leave it at the default then).</summary>
    public int[] ResNetBlocks { get; set; } = [2, 2, 2, 2];

    /// <summary>
    /// The encoder by name, as segmentation_models_pytorch's <c>encoder_name</c>: <c>"resnet18"</c> or <c>"resnet34"</c>
    /// (torchvision's layouts, <see cref="EncoderKind.ResNet"/>), or null (default) for <see cref="Encoder"/> and
    /// <see cref="ResNetBlocks"/>. With <see cref="EncoderWeights"/> = ImageNet only resnet18 is available, in the layout
    /// of the package's ImageNet model: its layer4 has three BasicBlocks ([2, 2, 2, 3], 15.9 M encoder parameters)
    /// where torchvision's resnet18 has two ([2, 2, 2, 2], 11.2 M).
    /// </summary>
    public string? EncoderName { get; set; }

    /// <summary>Initial encoder weights (smp's <c>encoder_weights</c>): <see cref="EncoderWeights.None"/> (default) or
    /// <see cref="EncoderWeights.ImageNet"/> (ResNet-18 only; 3 input channels, RGB in [0, 1]).</summary>
    public EncoderWeights EncoderWeights { get; set; } = EncoderWeights.None;

    /// <summary>
    /// Where the ImageNet weights are read from when <see cref="EncoderWeights"/> = ImageNet: the package's
    /// <c>DnnImageModels</c> folder or its <c>ResNet18Onnx/ResNet18.onnx</c> file. Null (default): looked up next to
    /// the application (the package copies <c>DnnImageModels/</c> into its output folder), then in the NuGet package
    /// cache; see <see cref="ImageNetEncoder.Locate(string?)"/>. Not saved with a model (the weights are).
    /// </summary>
    public string? ImageNetModelPath { get; set; }

    /// <summary>
    /// Decoder widths, per architecture. U-Net: one per decoder block, deepest first (EncoderDepth − 1 values; default the
    /// encoder widths of the skip levels, deepest first). U-Net++: one per nested level 0..EncoderDepth − 2 (default the
    /// encoder widths of those levels). LinkNet: one value, the width of the last decoder block (default 32, smp's
    /// "prefinal" width; the other blocks output the skip widths because the skips are added). DeepLabv3+: one value,
    /// the ASPP and decoder width (default 256).
    /// </summary>
    public long[]? DecoderWidths { get; set; }

    /// <summary>U-Net / U-Net++ up-sampling (default transposed convolution, as Ronneberger).</summary>
    public UpsamplingMode Upsampling { get; set; } = UpsamplingMode.TransposedConv;

    /// <summary>
    /// U-Net++ only: a 1×1 head on every X^{0,j}, j = 1..EncoderDepth − 1 (Zhou et al.). In training mode the network's
    /// output is the mean of these heads' logits; in evaluation mode it is the head of X^{0,EncoderDepth−1} alone (the
    /// full-depth branch). <see cref="UNetPlusPlus.ForwardAllHeads"/> returns every head. Default false.
    /// </summary>
    public bool DeepSupervision { get; set; }

    /// <summary>DeepLabv3+ only: encoder output stride, 16 (default, the paper's training setting) or 8.</summary>
    public int OutputStride { get; set; } = 16;

    /// <summary>DeepLabv3+ only: ASPP atrous rates (default 6, 12, 18 for output stride 16).</summary>
    public int[] AtrousRates { get; set; } = [6, 12, 18];

    /// <summary>DeepLabv3+ only: channels the stride-4 low-level feature is reduced to (default 48, as the paper).</summary>
    public long LowLevelChannels { get; set; } = 48;

    /// <summary>DeepLabv3+ only: dropout after the ASPP projection (default 0.5 as torchvision/smp; draws from torch's global generator).</summary>
    public double AsppDropout { get; set; } = 0.5;

    /// <summary>
    /// Optional safetensors file of encoder weights (e.g. an ImageNet ResNet exported from PyTorch with torchvision's
    /// key names), loaded by the factory after initialisation. Null (default): train from scratch.
    /// </summary>
    public string? EncoderWeightsPath { get; set; }

    /// <summary>A copy (arrays copied too).</summary>
    public SegmentationNetworkOptions Clone()
    {
        var c = (SegmentationNetworkOptions)MemberwiseClone();
        c.EncoderWidths = EncoderWidths?.ToArray();
        c.DecoderWidths = DecoderWidths?.ToArray();
        c.ResNetBlocks = ResNetBlocks.ToArray();
        c.AtrousRates = AtrousRates.ToArray();
        return c;
    }

    /// <summary>The encoder actually used (resolving <see cref="EncoderKind.Default"/> and <see cref="EncoderName"/>).</summary>
    public EncoderKind ResolvedEncoder => Encoder != EncoderKind.Default ? Encoder
        : EncoderName is not null || EncoderWeights == EncoderWeights.ImageNet ? EncoderKind.ResNet
        : Architecture is SegmentationArchitecture.UNet or SegmentationArchitecture.UNetPlusPlus ? EncoderKind.Plain : EncoderKind.ResNet;

    /// <summary>The encoder widths actually used.</summary>
    public long[] ResolvedEncoderWidths => EncoderWidths?.ToArray() ?? (ResolvedEncoder == EncoderKind.Plain
        ? new long[] { 32, 64, 128, 256, 512 }.Take(EncoderDepth).ToArray()
        : new long[] { 64, 64, 128, 256, 512 }.Take(EncoderDepth).ToArray());

    /// <summary>The encoder names <see cref="EncoderName"/> accepts.</summary>
    public static IReadOnlyList<string> EncoderNames { get; } = ["resnet18", "resnet34"];

    /// <summary>
    /// The BasicBlocks per ResNet layer actually used: from <see cref="EncoderName"/> when set (resnet18 [2, 2, 2, 2],
    /// with ImageNet weights [2, 2, 2, 3]; resnet34 [3, 4, 6, 3]), else <see cref="ResNetBlocks"/> (ImageNet weights:
    /// [2, 2, 2, 3]).
    /// </summary>
    public int[] ResolvedResNetBlocks => EncoderWeights == EncoderWeights.ImageNet ? [.. ImageNetEncoder.ResNet18Blocks]
        : EncoderName switch
        {
            "resnet18" => [2, 2, 2, 2],
            "resnet34" => [3, 4, 6, 3],
            _ => ResNetBlocks.ToArray(),
        };

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Architecture)) throw new ArgumentException($"unknown Architecture {Architecture}", nameof(Architecture));
        if (InChannels < 1) throw new ArgumentException($"InChannels must be ≥ 1, got {InChannels}", nameof(InChannels));
        if (Classes < 1) throw new ArgumentException($"Classes must be ≥ 1 (1 = binary, C + 1 = multi-class), got {Classes}", nameof(Classes));
        if (EncoderDepth is < 2 or > 5) throw new ArgumentException($"EncoderDepth must be 2..5, got {EncoderDepth}", nameof(EncoderDepth));
        var enc = ResolvedEncoder;
        if (Architecture is SegmentationArchitecture.LinkNet or SegmentationArchitecture.DeepLabV3Plus && enc != EncoderKind.ResNet)
            throw new ArgumentException($"{Architecture} needs a ResNet encoder, got Encoder = {Encoder}", nameof(Encoder));
        if (Architecture == SegmentationArchitecture.DeepLabV3Plus && EncoderDepth != 5)
            throw new ArgumentException($"DeepLabV3Plus needs EncoderDepth = 5 (layer1 low-level skip, atrous layer4), got {EncoderDepth}", nameof(EncoderDepth));
        if (EncoderWidths is { } ew)
        {
            if (ew.Length != EncoderDepth)
                throw new ArgumentException($"EncoderWidths needs {EncoderDepth} values (one per stage), got {ew.Length}", nameof(EncoderWidths));
            if (ew.Any(w => w < 1)) throw new ArgumentException("EncoderWidths must be positive", nameof(EncoderWidths));
        }
        if (enc == EncoderKind.ResNet && (ResNetBlocks is not { Length: 4 } || ResNetBlocks.Any(b => b < 1)))
            throw new ArgumentException("ResNetBlocks needs 4 positive counts (layer1..layer4)", nameof(ResNetBlocks));
        if (EncoderName is not null)
        {
            if (!EncoderNames.Contains(EncoderName))
                throw new ArgumentException($"unknown EncoderName '{EncoderName}'; choose one of: {string.Join(", ", EncoderNames)}", nameof(EncoderName));
            if (enc != EncoderKind.ResNet)
                throw new ArgumentException($"EncoderName '{EncoderName}' is a ResNet, but Encoder = {Encoder}", nameof(EncoderName));
            if (!ResNetBlocks.SequenceEqual([2, 2, 2, 2]) && !ResNetBlocks.SequenceEqual(ResolvedResNetBlocks))
                throw new ArgumentException($"EncoderName '{EncoderName}' sets the blocks per layer; leave ResNetBlocks at its default (it is [{string.Join(", ", ResNetBlocks)}])", nameof(ResNetBlocks));
        }
        if (!Enum.IsDefined(EncoderWeights)) throw new ArgumentException($"unknown EncoderWeights {EncoderWeights}", nameof(EncoderWeights));
        if (EncoderWeights == EncoderWeights.ImageNet)
        {
            if (enc != EncoderKind.ResNet)
                throw new ArgumentException($"ImageNet weights are for the ResNet-18 encoder, but Encoder = {Encoder}", nameof(EncoderWeights));
            if (EncoderName is not (null or "resnet18"))
                throw new ArgumentException($"ImageNet weights exist only for resnet18 (package {ImageNetEncoder.PackageId}); train {EncoderName} from scratch (EncoderWeights = None)", nameof(EncoderWeights));
            if (!ResNetBlocks.SequenceEqual([2, 2, 2, 2]) && !ResNetBlocks.SequenceEqual(ImageNetEncoder.ResNet18Blocks))
                throw new ArgumentException($"ImageNet weights fix the blocks per layer ([{string.Join(", ", ImageNetEncoder.ResNet18Blocks)}]); leave ResNetBlocks at its default", nameof(ResNetBlocks));
            if (InChannels != 3)
                throw new ArgumentException($"ImageNet weights need 3 input channels (RGB), got InChannels = {InChannels}", nameof(InChannels));
            if (EncoderWidths is { } iw && !iw.SequenceEqual(new long[] { 64, 64, 128, 256, 512 }.Take(EncoderDepth)))
                throw new ArgumentException($"ImageNet weights fix the encoder widths (64/64/128/256/512), got {string.Join("/", iw)}", nameof(EncoderWidths));
            if (EncoderWeightsPath is not null)
                throw new ArgumentException("set either EncoderWeights = ImageNet or EncoderWeightsPath, not both", nameof(EncoderWeightsPath));
        }
        else if (ImageNetModelPath is not null)
            throw new ArgumentException("ImageNetModelPath is set but EncoderWeights is None", nameof(ImageNetModelPath));
        int expectedDecoder = Architecture switch
        {
            SegmentationArchitecture.UNet or SegmentationArchitecture.UNetPlusPlus => EncoderDepth - 1,
            _ => 1,
        };
        if (DecoderWidths is { } dw)
        {
            if (dw.Length != expectedDecoder)
                throw new ArgumentException($"DecoderWidths for {Architecture} needs {expectedDecoder} value(s), got {dw.Length}", nameof(DecoderWidths));
            if (dw.Any(w => w < 1)) throw new ArgumentException("DecoderWidths must be positive", nameof(DecoderWidths));
        }
        if (Architecture == SegmentationArchitecture.LinkNet && ResolvedEncoderWidths.Any(w => w < 4))
            throw new ArgumentException("LinkNet decoder blocks reduce by 4: EncoderWidths must be ≥ 4", nameof(EncoderWidths));
        if (DeepSupervision && Architecture != SegmentationArchitecture.UNetPlusPlus)
            throw new ArgumentException($"DeepSupervision is a U-Net++ option, not {Architecture}", nameof(DeepSupervision));
        if (Architecture == SegmentationArchitecture.DeepLabV3Plus)
        {
            if (OutputStride is not (8 or 16)) throw new ArgumentException($"OutputStride must be 8 or 16, got {OutputStride}", nameof(OutputStride));
            if (AtrousRates is not { Length: > 0 } || AtrousRates.Any(r => r < 1))
                throw new ArgumentException("AtrousRates needs at least one positive rate", nameof(AtrousRates));
            if (LowLevelChannels < 1) throw new ArgumentException($"LowLevelChannels must be ≥ 1, got {LowLevelChannels}", nameof(LowLevelChannels));
            if (AsppDropout is < 0 or >= 1) throw new ArgumentException($"AsppDropout must be in [0, 1), got {AsppDropout}", nameof(AsppDropout));
        }
    }
}
