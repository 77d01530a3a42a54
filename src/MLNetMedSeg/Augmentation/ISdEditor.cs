using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Augmentation;

/// <summary>
/// A mask-conditioned image diffusion model that can refine images with SDEdit (Meng et al.; DASP Eq. 1): the image is
/// noised to index <c>depth</c> (T^s) of the sampling schedule respaced to <c>respacedSteps</c> steps, then denoised back
/// with T^s + 1 deterministic DDIM (η = 0) steps at indices T^s … 0 conditioned on the mask (Eq. 1; depth in
/// 0..respacedSteps − 1, 0 = no SDEdit). The conditional image diffusion stage implements it;
/// the Diff-PGD augmenter consumes it.
/// </summary>
public interface ISdEditor
{
    /// <summary>Number of image channels the model works on (3 for RGB).</summary>
    int ImageChannels { get; }

    /// <summary>
    /// SDEdit a batch. <paramref name="images"/>: [N,C,H,W] float32 in [0,1]; <paramref name="masks"/>: [N,1,H,W]
    /// float32 in {0,1} (the condition). Returns [N,C,H,W] in [0,1] on the images' device.
    /// With <paramref name="differentiable"/> true the result keeps the autograd graph through the denoiser, so a loss
    /// on it back-propagates to <paramref name="images"/> (Diff-PGD's full-gradient form); with false it is computed
    /// without grad and detached. <paramref name="depth"/> = 0 returns the images unchanged. The forward noise is drawn
    /// from <paramref name="generator"/> (or the global generator when null).
    /// </summary>
    Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, Generator? generator = null);

    /// <summary>
    /// SDEdit a batch with one generator per row (or one for the whole batch): row i's forward noise comes from
    /// <paramref name="generators"/>[i] alone, so a row's result does not depend on the batch it is in. The default
    /// edits row by row; a model that can draw per-row noise in one batch overrides it.
    /// </summary>
    Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, IReadOnlyList<Generator> generators)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(masks);
        ArgumentNullException.ThrowIfNull(generators);
        if (generators.Count == 1) return SdEdit(images, masks, respacedSteps, depth, differentiable, generators[0]);
        long n = images.size(0);
        if (generators.Count != n) throw new ArgumentException($"give one generator, or one per row ({n}); got {generators.Count}", nameof(generators));
        using var scope = torch.NewDisposeScope();
        var rows = new List<Tensor>((int)n);
        for (int i = 0; i < n; i++)
            rows.Add(SdEdit(images.narrow(0, i, 1), masks.narrow(0, i, 1), respacedSteps, depth, differentiable, generators[i]));
        return torch.cat(rows, 0).MoveToOuterDisposeScope();
    }
}
