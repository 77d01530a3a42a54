using MLNetMedSeg.Segmentation.Cdal;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation.Cdal;

[TestClass]
public sealed class CdalScheduleTests
{
    [TestMethod]
    public void BetasFollowAlgorithm1ClosedForm()
    {
        foreach (int T in new[] { 1, 2, 3, 4 })
        {
            var s = new CdalSchedule(T, 0.1, 20);
            double alphaBar = 1;
            for (int t = 1; t <= T; t++)
            {
                // Algorithm 1, written out: β_t = 1 − exp(−β_min·(1/T) − ½(β_max − β_min)(2t − 1)/T²)
                double expected = 1 - Math.Exp(-0.1 * (1.0 / T) - 0.5 * (20 - 0.1) * (2.0 * t - 1) / (T * (double)T));
                Assert.AreEqual(expected, s.Beta(t), 1e-15, $"β_{t} for T = {T}");
                Assert.AreEqual(1 - expected, s.Alpha(t), 1e-15);
                alphaBar *= 1 - expected;
                Assert.AreEqual(alphaBar, s.AlphaBar(t), 1e-15, $"ᾱ_{t} for T = {T}");
                // Cross-check: the product telescopes to the VP SDE's exp(−∫₀^{t/T} β(s) ds).
                double u = (double)t / T;
                Assert.AreEqual(Math.Exp(-0.1 * u - 0.5 * (20 - 0.1) * u * u), s.AlphaBar(t), 1e-12 * Math.Max(1, s.AlphaBar(t)));
            }
            Assert.AreEqual(1.0, s.AlphaBar(0));
        }
        // The paper's CXR setting T = 2: β₁ = 1 − e^(−2.5375), β₂ = 1 − e^(−7.5125).
        var cxr = new CdalSchedule(new CdalOptions());
        Assert.AreEqual(2, cxr.Timesteps);
        Assert.AreEqual(1 - Math.Exp(-2.5375), cxr.Beta(1), 1e-15);
        Assert.AreEqual(1 - Math.Exp(-7.5125), cxr.Beta(2), 1e-15);
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => cxr.Beta(0));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => cxr.Beta(3));
    }

    [TestMethod]
    public void PosteriorMatchesBayesInFloat64()
    {
        const int T = 4;
        var s = new CdalSchedule(T, 0.1, 20);
        var rng = new Random(5);
        const int n = 8, d = 6;
        var x0 = new double[n * d];
        var xt = new double[n * d];
        for (int i = 0; i < x0.Length; i++) { x0[i] = rng.NextDouble() * 2 - 1; xt[i] = rng.NextDouble() * 4 - 2; }
        long[] ts = [1, 2, 3, 4, 4, 3, 2, 1];
        using var x0T = tensor(x0.Select(v => (float)v).ToArray(), [n, 1, 2, 3]);
        using var xtT = tensor(xt.Select(v => (float)v).ToArray(), [n, 1, 2, 3]);
        using var tT = tensor(ts);
        var (mean, variance) = s.Posterior(x0T, xtT, tT);
        using (mean)
        using (variance)
        {
            var m = mean.data<float>().ToArray();
            var v = variance.data<float>().ToArray();
            Assert.AreEqual(n, v.Length);
            for (int i = 0; i < n; i++)
            {
                int t = (int)ts[i];
                // β_t and ᾱ from Algorithm 1's formula, independently of the class.
                double Beta(int k) => 1 - Math.Exp(-0.1 / T - 0.5 * 19.9 * (2.0 * k - 1) / (T * T));
                double AlphaBar(int k) { double a = 1; for (int j = 1; j <= k; j++) a *= 1 - Beta(j); return a; }
                double b = Beta(t), abPrev = AlphaBar(t - 1);
                double expVar, mx0, mxt;
                if (t == 1) { expVar = 0; mx0 = 1; mxt = 0; }   // x_0 is x̂₀: a point mass
                else
                {
                    // Bayes: N(x_t; √α x_{t−1}, β) · N(x_{t−1}; √ᾱ_{t−1} x₀, 1 − ᾱ_{t−1}) ∝ N(x_{t−1}; μ, 1/λ)
                    double lambda = (1 - b) / b + 1 / (1 - abPrev);
                    expVar = 1 / lambda;
                    mxt = Math.Sqrt(1 - b) / b / lambda;
                    mx0 = Math.Sqrt(abPrev) / (1 - abPrev) / lambda;
                }
                Assert.AreEqual(expVar, v[i], 1e-6 + 1e-5 * expVar, $"variance at t = {t}");
                Assert.AreEqual(expVar, s.PosteriorVariance(t), 1e-12);
                var (c0, ct) = s.PosteriorMeanCoefficients(t);
                Assert.AreEqual(mx0, c0, 1e-10, $"x₀ coefficient at t = {t}");
                Assert.AreEqual(mxt, ct, 1e-10, $"x_t coefficient at t = {t}");
                for (int j = 0; j < d; j++)
                {
                    double expected = mx0 * x0[i * d + j] + mxt * xt[i * d + j];
                    Assert.AreEqual(expected, m[i * d + j], 1e-5, $"mean at t = {t}, element {j}");
                }
            }
        }
    }

    [TestMethod]
    public void ForwardDrawsUseTheClosedForms()
    {
        var s = new CdalSchedule(4, 0.1, 20);
        using var g = new Generator(11);
        using var x0 = rand([4, 2, 3, 3], generator: g) * S(2) - S(1);
        using var noise = randn([4, 2, 3, 3], generator: g);
        using var t = tensor(new long[] { 0, 1, 2, 4 });
        using var xt = s.SampleQ(x0, t, noise);
        var a = x0.to(ScalarType.Float64).data<double>().ToArray();
        var e = noise.to(ScalarType.Float64).data<double>().ToArray();
        var r = xt.data<float>().ToArray();
        long[] ts = [0, 1, 2, 4];
        for (int i = 0; i < r.Length; i++)
        {
            double ab = s.AlphaBar((int)ts[i / 18]);
            Assert.AreEqual(Math.Sqrt(ab) * a[i] + Math.Sqrt(1 - ab) * e[i], r[i], 1e-5);
        }
        using var t1 = tensor(new long[] { 1, 2, 3, 4 });
        using var step = s.SampleStep(x0, t1, noise);
        var rs = step.data<float>().ToArray();
        for (int i = 0; i < rs.Length; i++)
        {
            double b = s.Beta((int)(i / 18) + 1);
            Assert.AreEqual(Math.Sqrt(1 - b) * a[i] + Math.Sqrt(b) * e[i], rs[i], 1e-5);
        }
        // The posterior draw at t = 1 is x̂₀ whatever the noise.
        using var ones = tensor(new long[] { 1, 1, 1, 1 });
        using var p = s.SamplePosterior(x0, noise, ones, noise * S(10));
        Assert.IsTrue(p.allclose(x0, 1e-6, 1e-6));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => s.SampleStep(x0, tensor(new long[] { 0, 1, 2, 5 }), noise).Dispose());
        Assert.ThrowsException<ArgumentException>(() => s.SampleQ(x0, tensor(new long[] { 1, 2 }), noise).Dispose());
    }

    [TestMethod]
    public void RealPairHasTheForwardChainsMoments()
    {
        // x_{t−1} ~ q(x_{t−1}|x₀) then x_t ~ q(x_t|x_{t−1}): Var(x_t) = 1 − ᾱ_t, Cov(x_{t−1}, x_t) = √α_t (1 − ᾱ_{t−1}).
        var s = new CdalSchedule(4, 0.1, 20);
        using var g = new Generator(3);
        using var scope = NewDisposeScope();
        const int n = 20000;
        var x0 = full([n, 1, 1, 1], S(0.5f));
        var t = full([n], S(2L), ScalarType.Int64);
        var (prev, cur) = s.SamplePair(x0, t, g);
        double ab1 = s.AlphaBar(1), ab2 = s.AlphaBar(2), a2 = s.Alpha(2);
        Assert.AreEqual(Math.Sqrt(ab1) * 0.5, prev.mean().ToDouble(), 0.02);
        Assert.AreEqual(Math.Sqrt(ab2) * 0.5, cur.mean().ToDouble(), 0.02);
        Assert.AreEqual(1 - ab2, cur.var().ToDouble(), 0.03);
        var cov = ((prev - prev.mean()) * (cur - cur.mean())).mean().ToDouble();
        Assert.AreEqual(Math.Sqrt(a2) * (1 - ab1), cov, 0.03);
    }
}
