using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Diffusion.Synthesis;
using MLNetMedSeg.Testing;
using MLNetMedSeg.Tests.Core.MLNet;
using static TorchSharp.torch;
using MLDataView = Microsoft.ML.IDataView;

namespace MLNetMedSeg.Tests.Diffusion;

/// <summary>
/// The joint image + mask diffusion stage and the RePaint stage (paper 004) through the ML.NET API: learning on tiny
/// data, binary generated masks, one model per cluster, the ML.NET workout (schema, errors, save/load bit-identical),
/// RePaint keeping the known region of real images, and clear errors on bad input.
/// </summary>
[TestClass]
public sealed class SynthesisStageTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => SingleThreaded.Enter();

    [ClassCleanup]
    public static void Cleanup() => SingleThreaded.Leave();

    private static readonly MLNetWorkoutOptions ImageAndMask = new() { MoreRequiredColumns = ["Mask"] };

    private static DiffusionUNetOptions TinyUNet() => new()
    {
        BaseChannels = 16, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 16, GroupNormGroups = 8,
    };

    private static JointDiffusionOptions TinyJoint(int epochs = 1, string? cluster = null, int k = 1) => new()
    {
        Network = TinyUNet(), TimeSteps = 50, Epochs = epochs, BatchSize = 4, LearningRate = 2e-3, EmaDecay = 0.99, SampleSteps = 4,
        ClusterColumnName = cluster, SamplesPerRow = k,
    };

    private static RePaintOptions TinyRePaint(int k = 2) => new()
    {
        SamplesPerImage = k, DilationPixels = 2, SampleSteps = 6, JumpLength = 2, JumpResamplings = 2,
    };

    /// <summary>A 16 px RGB row with a cluster id.</summary>
    public sealed class ClusterRow
    {
        [VectorType(3, 16, 16)] public float[] Image { get; set; } = [];
        [VectorType(1, 16, 16)] public float[] Mask { get; set; } = [];
        public string Cluster { get; set; } = "";
    }

    /// <summary>An image and a mask of different sizes.</summary>
    public sealed class MismatchRow
    {
        [VectorType(3, 16, 16)] public float[] Image { get; set; } = new float[3 * 16 * 16];
        [VectorType(1, 8, 8)] public float[] Mask { get; set; } = new float[64];
    }

    private static List<ClusterRow> Clustered(int n, int seed) =>
        WorkoutRows.Discs16(n, seed).Select((r, i) => new ClusterRow { Image = r.Image, Mask = r.Mask, Cluster = i % 2 == 0 ? "a" : "b" }).ToList();

    private static List<float[]> Column(MLDataView view, string name)
    {
        var list = new List<float[]>();
        using var cur = view.GetRowCursor([view.Schema[name]]);
        var get = cur.GetGetter<VBuffer<float>>(view.Schema[name]);
        VBuffer<float> v = default;
        while (cur.MoveNext())
        {
            get(ref v);
            list.Add(v.DenseValues().ToArray());
        }
        return list;
    }

    /// <summary>Equal up to the float rounding that differs between batch sizes (1e-5).</summary>
    private static void AssertClose(float[] expected, float[] actual, string message)
    {
        Assert.AreEqual(expected.Length, actual.Length, message);
        double max = expected.Zip(actual, (a, b) => Math.Abs((double)a - b)).Max();
        Assert.IsTrue(max < 1e-5, $"{message}: max difference {max}");
    }

    private static void Log(string what, Stopwatch sw) => Console.WriteLine($"{what}: {sw.Elapsed.TotalSeconds:F1} s");

    [TestMethod]
    public void JointDiffusion_LossFalls_OnTinyData()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(16, 1));
        var o = TinyJoint(epochs: 8);
        o.LearningRate = 3e-3;
        using var model = ml.MedSeg().Generation.JointDiffusion(o).Fit(data);
        var h = model.History;
        Assert.AreEqual(8, h.Count);
        Assert.IsTrue(h.All(r => r.Cluster is null && double.IsFinite(r.Loss)));
        double first = h[0].Loss, last = h.Skip(5).Average(r => r.Loss);
        Assert.IsTrue(last < 0.7 * first, $"ε-MSE should fall: epoch 1 {first:F3}, epochs 6–8 mean {last:F3}");
        Log("JointDiffusion learning", sw);
    }

    [TestMethod]
    public void JointDiffusion_GivesKBinaryPairsPerRow_SeededAndIndependentOfBatchSize()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 2);
        var data = ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(4, 2));
        var o = TinyJoint(epochs: 1, k: 2);
        using var model = ml.MedSeg().Generation.JointDiffusion(o).Fit(data);
        var output = model.Transform(data);
        var masks = Column(output, "SyntheticMask");
        var images = Column(output, "SyntheticImage");
        Assert.AreEqual(8, masks.Count, "k = 2 rows per input row");
        Assert.AreEqual(16 * 16, masks[0].Length);
        Assert.AreEqual(3 * 16 * 16, images[0].Length);
        Assert.IsTrue(masks.All(m => m.All(v => v == 0f || v == 1f)), "the mask channel is thresholded to {0, 1}");
        Assert.IsTrue(images.All(x => x.All(v => v >= 0f && v <= 1f)));
        CollectionAssert.AreNotEqual(images[0], images[1], "the two samples of a row differ");
        // The same rows from a model sampling one row at a time (noise seeded per (row, sample)).
        var path = Path.Combine(Path.GetTempPath(), $"joint-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            var loaded = (JointDiffusionTransformer)new MLContext(seed: 77).Model.Load(path, out _);
            using var scope = NewDisposeScope();
            var a = model.Generate(2, firstRow: 1);
            var again = Column(loaded.Transform(data), "SyntheticImage");
            for (int i = 0; i < images.Count; i++) CollectionAssert.AreEqual(images[i], again[i], $"row {i} after save/load");
            // Batches of 2 vs 8: the same noise, the same values up to the rounding of batched convolutions.
            AssertClose(images[2], a.Images[0].flatten().data<float>().ToArray(), "Generate(firstRow: 1) = row 1's first sample");
            AssertClose(images[4], a.Images[1].flatten().data<float>().ToArray(), "Generate(firstRow: 1)[1] = row 2's first sample");
            loaded.Dispose();
        }
        finally { File.Delete(path); }
        Log("JointDiffusion pairs", sw);
    }

    [TestMethod]
    public void JointDiffusion_OneModelPerCluster_SamplesEachRowFromItsCluster()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 3);
        var rows = Clustered(8, 3);
        var data = ml.Data.LoadFromEnumerable(rows);
        var records = new List<JointDiffusionEpochRecord>();
        var o = TinyJoint(epochs: 2, cluster: "Cluster");
        o.EpochCompleted = records.Add;
        using var model = ml.MedSeg().Generation.JointDiffusion(o).Fit(data);
        CollectionAssert.AreEqual(new[] { "a", "b" }, model.Clusters.ToArray());
        Assert.AreEqual(4, records.Count, "two epochs for each of two clusters");
        CollectionAssert.AreEqual(new[] { "a", "a", "b", "b" }, records.Select(r => r.Cluster).ToArray());
        using (NewDisposeScope())
            Assert.IsFalse(model.Generate(1, "a").Images.eq(model.Generate(1, "b").Images).all().item<bool>(), "the clusters' models differ");
        // Rows 0 and 1 (clusters a and b) sample from their own cluster's model.
        var images = Column(model.Transform(data), "SyntheticImage");
        using (NewDisposeScope())
        {
            var pa = model.Generate(1, "a", firstRow: 0);
            var pb = model.Generate(1, "b", firstRow: 1);
            AssertClose(pa.Images.flatten().data<float>().ToArray(), images[0], "row 0 from cluster a's model");
            AssertClose(pb.Images.flatten().data<float>().ToArray(), images[1], "row 1 from cluster b's model");
        }
        // An unknown cluster is named.
        var other = ml.Data.LoadFromEnumerable(new[] { new ClusterRow { Image = rows[0].Image, Mask = rows[0].Mask, Cluster = "zebra" } });
        var e = Assert.ThrowsException<ArgumentException>(() => Column(model.Transform(other), "SyntheticImage"));
        StringAssert.Contains(e.Message, "'zebra'");
        // Save/load keeps every cluster's model.
        var path = Path.Combine(Path.GetTempPath(), $"joint-clusters-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(model, data.Schema, path);
            using var loaded = (JointDiffusionTransformer)new MLContext(seed: 5).Model.Load(path, out _);
            CollectionAssert.AreEqual(new[] { "a", "b" }, loaded.Clusters.ToArray());
            var again = Column(loaded.Transform(data), "SyntheticImage");
            for (int i = 0; i < images.Count; i++) CollectionAssert.AreEqual(images[i], again[i], $"row {i}");
        }
        finally { File.Delete(path); }
        Log("JointDiffusion clusters", sw);
    }

    [TestMethod]
    public void JointDiffusion_TrainingSteps_GiveEveryClusterTheSameNumberOfSteps()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 3);
        // Cluster a: 9 rows (3 batches of 4 an epoch); cluster b: 2 rows (1 batch an epoch).
        var rows = WorkoutRows.Discs16(11, 4).Select((r, i) => new ClusterRow { Image = r.Image, Mask = r.Mask, Cluster = i < 9 ? "a" : "b" }).ToList();
        var records = new List<JointDiffusionEpochRecord>();
        var o = TinyJoint(epochs: 1, cluster: "Cluster");
        o.TrainingSteps = 6;
        o.EpochCompleted = records.Add;
        Assert.AreEqual(2, o.EpochsFor(9), "⌈6 / ⌈9/4⌉⌉");
        Assert.AreEqual(6, o.EpochsFor(2), "⌈6 / ⌈2/4⌉⌉");
        Assert.AreEqual(1, o.EpochsFor(100), "at least one epoch");
        using var model = ml.MedSeg().Generation.JointDiffusion(o).Fit(ml.Data.LoadFromEnumerable(rows));
        Assert.AreEqual(2, records.Count(r => r.Cluster == "a"), "cluster a: 2 epochs × 3 steps");
        Assert.AreEqual(6, records.Count(r => r.Cluster == "b"), "cluster b: 6 epochs × 1 step");
        o.TrainingSteps = null;
        Assert.AreEqual(1, o.EpochsFor(2), "without TrainingSteps: Epochs");
        o.TrainingSteps = 0;
        Assert.AreEqual("TrainingSteps", Assert.ThrowsException<ArgumentException>(() => o.Validate()).ParamName);
        Log("JointDiffusion training steps", sw);
    }

    private sealed class Collect : IProgress<MLNetMedSeg.Pipeline.TrainingProgress>
    {
        public List<MLNetMedSeg.Pipeline.TrainingProgress> Items { get; } = [];
        public void Report(MLNetMedSeg.Pipeline.TrainingProgress value) { lock (Items) Items.Add(value); }
    }

    [TestMethod]
    public void JointDiffusion_SameSeedSameModel_ProgressPerCluster_Cancellation()
    {
        var sw = Stopwatch.StartNew();
        var rows = Clustered(4, 10);
        float[] Sample(MLContext ml)
        {
            using var model = ml.MedSeg().Generation.JointDiffusion(TinyJoint(cluster: "Cluster")).Fit(ml.Data.LoadFromEnumerable(rows));
            using var scope = NewDisposeScope();
            return model.Generate(2, "b").Images.flatten().data<float>().ToArray();
        }
        var ml1 = new MLContext(seed: 10);
        var progress = new Collect();
        ml1.MedSeg().Progress = progress;
        var a = Sample(ml1);
        CollectionAssert.AreEqual(a, Sample(new MLContext(seed: 10)), "same MLContext seed → same models and samples");
        CollectionAssert.AreNotEqual(a, Sample(new MLContext(seed: 11)));
        var stages = progress.Items.Select(p => p.Stage).Distinct().ToArray();
        CollectionAssert.IsSubsetOf(new[] { "JointDiffusion[a]", "JointDiffusion[b]" }, stages, string.Join(", ", stages));
        var ml2 = new MLContext(seed: 10);
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        ml2.MedSeg().CancellationToken = cts.Token;
        bool cancelled = false;
        try { ml2.MedSeg().Generation.JointDiffusion(TinyJoint()).Fit(ml2.Data.LoadFromEnumerable(rows)); }
        catch (OperationCanceledException) { cancelled = true; }
        Assert.IsTrue(cancelled, "a cancelled token stops the fit");
        Log("JointDiffusion seed/progress/cancel", sw);
    }

    [TestMethod]
    public void JointDiffusion_Workout()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 4);
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Generation.JointDiffusion(TinyJoint()), WorkoutRows.Discs16(4, 4), "Image", ImageAndMask);
        CollectionAssert.AreEqual(new[] { "SyntheticImage: Vector<Single, 3, 16, 16>", "SyntheticMask: Vector<Single, 1, 16, 16>" }, r.AddedColumns.ToArray());
        Assert.AreEqual(4, r.PredictionEngineRows);
        Log("JointDiffusion workout", sw);
    }

    [TestMethod]
    public void RePaint_Workout_WithAJointModel()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 5);
        var rows = WorkoutRows.Discs16(3, 5);
        using var joint = ml.MedSeg().Generation.JointDiffusion(TinyJoint()).Fit(ml.Data.LoadFromEnumerable(rows));
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Generation.RePaint(joint, TinyRePaint(k: 1)), rows, "Image", ImageAndMask);
        CollectionAssert.AreEqual(new[] { "InpaintedImage: Vector<Single, 3, 16, 16>" }, r.AddedColumns.ToArray());
        Assert.AreEqual(3, r.PredictionEngineRows);
        var r2 = MLNetWorkout.Run(ml, ml.MedSeg().Generation.RePaint(joint, TinyRePaint(k: 2)), rows, "Image", ImageAndMask);
        Assert.AreEqual(6, r2.Rows, "two inpainted rows per image");
        Log("RePaint workout", sw);
    }

    [TestMethod]
    public void RePaint_KeepsTheKnownRegionAndRegeneratesTheDilatedMask_JointAndImageModels()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 6);
        var rows = Clustered(4, 6);
        var data = ml.Data.LoadFromEnumerable(rows);
        using var joint = ml.MedSeg().Generation.JointDiffusion(TinyJoint(cluster: "Cluster")).Fit(data);
        using var image = ml.MedSeg().Generation.ImageDiffusion(new ImageDiffusionOptions
        {
            Network = TinyUNet(), TimeSteps = 50, Epochs = 1, BatchSize = 4, LearningRate = 2e-3, EmaDecay = 0.99, SampleSteps = 4,
        }).Fit(data);
        foreach (var (label, model) in new (string, ITransformer)[] { ("joint", joint), ("image", image) })
        {
            var stage = ml.MedSeg().Generation.RePaint(model, TinyRePaint(k: 2)).Fit(data);
            var output = stage.Transform(data);
            var inpainted = Column(output, "InpaintedImage");
            var originals = Column(output, "Image");
            var masks = Column(output, "Mask");
            Assert.AreEqual(8, inpainted.Count, $"{label}: 2 samples per image");
            for (int i = 0; i < inpainted.Count; i++)
            {
                CollectionAssert.AreEqual(rows[i / 2].Mask, masks[i], $"{label}: output row {i} carries its image's mask (the pair's mask)");
                using var scope = NewDisposeScope();
                var m = tensor(masks[i], [1, 1, 16, 16]);
                var unknown = RePaintTransformer.Dilate(m, 2).expand(1, 3, 16, 16).flatten();
                var x = tensor(originals[i]);
                var y = tensor(inpainted[i]);
                Assert.IsTrue(y.masked_select(unknown.logical_not()).eq(x.masked_select(unknown.logical_not())).all().item<bool>(),
                    $"{label}: row {i}: the known region is the original image, exactly");
                Assert.IsTrue(y.masked_select(unknown).sub(x.masked_select(unknown)).abs().max().item<float>() > 1e-3,
                    $"{label}: row {i}: the dilated polyp region is regenerated");
            }
            CollectionAssert.AreNotEqual(inpainted[0], inpainted[1], $"{label}: the samples of one image differ");
            // The stage's own call for image 1, sample 1 is output row 3.
            using (var scope = NewDisposeScope())
            {
                var cluster = label == "joint" ? rows[1].Cluster : null;
                var y = stage.Inpaint(tensor(rows[1].Image, [1, 3, 16, 16]), tensor(rows[1].Mask, [1, 1, 16, 16]), cluster, firstRow: 1, sample: 1);
                AssertClose(inpainted[3], y.flatten().data<float>().ToArray(), $"{label}: Inpaint = Transform's row");
            }
            stage.Dispose();
        }
        Log("RePaint regions", sw);
    }

    [TestMethod]
    public void RePaint_SavedWithItsPerClusterModel_LoadsAndGivesTheSameImages()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 7);
        var data = ml.Data.LoadFromEnumerable(Clustered(4, 7));
        using var joint = ml.MedSeg().Generation.JointDiffusion(TinyJoint(cluster: "Cluster")).Fit(data);
        using var stage = ml.MedSeg().Generation.RePaint(joint, TinyRePaint(k: 1)).Fit(data);
        var before = Column(stage.Transform(data), "InpaintedImage");
        var path = Path.Combine(Path.GetTempPath(), $"repaint-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(stage, data.Schema, path);
            var loaded = new MLContext(seed: 8).Model.Load(path, out _);
            var after = Column(loaded.Transform(data), "InpaintedImage");
            Assert.AreEqual(before.Count, after.Count);
            for (int i = 0; i < before.Count; i++) CollectionAssert.AreEqual(before[i], after[i], $"row {i}");
            // A CLI finds the diffusion model in a loaded chain.
            var fromChain = ml.MedSeg().Generation.RePaint(new TransformerChain<ITransformer>(loaded), TinyRePaint(k: 1));
            Assert.IsNotNull(fromChain);
            (loaded as IDisposable)?.Dispose();
        }
        finally { File.Delete(path); }
        Log("RePaint save/load", sw);
    }

    [TestMethod]
    public void Defaults_FollowTheTablesOfThePaper()
    {
        var p = JointDiffusionOptions.PaperPreset();
        p.Validate();
        var n = p.ResolvedNetwork();
        n.Validate();
        Assert.AreEqual(4, n.InChannels, "Table A.1 in_channels 4 (RGB + mask)");
        Assert.AreEqual(4, n.OutChannels);
        Assert.AreEqual(0, n.ConditionChannels, "unconditional");
        Assert.AreEqual(256, n.BaseChannels);
        Assert.AreEqual(2, n.BlocksPerLevel);
        CollectionAssert.AreEqual(new[] { 16, 8 }, n.AttentionResolutions);
        Assert.AreEqual(64, n.HeadChannels);
        Assert.AreEqual(256, n.ImageSize);
        Assert.IsTrue(n.HasAttention(4) && n.HasAttention(5) && !n.HasAttention(3), "attention at the 16 and 8 px levels");
        Assert.AreEqual((1000, 1e-4, 1, 200, BetaScheduleKind.Linear), (p.TimeSteps, p.LearningRate, p.BatchSize, p.SampleSteps, p.Schedule));
        var cpu = new JointDiffusionOptions();
        Assert.AreEqual((1000, 1e-4, BetaScheduleKind.Linear), (cpu.TimeSteps, cpu.LearningRate, cpu.Schedule));
        var r = new RePaintOptions();
        Assert.AreEqual((3, 20, 10, 5, 1), (r.SamplesPerImage, r.DilationPixels, r.JumpLength, r.JumpResamplings, r.StepResamplings),
            "§4.2 three samples, §3.2 20 px dilation, Table A.2 jump_length 10, jump_n_sample 5, n_sample 1");
    }

    [TestMethod]
    public void BadInputErrorsNameTheColumnOrArgument()
    {
        var ml = new MLContext(seed: 9);
        var rows = Clustered(4, 9);
        var noMask = ml.Data.LoadFromEnumerable(rows.Select(r => new WorkoutRows.Rgb16 { Image = r.Image, Mask = r.Mask }))
            is var d ? ml.Transforms.DropColumns("Mask").Fit(d).Transform(d) : null!;
        var joint = ml.MedSeg().Generation.JointDiffusion(TinyJoint());
        var e = Assert.ThrowsException<SchemaException>(() => joint.Fit(noMask));
        StringAssert.Contains(e.Message, "'Mask'");
        var mismatch = ml.Data.LoadFromEnumerable(new[] { new MismatchRow(), new MismatchRow() });
        e = Assert.ThrowsException<SchemaException>(() => joint.Fit(mismatch));
        StringAssert.Contains(e.Message, "'Mask'");
        StringAssert.Contains(e.Message, "8×8");
        e = Assert.ThrowsException<SchemaException>(() => ml.MedSeg().Generation.JointDiffusion(TinyJoint(cluster: "Site")).Fit(ml.Data.LoadFromEnumerable(rows)));
        StringAssert.Contains(e.Message, "'Site'");
        e = Assert.ThrowsException<SchemaException>(() => ml.MedSeg().Generation.JointDiffusion(TinyJoint(cluster: "Mask")).Fit(ml.Data.LoadFromEnumerable(rows)));
        StringAssert.Contains(e.Message, "text or a number");
        var a = Assert.ThrowsException<ArgumentException>(() => ml.MedSeg().Generation.JointDiffusion(new JointDiffusionOptions { SamplesPerRow = 0 }));
        Assert.AreEqual("SamplesPerRow", a.ParamName);

        using var model = ml.MedSeg().Generation.JointDiffusion(TinyJoint(cluster: "Cluster")).Fit(ml.Data.LoadFromEnumerable(rows));
        var repaint = ml.MedSeg().Generation.RePaint(model, TinyRePaint());
        e = Assert.ThrowsException<SchemaException>(() => repaint.Fit(noMask));
        StringAssert.Contains(e.Message, "'Mask'");
        e = Assert.ThrowsException<SchemaException>(() => repaint.Fit(mismatch));
        StringAssert.Contains(e.Message, "'Mask'");
        e = Assert.ThrowsException<SchemaException>(() => repaint.Fit(ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(2, 1))));
        StringAssert.Contains(e.Message, "'Cluster'", "a per-cluster model needs the cluster column");
        a = Assert.ThrowsException<ArgumentException>(() => ml.MedSeg().Generation.RePaint(model, new RePaintOptions { SampleSteps = 51 }));
        StringAssert.Contains(a.Message, "TimeSteps");
        a = Assert.ThrowsException<ArgumentException>(() => ml.MedSeg().Generation.RePaint(ml.Transforms.CopyColumns("Copy", "Image").Fit(noMask), TinyRePaint()));
        Assert.AreEqual("diffusionModel", a.ParamName);
        var stage = repaint.Fit(ml.Data.LoadFromEnumerable(rows));
        a = Assert.ThrowsException<ArgumentException>(() => stage.Inpaint(zeros([1, 3, 16, 16]), zeros([1, 1, 8, 8]), "a"));
        Assert.AreEqual("masks", a.ParamName);
    }
}
