using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Data;

[TestClass]
public sealed class ImageMaskLoaderTests
{
    private static MedSegContext Ctx() => new(seed: 1);

    /// <summary>Reads every row's Id, Image and Mask (clones kept).</summary>
    private static List<(string Id, Tensor Image, Tensor Mask)> ReadAll(IDataView view)
    {
        var rows = new List<(string, Tensor, Tensor)>();
        using var cur = view.GetRowCursor("Id", "Image", "Mask");
        while (cur.MoveNext()) rows.Add((cur.GetText("Id"), cur.GetTensor("Image").clone(), cur.GetTensor("Mask").clone()));
        return rows;
    }

    [TestMethod]
    public void PairsFilesByStemAcrossExtensionsNeverByOrder()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        // Listing orders differ between the folders (b < c < z in images; masks named so that by-order pairing would be wrong).
        TestImages.WriteRgb(Path.Combine(im, "b.jpg"), 8, 8, 1);
        TestImages.WriteRgb(Path.Combine(im, "c.png"), 8, 8, 2);
        TestImages.WriteRgb(Path.Combine(im, "z.tif"), 8, 8, 3);
        File.WriteAllText(Path.Combine(im, "notes.txt"), "ignored");
        TestImages.WriteMask(Path.Combine(mk, "z.png"), 8, 8, 3);
        TestImages.WriteMask(Path.Combine(mk, "b.PNG"), 8, 8, 1);
        TestImages.WriteMask(Path.Combine(mk, "c.png"), 8, 8, 2);

        var view = DataViews.LoadImagesAndMasks(Ctx(), im, mk);
        Assert.AreEqual(3L, view.GetRowCount());
        Assert.AreEqual("Id: Text, Image: Tensor<Float32>[?,?,?], Mask: Tensor<Float32>[1,?,?], ImagePath: Text, MaskPath: Text", view.Schema.ToString());
        var rows = ReadAll(view);
        CollectionAssert.AreEqual(new[] { "b", "c", "z" }, rows.Select(r => r.Id).ToArray());
        for (int k = 0; k < 3; k++)
        {
            CollectionAssert.AreEqual(new long[] { 3, 8, 8 }, rows[k].Image.shape);
            CollectionAssert.AreEqual(new long[] { 1, 8, 8 }, rows[k].Mask.shape);
            Assert.AreEqual(k + 1, rows[k].Mask.sum().ToSingle(), $"row {rows[k].Id} got another file's mask");
        }
        // PNG and TIFF images are exact: check one value of z.tif (seed 3: R(0,0) = 51).
        Assert.AreEqual(51 / 255f, rows[2].Image[0, 0, 0].ToSingle(), 1e-6f);
        var paths = view.GetTextColumn("MaskPath");
        Assert.AreEqual(Path.Combine(mk, "b.PNG"), paths[0]);
        Assert.AreEqual(Path.Combine(im, "z.tif"), view.GetTextColumn("ImagePath")[2]);
    }

    [TestMethod]
    public void UnmatchedFilesAreAnErrorListingThem()
    {
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        foreach (var n in new[] { "a", "b", "c" }) TestImages.WriteRgb(Path.Combine(im, n + ".png"), 4, 4, 0);
        foreach (var n in new[] { "a", "c", "d" }) TestImages.WriteMask(Path.Combine(mk, n + ".png"), 4, 4, 1);
        var e = Assert.ThrowsException<InvalidDataException>(() => DataViews.LoadImagesAndMasks(Ctx(), im, mk));
        StringAssert.Contains(e.Message, "b.png");
        StringAssert.Contains(e.Message, "d.png");
        StringAssert.Contains(e.Message, "have no mask");
        StringAssert.Contains(e.Message, "have no image");
        Assert.IsFalse(e.Message.Contains("a.png") || e.Message.Contains("c.png"), e.Message);
    }

    [TestMethod]
    public void UnmatchedFilesCanBeSkippedWithAWarning()
    {
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        foreach (var n in new[] { "a", "b", "c" }) TestImages.WriteRgb(Path.Combine(im, n + ".png"), 4, 4, 0);
        foreach (var n in new[] { "a", "c", "d" }) TestImages.WriteMask(Path.Combine(mk, n + ".png"), 4, 4, 1);
        var ctx = Ctx();
        var logs = new List<LogEventArgs>();
        ctx.Log += (_, e) => logs.Add(e);
        var view = DataViews.LoadImagesAndMasks(ctx, im, mk, new ImageMaskLoaderOptions { UnmatchedFiles = UnmatchedFilePolicy.SkipWithWarning });
        CollectionAssert.AreEqual(new[] { "a", "c" }, view.GetTextColumn("Id"));
        Assert.AreEqual(1, logs.Count);
        Assert.AreEqual(LogLevel.Warning, logs[0].Level);
        StringAssert.Contains(logs[0].Message, "b.png");
        StringAssert.Contains(logs[0].Message, "d.png");
    }

    [TestMethod]
    public void EmptyOrImagelessFolderIsAnErrorNamingIt()
    {
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        TestImages.WriteMask(Path.Combine(mk, "a.png"), 4, 4, 1);
        var e = Assert.ThrowsException<InvalidDataException>(() => DataViews.LoadImagesAndMasks(Ctx(), im, mk));
        StringAssert.Contains(e.Message, im);
        StringAssert.Contains(e.Message, "no image files");

        File.WriteAllText(Path.Combine(im, "readme.txt"), "x");
        e = Assert.ThrowsException<InvalidDataException>(() => DataViews.LoadImagesAndMasks(Ctx(), im, mk));
        StringAssert.Contains(e.Message, im);

        var missing = Path.Combine(dir.Path, "nope");
        var d = Assert.ThrowsException<DirectoryNotFoundException>(() => DataViews.LoadImagesAndMasks(Ctx(), missing, mk));
        StringAssert.Contains(d.Message, missing);
    }

    [TestMethod]
    public void TwoFilesWithOneStemAreAnError()
    {
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        TestImages.WriteRgb(Path.Combine(im, "a.png"), 4, 4, 0);
        TestImages.WriteRgb(Path.Combine(im, "a.jpg"), 4, 4, 0);
        TestImages.WriteMask(Path.Combine(mk, "a.png"), 4, 4, 1);
        var e = Assert.ThrowsException<InvalidDataException>(() => DataViews.LoadImagesAndMasks(Ctx(), im, mk));
        StringAssert.Contains(e.Message, "a.jpg");
        StringAssert.Contains(e.Message, "a.png");
    }

    [TestMethod]
    public void SizeMismatchNamesBothFilesAndSizes()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        TestImages.WriteRgb(Path.Combine(im, "a.png"), 16, 16, 0);
        TestImages.WriteMask(Path.Combine(mk, "a.png"), 16, 20, 1); // 20 wide, 16 high
        var view = DataViews.LoadImagesAndMasks(Ctx(), im, mk);
        using var cur = view.GetRowCursor("Image", "Mask");
        Assert.IsTrue(cur.MoveNext());
        _ = cur.GetTensor("Image");
        var e = Assert.ThrowsException<InvalidDataException>(() => cur.GetTensor("Mask"));
        StringAssert.Contains(e.Message, Path.Combine(im, "a.png"));
        StringAssert.Contains(e.Message, Path.Combine(mk, "a.png"));
        StringAssert.Contains(e.Message, "16x16");
        StringAssert.Contains(e.Message, "20x16");

        // Mask read first: the error comes when the image is read.
        using var cur2 = view.GetRowCursor("Image", "Mask");
        Assert.IsTrue(cur2.MoveNext());
        var e2 = Assert.ThrowsException<InvalidDataException>(() => { _ = cur2.GetTensor("Mask"); _ = cur2.GetTensor("Image"); });
        StringAssert.Contains(e2.Message, "20x16");
    }

    [TestMethod]
    public void FilesAreDecodedLazilySoACorruptFileFailsOnlyWhenRead()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        TestImages.WriteRgb(Path.Combine(im, "a.png"), 4, 4, 0);
        File.WriteAllText(Path.Combine(im, "b.png"), "not a png");
        foreach (var n in new[] { "a", "b" }) TestImages.WriteMask(Path.Combine(mk, n + ".png"), 4, 4, 1);
        var view = DataViews.LoadImagesAndMasks(Ctx(), im, mk);
        Assert.AreEqual(2L, view.GetRowCount());
        CollectionAssert.AreEqual(new[] { "a", "b" }, view.GetTextColumn("Id")); // ids need no decoding
        using var cur = view.GetRowCursor("Image", "Mask");
        Assert.IsTrue(cur.MoveNext());
        _ = cur.GetTensor("Image");
        Assert.IsTrue(cur.MoveNext());
        _ = cur.GetTensor("Mask");
        var e = Assert.ThrowsException<ImageFileException>(() => cur.GetTensor("Image"));
        Assert.AreEqual(Path.Combine(im, "b.png"), e.FilePath);
        StringAssert.Contains(e.Message, "b.png");
    }

    [TestMethod]
    public void Reads16BitPngAndTiff()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        var img16 = new ushort[] { 0, 1000, 30000, 65535 };
        ImageIO.WritePng16(Path.Combine(im, "p.png"), img16, 2, 2, 1);
        ImageIO.WritePng16(Path.Combine(mk, "p.png"), new ushort[] { 0, 65535, 65535, 0 }, 2, 2, 1);
        ImageIO.WriteTiff16(Path.Combine(im, "t.tif"), img16, 2, 2, 1);
        ImageIO.WriteTiff(Path.Combine(mk, "t.tiff"), new byte[] { 255, 0, 0, 255 }, 2, 2, 1);
        var view = DataViews.LoadImagesAndMasks(Ctx(), im, mk, new ImageMaskLoaderOptions { StrictBinaryMasks = true });
        var rows = ReadAll(view);
        float[] want = img16.Select(v => v / 65535f).ToArray();
        foreach (var r in rows)
        {
            CollectionAssert.AreEqual(new long[] { 1, 2, 2 }, r.Image.shape);
            var got = r.Image.ToArray<float>();
            for (int k = 0; k < 4; k++) Assert.AreEqual(want[k], got[k], 1e-7f);
        }
        CollectionAssert.AreEqual(new float[] { 0, 1, 1, 0 }, rows[0].Mask.ToArray<float>());
        CollectionAssert.AreEqual(new float[] { 1, 0, 0, 1 }, rows[1].Mask.ToArray<float>());
    }

    [TestMethod]
    public void ConvertsGrayToRgbAndRgbToGray()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        ImageIO.WritePng(Path.Combine(im, "gray.png"), new byte[] { 0, 51, 102, 255 }, 2, 2, 1);
        ImageIO.WritePng(Path.Combine(im, "rgb.png"), new byte[] { 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255 }, 2, 2, 3);
        foreach (var n in new[] { "gray", "rgb" }) TestImages.WriteMask(Path.Combine(mk, n + ".png"), 2, 2, 1);

        var asRgb = ReadAll(DataViews.LoadImagesAndMasks(Ctx(), im, mk, new ImageMaskLoaderOptions { ImageChannels = 3 }));
        var g3 = asRgb[0].Image;
        CollectionAssert.AreEqual(new long[] { 3, 2, 2 }, g3.shape);
        for (int c = 0; c < 3; c++) CollectionAssert.AreEqual(new float[] { 0, 0.2f, 0.4f, 1 }, g3[c].ToArray<float>());

        var asGray = ReadAll(DataViews.LoadImagesAndMasks(Ctx(), im, mk, new ImageMaskLoaderOptions { ImageChannels = 1 }));
        var r1 = asGray[1].Image;
        CollectionAssert.AreEqual(new long[] { 1, 2, 2 }, r1.shape);
        var v = r1.ToArray<float>();
        float[] luma = [0.299f, 0.587f, 0.114f, 1f]; // BT.601
        for (int k = 0; k < 4; k++) Assert.AreEqual(luma[k], v[k], 1e-6f);

        var asIs = DataViews.LoadImagesAndMasks(Ctx(), im, mk);
        var kept = ReadAll(asIs);
        Assert.AreEqual(1L, kept[0].Image.size(0));
        Assert.AreEqual(3L, kept[1].Image.size(0));
    }

    private static string MaskFolderWithNonBinary(TempDir dir, out string im, out string bad)
    {
        im = dir.Sub("images");
        string mk = dir.Sub("masks");
        TestImages.WriteRgb(Path.Combine(im, "clean.png"), 2, 3, 0);
        TestImages.WriteRgb(Path.Combine(im, "noisy.png"), 2, 3, 1);
        ImageIO.WritePng(Path.Combine(mk, "clean.png"), new byte[] { 0, 255, 0, 255, 255, 0 }, 3, 2, 1);
        bad = Path.Combine(mk, "noisy.png");
        ImageIO.WritePng(bad, new byte[] { 0, 5, 250, 255, 100, 200 }, 3, 2, 1); // 4 non-binary pixels
        return mk;
    }

    [TestMethod]
    public void NonBinaryMaskPixelsAreThresholdedCountedAndLogged()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string mk = MaskFolderWithNonBinary(dir, out var im, out var bad);
        var ctx = Ctx();
        var logs = new List<LogEventArgs>();
        ctx.Log += (_, e) => logs.Add(e);
        var view = DataViews.LoadImagesAndMasks(ctx, im, mk);
        Assert.AreEqual(0L, view.NonBinaryMaskPixels);
        for (int pass = 0; pass < 2; pass++)
        {
            var rows = ReadAll(view);
            CollectionAssert.AreEqual(new float[] { 0, 1, 0, 1, 1, 0 }, rows[0].Mask.ToArray<float>());
            CollectionAssert.AreEqual(new float[] { 0, 0, 1, 1, 0, 1 }, rows[1].Mask.ToArray<float>()); // > 127.5
            Assert.AreEqual(4L, view.NonBinaryMaskPixels, "each file is counted once however often it is read");
        }
        Assert.AreEqual(1, logs.Count, string.Join("\n", logs));
        StringAssert.Contains(logs[0].Message, bad);
        StringAssert.Contains(logs[0].Message, "4 of 6");
        CollectionAssert.AreEquivalent(new[] { "noisy" }, view.NonBinaryMaskPixelsByFile.Keys.ToArray());
        Assert.AreEqual(2, view.MasksRead);

        // Another threshold moves the cut: 0.02 of 255 = 5.1 → 5 stays background, 100 becomes foreground.
        var low = ReadAll(DataViews.LoadImagesAndMasks(Ctx(), im, mk, new ImageMaskLoaderOptions { MaskThreshold = 0.02 }));
        CollectionAssert.AreEqual(new float[] { 0, 0, 1, 1, 1, 1 }, low[1].Mask.ToArray<float>());
    }

    [TestMethod]
    public void StrictModeRejectsNonBinaryMaskNamingTheFile()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string mk = MaskFolderWithNonBinary(dir, out var im, out var bad);
        var view = DataViews.LoadImagesAndMasks(Ctx(), im, mk, new ImageMaskLoaderOptions { StrictBinaryMasks = true });
        using var cur = view.GetRowCursor("Mask");
        Assert.IsTrue(cur.MoveNext());
        Assert.AreEqual(3f, cur.GetTensor("Mask").sum().ToSingle()); // the clean one passes
        Assert.IsTrue(cur.MoveNext());
        var e = Assert.ThrowsException<ImageFileException>(() => cur.GetTensor("Mask"));
        Assert.AreEqual(bad, e.FilePath);
        StringAssert.Contains(e.Message, "4 of 6");
    }

    [TestMethod]
    public void ClassMapGivesInt64ClassMasksAndRejectsUnknownValues()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        TestImages.WriteRgb(Path.Combine(im, "a.png"), 2, 3, 0);
        TestImages.WriteRgb(Path.Combine(im, "b.png"), 2, 3, 0);
        ImageIO.WritePng(Path.Combine(mk, "a.png"), new byte[] { 0, 128, 255, 255, 128, 0 }, 3, 2, 1);
        ImageIO.WritePng(Path.Combine(mk, "b.png"), new byte[] { 0, 128, 64, 255, 128, 0 }, 3, 2, 1);
        var opts = new ImageMaskLoaderOptions { MaskValueToClass = new Dictionary<int, long> { [0] = 0, [128] = 1, [255] = 2 } };
        var view = DataViews.LoadImagesAndMasks(Ctx(), im, mk, opts);
        Assert.AreEqual(TensorColumnType.ClassMask(), view.Schema["Mask"].Type);
        using var cur = view.GetRowCursor("Mask");
        Assert.IsTrue(cur.MoveNext());
        var m = cur.GetTensor("Mask");
        Assert.AreEqual(ScalarType.Int64, m.dtype);
        CollectionAssert.AreEqual(new long[] { 2, 3 }, m.shape);
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 2, 1, 0 }, m.ToArray<long>());
        Assert.IsTrue(cur.MoveNext());
        var e = Assert.ThrowsException<ImageFileException>(() => cur.GetTensor("Mask"));
        Assert.AreEqual(Path.Combine(mk, "b.png"), e.FilePath);
        StringAssert.Contains(e.Message, "value 64");
    }

    [TestMethod]
    public void RgbMaskUsesItsLargestChannel()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        TestImages.WriteRgb(Path.Combine(im, "a.png"), 1, 3, 0);
        ImageIO.WritePng(Path.Combine(mk, "a.png"), new byte[] { 255, 0, 0, 0, 0, 0, 0, 0, 255 }, 3, 1, 3);
        var rows = ReadAll(DataViews.LoadImagesAndMasks(Ctx(), im, mk));
        CollectionAssert.AreEqual(new float[] { 1, 0, 1 }, rows[0].Mask.ToArray<float>());
    }

    [TestMethod]
    public void BadOptionsAreRejected()
    {
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => DataViews.LoadImagesAndMasks(Ctx(), im, mk, new ImageMaskLoaderOptions { ImageChannels = 2 }));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => DataViews.LoadImagesAndMasks(Ctx(), im, mk, new ImageMaskLoaderOptions { MaskThreshold = 1 }));
    }

    [TestMethod]
    public void CursorsFreeTheirTensors()
    {
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        foreach (var n in new[] { "a", "b" }) { TestImages.WriteRgb(Path.Combine(im, n + ".png"), 4, 4, 0); TestImages.WriteMask(Path.Combine(mk, n + ".png"), 4, 4, 2); }
        var view = DataViews.LoadImagesAndMasks(Ctx(), im, mk);
        long before = LiveTensors.Settled();
        using (var cur = view.GetRowCursor("Image", "Mask"))
            while (cur.MoveNext()) { _ = cur.GetTensor("Image"); _ = cur.GetTensor("Mask"); }
        Assert.AreEqual(before, LiveTensors.Settled());
    }
}
