using MLNetMedSeg.Attacks;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// <see cref="Sampling.GridSample"/>: TorchSharp's GridSampleMode has Nearest (0) and Bilinear (2) only, and any other
/// value — PyTorch's bicubic included — silently samples bilinearly. The library's grid_sample calls (DeformationWarp,
/// ElasticTransform) go through the guard; none of their options chooses a mode (images are always bilinear, masks
/// always nearest).
/// </summary>
[TestClass]
public sealed class SamplingTests
{
    // x = (torch.arange(16.)**2).reshape(1, 1, 4, 4); grid = [[[[-0.3, 0.2], [0.45, -0.6]], [[0.1, 0.7], [-0.8, -0.05]]]]
    // F.grid_sample(x, grid, mode=m, padding_mode="border", align_corners=False) with /usr/bin/python3, PyTorch 1.13:
    private static readonly float[] PyTorchBilinear = [73.780006f, 16.559999f, 178.540009f, 35.199997f];
    private static readonly float[] PyTorchNearest = [81f, 4f, 196f, 16f];
    private static readonly float[] PyTorchBicubic = [68.831116f, 13.087578f, 179.216965f, 29.839153f];

    private static (Tensor x, Tensor grid) Case()
    {
        var x = arange(S(16), ScalarType.Float32).pow(S(2)).reshape(1, 1, 4, 4);
        var grid = tensor(new float[] { -0.3f, 0.2f, 0.45f, -0.6f, 0.1f, 0.7f, -0.8f, -0.05f }).reshape(1, 2, 2, 2);
        return (x, grid);
    }

    private static void AssertClose(float[] expected, Tensor actual, string what)
    {
        var a = actual.ToArray<float>();
        Assert.AreEqual(expected.Length, a.Length, what);
        for (int i = 0; i < a.Length; i++) Assert.AreEqual(expected[i], a[i], 1e-4, $"{what} [{i}]");
    }

    [TestMethod]
    public void NearestAndBilinearMatchPyTorch()
    {
        using var scope = NewDisposeScope();
        var (x, grid) = Case();
        AssertClose(PyTorchBilinear, Sampling.GridSample(x, grid, GridSampleMode.Bilinear, GridPaddingMode.Border, alignCorners: false), "bilinear");
        AssertClose(PyTorchNearest, Sampling.GridSample(x, grid, GridSampleMode.Nearest, GridPaddingMode.Border, alignCorners: false), "nearest");
    }

    [TestMethod]
    public void ModesTorchSharpCannotSampleAreRefused()
    {
        using var scope = NewDisposeScope();
        var (x, grid) = Case();
        // What the guard is for: raw TorchSharp takes (GridSampleMode)3 (and 1, PyTorch's bicubic is 2 there) and
        // returns the bilinear result, not PyTorch's bicubic one.
        var raw = nn.functional.grid_sample(x, grid, (GridSampleMode)3, GridPaddingMode.Border, align_corners: false);
        AssertClose(PyTorchBilinear, raw, "raw TorchSharp, mode 3");
        Assert.IsTrue(Math.Abs(raw.ToArray<float>()[3] - PyTorchBicubic[3]) > 5, "and not bicubic");

        foreach (int mode in new[] { 1, 3, 4, -1 })
        {
            var e = Assert.ThrowsException<ArgumentException>(
                () => Sampling.GridSample(x, grid, (GridSampleMode)mode, GridPaddingMode.Border, alignCorners: false), $"mode {mode}");
            Assert.AreEqual("mode", e.ParamName);
            StringAssert.Contains(e.Message, $"grid_sample mode {mode} is not supported");
            StringAssert.Contains(e.Message, "bicubic");
        }
        var p = Assert.ThrowsException<ArgumentException>(() => Sampling.GridSample(x, grid, GridSampleMode.Bilinear, (GridPaddingMode)7, alignCorners: false));
        Assert.AreEqual("padding", p.ParamName);
    }

    [TestMethod]
    public void TheLibrarysWarpsSampleAsBefore()
    {
        using var scope = NewDisposeScope();
        // DeformationWarp (through the guard): an integer displacement shifts exactly, images and masks alike.
        var img = arange(S(25), ScalarType.Float32).reshape(1, 1, 5, 5);
        var d = zeros(1, 2, 5, 5);
        d[0, 0] = ones(5, 5);   // x + 1: every pixel takes its right neighbour (border: the last column repeats)
        var warped = DeformationWarp.Warp(img, d);
        var expected = img.narrow(3, 1, 4);
        Assert.IsTrue(warped.narrow(3, 0, 4).IsEqual(expected));
        Assert.IsTrue(warped.select(3, 4).IsEqual(img.select(3, 4)));
        var mask = tensor(new long[] { 0, 1, 2, 3, 4 }).repeat(5, 1).unsqueeze(0);
        var wm = DeformationWarp.WarpMask(mask, d * S(0.4));
        Assert.AreEqual(ScalarType.Int64, wm.dtype);
        Assert.IsTrue(wm.IsEqual(mask), "nearest: a shift under half a pixel keeps every label");
    }
}
