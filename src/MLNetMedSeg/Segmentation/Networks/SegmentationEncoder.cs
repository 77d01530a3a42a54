using TorchSharp;
using TorchSharp.Modules;
using MLNetMedSeg.Core;
using static TorchSharp.torch;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>
/// An encoder (as segmentation_models_pytorch's): maps (N, C, H, W) to the feature map of every stage, shallow to deep.
/// <see cref="OutChannels"/> and <see cref="Strides"/> describe them. Inputs must have H and W multiples of
/// <see cref="OutputStride"/> (the networks pad to that).
/// </summary>
public abstract class SegmentationEncoder : MedSegModule<Tensor, IReadOnlyList<Tensor>>
{
    protected SegmentationEncoder(string name) : base(name) { }

    /// <summary>Channels of each stage's feature map, shallow to deep.</summary>
    public abstract IReadOnlyList<long> OutChannels { get; }

    /// <summary>Stride (input size / feature size) of each stage, shallow to deep.</summary>
    public abstract IReadOnlyList<int> Strides { get; }

    /// <summary>The stride of the deepest stage: inputs must be multiples of it.</summary>
    public int OutputStride => Strides[^1];

    /// <summary>Number of stages.</summary>
    public int Depth => OutChannels.Count;

    /// <summary>
    /// Keys of a weights file that <see cref="LoadWeights"/> skips without complaint (e.g. a classifier's fc.* or
    /// layers beyond the configured depth). None by default.
    /// </summary>
    public virtual bool IsIgnoredWeightKey(string key) => false;

    /// <summary>
    /// Own state-dict keys that a weights file may lack (<see cref="LoadWeights"/> then keeps their current values),
    /// e.g. an input normalisation's buffers. None by default.
    /// </summary>
    public virtual bool IsOptionalWeightKey(string key) => false;

    /// <summary>
    /// Loads this encoder's parameters and buffers from a safetensors file whose key names are this encoder's
    /// state-dict names (for <see cref="ResNetEncoder"/>: torchvision's, e.g. conv1.weight, layer1.0.bn1.running_mean).
    /// Every own key must be present with the same shape; any other key that is not ignored
    /// (<see cref="IsIgnoredWeightKey"/>) is an error. Values are converted to the parameters' dtype and device.
    /// </summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not safetensors, or keys are missing, unexpected or of the wrong
    /// shape (the message lists them all).</exception>
    public void LoadWeights(string safetensorsPath)
    {
        ArgumentNullException.ThrowIfNull(safetensorsPath);
        if (!File.Exists(safetensorsPath))
            throw new FileNotFoundException($"encoder weights file '{safetensorsPath}' does not exist", safetensorsPath);
        using var scope = NewDisposeScope();
        var file = Safetensors.Load(safetensorsPath);
        var own = state_dict();
        var missing = own.Keys.Where(k => !file.ContainsKey(k) && !IsOptionalWeightKey(k)).ToList();
        var unexpected = file.Keys.Where(k => !own.ContainsKey(k) && !IsIgnoredWeightKey(k)).OrderBy(k => k, StringComparer.Ordinal).ToList();
        var mismatched = new List<string>();
        foreach (var (k, dst) in own)
            if (file.TryGetValue(k, out var src) && !src.shape.SequenceEqual(dst.shape))
                mismatched.Add($"{k} (expected [{string.Join(", ", dst.shape)}], file has [{string.Join(", ", src.shape)}])");
        if (missing.Count + unexpected.Count + mismatched.Count > 0)
        {
            var parts = new List<string>();
            if (missing.Count > 0) parts.Add($"{missing.Count} missing key(s): {string.Join(", ", missing)}");
            if (unexpected.Count > 0) parts.Add($"{unexpected.Count} unexpected key(s): {string.Join(", ", unexpected)}");
            if (mismatched.Count > 0) parts.Add($"{mismatched.Count} shape mismatch(es): {string.Join("; ", mismatched)}");
            throw new InvalidDataException(
                $"encoder weights file '{safetensorsPath}' does not fit {Describe()}: {string.Join(". ", parts)}.");
        }
        var matching = file.Where(e => own.ContainsKey(e.Key)).ToDictionary(e => e.Key, e => e.Value);
        load_state_dict(matching, strict: matching.Count == own.Count);
    }

    /// <summary>A one-line description used in error messages.</summary>
    public virtual string Describe() => $"{GetName()}(stages {Depth}, channels {string.Join("/", OutChannels)})";
}

/// <summary>
/// U-Net's encoder (Ronneberger et al. 2015): stage 0 is a double 3×3 conv + BN + ReLU block at full resolution; every
/// further stage is a 2×2 max-pool followed by such a block. Stage k works at stride 2^k. State-dict names:
/// stages.{k}.{0,1,3,4}.*.
/// </summary>
public sealed class PlainEncoder : SegmentationEncoder
{
    private readonly ModuleList<Sequential> _stages = new();
    private readonly long[] _channels;
    private readonly int[] _strides;

    /// <param name="inChannels">Input channels.</param>
    /// <param name="widths">Channels per stage, shallow to deep (≥ 2 stages).</param>
    public PlainEncoder(long inChannels, IReadOnlyList<long> widths) : base(nameof(PlainEncoder))
    {
        ArgumentNullException.ThrowIfNull(widths);
        if (widths.Count < 1) throw new ArgumentException("PlainEncoder needs at least one stage width", nameof(widths));
        _channels = widths.ToArray();
        _strides = Enumerable.Range(0, _channels.Length).Select(k => 1 << k).ToArray();
        long prev = inChannels;
        foreach (var w in _channels)
        {
            _stages.append(Blocks.DoubleConv(prev, w));
            prev = w;
        }
        RegisterModule("stages", _stages);
    }

    public override IReadOnlyList<long> OutChannels => _channels;
    public override IReadOnlyList<int> Strides => _strides;

    public override IReadOnlyList<Tensor> forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var features = new List<Tensor>(_stages.Count);
        var x = input;
        for (int k = 0; k < _stages.Count; k++)
        {
            if (k > 0) x = nn.functional.max_pool2d(x, [2, 2]);
            x = _stages[k].call(x);
            features.Add(x);
        }
        foreach (var f in features) f.MoveToOuterDisposeScope();
        return features;
    }
}
