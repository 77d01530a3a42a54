using MLNetMedSeg.Core;
using MLNetMedSeg.Evaluation;
using static MLNetMedSeg.Tests.Evaluation.EvalData;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Evaluation;

[TestClass]
public class ReductionTests
{
    private const double Tol = 1e-12;

    // Three classes (0 background, 1, 2), two 4×4 images.
    // Image A: class 1 GT (0,0),(0,1),(1,0),(1,1); predicted (0,0)..(0,3) → tp 2, fp 2, fn 2 → IoU 1/3, Dice 1/2.
    //          class 2 GT = predicted = (3,2),(3,3)              → tp 2                → IoU 1,   Dice 1.
    // Image B: class 1 GT = predicted = rows 0–1                 → tp 8                → IoU 1,   Dice 1.
    //          class 2 GT (3,0),(3,1), predicted background      → fn 2                → IoU 0,   Dice 0.
    private static readonly string[] GtA = ["1100", "1100", "0000", "0022"];
    private static readonly string[] PrA = ["1111", "0000", "0000", "0022"];
    private static readonly string[] GtB = ["1111", "1111", "0000", "2200"];
    private static readonly string[] PrB = ["1111", "1111", "0000", "0000"];

    private static EvaluationResult Evaluate(bool includeBackground, bool scores = false)
    {
        var gt = torch.stack([Labels(GtA), Labels(GtB)], 0);
        var pr = torch.stack([Labels(PrA), Labels(PrB)], 0);
        if (scores) pr = torch.nn.functional.one_hot(pr, 3).permute(0, 3, 1, 2).to(ScalarType.Float32) * S(0.8) + S(0.1); // [2,3,4,4]
        return SegmentationMetrics.FromTensors(pr, gt, numClasses: 3, new EvaluationOptions { IncludeBackground = includeBackground });
    }

    [TestMethod]
    public void PerImageMeanMicroAndMacroDifferAsHandComputed()
    {
        using var scope = torch.NewDisposeScope();
        var r = Evaluate(includeBackground: false);
        CollectionAssert.AreEqual(new[] { 1, 2 }, r.Classes.ToArray());
        // Per-image mean: A (1/3 + 1)/2 = 2/3, B (1 + 0)/2 = 1/2 → 7/12.
        Assert.AreEqual(7.0 / 12, r.PerImageMean.IoU, Tol);
        // Micro: tp 2+2+8+0 = 12, fp 2, fn 2+2 = 4 → 12/18.
        Assert.AreEqual(12.0 / 18, r.Micro.IoU, Tol);
        // Macro: class 1 (tp 10, fp 2, fn 2) 10/14; class 2 (tp 2, fn 2) 2/4 → (5/7 + 1/2)/2 = 17/28.
        Assert.AreEqual(17.0 / 28, r.Macro.IoU, Tol);
        // Dice: per-image (3/4 + 1/2)/2 = 5/8; micro 24/30; macro (20/24 + 4/6)/2 = 3/4.
        Assert.AreEqual(5.0 / 8, r.PerImageMean.Dice, Tol);
        Assert.AreEqual(24.0 / 30, r.Micro.Dice, Tol);
        Assert.AreEqual(3.0 / 4, r.Macro.Dice, Tol);
        Assert.AreEqual(r.PerImageMean.IoU, r.Get(SegmentationMetric.IoU));
        Assert.AreEqual(r.Macro.Dice, r.Get(SegmentationMetric.Dice, MetricReduction.Macro));
    }

    [TestMethod]
    public void PerClassRowsHoldCountsMicroAndPerImageMeans()
    {
        using var scope = torch.NewDisposeScope();
        var r = Evaluate(includeBackground: false);
        Assert.AreEqual(2, r.PerClass.Count);
        var c1 = r.PerClass[0];
        var c2 = r.PerClass[1];
        Assert.AreEqual(1, c1.Class);
        Assert.AreEqual("class 1", c1.Name);
        Assert.AreEqual(new ConfusionCounts(10, 2, 2, 18), c1.Counts);
        Assert.AreEqual(new ConfusionCounts(2, 0, 2, 28), c2.Counts);
        Assert.AreEqual(10.0 / 14, c1.Micro.IoU, Tol);
        Assert.AreEqual(0.5, c2.Micro.IoU, Tol);
        Assert.AreEqual(2.0 / 3, c1.PerImageMean.IoU, Tol); // (1/3 + 1)/2
        Assert.AreEqual(0.5, c2.PerImageMean.IoU, Tol);     // (1 + 0)/2
        // Per image: A's class rows.
        var a = r.Images[0];
        Assert.AreEqual(new ConfusionCounts(2, 2, 2, 10), a.Classes[0].Counts);
        Assert.AreEqual(new ConfusionCounts(2, 0, 0, 14), a.Classes[1].Counts);
        Assert.AreEqual(2.0 / 3, a.Mean.IoU, Tol);
        // HD95 of B's class 2: predicted empty → NaN, dropped; A's class 2 identical → 0.
        Assert.IsTrue(double.IsNaN(r.Images[1].Classes[1].Metrics.Hd95));
        Assert.AreEqual(0.0, a.Classes[1].Metrics.Hd95);
        Assert.AreEqual(1, r.Dropped[SegmentationMetric.Hd95]);
        Assert.AreEqual(1, c2.Dropped[SegmentationMetric.Hd95]);
    }

    [TestMethod]
    public void BackgroundIsAClassWhenIncluded()
    {
        using var scope = torch.NewDisposeScope();
        var r = Evaluate(includeBackground: true);
        CollectionAssert.AreEqual(new[] { 0, 1, 2 }, r.Classes.ToArray());
        // Background: A tp 8, fp 2 ((1,0),(1,1)), fn 2 ((0,2),(0,3)), tn 4 → 8/12; B tp 6, fp 2, fn 0, tn 8 → 6/8.
        Assert.AreEqual(new ConfusionCounts(8, 2, 2, 4), r.Images[0].Classes[0].Counts);
        Assert.AreEqual(new ConfusionCounts(6, 2, 0, 8), r.Images[1].Classes[0].Counts);
        Assert.AreEqual("background", r.PerClass[0].Name);
        // Per-image: A (2/3 + 1/3 + 1)/3 = 2/3, B (3/4 + 1 + 0)/3 = 7/12 → 5/8.
        Assert.AreEqual(5.0 / 8, r.PerImageMean.IoU, Tol);
        // Micro: tp 14+10+2 = 26, fp 4+2+0 = 6, fn 2+2+2 = 6 → 26/38.
        Assert.AreEqual(26.0 / 38, r.Micro.IoU, Tol);
        // Macro: background 14/20, class 1 10/14, class 2 2/4.
        Assert.AreEqual((14.0 / 20 + 10.0 / 14 + 0.5) / 3, r.Macro.IoU, Tol);
    }

    [TestMethod]
    public void ScoresAreReducedByArgmaxAndGiveTheSameResultAsClassIndices()
    {
        using var scope = torch.NewDisposeScope();
        var a = Evaluate(includeBackground: false);
        var b = Evaluate(includeBackground: false, scores: true);
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 2; j++)
                Assert.AreEqual(a.Images[i].Classes[j].Counts, b.Images[i].Classes[j].Counts);
        Assert.AreEqual(a.Macro, b.Macro);
        // Multi-class tensor stats.
        var (tp, fp, fn, tn) = SegmentationMetrics.GetStats(torch.stack([Labels(PrA), Labels(PrB)], 0), torch.stack([Labels(GtA), Labels(GtB)], 0), 3);
        CollectionAssert.AreEqual(new long[] { 2, 2, 8, 0 }, tp.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 2, 0, 0, 0 }, fp.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 2, 0, 0, 2 }, fn.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 10, 14, 8, 14 }, tn.ToArray<long>());
    }

    [TestMethod]
    public void BinaryMasksWithBackgroundEvaluateTwoClasses()
    {
        using var scope = torch.NewDisposeScope();
        var pr = Mask("1111", "0100", "0000", "0000");
        var gt = Mask("1100", "1100", "0000", "0000");
        var r = SegmentationMetrics.FromTensors(pr, gt, new EvaluationOptions { IncludeBackground = true });
        CollectionAssert.AreEqual(new[] { 0, 1 }, r.Classes.ToArray());
        Assert.AreEqual(new ConfusionCounts(10, 1, 2, 3), r.Images[0].Classes[0].Counts); // background: 10/13
        Assert.AreEqual((10.0 / 13 + 3.0 / 6) / 2, r.MeanIoU, Tol);
    }

    [TestMethod]
    public void AccumulatingBatchesEqualsOneBigBatchAndReleasesEveryTensor()
    {
        using var scope = torch.NewDisposeScope();
        var gen = new Generator(7);
        var pred = torch.rand([6, 1, 9, 11], generator: gen);
        var gt = torch.rand([6, 1, 9, 11], generator: gen).ge(S(0.6)).to(ScalarType.Float32);
        long live = LiveTensors.Settled();
        var ev = SegmentationEvaluator.Binary();
        using (torch.NewDisposeScope())
        {
            ev.Add(pred.narrow(0, 0, 4), gt.narrow(0, 0, 4));
            ev.Add(pred.narrow(0, 4, 2), gt.narrow(0, 4, 2));
        }
        Assert.AreEqual(live, LiveTensors.Settled(), "the evaluator keeps no tensor");
        var split = ev.GetResult();
        var whole = SegmentationMetrics.FromTensors(pred, gt);
        Assert.AreEqual(6, split.ImageCount);
        CollectionAssert.AreEqual(whole.Images.Select(i => i.Id).ToArray(), split.Images.Select(i => i.Id).ToArray());
        Assert.AreEqual(whole.PerImageMean, split.PerImageMean);
        Assert.AreEqual(whole.Micro, split.Micro);
        ev.Reset();
        Assert.AreEqual(0, ev.Count);
    }
}
