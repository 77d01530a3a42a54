using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Attacks;

/// <summary>The terms of the generator loss of one batch (Eq. 6), each a scalar tensor.</summary>
/// <param name="Total">The weighted sum that is minimised.</param>
/// <param name="Adversarial">The adversarial weight times L_adv^gen = mean f_disc(I₀) − mean f_disc(I_DV) (Eq. 3).</param>
/// <param name="Target">(ξ − f_xent^M(S₀, S_DV))², averaged over the batch (Eq. 4).</param>
/// <param name="CrossEntropy">f_xent^M(S₀, S_DV), averaged over the batch (Eq. 5), for reporting.</param>
/// <param name="Deformation">λ_D‖D‖² (Eq. 2), zero without D.</param>
/// <param name="Intensity">λ_V‖V‖² (Eq. 2), zero without V.</param>
/// <param name="Kl">The KL weight times KL(q(z_D)‖N(0,1)) + KL(q(z_V)‖N(0,1)).</param>
public sealed record GeneratorLossTerms(Tensor Total, Tensor Adversarial, Tensor Target, Tensor CrossEntropy, Tensor Deformation, Tensor Intensity, Tensor Kl);

/// <summary>
/// The losses of paper 002 (§3.2). Reductions, which the paper leaves open, are chosen so that the weights do not
/// depend on the image size: ‖D‖² and ‖V‖² are means over the field's elements (per image, then over the batch);
/// f_xent^M is the cross-entropy averaged over the mask M (Σ M·CE / Σ M per image), so ξ is a cross-entropy in nats
/// per organ pixel; the KL terms are means over the latent elements.
/// </summary>
public static class DeformationAttackLosses
{
    private const double MaskEpsilon = 1e-6;

    /// <summary>
    /// Class probabilities [N, K, H, W] of segmentation logits, K = C + 1 with background at 0: softmax for a
    /// multi-class head, [1 − σ(l), σ(l)] for a binary head (one logit channel).
    /// </summary>
    public static Tensor Probabilities(Tensor logits) => LogProbabilities(logits).exp();

    /// <summary>Log class probabilities [N, K, H, W] of segmentation logits (see <see cref="Probabilities"/>), computed stably.</summary>
    public static Tensor LogProbabilities(Tensor logits)
    {
        ArgumentNullException.ThrowIfNull(logits);
        if (logits.dim() != 4) throw new ArgumentException($"logits must be [N,K,H,W], got [{string.Join(",", logits.shape)}]", nameof(logits));
        if (logits.size(1) > 1) return logits.log_softmax(1);
        using var scope = NewDisposeScope();
        // log σ(l) = −softplus(−l), log(1 − σ(l)) = −softplus(l)
        return cat([Softplus(logits).neg(), Softplus(logits.neg()).neg()], 1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// f_xent^M(S₀, S_DV) of Eq. 5 per image [N]: −Σ_p M(p) Σ_c S₀(c, p) log S_DV(c, p) / Σ_p M(p), with the organ mask
    /// M = Σ_{c≥1} S₀(c) (soft, from the fixed segmenter's probabilities on I₀). An image whose M is empty scores 0.
    /// </summary>
    /// <param name="s0">S₀, probabilities [N, K, H, W] (background at 0).</param>
    /// <param name="logSdv">log S_DV, [N, K, H, W].</param>
    public static Tensor MaskedCrossEntropy(Tensor s0, Tensor logSdv)
    {
        ArgumentNullException.ThrowIfNull(s0);
        ArgumentNullException.ThrowIfNull(logSdv);
        if (s0.dim() != 4 || !s0.shape.SequenceEqual(logSdv.shape) || s0.size(1) < 2)
            throw new ArgumentException($"S₀ and log S_DV must both be [N,K,H,W] with K ≥ 2, got [{string.Join(",", s0.shape)}] and [{string.Join(",", logSdv.shape)}]");
        using var scope = NewDisposeScope();
        var mask = s0.narrow(1, 1, s0.size(1) - 1).sum([1]);
        var ce = s0.mul(logSdv).sum([1]).neg();
        var num = mask.mul(ce).sum([1, 2]);
        var den = mask.sum([1, 2]);
        return num.div(den.clamp(S(MaskEpsilon))).MoveToOuterDisposeScope();
    }

    /// <summary>The target term of Eq. 4, (ξ − f)², averaged over the batch.</summary>
    public static Tensor TargetLoss(Tensor crossEntropy, double xi)
    {
        ArgumentNullException.ThrowIfNull(crossEntropy);
        using var scope = NewDisposeScope();
        return crossEntropy.neg().Plus(S(xi)).pow(S(2)).mean().MoveToOuterDisposeScope();
    }

    /// <summary>‖F‖² per image [N]: the mean of the squared elements of a field [N, ...] (Eq. 2 before the weight).</summary>
    public static Tensor SquaredNorm(Tensor field)
    {
        ArgumentNullException.ThrowIfNull(field);
        using var scope = NewDisposeScope();
        return field.pow(S(2)).flatten(1).mean([1]).MoveToOuterDisposeScope();
    }

    /// <summary>KL(N(μ, exp(logσ²)) ‖ N(0, 1)) per image [N]: −½ mean(1 + logσ² − μ² − σ²) over the latent elements.</summary>
    public static Tensor KlDivergence(Tensor mu, Tensor logVar) => Networks.LatentGaussian.KlDivergence(mu, logVar);

    /// <summary>The critic's WGAN loss of Eq. 3: mean f_disc(I_DV) − mean f_disc(I₀).</summary>
    public static Tensor CriticLoss(Tensor realScores, Tensor fakeScores)
    {
        using var scope = NewDisposeScope();
        return fakeScores.mean().sub(realScores.mean()).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// WGAN-GP's gradient penalty (Gulrajani et al. 2017, Eq. 3): mean over the batch of (‖∇_x̂ f(x̂)‖₂ − 1)² at
    /// x̂ = ε·real + (1 − ε)·fake, ε [N] in [0, 1] per image. The graph is kept (create_graph) so that the penalty
    /// trains the critic.
    /// </summary>
    /// <param name="critic">The critic: images [N, ...] → scores [N].</param>
    /// <param name="real">Real images I₀.</param>
    /// <param name="fake">Generated images I_DV (detached from the generator).</param>
    /// <param name="epsilon">Mixing weights [N].</param>
    public static Tensor GradientPenalty(Func<Tensor, Tensor> critic, Tensor real, Tensor fake, Tensor epsilon)
    {
        ArgumentNullException.ThrowIfNull(critic);
        ArgumentNullException.ThrowIfNull(real);
        ArgumentNullException.ThrowIfNull(fake);
        ArgumentNullException.ThrowIfNull(epsilon);
        using var scope = NewDisposeScope();
        var shape = new long[real.dim()];
        Array.Fill(shape, 1L);
        shape[0] = real.size(0);
        var e = epsilon.to(real.dtype).view(shape);
        var mixed = real.detach().mul(e).Plus(fake.detach().mul(e.neg().Plus(S(1.0)))).requires_grad_(true);
        var scores = critic(mixed);
        var grad = Gradients.Grad(scores.sum(), [mixed], retainGraph: true, createGraph: true, what: "WGAN-GP gradient penalty")[0];
        return grad.flatten(1).norm(1).sub(S(1.0)).pow(S(2)).mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The generator loss of Eq. 6 plus the KL terms: L_adv^gen + (ξ − f_xent^M(S₀, S_DV))² + λ_D‖D‖² + λ_V‖V‖²
    /// + β(KL_D + KL_V), each averaged over the batch.
    /// </summary>
    /// <param name="realScores">f_disc(I₀) [N].</param>
    /// <param name="fakeScores">f_disc(I_DV) [N].</param>
    /// <param name="s0">S₀ probabilities [N, K, H, W].</param>
    /// <param name="logSdv">log S_DV [N, K, H, W].</param>
    /// <param name="deformation">D [N, 2, H, W], or null.</param>
    /// <param name="intensity">V [N, C, H, W], or null.</param>
    /// <param name="kl">KL_D + KL_V per image [N], or null.</param>
    /// <param name="options">ξ, λ_D, λ_V, β.</param>
    public static GeneratorLossTerms GeneratorLoss(Tensor realScores, Tensor fakeScores, Tensor s0, Tensor logSdv,
        Tensor? deformation, Tensor? intensity, Tensor? kl, DeformationAttackOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var scope = NewDisposeScope();
        var device = fakeScores.device;
        Tensor Zero() => zeros([], ScalarType.Float32, device);
        var adv = realScores.mean().sub(fakeScores.mean()).mul(S(options.AdversarialWeight));
        var ce = MaskedCrossEntropy(s0, logSdv);
        var target = TargetLoss(ce, options.Xi);
        var ld = deformation is null ? Zero() : SquaredNorm(deformation).mean().mul(S(options.DeformationWeight));
        var lv = intensity is null ? Zero() : SquaredNorm(intensity).mean().mul(S(options.IntensityWeight));
        var lk = kl is null ? Zero() : kl.mean().mul(S(options.KlWeight));
        var total = adv.Plus(target).Plus(ld).Plus(lv).Plus(lk);
        var terms = new GeneratorLossTerms(total, adv, target, ce.mean(), ld, lv, lk);
        scope.MoveToOuter(terms.Total, terms.Adversarial, terms.Target, terms.CrossEntropy, terms.Deformation, terms.Intensity, terms.Kl);
        return terms;
    }
}
