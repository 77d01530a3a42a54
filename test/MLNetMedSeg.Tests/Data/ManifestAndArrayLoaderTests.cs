using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Data;

[TestClass]
public sealed class ManifestAndArrayLoaderTests
{
    private static MedSegContext Ctx() => new(seed: 1);

    [TestMethod]
    public void ManifestResolvesPathsRelativeToTheCsvWithQuotedFields()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string root = dir.Sub("set");
        string im = dir.Sub("set/img"), mk = dir.Sub("set/gt");
        TestImages.WriteRgb(Path.Combine(im, "x, 1.png"), 4, 4, 0);
        TestImages.WriteMask(Path.Combine(mk, "x1.png"), 4, 4, 5);
        TestImages.WriteRgb(Path.Combine(im, "y.jpg"), 4, 4, 1);
        TestImages.WriteMask(Path.Combine(mk, "y.png"), 4, 4, 7);
        string csv = Path.Combine(root, "manifest.csv");
        File.WriteAllText(csv, "mask,image,id\n\"gt/x1.png\",\"img/x, 1.png\",first\ngt/y.png,img/y.jpg,\n");
        var view = DataViews.LoadFromManifest(Ctx(), csv);
        CollectionAssert.AreEqual(new[] { "first", "y" }, view.GetTextColumn("Id")); // manifest order; empty id → stem
        CollectionAssert.AreEqual(new[] { Path.Combine(im, "x, 1.png"), Path.Combine(im, "y.jpg") }, view.GetTextColumn("ImagePath"));
        using var cur = view.GetRowCursor("Mask", "Image");
        Assert.IsTrue(cur.MoveNext());
        Assert.AreEqual(5f, cur.GetTensor("Mask").sum().ToSingle());
        Assert.IsTrue(cur.MoveNext());
        Assert.AreEqual(7f, cur.GetTensor("Mask").sum().ToSingle());
        CollectionAssert.AreEqual(new long[] { 3, 4, 4 }, cur.GetTensor("Image").shape);
    }

    [TestMethod]
    public void ManifestWithoutIdUsesStems()
    {
        using var dir = new TempDir();
        TestImages.WriteRgb(Path.Combine(dir.Path, "a.png"), 4, 4, 0);
        TestImages.WriteMask(Path.Combine(dir.Path, "a_mask.png"), 4, 4, 1);
        string csv = Path.Combine(dir.Path, "m.csv");
        File.WriteAllText(csv, "image,mask\r\na.png,a_mask.png\r\n");
        CollectionAssert.AreEqual(new[] { "a" }, DataViews.LoadFromManifest(Ctx(), csv).GetTextColumn("Id"));
    }

    [TestMethod]
    public void ManifestMissingFileNamesLineAndFile()
    {
        using var dir = new TempDir();
        TestImages.WriteRgb(Path.Combine(dir.Path, "a.png"), 4, 4, 0);
        TestImages.WriteMask(Path.Combine(dir.Path, "am.png"), 4, 4, 1);
        string csv = Path.Combine(dir.Path, "m.csv");
        File.WriteAllText(csv, "image,mask\na.png,am.png\nb.png,am.png\n");
        var e = Assert.ThrowsException<FileNotFoundException>(() => DataViews.LoadFromManifest(Ctx(), csv));
        StringAssert.Contains(e.Message, csv + ":3");
        StringAssert.Contains(e.Message, "b.png");
    }

    [TestMethod]
    public void ManifestBadHeaderDuplicateIdAndBadQuotingAreErrors()
    {
        using var dir = new TempDir();
        TestImages.WriteRgb(Path.Combine(dir.Path, "a.png"), 4, 4, 0);
        TestImages.WriteMask(Path.Combine(dir.Path, "am.png"), 4, 4, 1);
        string csv = Path.Combine(dir.Path, "m.csv");
        File.WriteAllText(csv, "picture,mask\na.png,am.png\n");
        StringAssert.Contains(Assert.ThrowsException<InvalidDataException>(() => DataViews.LoadFromManifest(Ctx(), csv)).Message, "'image'");
        File.WriteAllText(csv, "image,mask,id\na.png,am.png,k\na.png,am.png,k\n");
        StringAssert.Contains(Assert.ThrowsException<InvalidDataException>(() => DataViews.LoadFromManifest(Ctx(), csv)).Message, "line 2");
        File.WriteAllText(csv, "image,mask\n\"a.png,am.png\n");
        StringAssert.Contains(Assert.ThrowsException<InvalidDataException>(() => DataViews.LoadFromManifest(Ctx(), csv)).Message, csv + ":2");
    }

    [TestMethod]
    public void ArraysBecomeAnInMemoryViewOfCopies()
    {
        using var scope = torch.NewDisposeScope();
        var images = new[] { torch.rand([3, 4, 5]), torch.rand([3, 4, 5]) };
        var masks = new[] { torch.ones([1, 4, 5]), torch.zeros([1, 4, 5]) };
        using (var view = DataViews.LoadFromArrays(Ctx(), images, masks, ["p", "q"]))
        {
            Assert.AreEqual("Id: Text, Image: Tensor<Float32>[3,?,?], Mask: Tensor<Float32>[1,?,?]", view.Schema.ToString());
            using var cur = view.GetRowCursor("Id", "Image", "Mask");
            for (int r = 0; r < 2; r++)
            {
                Assert.IsTrue(cur.MoveNext());
                Assert.AreEqual(r == 0 ? "p" : "q", cur.GetText("Id"));
                Assert.IsTrue(cur.GetTensor("Image").IsEqual(images[r]));
                Assert.IsTrue(cur.GetTensor("Mask").IsEqual(masks[r]));
            }
            Assert.IsFalse(cur.MoveNext());
        }
        // The caller's tensors are still alive after the view is disposed.
        Assert.IsFalse(images[0].IsInvalid);
        Assert.AreEqual(20f, masks[0].sum().ToSingle());

        using var noMasks = DataViews.LoadFromArrays(Ctx(), [torch.rand([1, 2, 2])]);
        Assert.IsFalse(noMasks.Schema.Contains("Mask"));
        CollectionAssert.AreEqual(new[] { "0" }, noMasks.GetTextColumn("Id"));

        using var classes = DataViews.LoadFromArrays(Ctx(), [torch.rand([1, 2, 2])], [torch.zeros([2, 2], ScalarType.Int64)]);
        Assert.AreEqual(TensorColumnType.ClassMask(), classes.Schema["Mask"].Type);
    }

    [TestMethod]
    public void ArrayErrorsNameTheRow()
    {
        using var scope = torch.NewDisposeScope();
        var ok = torch.rand([3, 4, 4]);
        var e = Assert.ThrowsException<ArgumentException>(() => DataViews.LoadFromArrays(Ctx(), [ok, ok], [torch.zeros([1, 4, 4]), torch.zeros([1, 4, 5])]));
        StringAssert.Contains(e.Message, "row 1");
        StringAssert.Contains(e.Message, "5x4");
        e = Assert.ThrowsException<ArgumentException>(() => DataViews.LoadFromArrays(Ctx(), [ok, torch.zeros([4, 4], ScalarType.Int64)]));
        StringAssert.Contains(e.Message, "row 1");
        StringAssert.Contains(e.Message, "Int64");
        e = Assert.ThrowsException<ArgumentException>(() => DataViews.LoadFromArrays(Ctx(), [ok], [torch.zeros([2, 4, 4])]));
        StringAssert.Contains(e.Message, "row 0");
        e = Assert.ThrowsException<ArgumentException>(() => DataViews.LoadFromArrays(Ctx(), [ok, ok], [torch.zeros([1, 4, 4]), torch.zeros([4, 4], ScalarType.Int64)]));
        StringAssert.Contains(e.Message, "row 1");
        e = Assert.ThrowsException<ArgumentException>(() => DataViews.LoadFromArrays(Ctx(), [ok, ok], null, ["a", "a"]));
        StringAssert.Contains(e.Message, "row 1");
        Assert.ThrowsException<ArgumentException>(() => DataViews.LoadFromArrays(Ctx(), [ok, ok], [torch.zeros([1, 4, 4])]));
    }
}
