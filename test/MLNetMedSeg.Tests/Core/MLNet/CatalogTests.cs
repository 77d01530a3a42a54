using Microsoft.ML;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Tests.Segmentation.Networks;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Core.MLNet;

/// <summary>
/// The simple overloads of the <c>ml.MedSeg()</c> catalogs: their arguments land in the stage's options, their defaults
/// are the papers' (as their XML docs cite), and the Options overloads refuse options for another method.
/// </summary>
[TestClass]
public sealed class CatalogTests
{
    private static SegmentationTransformer Segmenter(long inChannels = 3)
    {
        var options = new SegmentationModelOptions { Network = NetworkTestUtil.Small(SegmentationArchitecture.UNet, depth: 2) };
        options.Network.InChannels = inChannels;
        using var g = new Generator(1);
        return new SegmentationTransformer(new MedSegContext(seed: 1), options, SegmentationNetworks.Create(options.Network, g));
    }

    private static ImageDiffusionTransformer SdEditModel()
    {
        var o = new ImageDiffusionOptions
        {
            Network = new DiffusionUNetOptions { BaseChannels = 16, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 16, GroupNormGroups = 8 },
            TimeSteps = 50, SampleSteps = 5, SamplingSeed = 3,
        };
        using var g = new Generator(2);
        return new ImageDiffusionTransformer(new MedSegContext(seed: 1), o, new DiffusionUNet(o.ResolvedNetwork(), g));
    }

    [TestMethod]
    public void Generation_SimpleOverloads_FillTheOptions()
    {
        var ml = new MLContext(seed: 1);
        var m = ml.MedSeg().Generation.MaskDiffusion("Generated", "Label", samplesPerRow: 2, epochs: 3, batchSize: 4, learningRate: 1e-3, diffusionSteps: 100, samplingSteps: 10).Options;
        Assert.AreEqual(("Generated", "Label", 2, 3, 4, 1e-3, 100, 10), (m.OutputColumn, m.MaskColumn, m.SamplesPerRow, m.Epochs, m.BatchSize, m.LearningRate, m.Steps, m.SampleSteps));
        var d = ml.MedSeg().Generation.MaskDiffusion().Options;
        Assert.AreEqual((1000, 16, BernoulliParameterization.FlipNoise), (d.Steps, d.BatchSize, d.Parameterization), "T = 1000, batch 16, BCE on the flip noise (paper 000 §3.1, §4.1)");

        var i = ml.MedSeg().Generation.ImageDiffusion("Drawn", "SyntheticMask", "Picture", "Label", epochs: 2, batchSize: 3, learningRate: 2e-4,
            diffusionSteps: 200, sampler: GaussianSamplerKind.Ddpm, samplingSteps: 20).Options;
        Assert.AreEqual(("Drawn", "SyntheticMask", "Picture", "Label", 2, 3, 2e-4, 200, GaussianSamplerKind.Ddpm, 20),
            (i.OutputColumn, i.ConditionColumn, i.ImageColumn, i.MaskColumn, i.Epochs, i.BatchSize, i.LearningRate, i.TimeSteps, i.Sampler, i.SampleSteps));
        var id = ml.MedSeg().Generation.ImageDiffusion().Options;
        Assert.AreEqual((1000, 1e-4, "Mask"), (id.TimeSteps, id.LearningRate, id.ConditionColumn), "T′ = 1000 and ADM's 1e-4 (paper 000 §3.2, §4.1)");
    }

    [TestMethod]
    public void Augmentation_SimpleOverloads_UseThePapersSettings()
    {
        var ml = new MLContext(seed: 1);
        using var seg = Segmenter();
        using var sd = SdEditModel();
        var aug = ml.MedSeg().Augmentation;

        var f = aug.Fgsm(seg).Options;
        Assert.AreEqual((AdversarialAttackMethod.Fgsm, (double?)0.1, false), (f.Method, f.Epsilon, f.UncertaintyWeighting), "paper 001: ε = 0.1, plain loss");
        var inv = aug.InverseFgsm(seg, "Helped", "Picture", "Label", epsilon: 0.05).Options;
        Assert.AreEqual((AdversarialAttackMethod.InverseFgsm, (double?)0.05, "Helped", "Picture", "Label"),
            (inv.Method, inv.Epsilon, inv.AttackedImageColumn, inv.ImageColumn, inv.MaskColumn));
        var p = aug.Pgd(seg).Options;
        Assert.AreEqual((AdversarialAttackMethod.Pgd, (double?)(16.0 / 255), 2.0 / 255, 10, true), (p.Method, p.Epsilon, p.StepSize, p.Steps, p.RandomStart));
        var dp = aug.DiffPgd(seg, sd, uncertaintyColumnName: "W").Options;
        Assert.AreEqual((AdversarialAttackMethod.DiffPgd, 10, 1.0 / 255, 3, 4.0, true, true, (double?)null, "W"),
            (dp.Method, dp.Steps, dp.StepSize, dp.SdEditDepth, dp.UncertaintyVariance, dp.UncertaintyWeighting, dp.ForegroundOnly, dp.Epsilon, dp.UncertaintyColumn),
            "paper 000 §4.1: K = 10, γ = 1/255, T^s = 3, σ² = 4, Eq. 10's weighted foreground loss, no ε-ball");
        var plain = aug.DiffPgd(seg, sd, uncertaintyWeighting: false).Options;
        Assert.IsFalse(plain.UncertaintyWeighting || plain.ForegroundOnly, "plain Diff-PGD: every pixel, no W");

        Assert.AreEqual("options", Assert.ThrowsException<ArgumentException>(() => aug.Fgsm(seg, AdversarialAttackOptions.PgdPreset())).ParamName);
        Assert.AreEqual("options", Assert.ThrowsException<ArgumentException>(() => aug.DiffPgd(seg, sd, AdversarialAttackOptions.FgsmPreset())).ParamName);
        Assert.AreEqual(AdversarialAttackMethod.Pgd, aug.AdversarialAttack(seg, AdversarialAttackOptions.Preset("pgd")).Options.Method);
    }

    [TestMethod]
    public void DeformationAttack_TakesTheSegmentersChannels()
    {
        var ml = new MLContext(seed: 1);
        using var gray = Segmenter(inChannels: 1);
        var o = ml.MedSeg().Augmentation.DeformationAttack(gray, "Attacked", "Scan", labelColumnName: null, xi: 1.5, samplesPerImage: 3, epochs: 2, batchSize: 5).Options;
        Assert.AreEqual((1L, "Attacked", "Scan", (string?)null, 1.5, 3, 2, 5),
            (o.Generator.InChannels, o.AttackedImageColumn, o.ImageColumn, o.MaskColumn, o.Xi, o.Samples, o.Epochs, o.BatchSize));
        var d = ml.MedSeg().Augmentation.DeformationAttack(gray).Options;
        Assert.AreEqual((2.0, 0.1, 0.01, 1e-4), (d.Xi, d.DeformationWeight, d.IntensityWeight, d.LearningRate), "paper 002: ξ = 2 (Fig. 2), λ_D = 0.1, λ_V = 0.01, RMSProp 1e-4 (§3.3)");
    }

    [TestMethod]
    public void Dasp_SimpleOverload_UsesTheKvasirSettings()
    {
        var ml = new MLContext(seed: 1);
        var o = ml.MedSeg().Trainers.Dasp().Options;
        Assert.AreEqual((200, 16, 4e-3, 2), (o.Segmentation.Epochs, o.Segmentation.BatchSize, o.Segmentation.LearningRate, o.SyntheticPerImage), "paper 000 §4.1");
        Assert.AreEqual((10, 1.0 / 255, 3, 4.0), (o.Attack!.Steps, o.Attack.StepSize, o.Attack.SdEditDepth, o.Attack.UncertaintyVariance));
        var c = ml.MedSeg().Trainers.Dasp(SegmentationArchitecture.LinkNet, "Label", "Picture", epochs: 3, batchSize: 2, learningRate: 1e-4, syntheticPerImage: 1).Options;
        Assert.AreEqual((SegmentationArchitecture.LinkNet, "Label", "Picture", 3, 2, 1e-4, 1),
            (c.Segmentation.Network.Architecture, c.MaskColumn, c.ImageColumn, c.Segmentation.Epochs, c.Segmentation.BatchSize, c.Segmentation.LearningRate, c.SyntheticPerImage));
    }
}
