using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Augmentation.Adversarial;

[TestClass]
public sealed class AdversarialRobustnessTests
{
    [TestMethod]
    public void UnderFgsm_EpsilonZeroIsTheCleanScore_AndStrongerAttacksHurt()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 4);
        var segmenter = AdversarialTestKit.TrainedSegmenter();
        using var data = AdversarialTestKit.Discs(8, 77);
        var points = AdversarialRobustness.UnderFgsm(segmenter, data, AdversarialRobustness.PaperEpsilons, batchSize: 3);
        CollectionAssert.AreEqual(new[] { 0, 0.05, 0.1, 0.15, 0.2 }, points.Select(p => p.Epsilon).ToArray());
        var clean = DataViewEvaluation.EvaluateBinary(ctx, segmenter.Transform(data));
        Assert.AreEqual(clean.MeanDice, points[0].MeanDice, 1e-12);
        Assert.AreEqual(clean.MeanIoU, points[0].MeanIoU, 1e-12);
        Assert.IsTrue(points[^1].MeanDice < points[0].MeanDice - 0.05, $"FGSM ε = 0.2 should lower Dice clearly: {points[0].MeanDice:F3} → {points[^1].MeanDice:F3}");
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => AdversarialRobustness.UnderFgsm(segmenter, data, [1.5]));
    }
}
