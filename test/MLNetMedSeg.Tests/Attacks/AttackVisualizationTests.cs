using MLNetMedSeg.Attacks;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Attacks;

[TestClass]
public sealed class AttackVisualizationTests
{
    private static float[] Pixel(Tensor rgb, int p)
    {
        var a = rgb.contiguous().ToArray<float>();
        long n = rgb.size(1) * rgb.size(2);
        return [a[p], a[n + p], a[2 * n + p]];
    }

    [TestMethod]
    public void Deformation_HueIsDirection_SaturationIsMagnitude()
    {
        using var scope = NewDisposeScope();
        // pixels: +x by 2 (red), +y by 2 (hue 90°: yellow-green), 0 (white), −x by 1 (cyan at half saturation)
        var d = tensor(new float[] { 2, 0, 0, -1, 0, 2, 0, 0 }, [2, 1, 4]);
        var rgb = AttackVisualization.Deformation(d);
        CollectionAssert.AreEqual(new float[] { 1, 0, 0 }, Pixel(rgb, 0));
        var up = Pixel(rgb, 1); // hue 0.25: (0.5, 1, 0)
        Assert.AreEqual(0.5, up[0], 1e-6);
        Assert.AreEqual(1.0, up[1], 1e-6);
        Assert.AreEqual(0.0, up[2], 1e-6);
        CollectionAssert.AreEqual(new float[] { 1, 1, 1 }, Pixel(rgb, 2));
        var left = Pixel(rgb, 3); // hue 0.5, saturation 0.5: (0.5, 1, 1)
        Assert.AreEqual(0.5, left[0], 1e-6);
        Assert.AreEqual(1.0, left[1], 1e-6);
        Assert.AreEqual(1.0, left[2], 1e-6);
    }

    [TestMethod]
    public void SubPixelDeformation_StaysPale()
    {
        using var scope = NewDisposeScope();
        var rgb = AttackVisualization.Deformation(tensor(new float[] { 0.1f, 0 }, [2, 1, 1]));
        Assert.AreEqual(0.9, Pixel(rgb, 0)[1], 1e-6, "saturation 0.1 at 0.1 px (scale at least 1 px)");
    }

    [TestMethod]
    public void Intensity_IsDivergingBlueWhiteRed()
    {
        using var scope = NewDisposeScope();
        var rgb = AttackVisualization.Intensity(tensor(new float[] { 0.2f, -0.2f, 0, 0.1f }, [1, 1, 4]));
        CollectionAssert.AreEqual(new[] { 0.8f, 0.1f, 0.1f }, Pixel(rgb, 0));
        CollectionAssert.AreEqual(new[] { 0.1f, 0.2f, 0.8f }, Pixel(rgb, 1));
        CollectionAssert.AreEqual(new[] { 1f, 1f, 1f }, Pixel(rgb, 2));
        Assert.AreEqual(0.55, Pixel(rgb, 3)[1], 1e-6);
    }

    [TestMethod]
    public void MaskAndGrid_HaveThePaletteAndLayout()
    {
        using var scope = NewDisposeScope();
        var m = AttackVisualization.Mask(tensor(new long[] { 0, 1, 2, 3 }, [2, 2]));
        CollectionAssert.AreEqual(new float[] { 0, 0, 0 }, Pixel(m, 0));
        Assert.IsTrue(Pixel(m, 1)[2] > 0.9, "class 1 is blue");
        var img = AttackVisualization.Image(full([1, 2, 2], S(0.5), ScalarType.Float32));
        var grid = AttackVisualization.Grid([[img, m, img], [m, img, m]], gap: 1);
        CollectionAssert.AreEqual(new long[] { 3, 5, 8 }, grid.shape);
        Assert.AreEqual(1f, grid.narrow(1, 2, 1).min().ToSingle(), "the gap row is white");
        Assert.ThrowsException<ArgumentException>(() => AttackVisualization.Grid([[img], [img, m]]));
    }
}
