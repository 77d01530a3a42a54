using MLNetMedSeg.Core.Training;
using System.Diagnostics;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Cdal;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation.Cdal;

[TestClass]
public sealed class CdalTrainingTests
{
    public TestContext TestContext { get; set; } = null!;

    private static (CdalGeneratorNetwork G, CdalDiscriminatorNetwork D) Build(CdalOptions o, ulong seed)
    {
        using var g = new Generator(seed);
        return (new CdalGeneratorNetwork(o, g), new CdalDiscriminatorNetwork(o, g));
    }

    [TestMethod]
    public void StepIsDeterministicGivenTheGeneratorAndUpdatesBothNetworks()
    {
        var o = CdalTestUtil.Small(16);
        o.AttentionScale = 8;
        var (images, masks) = CdalTestUtil.Discs(16, 4, 1);
        using var _i = images;
        using var _m = masks;
        var runs = new List<(List<CdalStepLosses> Losses, Dictionary<string, Tensor> G, Dictionary<string, Tensor> D)>();
        for (int run = 0; run < 2; run++)
        {
            var (gen, disc) = Build(o, 7);
            var g0 = gen.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.clone());
            var d0 = disc.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.clone());
            using var step = new CdalTrainingStep(o, gen, disc);
            using var rng = new Generator(99);
            var losses = new List<CdalStepLosses> { step.Step(images, masks, rng), step.Step(images, masks, rng) };
            Assert.AreEqual(2, step.StepsTaken);
            foreach (var l in losses)
            {
                Assert.IsTrue(l.GeneratorMse > 0 && l.DiscriminatorReal > 0 && l.DiscriminatorFake > 0 && l.R1Penalty >= 0);
                Assert.AreEqual(l.DiscriminatorReal + l.DiscriminatorFake + l.R1Penalty, l.Discriminator, 1e-5);
                Assert.AreEqual(l.GeneratorMse, l.Generator, 1e-6, "Algorithm 1's generator loss is Eq. 4 alone by default");
                Assert.AreEqual(0, l.GeneratorAdversarial);
            }
            Assert.IsTrue(gen.StateDictInOrder().Any(e => !e.Value.IsEqual(g0[e.Key])), "the generator was updated");
            Assert.IsTrue(disc.StateDictInOrder().Any(e => !e.Value.IsEqual(d0[e.Key])), "the discriminator was updated");
            Assert.IsTrue(disc.parameters().All(p => p.requires_grad), "the discriminator is unfrozen after the generator step");
            runs.Add((losses, gen.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.clone()),
                      disc.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.clone())));
            foreach (var t in g0.Values.Concat(d0.Values)) t.Dispose();
            gen.Dispose(); disc.Dispose();
        }
        CollectionAssert.AreEqual(runs[0].Losses, runs[1].Losses, "same seed, same losses");
        foreach (var (k, v) in runs[0].G) Assert.IsTrue(v.IsEqual(runs[1].G[k]), $"generator {k} differs between identical runs");
        foreach (var (k, v) in runs[0].D) Assert.IsTrue(v.IsEqual(runs[1].D[k]), $"discriminator {k} differs between identical runs");
        foreach (var r in runs) foreach (var t in r.G.Values.Concat(r.D.Values)) t.Dispose();
    }

    [TestMethod]
    public void AblationsMultiClassAndAdversarialTermRun()
    {
        foreach (var (useLatent, useAttention, classes, adv) in new[] { (false, true, 1, 0.0), (true, false, 1, 0.0), (true, true, 3, 0.5) })
        {
            var o = CdalTestUtil.Small(16, classes);
            o.AttentionScale = 8; o.UseLatent = useLatent; o.UseAttention = useAttention; o.AdversarialWeight = adv;
            o.R1Interval = 2;
            var (images, masks) = CdalTestUtil.Discs(16, 2, 3, multiClass: classes > 1);
            using var _i = images;
            using var _m = masks;
            var (gen, disc) = Build(o, 3);
            using var _g = gen;
            using var _d = disc;
            using var step = new CdalTrainingStep(o, gen, disc);
            using var rng = new Generator(5);
            var l1 = step.Step(images, masks, rng);
            var l2 = step.Step(images, masks, rng);
            Assert.IsTrue(l1.R1Penalty >= 0 && l2.R1Penalty == 0, "R1 on every second step only");
            if (adv > 0)
            {
                Assert.IsTrue(l1.GeneratorAdversarial > 0);
                Assert.AreEqual(l1.GeneratorMse + adv * l1.GeneratorAdversarial, l1.Generator, 1e-5);
            }
            var sampler = new CdalSampler(o, gen);
            using var p = sampler.PredictProbability(images, 1);
            CollectionAssert.AreEqual(new long[] { 2, classes, 16, 16 }, p.shape, $"latent {useLatent}, attention {useAttention}, classes {classes}");
        }
    }

    [TestMethod]
    public void BadBatchesAreRejectedAndNaNThrowsBeforeAnyUpdate()
    {
        var o = CdalTestUtil.Small(16);
        o.AttentionScale = 8;
        var (gen, disc) = Build(o, 1);
        using var _g = gen;
        using var _d = disc;
        using var step = new CdalTrainingStep(o, gen, disc);
        using var rng = new Generator(1);
        var (images, masks) = CdalTestUtil.Discs(16, 2, 1);
        using var _i = images;
        using var _m = masks;
        using var scope = NewDisposeScope();
        Assert.AreEqual("images", Assert.ThrowsException<ArgumentException>(() => step.Step(images.narrow(1, 0, 1), masks, rng)).ParamName);
        Assert.AreEqual("masks", Assert.ThrowsException<ArgumentException>(() => step.Step(images, masks * S(3), rng)).ParamName);
        Assert.AreEqual("masks", Assert.ThrowsException<ArgumentException>(() => step.Step(images, masks.narrow(0, 0, 1), rng)).ParamName);
        var before = disc.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.clone());
        var beforeG = gen.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.clone());
        var bad = images.clone();
        bad[0, 0, 0, 0] = tensor(float.NaN);
        var ex = Assert.ThrowsException<TrainingDivergedException>(() => step.Step(bad, masks, rng, epoch: 3));
        Assert.AreEqual(3, ex.Epoch);
        StringAssert.Contains(ex.Message, "discriminator");
        foreach (var (k, v) in disc.StateDictInOrder()) Assert.IsTrue(v.IsEqual(before[k]), $"{k} changed by a diverged step");
        foreach (var (k, v) in gen.StateDictInOrder()) Assert.IsTrue(v.IsEqual(beforeG[k]), $"{k} changed by a diverged step");
        Assert.AreEqual(0, step.StepsTaken);
    }

    [TestMethod]
    public void StepsAndSamplingLeakNoTensors()
    {
        var o = CdalTestUtil.Small(16);
        o.AttentionScale = 8;
        o.AdversarialWeight = 0.1;
        var (gen, disc) = Build(o, 2);
        using var _g = gen;
        using var _d = disc;
        using var step = new CdalTrainingStep(o, gen, disc);
        using var rng = new Generator(2);
        var (images, masks) = CdalTestUtil.Discs(16, 2, 2);
        using var _i = images;
        using var _m = masks;
        var sampler = new CdalSampler(o, gen);
        step.Step(images, masks, rng);            // creates gradients and Adam state
        sampler.PredictProbability(images, 3).Dispose();
        long live = LiveTensors.Settled();
        for (int k = 0; k < 3; k++) step.Step(images, masks, rng);
        Assert.AreEqual(live, LiveTensors.Settled(), "training steps leaked tensors");
        using (var p = sampler.PredictProbability(images, 3)) { }
        using (var p = sampler.SampleLabels(images, [rng, rng], 2)) { }
        Assert.AreEqual(live, LiveTensors.Settled(), "sampling leaked tensors");
    }

    [TestMethod]
    public void LearnsSyntheticDiscsWellAboveTheAllBackgroundBaseline()
    {
        // One libtorch thread: on a loaded 2-core machine OpenMP's spinning threads made the steps ~8× slower.
        int threads = get_num_threads();
        set_num_threads(1);
        try
        {
            const int size = 24;
            var o = CdalTestUtil.Small(size);
            o.GeneratorLearningRate = 2e-3;       // the paper's 2e-4 is for thousands of epochs; a CPU test has seconds
            o.DiscriminatorLearningRate = 1e-4;
            var (images, masks) = CdalTestUtil.Discs(size, 24, 10);
            var (testImages, testMasks) = CdalTestUtil.Discs(size, 8, 11);
            using var _a = images; using var _b = masks; using var _c = testImages; using var _d = testMasks;
            var (gen, disc) = Build(o, 42);
            using var _g = gen; using var _dd = disc;
            using var step = new CdalTrainingStep(o, gen, disc);
            using var rng = new Generator(42);
            var sampler = new CdalSampler(o, gen);
            double Dice()
            {
                using var scope = NewDisposeScope();
                var pred = sampler.ToMask(sampler.PredictProbability(testImages, 5));
                return 2 * (pred * testMasks).sum().ToDouble() / (pred.sum().ToDouble() + testMasks.sum().ToDouble());
            }
            double diceBefore = Dice();   // untrained: x̂₀ ≡ 0, p = 0.5 everywhere, the all-foreground mask
            var sw = Stopwatch.StartNew();
            CdalStepLosses? first = null, last = null;
            for (int it = 0; it < Steps; it++)
            {
                using var scope = NewDisposeScope();
                var idx = randperm(24, generator: rng).narrow(0, 0, 8);
                last = step.Step(images.index_select(0, idx), masks.index_select(0, idx), rng);
                first ??= last;
            }
            double dice = Dice();
            var report = $"cDAL {Steps} steps at {size}²: {sw.Elapsed.TotalSeconds:F1} s, MSE {first!.GeneratorMse:F3} → {last!.GeneratorMse:F3}, " +
                         $"D loss {first.Discriminator:F3} → {last.Discriminator:F3}, test Dice {diceBefore:F3} → {dice:F4} (all-background baseline: 0)";
            TestContext.WriteLine(report);
            Console.WriteLine(report);
            Assert.IsTrue(last.GeneratorMse < 0.5 * first.GeneratorMse, report);
            Assert.IsTrue(diceBefore < 0.5, report);
            Assert.IsTrue(dice > 0.75, report);
        }
        finally
        {
            set_num_threads(threads);
        }
    }

    private const int Steps = 100;

    [TestMethod]
    public void SamplerShapesSeedsAndTheMeanOfFiveIsStable()
    {
        var o = CdalTestUtil.Small(16, 1);
        o.AttentionScale = 8;
        using var g = new Generator(8);
        using var gen = new CdalGeneratorNetwork(o, g);
        CdalTestUtil.Perturb(gen, g);
        var sampler = new CdalSampler(o, gen);
        var (images, _) = CdalTestUtil.Discs(16, 3, 4);
        using var _i = images;
        using var scope = NewDisposeScope();

        using var g1 = new Generator(1);
        using var g2 = new Generator(2);
        using var g3 = new Generator(3);
        var labels = sampler.SampleLabels(images, [g1, g2, g3], 4);
        CollectionAssert.AreEqual(new long[] { 3, 4, 1, 16, 16 }, labels.shape);
        var p = sampler.PredictProbability(images, 17);
        CollectionAssert.AreEqual(new long[] { 3, 1, 16, 16 }, p.shape);
        Assert.IsTrue(p.ge(S(0)).all().ToBoolean() && p.le(S(1)).all().ToBoolean());
        var mask = sampler.ToMask(p);
        Assert.AreEqual(ScalarType.Float32, mask.dtype);
        Assert.IsTrue(mask.IsEqual(p.ge(S(0.5)).to(ScalarType.Float32)));

        // Determinism and per-image seeding: the same seed gives the same result; image 2 alone (index 2) matches.
        Assert.IsTrue(sampler.PredictProbability(images, 17).IsEqual(p));
        Assert.IsFalse(sampler.PredictProbability(images, 18).IsEqual(p));
        var alone = sampler.PredictProbability(images.narrow(0, 2, 1), 17, firstIndex: 2);
        Assert.IsTrue(alone.allclose(p.narrow(0, 2, 1), 1e-5, 1e-5), "an image's prediction does not depend on its batch");

        // Multi-class: [N, Classes, H, W] probabilities, int64 [N, H, W] masks.
        var o3 = CdalTestUtil.Small(16, 3);
        o3.AttentionScale = 8;
        using var gen3 = new CdalGeneratorNetwork(o3, g);
        var s3 = new CdalSampler(o3, gen3);
        var p3 = s3.PredictProbability(images, 1);
        CollectionAssert.AreEqual(new long[] { 3, 3, 16, 16 }, p3.shape);
        var m3 = s3.ToMask(p3);
        Assert.AreEqual(ScalarType.Int64, m3.dtype);
        CollectionAssert.AreEqual(new long[] { 3, 16, 16 }, m3.shape);

        // z (and the noise) change single samples; the mean of 5 varies less across seeds than single samples.
        var one = images.narrow(0, 0, 1);
        var singles = new List<Tensor>();
        var fives = new List<Tensor>();
        for (int s = 0; s < 12; s++)
        {
            using var gs = new Generator((ulong)(100 + s));
            var x = CdalLabels.ToProbability(sampler.SampleLabels(one, [gs], 5));   // [1, 5, 1, H, W]
            singles.Add(x.narrow(1, 0, 1).squeeze(1));
            fives.Add(x.mean([1]));
        }
        double spread1 = stack(singles.ToArray(), 0).std(0).mean().ToDouble();
        double spread5 = stack(fives.ToArray(), 0).std(0).mean().ToDouble();
        TestContext.WriteLine($"per-pixel std across seeds: single sample {spread1:F4}, mean of 5 {spread5:F4}");
        Assert.IsTrue(spread1 > 1e-3, $"samples do not vary ({spread1})");
        Assert.IsTrue(spread5 < 0.7 * spread1, $"the mean of 5 ({spread5:F4}) is not more stable than one sample ({spread1:F4})");

        // Without the latent, z ≡ 0: the samples differ only through x_T and the posterior noise.
        var oNoZ = o.Clone();
        oNoZ.UseLatent = false;
        var sNoZ = new CdalSampler(oNoZ, gen);
        using var ga = new Generator(5);
        using var gb = new Generator(5);
        var withZ = sampler.SampleLabels(one, [ga], 1);
        var noZ = sNoZ.SampleLabels(one, [gb], 1);
        Assert.IsFalse(withZ.allclose(noZ, 1e-4, 1e-4), "z changes the sample");
    }
}
