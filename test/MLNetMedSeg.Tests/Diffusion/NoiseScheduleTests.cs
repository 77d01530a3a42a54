using MLNetMedSeg.Diffusion;

namespace MLNetMedSeg.Tests.Diffusion;

[TestClass]
public sealed class NoiseScheduleTests
{
    [TestMethod]
    [DataRow(BetaScheduleKind.Linear)]
    [DataRow(BetaScheduleKind.Cosine)]
    public void AlphaBarIsMonotoneFromNearOneToNearZero(BetaScheduleKind kind)
    {
        var s = NoiseSchedule.Create(kind, 1000);
        Assert.AreEqual(1000, s.Length);
        for (int i = 1; i < s.Length; i++) Assert.IsTrue(s.AlphasCumprod[i] < s.AlphasCumprod[i - 1], $"step {i}");
        Assert.IsTrue(s.AlphasCumprod[0] > 0.999, $"ᾱ_0 = {s.AlphasCumprod[0]}");
        Assert.IsTrue(s.AlphasCumprod[s.Length - 1] < 1e-4, $"ᾱ_T = {s.AlphasCumprod[^1]}");
        Assert.AreEqual(1.0, s.AlphasCumprodPrev[0]);
        Assert.AreEqual(s.AlphasCumprod[41], s.AlphasCumprodPrev[42]);
    }

    [TestMethod]
    public void LinearEndpointsAreTheDdpmValues()
    {
        var s = NoiseSchedule.Create(BetaScheduleKind.Linear, 1000);
        Assert.AreEqual(1e-4, s.Betas[0], 1e-15);
        Assert.AreEqual(0.02, s.Betas[s.Length - 1], 1e-15);
        // 250 steps: both ends scaled by 1000/250 = 4.
        var s4 = NoiseSchedule.Create(BetaScheduleKind.Linear, 250);
        Assert.AreEqual(4e-4, s4.Betas[0], 1e-15);
        Assert.AreEqual(0.08, s4.Betas[s4.Length - 1], 1e-15);
        // 10 steps would reach β = 2: clipped at 0.999.
        var s10 = NoiseSchedule.Create(BetaScheduleKind.Linear, 10);
        Assert.AreEqual(0.999, s10.Betas[9], 1e-15);
        Assert.AreEqual(0.01, s10.Betas[0], 1e-15);
    }

    [TestMethod]
    public void CosineMatchesItsClosedForm()
    {
        var s = NoiseSchedule.Create(BetaScheduleKind.Cosine, 100);
        static double F(double t) => Math.Pow(Math.Cos((t + 0.008) / 1.008 * Math.PI / 2), 2);
        // Away from the 0.999 clip, ᾱ_t = f((t+1)/T)/f(0).
        foreach (int t in new[] { 0, 10, 50, 90 })
            Assert.AreEqual(F((t + 1) / 100.0) / F(0), s.AlphasCumprod[t], 1e-12, $"t={t}");
        Assert.AreEqual(0.999, s.Betas[s.Length - 1], 1e-12);
    }

    [TestMethod]
    public void RespacingKeepsAlphaBarAtTheKeptSteps()
    {
        var s = NoiseSchedule.Create(BetaScheduleKind.Linear, 1000);
        var r = s.Respace(5);
        CollectionAssert.AreEqual(new[] { 0, 250, 500, 749, 999 }, r.Timesteps.ToArray());
        for (int i = 0; i < 5; i++) Assert.AreEqual(s.AlphasCumprod[r.Timesteps[i]], r.AlphasCumprod[i], 1e-12);
        var same = s.Respace(1000);
        for (int i = 0; i < 1000; i += 111) Assert.AreEqual(s.Betas[i], same.Betas[i], 1e-12);
        // Respacing a respaced schedule maps to the original indices.
        CollectionAssert.AreEqual(new[] { 0, 500, 999 }, r.Respace(3).Timesteps.ToArray());
    }

    [TestMethod]
    public void BadArgumentsAreNamed()
    {
        var e = Assert.ThrowsException<ArgumentOutOfRangeException>(() => NoiseSchedule.Create(BetaScheduleKind.Linear, 0));
        Assert.AreEqual("steps", e.ParamName);
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => NoiseSchedule.Create(BetaScheduleKind.Linear, 10).Respace(11));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => NoiseSchedule.FromBetas([0.1, 1.5]));
        Assert.ThrowsException<ArgumentException>(() => NoiseSchedule.Create(BetaScheduleKind.Cosine, 10).Subset([3, 2]));
    }
}
