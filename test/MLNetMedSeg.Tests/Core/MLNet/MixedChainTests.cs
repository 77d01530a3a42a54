using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Testing;
using MLNetMedSeg.Tests.Segmentation.Networks;
using static MLNetMedSeg.Core.Scalars;
using SchemaException = MLNetMedSeg.Data.SchemaException;
using TestDiscs = MLNetMedSeg.Tests.TestData.SyntheticDiscs;
using DiscStyle = MLNetMedSeg.Tests.TestData.DiscStyle;

namespace MLNetMedSeg.Tests.Core.MLNet;

/// <summary>
/// ML.NET's transforms and the library's in one chain: LoadImages → ResizeImages → ExtractPixels → NormalizeMinMax
/// (ML.NET) → LoadMasks → BinarizeMask → segmentation trainer (ours) → NormalizeMinMax over our output (ML.NET). What
/// fits where: ExtractPixels with planar colours (interleavePixelColors: false, its default) gives Vector&lt;Single, 3, H, W&gt;,
/// which our stages read as [C,H,W]; NormalizeMinMax keeps those dimensions; an interleaved [H,W,3] vector or one
/// without dimensions (Concatenate) is refused with the column named (see TensorColumns).
/// </summary>
[TestClass]
public sealed class MixedChainTests
{
    private const int Size = 16;
    private static string _root = "";

    [ClassInitialize]
    public static void WriteData(TestContext _)
    {
        _root = Directory.CreateTempSubdirectory("medseg-mixed-").FullName;
        Directory.CreateDirectory(Path.Combine(_root, "images"));
        Directory.CreateDirectory(Path.Combine(_root, "masks"));
        var (images, masks) = TestDiscs.Generate(new DiscStyle(24, 4, 3, [0.9, 0.4, 0.2], [0.2, 0.4, 0.9], 0.3), 6, 21);
        for (int k = 0; k < images.Count; k++)
        {
            ImageIO.WritePng(Path.Combine(_root, "images", $"case{k}.png"), images[k].clamp(S(0), S(1)));
            ImageIO.WritePng(Path.Combine(_root, "masks", $"case{k}.png"), masks[k]);
        }
        foreach (var t in images.Concat(masks)) t.Dispose();
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private static IDataView Pairs(MLContext ml) =>
        ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(_root, "images"), Path.Combine(_root, "masks"));

    private static SegmentationTrainerOptions Tiny(string imageColumn) => new()
    {
        ImageColumn = imageColumn, Network = NetworkTestUtil.Small(SegmentationArchitecture.UNet, depth: 2), Epochs = 1, BatchSize = 3, LearningRate = 1e-2,
        Loss = new SegmentationLossOptions { Kind = SegmentationLossKind.DiceBce },
    };

    private static IEstimator<ITransformer> Pixels(MLContext ml, bool interleave = false) =>
        ml.Transforms.LoadImages("ImageObject", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("ImageObject", Size, Size))
            .Append(ml.Transforms.ExtractPixels("Pixels", "ImageObject", interleavePixelColors: interleave, scaleImage: 1f / 255));

    [TestMethod]
    public void MLNetAndMedSegTransforms_InOneChain_PassTheWorkout()
    {
        var ml = new MLContext(seed: 1);
        var chain = Pixels(ml)
            .Append(ml.Transforms.NormalizeMinMax("Image", "Pixels"))
            .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", Size, Size))
            .Append(ml.MedSeg().Transforms.BinarizeMask("Mask"))
            .Append(ml.MedSeg().Trainers.Segmentation(Tiny("Image")))
            .Append(ml.Transforms.NormalizeMinMax("ScaledProbability", "Probability"));
        var r = MLNetWorkout.Run(ml, chain, Pairs(ml), "ImagePath", new MLNetWorkoutOptions { MoreRequiredColumns = ["MaskPath"] });
        var types = r.AddedColumns.ToArray();
        foreach (var expected in new[]
        {
            "Pixels: Vector<Single, 3, 16, 16>", "Image: Vector<Single, 3, 16, 16>", "Mask: Vector<Single, 1, 16, 16>",
            "Probability: Vector<Single, 1, 16, 16>", "Predicted: Vector<Single, 1, 16, 16>", "ScaledProbability: Vector<Single, 1, 16, 16>",
        })
            CollectionAssert.Contains(types, expected, string.Join("; ", types));
        Assert.AreEqual(6, r.PredictionEngineRows, "the whole chain is row-to-row: PredictionEngine (the chain's row mapper) matches Transform");
    }

    /// <summary>ExtractPixels' planar floats scaled by 1/255 are the values our MLImage conversion gives: the same segmenter predicts the same.</summary>
    [TestMethod]
    public void MedSegCancellationToken_StopsAChainsTrainingAtTheNextStep()
    {
        var ml = new MLContext(seed: 3);
        var chain = Pixels(ml)
            .Append(ml.Transforms.NormalizeMinMax("Image", "Pixels"))
            .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", Size, Size))
            .Append(ml.MedSeg().Transforms.BinarizeMask("Mask"))
            .Append(ml.MedSeg().Trainers.Segmentation(Tiny("Image")));
        using var cts = new CancellationTokenSource();
        var steps = new List<MLNetMedSeg.Pipeline.TrainingProgress>();
        ml.MedSeg().CancellationToken = cts.Token;
        ml.MedSeg().Progress = new Reporter(p => { steps.Add(p); cts.Cancel(); });
        Assert.ThrowsException<OperationCanceledException>(() => chain.Fit(Pairs(ml)));
        Assert.AreEqual(1, steps.Count, "ML.NET's Fit takes no token: the one set on ml.MedSeg() stops the stage after the step that cancelled");
        ml.MedSeg().CancellationToken = CancellationToken.None;
        using var fitted = (IDisposable)chain.Fit(Pairs(ml));
    }

    private sealed class Reporter(Action<MLNetMedSeg.Pipeline.TrainingProgress> report) : IProgress<MLNetMedSeg.Pipeline.TrainingProgress>
    {
        public void Report(MLNetMedSeg.Pipeline.TrainingProgress value) => report(value);
    }

    [TestMethod]
    public void ExtractPixels_Planar_MatchesTheMLImageConversion()
    {
        var ml = new MLContext(seed: 2);
        var data = Pixels(ml).Fit(Pairs(ml)).Transform(Pairs(ml));
        var pixels = data.GetColumn<VBuffer<float>>("Pixels").Select(v => v.DenseValues().ToArray()).ToArray();
        var converted = ImagesAsTensors(data);
        Assert.AreEqual(pixels.Length, converted.Length);
        for (int r = 0; r < pixels.Length; r++)
            CollectionAssert.AreEqual(pixels[r], converted[r], $"row {r}: ExtractPixels(scaleImage: 1/255) vs TensorColumns.FromImage");
    }

    private static float[][] ImagesAsTensors(IDataView data)
    {
        var view = MLNetMedSeg.Core.MLNet.MLNetData.AsLibraryView(data);
        var rows = new List<float[]>();
        using var cur = view.GetRowCursor([view.Schema["ImageObject"]]);
        while (cur.MoveNext()) rows.Add(cur.GetTensor("ImageObject").contiguous().data<float>().ToArray());
        return rows.ToArray();
    }

    [TestMethod]
    public void InterleavedPixels_AreRefused_NamingTheColumn()
    {
        var ml = new MLContext(seed: 3);
        var chain = Pixels(ml, interleave: true)
            .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", Size, Size))
            .Append(ml.MedSeg().Trainers.Segmentation(Tiny("Pixels")));
        var e = Assert.ThrowsException<SchemaException>(() => chain.Fit(Pairs(ml)));
        StringAssert.Contains(e.Message, "'Pixels'");
        StringAssert.Contains(e.Message, "[16,16,3]");
    }

    /// <summary>An image declared as a flat float[] ([VectorType(768)], no dimensions), as an application might.</summary>
    public sealed class FlatRow
    {
        [VectorType(3 * Size * Size)] public float[] Image { get; set; } = [];
        [VectorType(1, Size, Size)] public float[] Mask { get; set; } = [];
    }

    [TestMethod]
    public void VectorsWithoutDimensions_AreRefusedBeforeTraining_SayingWhy()
    {
        var ml = new MLContext(seed: 4);
        var rows = Enumerable.Range(0, 4).Select(i => new FlatRow { Image = new float[3 * Size * Size], Mask = new float[Size * Size] }).ToList();
        var trainer = ml.MedSeg().Trainers.Segmentation(Tiny("Image"));
        var progress = new CountingProgress();
        ml.MedSeg().Progress = progress;
        var e = Assert.ThrowsException<SchemaException>(() => trainer.Fit(ml.Data.LoadFromEnumerable(rows)));
        Assert.AreEqual("Image", e.ColumnName);
        StringAssert.Contains(e.Message, "Vector<Single, 768>");
        StringAssert.Contains(e.Message, "dimensions");
        Assert.AreEqual(0, progress.Reports, "refused before any training step");
        // SchemaShape carries no dimensions: GetOutputSchema(SchemaShape) cannot tell, Fit is where it is caught.
        trainer.GetOutputSchema(MLNetMedSeg.Core.MLNet.MLContextBridge.ShapeOf(ml.Data.LoadFromEnumerable(rows).Schema));
    }

    private sealed class CountingProgress : IProgress<MLNetMedSeg.Pipeline.TrainingProgress>
    {
        public int Reports { get; private set; }

        public void Report(MLNetMedSeg.Pipeline.TrainingProgress value) => Reports++;
    }
}
