using MLNetMedSeg.Evaluation;
using static MLNetMedSeg.Tests.Evaluation.EvalData;

namespace MLNetMedSeg.Tests.Evaluation;

[TestClass]
public class SurfaceDistanceTests
{
    [TestMethod]
    public void BoundaryIsForegroundWithABackgroundFourNeighbourAndTheImageEdgeCountsAsOutside()
    {
        var m = Bools("00000", "01110", "01110", "01110", "00000");
        var b = SurfaceDistance.Boundary(m, 5, 5);
        CollectionAssert.AreEqual(Bools("00000", "01110", "01010", "01110", "00000"), b);
        // A full image: only the outer ring touches the outside.
        var full = Bools("111", "111", "111");
        CollectionAssert.AreEqual(Bools("111", "101", "111"), SurfaceDistance.Boundary(full, 3, 3));
        // A diagonal neighbour does not make a boundary: the centre of a plus shape with all 4 neighbours set is interior.
        var plus = Bools("00000", "00100", "01110", "00100", "00000");
        CollectionAssert.AreEqual(Bools("00000", "00100", "01010", "00100", "00000"), SurfaceDistance.Boundary(plus, 5, 5));
    }

    [TestMethod]
    public void DistanceTransformEqualsBruteForceOnRandomMasks()
    {
        var rng = new Random(1234);
        for (int trial = 0; trial < 300; trial++)
        {
            int h = rng.Next(1, 14), w = rng.Next(1, 14);
            double density = rng.NextDouble() * 0.3;
            var f = new bool[h * w];
            for (int i = 0; i < f.Length; i++) f[i] = rng.NextDouble() < density;
            var d = SurfaceDistance.SquaredDistanceTransform(f, h, w);
            bool any = f.Contains(true);
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    double best = double.PositiveInfinity;
                    for (int yy = 0; yy < h; yy++)
                        for (int xx = 0; xx < w; xx++)
                            if (f[yy * w + xx]) best = Math.Min(best, (double)(y - yy) * (y - yy) + (double)(x - xx) * (x - xx));
                    Assert.AreEqual(best, d[y * w + x], $"trial {trial} ({h}x{w}) pixel ({y},{x})");
                }
            Assert.AreEqual(any, !double.IsPositiveInfinity(d[0]));
        }
    }

    [TestMethod]
    public void IdenticalMasksHaveZeroHd95()
    {
        var m = Bools("00000", "01110", "01100", "00000");
        Assert.AreEqual(0.0, SurfaceDistance.Hd95(m, m, 4, 5));
    }

    [TestMethod]
    public void TwoEqualSquaresOffsetByKPixelsHaveHd95K()
    {
        for (int k = 1; k <= 4; k++)
        {
            var a = Rect(24, 24, 6, 6, 8, 8);
            var right = Rect(24, 24, 6, 6 + k, 8, 8);
            var down = Rect(24, 24, 6 + k, 6, 8, 8);
            Assert.AreEqual(k, SurfaceDistance.Hd95(a, right, 24, 24), 1e-12, $"horizontal k={k}");
            Assert.AreEqual(k, SurfaceDistance.Hd95(down, a, 24, 24), 1e-12, $"vertical k={k}");
            // And through the evaluator (tensor masks → counts and HD95).
            using var scope = torch.NewDisposeScope();
            var r = SegmentationMetrics.FromTensors(ToTensor(right, 24, 24), ToTensor(a, 24, 24));
            Assert.AreEqual(k, r.PerImageMean.Hd95, 1e-12);
        }
    }

    [TestMethod]
    public void AsymmetricCaseMatchesHandComputedPooledPercentile()
    {
        // GT: one pixel at (2,2). Prediction: that pixel and a stray one at (2,10), 8 px away.
        const int h = 5, w = 12;
        var gt = new bool[h * w];
        gt[2 * w + 2] = true;
        var pr = (bool[])gt.Clone();
        pr[2 * w + 10] = true;
        // Pred→GT: 0, 8. GT→pred: 0. Pooled sorted: 0, 0, 8; rank 0.95·2 = 1.9 → 0 + 0.9·8 = 7.2.
        Assert.AreEqual(7.2, SurfaceDistance.Hd95(pr, gt, h, w), 1e-12);
        Assert.AreEqual(7.2, SurfaceDistance.Hd95(gt, pr, h, w), 1e-12); // symmetric by definition
        CollectionAssert.AreEqual(new[] { 0.0, 8.0 }, SurfaceDistance.DirectedSurfaceDistances(pr, gt, h, w));
        CollectionAssert.AreEqual(new[] { 0.0 }, SurfaceDistance.DirectedSurfaceDistances(gt, pr, h, w));
        Assert.AreEqual(8.0, SurfaceDistance.HausdorffPercentile(pr, gt, h, w, 100));
        // A diagonal offset: distances are Euclidean (3-4-5).
        var a = new bool[h * w];
        var b = new bool[h * w];
        a[0] = true;
        b[3 * w + 4] = true;
        Assert.AreEqual(5.0, SurfaceDistance.Hd95(a, b, h, w), 1e-12);
    }

    [TestMethod]
    public void EmptyMaskGivesNaNAndPercentileFollowsNumpy()
    {
        var e = new bool[16];
        var m = Bools("0000", "0110", "0000", "0000");
        Assert.IsTrue(double.IsNaN(SurfaceDistance.Hd95(e, m, 4, 4)));
        Assert.IsTrue(double.IsNaN(SurfaceDistance.Hd95(m, e, 4, 4)));
        Assert.IsTrue(double.IsNaN(SurfaceDistance.Hd95(e, e, 4, 4)));
        // numpy.percentile([4, 1, 3, 2], 95) = 3.85; [5] → 5.
        Assert.AreEqual(3.85, SurfaceDistance.Percentile([4, 1, 3, 2], 95), 1e-12);
        Assert.AreEqual(5.0, SurfaceDistance.Percentile([5], 95));
        Assert.AreEqual(2.5, SurfaceDistance.Percentile([1, 2, 3, 4], 50), 1e-12);
    }
}
