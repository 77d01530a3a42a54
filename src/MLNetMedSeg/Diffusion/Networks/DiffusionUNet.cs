using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Diffusion.Networks;

/// <summary>
/// The ADM diffusion U-Net (Dhariwal &amp; Nichol 2021; guided-diffusion's <c>UNetModel</c> with
/// <c>resblock_updown = False</c>, <c>use_scale_shift_norm = True</c>, <c>conv_resample = True</c>): a 3×3 input conv on
/// x_t concatenated with the condition; per level <see cref="DiffusionUNetOptions.BlocksPerLevel"/> residual blocks
/// (each followed by self-attention at the <see cref="DiffusionUNetOptions.AttentionResolutions"/>) and a stride-2 conv
/// down-sampling; a middle block (residual, attention, residual); a mirrored decoder with BlocksPerLevel + 1 residual
/// blocks per level, each fed the concatenation of the previous output and one saved encoder feature, and
/// nearest ×2 + 3×3 conv up-sampling; GroupNorm → SiLU → zero-initialised 3×3 output conv. The timestep enters
/// through a sinusoidal embedding (dim BaseChannels) and a Linear → SiLU → Linear MLP to 4·BaseChannels, injected into
/// every residual block as a FiLM scale-shift of its second GroupNorm. The last conv of every residual block, the
/// output projection of every attention block and the output conv start at zero (each block starts as the identity,
/// the network as ε̂ = 0). State-dict names: time_embed.{0,2}, input_conv, down.{i}.{res,attn,down}, middle.{res1,attn,res2},
/// up.{i}.{res,attn,up}, out_norm, out_conv.
/// </summary>
public sealed class DiffusionUNet : MedSegModule, ISeededInit
{
    private readonly Sequential _timeEmbed;
    private readonly TorchSharp.Modules.Conv2d _inputConv;
    private readonly ModuleList<DiffusionUNetBlock> _down = new();
    private readonly DiffusionResBlock _midRes1, _midRes2;
    private readonly DiffusionAttentionBlock _midAttn;
    private readonly ModuleList<DiffusionUNetBlock> _up = new();
    private readonly MLNetMedSeg.Core.GroupNorm _outNorm;
    private readonly TorchSharp.Modules.Conv2d _outConv;

    /// <summary>
    /// Builds the network <paramref name="options"/> describe (validated and copied). Initial weights are drawn from
    /// <paramref name="generator"/> when given (the same seed gives the same network), else from torch's global
    /// generator; PyTorch's default layer initialisation, then the zero-initialised layers listed above.
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid (the message names it).</exception>
    public DiffusionUNet(DiffusionUNetOptions options, Generator? generator = null) : base(nameof(DiffusionUNet))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options.Clone();
        var o = Options;
        int b = o.BaseChannels, embDim = 4 * b, g = o.GroupNormGroups;
        using var initScope = NewDisposeScope();   // temporaries of TorchSharp's layer initialisation are released now

        _timeEmbed = RegisterModule("time_embed", nn.Sequential(nn.Linear(b, embDim), nn.SiLU(), nn.Linear(embDim, embDim)));
        _inputConv = RegisterModule("input_conv", nn.Conv2d(o.InChannels + o.ConditionChannels, b, 3, padding: 1));

        var skipChannels = new List<int> { b };
        int ch = b;
        for (int level = 0; level < o.Levels; level++)
        {
            int width = b * o.ChannelMultipliers[level];
            for (int i = 0; i < o.BlocksPerLevel; i++)
            {
                _down.append(new DiffusionUNetBlock(
                    new DiffusionResBlock(ch, width, embDim, g, o.Dropout),
                    o.HasAttention(level) ? new DiffusionAttentionBlock(width, o.HeadChannels, g) : null, null));
                ch = width;
                skipChannels.Add(ch);
            }
            if (level != o.Levels - 1)
            {
                _down.append(new DiffusionUNetBlock(null, null, new DiffusionDownsample(ch)));
                skipChannels.Add(ch);
            }
        }
        RegisterModule("down", _down);

        var middle = new DiffusionMiddle();
        _midRes1 = middle.Add("res1", new DiffusionResBlock(ch, ch, embDim, g, o.Dropout));
        _midAttn = middle.Add("attn", new DiffusionAttentionBlock(ch, o.HeadChannels, g));
        _midRes2 = middle.Add("res2", new DiffusionResBlock(ch, ch, embDim, g, o.Dropout));
        RegisterModule("middle", middle);

        for (int level = o.Levels - 1; level >= 0; level--)
        {
            int width = b * o.ChannelMultipliers[level];
            for (int i = 0; i <= o.BlocksPerLevel; i++)
            {
                int skip = skipChannels[^1];
                skipChannels.RemoveAt(skipChannels.Count - 1);
                _up.append(new DiffusionUNetBlock(
                    new DiffusionResBlock(ch + skip, width, embDim, g, o.Dropout),
                    o.HasAttention(level) ? new DiffusionAttentionBlock(width, o.HeadChannels, g) : null,
                    level > 0 && i == o.BlocksPerLevel ? new DiffusionUpsample(width) : null));
                ch = width;
            }
        }
        RegisterModule("up", _up);

        _outNorm = RegisterModule("out_norm", Layers.GroupNorm(g, ch));
        _outConv = RegisterModule("out_conv", DiffusionLayers.ZeroConv(ch, o.OutChannels, 3, 1));

        if (generator is not null) SeededInit.Apply(this, generator);
    }

    /// <summary>The options the network was built from (a copy; do not modify).</summary>
    public DiffusionUNetOptions Options { get; }

    /// <summary>
    /// Where the residual blocks' dropout masks come from (not owned; null = torch's global generator). Set it to a
    /// seeded generator for reproducible training with <see cref="DiffusionUNetOptions.Dropout"/> &gt; 0.
    /// </summary>
    public Generator? DropoutGenerator
    {
        get => modules().OfType<SeededDropout>().FirstOrDefault()?.generator;
        set { foreach (var d in modules().OfType<SeededDropout>()) d.generator = value; }
    }

    /// <summary>After the default seeded initialisation: the zero-initialised convs start at zero again.</summary>
    public void ResetParameters(Generator generator) => DiffusionLayers.ZeroAgain(this);

    /// <summary>
    /// Predicts the network output (ε̂ for the Gaussian process) for <paramref name="x"/> [N, InChannels, H, W] at
    /// <paramref name="timesteps"/> [N] (int64 or float; indices of the original, un-respaced schedule; a single
    /// value is broadcast to the batch) given <paramref name="condition"/> [N, ConditionChannels, H, W] (null when
    /// ConditionChannels = 0). H and W must be divisible by 2^(levels − 1). Returns [N, OutChannels, H, W].
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not match the options (the message names the argument).</exception>
    public Tensor forward(Tensor x, Tensor timesteps, Tensor? condition = null)
    {
        CheckInputs(x, timesteps, condition);
        using var scope = NewDisposeScope();
        var emb = TimeEmbedding(timesteps, x);

        var hcur = _inputConv.call(condition is null ? x : cat([x, condition.to(x.dtype)], 1));
        var skips = new List<Tensor> { hcur };
        foreach (var block in _down)
        {
            hcur = block.forward(hcur, emb);
            skips.Add(hcur);
        }
        hcur = _midRes1.forward(hcur, emb);
        hcur = _midAttn.call(hcur);
        hcur = _midRes2.forward(hcur, emb);
        foreach (var block in _up)
        {
            var s = skips[^1];
            skips.RemoveAt(skips.Count - 1);
            hcur = block.forward(cat([hcur, s], 1), emb);
        }
        return _outConv.call(nn.functional.silu(_outNorm.call(hcur))).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Number of encoder feature maps <see cref="EncoderFeatures"/> can return: the input conv's output (index 0) and the
    /// output of every encoder step (residual block + attention, or down-sampling), in order — the features the decoder
    /// receives as skips (guided-diffusion's <c>input_blocks</c> outputs).
    /// </summary>
    internal int EncoderFeatureCount => 1 + _down.Count;

    /// <summary>
    /// The encoder's feature maps at <paramref name="layers"/> (indices 0..<see cref="EncoderFeatureCount"/> − 1, see
    /// there) for the same inputs as <see cref="forward"/>: the encoder of the ε-network as a feature extractor (ZeCon's
    /// <c>forward_enc</c>). Runs the encoder only up to the deepest layer asked for; the graph is kept when grad mode is on.
    /// Does not change <see cref="forward"/>'s outputs.
    /// </summary>
    internal IReadOnlyList<Tensor> EncoderFeatures(Tensor x, Tensor timesteps, Tensor? condition, IReadOnlyList<int> layers)
    {
        CheckInputs(x, timesteps, condition);
        ArgumentNullException.ThrowIfNull(layers);
        if (layers.Count == 0) throw new ArgumentException("give at least one encoder layer", nameof(layers));
        foreach (var l in layers)
            if (l < 0 || l >= EncoderFeatureCount)
                throw new ArgumentOutOfRangeException(nameof(layers), l, $"encoder layers are 0..{EncoderFeatureCount - 1} for this network");
        int deepest = layers.Max();
        using var scope = NewDisposeScope();
        var emb = TimeEmbedding(timesteps, x);
        var hcur = _inputConv.call(condition is null ? x : cat([x, condition.to(x.dtype)], 1));
        var all = new List<Tensor> { hcur };
        for (int i = 0; i < deepest; i++)
        {
            hcur = _down[i].forward(hcur, emb);
            all.Add(hcur);
        }
        var result = layers.Select(l => all[l].alias()).ToList();
        foreach (var r in result) r.MoveToOuterDisposeScope();
        return result;
    }

    private Tensor TimeEmbedding(Tensor timesteps, Tensor x)
    {
        long n = x.size(0);
        using var scope = NewDisposeScope();
        var t = timesteps.reshape(-1).to(ScalarType.Float32, x.device);
        if (t.numel() == 1 && n != 1) t = t.expand(n);
        return _timeEmbed.call(TimestepEmbedding(t).to(x.dtype)).MoveToOuterDisposeScope();
    }

    private void CheckInputs(Tensor x, Tensor timesteps, Tensor? condition)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(timesteps);
        var o = Options;
        if (x.dim() != 4 || x.size(1) != o.InChannels)
            throw new ArgumentException($"x must be [N, {o.InChannels}, H, W], got [{string.Join(", ", x.shape)}]", nameof(x));
        long n = x.size(0), h = x.size(2), w = x.size(3), f = 1L << (o.Levels - 1);
        if (h % f != 0 || w % f != 0)
            throw new ArgumentException($"x's height and width ({h}×{w}) must be divisible by 2^(levels − 1) = {f} ({o.Levels} levels)", nameof(x));
        if (o.ConditionChannels == 0 && condition is not null)
            throw new ArgumentException("the network is unconditional (ConditionChannels = 0) but a condition was given", nameof(condition));
        if (o.ConditionChannels > 0)
        {
            if (condition is null)
                throw new ArgumentException($"the network needs a condition [N, {o.ConditionChannels}, H, W]", nameof(condition));
            if (condition.dim() != 4 || condition.size(0) != n || condition.size(1) != o.ConditionChannels || condition.size(2) != h || condition.size(3) != w)
                throw new ArgumentException(
                    $"condition must be [{n}, {o.ConditionChannels}, {h}, {w}], got [{string.Join(", ", condition.shape)}]", nameof(condition));
        }
        if (!(timesteps.numel() == n || timesteps.numel() == 1) || timesteps.dim() > 1)
            throw new ArgumentException($"timesteps must be [{n}] (or a single value), got [{string.Join(", ", timesteps.shape)}]", nameof(timesteps));
    }

    /// <summary>Same as <see cref="forward"/>.</summary>
    public Tensor call(Tensor x, Tensor timesteps, Tensor? condition = null) => forward(x, timesteps, condition);

    /// <summary>
    /// guided-diffusion's <c>timestep_embedding</c>: [cos(t·f_k), sin(t·f_k)], f_k = 10000^(−k/half), k = 0..half−1,
    /// half = BaseChannels / 2. <paramref name="t"/>: [N] float → [N, BaseChannels] float32.
    /// </summary>
    private Tensor TimestepEmbedding(Tensor t)
    {
        using var scope = NewDisposeScope();
        int half = Options.BaseChannels / 2;
        // Computed per call (half values): a non-persistent buffer would not follow the module across devices in TorchSharp 0.107.
        var freqs = (arange(S(0), S(half), S(1), ScalarType.Float32, t.device) * S(-Math.Log(10000.0) / half)).exp();
        var args = t.unsqueeze(1) * freqs.unsqueeze(0);
        return cat([args.cos(), args.sin()], 1).MoveToOuterDisposeScope();
    }
}

/// <summary>Layer helpers of the diffusion networks.</summary>
internal static class DiffusionLayers
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<TorchSharp.Modules.Conv2d, object> ZeroConvs = new();

    /// <summary>A conv whose weight and bias start at zero (guided-diffusion's <c>zero_module</c>).</summary>
    public static TorchSharp.Modules.Conv2d ZeroConv(long inC, long outC, long kernel, long padding)
    {
        var c = nn.Conv2d(inC, outC, kernel, padding: padding);
        Zero(c);
        ZeroConvs.AddOrUpdate(c, ZeroConvs);
        return c;
    }

    /// <summary>Zeroes every conv of <paramref name="module"/> that <see cref="ZeroConv"/> made (after a seeded re-initialisation).</summary>
    public static void ZeroAgain(nn.Module module)
    {
        foreach (var (_, m) in module.PreOrder())
            if (m is TorchSharp.Modules.Conv2d c && ZeroConvs.TryGetValue(c, out _)) Zero(c);
    }

    private static void Zero(TorchSharp.Modules.Conv2d c)
    {
        using var noGrad = torch.no_grad();
        c.weight!.fill_(S(0));
        c.bias?.fill_(S(0));
    }
}

/// <summary>Holder of the middle block's modules (gives the "middle." prefix of the state dict).</summary>
internal sealed class DiffusionMiddle : MedSegModule
{
    public DiffusionMiddle() : base("Middle") { }

    public T Add<T>(string name, T module) where T : nn.Module => RegisterModule(name, module);
}

/// <summary>
/// One step of the ADM U-Net's encoder or decoder list: an optional residual block, an optional self-attention after
/// it, and an optional resampling (stride-2 conv down, or nearest ×2 + conv up) last. State-dict names res, attn,
/// down/up.
/// </summary>
public sealed class DiffusionUNetBlock : MedSegModule
{
    private readonly DiffusionResBlock? _res;
    private readonly DiffusionAttentionBlock? _attn;
    private readonly nn.Module<Tensor, Tensor>? _resample;

    /// <summary>Any of the parts may be null (at least one is given).</summary>
    public DiffusionUNetBlock(DiffusionResBlock? res, DiffusionAttentionBlock? attn, nn.Module<Tensor, Tensor>? resample) : base("Block")
    {
        if (res is null && attn is null && resample is null) throw new ArgumentException("an empty U-Net block");
        if (res is not null) _res = RegisterModule("res", res);
        if (attn is not null) _attn = RegisterModule("attn", attn);
        if (resample is not null) _resample = RegisterModule(resample is DiffusionDownsample ? "down" : "up", resample);
    }

    /// <summary>Applies the parts in order; <paramref name="emb"/> is the time embedding [N, 4·BaseChannels].</summary>
    public Tensor forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        var h = x;
        if (_res is not null) h = _res.forward(h, emb);
        if (_attn is not null) h = _attn.call(h);
        if (_resample is not null) h = _resample.call(h);
        return (ReferenceEquals(h, x) ? h.alias() : h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// ADM residual block with scale-shift time conditioning: h = conv3(SiLU(GN(x))); [s, b] = Linear(SiLU(emb));
/// h = GN(h)·(1 + s) + b; h = conv3_zero(Dropout(SiLU(h))); out = skip(x) + h, skip a 1×1 conv when the width
/// changes. State-dict names in_norm, in_conv, emb, out_norm, out_conv, skip.
/// </summary>
public sealed class DiffusionResBlock : MedSegModule
{
    private readonly MLNetMedSeg.Core.GroupNorm _inNorm, _outNorm;
    private readonly TorchSharp.Modules.Conv2d _inConv, _outConv;
    private readonly TorchSharp.Modules.Linear _emb;
    private readonly SeededDropout _dropout;
    private readonly TorchSharp.Modules.Conv2d? _skip;

    /// <summary>A block from <paramref name="inChannels"/> to <paramref name="outChannels"/> conditioned on an embedding of <paramref name="embDim"/>.</summary>
    public DiffusionResBlock(long inChannels, long outChannels, long embDim, long groups, double dropout) : base("ResBlock")
    {
        _inNorm = RegisterModule("in_norm", Layers.GroupNorm(groups, inChannels));
        _inConv = RegisterModule("in_conv", nn.Conv2d(inChannels, outChannels, 3, padding: 1));
        _emb = RegisterModule("emb", nn.Linear(embDim, 2 * outChannels));
        _outNorm = RegisterModule("out_norm", Layers.GroupNorm(groups, outChannels));
        _dropout = RegisterModule("dropout", Layers.Dropout(dropout));
        _outConv = RegisterModule("out_conv", DiffusionLayers.ZeroConv(outChannels, outChannels, 3, 1));
        if (inChannels != outChannels) _skip = RegisterModule("skip", nn.Conv2d(inChannels, outChannels, 1));
    }

    /// <summary><paramref name="x"/> [N, C_in, H, W], <paramref name="emb"/> [N, E] → [N, C_out, H, W].</summary>
    public Tensor forward(Tensor x, Tensor emb)
    {
        using var scope = NewDisposeScope();
        var h = _inConv.call(nn.functional.silu(_inNorm.call(x)));
        var ss = _emb.call(nn.functional.silu(emb)).unsqueeze(-1).unsqueeze(-1).chunk(2, 1);
        h = (_outNorm.call(h) * ss[0].Plus(S(1))).Plus(ss[1]);
        h = _outConv.call(_dropout.call(nn.functional.silu(h)));
        return (_skip is null ? x : _skip.call(x)).Plus(h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Multi-head self-attention over the H·W positions (guided-diffusion's <c>AttentionBlock</c>):
/// [q, k, v] = conv1×1(GN(x)) split into heads of <c>headChannels</c>; a = softmax(qᵀk / √d)·v per head;
/// out = x + conv1×1_zero(a). State-dict names norm, qkv, proj.
/// </summary>
public sealed class DiffusionAttentionBlock : MedSegModule<Tensor, Tensor>
{
    private readonly MLNetMedSeg.Core.GroupNorm _norm;
    private readonly TorchSharp.Modules.Conv2d _qkv, _proj;

    /// <summary>Attention over <paramref name="channels"/> channels in heads of <paramref name="headChannels"/> (must divide).</summary>
    public DiffusionAttentionBlock(long channels, long headChannels, long groups) : base("AttentionBlock")
    {
        if (headChannels < 1 || channels % headChannels != 0)
            throw new ArgumentException($"headChannels {headChannels} must divide channels {channels}", nameof(headChannels));
        Channels = channels;
        Heads = channels / headChannels;
        _norm = RegisterModule("norm", Layers.GroupNorm(groups, channels));
        _qkv = RegisterModule("qkv", nn.Conv2d(channels, 3 * channels, 1));
        _proj = RegisterModule("proj", DiffusionLayers.ZeroConv(channels, channels, 1, 0));
    }

    /// <summary>Channels attended over.</summary>
    public long Channels { get; }

    /// <summary>Number of heads.</summary>
    public long Heads { get; }

    /// <summary><paramref name="input"/> [N, C, H, W] → [N, C, H, W].</summary>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        long n = input.size(0), c = input.size(1), h = input.size(2), w = input.size(3), d = c / Heads, len = h * w;
        var qkv = _qkv.call(_norm.call(input)).chunk(3, 1);
        var q = qkv[0].reshape(n * Heads, d, len);
        var k = qkv[1].reshape(n * Heads, d, len);
        var v = qkv[2].reshape(n * Heads, d, len);
        var weight = bmm(q.transpose(1, 2), k).mul(S(1.0 / Math.Sqrt(d))).softmax(-1);   // [NH, T(query), S(key)]
        var a = bmm(v, weight.transpose(1, 2)).reshape(n, c, h, w);                      // [NH, d, T]
        return input.Plus(_proj.call(a)).MoveToOuterDisposeScope();
    }
}

/// <summary>Stride-2 3×3 conv down-sampling (guided-diffusion's <c>Downsample</c> with conv). State-dict name op.</summary>
public sealed class DiffusionDownsample : MedSegModule<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Conv2d _op;

    /// <summary>Keeps <paramref name="channels"/>.</summary>
    public DiffusionDownsample(long channels) : base("Downsample") => _op = RegisterModule("op", nn.Conv2d(channels, channels, 3, stride: 2, padding: 1));

    /// <inheritdoc/>
    public override Tensor forward(Tensor input) => _op.call(input);
}

/// <summary>Nearest ×2 up-sampling then a 3×3 conv (guided-diffusion's <c>Upsample</c> with conv). State-dict name conv.</summary>
public sealed class DiffusionUpsample : MedSegModule<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Conv2d _conv;

    /// <summary>Keeps <paramref name="channels"/>.</summary>
    public DiffusionUpsample(long channels) : base("Upsample") => _conv = RegisterModule("conv", nn.Conv2d(channels, channels, 3, padding: 1));

    /// <inheritdoc/>
    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var u = nn.functional.interpolate(input, [input.size(2) * 2, input.size(3) * 2], mode: InterpolationMode.Nearest);
        return _conv.call(u).MoveToOuterDisposeScope();
    }
}
