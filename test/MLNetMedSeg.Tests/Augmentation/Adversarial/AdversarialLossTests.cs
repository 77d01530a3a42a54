using MLNetMedSeg.Augmentation.Adversarial;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Augmentation.Adversarial;

[TestClass]
public sealed class AdversarialLossTests
{
    [TestMethod]
    public void UncertaintyMap_Binary_IsExpMinusZSquaredOver8_AndPeaksAtZero()
    {
        using var scope = NewDisposeScope();
        var z = tensor(new float[] { 0, 1, -1, 2, -2, 4, 0.5f, -6 }, [1, 1, 2, 4]);
        var w = AdversarialLoss.UncertaintyMap(z, 4.0);
        CollectionAssert.AreEqual(new long[] { 1, 1, 2, 4 }, w.shape);
        var v = AdversarialTestKit.Values(w);
        // σ² = 4: W = exp(−z²/8).
        double[] expected = [1, Math.Exp(-1 / 8.0), Math.Exp(-1 / 8.0), Math.Exp(-0.5), Math.Exp(-0.5), Math.Exp(-2), Math.Exp(-0.25 / 8), Math.Exp(-36 / 8.0)];
        for (int i = 0; i < v.Length; i++) Assert.AreEqual(expected[i], v[i], 1e-6, $"element {i}");
        Assert.AreEqual(1.0, v.Max(), 0.0, "W peaks at 1 where the logit is 0");
        Assert.AreEqual(0, Array.IndexOf(v, v.Max()));
        Assert.IsFalse(w.requires_grad);
    }

    [TestMethod]
    public void UncertaintyMap_Variance_ScalesTheWidth()
    {
        using var scope = NewDisposeScope();
        var z = tensor(new float[] { 3 }, [1, 1, 1, 1]);
        Assert.AreEqual(Math.Exp(-9 / 2.0), AdversarialTestKit.Values(AdversarialLoss.UncertaintyMap(z, 1.0))[0], 1e-6);
        Assert.AreEqual(Math.Exp(-9 / 18.0), AdversarialTestKit.Values(AdversarialLoss.UncertaintyMap(z, 9.0))[0], 1e-6);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => AdversarialLoss.UncertaintyMap(z, 0));
    }

    [TestMethod]
    public void UncertaintyMap_MultiClass_UsesTheTop2Margin()
    {
        using var scope = NewDisposeScope();
        // Two pixels, three classes: logits (1, 3, 2) → margin 1; (5, 5, −1) → margin 0.
        var z = tensor(new float[] { 1, 5, 3, 5, 2, -1 }, [1, 3, 1, 2]);
        var v = AdversarialTestKit.Values(AdversarialLoss.UncertaintyMap(z, 4.0));
        Assert.AreEqual(2, v.Length);
        Assert.AreEqual(Math.Exp(-1 / 8.0), v[0], 1e-6);
        Assert.AreEqual(1.0, v[1], 1e-7);
    }

    private static double Bce(double z, double y) => y == 1 ? Math.Log(1 + Math.Exp(-z)) : Math.Log(1 + Math.Exp(z));

    [TestMethod]
    public void Eq10_MatchesHandComputedValue()
    {
        using var scope = NewDisposeScope();
        // One 2×2 image: logits z on the attacked image, mask ỹ, and W from the clean logits zc.
        double[] z = [0.0, 2.0, -1.0, 3.0], y = [1, 0, 1, 1], zc = [0.5, -1.0, 2.0, 0.0];
        var logits = tensor(z.Select(v => (float)v).ToArray(), [1, 1, 2, 2]);
        var mask = tensor(y.Select(v => (float)v).ToArray(), [1, 1, 2, 2]);
        var w = AdversarialLoss.UncertaintyMap(tensor(zc.Select(v => (float)v).ToArray(), [1, 1, 2, 2]), 4.0);

        // Eq. 10: (1/(H·W)) Σ ỹ·W·ℓ_bce. Pixel 1 is background, so only pixels 0, 2, 3 count.
        double eq10 = (Math.Exp(-0.25 / 8) * Math.Log(2) + Math.Exp(-4 / 8.0) * Math.Log(1 + Math.E) + 1.0 * Math.Log(1 + Math.Exp(-3))) / 4;
        double computed = AdversarialLoss.PerImage(logits, mask, w, foregroundOnly: true).ToDouble();
        Assert.AreEqual(eq10, computed, 1e-6);
        Assert.AreEqual(0.379236, eq10, 1e-6, "the hand computation itself");

        // The unrestricted variant adds the background pixel: W = exp(−1/8), ℓ = log(1 + e²).
        double all = eq10 + Math.Exp(-1 / 8.0) * Bce(2, 0) / 4;
        Assert.AreEqual(all, AdversarialLoss.PerImage(logits, mask, w, foregroundOnly: false).ToDouble(), 1e-6);

        // No W, every pixel: the plain mean BCE.
        double plain = Enumerable.Range(0, 4).Average(i => Bce(z[i], y[i]));
        Assert.AreEqual(plain, AdversarialLoss.PerImage(logits, mask, null, foregroundOnly: false).ToDouble(), 1e-6);
    }

    [TestMethod]
    public void PerImage_MultiClass_IsCrossEntropy_ForegroundMasksClassZero()
    {
        using var scope = NewDisposeScope();
        // One image of two pixels, two classes: pixel 0 is class 1, pixel 1 class 0.
        var logits = tensor(new float[] { 0, 1, 2, -1 }, [1, 2, 1, 2]); // class 0 logits (0, 1), class 1 logits (2, −1)
        var mask = tensor(new long[] { 1, 0 }, [1, 1, 2]);
        double ce0 = -(2 - Math.Log(Math.Exp(0) + Math.Exp(2)));
        double ce1 = -(1 - Math.Log(Math.Exp(1) + Math.Exp(-1)));
        Assert.AreEqual((ce0 + ce1) / 2, AdversarialLoss.PerImage(logits, mask, null, false).ToDouble(), 1e-6);
        Assert.AreEqual(ce0 / 2, AdversarialLoss.PerImage(logits, mask, null, true).ToDouble(), 1e-6);
    }

    [TestMethod]
    public void PerImage_RejectsMismatchedShapes()
    {
        using var scope = NewDisposeScope();
        var logits = zeros([2, 1, 4, 4]);
        Assert.ThrowsExactly<ArgumentException>(() => AdversarialLoss.PerImage(logits, zeros([2, 1, 4, 3]), null, false));
        Assert.ThrowsExactly<ArgumentException>(() => AdversarialLoss.PerImage(logits, zeros([2, 1, 4, 4]), zeros([2, 1, 4, 3]), false));
        Assert.ThrowsExactly<ArgumentException>(() => AdversarialLoss.PerImage(zeros([2, 3, 4, 4]), zeros([2, 4, 4]), null, false));
    }
}
