using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Attacks;
using MLNetMedSeg.Attacks.Networks;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Dasp;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Testing;
using MLNetMedSeg.Tests.Segmentation.Networks;
using TestDiscs = MLNetMedSeg.Tests.TestData.SyntheticDiscs;
using DiscStyle = MLNetMedSeg.Tests.TestData.DiscStyle;

namespace MLNetMedSeg.Tests.Core.MLNet;

/// <summary>Rows of the ML.NET workouts: tiny RGB images with float or class masks, as an application declares them.</summary>
internal static class WorkoutRows
{
    public sealed class Rgb16
    {
        [VectorType(3, 16, 16)] public float[] Image { get; set; } = [];
        [VectorType(1, 16, 16)] public float[] Mask { get; set; } = [];
    }

    public sealed class Rgb32
    {
        [VectorType(3, 32, 32)] public float[] Image { get; set; } = [];
        [VectorType(1, 32, 32)] public float[] Mask { get; set; } = [];
    }

    public sealed class Rgb16Classes
    {
        [VectorType(3, 16, 16)] public float[] Image { get; set; } = [];
        [VectorType(16, 16)] public long[] Mask { get; set; } = [];
    }

    private static DiscStyle Style(int size) => new(size, size / 5.0, size / 8.0, [0.8, 0.45, 0.25], [0.25, 0.45, 0.8], 0.35);

    private static (float[][] Images, float[][] Masks, long[][] Classes) Discs(int size, int n, int seed, bool multiClass)
    {
        var (images, masks) = TestDiscs.Generate(Style(size), n, seed, multiClass);
        try
        {
            var x = images.Select(t => t.contiguous().data<float>().ToArray()).ToArray();
            return multiClass
                ? (x, [], masks.Select(t => t.contiguous().data<long>().ToArray()).ToArray())
                : (x, masks.Select(t => t.contiguous().data<float>().ToArray()).ToArray(), []);
        }
        finally
        {
            foreach (var t in images.Concat(masks)) t.Dispose();
        }
    }

    public static List<Rgb16> Discs16(int n, int seed)
    {
        var (x, y, _) = Discs(16, n, seed, false);
        return Enumerable.Range(0, n).Select(i => new Rgb16 { Image = x[i], Mask = y[i] }).ToList();
    }

    public static List<Rgb32> Discs32(int n, int seed)
    {
        var (x, y, _) = Discs(32, n, seed, false);
        return Enumerable.Range(0, n).Select(i => new Rgb32 { Image = x[i], Mask = y[i] }).ToList();
    }

    public static List<Rgb16Classes> Classes16(int n, int seed)
    {
        var (x, _, y) = Discs(16, n, seed, true);
        return Enumerable.Range(0, n).Select(i => new Rgb16Classes { Image = x[i], Mask = y[i] }).ToList();
    }
}

/// <summary>
/// The ML.NET workout (<see cref="MLNetWorkout"/>) on every stage, each built from its <c>ml.MedSeg()</c> catalog on
/// tiny synthetic data (16–32 px, one epoch): schema propagation over SchemaShape, errors for missing and wrongly typed
/// columns before training, Fit → ml.Model.Save → ml.Model.Load (new MLContext) → bit-identical Transform, a
/// PredictionEngine matching Transform, and no tensor left to the finalizer.
/// </summary>
[TestClass]
public sealed class StageWorkoutTests
{
    private static readonly MLNetWorkoutOptions ImageAndMask = new() { MoreRequiredColumns = ["Mask"] };

    private static void Log(string stage, MLNetWorkoutResult r, Stopwatch sw) =>
        Console.WriteLine($"{stage}: {r.Rows} rows, added [{string.Join("; ", r.AddedColumns)}], model {r.ModelBytes} bytes, " +
            $"{r.PredictionEngineRows} PredictionEngine rows, {sw.Elapsed.TotalSeconds:F1} s");

    private static SegmentationTrainerOptions TinySegmentation(SegmentationNetworkOptions network, long classes = 1) => new()
    {
        Network = network, Epochs = 1, BatchSize = 4, LearningRate = 1e-2,
        Loss = new SegmentationLossOptions { Kind = classes == 1 ? SegmentationLossKind.DiceBce : SegmentationLossKind.DiceCrossEntropy },
    };

    private static DiffusionUNetOptions TinyUNet() => new()
    {
        BaseChannels = 16, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 16, GroupNormGroups = 8,
    };

    private static ImageDiffusionOptions TinyImageDiffusion() => new()
    {
        Network = TinyUNet(), TimeSteps = 50, Epochs = 1, BatchSize = 4, LearningRate = 2e-3, EmaDecay = 0.99, SampleSteps = 4,
    };

    [TestMethod]
    [DataRow(SegmentationArchitecture.UNet)]
    [DataRow(SegmentationArchitecture.UNetPlusPlus)]
    [DataRow(SegmentationArchitecture.LinkNet)]
    [DataRow(SegmentationArchitecture.DeepLabV3Plus)]
    public void Segmentation_Binary(SegmentationArchitecture architecture)
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 1);
        var trainer = ml.MedSeg().Trainers.Segmentation(TinySegmentation(NetworkTestUtil.Small(architecture)));
        var r = MLNetWorkout.Run(ml, trainer, WorkoutRows.Discs32(6, 1), "Image", ImageAndMask);
        CollectionAssert.AreEqual(new[] { "Probability: Vector<Single, 1, 32, 32>", "Predicted: Vector<Single, 1, 32, 32>" }, r.AddedColumns.ToArray());
        Assert.AreEqual(6, r.PredictionEngineRows);
        Log($"Segmentation {architecture}", r, sw);
    }

    [TestMethod]
    public void Segmentation_MultiClass()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 2);
        var trainer = ml.MedSeg().Trainers.Segmentation(TinySegmentation(NetworkTestUtil.Small(SegmentationArchitecture.UNet, classes: 3, depth: 3), classes: 3));
        var r = MLNetWorkout.Run(ml, trainer, WorkoutRows.Classes16(6, 2), "Image", ImageAndMask);
        CollectionAssert.AreEqual(new[] { "Probability: Vector<Single, 3, 16, 16>", "Predicted: Vector<Int64, 16, 16>" }, r.AddedColumns.ToArray());
        Log("Segmentation multi-class", r, sw);
    }

    [TestMethod]
    public void MaskDiffusion_OneAndTwoSamplesPerRow()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 3);
        MaskDiffusionOptions Tiny(int k) => new()
        {
            Network = TinyUNet(), Steps = 50, Epochs = 1, BatchSize = 4, LearningRate = 2e-3, EmaDecay = 0.99, SampleSteps = 5, SamplesPerRow = k,
        };
        var rows = WorkoutRows.Discs16(5, 3);
        // In ML.NET chains the mask diffusion is an augmenter: ML.NET sees its input unchanged (a PredictionEngine passes
        // rows through), and the generated masks travel to the trainer downstream (AugmentedTrainingData).
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Generation.MaskDiffusion(Tiny(1)), rows, "Mask");
        Assert.AreEqual(0, r.AddedColumns.Count, string.Join(", ", r.AddedColumns));
        Assert.AreEqual(5, r.PredictionEngineRows, "rows pass through");
        Log("MaskDiffusion k=1", r, sw);
        var data = ml.Data.LoadFromEnumerable(rows);
        var r2 = MLNetWorkout.Run(ml, ml.MedSeg().Generation.MaskDiffusion(Tiny(2)), rows, "Mask");
        Assert.AreEqual(5, r2.Rows, "ML.NET sees the 5 input rows");
        var model = ml.MedSeg().Generation.MaskDiffusion(Tiny(2)).Fit(data);
        var carried = MLNetMedSeg.Augmentation.AugmentedTrainingData.From(model.Transform(data));
        var masks = carried.GeneratedMasks!;
        Assert.AreEqual(10, masks.CountRows(), "two generated masks per row travel to the trainer");
        string path = Path.Combine(Path.GetTempPath(), $"maskdiff-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var loaded = new MLContext(seed: 99).Model.Load(path, out _);
            var again = MLNetMedSeg.Augmentation.AugmentedTrainingData.From(loaded.Transform(data)).GeneratedMasks!;
            using var c1 = masks.GetRowCursor(carried.GeneratedMaskColumn!);
            using var c2 = again.GetRowCursor(carried.GeneratedMaskColumn!);
            while (c1.MoveNext())
            {
                Assert.IsTrue(c2.MoveNext());
                Assert.IsTrue(c1.GetTensor(carried.GeneratedMaskColumn!).IsEqual(c2.GetTensor(carried.GeneratedMaskColumn!)), "the loaded model generates the same masks");
            }
        }
        finally
        {
            File.Delete(path);
        }
        Log("MaskDiffusion k=2", r2, sw);
    }

    [TestMethod]
    public void ImageDiffusion()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 4);
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Generation.ImageDiffusion(TinyImageDiffusion()), WorkoutRows.Discs16(5, 4), "Image", ImageAndMask);
        CollectionAssert.AreEqual(new[] { "SyntheticImage: Vector<Single, 3, 16, 16>" }, r.AddedColumns.ToArray());
        Assert.AreEqual(5, r.PredictionEngineRows);
        Log("ImageDiffusion", r, sw);
    }

    /// <summary>A tiny binary segmenter fitted through ML.NET, to be attacked.</summary>
    private static SegmentationTransformer FitSegmenter(MLContext ml, List<WorkoutRows.Rgb16> rows) =>
        ml.MedSeg().Trainers.Segmentation(TinySegmentation(NetworkTestUtil.Small(SegmentationArchitecture.UNet, depth: 2)))
            .Fit(ml.Data.LoadFromEnumerable(rows));

    [TestMethod]
    public void AdversarialAugmenters_Fgsm_InverseFgsm_Pgd_DiffPgd()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 5);
        var rows = WorkoutRows.Discs16(5, 5);
        using var segmenter = FitSegmenter(ml, rows);
        using var sdEdit = ml.MedSeg().Generation.ImageDiffusion(TinyImageDiffusion()).Fit(ml.Data.LoadFromEnumerable(rows));
        var aug = ml.MedSeg().Augmentation;
        foreach (var (label, estimator, added) in new (string, AdversarialAttackEstimator, string[])[]
        {
            ("FGSM", aug.Fgsm(segmenter, epsilon: 0.05), ["AttackedImage: Vector<Single, 3, 16, 16>"]),
            ("Inverse FGSM", aug.InverseFgsm(segmenter, outputColumnName: "Helped"), ["Helped: Vector<Single, 3, 16, 16>"]),
            ("PGD", aug.Pgd(segmenter, steps: 3), ["AttackedImage: Vector<Single, 3, 16, 16>"]),
            ("Diff-PGD", aug.DiffPgd(segmenter, sdEdit, steps: 2, sdEditDepth: 2, uncertaintyColumnName: "W"),
                ["AttackedImage: Vector<Single, 3, 16, 16>", "W: Vector<Single, 1, 16, 16>"]),
        })
        {
            var r = MLNetWorkout.Run(ml, estimator, rows, "Image", ImageAndMask);
            CollectionAssert.AreEqual(added, r.AddedColumns.ToArray(), label);
            Assert.AreEqual(5, r.PredictionEngineRows, label);
            Log(label, r, sw);
        }
    }

    [TestMethod]
    public void DeformationAttacker_OneAndTwoSamplesPerImage()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 6);
        var rows = WorkoutRows.Discs16(5, 6);
        using var segmenter = FitSegmenter(ml, rows);
        DeformationAttackOptions Tiny(int k) => new()
        {
            Generator = new DeformationGeneratorOptions { InChannels = 3, Widths = [4, 8], LatentChannels = 2 },
            CriticWidths = [4], Epochs = 1, BatchSize = 4, Samples = k, LearningRate = 1e-3,
        };
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Augmentation.DeformationAttack(segmenter, Tiny(1)), rows, "Image", ImageAndMask);
        CollectionAssert.AreEqual(new[]
        {
            "AttackedImage: Vector<Single, 3, 16, 16>", "DeformedMask: Vector<Single, 1, 16, 16>", "Deformation: Vector<Single, 2, 16, 16>",
            "Intensity: Vector<Single, 3, 16, 16>",
        }, r.AddedColumns.ToArray());
        Assert.AreEqual(5, r.PredictionEngineRows);
        Log("DeformationAttack k=1", r, sw);
        var r2 = MLNetWorkout.Run(ml, ml.MedSeg().Augmentation.DeformationAttack(segmenter, Tiny(2)), rows, "Image", ImageAndMask);
        Assert.AreEqual(10, r2.Rows);
        Log("DeformationAttack k=2", r2, sw);
    }

    [TestMethod]
    public void Dasp()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 7);
        var o = new DaspOptions
        {
            MaskDiffusion = new MaskDiffusionOptions { Network = TinyUNet(), Steps = 50, Epochs = 1, BatchSize = 8, EmaDecay = 0.99, SampleSteps = 4 },
            ImageDiffusion = TinyImageDiffusion(),
            Segmentation = TinySegmentation(NetworkTestUtil.Small(SegmentationArchitecture.UNet, depth: 2)),
            Attack = new AdversarialAttackOptions { Steps = 2, SdEditRespacing = 10, SdEditDepth = 2 },
            SyntheticPerImage = 1,
        };
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Trainers.Dasp(o), WorkoutRows.Discs16(6, 7), "Mask", new MLNetWorkoutOptions { MoreRequiredColumns = ["Image"] });
        CollectionAssert.AreEqual(new[] { "Probability: Vector<Single, 1, 16, 16>", "Predicted: Vector<Single, 1, 16, 16>" }, r.AddedColumns.ToArray());
        Assert.AreEqual(6, r.PredictionEngineRows);
        Log("DASP", r, sw);
    }

    public sealed class MaskPathRow
    {
        public string MaskPath { get; set; } = "";
    }

    [TestMethod]
    public void LoadMasks()
    {
        var sw = Stopwatch.StartNew();
        string folder = Directory.CreateTempSubdirectory("medseg-loadmasks-").FullName;
        try
        {
            var rows = new List<MaskPathRow>();
            var (images, masks) = TestDiscs.Generate(new DiscStyle(24, 4, 3, [0.8, 0.4, 0.2], [0.2, 0.4, 0.8], 0.3), 4, 8);
            for (int k = 0; k < masks.Count; k++)
            {
                string path = Path.Combine(folder, $"m{k}.png");
                ImageIO.WritePng(path, masks[k]);
                rows.Add(new MaskPathRow { MaskPath = path });
            }
            foreach (var t in images.Concat(masks)) t.Dispose();
            var ml = new MLContext(seed: 8);
            var r = MLNetWorkout.Run(ml, ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", 16, 16), rows, "MaskPath");
            CollectionAssert.AreEqual(new[] { "Mask: Vector<Single, 1, 16, 16>" }, r.AddedColumns.ToArray());
            Assert.AreEqual(4, r.PredictionEngineRows);
            Log("LoadMasks", r, sw);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    public sealed class SoftMaskRow
    {
        [VectorType(1, 8, 8)] public float[] Soft { get; set; } = [];
    }

    [TestMethod]
    public void MaskTransforms_BinarizeMask_MapMaskValues()
    {
        var sw = Stopwatch.StartNew();
        var rng = new Random(9);
        var ml = new MLContext(seed: 9);
        var soft = Enumerable.Range(0, 4).Select(_ => new SoftMaskRow { Soft = Enumerable.Range(0, 64).Select(_ => (float)rng.NextDouble()).ToArray() }).ToList();
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Transforms.BinarizeMask("Binary", "Soft", threshold: 0.3), soft, "Soft");
        CollectionAssert.AreEqual(new[] { "Binary: Vector<Single, 1, 8, 8>" }, r.AddedColumns.ToArray());
        Log("BinarizeMask", r, sw);
        // In place, as ML.NET's transforms do when the input column is not given.
        var inPlace = MLNetWorkout.Run(ml, ml.MedSeg().Transforms.BinarizeMask("Soft"), soft, "Soft");
        CollectionAssert.AreEqual(new[] { "Soft: Vector<Single, 1, 8, 8>" }, inPlace.AddedColumns.ToArray());

        // Three-label masks as an 8-bit file gives them: 0, 128/255, 1.
        float[] levels = [0f, 128f / 255, 1f];
        var labels = Enumerable.Range(0, 4).Select(_ => new SoftMaskRow { Soft = Enumerable.Range(0, 64).Select(_ => levels[rng.Next(3)]).ToArray() }).ToList();
        var map = new Dictionary<int, long> { [0] = 0, [128] = 1, [255] = 2 };
        var m = MLNetWorkout.Run(ml, ml.MedSeg().Transforms.MapMaskValues("Classes", map, "Soft"), labels, "Soft");
        CollectionAssert.AreEqual(new[] { "Classes: Vector<Int64, 8, 8>" }, m.AddedColumns.ToArray());
        Log("MapMaskValues", m, sw);
    }
}
