using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Testing;
using static MLNetMedSeg.Tests.Evaluation.EvalData;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Evaluation;

[TestClass]
public class CatalogAndAssertTests
{
    private static readonly string[] Gt = ["1100", "1100", "0000", "0000"];
    private static readonly string[] Pr = ["1111", "0100", "0000", "0000"];

    [TestMethod]
    public void EvaluateBinaryReadsRowsOfMixedSizesByIdAndMatchesTheTensorApi()
    {
        using var scope = torch.NewDisposeScope();
        // Rows of two sizes, interleaved, so batches are cut where the size changes; batch size 2.
        var ids = new[] { "r0", "r1", "r2", "r3", "r4" };
        var masks = new[] { Mask(Gt), Mask(Gt), Mask("11100", "11100", "00000", "00000", "00000"), Mask(Gt), Mask("00000", "00000", "00000", "00000", "00000") };
        var probs = new[] { Mask(Pr) * S(0.8), Mask(Gt) * S(0.6), Mask("01100", "01100", "00000", "00000", "00000") * S(0.9), Mask(Pr) * S(0.4), Mask("00000", "00000", "00000", "00000", "00000") };
        long live = LiveTensors.Settled();
        using var view = BinaryView(ids, masks, probs);
        var ctx = new MedSegContext(seed: 3);
        var logs = new List<string>();
        ctx.Log += (_, e) => logs.Add(e.ToString());
        var r = DataViewEvaluation.EvaluateBinary(ctx, view, options: new EvaluationOptions { BatchSize = 2 });
        CollectionAssert.AreEqual(ids, r.Images.Select(i => i.Id).ToArray());
        Assert.AreEqual("Mask", r.LabelColumn);
        Assert.AreEqual("Probability", r.PredictionColumn);
        // r0: 3/6; r1: 1; r2: tp 4, fn 2 → 4/6; r3: probabilities 0.4 → empty prediction, 0/4; r4: both empty → 1 (policy One).
        double[] iou = [0.5, 1, 4.0 / 6, 0, 1];
        for (int i = 0; i < 5; i++) Assert.AreEqual(iou[i], r.Images[i].Mean.IoU, 1e-12, ids[i]);
        Assert.AreEqual(iou.Average(), r.MeanIoU, 1e-12);
        Assert.AreEqual(1, logs.Count);
        StringAssert.Contains(logs[0], "EvaluateBinary: 5 images: mIoU 0.6333");
        view.Dispose();
        Assert.AreEqual(live - 10, LiveTensors.Settled(), "evaluation leaves no tensor behind (the view's 10 are freed with it)");
        // Same numbers as the tensor API on the 4x4 rows.
        var t = SegmentationMetrics.FromTensors(torch.stack([Mask(Pr) * S(0.8), Mask(Gt) * S(0.6)], 0), torch.stack([Mask(Gt), Mask(Gt)], 0));
        Assert.AreEqual(t.Images[0].Classes[0].Counts, r.Images[0].Classes[0].Counts);
        Assert.AreEqual(t.Images[1].Classes[0].Counts, r.Images[1].Classes[0].Counts);
    }

    [TestMethod]
    public void EvaluateBinaryWithoutIdColumnNamesRowsByPosition()
    {
        using var scope = torch.NewDisposeScope();
        using var view = InMemoryDataView.Create(
            ("Truth", TensorColumnType.BinaryMask(), new[] { Mask(Gt), Mask(Gt) }),
            ("P", TensorColumnType.BinaryMask(), new[] { Mask(Pr), Mask(Gt) }));
        var r = DataViewEvaluation.EvaluateBinary(new MedSegContext(seed: 1), view, "Truth", "P");
        CollectionAssert.AreEqual(new[] { "0", "1" }, r.Images.Select(i => i.Id).ToArray());
        Assert.AreEqual(0.75, r.MeanIoU, 1e-12);
    }

    [TestMethod]
    public void EvaluateMultiClassAcceptsClassIndicesAndScores()
    {
        using var scope = torch.NewDisposeScope();
        var gt = new[] { Labels("0120", "0110") };
        var idx = new[] { Labels("0120", "0120") };
        var scores = new[] { torch.nn.functional.one_hot(Labels("0120", "0120"), 3).permute(2, 0, 1).to(ScalarType.Float32) };
        using var view = InMemoryDataView.Create(
            ("Mask", TensorColumnType.ClassMask(), gt),
            ("Predicted", TensorColumnType.ClassMask(), idx),
            ("Probability", new TensorColumnType(ScalarType.Float32, [3, -1, -1]), scores));
        var ev = new MedSegContext(seed: 1);
        var a = DataViewEvaluation.EvaluateMultiClass(ev, view, 3, "Mask", "Predicted");
        var b = DataViewEvaluation.EvaluateMultiClass(ev, view, 3, "Mask", "Probability");
        Assert.AreEqual((2.0 / 3 + 0.5) / 2, a.MeanIoU, 1e-12);
        Assert.AreEqual(a.PerImageMean, b.PerImageMean);
        Assert.AreEqual(a.Macro, b.Macro);
    }

    [TestMethod]
    public void SchemaErrorsNameTheColumnBeforeAnyWork()
    {
        using var scope = torch.NewDisposeScope();
        using var view = InMemoryDataView.Create(
            ("Id", TextColumnType.Instance, new[] { "a" }),
            ("Mask", TensorColumnType.BinaryMask(), new[] { Mask(Gt) }),
            ("Labels", TensorColumnType.ClassMask(), new[] { Labels("0120", "0110") }),
            ("Scores4", new TensorColumnType(ScalarType.Float32, [4, -1, -1]), new[] { torch.zeros(4, 2, 4) }),
            ("Number", NumberColumnType.Instance, new[] { 1.0 }));
        var ev = new MedSegContext(seed: 1);
        var e = Assert.ThrowsException<SchemaException>(() => DataViewEvaluation.EvaluateBinary(ev, view));
        Assert.AreEqual("Probability", e.ColumnName);
        StringAssert.Contains(e.Message, "EvaluateBinary: column 'Probability' was not found");
        e = Assert.ThrowsException<SchemaException>(() => DataViewEvaluation.EvaluateBinary(ev, view, "Missing", "Mask"));
        Assert.AreEqual("Missing", e.ColumnName);
        e = Assert.ThrowsException<SchemaException>(() => DataViewEvaluation.EvaluateBinary(ev, view, "Mask", "Labels"));
        Assert.AreEqual("Labels", e.ColumnName);
        StringAssert.Contains(e.Message, "has type Tensor<Int64>[?,?]");
        e = Assert.ThrowsException<SchemaException>(() => DataViewEvaluation.EvaluateMultiClass(ev, view, 3, "Mask", "Labels"));
        Assert.AreEqual("Mask", e.ColumnName);
        e = Assert.ThrowsException<SchemaException>(() => DataViewEvaluation.EvaluateMultiClass(ev, view, 3, "Labels", "Scores4"));
        Assert.AreEqual("Scores4", e.ColumnName);
        StringAssert.Contains(e.Message, "Tensor<Float32>[3,?,?] (scores)");
        e = Assert.ThrowsException<SchemaException>(() => DataViewEvaluation.EvaluateBinary(ev, view, "Mask", "Mask", new EvaluationOptions { IdColumn = "Number" }));
        Assert.AreEqual("Number", e.ColumnName);
        // Overlays need an image column.
        var r = DataViewEvaluation.EvaluateBinary(ev, view, "Mask", "Mask");
        e = Assert.ThrowsException<SchemaException>(() => r.WriteOverlays(Path.GetTempPath(), view));
        Assert.AreEqual("Image", e.ColumnName);
    }

    [TestMethod]
    public void RowsWhoseMasksDifferInSizeAreReportedWithTheirId()
    {
        using var scope = torch.NewDisposeScope();
        using var view = BinaryView(["ok", "bad"], [Mask(Gt), Mask(Gt)], [Mask(Pr), Mask("111", "111", "111")]);
        var e = Assert.ThrowsException<ArgumentException>(() => DataViewEvaluation.EvaluateBinary(new MedSegContext(seed: 1), view));
        StringAssert.Contains(e.Message, "row 'bad'");
        StringAssert.Contains(e.Message, "'Probability'");
    }

    [TestMethod]
    public void MetricsAssertPassesAndFailsWithTheFullTable()
    {
        using var scope = torch.NewDisposeScope();
        var r = SegmentationMetrics.FromTensors(Mask(Pr), Mask(Gt)); // IoU 0.5, Dice 2/3, precision 0.6, recall 0.75, HD95 1.6
        MetricsAssert.AtLeast(r, dice: 0.66, iou: 0.5, precision: 0.6, recall: 0.7);
        MetricsAssert.AtMost(r, hd95: 1.6);
        MetricsAssert.AtLeast(r, iou: 0.5, reduction: MetricReduction.Micro);

        var e = Assert.ThrowsException<AssertFailedException>(() => MetricsAssert.AtLeast(r, dice: 0.8, iou: 0.4, recall: 0.9));
        StringAssert.Contains(e.Message, "MetricsAssert.AtLeast failed");
        StringAssert.Contains(e.Message, "Dice (per-image mean) = 0.6667 < 0.8");
        StringAssert.Contains(e.Message, "Recall (per-image mean) = 0.75 < 0.9");
        Assert.IsFalse(e.Message.Contains("IoU (per-image mean)"), "a passing threshold is not listed");
        StringAssert.Contains(e.Message, r.ToMarkdown());

        e = Assert.ThrowsException<AssertFailedException>(() => MetricsAssert.AtMost(r, hd95: 1.5, message: "polyp model"));
        StringAssert.Contains(e.Message, "MetricsAssert.AtMost failed: polyp model");
        StringAssert.Contains(e.Message, "HD95 (per-image mean) = 1.6 > 1.5");
        StringAssert.Contains(e.Message, "| HD95 (px) | 1.6000 | n/a | 1.6000 |");

        // HD95 has no micro value: an assertion on it fails and says so.
        e = Assert.ThrowsException<AssertFailedException>(() => MetricsAssert.AtMost(r, hd95: 10, reduction: MetricReduction.Micro));
        StringAssert.Contains(e.Message, "HD95 (micro) is undefined (NaN)");
        var noHd = SegmentationMetrics.FromTensors(Mask(Pr), Mask(Gt), new EvaluationOptions { ComputeHd95 = false });
        e = Assert.ThrowsException<AssertFailedException>(() => MetricsAssert.AtMost(noHd, hd95: 10));
        StringAssert.Contains(e.Message, "was not computed");
    }
}
