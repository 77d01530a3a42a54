using MLNetMedSeg.Imaging;
using MLNetMedSeg.Tests.Data;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Imaging;

[TestClass]
public sealed class ImageIOTests
{
    private static ushort[] Ramp16(int n, int mul) => Enumerable.Range(0, n).Select(i => (ushort)(i * mul % 65536)).ToArray();

    [TestMethod]
    public void Png8GrayAndRgbRoundTripExactly()
    {
        using var dir = new TempDir();
        var gray = Enumerable.Range(0, 12 * 10).Select(i => (byte)(i * 7 % 256)).ToArray();
        string g = Path.Combine(dir.Path, "g.png");
        ImageIO.WritePng(g, gray, 10, 12, 1);
        var rg = ImageIO.Read(g);
        Assert.AreEqual((10, 12, 1, 8, ImageFormat.Png), (rg.Width, rg.Height, rg.Channels, rg.BitDepth, rg.Format));
        CollectionAssert.AreEqual(gray, rg.Pixels8);

        var rgb = TestImages.Rgb(9, 11, 3);
        string c = Path.Combine(dir.Path, "c.png");
        ImageIO.WritePng(c, rgb, 11, 9, 3);
        var rc = ImageIO.Read(c);
        Assert.AreEqual((11, 9, 3, 8), (rc.Width, rc.Height, rc.Channels, rc.BitDepth));
        CollectionAssert.AreEqual(rgb, rc.Pixels8);
    }

    [TestMethod]
    public void PngTensorRoundTripIsExactForByteValues()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        var t = (torch.arange(S(0), S(3 * 4 * 5), ScalarType.Float32) * S(4) % S(256) / S(255.0)).reshape(3, 4, 5);
        string p = Path.Combine(dir.Path, "t.png");
        ImageIO.WritePng(p, t);
        var back = ImageIO.ReadTensor(p);
        CollectionAssert.AreEqual(new long[] { 3, 4, 5 }, back.shape);
        Assert.IsTrue(back.allclose(t, rtol: 0, atol: 1e-6));
    }

    [TestMethod]
    public void Png16GrayAndRgbRoundTripExactly()
    {
        using var dir = new TempDir();
        var gray = Ramp16(8 * 6, 1361);
        string g = Path.Combine(dir.Path, "g16.png");
        ImageIO.WritePng16(g, gray, 6, 8, 1);
        var rg = ImageIO.Read(g);
        Assert.AreEqual((6, 8, 1, 16), (rg.Width, rg.Height, rg.Channels, rg.BitDepth));
        CollectionAssert.AreEqual(gray, rg.Pixels16);

        var rgb = Ramp16(5 * 7 * 3, 977);
        string c = Path.Combine(dir.Path, "c16.png");
        ImageIO.WritePng16(c, rgb, 7, 5, 3);
        var rc = ImageIO.Read(c);
        Assert.AreEqual((7, 5, 3, 16), (rc.Width, rc.Height, rc.Channels, rc.BitDepth));
        CollectionAssert.AreEqual(rgb, rc.Pixels16);

        using var scope = torch.NewDisposeScope();
        var t = ImageIO.ReadTensor(g);
        Assert.AreEqual(gray[5] / 65535f, t[0, 0, 5].ToSingle(), 1e-7f);
    }

    [TestMethod]
    public void JpegRoundTripIsClose()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        // A smooth image (JPEG's 4:2:0 chroma subsampling blurs sharp colour edges by design).
        var rgb = new byte[32 * 32 * 3];
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) { int k = (y * 32 + x) * 3; rgb[k] = (byte)(x * 8); rgb[k + 1] = (byte)(y * 8); rgb[k + 2] = 128; }
        string p = Path.Combine(dir.Path, "a.jpg");
        ImageIO.WriteJpeg(p, rgb, 32, 32, 3, quality: 95);
        var r = ImageIO.Read(p);
        Assert.AreEqual((32, 32, 3, 8, ImageFormat.Jpeg), (r.Width, r.Height, r.Channels, r.BitDepth, r.Format));
        double meanAbs = rgb.Zip(r.Pixels8!).Average(z => Math.Abs(z.First - z.Second));
        int maxAbs = rgb.Zip(r.Pixels8!).Max(z => Math.Abs(z.First - z.Second));
        Assert.IsTrue(meanAbs < 2.0, $"mean abs error {meanAbs}");
        Assert.IsTrue(maxAbs < 24, $"max abs error {maxAbs}");

        // Tensor writer, gray.
        var gray = torch.linspace(0, 1, 16 * 16).reshape(1, 16, 16);
        string q = Path.Combine(dir.Path, "g.jpg");
        ImageIO.WriteJpeg(q, gray, 90);
        var back = ImageIO.ReadTensor(q);
        CollectionAssert.AreEqual(new long[] { 1, 16, 16 }, back.shape);
        Assert.IsTrue((back - gray).abs().max().ToSingle() < 0.05f);
    }

    [TestMethod]
    public void TiffRoundTrips8And16Bit()
    {
        using var dir = new TempDir();
        var rgb = TestImages.Rgb(7, 9, 2);
        foreach (var comp in new[] { TiffCompression.None, TiffCompression.Deflate })
        {
            string p = Path.Combine(dir.Path, $"c{comp}.tif");
            ImageIO.WriteTiff(p, rgb, 9, 7, 3, comp);
            var r = ImageIO.Read(p);
            Assert.AreEqual((9, 7, 3, 8, ImageFormat.Tiff), (r.Width, r.Height, r.Channels, r.BitDepth, r.Format));
            CollectionAssert.AreEqual(rgb, r.Pixels8);
        }
        var g16 = Ramp16(6 * 5, 2731);
        string q = Path.Combine(dir.Path, "g16.tiff");
        ImageIO.WriteTiff16(q, g16, 5, 6, 1);
        var r16 = ImageIO.Read(q);
        Assert.AreEqual((5, 6, 1, 16), (r16.Width, r16.Height, r16.Channels, r16.BitDepth));
        CollectionAssert.AreEqual(g16, r16.Pixels16);

        var c16 = Ramp16(3 * 4 * 3, 4099);
        string q3 = Path.Combine(dir.Path, "c16.tif");
        ImageIO.WriteTiff16(q3, c16, 4, 3, 3, TiffCompression.None);
        CollectionAssert.AreEqual(c16, ImageIO.Read(q3).Pixels16);

        using var scope = torch.NewDisposeScope();
        var t = torch.tensor(new float[] { 0, 0.25f, 0.5f, 1 }, [1, 2, 2]);
        string q4 = Path.Combine(dir.Path, "t16.tif");
        ImageIO.WriteTiff(q4, t, bitDepth: 16);
        var d = ImageIO.Read(q4);
        CollectionAssert.AreEqual(new ushort[] { 0, 16384, 32768, 65535 }, d.Pixels16); // round(x * 65535)
    }

    [TestMethod]
    public void WritersAreAtomicAndLeaveNoTemporaryFiles()
    {
        using var dir = new TempDir();
        string p = Path.Combine(dir.Path, "a.jpg");
        ImageIO.WriteJpeg(p, TestImages.Rgb(4, 4, 0), 4, 4, 3);
        ImageIO.WriteTiff(Path.Combine(dir.Path, "a.tif"), TestImages.Rgb(4, 4, 0), 4, 4, 3);
        CollectionAssert.AreEquivalent(new[] { "a.jpg", "a.tif" }, Directory.GetFiles(dir.Path).Select(Path.GetFileName).ToArray());
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => ImageIO.WriteJpeg(p, TestImages.Rgb(4, 4, 0), 4, 4, 3, quality: 0));
        Assert.ThrowsException<ArgumentException>(() => ImageIO.WriteJpeg(p, new byte[4 * 4 * 4], 4, 4, 4));
    }

    private static ImageFileException ReadFails(string path)
    {
        var e = Assert.ThrowsException<ImageFileException>(() => ImageIO.Read(path));
        Assert.AreEqual(path, e.FilePath);
        StringAssert.Contains(e.Message, path);
        StringAssert.Contains(e.Message, e.Reason);
        return e;
    }

    [TestMethod]
    public void BadFilesRaiseImageFileExceptionNamingFileAndReason()
    {
        using var dir = new TempDir();
        // Corrupt: a PNG signature followed by garbage.
        string corrupt = Path.Combine(dir.Path, "corrupt.png");
        File.WriteAllBytes(corrupt, [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
        StringAssert.StartsWith(ReadFails(corrupt).Reason, "PNG:");

        // Truncated JPEG and PNG: valid files cut in half.
        string jpg = Path.Combine(dir.Path, "full.jpg");
        ImageIO.WriteJpeg(jpg, TestImages.Rgb(32, 32, 5), 32, 32, 3);
        var jb = File.ReadAllBytes(jpg);
        string tj = Path.Combine(dir.Path, "truncated.jpg");
        File.WriteAllBytes(tj, jb[..(jb.Length / 2)]);
        StringAssert.StartsWith(ReadFails(tj).Reason, "JPEG:");

        string png = Path.Combine(dir.Path, "full.png");
        ImageIO.WritePng(png, TestImages.Rgb(32, 32, 5), 32, 32, 3);
        var pb = File.ReadAllBytes(png);
        string tp = Path.Combine(dir.Path, "truncated.png");
        File.WriteAllBytes(tp, pb[..(pb.Length / 2)]);
        StringAssert.StartsWith(ReadFails(tp).Reason, "PNG:");

        string empty = Path.Combine(dir.Path, "empty.png");
        File.WriteAllBytes(empty, []);
        StringAssert.Contains(ReadFails(empty).Reason, "empty");

        string text = Path.Combine(dir.Path, "notes.png");
        File.WriteAllText(text, "this is a text file, not an image\n");
        StringAssert.Contains(ReadFails(text).Reason, "unsupported format");

        string missing = Path.Combine(dir.Path, "missing.png");
        StringAssert.Contains(ReadFails(missing).Reason, "does not exist");
    }
}
