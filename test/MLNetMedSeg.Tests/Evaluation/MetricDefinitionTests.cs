using MLNetMedSeg.Evaluation;
using static MLNetMedSeg.Tests.Evaluation.EvalData;

namespace MLNetMedSeg.Tests.Evaluation;

[TestClass]
public class MetricDefinitionTests
{
    private const double Tol = 1e-12;

    // GT          Pred
    // 1100        1111      tp = (0,0),(0,1),(1,1) = 3; fp = (0,2),(0,3) = 2; fn = (1,0) = 1; tn = 16 - 6 = 10
    // 1100        0100
    // 0000        0000
    // 0000        0000
    private static readonly string[] Gt = ["1100", "1100", "0000", "0000"];
    private static readonly string[] Pr = ["1111", "0100", "0000", "0000"];

    [TestMethod]
    public void EveryMetricMatchesHandComputedValues()
    {
        using var scope = torch.NewDisposeScope();
        var r = SegmentationMetrics.FromTensors(Mask(Pr), Mask(Gt));
        Assert.AreEqual(1, r.ImageCount);
        var c = r.Images[0].Classes[0];
        Assert.AreEqual(1, c.Class);
        Assert.AreEqual(new ConfusionCounts(3, 2, 1, 10), c.Counts);
        var m = c.Metrics;
        Assert.AreEqual(3.0 / 6, m.IoU, Tol);           // tp/(tp+fp+fn)
        Assert.AreEqual(6.0 / 9, m.Dice, Tol);          // 2tp/(2tp+fp+fn)
        Assert.AreEqual(3.0 / 5, m.Precision, Tol);     // tp/(tp+fp)
        Assert.AreEqual(3.0 / 4, m.Recall, Tol);        // tp/(tp+fn)
        Assert.AreEqual(10.0 / 12, m.Specificity, Tol); // tn/(tn+fp)
        Assert.AreEqual(13.0 / 16, m.Accuracy, Tol);    // (tp+tn)/all
        // Boundaries: GT = its 4 pixels; prediction = its 5 pixels. Pred→GT: 0,0,1,2,0; GT→pred: 0,0,1,0.
        // Pooled sorted: 0,0,0,0,0,0,1,1,2; 95th percentile at rank 0.95·8 = 7.6 → 1 + 0.6·(2 − 1) = 1.6.
        Assert.AreEqual(1.6, m.Hd95, 1e-9);
        // One image, one class: every reduction equals the per-image value.
        foreach (var metric in MetricFormulas.CountMetrics)
        {
            Assert.AreEqual(m[metric], r.PerImageMean[metric], Tol, metric.ToString());
            Assert.AreEqual(m[metric], r.Micro[metric], Tol, metric.ToString());
            Assert.AreEqual(m[metric], r.Macro[metric], Tol, metric.ToString());
        }
        Assert.AreEqual(1.6, r.PerImageMean.Hd95, 1e-9);
        Assert.IsTrue(double.IsNaN(r.Micro.Hd95));
    }

    [TestMethod]
    public void TensorLevelStatsAndMetricsMatchTheScalarDefinitions()
    {
        using var scope = torch.NewDisposeScope();
        var pred = torch.stack([Mask(Pr), Mask(Gt), Mask("0000", "0000", "0000", "0000")], 0); // [3,1,4,4]
        var gt = torch.stack([Mask(Gt), Mask(Gt), Mask("0000", "0000", "0000", "0000")], 0);
        var (tp, fp, fn, tn) = SegmentationMetrics.GetStats(pred, gt);
        CollectionAssert.AreEqual(new long[] { 3, 1 }, tp.shape);
        Assert.AreEqual(ScalarType.Int64, tp.dtype);
        CollectionAssert.AreEqual(new long[] { 3, 4, 0 }, tp.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 2, 0, 0 }, fp.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 1, 0, 0 }, fn.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 10, 12, 16 }, tn.ToArray<long>());
        var dice = SegmentationMetrics.Compute(SegmentationMetric.Dice, tp, fp, fn, tn, EmptyMaskPolicy.Ignore).ToArray<double>();
        Assert.AreEqual(6.0 / 9, dice[0], Tol);
        Assert.AreEqual(1.0, dice[1], Tol);
        Assert.IsTrue(double.IsNaN(dice[2]));
        var iouOne = SegmentationMetrics.Compute(SegmentationMetric.IoU, tp, fp, fn, tn, EmptyMaskPolicy.One).ToArray<double>();
        CollectionAssert.AreEqual(new[] { 0.5, 1.0, 1.0 }, iouOne);
        var precZero = SegmentationMetrics.Compute(SegmentationMetric.Precision, tp, fp, fn, tn, EmptyMaskPolicy.Zero).ToArray<double>();
        CollectionAssert.AreEqual(new[] { 0.6, 1.0, 0.0 }, precZero);
        var spec = SegmentationMetrics.Compute(SegmentationMetric.Specificity, tp, fp, fn, tn).ToArray<double>();
        CollectionAssert.AreEqual(new[] { 10.0 / 12, 1.0, 1.0 }, spec);

        // Background as a class: class 0 counts are the foreground's with tp↔tn and fp↔fn swapped.
        var (tp2, fp2, fn2, tn2) = SegmentationMetrics.GetStats(pred, gt, includeBackground: true);
        CollectionAssert.AreEqual(new long[] { 3, 2 }, tp2.shape);
        CollectionAssert.AreEqual(new long[] { 10, 3, 12, 4, 16, 0 }, tp2.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 1, 2, 0, 0, 0, 0 }, fp2.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 2, 1, 0, 0, 0, 0 }, fn2.ToArray<long>());
        CollectionAssert.AreEqual(new long[] { 3, 10, 4, 12, 0, 16 }, tn2.ToArray<long>());
    }

    [TestMethod]
    public void ProbabilitiesAreThresholdedAtHalfByDefaultAndAtTheOption()
    {
        using var scope = torch.NewDisposeScope();
        // Probabilities 0.2 / 0.49 / 0.5 / 0.7 / 0.9 against GT 1 1 1 1 0.
        var prob = torch.tensor(new float[] { 0.2f, 0.49f, 0.5f, 0.7f, 0.9f }, [1, 1, 5]);
        var gt = torch.tensor(new float[] { 1, 1, 1, 1, 0 }, [1, 1, 5]);
        // ≥ 0.5 → predicted 0 0 1 1 1: tp 2, fp 1, fn 2, tn 0.
        var r = SegmentationMetrics.FromTensors(prob, gt);
        Assert.AreEqual(new ConfusionCounts(2, 1, 2, 0), r.Images[0].Classes[0].Counts);
        Assert.AreEqual(2.0 / 5, r.MeanIoU, Tol);
        // ≥ 0.6 → 0 0 0 1 1: tp 1, fp 1, fn 3.
        r = SegmentationMetrics.FromTensors(prob, gt, new EvaluationOptions { Threshold = 0.6 });
        Assert.AreEqual(new ConfusionCounts(1, 1, 3, 0), r.Images[0].Classes[0].Counts);
        Assert.AreEqual(2.0 / 6, r.MeanDice, Tol);
        // Logits with threshold 0 give the same masks as sigmoid probabilities at 0.5.
        var logits = torch.tensor(new float[] { -1.4f, -0.04f, 0f, 0.85f, 2.2f }, [1, 1, 5]);
        r = SegmentationMetrics.FromTensors(logits, gt, new EvaluationOptions { Threshold = 0 });
        Assert.AreEqual(new ConfusionCounts(2, 1, 2, 0), r.Images[0].Classes[0].Counts);
    }

    [TestMethod]
    public void EmptyGroundTruthAndEmptyPrediction_FollowsEachPolicy()
    {
        using var scope = torch.NewDisposeScope();
        var empty = Mask("0000", "0000", "0000", "0000");
        foreach (var (policy, v) in new[] { (EmptyMaskPolicy.Zero, 0.0), (EmptyMaskPolicy.One, 1.0), (EmptyMaskPolicy.Ignore, double.NaN) })
        {
            var r = SegmentationMetrics.FromTensors(empty, empty, new EvaluationOptions { EmptyMaskPolicy = policy });
            var m = r.Images[0].Classes[0].Metrics;
            Assert.AreEqual(new ConfusionCounts(0, 0, 0, 16), r.Images[0].Classes[0].Counts);
            Assert.AreEqual(v, m.IoU, policy.ToString());
            Assert.AreEqual(v, m.Dice, policy.ToString());
            Assert.AreEqual(v, m.Precision, policy.ToString());
            Assert.AreEqual(v, m.Recall, policy.ToString());
            Assert.AreEqual(1.0, m.Specificity); // 16/16: defined
            Assert.AreEqual(1.0, m.Accuracy);
            // HD95: both empty = perfect agreement (0) under One only; NaN and dropped otherwise.
            Assert.AreEqual(policy == EmptyMaskPolicy.One ? 0.0 : double.NaN, m.Hd95, policy.ToString());
            Assert.AreEqual(policy == EmptyMaskPolicy.One ? 0 : 1, r.Dropped[SegmentationMetric.Hd95]);
            int dropped = policy == EmptyMaskPolicy.Ignore ? 1 : 0;
            Assert.AreEqual(dropped, r.Dropped[SegmentationMetric.IoU]);
            Assert.AreEqual(dropped, r.Dropped[SegmentationMetric.Recall]);
            Assert.AreEqual(0, r.Dropped[SegmentationMetric.Accuracy]);
            Assert.AreEqual(v, r.MeanIoU, policy.ToString()); // the only image: NaN when ignored
            Assert.AreEqual(v, r.Micro.IoU, policy.ToString()); // dataset-level 0/0 too
        }
    }

    [TestMethod]
    public void EmptyGroundTruthWithNonEmptyPrediction_FollowsEachPolicy()
    {
        using var scope = torch.NewDisposeScope();
        var gt = Mask("0000", "0000", "0000", "0000");
        var pr = Mask("0000", "0110", "0000", "0000"); // tp 0, fp 2, fn 0, tn 14
        foreach (var (policy, v) in new[] { (EmptyMaskPolicy.Zero, 0.0), (EmptyMaskPolicy.One, 1.0), (EmptyMaskPolicy.Ignore, double.NaN) })
        {
            var r = SegmentationMetrics.FromTensors(pr, gt, new EvaluationOptions { EmptyMaskPolicy = policy });
            var m = r.Images[0].Classes[0].Metrics;
            Assert.AreEqual(new ConfusionCounts(0, 2, 0, 14), r.Images[0].Classes[0].Counts);
            Assert.AreEqual(0.0, m.IoU);          // 0/2 whatever the policy
            Assert.AreEqual(0.0, m.Dice);
            Assert.AreEqual(0.0, m.Precision);    // 0/(0+2)
            Assert.AreEqual(v, m.Recall, policy.ToString()); // 0/0
            Assert.AreEqual(14.0 / 16, m.Specificity, Tol);
            Assert.AreEqual(14.0 / 16, m.Accuracy, Tol);
            Assert.IsTrue(double.IsNaN(m.Hd95), "no distance exists to an empty ground truth");
            Assert.AreEqual(1, r.Dropped[SegmentationMetric.Hd95]);
            Assert.AreEqual(policy == EmptyMaskPolicy.Ignore ? 1 : 0, r.Dropped[SegmentationMetric.Recall]);
            Assert.AreEqual(0, r.Dropped[SegmentationMetric.IoU]);
        }
    }

    [TestMethod]
    public void NonEmptyGroundTruthWithEmptyPrediction_FollowsEachPolicy()
    {
        using var scope = torch.NewDisposeScope();
        var gt = Mask("0000", "0110", "0010", "0000"); // 3 px
        var pr = Mask("0000", "0000", "0000", "0000"); // tp 0, fp 0, fn 3, tn 13
        foreach (var (policy, v) in new[] { (EmptyMaskPolicy.Zero, 0.0), (EmptyMaskPolicy.One, 1.0), (EmptyMaskPolicy.Ignore, double.NaN) })
        {
            var r = SegmentationMetrics.FromTensors(pr, gt, new EvaluationOptions { EmptyMaskPolicy = policy });
            var m = r.Images[0].Classes[0].Metrics;
            Assert.AreEqual(new ConfusionCounts(0, 0, 3, 13), r.Images[0].Classes[0].Counts);
            Assert.AreEqual(0.0, m.IoU);
            Assert.AreEqual(0.0, m.Dice);
            Assert.AreEqual(v, m.Precision, policy.ToString()); // 0/0
            Assert.AreEqual(0.0, m.Recall);                      // 0/3
            Assert.AreEqual(1.0, m.Specificity);                 // 13/13
            Assert.AreEqual(13.0 / 16, m.Accuracy, Tol);
            Assert.IsTrue(double.IsNaN(m.Hd95));
            Assert.AreEqual(policy == EmptyMaskPolicy.Ignore ? 1 : 0, r.Dropped[SegmentationMetric.Precision]);
        }
    }

    [TestMethod]
    public void IgnoreDropsEmptyImagesFromTheMeanWhileZeroAndOneCountThem()
    {
        using var scope = torch.NewDisposeScope();
        var empty = Mask("0000", "0000", "0000", "0000");
        var pred = torch.stack([Mask(Pr), empty], 0);
        var gt = torch.stack([Mask(Gt), empty], 0); // image 0: IoU 0.5; image 1: both empty
        double Mean(EmptyMaskPolicy p) => SegmentationMetrics.FromTensors(pred, gt, new EvaluationOptions { EmptyMaskPolicy = p }).MeanIoU;
        Assert.AreEqual(0.25, Mean(EmptyMaskPolicy.Zero), Tol);  // (0.5 + 0) / 2
        Assert.AreEqual(0.75, Mean(EmptyMaskPolicy.One), Tol);   // (0.5 + 1) / 2
        Assert.AreEqual(0.5, Mean(EmptyMaskPolicy.Ignore), Tol); // 0.5 / 1, one image dropped
        var r = SegmentationMetrics.FromTensors(pred, gt, new EvaluationOptions { EmptyMaskPolicy = EmptyMaskPolicy.Ignore });
        Assert.AreEqual(1, r.Dropped[SegmentationMetric.IoU]);
        Assert.AreEqual(1, r.DroppedImages[SegmentationMetric.IoU]);
        Assert.AreEqual(1, r.PerClass[0].Dropped[SegmentationMetric.IoU]);
        // Micro sums counts first, so the empty image adds only true negatives: 3/6 in every policy.
        Assert.AreEqual(0.5, r.Micro.IoU, Tol);
        // Per-image mean and micro differ for binary masks too: (0.5 + 1)/2 vs 3/6.
        var one = SegmentationMetrics.FromTensors(pred, gt);
        Assert.AreEqual(0.75, one.PerImageMean.IoU, Tol);
        Assert.AreEqual(0.5, one.Micro.IoU, Tol);
    }

    [TestMethod]
    public void DefaultOptionsAreThePapersSettings()
    {
        var o = new EvaluationOptions();
        Assert.AreEqual(0.5, o.Threshold);
        Assert.AreEqual(EmptyMaskPolicy.One, o.EmptyMaskPolicy);
        Assert.IsFalse(o.IncludeBackground);
        Assert.IsTrue(o.ComputeHd95);
    }

    [TestMethod]
    public void BadInputsAreRejectedWithTheArgumentNamed()
    {
        using var scope = torch.NewDisposeScope();
        var e = Assert.ThrowsException<ArgumentException>(() => SegmentationMetrics.FromTensors(Mask(Pr), Mask("000", "000", "000")));
        StringAssert.Contains(e.Message, "differ in size");
        e = Assert.ThrowsException<ArgumentException>(() => SegmentationMetrics.FromTensors(torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)));
        StringAssert.Contains(e.Message, "prediction");
        e = Assert.ThrowsException<ArgumentException>(() =>
            SegmentationMetrics.FromTensors(Labels("0120", "0000"), Labels("0130", "0000"), numClasses: 3));
        StringAssert.Contains(e.Message, "target: class indices must be in 0..2");
        e = Assert.ThrowsException<ArgumentException>(() =>
            SegmentationMetrics.FromTensors(torch.zeros(4, 2, 4), Labels("0120", "0000"), numClasses: 3));
        StringAssert.Contains(e.Message, "4 channels but numClasses is 3");
        e = Assert.ThrowsException<ArgumentException>(() =>
            SegmentationMetrics.FromTensors(Mask(Pr), Mask(Gt), ids: ["a", "b"]));
        StringAssert.Contains(e.Message, "2 ids");
    }
}
