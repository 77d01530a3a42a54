using MLNetMedSeg.Attacks;
using MLNetMedSeg.Attacks.Networks;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation.Cdal;
using MLNetMedSeg.Tests.Augmentation.Adversarial;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Attacks;

/// <summary>The deformation attacker (paper 002) trained against a cDAL segmenter through its unrolled, seeded sampler.</summary>
[TestClass]
public sealed class CdalDeformationAttackTests
{
    [TestMethod]
    public void Fit_AgainstACdalModel_LossFalls_DiceDrops_AndTheModelIsUnchanged()
    {
        using var scope = NewDisposeScope();
        var cdal = CdalAttackKit.Trained;
        var before = CdalAttackKit.Weights(cdal.Network);
        using var data = AdversarialTestKit.Discs(8, 47);
        var o = new DeformationAttackOptions
        {
            Generator = new DeformationGeneratorOptions { InChannels = 3, Widths = [4, 8], LatentChannels = 2 },
            CriticWidths = [4], Epochs = 3, BatchSize = 4, LearningRate = 1e-3, Xi = 2.0,
        };
        using var attacker = new DeformationAttackEstimator(new MedSegContext(seed: 4), o, cdal).Fit(data);
        CdalAttackKit.AssertUnchanged(before, cdal);
        Assert.AreSame(cdal, attacker.Segmenter);
        Assert.IsTrue(attacker.History.All(e => double.IsFinite(e.GeneratorLoss) && double.IsFinite(e.CrossEntropy)), string.Join("; ", attacker.History));
        var report = attacker.Evaluate(data);
        string summary = $"{report}; history {string.Join("; ", attacker.History.Select(e => $"{e.GeneratorLoss:F3}/{e.CrossEntropy:F3}"))}";
        Console.WriteLine(summary);
        Assert.AreEqual(8, report.Images);
        Assert.IsTrue(report.DiceAfter < report.DiceBefore, $"the attack lowers the cDAL model's Dice: {summary}");
        Assert.IsTrue(attacker.History[^1].GeneratorLoss < attacker.History[0].GeneratorLoss, $"the generator's loss falls: {summary}");
        Assert.IsTrue(attacker.History[^1].CrossEntropy > attacker.History[0].CrossEntropy, $"the masked cross-entropy rises towards ξ: {summary}");
    }
}
