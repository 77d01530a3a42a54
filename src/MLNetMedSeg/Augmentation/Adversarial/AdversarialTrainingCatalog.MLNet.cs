using MLNetMedSeg;
using MLNetMedSeg.Augmentation.Adversarial;

namespace Microsoft.ML;

/// <summary>Adversarial training in a chain (<c>ml.MedSeg().Augmentation.AdversarialTraining</c>).</summary>
public static class AdversarialTrainingCatalogExtensions
{
    /// <summary>
    /// DASP's adversarial training (paper 000, §3.3–3.4) as a chain stage between the generators and the segmentation
    /// trainer: the trainer attacks the generated pairs against the segmenter it is training every
    /// <paramref name="everyEpochs"/> epochs — by default Diff-PGD with W (Eq. 9–10: K = 10 steps of γ = 1/255, W =
    /// exp(−z²/8), SDEdit depth 3 through the image diffusion upstream) — and trains on real + attacked rows (Eq. 11).
    /// </summary>
    /// <param name="catalog">The augmentation catalog.</param>
    /// <param name="attack">The attack (default <see cref="AdversarialAttackOptions.Dasp"/>).</param>
    /// <param name="everyEpochs">Re-attack every n epochs (default 1).</param>
    /// <param name="copies">Attacked copies of each generated pair per attack round (default 1).</param>
    public static AdversarialTrainingEstimator AdversarialTraining(this MedSegAugmentationCatalog catalog,
        AdversarialAttackOptions? attack = null, int everyEpochs = 1, int copies = 1)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new AdversarialTrainingEstimator(new OnlineAdversarialOptions
        {
            Attack = attack ?? AdversarialAttackOptions.Dasp(), EveryEpochs = everyEpochs, Copies = copies,
        });
    }
}
