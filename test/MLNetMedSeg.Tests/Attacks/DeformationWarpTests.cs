using MLNetMedSeg.Attacks;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Attacks;

[TestClass]
public sealed class DeformationWarpTests
{
    private static Tensor Ramp(long n, long c, long h, long w) =>
        arange(S(0), S(n * c * h * w), ScalarType.Float32).reshape(n, c, h, w).mul(S(0.37)).sin();

    private static Tensor Constant(long n, long h, long w, double dx, double dy) =>
        cat([full([n, 1, h, w], S(dx), ScalarType.Float32), full([n, 1, h, w], S(dy), ScalarType.Float32)], 1);

    [TestMethod]
    public void ZeroDeformation_IsTheIdentity()
    {
        using var scope = NewDisposeScope();
        var x = Ramp(2, 3, 7, 9);
        var y = DeformationWarp.Warp(x, zeros([2, 2, 7, 9]));
        Assert.AreEqual(0.0, y.sub(x).abs().max().ToSingle(), 1e-6);
    }

    [TestMethod]
    public void ZeroDeformation_GridIsTheIdentityAffineGridWithoutAlignCorners()
    {
        using var scope = NewDisposeScope();
        var theta = tensor(new float[] { 1, 0, 0, 0, 1, 0 }, [1, 2, 3]);
        var expected = nn.functional.affine_grid(theta, [1, 1, 5, 8], align_corners: false);
        var grid = DeformationWarp.Grid(zeros([1, 2, 5, 8]));
        Assert.AreEqual(0.0, grid.sub(expected).abs().max().ToSingle(), 1e-6);
    }

    [TestMethod]
    public void ConstantIntegerDeformation_ShiftsExactlyInTheInterior()
    {
        using var scope = NewDisposeScope();
        const int h = 8, w = 10, dx = 2, dy = -1;
        var x = Ramp(1, 2, h, w);
        var y = DeformationWarp.Warp(x, Constant(1, h, w, dx, dy));
        var xs = x.contiguous().ToArray<float>();
        var ys = y.contiguous().ToArray<float>();
        int checkedPixels = 0;
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < h; i++)
                for (int j = 0; j < w; j++)
                {
                    int si = i + dy, sj = j + dx; // output (i, j) samples the input at (i + D_y, j + D_x)
                    if (si < 0 || si >= h || sj < 0 || sj >= w) continue;
                    Assert.AreEqual(xs[(c * h + si) * w + sj], ys[(c * h + i) * w + j], 1e-6, $"channel {c}, pixel ({i}, {j})");
                    checkedPixels++;
                }
        Assert.AreEqual(2 * (h - 1) * (w - 2), checkedPixels);
    }

    [TestMethod]
    public void OutsideTheImage_TakesTheBorderValue()
    {
        using var scope = NewDisposeScope();
        var x = Ramp(1, 1, 4, 5);
        var y = DeformationWarp.Warp(x, Constant(1, 4, 5, 100, 0)); // every pixel samples far right: the last column
        var lastColumn = x.narrow(3, 4, 1).expand(1, 1, 4, 5);
        Assert.AreEqual(0.0, y.sub(lastColumn).abs().max().ToSingle(), 1e-6);
    }

    [TestMethod]
    public void HalfPixelDeformation_InterpolatesBilinearly()
    {
        using var scope = NewDisposeScope();
        var x = Ramp(1, 1, 3, 6);
        var y = DeformationWarp.Warp(x, Constant(1, 3, 6, 0.5, 0));
        var xs = x.contiguous().ToArray<float>();
        var ys = y.contiguous().ToArray<float>();
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++)
                Assert.AreEqual(0.5 * (xs[i * 6 + j] + xs[i * 6 + j + 1]), ys[i * 6 + j], 1e-6);
    }

    [TestMethod]
    public void ClassMask_MovesByNearestSampling_AndStaysInteger()
    {
        using var scope = NewDisposeScope();
        var m = tensor(new long[] { 0, 1, 2, 0, 1, 2, 2, 1, 0, 0, 0, 1 }, [1, 3, 4]);
        var shifted = DeformationWarp.WarpMask(m, Constant(1, 3, 4, 1, 0));
        Assert.AreEqual(ScalarType.Int64, shifted.dtype);
        CollectionAssert.AreEqual(new long[] { 1, 2, 0, 0, 2, 2, 1, 1, 0, 0, 1, 1 }, shifted.ToArray<long>());
        var small = DeformationWarp.WarpMask(m, Constant(1, 3, 4, 0.3, -0.4)); // rounds to the same pixel
        CollectionAssert.AreEqual(m.ToArray<long>(), small.ToArray<long>());
    }

    [TestMethod]
    public void BinaryMask_KeepsItsTypeAndValues()
    {
        using var scope = NewDisposeScope();
        var m = tensor(new float[] { 0, 1, 1, 0, 0, 1 }, [1, 1, 2, 3]);
        var shifted = DeformationWarp.WarpMask(m, Constant(1, 2, 3, -1, 0));
        Assert.AreEqual(ScalarType.Float32, shifted.dtype);
        CollectionAssert.AreEqual(new float[] { 0, 0, 1, 0, 0, 0 }, shifted.contiguous().ToArray<float>());
    }

    [TestMethod]
    public void MismatchedSizes_AreRefused()
    {
        using var scope = NewDisposeScope();
        Assert.ThrowsException<ArgumentException>(() => DeformationWarp.Warp(zeros([1, 1, 4, 4]), zeros([1, 2, 4, 5])));
        Assert.ThrowsException<ArgumentException>(() => DeformationWarp.Warp(zeros([1, 1, 4, 4]), zeros([1, 3, 4, 4])));
    }
}
