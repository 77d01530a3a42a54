using MLNetMedSeg.Tests.Core.Training;
using MLNetMedSeg.Core.Training;
using System.Diagnostics;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Testing;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Diffusion;

/// <summary>Synthetic binary masks for the mask-diffusion tests: one axis-aligned ellipse or disc per mask.</summary>
internal static class SyntheticMasks
{
    /// <summary>
    /// n masks [1,size,size] (float32 {0,1}), each one ellipse with semi-axes drawn in [minR, maxR] px (a disc when
    /// <paramref name="discs"/>), centred at a random point that keeps it inside the frame.
    /// </summary>
    public static List<Tensor> Make(int n, int size, int seed, double minR, double maxR, bool discs = false)
    {
        var rng = new Random(seed);
        var list = new List<Tensor>();
        for (int k = 0; k < n; k++)
        {
            double ry = minR + rng.NextDouble() * (maxR - minR);
            double rx = discs ? ry : minR + rng.NextDouble() * (maxR - minR);
            double cy = ry + rng.NextDouble() * (size - 2 * ry), cx = rx + rng.NextDouble() * (size - 2 * rx);
            var m = new float[size * size];
            for (int i = 0; i < size; i++)
                for (int j = 0; j < size; j++)
                {
                    double dy = (i + 0.5 - cy) / ry, dx = (j + 0.5 - cx) / rx;
                    m[i * size + j] = dy * dy + dx * dx <= 1 ? 1f : 0f;
                }
            list.Add(torch.tensor(m, [1, size, size]));
        }
        return list;
    }

    /// <summary>A view with Id, Mask and (optionally) a gray Image whose brightness follows the mask.</summary>
    public static InMemoryDataView View(List<Tensor> masks, bool withImage = false)
    {
        int size = (int)masks[0].size(1);
        var ids = masks.Select((_, i) => $"m{i:D3}").ToList();
        var cols = new List<(string, ColumnType, System.Collections.IList)>
        {
            ("Id", TextColumnType.Instance, ids),
            ("Mask", TensorColumnType.BinaryMask(size, size), masks),
        };
        if (withImage) cols.Add(("Image", TensorColumnType.Image(1, size, size), masks.Select(m => (m * S(0.6) + S(0.2)).DetachFromDisposeScope()).ToList()));
        return InMemoryDataView.Create(cols.ToArray());
    }
}

[TestClass]
public sealed class MaskDiffusionTests
{
    private static int _threads;

    /// <summary>
    /// One libtorch thread for these tests (restored afterwards): the tiny networks gain nothing from more, and on a
    /// shared 2-core machine two spinning threads per process slow them down many times over.
    /// </summary>
    [ClassInitialize]
    public static void OneThread(TestContext _)
    {
        _threads = torch.get_num_threads();
        torch.set_num_threads(1);
    }

    [ClassCleanup(ClassCleanupBehavior.EndOfClass)]
    public static void RestoreThreads() => torch.set_num_threads(_threads);

    /// <summary>A tiny ADM U-Net for 16 px masks: widths 8/16, attention only in the middle block.</summary>
    private static DiffusionUNetOptions TinyNet(int size = 16) => new()
    {
        BaseChannels = 8, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 8, GroupNormGroups = 4, ImageSize = size,
    };

    private static MaskDiffusionOptions Tiny(int epochs = 1) => new()
    {
        Network = TinyNet(), Steps = 100, SampleSteps = 5, Epochs = epochs, BatchSize = 4, LearningRate = 1e-3,
    };

    private static List<double> Fractions(Tensor masks) =>
        masks.to(ScalarType.Float64).mean([1, 2, 3]).ToArray<double>().ToList();

    [TestMethod]
    public void Workout_FitSaveLoadRoundTripIsBitIdentical_KRowsPerInput()
    {
        using var scope = torch.NewDisposeScope();
        var ctx = new MedSegContext(seed: 1);
        using var data = SyntheticMasks.View(SyntheticMasks.Make(6, 16, 1, 2, 6));
        var o = Tiny();
        o.SamplesPerRow = 2;
        o.SampleBatchSize = 3;
        var r = EstimatorWorkout.Run(ctx, new MaskDiffusionEstimator(ctx, o), data, "Mask");
        Assert.AreEqual(12, r.Rows, "k = 2 rows per input row");
        Assert.AreEqual("SyntheticMask: Tensor<Float32>[1,16,16]", r.OutputSchema["SyntheticMask"].ToString());
        Assert.AreEqual("SampleIndex: Number", r.OutputSchema["SampleIndex"].ToString());
    }

    [TestMethod]
    public void Workout_ConditionalOnAnImage()
    {
        using var scope = torch.NewDisposeScope();
        var ctx = new MedSegContext(seed: 2);
        using var data = SyntheticMasks.View(SyntheticMasks.Make(4, 16, 2, 2, 6), withImage: true);
        var o = Tiny();
        o.ConditionColumn = "Image";
        EstimatorWorkout.Run(ctx, new MaskDiffusionEstimator(ctx, o), data, "Mask", new WorkoutOptions { MoreRequiredColumns = ["Image"] });
        // A condition of the wrong size is named.
        var bad = DataViewSchema.Create(("Mask", TensorColumnType.BinaryMask(16, 16)), ("Image", TensorColumnType.Image(1, 8, 8)));
        var ex = Assert.ThrowsException<SchemaException>(() => new MaskDiffusionEstimator(ctx, o).GetOutputSchema(bad));
        Assert.AreEqual("Image", ex.ColumnName);
    }

    [TestMethod]
    public void OutputRowsRepeatTheInputAndSamplesAreSeededByRowAndIndex()
    {
        using var scope = torch.NewDisposeScope();
        var ctx = new MedSegContext(seed: 3);
        using var data = SyntheticMasks.View(SyntheticMasks.Make(5, 16, 3, 2, 6));
        var o = Tiny();
        o.SamplesPerRow = 3;
        o.SampleBatchSize = 4;
        using var model = new MaskDiffusionEstimator(ctx, o).Fit(data);
        var view = model.Transform(data);
        Assert.AreEqual(15L, view.GetRowCount());
        Assert.IsFalse(view.CanShuffle);
        var ids = new List<string>();
        var idx = new List<double>();
        var masks = new List<Tensor>();
        using (var cur = view.GetRowCursor(view.Schema))
            while (cur.MoveNext())
            {
                Assert.AreEqual(ids.Count, cur.Position);
                ids.Add(cur.GetText("Id"));
                idx.Add(cur.GetNumber("SampleIndex"));
                masks.Add(cur.GetTensor("SyntheticMask").clone());
            }
        CollectionAssert.AreEqual(Enumerable.Range(0, 5).SelectMany(r => Enumerable.Repeat($"m{r:D3}", 3)).ToArray(), ids);
        CollectionAssert.AreEqual(Enumerable.Range(0, 15).Select(i => (double)(i % 3)).ToArray(), idx);
        foreach (var m in masks) CollectionAssert.IsSubsetOf(m.unique_values(), new[] { 0f, 1f });
        // Row r, sample j is Generate(r, k)[j], whatever the batch size or k.
        var row3 = model.GenerateForRow(3, 3);
        for (int j = 0; j < 3; j++)
            CollectionAssert.AreEqual(masks[9 + j].reshape(-1).ToArray<float>(), row3[j].reshape(-1).ToArray<float>(), $"row 3 sample {j}");
        Assert.IsFalse(masks.Take(3).Select(m => string.Join("", m.reshape(-1).ToArray<float>())).Distinct().Count() < 2, "samples of one row differ");
        var first = model.Generate(5);
        for (int r = 0; r < 5; r++)
            CollectionAssert.AreEqual(masks[3 * r].reshape(-1).ToArray<float>(), first[r].reshape(-1).ToArray<float>(), $"row {r} sample 0 with k = 1");
        // A cursor that does not ask for the masks generates nothing and still gives k rows per input row.
        using (var cur = view.GetRowCursor([view.Schema["Id"], view.Schema["SampleIndex"]]))
        {
            int n = 0;
            while (cur.MoveNext()) n++;
            Assert.AreEqual(15, n);
        }
    }

    [TestMethod]
    public void SameSeedSameModelAndSamples_ProgressAndGrids()
    {
        using var scope = torch.NewDisposeScope();
        var masks = SyntheticMasks.Make(8, 16, 4, 2, 6);
        using var data = SyntheticMasks.View(masks);
        string folder = Path.Combine(Path.GetTempPath(), "maskdiff-grid-" + Guid.NewGuid().ToString("N"));
        try
        {
            var reports = new List<TrainingProgress>();
            var ctx1 = new MedSegContext(seed: 5) { Progress = new Progress(reports.Add) };
            var o = Tiny(epochs: 2);
            o.SampleGridFolder = folder;
            o.SampleGridEvery = 1;
            o.SampleGridCount = 4;
            var epochs = new List<MaskDiffusionEpochRecord>();
            o.EpochCompleted = epochs.Add;
            using var m1 = new MaskDiffusionEstimator(ctx1, o).Fit(data);
            var ctx2 = new MedSegContext(seed: 5);
            o.SampleGridFolder = null;
            o.EpochCompleted = null;
            using var m2 = new MaskDiffusionEstimator(ctx2, o).Fit(data);
            CollectionAssert.AreEqual(m1.Generate(6).reshape(-1).ToArray<float>(), m2.Generate(6).reshape(-1).ToArray<float>());
            Assert.AreEqual(2, epochs.Count);
            Assert.AreEqual(2, m1.History.Count);
            Assert.IsTrue(epochs.All(e => double.IsFinite(e.Loss) && e.Kl is null && e.Loss == e.Bce));
            // 8 rows / batch 4 = 2 steps per epoch, 2 epochs; each report says where it is.
            Assert.AreEqual(4, reports.Count);
            Assert.IsTrue(reports.All(p => p.Stage == "MaskDiffusion" && p.Epochs == 2 && p.StepsPerEpoch == 2 && p.Loss is double));
            Assert.IsNotNull(reports[^1].Eta);
            CollectionAssert.AreEquivalent(new[] { "epoch-0001.png", "final.png" }, Directory.GetFiles(folder).Select(Path.GetFileName).ToArray());
            var grid = MLNetMedSeg.Imaging.ImageIO.Read(Path.Combine(folder, "final.png"));
            Assert.AreEqual((2 + 2 * 18, 2 + 2 * 18), (grid.Width, grid.Height), "a 2×2 grid of 16 px masks with 2 px borders");
            // Another seed, another model.
            var ctx3 = new MedSegContext(seed: 6);
            using var m3 = new MaskDiffusionEstimator(ctx3, o).Fit(data);
            Assert.IsFalse(m1.Generate(6).reshape(-1).ToArray<float>().SequenceEqual(m3.Generate(6).reshape(-1).ToArray<float>()));
        }
        finally
        {
            if (Directory.Exists(folder)) Directory.Delete(folder, true);
        }
    }

    private sealed class Progress(Action<TrainingProgress> on) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => on(value);
    }

    [TestMethod]
    public void BadMasksDivergenceAndCancellationAreClearErrors()
    {
        using var scope = torch.NewDisposeScope();
        var ctx = new MedSegContext(seed: 7);
        var soft = SyntheticMasks.Make(4, 16, 7, 2, 6).Select(m => (m * S(0.5)).DetachFromDisposeScope()).ToList();
        using (var data = SyntheticMasks.View(soft))
        {
            var ex = Assert.ThrowsException<InvalidOperationException>(() => new MaskDiffusionEstimator(ctx, Tiny()).Fit(data));
            StringAssert.Contains(ex.Message, "'Mask'");
        }
        using var good = SyntheticMasks.View(SyntheticMasks.Make(8, 16, 8, 2, 6));
        var o = Tiny(epochs: 3);
        o.LearningRate = 1e30;
        var div = Assert.ThrowsException<TrainingDivergedException>(() => new MaskDiffusionEstimator(ctx, o).Fit(good));
        StringAssert.Contains(div.Message, "MaskDiffusion");
        using var cts = new CancellationTokenSource();
        var oc = Tiny(epochs: 3);
        oc.EpochCompleted = _ => cts.Cancel();
        Assert.ThrowsException<OperationCanceledException>(() => new MaskDiffusionEstimator(ctx, oc).Fit(good, cts.Token));
        // Option errors name the option.
        var bad = Tiny();
        bad.SampleSteps = 101;
        var oe = Assert.ThrowsException<ArgumentException>(() => new MaskDiffusionEstimator(ctx, bad));
        Assert.AreEqual("SampleSteps", oe.ParamName);
        // A mask size the network cannot halve is refused before training.
        var odd = DataViewSchema.Create(("Mask", TensorColumnType.BinaryMask(15, 15)));
        Assert.AreEqual("Mask", Assert.ThrowsException<SchemaException>(() => new MaskDiffusionEstimator(ctx, Tiny()).GetOutputSchema(odd)).ColumnName);
    }

    /// <summary>
    /// Learning: trained on 96 ellipses of varied sizes (16 px, semi-axes 2–7 px; T = 100, 600 steps), the model's samples are binary
    /// masks whose foreground fractions are distributed as the training set's (two-sample KS, p &gt; 0.01).
    /// </summary>
    [TestMethod]
    public void LearnsTheForegroundFractionDistributionOfEllipses()
    {
        using var scope = torch.NewDisposeScope();
        var sw = Stopwatch.StartNew();
        var ctx = new MedSegContext(seed: 11);
        var train = SyntheticMasks.Make(96, 16, 11, 2, 7);
        var trainFractions = train.Select(m => m.mean().ToDouble()).ToList();
        using var data = SyntheticMasks.View(train);
        var o = new MaskDiffusionOptions
        {
            Network = new DiffusionUNetOptions { BaseChannels = 16, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 16, GroupNormGroups = 8, ImageSize = 16 },
            Steps = 100, SampleSteps = 25, Epochs = 100, BatchSize = 16, LearningRate = 2e-3,
        };
        using var model = new MaskDiffusionEstimator(ctx, o).Fit(data);
        var samples = model.Generate(80);
        var values = samples.unique_values();
        CollectionAssert.IsSubsetOf(values, new[] { 0f, 1f });
        var fractions = Fractions(samples);
        var (p, d) = KolmogorovSmirnov.Test(trainFractions, fractions);
        string summary = $"KS D = {d:F3}, p = {p:G3}; fractions train mean {trainFractions.Average():F3}, generated {fractions.Average():F3}; {sw.Elapsed.TotalSeconds:F1} s";
        Console.WriteLine(summary);
        Assert.IsTrue(p > 0.01, summary);
        // Not a copy of one mask: the samples vary.
        Assert.IsTrue(fractions.Distinct().Count() > 10, summary);
        samples.Dispose();
    }

    [TestMethod]
    public void CheckpointResume_GivesTheWeightsOfAStraightRun()
    {
        using var data = SyntheticMasks.View(SyntheticMasks.Make(8, 16, 1, 2, 6));
        ResumeCheck.Run(3, 1, (folder, onEpoch, ct) =>
        {
            var o = Tiny(epochs: 3);
            o.CheckpointFolder = folder;
            if (onEpoch is not null) o.EpochCompleted = r => onEpoch(r.Epoch);
            using var m = new MaskDiffusionEstimator(new MedSegContext(seed: 3), o).Fit(data, ct);
            return ResumeCheck.Weights(m.Network);   // the EMA weights: the average is in the checkpoint too
        });
    }
}
