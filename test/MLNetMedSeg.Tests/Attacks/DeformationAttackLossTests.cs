using MLNetMedSeg.Attacks;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Attacks;

[TestClass]
public sealed class DeformationAttackLossTests
{
    /// <summary>Per-pixel class distributions [1, K, 1, P] from rows of probabilities (one row per pixel).</summary>
    private static Tensor Pixels(double[][] probs)
    {
        int p = probs.Length, k = probs[0].Length;
        var data = new float[k * p];
        for (int j = 0; j < p; j++)
            for (int c = 0; c < k; c++) data[c * p + j] = (float)probs[j][c];
        return tensor(data, [1, k, 1, p]);
    }

    [TestMethod]
    public void MaskedCrossEntropy_MatchesHandComputedValue()
    {
        using var scope = NewDisposeScope();
        double[][] s0 = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [1.0, 0.0, 0.0]];
        double[][] sdv = [[0.5, 0.3, 0.2], [0.2, 0.5, 0.3], [0.1, 0.8, 0.1]];
        // M = S0(1) + S0(2) per pixel: 0.3, 0.9, 0 (the third pixel is background and does not count).
        double ce1 = -(0.7 * Math.Log(0.5) + 0.2 * Math.Log(0.3) + 0.1 * Math.Log(0.2));
        double ce2 = -(0.1 * Math.Log(0.2) + 0.6 * Math.Log(0.5) + 0.3 * Math.Log(0.3));
        double expected = (0.3 * ce1 + 0.9 * ce2) / 1.2;
        var f = DeformationAttackLosses.MaskedCrossEntropy(Pixels(s0), Pixels(sdv).log());
        CollectionAssert.AreEqual(new long[] { 1 }, f.shape);
        Assert.AreEqual(expected, f.ToSingle(), 1e-5);
    }

    [TestMethod]
    public void MaskedCrossEntropy_IsSmallestWhenSdvEqualsS0()
    {
        using var scope = NewDisposeScope();
        double[][] s0 = [[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]];
        double entropy = DeformationAttackLosses.MaskedCrossEntropy(Pixels(s0), Pixels(s0).log()).ToSingle();
        double other = DeformationAttackLosses.MaskedCrossEntropy(Pixels(s0), Pixels([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]]).log()).ToSingle();
        Assert.IsTrue(other > entropy, $"{other} vs {entropy}");
    }

    [TestMethod]
    public void LogProbabilities_BinaryHead_IsBackgroundThenForeground()
    {
        using var scope = NewDisposeScope();
        var logits = tensor(new float[] { -2f, 0f, 3f }, [1, 1, 1, 3]);
        var lp = DeformationAttackLosses.LogProbabilities(logits).contiguous().ToArray<float>();
        double[] l = [-2, 0, 3];
        for (int j = 0; j < 3; j++)
        {
            double s = 1 / (1 + Math.Exp(-l[j]));
            Assert.AreEqual(Math.Log(1 - s), lp[j], 1e-5);
            Assert.AreEqual(Math.Log(s), lp[3 + j], 1e-5);
        }
        var multi = DeformationAttackLosses.Probabilities(tensor(new float[] { 1, 2, 3 }, [1, 3, 1, 1])).ToArray<float>();
        double z = Math.Exp(1) + Math.Exp(2) + Math.Exp(3);
        Assert.AreEqual(Math.Exp(2) / z, multi[1], 1e-6);
    }

    [TestMethod]
    public void NormsKlAndTarget_MatchHandComputedValues()
    {
        using var scope = NewDisposeScope();
        var field = tensor(new float[] { 1, -2, 0, 3, 0.5f, 0.5f, 0.5f, 0.5f }, [2, 2, 1, 2]);
        CollectionAssert.AreEqual(new[] { (1 + 4 + 0 + 9) / 4f, 0.25f }, DeformationAttackLosses.SquaredNorm(field).ToArray<float>());
        var mu = tensor(new float[] { 0, 0, 1, 2 }, [2, 2]);
        var logVar = tensor(new float[] { 0, 0, 0, (float)Math.Log(2) }, [2, 2]);
        var kl = DeformationAttackLosses.KlDivergence(mu, logVar).ToArray<float>();
        Assert.AreEqual(0.0, kl[0], 1e-6);
        // element KL = ½(μ² + σ² − 1 − log σ²): (½·1, ½(4 + 2 − 1 − ln 2)), averaged
        Assert.AreEqual((0.5 + 0.5 * (5 - Math.Log(2))) / 2, kl[1], 1e-5);
        var target = DeformationAttackLosses.TargetLoss(tensor(new float[] { 1.5f, 2.5f, 0f }), 2.0);
        Assert.AreEqual((0.25 + 0.25 + 4) / 3, target.ToSingle(), 1e-6);
    }

    [TestMethod]
    public void GeneratorLoss_SumsTheTermsOfEquation6WithTheirWeights()
    {
        using var scope = NewDisposeScope();
        var o = new DeformationAttackOptions { Xi = 1.0, DeformationWeight = 0.1, IntensityWeight = 0.01, KlWeight = 0.5 };
        var real = tensor(new float[] { 1, 2 });
        var fake = tensor(new float[] { 0.5f, 0.5f });
        double[][] s0 = [[0.2, 0.8], [0.6, 0.4]];
        double[][] sdv = [[0.5, 0.5], [0.5, 0.5]];
        var d = full([2, 2, 1, 2], S(2.0), ScalarType.Float32);       // ‖D‖² = 4
        var v = full([2, 1, 1, 2], S(0.3), ScalarType.Float32);       // ‖V‖² = 0.09
        var kl = tensor(new float[] { 0.2f, 0.4f });
        var s0t = cat([Pixels(s0), Pixels(s0)], 0);
        var sdvt = cat([Pixels(sdv), Pixels(sdv)], 0).log();
        var t = DeformationAttackLosses.GeneratorLoss(real, fake, s0t, sdvt, d, v, kl, o);
        double ce = -(0.8 * (0.2 * Math.Log(0.5) + 0.8 * Math.Log(0.5)) + 0.4 * (0.6 * Math.Log(0.5) + 0.4 * Math.Log(0.5))) / 1.2; // = ln 2
        Assert.AreEqual(1.0, t.Adversarial.ToSingle(), 1e-6);
        Assert.AreEqual(ce, t.CrossEntropy.ToSingle(), 1e-5);
        Assert.AreEqual((1 - ce) * (1 - ce), t.Target.ToSingle(), 1e-5);
        Assert.AreEqual(0.4, t.Deformation.ToSingle(), 1e-6);
        Assert.AreEqual(0.0009, t.Intensity.ToSingle(), 1e-7);
        Assert.AreEqual(0.15, t.Kl.ToSingle(), 1e-6);
        Assert.AreEqual(1.0 + (1 - ce) * (1 - ce) + 0.4 + 0.0009 + 0.15, t.Total.ToSingle(), 1e-5);
    }

    [TestMethod]
    public void GradientPenalty_LinearCritic_IsSquaredGapOfTheWeightNorm()
    {
        using var scope = NewDisposeScope();
        // f(x) = <w, x> + b has gradient w everywhere: penalty (‖w‖ − 1)², whatever the images and ε.
        var w = tensor(new float[] { 1, 2, 0, -2 }, [1, 1, 2, 2]).requires_grad_(true); // ‖w‖ = 3
        Tensor Critic(Tensor x) => x.mul(w).sum([1, 2, 3]).add(S(0.7));
        var real = rand([3, 1, 2, 2]);
        var fake = rand([3, 1, 2, 2]);
        var gp = DeformationAttackLosses.GradientPenalty(Critic, real, fake, tensor(new float[] { 0.1f, 0.5f, 0.9f }));
        Assert.AreEqual(4.0, gp.ToSingle(), 1e-5);
        // The penalty trains the critic: d/dw (‖w‖ − 1)² = 2(‖w‖ − 1) w/‖w‖.
        var g = torch.autograd.grad([gp], [w])[0].contiguous().ToArray<float>();
        float[] wv = [1, 2, 0, -2];
        for (int i = 0; i < 4; i++) Assert.AreEqual(2 * (3 - 1) * wv[i] / 3, g[i], 1e-4);
    }

    [TestMethod]
    public void GradientPenalty_QuadraticCritic_MatchesHandValueAtTheInterpolates()
    {
        using var scope = NewDisposeScope();
        // f(x) = Σ x² has gradient 2x̂ at x̂ = ε·real + (1 − ε)·fake.
        static Tensor Critic(Tensor x) => x.pow(S(2)).sum([1]);
        var real = tensor(new float[] { 1, 0, 0, 2 }, [2, 2]);
        var fake = tensor(new float[] { 0, 1, 0, 0 }, [2, 2]);
        var gp = DeformationAttackLosses.GradientPenalty(Critic, real, fake, tensor(new float[] { 0.25f, 0.5f }));
        // x̂₁ = (0.25, 0.75): ‖2x̂₁‖ = 2·√0.625; x̂₂ = (0, 1): ‖2x̂₂‖ = 2
        double n1 = 2 * Math.Sqrt(0.625), n2 = 2;
        Assert.AreEqual(((n1 - 1) * (n1 - 1) + (n2 - 1) * (n2 - 1)) / 2, gp.ToSingle(), 1e-5);
    }

    [TestMethod]
    public void CriticLoss_IsFakeMinusRealMeans()
    {
        using var scope = NewDisposeScope();
        var l = DeformationAttackLosses.CriticLoss(tensor(new float[] { 1, 3 }), tensor(new float[] { -1, 0 }));
        Assert.AreEqual(-2.5, l.ToSingle(), 1e-6);
    }
}
