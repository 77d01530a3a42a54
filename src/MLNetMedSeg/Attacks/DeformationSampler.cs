using MLNetMedSeg.Attacks.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Attacks;

/// <summary>One generator pass: I_DV, the fields (null where the variant has none) and the KL per image.</summary>
internal sealed record AttackFields(Tensor Attacked, Tensor? Deformation, Tensor? Intensity, Tensor Kl);

/// <summary>The generator's forward pass shared by training and sampling: encode, sample z, decode, compose (Eq. 1).</summary>
internal static class DeformationSampler
{
    /// <summary>
    /// Encodes <paramref name="images"/>, draws z = μ + σ·ε for each branch with ε from <paramref name="noise"/>
    /// (called with the latent shape, first for z_D then for z_V), decodes D and V and composes I_DV = warp(I₀, D) + V.
    /// </summary>
    public static AttackFields Forward(DeformationGenerator generator, Tensor images, Func<long[], Tensor> noise)
    {
        using var scope = NewDisposeScope();
        var latents = generator.Encode(images);
        var zD = latents.Deformation is { } gd ? gd.Sample(noise(gd.Mu.shape)) : null;
        var zV = latents.Intensity is { } gv ? gv.Sample(noise(gv.Mu.shape)) : null;
        var (d, v) = generator.Decode(zD, zV, latents.Sizes);
        var kl = zeros([images.size(0)], ScalarType.Float32, images.device);
        if (latents.Deformation is { } a) kl = kl.Plus(a.KlDivergence());
        if (latents.Intensity is { } b) kl = kl.Plus(b.KlDivergence());
        var attacked = Compose(images, d, v);
        var fields = new AttackFields(attacked, d, v, kl);
        scope.MoveToOuter([.. new[] { attacked, d, v, kl }.OfType<Tensor>()]);
        return fields;
    }

    /// <summary>I_DV = f_D(I₀, D) + V (Eq. 1); a missing field is left out.</summary>
    public static Tensor Compose(Tensor images, Tensor? deformation, Tensor? intensity)
    {
        using var scope = NewDisposeScope();
        var x = deformation is null ? images.alias() : DeformationWarp.Warp(images, deformation);
        if (intensity is not null) x = x.Plus(intensity);
        return x.MoveToOuterDisposeScope();
    }
}
