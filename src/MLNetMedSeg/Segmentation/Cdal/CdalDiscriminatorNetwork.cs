using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Cdal;

/// <summary>
/// cDAL's time-step discriminator D(x_{t−1}, x_t, t) (paper 003, §2.2; "a residual encoder like the generator's",
/// §3.2): it tells a real x_{t−1} ~ q(x_{t−1} | x₀) from a generated x̂_{t−1} ~ q(x_{t−1} | x_t, x̂₀), given x_t and t. Not
/// conditioned on the image (neither §2.2 nor the public code give it I). After the denoising diffusion GAN's
/// discriminator: a sinusoidal time embedding (dim E) through Linear → LReLU(0.2) → Linear, then LReLU; a 1×1 conv of
/// [x_{t−1}, x_t] to 2·ngf channels at full resolution (features level 0); <see cref="CdalOptions.DiscriminatorLevels"/>
/// residual down blocks (levels 1.., each halving the resolution, widths 4, 8, 8, … × ngf); a minibatch standard
/// deviation channel; a 3×3 conv, LReLU, a sum over positions and a linear layer to one logit.
/// <para>
/// <see cref="AttentionMap"/> is §2.2's A_D = (1/C) Σ_i F_i over the C feature maps of the level at
/// <see cref="CdalOptions.AttentionScale"/>, upsampled bilinearly to the label's size.
/// </para>
/// State-dict names: t_embed.{0,2}, start_conv, blocks.{i}, final_conv, end_linear.
/// </summary>
public sealed class CdalDiscriminatorNetwork : MedSegModule
{
    private readonly Sequential _tEmbed;
    private readonly Conv2d _startConv, _finalConv;
    private readonly ModuleList<CdalDownBlock> _blocks = new();
    private readonly Linear _endLinear;

    /// <summary>Builds the discriminator <paramref name="options"/> describe; initial weights from <paramref name="generator"/> when given.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public CdalDiscriminatorNetwork(CdalOptions options, Generator? generator = null) : base(nameof(CdalDiscriminatorNetwork))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options.Clone();
        var o = Options;
        int e = o.DiscriminatorTimeEmbeddingDim, ngf = o.DiscriminatorChannels;
        using var initScope = NewDisposeScope();
        _tEmbed = RegisterModule("t_embed", nn.Sequential(nn.Linear(e, e), LeakyReLUModule(0.2), nn.Linear(e, e)));
        long ch = 2L * ngf;
        _startConv = RegisterModule("start_conv", nn.Conv2d(2L * o.LabelChannels, ch, 1));
        for (int k = 1; k <= o.DiscriminatorLevels; k++)
        {
            long width = Math.Min(2L * ngf << k, 8L * ngf);
            _blocks.append(new CdalDownBlock(ch, width, e, down: true));
            ch = width;
        }
        RegisterModule("blocks", _blocks);
        _finalConv = RegisterModule("final_conv", nn.Conv2d(ch + 1, ch, 3, padding: 1));
        _endLinear = RegisterModule("end_linear", nn.Linear(ch, 1));
        if (generator is not null) SeededInit.Apply(this, generator);
    }

    /// <summary>The options the network was built from (a copy; do not modify).</summary>
    public CdalOptions Options { get; }

    /// <summary>
    /// The logit of "real" for the pair: <paramref name="xPrev"/> (x_{t−1} or x̂_{t−1}) and <paramref name="xt"/>, both
    /// [N, LabelChannels, H, W], at <paramref name="timesteps"/> [N] (1..T) → [N].
    /// </summary>
    public Tensor forward(Tensor xPrev, Tensor xt, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        var feats = Features(xPrev, xt, timesteps, out var temb, upTo: _blocks.Count);
        var hcur = feats[^1];
        long n = hcur.size(0), c = hcur.size(1), h = hcur.size(2), w = hcur.size(3);
        // Minibatch standard deviation over groups of up to 4 samples (the largest divisor of N that is ≤ 4).
        long group = Enumerable.Range(1, (int)Math.Min(n, 4)).Where(g => n % g == 0).Max();
        var sd = hcur.view(group, -1, 1, c, h, w);
        sd = sd.var(0, unbiased: false).Plus(S(1e-8)).sqrt();                       // [N/g, 1, C, H, W]
        sd = sd.mean([2, 3, 4], keepdim: true).squeeze(2);                     // [N/g, 1, 1, 1]
        sd = sd.repeat(group, 1, h, w);                                        // [N, 1, H, W]
        hcur = _finalConv.call(cat([hcur, sd], 1)).leaky_relu(S(0.2));
        var pooled = hcur.view(n, c, -1).sum(2);
        return _endLinear.call(pooled).view(n).MoveToOuterDisposeScope();
    }

    /// <summary>Same as <see cref="forward"/>.</summary>
    public Tensor call(Tensor xPrev, Tensor xt, Tensor timesteps) => forward(xPrev, xt, timesteps);

    /// <summary>
    /// A_D = (1/C) Σ_i F_i of the level-<see cref="CdalOptions.AttentionLevel"/> features of D(x_{t−1}, x_t, t), upsampled
    /// bilinearly to [H, W] of the inputs: [N, 1, H, W]. Computed without gradients (the public code's
    /// <c>get_features</c> runs under no_grad): the attention weighs the generator's target and is not trained through.
    /// </summary>
    public Tensor AttentionMap(Tensor xPrev, Tensor xt, Tensor timesteps)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        int level = Options.AttentionLevel;
        var feats = Features(xPrev, xt, timesteps, out _, upTo: level);
        var a = feats[level].mean([1], keepdim: true);
        if (a.size(2) != xPrev.size(2) || a.size(3) != xPrev.size(3))
            a = nn.functional.interpolate(a, [xPrev.size(2), xPrev.size(3)], mode: InterpolationMode.Bilinear, align_corners: false);
        return a.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// x₀^att = x₀ ⊙ A_D (§2.2): <paramref name="x0"/> [N, LabelChannels, H, W] weighted by the attention map of the real
    /// pair (<paramref name="xPrev"/>, <paramref name="xt"/>) at <paramref name="timesteps"/>, broadcast over the label
    /// channels. No gradients flow into the discriminator.
    /// </summary>
    public Tensor ApplyAttention(Tensor x0, Tensor xPrev, Tensor xt, Tensor timesteps)
    {
        ArgumentNullException.ThrowIfNull(x0);
        if (!x0.shape.SequenceEqual(xPrev.shape))
            throw new ArgumentException($"x0 must have x_(t−1)'s shape [{string.Join(", ", xPrev.shape)}], got [{string.Join(", ", x0.shape)}]", nameof(x0));
        using var scope = NewDisposeScope();
        return (x0 * AttentionMap(xPrev, xt, timesteps)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The feature maps of levels 0..<paramref name="upTo"/> (level 0: the 1×1 start conv at full resolution; level k: the
    /// k-th down block, resolution ÷ 2^k).
    /// </summary>
    public IReadOnlyList<Tensor> Features(Tensor xPrev, Tensor xt, Tensor timesteps, out Tensor timeEmbedding, int upTo)
    {
        ArgumentNullException.ThrowIfNull(xPrev);
        ArgumentNullException.ThrowIfNull(xt);
        ArgumentNullException.ThrowIfNull(timesteps);
        var o = Options;
        if (xPrev.dim() != 4 || xPrev.size(1) != o.LabelChannels)
            throw new ArgumentException($"x_(t−1) must be [N, {o.LabelChannels}, H, W], got [{string.Join(", ", xPrev.shape)}]", nameof(xPrev));
        if (!xt.shape.SequenceEqual(xPrev.shape))
            throw new ArgumentException($"x_t must have x_(t−1)'s shape [{string.Join(", ", xPrev.shape)}], got [{string.Join(", ", xt.shape)}]", nameof(xt));
        if (timesteps.dim() != 1 || timesteps.size(0) != xPrev.size(0))
            throw new ArgumentException($"timesteps must be [{xPrev.size(0)}], got [{string.Join(", ", timesteps.shape)}]", nameof(timesteps));
        long f = 1L << o.DiscriminatorLevels;
        if (xPrev.size(2) % f != 0 || xPrev.size(3) % f != 0)
            throw new ArgumentException($"the label's height and width ({xPrev.size(2)}×{xPrev.size(3)}) must be divisible by 2^{o.DiscriminatorLevels} = {f} (the discriminator's levels at ImageSize {o.ImageSize})", nameof(xPrev));
        if (upTo < 0 || upTo > _blocks.Count) throw new ArgumentOutOfRangeException(nameof(upTo), upTo, $"levels are 0..{_blocks.Count}");
        timeEmbedding = _tEmbed.call(CdalLayers.SinusoidalEmbedding(timesteps, o.DiscriminatorTimeEmbeddingDim)).leaky_relu(S(0.2));
        var feats = new List<Tensor> { _startConv.call(cat([xPrev, xt], 1)) };
        for (int k = 0; k < upTo; k++) feats.Add(_blocks[k].call(feats[^1], timeEmbedding));
        return feats;
    }
}
