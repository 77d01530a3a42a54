using MLNetMedSeg.Core;
using MLNetMedSeg.Dasp;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Segmentation;

/// <summary>Sudre et al.'s generalised Dice loss (DASP's [30]) against a float64 hand computation and finite differences.</summary>
[TestClass]
public sealed class GeneralizedDiceTests
{
    /// <summary>
    /// The loss by the formula, in plain double loops: per image, classes with references r and probabilities q
    /// ([image][class][pixel]); w = 1/(Σr)², an absent class takes the image's largest finite weight (1 if none).
    /// </summary>
    private static double[] Hand(double[][][] r, double[][][] q, double eps)
    {
        var l = new double[r.Length];
        for (int n = 0; n < r.Length; n++)
        {
            int k = r[n].Length;
            var w = new double[k];
            for (int c = 0; c < k; c++) { double v = r[n][c].Sum(); w[c] = v > 0 ? 1 / (v * v) : double.NaN; }
            double max = w.Where(v => !double.IsNaN(v)).DefaultIfEmpty(1).Max();
            double num = 0, den = 0;
            for (int c = 0; c < k; c++)
            {
                double wc = double.IsNaN(w[c]) ? max : w[c];
                for (int i = 0; i < r[n][c].Length; i++) { num += wc * r[n][c][i] * q[n][c][i]; den += wc * (r[n][c][i] + q[n][c][i]); }
            }
            l[n] = 1 - (2 * num + eps) / (den + eps);
        }
        return l;
    }

    private static (double[] logits, double[] y) BinaryData(int n, int hw, int seed, bool emptyFirst)
    {
        var rng = new Random(seed);
        var logits = Enumerable.Range(0, n * hw).Select(_ => rng.NextDouble() * 6 - 3).ToArray();
        var y = Enumerable.Range(0, n * hw).Select(i => emptyFirst && i < hw ? 0.0 : rng.NextDouble() < 0.3 ? 1.0 : 0.0).ToArray();
        return (logits, y);
    }

    private static double[][][] BinaryClasses(double[] v, int n, int hw) =>
        Enumerable.Range(0, n).Select(k => new[] { v.Skip(k * hw).Take(hw).Select(a => 1 - a).ToArray(), v.Skip(k * hw).Take(hw).ToArray() }).ToArray();

    [TestMethod]
    public void Binary_MatchesTheFormulaByHand_BothClassesWeightedByInverseSquaredVolume()
    {
        using var scope = NewDisposeScope();
        const int n = 3, h = 4, w = 5, hw = h * w;
        var (z, y) = BinaryData(n, hw, 1, emptyFirst: true);
        var p = z.Select(a => 1 / (1 + Math.Exp(-a))).ToArray();
        var hand = Hand(BinaryClasses(y, n, hw), BinaryClasses(p, n, hw), 1e-5);
        var logits = tensor(z, [n, 1, h, w]);
        var target = tensor(y, [n, 1, h, w]);
        Assert.AreEqual(hand.Average(), SegmentationLosses.GeneralizedDice(logits, target).ToDouble(), 1e-12, "mean over the images");
        Assert.AreEqual(0.2 * hand[0] + 0.5 * hand[1] + 0.3 * hand[2],
            SegmentationLosses.GeneralizedDice(logits, target, tensor(new[] { 0.2, 0.5, 0.3 })).ToDouble(), 1e-12, "sample weights");
        var hand0 = Hand(BinaryClasses(y, n, hw), BinaryClasses(p, n, hw), 0);
        Assert.AreEqual(hand0.Average(), SegmentationLosses.GeneralizedDice(logits, target, smooth: 0).ToDouble(), 1e-12);
        // Not the plain foreground Dice: it weights the small foreground up against the background.
        Assert.AreNotEqual(SegmentationLosses.SoftDice(logits, target).ToDouble(), SegmentationLosses.GeneralizedDice(logits, target).ToDouble(), 1e-3);
        // The configured loss: DASP's default, and the plain Dice still selectable.
        var viaOptions = new SegmentationLoss(new SegmentationLossOptions { Kind = SegmentationLossKind.GeneralizedDice }, 1).Compute(logits, target);
        Assert.AreEqual(hand.Average(), viaOptions.ToDouble(), 1e-12);
    }

    [TestMethod]
    public void Batch_PoolsVolumesAndSumsOverTheBatch()
    {
        using var scope = NewDisposeScope();
        const int n = 2, hw = 12;
        var (z, y) = BinaryData(n, hw, 2, emptyFirst: false);
        var p = z.Select(a => 1 / (1 + Math.Exp(-a))).ToArray();
        // The batch as one image of 2·hw pixels.
        var pooled = Hand([[y.Select(a => 1 - a).ToArray(), y]], [[p.Select(a => 1 - a).ToArray(), p]], 1e-5)[0];
        var value = SegmentationLosses.GeneralizedDice(tensor(z, [n, 1, 3, 4]), tensor(y, [n, 1, 3, 4]), reduction: DiceReduction.Batch).ToDouble();
        Assert.AreEqual(pooled, value, 1e-12);
    }

    [TestMethod]
    public void MultiClass_MatchesTheFormula_WithAndWithoutBackground()
    {
        using var scope = NewDisposeScope();
        const int n = 2, k = 3, h = 3, w = 4, hw = h * w;
        var rng = new Random(3);
        var z = Enumerable.Range(0, n * k * hw).Select(_ => rng.NextDouble() * 4 - 2).ToArray();
        // Image 0 lacks class 2 (its weight becomes the largest finite one).
        var cls = Enumerable.Range(0, n * hw).Select(i => (long)(i < hw ? rng.Next(2) : rng.Next(3))).ToArray();
        var probs = new double[n][][];
        var refs = new double[n][][];
        for (int b = 0; b < n; b++)
        {
            probs[b] = new double[k][];
            refs[b] = new double[k][];
            for (int c = 0; c < k; c++) { probs[b][c] = new double[hw]; refs[b][c] = new double[hw]; }
            for (int i = 0; i < hw; i++)
            {
                var e = Enumerable.Range(0, k).Select(c => Math.Exp(z[(b * k + c) * hw + i])).ToArray();
                for (int c = 0; c < k; c++) { probs[b][c][i] = e[c] / e.Sum(); refs[b][c][i] = cls[b * hw + i] == c ? 1 : 0; }
            }
        }
        var logits = tensor(z, [n, k, h, w]);
        var target = tensor(cls, [n, h, w]);
        Assert.AreEqual(Hand(refs, probs, 1e-5).Average(), SegmentationLosses.GeneralizedDice(logits, target).ToDouble(), 1e-12);
        var noBg = Hand(refs.Select(r => r.Skip(1).ToArray()).ToArray(), probs.Select(q => q.Skip(1).ToArray()).ToArray(), 1e-5);
        Assert.AreEqual(noBg.Average(), SegmentationLosses.GeneralizedDice(logits, target, includeBackground: false).ToDouble(), 1e-12);
    }

    [TestMethod]
    public void Gradient_MatchesFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        const int n = 2, hw = 16;
        var (z, y) = BinaryData(n, hw, 4, emptyFirst: true);
        var target = tensor(y, [n, 1, 4, 4]);
        var weights = tensor(new[] { 0.25, 0.75 });
        var x = tensor(z, [n, 1, 4, 4]).requires_grad_();
        var grad = Gradients.Grad(SegmentationLosses.GeneralizedDice(x, target, weights), [x])[0].reshape(-1).ToArray<double>();
        double F(double[] v)
        {
            using var inner = NewDisposeScope();
            return SegmentationLosses.GeneralizedDice(tensor(v, [n, 1, 4, 4]), target, weights).ToDouble();
        }
        for (int i = 0; i < z.Length; i++)
        {
            var p = (double[])z.Clone();
            var m = (double[])z.Clone();
            p[i] += 1e-6;
            m[i] -= 1e-6;
            double fd = (F(p) - F(m)) / 2e-6;
            Assert.AreEqual(fd, grad[i], 1e-7 + 1e-5 * Math.Abs(fd), $"element {i}");
        }
        Assert.IsTrue(grad.Count(g => Math.Abs(g) > 1e-4) > 20, "a gradient on most logits");
    }

    [TestMethod]
    public void DaspDefaultsToTheGeneralizedDice_TheTrainerToThePlainDice()
    {
        Assert.AreEqual(SegmentationLossKind.GeneralizedDice, new DaspOptions().Segmentation.Loss.Kind);
        Assert.AreEqual(SegmentationLossKind.GeneralizedDice, new DaspOptions().Clone().Segmentation.Loss.Kind);
        Assert.AreEqual(SegmentationLossKind.Dice, new SegmentationTrainerOptions().Loss.Kind);
        var o = new SegmentationLossOptions { Kind = SegmentationLossKind.GeneralizedDice, GeneralizedDiceSmooth = -1 };
        Assert.ThrowsExactly<ArgumentException>(() => o.Validate(1));
        new SegmentationLossOptions { Kind = SegmentationLossKind.GeneralizedDice }.Validate(3);
    }
}
