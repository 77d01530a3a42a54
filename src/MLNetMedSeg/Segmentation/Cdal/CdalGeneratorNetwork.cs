using MLNetMedSeg.Core;
using MLNetMedSeg.Diffusion.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>
/// cDAL's generator x_θ(x_t, t, z, I) (paper 003, §2.1–2.3, Fig. 1): a U-Net over the noisy label x_t that predicts the
/// clean label x̂₀ in [−1, 1] (tanh), conditioned on
/// <list type="bullet">
/// <item>the image I (in [−1, 1]) through an image encoder — a 3×3 conv and <see cref="CdalOptions.ConditionEncoderBlocks"/>
///   residual blocks at full resolution — whose output is added to the U-Net's first feature map (as the public code);</item>
/// <item>the timestep t through a sinusoidal embedding (dim BaseChannels) and a Linear → SiLU → Linear MLP to
///   4·BaseChannels, added inside every residual block;</item>
/// <item>the latent z ~ N(0, I) of dim L through a mapping network (pixel norm, Linear L → E, SiLU, then
///   <see cref="CdalOptions.MappingLayers"/> × (Linear E → E, SiLU)) whose embedding modulates every adaptive group
///   norm of every residual block (the denoising diffusion GAN's style injection).</item>
/// </list>
/// The U-Net (NCSN++-like): 3×3 input conv; per level <see cref="CdalOptions.ResBlocksPerLevel"/> residual blocks (with
/// self-attention at <see cref="CdalOptions.SelfAttentionResolutions"/>) then a down-sampling residual block; middle
/// residual, attention, residual; a mirrored decoder with one more block per level, each fed the concatenation with
/// one saved encoder feature, and an up-sampling residual block; GroupNorm → SiLU → zero-initialised 3×3 conv → tanh.
/// Resampling is average-pool ÷2 and nearest ×2 (the code's FIR filters and input pyramid are left out).
/// State-dict names: time_embed.{0,2}, z_map.{0,2,4,…}, cond_in, cond_blocks.{i}, input_conv, down.{i}.{res,attn},
/// middle.{res1,attn,res2}, up.{i}.{res,attn,resample}, out_norm, out_conv.
/// </summary>
public sealed class CdalGeneratorNetwork : MedSegModule, ISeededInit
{
    private readonly Sequential _timeEmbed, _zMap;
    private readonly Conv2d _condIn, _inputConv, _outConv;
    private readonly ModuleList<CdalEncoderBlock> _condBlocks = new();
    private readonly ModuleList<CdalUNetBlock> _down = new(), _up = new();
    private readonly CdalUNetBlock _middle;
    private readonly Core.GroupNorm _outNorm;

    /// <summary>
    /// Builds the generator <paramref name="options"/> describe (validated and copied). Initial weights come from
    /// <paramref name="generator"/> when given (the same seed gives the same network), else from torch's global generator.
    /// </summary>
    /// <exception cref="ArgumentException">An option is invalid (the message names it).</exception>
    public CdalGeneratorNetwork(CdalOptions options, Generator? generator = null) : base(nameof(CdalGeneratorNetwork))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options.Clone();
        var o = Options;
        int nf = o.BaseChannels, temb = 4 * nf, zemb = o.LatentEmbeddingDim;
        using var initScope = NewDisposeScope();

        _timeEmbed = RegisterModule("time_embed", nn.Sequential(nn.Linear(nf, temb), nn.SiLU(), nn.Linear(temb, temb)));
        var mapping = new List<nn.Module<Tensor, Tensor>> { nn.Linear(o.LatentDim, zemb), nn.SiLU() };
        for (int i = 0; i < o.MappingLayers; i++) { mapping.Add(nn.Linear(zemb, zemb)); mapping.Add(nn.SiLU()); }
        _zMap = RegisterModule("z_map", nn.Sequential(mapping.ToArray()));

        _condIn = RegisterModule("cond_in", nn.Conv2d(o.ImageChannels, nf, 3, padding: 1));
        for (int i = 0; i < o.ConditionEncoderBlocks; i++) _condBlocks.append(new CdalEncoderBlock(nf, o.Dropout));
        RegisterModule("cond_blocks", _condBlocks);

        _inputConv = RegisterModule("input_conv", nn.Conv2d(o.LabelChannels, nf, 3, padding: 1));

        var skips = new List<int> { nf };
        int ch = nf, levels = o.ChannelMultipliers.Length;
        for (int level = 0; level < levels; level++)
        {
            int width = nf * o.ChannelMultipliers[level];
            bool attn = o.SelfAttentionResolutions.Contains(o.ImageSize >> level);
            for (int i = 0; i < o.ResBlocksPerLevel; i++)
            {
                _down.append(new CdalUNetBlock(new CdalResBlock(ch, width, temb, zemb, o.Dropout), attn ? Attention(width) : null, null));
                ch = width;
                skips.Add(ch);
            }
            if (level != levels - 1)
            {
                _down.append(new CdalUNetBlock(new CdalResBlock(ch, ch, temb, zemb, o.Dropout, resample: -1), null, null));
                skips.Add(ch);
            }
        }
        RegisterModule("down", _down);

        _middle = RegisterModule("middle", new CdalUNetBlock(new CdalResBlock(ch, ch, temb, zemb, o.Dropout), Attention(ch),
            new CdalResBlock(ch, ch, temb, zemb, o.Dropout), resampleName: "res2"));

        for (int level = levels - 1; level >= 0; level--)
        {
            int width = nf * o.ChannelMultipliers[level];
            bool attn = o.SelfAttentionResolutions.Contains(o.ImageSize >> level);
            for (int i = 0; i <= o.ResBlocksPerLevel; i++)
            {
                int skip = skips[^1];
                skips.RemoveAt(skips.Count - 1);
                bool last = i == o.ResBlocksPerLevel;
                _up.append(new CdalUNetBlock(
                    new CdalResBlock(ch + skip, width, temb, zemb, o.Dropout),
                    last && attn ? Attention(width) : null,
                    last && level > 0 ? new CdalResBlock(width, width, temb, zemb, o.Dropout, resample: +1) : null));
                ch = width;
            }
        }
        RegisterModule("up", _up);

        _outNorm = RegisterModule("out_norm", Layers.GroupNorm(CdalLayers.Groups(ch), ch, eps: 1e-6));
        _outConv = RegisterModule("out_conv", DiffusionLayers.ZeroConv(ch, o.LabelChannels, 3, 1));

        if (generator is not null) SeededInit.Apply(this, generator);
    }

    private static DiffusionAttentionBlock Attention(long channels) => new(channels, channels, CdalLayers.Groups(channels));

    /// <summary>The options the network was built from (a copy; do not modify).</summary>
    public CdalOptions Options { get; }

    /// <summary>Where dropout masks come from (not owned; null = torch's global generator). Matters only with Dropout &gt; 0.</summary>
    public Generator? DropoutGenerator
    {
        get => modules().OfType<SeededDropout>().FirstOrDefault()?.generator;
        set { foreach (var d in modules().OfType<SeededDropout>()) d.generator = value; }
    }

    /// <summary>After the default seeded initialisation: the output conv and attention projections start at zero again.</summary>
    public void ResetParameters(Generator generator) => DiffusionLayers.ZeroAgain(this);

    /// <summary>
    /// x̂₀ = x_θ(x_t, t, z, I): <paramref name="xt"/> [N, LabelChannels, H, W], <paramref name="timesteps"/> [N] (1..T),
    /// <paramref name="z"/> [N, LatentDim], <paramref name="image"/> [N, ImageChannels, H, W] in [−1, 1] →
    /// [N, LabelChannels, H, W] in [−1, 1]. H and W must be divisible by 2^(levels − 1).
    /// </summary>
    /// <exception cref="ArgumentException">A shape does not match the options (the message names the argument).</exception>
    public Tensor forward(Tensor xt, Tensor timesteps, Tensor z, Tensor image)
    {
        ArgumentNullException.ThrowIfNull(xt);
        ArgumentNullException.ThrowIfNull(timesteps);
        ArgumentNullException.ThrowIfNull(z);
        ArgumentNullException.ThrowIfNull(image);
        var o = Options;
        if (xt.dim() != 4 || xt.size(1) != o.LabelChannels)
            throw new ArgumentException($"x_t must be [N, {o.LabelChannels}, H, W], got [{string.Join(", ", xt.shape)}]", nameof(xt));
        long n = xt.size(0), h = xt.size(2), w = xt.size(3), f = 1L << (o.ChannelMultipliers.Length - 1);
        if (h % f != 0 || w % f != 0)
            throw new ArgumentException($"the label's height and width ({h}×{w}) must be divisible by 2^(levels − 1) = {f}", nameof(xt));
        if (image.dim() != 4 || image.size(0) != n || image.size(1) != o.ImageChannels || image.size(2) != h || image.size(3) != w)
            throw new ArgumentException($"image must be [{n}, {o.ImageChannels}, {h}, {w}], got [{string.Join(", ", image.shape)}]", nameof(image));
        if (z.dim() != 2 || z.size(0) != n || z.size(1) != o.LatentDim)
            throw new ArgumentException($"z must be [{n}, {o.LatentDim}], got [{string.Join(", ", z.shape)}]", nameof(z));
        if (timesteps.dim() != 1 || timesteps.size(0) != n)
            throw new ArgumentException($"timesteps must be [{n}], got [{string.Join(", ", timesteps.shape)}]", nameof(timesteps));

        using var scope = NewDisposeScope();
        var zn = z / z.pow(S(2)).mean([1], keepdim: true).Plus(S(1e-8)).sqrt();   // pixel norm
        var zemb = _zMap.call(zn);
        var temb = _timeEmbed.call(CdalLayers.SinusoidalEmbedding(timesteps, o.BaseChannels));

        var c = _condIn.call(image);
        foreach (var b in _condBlocks) c = b.call(c);

        var hcur = _inputConv.call(xt).Plus(c);
        var skips = new List<Tensor> { hcur };
        foreach (var block in _down)
        {
            hcur = block.forward(hcur, temb, zemb);
            skips.Add(hcur);
        }
        hcur = _middle.forward(hcur, temb, zemb);
        foreach (var block in _up)
        {
            var s = skips[^1];
            skips.RemoveAt(skips.Count - 1);
            hcur = block.forward(cat([hcur, s], 1), temb, zemb);
        }
        return _outConv.call(nn.functional.silu(_outNorm.call(hcur))).tanh().MoveToOuterDisposeScope();
    }

    /// <summary>Same as <see cref="forward"/>.</summary>
    public Tensor call(Tensor xt, Tensor timesteps, Tensor z, Tensor image) => forward(xt, timesteps, z, image);
}

/// <summary>
/// One entry of the generator U-Net: a residual block, optional self-attention, and an optional second residual block
/// (the resampling block, or the middle's second block). State-dict names res, attn, resample (res2 in the middle).
/// </summary>
public sealed class CdalUNetBlock : MedSegModule
{
    private readonly CdalResBlock _res;
    private readonly DiffusionAttentionBlock? _attn;
    private readonly CdalResBlock? _after;

    /// <summary>The parts, applied in order.</summary>
    public CdalUNetBlock(CdalResBlock res, DiffusionAttentionBlock? attn, CdalResBlock? after, string resampleName = "resample") : base("UNetBlock")
    {
        _res = RegisterModule("res", res);
        if (attn is not null) _attn = RegisterModule("attn", attn);
        if (after is not null) _after = RegisterModule(resampleName, after);
    }

    /// <summary>Applies the parts with the time and latent embeddings.</summary>
    public Tensor forward(Tensor x, Tensor temb, Tensor zemb)
    {
        using var scope = NewDisposeScope();
        var h = _res.call(x, temb, zemb);
        if (_attn is not null) h = _attn.call(h);
        if (_after is not null) h = _after.call(h, temb, zemb);
        return h.MoveToOuterDisposeScope();
    }
}
