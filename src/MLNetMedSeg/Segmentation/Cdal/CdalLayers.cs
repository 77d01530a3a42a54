using MLNetMedSeg.Core;
using MLNetMedSeg.Diffusion.Networks;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>Building blocks of cDAL's generator and discriminator (after the denoising diffusion GAN's NCSN++ layers).</summary>
public static class CdalLayers
{
    /// <summary>
    /// Group count of a norm over <paramref name="channels"/>: min(C/4, 32) as NCSN++, lowered to the largest divisor of C
    /// (NCSN++ would fail on such widths; e.g. 144 channels get 24 groups).
    /// </summary>
    public static long Groups(long channels)
    {
        for (long g = Math.Max(1, Math.Min(channels / 4, 32)); g > 1; g--)
            if (channels % g == 0) return g;
        return 1;
    }

    /// <summary>
    /// The sinusoidal timestep embedding of the diffusion models the paper builds on (§3.2): for k = 0..half−1,
    /// f_k = exp(−k · ln 10000 / (half − 1)); [sin(t f_k), cos(t f_k)] (zero-padded to an odd <paramref name="dim"/>).
    /// <paramref name="t"/>: [N] (any numeric dtype) → [N, dim] float32.
    /// </summary>
    public static Tensor SinusoidalEmbedding(Tensor t, int dim)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (dim < 2) throw new ArgumentOutOfRangeException(nameof(dim), dim, "embedding dim must be ≥ 2");
        if (t.dim() != 1) throw new ArgumentException($"timesteps must be [N], got [{string.Join(", ", t.shape)}]", nameof(t));
        using var scope = NewDisposeScope();
        int half = dim / 2;
        double step = half > 1 ? Math.Log(10000.0) / (half - 1) : 0;
        var freqs = (arange(S(0), S(half), S(1), ScalarType.Float32, t.device) * S(-step)).exp();
        var args = t.to(ScalarType.Float32).unsqueeze(1) * freqs.unsqueeze(0);
        var emb = cat([args.sin(), args.cos()], 1);
        if (dim % 2 == 1) emb = nn.functional.pad(emb, [0, 1]);
        return emb.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Adaptive group norm (the denoising diffusion GAN's AdaGN): GN(x) without affine, then γ(z)·GN(x) + β(z) with
/// [γ, β] = Linear(z_emb) — how the latent embedding reaches every layer. γ's bias starts at 1, β's at 0.
/// State-dict names norm (no parameters), style.
/// </summary>
public sealed class AdaptiveGroupNorm : MedSegModule<Tensor, Tensor, Tensor>, ISeededInit
{
    private readonly Core.GroupNorm _norm;
    private readonly TorchSharp.Modules.Linear _style;
    private readonly long _channels;

    /// <summary>A norm over <paramref name="channels"/> modulated by an embedding of <paramref name="styleDim"/>.</summary>
    public AdaptiveGroupNorm(long channels, long styleDim) : base(nameof(AdaptiveGroupNorm))
    {
        _channels = channels;
        _norm = RegisterModule("norm", Layers.GroupNorm(CdalLayers.Groups(channels), channels, eps: 1e-6, affine: false));
        _style = RegisterModule("style", nn.Linear(styleDim, 2 * channels));
        ResetStyleBias();
    }

    /// <inheritdoc/>
    public void ResetParameters(Generator generator) => ResetStyleBias();

    private void ResetStyleBias()
    {
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        _style.bias!.narrow(0, 0, _channels).fill_(S(1));
        _style.bias!.narrow(0, _channels, _channels).fill_(S(0));
    }

    /// <summary><paramref name="x"/> [N, C, H, W], <paramref name="style"/> [N, styleDim] → [N, C, H, W].</summary>
    public override Tensor forward(Tensor x, Tensor style)
    {
        using var scope = NewDisposeScope();
        var gb = _style.call(style).unsqueeze(-1).unsqueeze(-1).chunk(2, 1);
        return (gb[0] * _norm.call(x)).Plus(gb[1]).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The generator's residual block (NCSN++'s BigGAN block with AdaGN): h = conv3(SiLU(AdaGN₀(x, z))) after optional
/// resampling (average-pool ÷2 or nearest ×2 of both h and x); h += Linear(SiLU(t_emb)); h = conv3_zero(Dropout(SiLU(
/// AdaGN₁(h, z)))); out = (skip(x) + h)/√2, skip a 1×1 conv when the width changes or the block resamples.
/// State-dict names norm0, conv0, temb, norm1, dropout, conv1, skip.
/// </summary>
public sealed class CdalResBlock : MedSegModule<Tensor, Tensor, Tensor, Tensor>, ISeededInit
{
    private readonly AdaptiveGroupNorm _norm0, _norm1;
    private readonly TorchSharp.Modules.Conv2d _conv0, _conv1;
    private readonly TorchSharp.Modules.Linear _temb;
    private readonly SeededDropout _dropout;
    private readonly TorchSharp.Modules.Conv2d? _skip;
    private readonly int _resample;   // −1 down, 0 none, +1 up

    /// <summary>A block from <paramref name="inChannels"/> to <paramref name="outChannels"/>; <paramref name="resample"/> −1 halves, +1 doubles the resolution.</summary>
    public CdalResBlock(long inChannels, long outChannels, long tembDim, long zembDim, double dropout, int resample = 0) : base("ResBlock")
    {
        _resample = Math.Sign(resample);
        _norm0 = RegisterModule("norm0", new AdaptiveGroupNorm(inChannels, zembDim));
        _conv0 = RegisterModule("conv0", nn.Conv2d(inChannels, outChannels, 3, padding: 1));
        _temb = RegisterModule("temb", nn.Linear(tembDim, outChannels));
        _norm1 = RegisterModule("norm1", new AdaptiveGroupNorm(outChannels, zembDim));
        _dropout = RegisterModule("dropout", Layers.Dropout(dropout));
        _conv1 = RegisterModule("conv1", DiffusionLayers.ZeroConv(outChannels, outChannels, 3, 1));
        if (inChannels != outChannels || _resample != 0) _skip = RegisterModule("skip", nn.Conv2d(inChannels, outChannels, 1));
    }

    /// <summary>After the default initialisation: the last conv starts at zero (the block starts as its skip path).</summary>
    public void ResetParameters(Generator generator) => DiffusionLayers.ZeroAgain(this);

    /// <summary><paramref name="x"/> [N, C_in, H, W], time embedding [N, tembDim], latent embedding [N, zembDim] → [N, C_out, H', W'].</summary>
    public override Tensor forward(Tensor x, Tensor temb, Tensor zemb)
    {
        using var scope = NewDisposeScope();
        var h = nn.functional.silu(_norm0.call(x, zemb));
        if (_resample != 0) { h = Resample(h); x = Resample(x); }
        h = _conv0.call(h);
        h = h.Plus(_temb.call(nn.functional.silu(temb)).unsqueeze(-1).unsqueeze(-1));
        h = _conv1.call(_dropout.call(nn.functional.silu(_norm1.call(h, zemb))));
        var s = _skip is null ? x : _skip.call(x);
        return (s.Plus(h) * S(1 / Math.Sqrt(2))).MoveToOuterDisposeScope();
    }

    private Tensor Resample(Tensor t) => _resample < 0
        ? nn.functional.avg_pool2d(t, 2)
        : nn.functional.interpolate(t, [t.size(2) * 2, t.size(3) * 2], mode: InterpolationMode.Nearest);
}

/// <summary>
/// A residual block of the image (condition) encoder, without time or latent input (the public code's
/// ResBlockEncoder): h = conv3(SiLU(GN(x))); h = conv3_zero(Dropout(SiLU(GN(h)))); out = x + h. State-dict names
/// norm0, conv0, norm1, dropout, conv1.
/// </summary>
public sealed class CdalEncoderBlock : MedSegModule<Tensor, Tensor>, ISeededInit
{
    private readonly Core.GroupNorm _norm0, _norm1;
    private readonly TorchSharp.Modules.Conv2d _conv0, _conv1;
    private readonly SeededDropout _dropout;

    /// <summary>A block keeping <paramref name="channels"/>.</summary>
    public CdalEncoderBlock(long channels, double dropout) : base("EncoderBlock")
    {
        _norm0 = RegisterModule("norm0", Layers.GroupNorm(CdalLayers.Groups(channels), channels));
        _conv0 = RegisterModule("conv0", nn.Conv2d(channels, channels, 3, padding: 1));
        _norm1 = RegisterModule("norm1", Layers.GroupNorm(CdalLayers.Groups(channels), channels));
        _dropout = RegisterModule("dropout", Layers.Dropout(dropout));
        _conv1 = RegisterModule("conv1", DiffusionLayers.ZeroConv(channels, channels, 3, 1));
    }

    /// <inheritdoc/>
    public void ResetParameters(Generator generator) => DiffusionLayers.ZeroAgain(this);

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = _conv0.call(nn.functional.silu(_norm0.call(x)));
        h = _conv1.call(_dropout.call(nn.functional.silu(_norm1.call(h))));
        return x.Plus(h).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// The discriminator's residual down block (the denoising diffusion GAN's DownConvBlock): h = conv3(LReLU(x)) +
/// Linear(t_emb); h = LReLU(h); average-pool ÷2 of h and x when down-sampling; h = conv3(h);
/// out = (conv1×1_nobias(x) + h)/√2. State-dict names conv1, temb, conv2, skip.
/// </summary>
public sealed class CdalDownBlock : MedSegModule<Tensor, Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Conv2d _conv1, _conv2, _skip;
    private readonly TorchSharp.Modules.Linear _temb;
    private readonly bool _down;

    /// <summary>A block from <paramref name="inChannels"/> to <paramref name="outChannels"/>, halving the resolution when <paramref name="down"/>.</summary>
    public CdalDownBlock(long inChannels, long outChannels, long tembDim, bool down) : base("DownBlock")
    {
        _down = down;
        _conv1 = RegisterModule("conv1", nn.Conv2d(inChannels, outChannels, 3, padding: 1));
        _temb = RegisterModule("temb", nn.Linear(tembDim, outChannels));
        _conv2 = RegisterModule("conv2", nn.Conv2d(outChannels, outChannels, 3, padding: 1));
        _skip = RegisterModule("skip", nn.Conv2d(inChannels, outChannels, 1, bias: false));
    }

    /// <summary><paramref name="x"/> [N, C_in, H, W], <paramref name="temb"/> [N, tembDim] → [N, C_out, H/2, W/2] (or H, W).</summary>
    public override Tensor forward(Tensor x, Tensor temb)
    {
        using var scope = NewDisposeScope();
        var h = _conv1.call(x.leaky_relu(S(0.2)));
        h = h.Plus(_temb.call(temb).unsqueeze(-1).unsqueeze(-1)).leaky_relu(S(0.2));
        if (_down) { h = nn.functional.avg_pool2d(h, 2); x = nn.functional.avg_pool2d(x, 2); }
        h = _conv2.call(h);
        return (_skip.call(x).Plus(h) * S(1 / Math.Sqrt(2))).MoveToOuterDisposeScope();
    }
}
