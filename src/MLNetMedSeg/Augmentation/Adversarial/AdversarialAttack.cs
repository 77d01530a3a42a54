using MLNetMedSeg.Augmentation;
using MLNetMedSeg.Core;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>What one attack of a batch gives.</summary>
/// <param name="Attacked">The attacked images [N,C,H,W] in [0,1]: x̃ᴷ, or for Diff-PGD x̃₀ᴷ = SDEdit(x̃ᴷ).</param>
/// <param name="Perturbed">x̃ᴷ, the perturbed images before the final SDEdit (the same tensor as <paramref name="Attacked"/> for the other methods).</param>
/// <param name="Uncertainty">DASP's W [N,1,H,W] on the clean images, when <see cref="AdversarialAttackOptions.UncertaintyWeighting"/> is on or <see cref="AdversarialAttackOptions.UncertaintyColumn"/> is set (then it is computed for display only).</param>
public sealed record AdversarialAttackResult(Tensor Attacked, Tensor Perturbed, Tensor? Uncertainty);

/// <summary>
/// The attack core: FGSM, Inverse FGSM, PGD and Diff-PGD (with DASP's uncertainty weighting) on a batch, against any
/// differentiable logits function — a fitted segmenter (<see cref="IDifferentiableSegmenter"/>: a U-Net's
/// <see cref="SegmentationTransformer"/> or a cDAL model) or the network being trained.
/// Pixel space is [0,1]; every iterate is clipped to it (and projected onto the ε-ball when one is set). One step:
/// x ← Π(x + s·γ·sign(∇ₓL)) with s = +1 (ascend the loss) or −1 (Inverse FGSM). For Diff-PGD the loss is taken on
/// x_d = SDEdit(x) (<see cref="DiffPgdGradient"/> says how the gradient reaches x) and the result is SDEdit(x̃ᴷ).
/// The gradient comes from <c>torch.autograd.grad</c> (through <see cref="Core.Gradients.Grad"/>) with respect
/// to the images only, so no weight's <c>.grad</c> is touched. Each step runs in its own dispose scope and only the
/// current iterate is kept: memory does not grow with K. Randomness (random start, SDEdit noise) comes from
/// generators seeded from (seed, row key): the same seed and keys give the same result.
/// </summary>
public sealed class AdversarialAttack
{
    /// <param name="options">The attack (copied; validated now).</param>
    /// <param name="sdEditor">The SDEdit model; required by <see cref="AdversarialAttackMethod.DiffPgd"/>.</param>
    public AdversarialAttack(AdversarialAttackOptions options, ISdEditor? sdEditor = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Clone();
        Options.Validate();
        if (Options.NeedsSdEditor && sdEditor is null)
            throw new ArgumentException($"{Options.Method} refines every step with SDEdit and needs an ISdEditor (the conditional image diffusion stage); none was given", nameof(sdEditor));
        SdEditor = sdEditor;
    }

    /// <summary>The options (a validated copy; do not change).</summary>
    public AdversarialAttackOptions Options { get; }

    /// <summary>The SDEdit model (Diff-PGD), or null.</summary>
    public ISdEditor? SdEditor { get; }

    /// <summary>
    /// Attacks a batch with a fitted segmenter — a <see cref="SegmentationTransformer"/>, a cDAL model or any
    /// <see cref="IDifferentiableSegmenter"/>: its network is switched to eval mode for the attack and every module's
    /// previous mode restored afterwards; its weights are not changed. The loss is taken on
    /// <see cref="IDifferentiableSegmenter.Logits"/> (a U-Net's logits without test-time augmentation; for cDAL the
    /// averaged prediction of Algorithm 2 unrolled with autograd, its noise seeded by each iterate's content, see
    /// <c>CdalTransformer.Logits</c>). Images and masks are moved to the segmenter's device; the results are on it.
    /// </summary>
    public AdversarialAttackResult Run(IDifferentiableSegmenter segmenter, Tensor images, Tensor masks, ulong seed,
        IReadOnlyList<long>? rowKeys = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(segmenter);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(masks);
        var device = segmenter.Device;
        using var scope = NewDisposeScope();
        var x = images.device == device ? images : images.to(device);
        var y = masks.device == device ? masks : masks.to(device);
        using var mode = ModuleModeScope.Eval(segmenter.Network);
        var r = Run(t => segmenter.Logits(t), x, y, seed, rowKeys, cancellationToken);
        return Keep(r);
    }

    /// <summary>
    /// Attacks a batch. <paramref name="logits"/> maps images [N,C,H,W] to logits [N,K,H,W] differentiably (K = 1: binary
    /// head, <paramref name="masks"/> float [N,1,H,W] {0,1}; K ≥ 2: multi-class head, masks int64 [N,H,W]); the caller
    /// puts its network in the mode it wants attacked (eval for a fitted model). <paramref name="rowKeys"/> (default
    /// 0..N−1) seed each row's random start and SDEdit noise: a row's result does not depend on the batch it is in. The results
    /// join the caller's dispose scope.
    /// </summary>
    public AdversarialAttackResult Run(Func<Tensor, Tensor> logits, Tensor images, Tensor masks, ulong seed,
        IReadOnlyList<long>? rowKeys = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(logits);
        var keys = CheckBatch(images, masks, rowKeys);
        var o = Options;
        using var outer = NewDisposeScope();
        using var grad = enable_grad();
        var x0 = images.detach();
        var condition = o.NeedsSdEditor ? SdEditCondition(masks) : null;
        Tensor? w = null;
        if (o.UncertaintyWeighting || o.UncertaintyColumn is not null)
            using (no_grad())
                w = AdversarialLoss.UncertaintyMap(logits(x0), o.UncertaintyVariance);
        var lossWeights = o.UncertaintyWeighting ? w : null;
        // SDEdit's noise: one generator per row, so that a row's result does not depend on its batch.
        using var sdGens = new GeneratorList(o.NeedsSdEditor ? keys.Select(k => new Generator(RowSeed(seed, "sdedit", k))) : []);
        var sdGen = sdGens.Items;
        double step = (o.Method == AdversarialAttackMethod.InverseFgsm ? -1 : 1) * o.EffectiveStepSize;
        var adv = (o.RandomStart ? RandomStart(x0, seed, keys) : x0.clone()).DetachFromDisposeScope();
        try
        {
            for (int k = 0; k < o.EffectiveSteps; k++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var stepScope = NewDisposeScope();
                var g = Gradient(logits, adv, masks, condition, lossWeights, sdGen);
                var next = Project(adv.Plus(g.sign().mul(S(step))), x0).DetachFromDisposeScope();
                adv.Dispose();
                adv = next;
            }
        }
        catch
        {
            adv.Dispose();
            throw;
        }
        outer.Attach(adv);
        Tensor attacked = adv;
        if (o.NeedsSdEditor)
            using (no_grad())
                attacked = SdEditor!.SdEdit(adv, condition!, o.SdEditRespacing, o.SdEditDepth, differentiable: false, sdGen).detach().clamp(S(0), S(1));
        return Keep(new AdversarialAttackResult(attacked, adv, w));
    }

    /// <summary>Generators disposed together.</summary>
    private sealed class GeneratorList(IEnumerable<Generator> generators) : IDisposable
    {
        public List<Generator> Items { get; } = generators.ToList();

        public void Dispose()
        {
            foreach (var g in Items) g.Dispose();
        }
    }

    /// <summary>Moves a result's tensors to the scope outside the caller's current one.</summary>
    private static AdversarialAttackResult Keep(AdversarialAttackResult r)
    {
        r.Attacked.MoveToOuterDisposeScope();
        if (!ReferenceEquals(r.Perturbed, r.Attacked)) r.Perturbed.MoveToOuterDisposeScope();
        r.Uncertainty?.MoveToOuterDisposeScope();
        return r;
    }

    /// <summary>∇ of the summed per-image attack loss with respect to the iterate (Diff-PGD detached form: to x_d).</summary>
    private Tensor Gradient(Func<Tensor, Tensor> logits, Tensor adv, Tensor masks, Tensor? condition, Tensor? w, IReadOnlyList<Generator> sdGen)
    {
        var o = Options;
        Tensor input, attackedInput;
        if (!o.NeedsSdEditor)
        {
            input = adv.detach().requires_grad_();
            attackedInput = input;
        }
        else if (o.Gradient == DiffPgdGradient.Full)
        {
            input = adv.detach().requires_grad_();
            attackedInput = SdEditor!.SdEdit(input, condition!, o.SdEditRespacing, o.SdEditDepth, differentiable: true, sdGen);
        }
        else
        {
            Tensor xd;
            using (no_grad()) xd = SdEditor!.SdEdit(adv, condition!, o.SdEditRespacing, o.SdEditDepth, differentiable: false, sdGen);
            input = xd.detach().requires_grad_();
            attackedInput = input;
        }
        var loss = AdversarialLoss.PerImage(logits(attackedInput), masks, w, o.ForegroundOnly).sum();
        var g = Gradients.Grad(loss, [input], allowUnused: true, what: "adversarial attack gradient")[0];
        return g ?? zeros_like(adv);
    }

    /// <summary>Clip to [0,1] and, with an ε, to the L∞ ball around the clean image.</summary>
    private Tensor Project(Tensor x, Tensor x0)
    {
        if (Options.Epsilon is double eps && Options.Method is AdversarialAttackMethod.Pgd or AdversarialAttackMethod.DiffPgd)
            x = x.clamp(x0.sub(S(eps)), x0.Plus(S(eps)));
        return x.clamp(S(0), S(1));
    }

    /// <summary>x⁰ = Π(x + U(−r, r)), r = ε (or γ without a ball), each row from its own generator.</summary>
    private Tensor RandomStart(Tensor x0, ulong seed, long[] keys)
    {
        double r = Options.Epsilon ?? Options.StepSize;
        var rowShape = x0.shape[1..];
        var noise = new Tensor[keys.Length];
        for (int i = 0; i < keys.Length; i++)
        {
            using var g = new Generator(RowSeed(seed, "start", keys[i]));
            noise[i] = SeededRandom.Rand(rowShape, x0.dtype, x0.device, g).mul(S(2 * r)).sub(S(r));
        }
        return Project(x0.Plus(stack(noise, 0)), x0);
    }

    /// <summary>The seed of one row's (or batch's) draws: a hash of (seed, purpose, key).</summary>
    internal static ulong RowSeed(ulong seed, string purpose, long key) =>
        MedSegContext.MixSeed(seed, purpose + ":" + key.ToString(System.Globalization.CultureInfo.InvariantCulture), 0);

    /// <summary>The SDEdit condition of a batch of masks: float [N,1,H,W] in {0,1} (a class mask: class ≠ 0).</summary>
    public static Tensor SdEditCondition(Tensor masks)
    {
        ArgumentNullException.ThrowIfNull(masks);
        return masks.dtype == ScalarType.Int64 ? masks.ne(S(0)).to(ScalarType.Float32).unsqueeze(1) : masks.to(ScalarType.Float32);
    }

    private static long[] CheckBatch(Tensor images, Tensor masks, IReadOnlyList<long>? rowKeys)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(masks);
        if (images.dim() != 4) throw new ArgumentException($"images must be [N,C,H,W], got [{string.Join(",", images.shape)}]", nameof(images));
        if (!is_floating_point(images.dtype)) throw new ArgumentException($"images must be floating point in [0,1], got {images.dtype}", nameof(images));
        long n = images.size(0);
        bool binary = masks.dtype != ScalarType.Int64;
        bool ok = binary
            ? masks.dim() == 4 && masks.size(0) == n && masks.size(1) == 1 && masks.size(2) == images.size(2) && masks.size(3) == images.size(3)
            : masks.dim() == 3 && masks.size(0) == n && masks.size(1) == images.size(2) && masks.size(2) == images.size(3);
        if (!ok)
            throw new ArgumentException($"masks must be float [N,1,H,W] or int64 [N,H,W] matching the images [{string.Join(",", images.shape)}], got {masks.dtype} [{string.Join(",", masks.shape)}]", nameof(masks));
        if (rowKeys is not null && rowKeys.Count != n) throw new ArgumentException($"{rowKeys.Count} row keys for a batch of {n} images", nameof(rowKeys));
        return rowKeys?.ToArray() ?? Enumerable.Range(0, (int)n).Select(i => (long)i).ToArray();
    }
}

/// <summary>
/// Puts a module tree in eval (or train) mode and, when disposed, restores every module's previous mode (so a
/// network being trained, or one with deliberately frozen parts, comes back exactly as it was).
/// </summary>
public sealed class ModuleModeScope : IDisposable
{
    private readonly (nn.Module Module, bool Training)[] _saved;

    private ModuleModeScope(nn.Module root, bool training)
    {
        _saved = root.PreOrder().Select(e => (e.Module, e.Module.training)).ToArray();
        root.train(training);
    }

    /// <summary>Switches <paramref name="root"/> and its descendants to eval mode until disposed.</summary>
    public static ModuleModeScope Eval(nn.Module root)
    {
        ArgumentNullException.ThrowIfNull(root);
        return new ModuleModeScope(root, false);
    }

    /// <summary>Restores each module's mode (pre-order, so every module ends in its own saved mode).</summary>
    public void Dispose()
    {
        foreach (var (m, t) in _saved)
            if (m.training != t) m.train(t);
    }
}
