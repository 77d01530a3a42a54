using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Attacks.Networks;

/// <summary>Which fields the generator produces (Table 1 of paper 002: I_DV, and the I_D / I_V ablations).</summary>
public enum DeformationAttackVariant
{
    /// <summary>Deformation D and intensity variation V: I_DV = warp(I₀, D) + V (Eq. 1). Default.</summary>
    DeformationAndIntensity,

    /// <summary>Deformation only: I_D = warp(I₀, D) (Table 1, "I_D on U-Net").</summary>
    DeformationOnly,

    /// <summary>Intensity variation only: I_V = I₀ + V (Table 1, "I_V on U-Net").</summary>
    IntensityOnly,
}

/// <summary>The architecture of <see cref="DeformationGenerator"/> (and of the critic's widths).</summary>
public sealed class DeformationGeneratorOptions
{
    /// <summary>Image channels C of I₀ and of V (default 3).</summary>
    public long InChannels { get; set; } = 3;

    /// <summary>
    /// Widths of the encoder levels (each a stride-2 3×3 conv + BatchNorm + LeakyReLU 0.2); the decoders mirror them.
    /// Default [16, 32, 64]: small, for the CPU (the paper does not give its widths).
    /// </summary>
    public long[] Widths { get; set; } = [16, 32, 64];

    /// <summary>Channels of each latent map z_D and z_V (at 1/2^levels of the image size; default 8).</summary>
    public long LatentChannels { get; set; } = 8;

    /// <summary>Which decoders exist (default both).</summary>
    public DeformationAttackVariant Variant { get; set; } = DeformationAttackVariant.DeformationAndIntensity;

    /// <summary>A copy.</summary>
    public DeformationGeneratorOptions Clone()
    {
        var c = (DeformationGeneratorOptions)MemberwiseClone();
        c.Widths = Widths.ToArray();
        return c;
    }

    /// <summary>Checks every option; throws <see cref="ArgumentException"/> naming the offending one.</summary>
    public void Validate()
    {
        if (InChannels < 1) throw new ArgumentException($"InChannels must be ≥ 1, got {InChannels}", nameof(InChannels));
        if (Widths is null || Widths.Length == 0 || Widths.Any(w => w < 1))
            throw new ArgumentException("Widths must hold at least one positive width", nameof(Widths));
        if (LatentChannels < 1) throw new ArgumentException($"LatentChannels must be ≥ 1, got {LatentChannels}", nameof(LatentChannels));
        if (!Enum.IsDefined(Variant)) throw new ArgumentException($"unknown Variant {Variant}", nameof(Variant));
    }
}

/// <summary>A diagonal Gaussian N(μ, exp(logσ²)) over a latent map [N, Z, h, w].</summary>
/// <param name="Mu">Means.</param>
/// <param name="LogVar">Log-variances (clamped to [−10, 10]).</param>
public sealed record LatentGaussian(Tensor Mu, Tensor LogVar)
{
    /// <summary>The reparameterised sample μ + σ·ε for standard normal <paramref name="eps"/> of μ's shape.</summary>
    public Tensor Sample(Tensor eps) => Mu.Plus(LogVar.mul(S(0.5)).exp().mul(eps));

    /// <summary>KL(N(μ, σ²) ‖ N(0, 1)) per image [N], averaged over the latent elements.</summary>
    public Tensor KlDivergence() => KlDivergence(Mu, LogVar);

    /// <summary>KL(N(μ, σ²) ‖ N(0, I)) per sample, averaged over the latent elements: −½·mean(1 + log σ² − μ² − σ²); [N].</summary>
    public static Tensor KlDivergence(Tensor mu, Tensor logVar)
    {
        ArgumentNullException.ThrowIfNull(mu);
        ArgumentNullException.ThrowIfNull(logVar);
        using var scope = NewDisposeScope();
        return logVar.Plus(S(1.0)).sub(mu.pow(S(2))).sub(logVar.exp()).flatten(1).mean([1]).mul(S(-0.5)).MoveToOuterDisposeScope();
    }
}

/// <summary>The encoder's output for a batch: one Gaussian per branch (null for a branch the variant lacks).</summary>
/// <param name="Deformation">q(z_D | I₀).</param>
/// <param name="Intensity">q(z_V | I₀).</param>
/// <param name="Sizes">The spatial sizes of the encoder's inputs, largest first (the decoders return to them).</param>
public sealed record DeformationLatents(LatentGaussian? Deformation, LatentGaussian? Intensity, IReadOnlyList<(long H, long W)> Sizes);

/// <summary>
/// The generator of paper 002 (§3.1, Fig. 1), a two-branch VAE-like image-to-image CNN: a shared encoder
/// (stride-2 3×3 conv + BatchNorm + LeakyReLU 0.2 per level) maps I₀ to feature maps, 1×1 convs give the
/// Gaussians z_D ~ N(μ_D, σ_D²) and z_V ~ N(μ_V, σ_V²) (spatial latent maps), and two decoders of the same
/// architecture with separate weights (bilinear ×2 up-sampling + 3×3 conv + BatchNorm + LeakyReLU 0.2 per level,
/// then a 3×3 conv) give the dense deformation D (2 channels: x and y displacements in pixels) and the intensity
/// variation V (C channels). The last conv of each decoder starts at zero, so an untrained generator is the identity
/// attack (D = 0, V = 0). State-dict keys: encoder.*, mu_d.*, logvar_d.*, mu_v.*, logvar_v.*, decoder_d.*, decoder_v.*.
/// </summary>
public sealed class DeformationGenerator : MedSegModule
{
    private const double Slope = 0.2;
    private readonly ModuleList<Sequential> _encoder = new();
    private readonly nn.Module<Tensor, Tensor>? _muD, _logVarD, _muV, _logVarV;
    private readonly FieldDecoder? _decoderD, _decoderV;
    private readonly DeformationGeneratorOptions _options;

    /// <summary>Builds the network; initial weights from <paramref name="generator"/> when given (see <see cref="SeededInit"/>), else from torch's global generator.</summary>
    public DeformationGenerator(DeformationGeneratorOptions options, Generator? generator = null) : base(nameof(DeformationGenerator))
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options.Clone();
        using var initScope = NewDisposeScope();   // temporaries of TorchSharp's layer initialisation are released now
        long prev = options.InChannels;
        foreach (var w in options.Widths)
        {
            _encoder.append(nn.Sequential(nn.Conv2d(prev, w, 3, stride: 2, padding: 1, bias: false), Layers.BatchNorm2d(w), LeakyReLUModule(Slope)));
            prev = w;
        }
        RegisterModule("encoder", _encoder);
        long z = options.LatentChannels;
        if (HasDeformation)
        {
            _muD = RegisterModule("mu_d", nn.Conv2d(prev, z, 1));
            _logVarD = RegisterModule("logvar_d", nn.Conv2d(prev, z, 1));
            _decoderD = RegisterModule("decoder_d", new FieldDecoder(z, options.Widths, 2));
        }
        if (HasIntensity)
        {
            _muV = RegisterModule("mu_v", nn.Conv2d(prev, z, 1));
            _logVarV = RegisterModule("logvar_v", nn.Conv2d(prev, z, 1));
            _decoderV = RegisterModule("decoder_v", new FieldDecoder(z, options.Widths, options.InChannels));
        }
        if (generator is not null) SeededInit.Apply(this, generator);
    }

    /// <summary>A copy of the options.</summary>
    public DeformationGeneratorOptions Options => _options.Clone();

    /// <summary>True when the network produces D.</summary>
    public bool HasDeformation => _options.Variant != DeformationAttackVariant.IntensityOnly;

    /// <summary>True when the network produces V.</summary>
    public bool HasIntensity => _options.Variant != DeformationAttackVariant.DeformationOnly;

    /// <summary>The latent Gaussians of a batch of images [N, C, H, W].</summary>
    public DeformationLatents Encode(Tensor images)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.dim() != 4 || images.size(1) != _options.InChannels)
            throw new ArgumentException($"images must be [N,{_options.InChannels},H,W], got [{string.Join(",", images.shape)}]", nameof(images));
        using var scope = NewDisposeScope();
        var sizes = new List<(long, long)>();
        var x = images;
        foreach (var level in _encoder)
        {
            sizes.Add((x.size(2), x.size(3)));
            x = level.call(x);
        }
        LatentGaussian? Head(nn.Module<Tensor, Tensor>? mu, nn.Module<Tensor, Tensor>? logVar) => mu is null ? null
            : new LatentGaussian(mu.call(x).MoveToOuterDisposeScope(), logVar!.call(x).clamp(S(-10), S(10)).MoveToOuterDisposeScope());
        return new DeformationLatents(Head(_muD, _logVarD), Head(_muV, _logVarV), sizes);
    }

    /// <summary>
    /// The fields from latent samples: D [N, 2, H, W] (pixels; channel 0 = x, 1 = y) and V [N, C, H, W]; a field the
    /// variant lacks is null (and its latent must be null).
    /// </summary>
    public (Tensor? Deformation, Tensor? Intensity) Decode(Tensor? zD, Tensor? zV, IReadOnlyList<(long H, long W)> sizes)
    {
        ArgumentNullException.ThrowIfNull(sizes);
        if ((zD is null) == HasDeformation || (zV is null) == HasIntensity)
            throw new ArgumentException($"the {_options.Variant} generator needs {(HasDeformation ? "z_D" : "no z_D")} and {(HasIntensity ? "z_V" : "no z_V")}");
        return (zD is null ? null : _decoderD!.Decode(zD, sizes), zV is null ? null : _decoderV!.Decode(zV, sizes));
    }

    /// <summary>
    /// One decoder: per level (deepest first) bilinear up-sampling to the size the encoder saw there, 3×3 conv +
    /// BatchNorm + LeakyReLU 0.2; then a zero-initialised 3×3 conv to the field's channels.
    /// </summary>
    private sealed class FieldDecoder : MedSegModule, ISeededInit
    {
        private readonly ModuleList<Sequential> _levels = new();
        private readonly TorchSharp.Modules.Conv2d _out;

        public FieldDecoder(long latent, long[] widths, long outChannels) : base(nameof(FieldDecoder))
        {
            long prev = latent;
            for (int i = widths.Length - 1; i >= 0; i--)
            {
                _levels.append(nn.Sequential(nn.Conv2d(prev, widths[i], 3, padding: 1, bias: false), Layers.BatchNorm2d(widths[i]), LeakyReLUModule(Slope)));
                prev = widths[i];
            }
            RegisterModule("levels", _levels);
            _out = RegisterModule("out", nn.Conv2d(prev, outChannels, 3, padding: 1));
            ZeroOutput();
        }

        /// <summary>The output conv starts at zero: the attack starts from the identity deformation and no intensity change.</summary>
        public void ResetParameters(Generator generator) => ZeroOutput();

        private void ZeroOutput()
        {
            using (no_grad())
            {
                _out.weight.fill_(S(0));
                _out.bias!.fill_(S(0));
            }
        }

        public Tensor Decode(Tensor z, IReadOnlyList<(long H, long W)> sizes)
        {
            if (sizes.Count != _levels.Count) throw new ArgumentException($"expected {_levels.Count} sizes, got {sizes.Count}", nameof(sizes));
            using var scope = NewDisposeScope();
            var x = z;
            for (int i = 0; i < _levels.Count; i++)
            {
                var (h, w) = sizes[sizes.Count - 1 - i];
                x = nn.functional.interpolate(x, [h, w], mode: InterpolationMode.Bilinear, align_corners: false);
                x = _levels[i].call(x);
            }
            return _out.call(x).MoveToOuterDisposeScope();
        }
    }
}
