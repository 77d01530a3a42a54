using MLNetMedSeg.Segmentation.Losses;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Segmentation;

[TestClass]
public sealed class SegmentationLossTests
{
    private static readonly double Ln3 = Math.Log(3);

    // Two binary 1×2 images. Image 0: logits [0, ln3] → p [0.5, 0.75], y [1, 0]: inter 0.5, Σp 1.25, Σy 1.
    // Image 1: logits [ln3, 0] → p [0.75, 0.5], y [1, 1]: inter 1.25, Σp 1.25, Σy 2.
    private static (Tensor logits, Tensor y) TwoBinaryImages() =>
        (tensor(new[] { 0, Ln3, Ln3, 0 }, [2, 1, 1, 2]), tensor(new[] { 1.0, 0, 1, 1 }, [2, 1, 1, 2]));

    [TestMethod]
    public void BinaryDice_PerImage_MatchesHandComputedValues()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TwoBinaryImages();
        double l0 = 1 - (2 * 0.5 + 1) / (1.25 + 1 + 1), l1 = 1 - (2 * 1.25 + 1) / (1.25 + 2 + 1);
        Assert.AreEqual((l0 + l1) / 2, SegmentationLosses.SoftDice(x, y).ToDouble(), 1e-12);
        Assert.AreEqual(l0, SegmentationLosses.SoftDice(x, y, tensor(new[] { 1.0, 0 })).ToDouble(), 1e-12);
        Assert.AreEqual(0.3 * l0 + 0.7 * l1, SegmentationLosses.SoftDice(x, y, tensor(new[] { 0.3, 0.7 })).ToDouble(), 1e-12);
        // smooth 0: plain Dice.
        Assert.AreEqual(1 - 2 * 0.5 / 2.25, SegmentationLosses.SoftDice(x.narrow(0, 0, 1), y.narrow(0, 0, 1), smooth: 0).ToDouble(), 1e-12);
    }

    [TestMethod]
    public void BinaryDice_Batch_PoolsThePixelsOfTheBatch()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TwoBinaryImages();
        double expected = 1 - (2 * 1.75 + 1) / (2.5 + 3 + 1);
        Assert.AreEqual(expected, SegmentationLosses.SoftDice(x, y, reduction: DiceReduction.Batch).ToDouble(), 1e-12);
        // Per image and batch differ here (the smp #712 effect).
        Assert.AreNotEqual(expected, SegmentationLosses.SoftDice(x, y).ToDouble(), 1e-3);
        // Weights [0, 2]: only image 1 counts, scaled by Σw = 2.
        double only1 = 1 - (2 * 1.25 * 2 + 1) / (3.25 * 2 + 1);
        Assert.AreEqual(2 * only1, SegmentationLosses.SoftDice(x, y, tensor(new[] { 0.0, 1.0 }).mul(S(2)), DiceReduction.Batch).ToDouble(), 1e-12);
    }

    [TestMethod]
    public void MultiClassDice_WithAndWithoutBackground()
    {
        using var scope = NewDisposeScope();
        // One 1×2 image, 2 classes: pixel 0 logits [0,0] → p [0.5,0.5]; pixel 1 [0, ln3] → p [0.25, 0.75]; target [0, 1].
        var x = tensor(new[] { 0, 0, 0, Ln3 }, [1, 2, 1, 2]);
        var y = tensor(new long[] { 0, 1 }, [1, 1, 2]);
        double d0 = (2 * 0.5 + 1) / (0.75 + 1 + 1), d1 = (2 * 0.75 + 1) / (1.25 + 1 + 1);
        Assert.AreEqual(1 - (d0 + d1) / 2, SegmentationLosses.SoftDice(x, y).ToDouble(), 1e-12);
        Assert.AreEqual(1 - d1, SegmentationLosses.SoftDice(x, y, includeBackground: false).ToDouble(), 1e-12);
    }

    [TestMethod]
    public void Bce_And_CrossEntropy_MatchHandComputedValues()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TwoBinaryImages();
        // Image 0: −log σ(0) = ln2 (y=1), −log(1−σ(ln3)) = ln4 (y=0). Image 1: −log 0.75, −log 0.5.
        double b0 = (Math.Log(2) + Math.Log(4)) / 2, b1 = (-Math.Log(0.75) + Math.Log(2)) / 2;
        Assert.AreEqual((b0 + b1) / 2, SegmentationLosses.BinaryCrossEntropy(x, y).ToDouble(), 1e-12);
        var xc = tensor(new[] { 0, 0, 0, Ln3 }, [1, 2, 1, 2]);
        var yc = tensor(new long[] { 0, 1 }, [1, 1, 2]);
        Assert.AreEqual((Math.Log(2) - Math.Log(0.75)) / 2, SegmentationLosses.CrossEntropy(xc, yc).ToDouble(), 1e-12);
        var combined = new SegmentationLoss(new SegmentationLossOptions { Kind = SegmentationLossKind.DiceBce, CrossEntropyWeight = 0.5 }, 1);
        Assert.AreEqual(SegmentationLosses.SoftDice(x, y).ToDouble() + 0.5 * (b0 + b1) / 2, combined.Compute(x, y).ToDouble(), 1e-12);
    }

    [TestMethod]
    public void Eq11Weights_GiveMeanOverRealPlusMeanOverAugmented()
    {
        using var scope = NewDisposeScope();
        var g = new Generator(5);
        var x = randn([5, 1, 4, 4], ScalarType.Float64, generator: g);
        var y = rand([5, 1, 4, 4], ScalarType.Float64, generator: g).gt(S(0.5)).to(ScalarType.Float64);
        bool[] aug = [false, true, false, false, true];
        var w = SampleWeights.RealAndAugmented(aug);
        CollectionAssert.AreEqual(new[] { 1f / 3, 0.5f, 1f / 3, 1f / 3, 0.5f }, w.ToArray<float>());
        var per = Enumerable.Range(0, 5).Select(i => SegmentationLosses.SoftDice(x.narrow(0, i, 1), y.narrow(0, i, 1)).ToDouble()).ToArray();
        double expected = (per[0] + per[2] + per[3]) / 3 + (per[1] + per[4]) / 2;
        double got = SegmentationLosses.SoftDice(x, y, w).ToDouble();
        Assert.AreEqual(expected, got, 1e-6);
        // The unweighted mean differs: the weights do change the loss as Eq. 11 says.
        Assert.AreNotEqual(per.Average(), got, 1e-3);
        var bce = Enumerable.Range(0, 5).Select(i => SegmentationLosses.BinaryCrossEntropy(x.narrow(0, i, 1), y.narrow(0, i, 1)).ToDouble()).ToArray();
        Assert.AreEqual((bce[0] + bce[2] + bce[3]) / 3 + (bce[1] + bce[4]) / 2, SegmentationLosses.BinaryCrossEntropy(x, y, w).ToDouble(), 1e-6);
        // Helper over a batch's Number column.
        using (var view = MLNetMedSeg.Data.InMemoryDataView.Create(("W", MLNetMedSeg.Data.NumberColumnType.Instance, new List<double> { 0, 2, 0, 0, 1 })))
        {
            foreach (var batch in MLNetMedSeg.Data.DataBatchExtensions.GetBatches(view, ["W"], 5))
            {
                CollectionAssert.AreEqual(new[] { 1f / 3, 0.5f, 1f / 3, 1f / 3, 0.5f },
                    SampleWeights.FromBatch(batch, "W", MLNetMedSeg.Segmentation.Losses.SampleWeightMode.IsAugmentedFlag).ToArray<float>());
                CollectionAssert.AreEqual(new[] { 0f, 2f / 3, 0f, 0f, 1f / 3 },
                    SampleWeights.FromBatch(batch, "W", MLNetMedSeg.Segmentation.Losses.SampleWeightMode.Weight).ToArray<float>());
            }
        }
        // Normalised weights: a weighted mean.
        var wn = SampleWeights.Normalized([1, 3, 0, 0, 0]);
        Assert.AreEqual(0.25 * per[0] + 0.75 * per[1], SegmentationLosses.SoftDice(x, y, wn).ToDouble(), 1e-6);
        g.Dispose();
    }

    [TestMethod]
    public void Gradients_MatchFiniteDifferences_Float64()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(11);
        var xb = randn([2, 1, 3, 3], ScalarType.Float64, generator: g);
        var yb = rand([2, 1, 3, 3], ScalarType.Float64, generator: g).gt(S(0.5)).to(ScalarType.Float64);
        var xm = randn([2, 3, 3, 3], ScalarType.Float64, generator: g);
        var ym = randint(0, 3, [2, 3, 3], generator: g);
        var w = tensor(new[] { 0.3, 0.9 });
        var cases = new (string name, Tensor x, Func<Tensor, Tensor> f)[]
        {
            ("dice per image", xb, t => SegmentationLosses.SoftDice(t, yb, w)),
            ("dice batch", xb, t => SegmentationLosses.SoftDice(t, yb, w, DiceReduction.Batch)),
            ("bce", xb, t => SegmentationLosses.BinaryCrossEntropy(t, yb, w)),
            ("multi dice", xm, t => SegmentationLosses.SoftDice(t, ym, w, includeBackground: false)),
            ("multi dice batch", xm, t => SegmentationLosses.SoftDice(t, ym, null, DiceReduction.Batch)),
            ("ce", xm, t => SegmentationLosses.CrossEntropy(t, ym, w)),
        };
        foreach (var (name, x0, f) in cases)
        {
            var x = x0.clone().requires_grad_();
            f(x).backward();
            var grad = x.grad!.flatten().ToArray<double>();
            var flat = x0.flatten().ToArray<double>();
            const double h = 1e-6;
            for (int i = 0; i < flat.Length; i += 3)
            {
                var plus = (double[])flat.Clone();
                var minus = (double[])flat.Clone();
                plus[i] += h;
                minus[i] -= h;
                double fd = (f(tensor(plus, x0.shape)).ToDouble() - f(tensor(minus, x0.shape)).ToDouble()) / (2 * h);
                Assert.AreEqual(fd, grad[i], 1e-7, $"{name}: d/dx[{i}]");
            }
            Assert.IsTrue(grad.Any(v => Math.Abs(v) > 1e-4), $"{name}: the gradient is all zero");
        }
    }

    [TestMethod]
    public void Options_RefuseLossesOfTheOtherHead()
    {
        Assert.ThrowsException<ArgumentException>(() => new SegmentationLoss(new SegmentationLossOptions { Kind = SegmentationLossKind.CrossEntropy }, 1));
        Assert.ThrowsException<ArgumentException>(() => new SegmentationLoss(new SegmentationLossOptions { Kind = SegmentationLossKind.Bce }, 3));
        Assert.ThrowsException<ArgumentException>(() => new SegmentationLoss(new SegmentationLossOptions { Smooth = -1 }, 1));
        using var scope = NewDisposeScope();
        var (x, y) = TwoBinaryImages();
        var ex = Assert.ThrowsException<ArgumentException>(() => SegmentationLosses.SoftDice(x, y, tensor(new[] { 1.0, 1, 1 })));
        StringAssert.Contains(ex.Message, "[2]");
    }
}
