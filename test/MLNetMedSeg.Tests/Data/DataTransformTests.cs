using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Data;

[TestClass]
public sealed class DataTransformTests
{
    private static MedSegContext Ctx() => new(seed: 1);

    private static InMemoryDataView View(Tensor image, Tensor? mask = null)
    {
        var cols = new List<(string, ColumnType, System.Collections.IList)>
        {
            ("Id", TextColumnType.Instance, new List<string> { "r0" }),
            ("Image", TensorColumnType.Image(), new List<Tensor> { image.clone() }),
        };
        if (mask is not null)
            cols.Add(("Mask", mask.dtype == ScalarType.Int64 ? TensorColumnType.ClassMask() : TensorColumnType.BinaryMask(), new List<Tensor> { mask.clone() }));
        return InMemoryDataView.Create([.. cols]);
    }

    private static Tensor First(IDataView v, string column)
    {
        using var cur = v.GetRowCursor(column);
        Assert.IsTrue(cur.MoveNext());
        return cur.GetTensor(column).clone();
    }

    private static void AssertClose(float[] expected, Tensor actual, float tol = 1e-6f)
    {
        var a = actual.ToArray<float>();
        Assert.AreEqual(expected.Length, a.Length);
        for (int k = 0; k < a.Length; k++) Assert.AreEqual(expected[k], a[k], tol, $"element {k}: {string.Join(", ", a)}");
    }

    [TestMethod]
    public void ResizeUpscalesImagesBilinearlyWithHalfPixelCenters()
    {
        using var scope = torch.NewDisposeScope();
        // 2x2 → 4x4, align_corners = false: source coordinate (d + 0.5)/2 - 0.5 clamped to [0, 1] → 0, .25, .75, 1.
        var img = torch.tensor(new float[] { 0, 1, 2, 3 }, [1, 2, 2]);
        using var data = View(img);
        var est = EngineTransforms.Resize(4, 4, maskColumn: null);
        var outv = est.Fit(data).Transform(data);
        Assert.AreEqual(TensorColumnType.Image(-1, 4, 4), outv.Schema["Image"].Type);
        var r = First(outv, "Image");
        CollectionAssert.AreEqual(new long[] { 1, 4, 4 }, r.shape);
        AssertClose([0, 0.25f, 0.75f, 1, 0.5f, 0.75f, 1.25f, 1.5f, 1.5f, 1.75f, 2.25f, 2.5f, 2, 2.25f, 2.75f, 3], r);
    }

    [TestMethod]
    public void ResizeDownscalesImagesByAveragingTheCentredPixels()
    {
        using var scope = torch.NewDisposeScope();
        // 4x4 → 2x2: source coordinates 0.5 and 2.5 → means of the 2x2 blocks.
        var img = torch.arange(S(0), S(16), ScalarType.Float32).reshape(1, 4, 4);
        using var data = View(img.expand(3, 4, 4).contiguous());
        var r = First(EngineTransforms.Resize(2, 2, maskColumn: null).Fit(data).Transform(data), "Image");
        CollectionAssert.AreEqual(new long[] { 3, 2, 2 }, r.shape);
        AssertClose([2.5f, 4.5f, 10.5f, 12.5f], r[2]);
    }

    [TestMethod]
    public void ResizeUsesNearestForMasksAndKeepsLabels()
    {
        using var scope = torch.NewDisposeScope();
        var mask = torch.tensor(new float[] { 0, 1, 1, 0 }, [1, 2, 2]);
        using var data = View(torch.rand([3, 2, 2]), mask);
        var outv = EngineTransforms.Resize(4, 4).Fit(data).Transform(data);
        Assert.AreEqual(TensorColumnType.BinaryMask(4, 4), outv.Schema["Mask"].Type);
        var m = First(outv, "Mask");
        AssertClose([0, 0, 1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0], m);

        // 4x4 → 3x3 nearest: source index floor(d·4/3) = 0, 1, 2.
        var big = torch.tensor(Enumerable.Range(0, 16).Select(i => (float)((i * 7) % 2)).ToArray(), [1, 4, 4]);
        using var data2 = View(torch.rand([1, 4, 4]), big);
        var small = First(EngineTransforms.Resize(3, 3, imageColumn: null).Fit(data2).Transform(data2), "Mask");
        var b = big.ToArray<float>();
        AssertClose([b[0], b[1], b[2], b[4], b[5], b[6], b[8], b[9], b[10]], small);

        // Class masks (int64) stay int64 with the same labels.
        var cls = torch.tensor(new long[] { 0, 1, 2, 3, 4, 5 }, [2, 3]);
        using var data3 = View(torch.rand([1, 2, 3]), cls);
        var outc = EngineTransforms.Resize(4, 6).Fit(data3).Transform(data3);
        Assert.AreEqual(TensorColumnType.ClassMask(4, 6), outc.Schema["Mask"].Type);
        var c = First(outc, "Mask");
        Assert.AreEqual(ScalarType.Int64, c.dtype);
        CollectionAssert.AreEqual(new long[] { 0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 3, 3, 4, 4, 5, 5 }, c.ToArray<long>());

        // A bilinear-interpolated real mask would leave {0,1}; nearest keeps it binary on an odd factor.
        using var data4 = View(torch.rand([1, 5, 5]), torch.rand([1, 5, 5]).gt(S(0.5)).to(ScalarType.Float32));
        var odd = First(EngineTransforms.Resize(7, 3).Fit(data4).Transform(data4), "Mask");
        Assert.IsTrue(odd.eq(S(0)).logical_or(odd.eq(S(1))).all().ToBoolean());
    }

    [TestMethod]
    public void SchemaErrorsNameTheColumn()
    {
        using var scope = torch.NewDisposeScope();
        using var data = View(torch.rand([3, 4, 4]));
        var ctx = Ctx();
        var e = Assert.ThrowsException<SchemaException>(() => EngineTransforms.Resize(2, 2).GetOutputSchema(data.Schema));
        Assert.AreEqual("Mask", e.ColumnName);
        e = Assert.ThrowsException<SchemaException>(() => EngineTransforms.Resize(2, 2, imageColumn: "Picture", maskColumn: null).Fit(data));
        Assert.AreEqual("Picture", e.ColumnName);
        e = Assert.ThrowsException<SchemaException>(() => EngineTransforms.Resize(2, 2, imageColumn: "Id", maskColumn: null).GetOutputSchema(data.Schema));
        Assert.AreEqual("Id", e.ColumnName);
        e = Assert.ThrowsException<SchemaException>(() => EngineTransforms.BinarizeMask(column: "Id").GetOutputSchema(data.Schema));
        Assert.AreEqual("Id", e.ColumnName);
        var rgbSchema = DataViewSchema.Create(("Image", TensorColumnType.Image(3)), ("Mask", TensorColumnType.ClassMask()));
        e = Assert.ThrowsException<SchemaException>(() => EngineTransforms.BinarizeMask(column: "Image").GetOutputSchema(rgbSchema));
        Assert.AreEqual("Image", e.ColumnName);
        e = Assert.ThrowsException<SchemaException>(() => EngineTransforms.BinarizeMask().GetOutputSchema(rgbSchema)); // int64 class mask
        Assert.AreEqual("Mask", e.ColumnName);
        e = Assert.ThrowsException<SchemaException>(() => EngineTransforms.MapMaskValues(new Dictionary<int, long> { [0] = 0 }, "Id").GetOutputSchema(data.Schema));
        Assert.AreEqual("Id", e.ColumnName);
        e = Assert.ThrowsException<SchemaException>(() => EngineTransforms.ConvertChannels(1, "Mask").GetOutputSchema(rgbSchema));
        Assert.AreEqual("Mask", e.ColumnName);
        using var four = View(torch.rand([4, 2, 2]));
        var fourSchema = new DataViewSchema.Builder(four.Schema).AddColumn("Image", TensorColumnType.Image(4)).ToSchema();
        e = Assert.ThrowsException<SchemaException>(() => EngineTransforms.ConvertChannels(3).GetOutputSchema(fourSchema));
        Assert.AreEqual("Image", e.ColumnName);
        // The transformer checks again when transforming.
        var t = EngineTransforms.Resize(2, 2, maskColumn: null).Fit(data);
        using var noImage = InMemoryDataView.Create(("Id", TextColumnType.Instance, new List<string> { "a" }));
        Assert.AreEqual("Image", Assert.ThrowsException<SchemaException>(() => t.Transform(noImage)).ColumnName);
    }

    [TestMethod]
    public void ConvertChannelsBothWays()
    {
        using var scope = torch.NewDisposeScope();
        var rgb = torch.tensor(new float[] { 1, 0, 0, 1, 0, 1 }, [3, 1, 2]); // pixel 0 (1,0,0)... R=[1,0], G=[0,1], B=[0,1]
        using var data = View(rgb);
        var gray = ConvertTo(data, 1);
        CollectionAssert.AreEqual(new long[] { 1, 1, 2 }, gray.shape);
        AssertClose([0.299f, 0.587f + 0.114f], gray);

        using var gdata = View(torch.tensor(new float[] { 0.25f, 0.5f }, [1, 1, 2]));
        var three = ConvertTo(gdata, 3);
        AssertClose([0.25f, 0.5f, 0.25f, 0.5f, 0.25f, 0.5f], three);
        var same = ConvertTo(gdata, 1);
        AssertClose([0.25f, 0.5f], same);
    }

    private static Tensor ConvertTo(IDataView data, int channels)
    {
        var outv = EngineTransforms.ConvertChannels(channels).Fit(data).Transform(data);
        Assert.AreEqual(channels, ((TensorColumnType)outv.Schema["Image"].Type).Shape[0]);
        return First(outv, "Image");
    }

    [TestMethod]
    public void BinarizeMaskThresholds()
    {
        using var scope = torch.NewDisposeScope();
        using var data = View(torch.rand([1, 1, 4]), torch.tensor(new float[] { 0.2f, 0.5f, 0.51f, 1 }, [1, 1, 4]));
        AssertClose([0, 0, 1, 1], First(EngineTransforms.BinarizeMask().Fit(data).Transform(data), "Mask"));
        AssertClose([0, 1, 1, 1], First(EngineTransforms.BinarizeMask(0.3).Fit(data).Transform(data), "Mask"));
    }

    [TestMethod]
    public void MapMaskValuesMapsAndNamesUnknownValues()
    {
        using var scope = torch.NewDisposeScope();
        var map = new Dictionary<int, long> { [0] = 0, [128] = 1, [255] = 2 };
        using var data = View(torch.rand([1, 1, 4]), torch.tensor(new float[] { 0, 128 / 255f, 1, 128 / 255f }, [1, 1, 4]));
        var outv = EngineTransforms.MapMaskValues(map).Fit(data).Transform(data);
        Assert.AreEqual(TensorColumnType.ClassMask(), outv.Schema["Mask"].Type);
        var m = First(outv, "Mask");
        CollectionAssert.AreEqual(new long[] { 1, 4 }, m.shape);
        CollectionAssert.AreEqual(new long[] { 0, 1, 2, 1 }, m.ToArray<long>());

        using var bad = View(torch.rand([1, 1, 2]), torch.tensor(new float[] { 0, 64 / 255f }, [1, 1, 2]));
        var badOut = EngineTransforms.MapMaskValues(map).Fit(bad).Transform(bad);
        using var cur = badOut.GetRowCursor("Mask");
        Assert.IsTrue(cur.MoveNext());
        var e = Assert.ThrowsException<InvalidDataException>(() => cur.GetTensor("Mask"));
        StringAssert.Contains(e.Message, "value 64");
        StringAssert.Contains(e.Message, "Id 'r0'");
        StringAssert.Contains(e.Message, "'Mask'");
    }

    [TestMethod]
    public void TransformersSaveAndLoadTheirOptions()
    {
        using var scope = torch.NewDisposeScope();
        var ctx = Ctx();
        using var data = View(torch.rand([3, 5, 6]), torch.tensor(Enumerable.Range(0, 30).Select(i => i % 3 == 0 ? 1f : 0f).ToArray(), [1, 5, 6]));
        ITransformer[] fitted =
        [
            EngineTransforms.Resize(3, 4).Fit(data),
            EngineTransforms.ConvertChannels(1).Fit(data),
            EngineTransforms.BinarizeMask(0.25).Fit(data),
            EngineTransforms.MapMaskValues(new Dictionary<int, long> { [0] = 0, [255] = 7 }).Fit(data),
        ];
        Func<ModelLoadContext, ITransformer>[] loaders = [ResizeTransformer.Load, ConvertChannelsTransformer.Load, BinarizeMaskTransformer.Load, MapMaskValuesTransformer.Load];
        string[] signatures = [ResizeTransformer.LoaderSignature, ConvertChannelsTransformer.LoaderSignature, BinarizeMaskTransformer.LoaderSignature, MapMaskValuesTransformer.LoaderSignature];
        for (int k = 0; k < fitted.Length; k++)
        {
            var save = new MemorySaveContext();
            fitted[k].Save(save);
            Assert.AreEqual(signatures[k], save.Signature);
            Assert.AreEqual(1, save.Version);
            var loaded = loaders[k](new MemoryLoadContext(save, ctx));
            Assert.AreEqual(fitted[k].GetOutputSchema(data.Schema).ToString(), loaded.GetOutputSchema(data.Schema).ToString());
            var a = fitted[k].Transform(data);
            var b = loaded.Transform(data);
            foreach (var col in new[] { "Image", "Mask" })
                Assert.IsTrue(First(a, col).IsEqual(First(b, col)), $"{signatures[k]}: column {col} differs after load");
        }
        var resize = (ResizeTransformer)fitted[0];
        Assert.AreEqual((3, 4, "Image", "Mask"), (resize.Options.Height, resize.Options.Width, resize.Options.ImageColumn, resize.Options.MaskColumn));
    }

    [TestMethod]
    public void TransformsAreLazyAndFreeTheirTensors()
    {
        long before = LiveTensors.Settled();
        InMemoryDataView data;
        using (torch.NewDisposeScope()) data = View(torch.rand([3, 8, 8]), torch.ones([1, 8, 8]));
        using (data)
        {
            var ctx = Ctx();
            var a = EngineTransforms.Resize(4, 4).Fit(data).Transform(data);
            var b = EngineTransforms.ConvertChannels(1).Fit(a).Transform(a);
            var c = EngineTransforms.BinarizeMask().Fit(b).Transform(b);
            Assert.AreEqual(data.GetRowCount(), c.GetRowCount());
            Assert.IsTrue(c.CanShuffle);
            for (int pass = 0; pass < 2; pass++)
                using (var cur = c.GetRowCursor("Image", "Mask"))
                    while (cur.MoveNext())
                    {
                        using var rowScope = torch.NewDisposeScope();
                        CollectionAssert.AreEqual(new long[] { 1, 4, 4 }, cur.GetTensor("Image").shape);
                        Assert.AreEqual(16f, cur.GetTensor("Mask").sum().ToSingle());
                    }
        }
        Assert.AreEqual(before, LiveTensors.Settled());
    }
}
