using MLNetMedSeg.Diffusion;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Diffusion;

[TestClass]
public sealed class BernoulliDiffusionTests
{
    /// <summary>A [1,1,size,size] disc mask of the given radius at the centre.</summary>
    private static Tensor Disc(int size, double radius)
    {
        var v = new float[size * size];
        double c = (size - 1) / 2.0;
        for (int i = 0; i < size; i++)
            for (int j = 0; j < size; j++)
                v[i * size + j] = (i - c) * (i - c) + (j - c) * (j - c) <= radius * radius ? 1f : 0f;
        return torch.tensor(v, [1, 1, size, size]);
    }

    [TestMethod]
    [DataRow(BetaScheduleKind.Linear)]
    [DataRow(BetaScheduleKind.Cosine)]
    public void ForwardMarginalAtTIsAFairCoinAndTheBerDiffLineBreakBugIsNot(BetaScheduleKind kind)
    {
        using var scope = torch.NewDisposeScope();
        var d = new BernoulliDiffusion(kind, 1000);
        var y0 = Disc(128, 40); // ≈ 30 % foreground
        using var g = new Generator(7);
        var t = torch.tensor(new long[] { 999 });
        var yT = d.ForwardSample(y0, t, g);
        double frac = yT.mean().ToDouble();
        // 16384 pixels: the standard deviation of the fraction is 0.5/128 ≈ 0.004.
        Assert.AreEqual(0.5, frac, 0.02, $"foreground fraction of y_T ({kind})");
        CollectionAssert.AreEquivalent(new[] { 0f, 1f }, yT.unique_values());
        // BerDiff's public q_mean keeps only ȳ_T·y_0 (the "+ (1 − ȳ_T)/2" line is discarded): y_T would be all background.
        double abarT = d.Schedule.AlphasCumprod[999];
        double buggy = (y0 * S(abarT)).bernoulli(g).mean().ToDouble();
        Assert.IsTrue(buggy < 0.02, $"the truncated formula gives {buggy}");
    }

    [TestMethod]
    public void ForwardMarginalAtSmallTIsTheMask()
    {
        using var scope = torch.NewDisposeScope();
        var d = new BernoulliDiffusion(BetaScheduleKind.Linear, 1000);
        var y0 = Disc(128, 40);
        using var g = new Generator(3);
        var y1 = d.ForwardSample(y0, torch.tensor(new long[] { 0 }), g);
        // ᾱ_0 = 1 − 1e-4: a pixel flips with probability 5e-5 (≈ 0.8 of 16384 pixels expected).
        double flipped = (y1 - y0).abs().sum().ToDouble();
        Assert.IsTrue(flipped <= 5, $"{flipped} pixels flipped at t = 1");
        var y10 = d.ForwardSample(y0, torch.tensor(new long[] { 9 }), g);
        double frac10 = (y10 - y0).abs().mean().ToDouble();
        double expected = (1 - d.Schedule.AlphasCumprod[9]) / 2;
        Assert.AreEqual(expected, frac10, 0.002, "flip fraction at t = 10");
    }

    [TestMethod]
    public void ForwardProbabilityMatchesHandValues()
    {
        using var scope = torch.NewDisposeScope();
        // β = [0.2, 0.5]: ȳ_0 = 0.8, ȳ_1 = 0.8·0.5 = 0.4.
        var d = new BernoulliDiffusion(NoiseSchedule.FromBetas([0.2, 0.5]));
        var y0 = torch.tensor(new float[] { 1, 0, 1, 0 }, [2, 1, 1, 2]);
        var p = d.ForwardProbability(y0, torch.tensor(new long[] { 0, 1 })).reshape(-1).ToArray<float>();
        // t = 0: 0.8·y + 0.1 → 0.9, 0.1; t = 1: 0.4·y + 0.3 → 0.7, 0.3.
        CollectionAssert.AreEqual(new[] { 0.9f, 0.1f, 0.7f, 0.3f }, p.Select(v => MathF.Round(v, 6)).ToArray());
    }

    [TestMethod]
    public void PosteriorMatchesAHandValueAndBayesRuleAndIsAProbability()
    {
        using var scope = torch.NewDisposeScope();
        // β = [0.5, 0.1]: at t = 1, α = 0.9 and ȳ_{t−1} = ȳ_0 = 0.5.
        var d = new BernoulliDiffusion(NoiseSchedule.FromBetas([0.5, 0.1]));
        var yt = torch.tensor(new float[] { 1 }, [1, 1, 1, 1]);
        var y0 = torch.tensor(new float[] { 0.8f }, [1, 1, 1, 1]);
        double theta = d.PosteriorMean(yt, y0, torch.tensor(new long[] { 1 })).ToDouble();
        // θ₂ = (0.9·1 + 0.05)·(0.5·0.8 + 0.25) = 0.95·0.65 = 0.6175; θ₁ = (0 + 0.05)·(0.5·0.2 + 0.25) = 0.0175.
        Assert.AreEqual(0.6175 / (0.6175 + 0.0175), theta, 1e-6);

        // Every step of a real schedule, every y_t ∈ {0,1}, y_0 ∈ {0,1}: θ is Bayes' rule
        // q(y_{t−1}=1 | y_t, y_0) ∝ q(y_t | y_{t−1}=1)·q(y_{t−1}=1 | y_0), and a probability for soft ŷ_0 too.
        var s = NoiseSchedule.Create(BetaScheduleKind.Cosine, 50);
        var dc = new BernoulliDiffusion(s);
        float[] ys = [0, 1], y0s = [0, 0.3f, 1];
        foreach (var ytv in ys)
            foreach (var y0v in y0s)
            {
                var ytT = torch.full([s.Length, 1, 1, 1], S(ytv), ScalarType.Float32);
                var y0T = torch.full([s.Length, 1, 1, 1], S(y0v), ScalarType.Float32);
                var th = dc.PosteriorMean(ytT, y0T, torch.arange(S(0), S(s.Length), S(1), ScalarType.Int64)).reshape(-1).ToArray<float>();
                for (int t = 0; t < s.Length; t++)
                {
                    Assert.IsTrue(th[t] >= 0 && th[t] <= 1, $"θ = {th[t]} at t = {t}, y_t = {ytv}, ŷ_0 = {y0v}");
                    if (y0v is 0 or 1)
                    {
                        double a = s.Alphas[t], ap = s.AlphasCumprodPrev[t];
                        double Lik(double prev) => ytv == 1 ? a * prev + (1 - a) / 2 : 1 - (a * prev + (1 - a) / 2);
                        double prior1 = ap * y0v + (1 - ap) / 2;
                        double bayes = Lik(1) * prior1 / (Lik(1) * prior1 + Lik(0) * (1 - prior1));
                        Assert.AreEqual(bayes, th[t], 1e-5, $"t = {t}, y_t = {ytv}, y_0 = {y0v}");
                    }
                }
                // At t = 0 (ȳ_{−1} = 1) the posterior of a hard y_0 is y_0 itself.
                if (y0v is 0 or 1) Assert.AreEqual(y0v, th[0], 1e-6);
            }
    }

    [TestMethod]
    public void XorParameterisationRoundTripsExactly()
    {
        using var scope = torch.NewDisposeScope();
        var d = new BernoulliDiffusion(BetaScheduleKind.Linear, 100);
        using var g = new Generator(11);
        var y0 = torch.rand([4, 1, 16, 16], generator: g).lt(S(0.4)).to(ScalarType.Float32);
        var t = torch.tensor(new long[] { 0, 30, 60, 99 });
        var yt = d.ForwardSample(y0, t, g);
        var eps = BernoulliDiffusion.FlipNoise(yt, y0);
        CollectionAssert.AreEqual(eps.reshape(-1).ToArray<float>(), d.Target(yt, y0).reshape(-1).ToArray<float>());
        Assert.IsTrue(eps.sum().ToDouble() > 0, "some pixels are flipped");
        CollectionAssert.AreEqual(y0.reshape(-1).ToArray<float>(), d.PredictedMask(yt, eps).reshape(-1).ToArray<float>(), "ŷ_0 = |y_t − ε|");
        // y_t ⊕ ε = y_0 as logical xor too.
        var viaXor = yt.to(ScalarType.Bool).logical_xor(eps.to(ScalarType.Bool)).to(ScalarType.Float32);
        CollectionAssert.AreEqual(y0.reshape(-1).ToArray<float>(), viaXor.reshape(-1).ToArray<float>());
        var dm = new BernoulliDiffusion(BetaScheduleKind.Linear, 100, BernoulliParameterization.Mask);
        CollectionAssert.AreEqual(y0.reshape(-1).ToArray<float>(), dm.Target(yt, y0).reshape(-1).ToArray<float>());
    }

    [TestMethod]
    public void LossIsBcePlusWeightedKlWithHandValues()
    {
        using var scope = torch.NewDisposeScope();
        Assert.AreEqual(0.5 * Math.Log(2) + 0.5 * Math.Log(0.5 / 0.75),
            BernoulliDiffusion.BernoulliKl(torch.tensor(new double[] { 0.5 }), torch.tensor(new double[] { 0.25 })).ToDouble(), 1e-12);
        var d = new BernoulliDiffusion(BetaScheduleKind.Linear, 100);
        using var g = new Generator(5);
        var y0 = torch.rand([3, 1, 8, 8], generator: g).lt(S(0.5)).to(ScalarType.Float32);
        var t = torch.tensor(new long[] { 0, 50, 99 });
        var yt = d.ForwardSample(y0, t, g);
        // Logits 0: BCE = ln 2 exactly.
        var zero = torch.zeros([3, 1, 8, 8]);
        var l0 = d.Loss(y0, yt, t, zero, klWeight: 0);
        Assert.AreEqual(Math.Log(2), l0.Bce.ToDouble(), 1e-6);
        Assert.IsNull(l0.Kl);
        var l1 = d.Loss(y0, yt, t, zero, klWeight: 2);
        Assert.IsNotNull(l1.Kl);
        Assert.IsTrue(l1.Kl!.ToDouble() > 0);
        // KL by hand: β = [0.5, 0.1], t = 1 (α = 0.9, ȳ_0 = 0.5), y_t = y_0 = 1, logits 0 → ε̂ = ½ → ŷ_0 = ½.
        // q: θ₂ = 0.95·0.75 = 0.7125, θ₁ = 0.05·0.25 = 0.0125; p: θ₂ = 0.95·0.5, θ₁ = 0.05·0.5 → 0.95.
        var dh = new BernoulliDiffusion(NoiseSchedule.FromBetas([0.5, 0.1]));
        var one = torch.ones([1, 1, 1, 1]);
        var lh = dh.Loss(one, one, torch.tensor(new long[] { 1 }), torch.zeros([1, 1, 1, 1]), klWeight: 1);
        double q = 0.7125 / 0.725, pp = 0.95;
        Assert.AreEqual(q * Math.Log(q / pp) + (1 - q) * Math.Log((1 - q) / (1 - pp)), lh.Kl!.ToDouble(), 1e-6);
        Assert.AreEqual(Math.Log(2), lh.Bce.ToDouble(), 1e-6);
        Assert.AreEqual(l1.Bce.ToDouble() + 2 * l1.Kl.ToDouble(), l1.Total.ToDouble(), 1e-6);
        // The exact flip noise as (large) logits: both terms vanish.
        var exact = (BernoulliDiffusion.FlipNoise(yt, y0) * S(2) - S(1)) * S(30);
        var le = d.Loss(y0, yt, t, exact, klWeight: 1);
        Assert.IsTrue(le.Bce.ToDouble() < 1e-6, $"BCE {le.Bce.ToDouble()}");
        Assert.IsTrue(le.Kl!.ToDouble() < 1e-5, $"KL {le.Kl!.ToDouble()}");
        // Gradients flow through both terms.
        var logits = torch.zeros([3, 1, 8, 8], requires_grad: true);
        d.Loss(y0, yt, t, logits, klWeight: 1).Total.backward();
        Assert.IsTrue(logits.grad!.abs().sum().ToDouble() > 0);
    }

    [TestMethod]
    public void RespacedSamplingCallsTheDenoiserOncePerKeptStepWithOriginalTimesteps()
    {
        using var scope = torch.NewDisposeScope();
        var d = new BernoulliDiffusion(BetaScheduleKind.Linear, 1000);
        var fast = d.Respace(10);
        Assert.AreEqual(10, fast.Steps);
        var target = Disc(16, 5);
        var seen = new List<long>();
        // An oracle that knows y_0: it returns the exact flip noise as logits, so ŷ_0 = y_0 at every step.
        Tensor Oracle(Tensor yt, Tensor ts)
        {
            seen.Add(ts[0].ToInt64());
            Assert.AreEqual(2L, ts.size(0));
            return (BernoulliDiffusion.FlipNoise(yt, target.expand(2, 1, 16, 16)) * S(2) - S(1)) * S(30);
        }
        using var g1 = new Generator(1);
        using var g2 = new Generator(2);
        var done = new List<int>();
        var y = fast.Sample(Oracle, [g1, g2], [1, 16, 16], BernoulliFinalStep.Threshold, torch.CPU, stepDone: (k, n) => done.Add(k));
        CollectionAssert.AreEqual(fast.Schedule.Timesteps.Reverse().Select(v => (long)v).ToArray(), seen.ToArray());
        Assert.AreEqual(999L, seen[0]);
        Assert.AreEqual(0L, seen[^1]);
        CollectionAssert.AreEqual(Enumerable.Range(1, 10).ToArray(), done.ToArray());
        CollectionAssert.AreEqual(new long[] { 2, 1, 16, 16 }, y.shape);
        CollectionAssert.AreEqual(target.expand(2, 1, 16, 16).reshape(-1).ToArray<float>(), y.reshape(-1).ToArray<float>(), "the oracle's samples are its mask");
        y.Dispose();
    }

    [TestMethod]
    public void EachSampleDependsOnlyOnItsOwnGenerator()
    {
        using var scope = torch.NewDisposeScope();
        var d = new BernoulliDiffusion(BetaScheduleKind.Cosine, 200).Respace(20);
        // A denoiser that depends on y_t only (ε̂ = σ(2y_t − 1)), so the samples are pure functions of the noise streams.
        // (A constant ε̂ would not do: the last step returns ŷ_0 = |y_t − ε̂|, which for a flip prediction of ½ is ½ everywhere.)
        Tensor Flat(Tensor yt, Tensor ts) => yt * S(2) - S(1);
        Tensor Run(params ulong[] seeds)
        {
            var gens = seeds.Select(s => new Generator(s)).ToArray();
            try { return d.Sample(Flat, gens, [1, 8, 8], BernoulliFinalStep.Mean); }
            finally { foreach (var g in gens) g.Dispose(); }
        }
        var batch = Run(10, 20, 30);
        var alone = Run(20);
        CollectionAssert.AreEqual(batch[1].reshape(-1).ToArray<float>(), alone.reshape(-1).ToArray<float>());
        Assert.IsFalse(batch[0].reshape(-1).ToArray<float>().SequenceEqual(batch[2].reshape(-1).ToArray<float>()), "different streams, different samples");
        var again = Run(10, 20, 30);
        CollectionAssert.AreEqual(batch.reshape(-1).ToArray<float>(), again.reshape(-1).ToArray<float>(), "same seeds, same samples");
        // Mean at the last step: probabilities, not only {0,1}.
        var vals = batch.reshape(-1).ToArray<float>();
        Assert.IsTrue(vals.All(v => v >= 0 && v <= 1));
        batch.Dispose();
        alone.Dispose();
        again.Dispose();
    }

    [TestMethod]
    public void LastStepReturnsTheNetworksPrediction_NotThePosterior()
    {
        // BerDiff's last step returns ŷ_0. A stub network whose ŷ_0 is a known probability map P at every step: the
        // sample must be P (Mean) or P ≥ 0.5 (Threshold) whatever y_1 was — the posterior θ(y_1, P) would keep y_1's pixels.
        using var scope = torch.NewDisposeScope();
        var rng = new Random(4);
        var pValues = Enumerable.Range(0, 2 * 8 * 8).Select(_ => 0.05 + 0.9 * rng.NextDouble()).ToArray();
        var p = torch.tensor(pValues.Select(v => (float)v).ToArray(), [2, 1, 8, 8]);
        static Tensor Logit(Tensor q) => (q / (S(1) - q)).log();
        foreach (var param in new[] { BernoulliParameterization.Mask, BernoulliParameterization.FlipNoise })
        {
            var d = new BernoulliDiffusion(BetaScheduleKind.Cosine, 100, param).Respace(10);
            // Mask: σ(logit) = P = ŷ_0. FlipNoise: ε̂ = |y_t − P| gives ŷ_0 = |y_t − ε̂| = P for y_t ∈ {0, 1}.
            Tensor Net(Tensor yt, Tensor ts) => param == BernoulliParameterization.Mask ? Logit(p) : Logit((yt - p).abs());
            foreach (var final in new[] { BernoulliFinalStep.Mean, BernoulliFinalStep.Threshold })
            {
                var gens = new[] { new Generator(1), new Generator(2) };
                try
                {
                    var y = d.Sample(Net, gens, [1, 8, 8], final, torch.CPU);
                    var expected = final == BernoulliFinalStep.Mean ? p : p.ge(S(0.5)).to(ScalarType.Float32);
                    Assert.AreEqual(0.0, (y - expected).abs().max().ToDouble(), 1e-5, $"{param}, {final}: the last step returns ŷ_0");
                }
                finally
                {
                    foreach (var g in gens) g.Dispose();
                }
            }
        }
    }

    [TestMethod]
    public void ArgumentsAreChecked()
    {
        using var scope = torch.NewDisposeScope();
        var d = new BernoulliDiffusion(BetaScheduleKind.Linear, 10);
        var y = torch.zeros([1, 1, 4, 4]);
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => d.ForwardProbability(y, torch.tensor(new long[] { 10 })));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => d.Loss(y, y, torch.tensor(new long[] { 0 }), y, klWeight: -1));
        Assert.ThrowsException<ArgumentException>(() => d.Loss(y, y, torch.tensor(new long[] { 0 }), torch.zeros([1, 1, 4, 5])));
        Assert.ThrowsException<ArgumentException>(() => d.Sample((a, b) => a, [], [1, 4, 4]));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => d.Respace(11));
    }
}

internal static class BernoulliTensorTestExtensions
{
    /// <summary>The distinct values of a float32 tensor, sorted.</summary>
    public static float[] unique_values(this Tensor t) => t.reshape(-1).ToArray<float>().Distinct().OrderBy(v => v).ToArray();
}
