using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Synthesis;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Diffusion;

/// <summary>
/// RePaint's scheduler (paper 004 Appendix A.1.1; Lugmayr et al. 2022): the jump time schedule, the exact merge of the
/// known region at every denoising step, the renoising step, the known-region q-sample and the mask dilation.
/// </summary>
[TestClass]
public sealed class RePaintSchedulerTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => SingleThreaded.Enter();

    [ClassCleanup]
    public static void Cleanup() => SingleThreaded.Leave();

    [TestMethod]
    public void TimeSchedule_WithoutResamplingIsStraightDown()
    {
        CollectionAssert.AreEqual(Enumerable.Range(0, 11).Reverse().ToArray(), RePaintScheduler.TimeSchedule(10, 3, 1).ToArray());
    }

    [TestMethod]
    public void TimeSchedule_JumpsBackAtEveryJumpPointTheGivenNumberOfTimes()
    {
        // T = 20, L = 5, r = 3: jump points at levels 1, 6, 11 (s + L ≤ T), each jumped back from r − 1 = 2 times.
        var levels = RePaintScheduler.TimeSchedule(20, 5, 3);
        Assert.AreEqual(20, levels[0]);
        Assert.AreEqual(0, levels[^1]);
        for (int k = 1; k < levels.Count; k++) Assert.AreEqual(1, Math.Abs(levels[k] - levels[k - 1]), $"entry {k}");
        // Upward runs: exactly L long, starting at the jump points, twice each.
        var jumps = new List<(int From, int Length)>();
        for (int k = 1; k < levels.Count; k++)
            if (levels[k] > levels[k - 1] && (k == 1 || levels[k - 1] < levels[k - 2]))
            {
                int len = 0;
                while (k + len < levels.Count && levels[k + len] > levels[k + len - 1]) len++;
                jumps.Add((levels[k - 1], len));
            }
        CollectionAssert.AreEquivalent(new[] { (11, 5), (11, 5), (6, 5), (6, 5), (1, 5), (1, 5) }, jumps);
        Assert.AreEqual(20 + 6 * 5, RePaintScheduler.NetworkEvaluations(levels));
        // Table A.2's setting on RePaint's 250 steps: 24 jump points × 4 jumps × 10 levels on top of 250 steps.
        Assert.AreEqual(250 + 24 * 4 * 10, RePaintScheduler.NetworkEvaluations(RePaintScheduler.TimeSchedule(250, 10, 5)));
    }

    [TestMethod]
    public void TimeSchedule_StepResamplingUndoesAndRedoesSingleSteps()
    {
        // u = 2 with no jumps: every step down to a level below T − 1 is undone and redone once.
        var levels = RePaintScheduler.TimeSchedule(4, 10, 1, stepResamplings: 2);
        CollectionAssert.AreEqual(new[] { 4, 3, 2, 3, 2, 1, 2, 1, 0, 1, 0 }, levels.ToArray());
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => RePaintScheduler.TimeSchedule(4, 0, 1));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => RePaintScheduler.TimeSchedule(4, 1, 0));
    }

    /// <summary>A deterministic stand-in for a network: any function of x and t works for the merge's invariants.</summary>
    private static Tensor Predictor(Tensor x, Tensor t, Tensor? c) => x * S(0.4) + t.to(ScalarType.Float32).reshape(-1, 1, 1, 1) * S(1e-3);

    [TestMethod]
    public void EveryMergeKeepsTheKnownRegionExactly_AndTheResultIsTheKnownImageThere()
    {
        using var scope = NewDisposeScope();
        var diffusion = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 100));
        var scheduler = new RePaintScheduler(diffusion);
        var spaced = diffusion.Schedule.Respace(12);
        var levels = RePaintScheduler.TimeSchedule(12, 3, 3);
        using var g0 = new Generator(5);
        var x0 = rand([2, 4, 16, 16], generator: g0) * S(2) - S(1);
        var keep = rand([2, 1, 16, 16], generator: g0).gt(S(0.4)).expand(2, 4, 16, 16).clone();
        keep[.., 3] = ones([2, 16, 16], ScalarType.Bool);     // a fully known channel, as the joint model's mask channel
        int merges = 0, renoises = 0;
        using var g = new Generator(9);
        var result = scheduler.Inpaint(Predictor, x0, keep, null, spaced, levels, [g], observer: step =>
        {
            if (step.Kind == RePaintTransition.Denoise)
            {
                merges++;
                Assert.AreEqual(step.FromLevel - 1, step.ToLevel);
                Assert.IsNotNull(step.Known);
                Assert.IsTrue(step.State.masked_select(keep).eq(step.Known!.masked_select(keep)).all().item<bool>(),
                    $"transition {step.Index} ({step.FromLevel} → {step.ToLevel}): the known region of the merged state is not the known sample");
                Assert.IsFalse(step.State.masked_select(keep.logical_not()).eq(step.Known!.masked_select(keep.logical_not())).all().item<bool>(),
                    $"transition {step.Index}: the unknown region was overwritten by the known sample");
                if (step.ToLevel == 0) Assert.IsTrue(step.Known!.eq(x0).all().item<bool>(), "at level 0 the known sample is x₀ itself");
            }
            else
            {
                renoises++;
                Assert.AreEqual(step.FromLevel + 1, step.ToLevel);
                Assert.IsNull(step.Known);
            }
        });
        Assert.AreEqual(RePaintScheduler.NetworkEvaluations(levels), merges);
        Assert.AreEqual(levels.Count - 1 - merges, renoises);
        Assert.IsTrue(renoises > 0);
        Assert.IsTrue(result.masked_select(keep).eq(x0.masked_select(keep)).all().item<bool>(), "the result's known region is x₀, bit for bit");
        Assert.IsTrue(result.masked_select(keep.logical_not()).sub(x0.masked_select(keep.logical_not())).abs().max().item<float>() > 1e-3,
            "the unknown region is generated, not copied");
    }

    [TestMethod]
    public void WithAnOracleNoisePredictorTheUnknownRegionIsReconstructed()
    {
        // ε̂ = (x_t − √ᾱ_t·x₀)/√(1 − ᾱ_t) at the network's (original) timestep: the reverse steps then recover x₀ in the
        // unknown region too (the last step's x̂₀ is x₀), so the whole result is x₀.
        using var scope = NewDisposeScope();
        var diffusion = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 200));
        var scheduler = new RePaintScheduler(diffusion);
        using var g0 = new Generator(3);
        var x0 = (rand([1, 3, 16, 16], generator: g0) * S(1.6) - S(0.8)).to(ScalarType.Float64);
        var ab = tensor(diffusion.Schedule.AlphasCumprod.ToArray(), ScalarType.Float64);
        Tensor Oracle(Tensor x, Tensor t, Tensor? c)
        {
            var a = ab.index_select(0, t).reshape(-1, 1, 1, 1);
            return (x - a.sqrt() * x0) / (S(1) - a).sqrt();
        }
        var keep = zeros([1, 1, 16, 16], ScalarType.Bool);
        keep[.., .., ..8] = ones([1, 1, 8, 16], ScalarType.Bool);
        using var g = new Generator(4);
        var result = scheduler.Inpaint(Oracle, x0, keep, null, diffusion.Schedule.Respace(20), RePaintScheduler.TimeSchedule(20, 4, 3), [g]);
        Assert.IsTrue(result.sub(x0).abs().max().item<double>() < 1e-6, $"max error {result.sub(x0).abs().max().item<double>()}");
    }

    [TestMethod]
    public void RenoiseAndKnownSampleFollowTheForwardProcess()
    {
        using var scope = NewDisposeScope();
        var schedule = NoiseSchedule.Create(BetaScheduleKind.Linear, 100).Respace(10);
        var scheduler = new RePaintScheduler(new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 100)));
        var x = full([2, 1, 4, 4], S(0.5f));
        using (var g1 = new Generator(11))
        using (var g2 = new Generator(11))
        {
            var up = RePaintScheduler.Renoise(x, schedule, 3, [g1]);
            var z = randn([2, 1, 4, 4], generator: g2);
            double beta = schedule.Betas[3];
            Assert.IsTrue(up.allclose(x * S(Math.Sqrt(1 - beta)) + z * S(Math.Sqrt(beta)), 1e-6, 1e-6));
        }
        using (var g1 = new Generator(12))
        using (var g2 = new Generator(12))
        {
            var known = scheduler.KnownSample(x, schedule, 4, [g1]);
            var z = randn([2, 1, 4, 4], generator: g2);
            double a = schedule.AlphasCumprod[3];
            Assert.IsTrue(known.allclose(x * S(Math.Sqrt(a)) + z * S(Math.Sqrt(1 - a)), 1e-6, 1e-6));
            Assert.IsTrue(scheduler.KnownSample(x, schedule, 0, [g1]).eq(x).all().item<bool>());
        }
        Assert.ThrowsException<ArgumentException>(() => RePaintScheduler.Merge(x, x, x));
    }

    [TestMethod]
    public void DilateGrowsTheMaskByADiscOfTheRadius()
    {
        using var scope = NewDisposeScope();
        var m = zeros([1, 1, 15, 15]);
        m[0, 0, 7, 7] = tensor(1f);
        Assert.AreEqual(29L, RePaintTransformer.Dilate(m, 3).sum().item<long>(), "lattice points within radius 3");
        Assert.AreEqual(1L, RePaintTransformer.Dilate(m, 0).sum().item<long>());
        var d = RePaintTransformer.Dilate(m, 3);
        Assert.IsTrue(d[0, 0, 7, 10].item<bool>() && !d[0, 0, 7, 11].item<bool>() && !d[0, 0, 10, 10].item<bool>());
    }
}
