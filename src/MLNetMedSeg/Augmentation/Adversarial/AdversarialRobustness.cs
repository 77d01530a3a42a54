using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Augmentation.Adversarial;

/// <summary>A segmenter's scores on data perturbed with one attack strength.</summary>
/// <param name="Epsilon">The FGSM ε in [0,1] pixel units (0: the clean data).</param>
/// <param name="MeanIoU">Per-image mIoU on the perturbed data.</param>
/// <param name="MeanDice">Per-image mDice on the perturbed data.</param>
public sealed record RobustnessPoint(double Epsilon, double MeanIoU, double MeanDice);

/// <summary>
/// Robustness under perturbation as paper 001's Table 2: the segmenter is attacked with FGSM (x′ = clip(x + ε·sign(∇ₓL)),
/// its own loss on the true mask) at each ε and scored on the perturbed images against the unchanged masks.
/// </summary>
public static class AdversarialRobustness
{
    /// <summary>Paper 001's strengths: ε ∈ {0, 0.05, 0.1, 0.15, 0.2}.</summary>
    public static IReadOnlyList<double> PaperEpsilons { get; } = [0, 0.05, 0.1, 0.15, 0.2];

    /// <summary>
    /// Scores <paramref name="segmenter"/> (binary: a U-Net's <see cref="SegmentationTransformer"/>, a cDAL model, any
    /// <see cref="IDifferentiableSegmenter"/>) on <paramref name="data"/> (image and mask columns) attacked with FGSM
    /// at each of <paramref name="epsilons"/>, in batches of <paramref name="batchSize"/>.
    /// </summary>
    public static IReadOnlyList<RobustnessPoint> UnderFgsm(IDifferentiableSegmenter segmenter, Microsoft.ML.IDataView data, IReadOnlyList<double> epsilons,
        string imageColumn = "Image", string maskColumn = "Mask", int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        return UnderFgsm(segmenter, Core.MLNet.MLNetData.AsLibraryView(data), epsilons, imageColumn, maskColumn, batchSize, cancellationToken);
    }

    internal static IReadOnlyList<RobustnessPoint> UnderFgsm(IDifferentiableSegmenter segmenter, IDataView data, IReadOnlyList<double> epsilons,
        string imageColumn = "Image", string maskColumn = "Mask", int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(segmenter);
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(epsilons);
        if (!segmenter.IsBinary) throw new ArgumentException("robustness under FGSM is scored for binary segmenters", nameof(segmenter));
        foreach (var e in epsilons)
            if (!(e >= 0 && e <= 1)) throw new ArgumentOutOfRangeException(nameof(epsilons), e, "every ε must be in [0, 1]");
        var evaluators = epsilons.Select(_ => SegmentationEvaluator.Binary(new EvaluationOptions { ComputeHd95 = false })).ToArray();
        var attacks = epsilons.Select(e => e > 0 ? new AdversarialAttack(AdversarialAttackOptions.FgsmPreset(e)) : null).ToArray();
        var device = segmenter.Device;
        foreach (var batch in data.GetBatches([imageColumn, maskColumn], batchSize, null, device, cancellationToken: cancellationToken))
        {
            using var scope = torch.NewDisposeScope();
            var x = batch[imageColumn];
            var y = batch[maskColumn];
            for (int i = 0; i < attacks.Length; i++)
            {
                var xi = attacks[i] is { } a ? a.Run(segmenter, x, y, 0, cancellationToken: cancellationToken).Attacked : x;
                evaluators[i].Add(segmenter.PredictProbabilities(xi), y);
            }
        }
        return epsilons.Select((e, i) =>
        {
            var r = evaluators[i].GetResult();
            return new RobustnessPoint(e, r.MeanIoU, r.MeanDice);
        }).ToList();
    }
}
