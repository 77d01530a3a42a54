using MLNetMedSeg.Attacks;
using MLNetMedSeg.Attacks.Networks;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Attacks;

/// <summary>
/// The attack learns: a tiny 3-class U-Net (background + 2 organs, 32 px) is trained once for the class, then a
/// generator with ξ = 2 and one with ξ = 0 are trained against it (6 epochs over 32 images, learning rate 1e−3 and
/// adversarial weight 0.1 instead of the paper's 1e−4 and 1 so that a few dozen steps suffice on a CPU).
/// </summary>
[TestClass]
public sealed class DeformationAttackLearningTests
{
    private static MedSegContext _ctx = null!;
    private static InMemoryDataView _train = null!, _test = null!;
    private static SegmentationTransformer _segmenter = null!;
    private static DeformationAttackTransformer _xi0 = null!, _xi2 = null!;
    private static double _segmenterSeconds, _seconds;

    internal static DeformationAttackOptions Fast(double xi) => new()
    {
        Xi = xi,
        Generator = new DeformationGeneratorOptions { InChannels = 1, Widths = [8, 16], LatentChannels = 4 },
        CriticWidths = [8, 16],
        CriticIterations = 1,
        AdversarialWeight = 0.1,
        LearningRate = 1e-3,
        Epochs = 6,
        BatchSize = 8,
    };

    [ClassInitialize]
    public static void Train(TestContext _)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _ctx = new MedSegContext(seed: 7);
        _train = AttackData.Organs(32, 1);
        _test = AttackData.Organs(12, 2);
        _segmenter = AttackData.TrainSegmenter(_ctx, _train, epochs: 10);
        _segmenterSeconds = clock.Elapsed.TotalSeconds;
        _xi0 = new DeformationAttackEstimator(_ctx, Fast(0), _segmenter).Fit(_train);
        _xi2 = new DeformationAttackEstimator(_ctx, Fast(2), _segmenter).Fit(_train);
        _seconds = clock.Elapsed.TotalSeconds;
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        _xi0?.Dispose();
        _xi2?.Dispose();
        _segmenter?.Dispose();
        _train?.Dispose();
        _test?.Dispose();
    }

    [TestMethod]
    public void XiTwo_LowersDiceFarMoreThanXiZero_WithPerceptibilityBelowTheBound()
    {
        using var scope = NewDisposeScope();
        var r0 = _xi0.Evaluate(_test);
        var r2 = _xi2.Evaluate(_test);
        Console.WriteLine($"training: segmenter {_segmenterSeconds:F1} s, all {_seconds:F1} s");
        Console.WriteLine(r0);
        Console.WriteLine(r2);
        Assert.IsTrue(r0.DiceBefore > 0.75, $"the segmenter did not learn: Dice {r0.DiceBefore:F3}");
        Assert.AreEqual(r0.DiceBefore, r2.DiceBefore, 1e-12, "Dice before the attack depends on the segmenter only");
        Assert.IsTrue(r0.DiceAfter > r0.DiceBefore - 0.05, $"ξ = 0 should leave the segmentation nearly intact: {r0}");
        Assert.IsTrue(r2.DiceAfter < r0.DiceAfter - 0.2, $"ξ = 2 should lower Dice clearly more than ξ = 0: {r2} vs {r0}");
        Assert.IsTrue(r2.SuccessRate > r0.SuccessRate, $"{r2.SuccessRate} vs {r0.SuccessRate}");
        // Bound: the mean absolute change stays below 0.2 (the organ/background contrasts are 0.35 and 0.65).
        Assert.IsTrue(r2.P < 0.2, $"perceptibility {r2.P:F4} ≥ 0.2");
        Assert.IsTrue(r0.P < r2.P, $"ξ = 0 should change the image less: p {r0.P:F4} vs {r2.P:F4}");
    }

    [TestMethod]
    public void Fields_AreSmootherThanNoiseOfTheSameNorm()
    {
        using var scope = NewDisposeScope();
        using var b = _xi2.Attack(AttackData.Column(_test));
        using var g = new Generator(3);
        foreach (var (name, field) in new[] { ("D", b.Deformation), ("V", b.Intensity) })
        {
            var noise = randn(field.shape, generator: g);
            noise = noise.mul(field.norm().div(noise.norm()));
            double f = MeanAbsoluteGradient(field), n = MeanAbsoluteGradient(noise);
            Console.WriteLine($"{name}: mean |∇| {f:G4} vs noise {n:G4}, norm {field.norm().ToSingle():G4}");
            Assert.IsTrue(field.abs().max().ToSingle() > 0, $"{name} is zero");
            Assert.IsTrue(f < 0.5 * n, $"{name} is not smooth: mean |∇| {f:G4} vs {n:G4} for noise of the same norm");
        }
    }

    private static double MeanAbsoluteGradient(Tensor x)
    {
        using var scope = NewDisposeScope();
        long h = x.size(2), w = x.size(3);
        var gy = x.narrow(2, 1, h - 1).sub(x.narrow(2, 0, h - 1)).abs().mean();
        var gx = x.narrow(3, 1, w - 1).sub(x.narrow(3, 0, w - 1)).abs().mean();
        return gy.add(gx).div(S(2)).ToSingle();
    }

    [TestMethod]
    public void SaveLoad_ReproducesTheTrainedAttacker()
    {
        using var scope = NewDisposeScope();
        string file = Path.Combine(Path.GetTempPath(), $"deform-{Guid.NewGuid():N}.zip");
        try
        {
            TestModels.Save(_xi2, file);
            using var loaded = (DeformationAttackTransformer)TestModels.Load(file);
            var x = AttackData.Column(_test);
            using var a = _xi2.Attack(x);
            using var b = loaded.Attack(x);
            CollectionAssert.AreEqual(a.Attacked.contiguous().ToArray<float>(), b.Attacked.contiguous().ToArray<float>());
            CollectionAssert.AreEqual(a.Deformation.contiguous().ToArray<float>(), b.Deformation.contiguous().ToArray<float>());
            Assert.AreEqual(_xi2.Evaluate(_test).ToJson(), loaded.Evaluate(_test).ToJson());
            Assert.AreEqual(_xi2.History.Count, loaded.History.Count);
        }
        finally
        {
            File.Delete(file);
        }
    }
}
