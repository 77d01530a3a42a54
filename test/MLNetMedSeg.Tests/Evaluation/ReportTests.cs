using System.Text.Json;
using MLNetMedSeg.Evaluation;
using static MLNetMedSeg.Tests.Evaluation.EvalData;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Evaluation;

[TestClass]
public class ReportTests
{
    private static readonly string[] Gt = ["1100", "1100", "0000", "0000"];
    private static readonly string[] Pr = ["1111", "0100", "0000", "0000"];
    private static readonly string[] Empty = ["0000", "0000", "0000", "0000"];

    /// <summary>Two images "a" (IoU 1/2, HD95 1.6) and "b, x" (both empty).</summary>
    private static EvaluationResult TwoImages(EmptyMaskPolicy policy)
    {
        var pred = torch.stack([Mask(Pr), Mask(Empty)], 0);
        var gt = torch.stack([Mask(Gt), Mask(Empty)], 0);
        return SegmentationMetrics.FromTensors(pred, gt, new EvaluationOptions { EmptyMaskPolicy = policy }, ids: ["a", "b, x"]);
    }

    [TestMethod]
    public void JsonHoldsSettingsAggregatesDroppedCountsAndRows()
    {
        using var scope = torch.NewDisposeScope();
        var r = TwoImages(EmptyMaskPolicy.Ignore);
        using var doc = JsonDocument.Parse(r.ToJson());
        var root = doc.RootElement;
        Assert.AreEqual("binary", root.GetProperty("mode").GetString());
        Assert.AreEqual(0.5, root.GetProperty("threshold").GetDouble());
        Assert.AreEqual("Ignore", root.GetProperty("emptyMaskPolicy").GetString());
        Assert.AreEqual(2, root.GetProperty("imageCount").GetInt32());
        var agg = root.GetProperty("aggregate");
        Assert.AreEqual(0.5, agg.GetProperty("perImageMean").GetProperty("iou").GetDouble(), 1e-12);
        Assert.AreEqual(0.5, root.GetProperty("mIoU").GetDouble(), 1e-12, "the papers' mIoU at the top level");
        Assert.AreEqual(agg.GetProperty("perImageMean").GetProperty("dice").GetDouble(), root.GetProperty("mDice").GetDouble());
        Assert.AreEqual(1.6, agg.GetProperty("perImageMean").GetProperty("hd95").GetDouble(), 1e-9);
        Assert.AreEqual(JsonValueKind.Null, agg.GetProperty("micro").GetProperty("hd95").ValueKind);
        Assert.AreEqual(1, root.GetProperty("dropped").GetProperty("iou").GetInt32());
        Assert.AreEqual(0, root.GetProperty("dropped").GetProperty("accuracy").GetInt32());
        Assert.AreEqual(1, root.GetProperty("dropped").GetProperty("hd95").GetInt32());
        var images = root.GetProperty("images");
        Assert.AreEqual(2, images.GetArrayLength());
        Assert.AreEqual("a", images[0].GetProperty("id").GetString());
        var c0 = images[0].GetProperty("classes")[0];
        Assert.AreEqual(1, c0.GetProperty("class").GetInt32());
        Assert.AreEqual(3, c0.GetProperty("counts").GetProperty("tp").GetInt64());
        Assert.AreEqual(2, c0.GetProperty("counts").GetProperty("fp").GetInt64());
        Assert.AreEqual(1, c0.GetProperty("counts").GetProperty("fn").GetInt64());
        Assert.AreEqual(10, c0.GetProperty("counts").GetProperty("tn").GetInt64());
        Assert.AreEqual(0.6, c0.GetProperty("metrics").GetProperty("precision").GetDouble(), 1e-12);
        // The empty image's 0/0 values are NaN under Ignore and written as null.
        Assert.AreEqual("b, x", images[1].GetProperty("id").GetString());
        Assert.AreEqual(JsonValueKind.Null, images[1].GetProperty("classes")[0].GetProperty("metrics").GetProperty("dice").ValueKind);
        Assert.AreEqual(1.0, images[1].GetProperty("classes")[0].GetProperty("metrics").GetProperty("accuracy").GetDouble());
        Assert.AreEqual("foreground", root.GetProperty("perClass")[0].GetProperty("name").GetString());
    }

    [TestMethod]
    public void CsvHasOneRowPerImageAndClassWithCountsAndMetrics()
    {
        using var scope = torch.NewDisposeScope();
        var csv = TwoImages(EmptyMaskPolicy.Ignore).ToCsv();
        var lines = csv.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(3, lines.Length);
        Assert.AreEqual("index,id,class,class_name,tp,fp,fn,tn,iou,dice,precision,recall,specificity,accuracy,hd95", lines[0]);
        Assert.AreEqual("0,a,1,foreground,3,2,1,10,0.5,0.6666666666666666,0.6,0.75,0.8333333333333334,0.8125,1.6", lines[1]);
        Assert.AreEqual("1,\"b, x\",1,foreground,0,0,0,16,NaN,NaN,NaN,NaN,1,1,NaN", lines[2]);
        // HD95 off: no hd95 column.
        var noHd = SegmentationMetrics.FromTensors(Mask(Pr), Mask(Gt), new EvaluationOptions { ComputeHd95 = false });
        Assert.IsFalse(noHd.ToCsv().Contains("hd95"));
        Assert.IsFalse(noHd.IsReported(SegmentationMetric.Hd95));
        Assert.IsFalse(noHd.Dropped.ContainsKey(SegmentationMetric.Hd95));
    }

    [TestMethod]
    public void MarkdownTableListsEveryMetricUnderEachReductionAndTheSettings()
    {
        using var scope = torch.NewDisposeScope();
        var md = TwoImages(EmptyMaskPolicy.One).ToMarkdown();
        StringAssert.Contains(md, "| Metric | Per-image mean | Micro | Macro |");
        StringAssert.Contains(md, "| IoU | 0.7500 | 0.5000 | 0.5000 |");      // (1/2 + 1)/2; 3/6
        StringAssert.Contains(md, "| Dice | 0.8333 | 0.6667 | 0.6667 |");     // (2/3 + 1)/2; 6/9
        StringAssert.Contains(md, "| Precision | 0.8000 | 0.6000 | 0.6000 |");
        StringAssert.Contains(md, "| Recall | 0.8750 | 0.7500 | 0.7500 |");
        StringAssert.Contains(md, "| Specificity | 0.9167 | 0.9286 | 0.9286 |"); // (10/12 + 1)/2; 26/28
        StringAssert.Contains(md, "| Accuracy | 0.9062 | 0.9062 | 0.9062 |");   // (13/16 + 1)/2 = 29/32 = 0.90625: .NET rounds the exact tie to even
        StringAssert.Contains(md, "| HD95 (px) | 0.8000 | n/a | 0.8000 |");     // (1.6 + 0)/2
        StringAssert.Contains(md, "2 images · classes: foreground (1) · threshold 0.5 · empty-mask policy One · dropped from per-image means: none");
        var ignored = TwoImages(EmptyMaskPolicy.Ignore).ToMarkdown();
        StringAssert.Contains(ignored, "dropped from per-image means: IoU 1, Dice 1, Precision 1, Recall 1, HD95 1");
        // Multi-class adds the per-class table.
        var multi = SegmentationMetrics.FromTensors(Labels("0120", "0120"), Labels("0120", "0110"), numClasses: 3,
            new EvaluationOptions { ClassNames = ["bg", "liver", "tumor"] });
        var mm = multi.ToMarkdown();
        StringAssert.Contains(mm, "| Class | IoU | Dice | Precision | Recall | Specificity | Accuracy | HD95 |");
        StringAssert.Contains(mm, "| liver (1) | 0.6667 |");
        StringAssert.Contains(mm, "| tumor (2) | 0.5000 |");
    }

    [TestMethod]
    public void OverlaysAreReadablePngsOfTheWorstAndBestImages()
    {
        using var scope = torch.NewDisposeScope();
        const int h = 16, w = 20;
        var gt = Rect(h, w, 4, 4, 8, 8);
        // Six predictions of decreasing quality: shifted by 0..5 pixels to the right.
        var ids = new[] { "s0", "s1", "s2", "s3", "s4", "s5" };
        var masks = ids.Select(_ => ToTensor(gt, h, w)).ToArray();
        var probs = Enumerable.Range(0, 6).Select(k => ToTensor(Rect(h, w, 4, 4 + k, 8, 8), h, w) * S(0.9)).ToArray();
        var images = ids.Select(_ => torch.full([3, h, w], S(0.5), ScalarType.Float32)).ToArray();
        using var view = BinaryView(ids, masks, probs, images);
        var ctx = new MLNetMedSeg.Pipeline.MedSegContext(seed: 1);
        var r = DataViewEvaluation.EvaluateBinary(ctx, view);
        string dir = Path.Combine(Path.GetTempPath(), "medseg-eval-" + Guid.NewGuid().ToString("N"));
        try
        {
            var paths = r.WriteOverlays(dir, view, worst: 2, best: 3);
            Assert.AreEqual(5, paths.Count);
            CollectionAssert.AreEquivalent(paths.Select(Path.GetFileName).ToArray(), Directory.GetFiles(dir).Select(Path.GetFileName).ToArray());
            // Dice of a shift by k: 2(64 − 8k)/128 = 1 − k/8.
            Assert.AreEqual("worst-01-s5-dice0.3750.png", Path.GetFileName(paths[0]));
            Assert.AreEqual("worst-02-s4-dice0.5000.png", Path.GetFileName(paths[1]));
            Assert.AreEqual("best-01-s0-dice1.0000.png", Path.GetFileName(paths[2]));
            Assert.AreEqual("best-03-s2-dice0.7500.png", Path.GetFileName(paths[4]));
            foreach (var p in paths)
            {
                var img = MLNetMedSeg.Imaging.ImageIO.Read(p);
                Assert.AreEqual(3 * w, img.Width);
                Assert.AreEqual(h, img.Height);
                Assert.AreEqual(3, img.Channels);
            }
            // worst-01 (shift 5): GT is x 4..11, prediction x 9..16, both y 4..11. Panels are 20 px wide.
            var worst = MLNetMedSeg.Imaging.ImageIO.Read(paths[0]).Pixels8!;
            byte[] Px(int y, int x) => worst.AsSpan((y * 3 * w + x) * 3, 3).ToArray();
            CollectionAssert.AreEqual(new byte[] { 0, 255, 0 }, Px(4, 4));             // GT contour (left edge of GT)
            CollectionAssert.AreEqual(new byte[] { 255, 0, 0 }, Px(8, 16));            // prediction contour only (its right edge) → red
            CollectionAssert.AreEqual(new byte[] { 255, 255, 0 }, Px(4, 10));           // top edges coincide → yellow
            CollectionAssert.AreEqual(new byte[] { 128, 128, 128 }, Px(0, 0));          // outside both: the image
            CollectionAssert.AreEqual(new byte[] { 255, 255, 255 }, Px(8, w + 8));      // GT panel
            CollectionAssert.AreEqual(new byte[] { 0, 0, 0 }, Px(8, 2 * w + 5));        // prediction panel: not predicted
            CollectionAssert.AreEqual(new byte[] { 255, 255, 255 }, Px(8, 2 * w + 12)); // predicted
            // HD95 ranks larger as worse.
            var byHd = r.WriteOverlays(Path.Combine(dir, "hd"), view, worst: 1, best: 1, metric: SegmentationMetric.Hd95);
            StringAssert.StartsWith(Path.GetFileName(byHd[0]), "worst-01-s5-hd95");
            StringAssert.StartsWith(Path.GetFileName(byHd[1]), "best-01-s0-hd950.0000");
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }

    [TestMethod]
    public void MultiClassOverlaysColourEachClass()
    {
        using var scope = torch.NewDisposeScope();
        var gt = new[] { Labels("0000", "0110", "0220", "0000"), Labels("1100", "1100", "0000", "0000") };
        var pr = new[] { Labels("0000", "0110", "0200", "0000"), Labels("1100", "1100", "0000", "0000") };
        using var view = MLNetMedSeg.Data.InMemoryDataView.Create(
            ("Id", MLNetMedSeg.Data.TextColumnType.Instance, new[] { "m0", "m1" }),
            ("Image", MLNetMedSeg.Data.TensorColumnType.Image(), new[] { torch.zeros(1, 4, 4), torch.ones(1, 4, 4) }),
            ("Mask", MLNetMedSeg.Data.TensorColumnType.ClassMask(), gt),
            ("Predicted", MLNetMedSeg.Data.TensorColumnType.ClassMask(), pr));
        var r = DataViewEvaluation.EvaluateMultiClass(new MLNetMedSeg.Pipeline.MedSegContext(seed: 1), view, 3, "Mask", "Predicted");
        // m0: class 1 perfect (IoU 1), class 2 tp 1 fn 1 (IoU 1/2) → 3/4; m1: class 1 perfect, class 2 absent (1) → 1.
        Assert.AreEqual(0.75, r.Images[0].Mean.IoU, 1e-12);
        Assert.AreEqual(1.0, r.Images[1].Mean.IoU, 1e-12);
        string dir = Path.Combine(Path.GetTempPath(), "medseg-eval-" + Guid.NewGuid().ToString("N"));
        try
        {
            var paths = r.WriteOverlays(dir, view, worst: 1, best: 1, metric: SegmentationMetric.IoU);
            CollectionAssert.AreEqual(new[] { "worst-01-m0-iou0.7500.png", "best-01-m1-iou1.0000.png" }, paths.Select(Path.GetFileName).ToArray());
            var img = MLNetMedSeg.Imaging.ImageIO.Read(paths[0]);
            Assert.AreEqual(12, img.Width);
            Assert.AreEqual(4, img.Height);
            byte[] Px(int y, int x) => img.Pixels8!.AsSpan((y * 12 + x) * 3, 3).ToArray();
            CollectionAssert.AreEqual(new byte[] { 255, 255, 255 }, Px(1, 4 + 1));   // GT panel, class 1: white
            CollectionAssert.AreEqual(new byte[] { 230, 25, 75 }, Px(2, 4 + 2));     // GT panel, class 2: palette colour
            CollectionAssert.AreEqual(new byte[] { 0, 0, 0 }, Px(2, 8 + 2));         // prediction panel: background there
            CollectionAssert.AreEqual(new byte[] { 0, 255, 0 }, Px(2, 2));           // image panel: GT contour only
            CollectionAssert.AreEqual(new byte[] { 255, 255, 0 }, Px(1, 1));         // both contours
            CollectionAssert.AreEqual(new byte[] { 0, 0, 0 }, Px(0, 0));             // the (black) image
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
