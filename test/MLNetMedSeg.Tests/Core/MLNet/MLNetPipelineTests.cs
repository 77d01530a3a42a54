using Microsoft.ML;
using Microsoft.ML.Data;
using SchemaException = MLNetMedSeg.Data.SchemaException;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Testing;
using TorchSharp;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core.MLNet;

/// <summary>
/// The library as an ML.NET developer uses it: a folder of PNG pairs → LoadImages → ResizeImages → LoadMasks →
/// segmentation trainer in one EstimatorChain, fitted once, evaluated, saved with ml.Model.Save, loaded with
/// ml.Model.Load into a new MLContext, and run through Transform and a PredictionEngine.
/// </summary>
[TestClass]
public sealed class MLNetPipelineTests
{
    private const int Size = 32;

    private static string _root = "";
    private static string _train = "", _test = "";

    [ClassInitialize]
    public static void WriteData(TestContext _)
    {
        _root = Path.Combine(Path.GetTempPath(), "medseg-mlnet-" + Guid.NewGuid().ToString("N"));
        _train = WriteDiscs(Path.Combine(_root, "train"), 48, 3, size: 40);
        _test = WriteDiscs(Path.Combine(_root, "test"), 12, 33, size: 40);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { }
    }

    /// <summary>PNG pairs of one disc per image (images/ and masks/, matched by name), at <paramref name="size"/> px.</summary>
    internal static string WriteDiscs(string folder, int n, int seed, int size)
    {
        Directory.CreateDirectory(Path.Combine(folder, "images"));
        Directory.CreateDirectory(Path.Combine(folder, "masks"));
        var (images, masks) = TestData.SyntheticDiscs.Generate(new TestData.DiscStyle(size, 6, 5, [0.9, 0.4, 0.2], [0.2, 0.4, 0.9], 0.3), n, seed);
        for (int k = 0; k < n; k++)
        {
            ImageIO.WritePng(Path.Combine(folder, "images", $"case{k:D3}.png"), images[k].clamp(S(0), S(1)));
            ImageIO.WritePng(Path.Combine(folder, "masks", $"case{k:D3}.png"), masks[k]);
            images[k].Dispose();
            masks[k].Dispose();
        }
        return folder;
    }

    internal static SegmentationTrainerOptions TinyOptions(int epochs) => new()
    {
        Network = new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.UNet, EncoderDepth = 3, EncoderWidths = [8, 16, 32] },
        Epochs = epochs, BatchSize = 8, LearningRate = 1e-2,
    };

    /// <summary>ImagePath → Image (Size × Size), MaskPath → Mask.</summary>
    private static EstimatorChain<LoadMaskTransformer> Loading(MLContext ml) =>
        ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", Size, Size, resizing: Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind.Fill))
            .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", Size, Size));

    internal static IEstimator<TransformerChain<SegmentationTransformer>> Pipeline(MLContext ml, int epochs) =>
        Loading(ml).Append(ml.MedSeg().Trainers.Segmentation(TinyOptions(epochs)));

    private static IDataView Pairs(MLContext ml, string folder) =>
        ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(folder, "images"), Path.Combine(folder, "masks"));

    private static float[][] Column(IDataView data, string column)
    {
        var col = data.Schema[column];
        var rows = new List<float[]>();
        using var cur = data.GetRowCursor([col]);
        var get = cur.GetGetter<VBuffer<float>>(col);
        VBuffer<float> buf = default;
        while (cur.MoveNext())
        {
            get(ref buf);
            rows.Add(buf.DenseValues().ToArray());
        }
        return rows.ToArray();
    }

    public sealed class ImageInput
    {
        public string ImagePath { get; set; } = "";
        public string MaskPath { get; set; } = "";
    }

    public sealed class MaskPrediction
    {
        [VectorType(1, Size, Size)]
        public float[] Probability { get; set; } = [];

        [VectorType(1, Size, Size)]
        public float[] Predicted { get; set; } = [];
    }

    [TestMethod]
    public void Pipeline_Learns_SavesAndLoads_PredictsIdentically()
    {
        var ml = new MLContext(seed: 1);
        var train = Pairs(ml, _train);
        var test = Pairs(ml, _test);
        var model = Pipeline(ml, epochs: 8).Fit(train);

        var scored = model.Transform(test);
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 1, Size, Size), scored.Schema["Probability"].Type);
        Assert.IsTrue(scored.Schema["Image"].Type is Microsoft.ML.Transforms.Image.ImageDataViewType, "the input's MLImage column passes through unchanged");
        var metrics = ml.MedSeg().Evaluate(scored, labelColumnName: "Mask", scoreColumnName: "Probability");
        Console.WriteLine($"held-out mDice {metrics.MeanDice:F4} mIoU {metrics.MeanIoU:F4}");
        // Every image has a disc: all-background scores Dice 0; all-foreground scores about 2·(disc area)/(area + image) < 0.3.
        MetricsAssert.AtLeast(metrics, dice: 0.7);

        string path = Path.Combine(_root, "model.zip");
        ml.Model.Save(model, train.Schema, path);

        var ml2 = new MLContext(seed: 99);
        var loaded = ml2.Model.Load(path, out var inputSchema);
        Assert.IsNotNull(inputSchema["ImagePath"]);
        var again = loaded.Transform(Pairs(ml2, _test));
        var p1 = Column(scored, "Probability");
        var p2 = Column(again, "Probability");
        Assert.AreEqual(p1.Length, p2.Length);
        for (int r = 0; r < p1.Length; r++) CollectionAssert.AreEqual(p1[r], p2[r], $"row {r}: the loaded model predicts bit-identically");

        // An application's way: one PredictionEngine per thread, one image at a time.
        var paths = Directory.GetFiles(Path.Combine(_test, "images")).Order(StringComparer.Ordinal).ToArray();
        var results = new float[paths.Length][];
        Parallel.For(0, 3, t =>
        {
            var engine = ml2.Model.CreatePredictionEngine<ImageInput, MaskPrediction>(loaded);
            for (int k = t; k < paths.Length; k += 3)
            {
                var masks = Path.Combine(_test, "masks", Path.GetFileName(paths[k]));
                var pred = engine.Predict(new ImageInput { ImagePath = paths[k], MaskPath = masks });
                Assert.AreEqual(Size * Size, pred.Predicted.Length);
                Assert.IsTrue(pred.Predicted.All(v => v is 0f or 1f), "Predicted is binary");
                results[k] = pred.Probability;
            }
        });
        for (int r = 0; r < p1.Length; r++)
        {
            double maxDiff = p1[r].Zip(results[r]).Max(z => Math.Abs(z.First - z.Second));
            Assert.IsTrue(maxDiff < 1e-5, $"row {r}: PredictionEngine (batch of one) differs from batched Transform by {maxDiff}");
        }
    }

    [TestMethod]
    public void Trainer_FitWithValidationData_ScoresEveryEpoch()
    {
        var ml = new MLContext(seed: 2);
        var loading = Loading(ml);
        var train = Pairs(ml, _train);
        var prep = loading.Fit(train);
        var o = TinyOptions(3);
        var model = ml.MedSeg().Trainers.Segmentation(o).Fit(prep.Transform(train), prep.Transform(Pairs(ml, _test)));
        Assert.AreEqual(3, model.History.Count);
        Assert.IsTrue(model.History.All(r => r.ValidationDice is double d && d >= 0 && d <= 1), "validation mDice after every epoch");
        Assert.IsNotNull(model.BestEpoch);
    }

    [TestMethod]
    public void ValidationSet_ThroughMLNetsCache_LosesItsImages_TheErrorSaysSo_TheViewItselfValidates()
    {
        var ml = new MLContext(seed: 2);
        var loading = Loading(ml);
        var test = Pairs(ml, _test);
        var validation = loading.Fit(test).Transform(test);

        // ML.NET's cache keeps only the columns it can cache: the MLImage column is left out.
        var cached = ml.Data.Cache(validation);
        Assert.IsNull(cached.Schema.GetColumnOrNull("Image"), "ml.Data.Cache left the image column in: the hint below is wrong");
        var o = TinyOptions(1);
        o.ValidationSet = cached;
        var e = Assert.ThrowsException<SchemaException>(() => loading.Append(ml.MedSeg().Trainers.Segmentation(o)).Fit(Pairs(ml, _train)));
        Assert.AreEqual("Image", e.ColumnName);
        StringAssert.Contains(e.Message, "ValidationSet has no column 'Image'");
        StringAssert.Contains(e.Message, "ml.Data.Cache");

        // The transformed view itself validates (the trainer reads it into memory once).
        var o2 = TinyOptions(1);
        o2.ValidationSet = validation;
        using var model = loading.Append(ml.MedSeg().Trainers.Segmentation(o2)).Fit(Pairs(ml, _train));
        Assert.IsTrue(model.LastTransformer.History.Single().ValidationDice is double d && d >= 0 && d <= 1);
    }

    [TestMethod]
    public void Fit_MissingMaskColumn_FailsBeforeTraining_NamingIt()
    {
        var ml = new MLContext(seed: 1);
        var pipeline = ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", Size, Size, resizing: Microsoft.ML.Transforms.Image.ImageResizingEstimator.ResizingKind.Fill))
            .Append(ml.MedSeg().Trainers.Segmentation(TinyOptions(50)));
        var started = DateTime.UtcNow;
        var e = Assert.ThrowsException<SchemaException>(() => pipeline.Fit(Pairs(ml, _train)));
        StringAssert.Contains(e.Message, "'Mask'");
        Assert.AreEqual("Mask", e.ColumnName);
    }

    [TestMethod]
    public void Fit_WronglyTypedImageColumn_FailsNamingIt()
    {
        var ml = new MLContext(seed: 1);
        // ImagePath is text, not an image.
        var pipeline = ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", Size, Size)
            .Append(ml.MedSeg().Trainers.Segmentation(new SegmentationTrainerOptions { ImageColumn = "ImagePath", Epochs = 1 }));
        var e = Assert.ThrowsException<SchemaException>(() => pipeline.Fit(Pairs(ml, _train)));
        StringAssert.Contains(e.Message, "'ImagePath'");
    }

    [TestMethod]
    public void SaveModel_FailedSave_LeavesNoFileAndKeepsTheOldOne()
    {
        var ml = new MLContext(seed: 1);
        var data = Pairs(ml, _test);
        var model = Pipeline(ml, epochs: 1).Fit(data);
        string folder = Path.Combine(_root, "atomic");
        Directory.CreateDirectory(folder);
        string path = Path.Combine(folder, "model.zip");
        ml.MedSeg().SaveModel(model, data.Schema, path);
        var before = File.ReadAllBytes(path);
        // A chain holding a transformer that throws in Save: the earlier file stays, no temporary file remains.
        var broken = model.Append(new ThrowingSaveTransformer());
        Assert.ThrowsException<InvalidOperationException>(() => ml.MedSeg().SaveModel(broken, data.Schema, path));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path));
        Assert.AreEqual(1, Directory.GetFiles(folder).Length, string.Join(", ", Directory.GetFiles(folder)));
    }

    private sealed class ThrowingSaveTransformer : ITransformer
    {
        public bool IsRowToRowMapper => true;
        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inputSchema;
        public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => throw new NotSupportedException();
        public void Save(ModelSaveContext ctx) => throw new InvalidOperationException("disk full (simulated)");
        public IDataView Transform(IDataView input) => input;
    }

    [TestMethod]
    public void Load_TruncatedOrForeignFile_ClearErrorNamingTheFile()
    {
        var ml = new MLContext(seed: 1);
        var model = Pipeline(ml, epochs: 1).Fit(Pairs(ml, _test));
        string path = Path.Combine(_root, "truncate.zip");
        ml.Model.Save(model, Pairs(ml, _test).Schema, path);
        var bytes = File.ReadAllBytes(path);
        string cut = Path.Combine(_root, "cut.zip");
        File.WriteAllBytes(cut, bytes[..(bytes.Length / 2)]);
        var e1 = Assert.ThrowsException<InvalidDataException>(() => ml.MedSeg().LoadModel(cut, out _));
        StringAssert.Contains(e1.Message, cut);
        string foreign = Path.Combine(_root, "foreign.zip");
        File.WriteAllText(foreign, "not a model");
        var e2 = Assert.ThrowsException<InvalidDataException>(() => ml.MedSeg().LoadModel(foreign, out _));
        StringAssert.Contains(e2.Message, foreign);
    }
}

/// <summary>Images ImageAnalytics cannot decode (16-bit TIFF) through ml.MedSeg().Transforms.LoadImages.</summary>
[TestClass]
public sealed class LoadImagesTiffTests
{
    [TestMethod]
    public void SixteenBitTiff_LoadsResized_TrainsAndRoundTrips()
    {
        string root = Path.Combine(Path.GetTempPath(), "medseg-tiff-" + Guid.NewGuid().ToString("N"));
        try
        {
            string png = MLNetPipelineTests.WriteDiscs(Path.Combine(root, "png"), 8, 13, size: 24);
            string tiffs = Path.Combine(root, "tiff");
            Directory.CreateDirectory(tiffs);
            foreach (var f in Directory.GetFiles(Path.Combine(png, "images")))
            {
                using var t = ImageIO.ReadTensor(f);
                ImageIO.WriteTiff(Path.Combine(tiffs, Path.GetFileNameWithoutExtension(f) + ".tif"), t, bitDepth: 16);
            }
            var ml = new MLContext(seed: 4);
            var pairs = ml.MedSeg().Data.LoadImageMaskPairs(tiffs, Path.Combine(png, "masks"));
            var pipeline = ml.MedSeg().Transforms.LoadImages("Image", null, "ImagePath", 16, 16)
                .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", 16, 16))
                .Append(ml.MedSeg().Trainers.Segmentation(MLNetPipelineTests.TinyOptions(1)));
            var model = pipeline.Fit(pairs);
            var scored = model.Transform(pairs);
            Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 3, 16, 16), scored.Schema["Image"].Type);

            // The loaded image equals the file decoded by the library and resized bilinearly.
            var first = Directory.GetFiles(tiffs).Order(StringComparer.Ordinal).First();
            var col = scored.Schema["Image"];
            using var cur = scored.GetRowCursor([col]);
            var get = cur.GetGetter<VBuffer<float>>(col);
            VBuffer<float> buf = default;
            Assert.IsTrue(cur.MoveNext());
            get(ref buf);
            using var expected = MLNetMedSeg.Data.Transforms.ResizeTransformer.ResizeImage(ImageIO.ReadTensor(first), 16, 16);
            var want = expected.contiguous().data<float>().ToArray();
            var got = buf.DenseValues().ToArray();
            Assert.AreEqual(want.Length, got.Length);
            Assert.IsTrue(want.Zip(got).All(z => Math.Abs(z.First - z.Second) < 1e-6f), "image values as the library decodes and resizes them");

            string path = Path.Combine(root, "model.zip");
            ml.Model.Save(model, pairs.Schema, path);
            var loaded = new MLContext().Model.Load(path, out _);
            Assert.IsTrue(((IEnumerable<ITransformer>)loaded).OfType<MLNetMedSeg.Data.Transforms.LoadImageTransformer>().Any());
            Assert.AreEqual(8L, loaded.Transform(pairs).GetColumn<float[]>("Probability").LongCount());

            File.WriteAllText(Path.Combine(tiffs, "case000.tif"), "not a tiff");
            var e = Assert.ThrowsException<ImageFileException>(() => model.Transform(pairs).GetColumn<float[]>("Image").ToList());
            StringAssert.Contains(e.Message, "case000.tif");
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }
}
