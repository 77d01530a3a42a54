using MLNetMedSeg.Tests.Core.Training;
using MLNetMedSeg.Core.Training;
using MLNetMedSeg.Core;
using System.Diagnostics;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Testing;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Diffusion;

[TestClass]
public sealed class ImageDiffusionTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => SingleThreaded.Enter();

    [ClassCleanup]
    public static void Cleanup() => SingleThreaded.Leave();

    private const int Size = 16;

    /// <summary>
    /// n one-channel 16×16 images: a bright disc (0.85 ± 0.05) exactly where the mask's disc is, on a dark background
    /// (0.15 ± 0.05); radius 3..6 px, centre anywhere the disc fits.
    /// </summary>
    private static InMemoryDataView Blobs(int n, int seed, bool nan = false)
    {
        var rng = new Random(seed);
        var images = new List<Tensor>();
        var masks = new List<Tensor>();
        for (int k = 0; k < n; k++)
        {
            double r = 3 + rng.NextDouble() * 3;
            double cy = r + rng.NextDouble() * (Size - 2 * r), cx = r + rng.NextDouble() * (Size - 2 * r);
            var img = new float[Size * Size];
            var m = new float[Size * Size];
            for (int i = 0; i < Size; i++)
                for (int j = 0; j < Size; j++)
                {
                    bool inside = (i + 0.5 - cy) * (i + 0.5 - cy) + (j + 0.5 - cx) * (j + 0.5 - cx) <= r * r;
                    m[i * Size + j] = inside ? 1 : 0;
                    img[i * Size + j] = (float)((inside ? 0.85 : 0.15) + 0.1 * (rng.NextDouble() - 0.5));
                }
            if (nan) img[3] = float.NaN;
            images.Add(tensor(img, [1, Size, Size]));
            masks.Add(tensor(m, [1, Size, Size]));
        }
        return InMemoryDataView.Create(
            ("Image", TensorColumnType.Image(1, Size, Size), images),
            ("Mask", TensorColumnType.BinaryMask(Size, Size), masks));
    }

    /// <summary>A tiny stage: 1-channel images, widths 16/32, attention only in the middle, T = 100.</summary>
    private static ImageDiffusionOptions Tiny(int epochs = 1) => new()
    {
        ImageChannels = 1,
        Network = new DiffusionUNetOptions
        {
            BaseChannels = 16, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 16, GroupNormGroups = 8,
        },
        TimeSteps = 100, Epochs = epochs, BatchSize = 8, LearningRate = 1e-3, EmaDecay = 0.999, SampleSteps = 4,
    };

    private static Tensor Column(IDataView view, string name)
    {
        var list = new List<Tensor>();
        using (var cur = view.GetRowCursor([view.Schema[name]]))
            while (cur.MoveNext()) list.Add(((Tensor)cur.GetValue(view.Schema[name])).clone());
        return stack(list.ToArray());
    }

    [TestMethod]
    public void Workout_TinyModel()
    {
        var ctx = new MedSegContext(seed: 1);
        using var data = Blobs(8, 1);
        var r = EstimatorWorkout.Run(ctx, new ImageDiffusionEstimator(ctx, Tiny()), data, "Image",
            new WorkoutOptions { MoreRequiredColumns = ["Mask"] });
        Assert.AreEqual(8, r.Rows);
        Assert.AreEqual(new TensorColumnType(ScalarType.Float32, [1, Size, Size]), r.OutputSchema["SyntheticImage"].Type);
    }

    [TestMethod]
    public void LearnsToPutTheBrightBlobWhereTheMaskIs()
    {
        using var scope = NewDisposeScope();
        var sw = Stopwatch.StartNew();
        var ctx = new MedSegContext(seed: 2);
        using var train = Blobs(64, 2);
        using var test = Blobs(16, 22);
        var o = Tiny(epochs: 40);                 // 8 steps per epoch: 320 Adam steps
        o.SampleSteps = 20;
        using var model = new ImageDiffusionEstimator(ctx, o).Fit(train);
        double trained = sw.Elapsed.TotalSeconds;
        var masks = Column(test, "Mask");
        var generated = Column(model.Transform(test), "SyntheticImage");
        Assert.IsTrue(generated.min().ToSingle() >= 0 && generated.max().ToSingle() <= 1, "images in [0, 1]");
        var pred = generated.gt(S(0.5)).to(ScalarType.Float32);
        var inter = (pred * masks).sum([1, 2, 3]);
        var dice = (inter * S(2) + S(1e-6)) / (pred.sum([1, 2, 3]) + masks.sum([1, 2, 3]) + S(1e-6));
        double meanDice = dice.mean().ToSingle();
        Console.WriteLine($"held-out Dice(mask, generated > 0.5) = {meanDice:F3}; train {trained:F1} s, total {sw.Elapsed.TotalSeconds:F1} s; " +
            $"loss {model.History[0].Loss:F4} → {model.History[^1].Loss:F4}");
        Assert.IsTrue(meanDice > 0.7, $"Dice {meanDice:F3}");
        Assert.IsTrue(model.History[^1].Loss < model.History[0].Loss);
    }

    [TestMethod]
    public void SamplesAreSeededByRowAndIndependentOfBatchSize()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 3);
        using var data = Blobs(5, 3);
        using var model = new ImageDiffusionEstimator(ctx, Tiny()).Fit(data);
        var a = Column(model.Transform(data), "SyntheticImage");
        var b = Column(model.Transform(data), "SyntheticImage");
        Assert.IsTrue(a.IsEqual(b), "the same rows give the same images");
        model.Options.TransformBatchSize = 2;   // a copy: no effect on the model
        Assert.AreEqual(8, model.Options.TransformBatchSize);
        var o = model.Options;
        o.TransformBatchSize = 2;
        using var model2 = new ImageDiffusionTransformer(ctx, o, CloneNet(model.Network));
        var c = Column(model2.Transform(data), "SyntheticImage");
        Assert.AreEqual(0.0, (a - c).abs().max().ToSingle(), 1e-5, "batches of 2 give the rows of a batch of 5");
        Assert.IsFalse(a[0].IsEqual(a[1]), "rows get different noise");
    }

    [TestMethod]
    public void SameContextSeedGivesTheSameModel()
    {
        using var data = Blobs(8, 8);
        Dictionary<string, float[]> Fit(int seed)
        {
            var ctx = new MedSegContext(seed: seed);
            var o = Tiny();
            o.ConditionDropout = 0.2;
            o.Network.Dropout = 0.1;
            using var m = new ImageDiffusionEstimator(ctx, o).Fit(data);
            return m.Network.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.cpu().contiguous().ToArray<float>());
        }
        var a = Fit(9);
        var b = Fit(9);
        var c = Fit(10);
        Assert.IsTrue(a.Keys.All(k => a[k].SequenceEqual(b[k])), "same seed, same EMA weights");
        Assert.IsFalse(a.Keys.All(k => a[k].SequenceEqual(c[k])), "another seed, other weights");
    }

    private static DiffusionUNet CloneNet(DiffusionUNet net)
    {
        var c = new DiffusionUNet(net.Options, new Generator(0));
        c.load_state_dict(net.StateDictInOrder());
        return c;
    }

    [TestMethod]
    public void SdEditThroughTheTransformer()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 4);
        using var data = Blobs(4, 4);
        using var model = new ImageDiffusionEstimator(ctx, Tiny()).Fit(data);
        ISdEditor editor = model;
        Assert.AreEqual(1, editor.ImageChannels);
        var images = Column(data, "Image");
        var masks = Column(data, "Mask");
        Assert.IsTrue(editor.SdEdit(images, masks, 10, 0, false).IsEqual(images), "depth 0 is the identity");
        var x = images.clone().requires_grad_(true);
        var y = editor.SdEdit(x, masks, 10, 3, true, new Generator(5));
        Assert.IsTrue(y.min().ToSingle() >= 0 && y.max().ToSingle() <= 1);
        var g = torch.autograd.grad([y.sum()], [x])[0];
        Assert.IsTrue(g.abs().sum().ToSingle() > 0, "the differentiable form reaches the input");
        var yd = editor.SdEdit(x, masks, 10, 3, false, new Generator(5));
        Assert.IsFalse(yd.requires_grad);
        Assert.AreEqual(0.0, (yd - y.detach()).abs().max().ToSingle(), 1e-6);
        Assert.ThrowsException<ArgumentException>(() => editor.SdEdit(images, masks.narrow(0, 0, 2), 10, 2, false));
    }

    [TestMethod]
    public void SoftMasksAreBinarisedWhereTheyAreConsumedAsBinary()
    {
        // A mask diffusion with FinalStep = Mean gives probability maps; the image diffusion conditions on them and pairs
        // them with images as binary masks, thresholded at 0.5 (what FinalStep = Threshold gives).
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 6);
        using var data = Blobs(4, 6);
        using var model = new ImageDiffusionEstimator(ctx, Tiny()).Fit(data);
        var binary = Column(data, "Mask");
        var soft = binary * S(0.4) + S(0.3) + (rand(binary.shape, generator: new Generator(1)) - S(0.5)) * S(0.2); // 0.2..0.4 / 0.6..0.8
        Assert.IsTrue(ImageDiffusionTransformer.BinarizeMask(soft).IsEqual(binary));
        var fromSoft = model.Sample(soft, [new Generator(2)]);
        var fromBinary = model.Sample(binary, [new Generator(2)]);
        Assert.AreEqual(0.0, (fromSoft - fromBinary).abs().max().ToSingle(), "the condition is the binarised mask");
        using var softView = InMemoryDataView.Create(("Soft", TensorColumnType.BinaryMask(Size, Size), Enumerable.Range(0, 4).Select(i => soft[i].clone()).ToList()));
        using var pairs = model.DrawPairs(softView, "Soft", 1, "Image", TensorColumnType.Image(1, Size, Size), "Mask", TensorColumnType.BinaryMask(Size, Size))!;
        Assert.IsTrue(Column(pairs, "Mask").IsEqual(binary), "the pairs carry binary masks");
        using var binaryPairs = model.DrawPairs(data, "Mask", 1, "Image", TensorColumnType.Image(1, Size, Size), "Mask", TensorColumnType.BinaryMask(Size, Size))!;
        Assert.IsTrue(Column(pairs, "Image").IsEqual(Column(binaryPairs, "Image")), "and the same images as the binary masks");
    }

    [TestMethod]
    public void WritesSampleGridsDuringAndAfterTraining()
    {
        var folder = Path.Combine(Path.GetTempPath(), "imgdiff_grid_" + Guid.NewGuid().ToString("N"));
        try
        {
            var ctx = new MedSegContext(seed: 5);
            using var data = Blobs(6, 5);
            var o = Tiny(epochs: 2);
            o.SampleGridFolder = folder;
            o.SampleGridEvery = 1;
            o.SampleGridCount = 3;
            using (new ImageDiffusionEstimator(ctx, o).Fit(data)) { }
            Assert.IsTrue(File.Exists(Path.Combine(folder, "grid_epoch_001.png")));
            Assert.IsFalse(File.Exists(Path.Combine(folder, "grid_epoch_002.png")), "the last epoch writes the final grid only");
            var img = ImageIO.ReadTensor(Path.Combine(folder, "grid_final.png"));
            CollectionAssert.AreEqual(new long[] { 3 * (Size + 2) - 2, 2 * Size + 2 }, img.shape[1..]);
        }
        finally { if (Directory.Exists(folder)) Directory.Delete(folder, true); }
    }

    [TestMethod]
    public void SampleGridLaysOutMaskThenImage()
    {
        using var scope = NewDisposeScope();
        var masks = ones(2, 1, 2, 2);
        var images = zeros(2, 3, 2, 2);
        var grid = ImageDiffusionEstimator.SampleGrid(masks, images);
        CollectionAssert.AreEqual(new long[] { 3, 6, 6 }, grid.shape);
        Assert.AreEqual(1f, grid[0, 0, 0].ToSingle(), "mask (white) on the left");
        Assert.AreEqual(0f, grid[2, 5, 5].ToSingle(), "second row's image (black) on the right");
        Assert.AreEqual(1f, grid[1, 2, 4].ToSingle(), "separator");
    }

    private sealed class Collect(Action<TrainingProgress>? then = null) : IProgress<TrainingProgress>
    {
        public List<TrainingProgress> Reports { get; } = [];
        public void Report(TrainingProgress value)
        {
            Reports.Add(value);
            then?.Invoke(value);
        }
    }

    [TestMethod]
    public void ReportsProgressAndHonoursCancellation()
    {
        using var data = Blobs(16, 6);
        var ctx = new MedSegContext(seed: 6);
        var progress = new Collect();
        ctx.Progress = progress;
        using (new ImageDiffusionEstimator(ctx, Tiny(epochs: 2)).Fit(data)) { }
        Assert.AreEqual(4, progress.Reports.Count, "2 epochs × 2 steps");
        Assert.IsTrue(progress.Reports.All(p => p.Stage == "ImageDiffusion" && p.Loss is double l && double.IsFinite(l)));
        Assert.AreEqual(2, progress.Reports[^1].Epoch);
        Assert.IsNotNull(progress.Reports[^1].Eta);

        using var cts = new CancellationTokenSource();
        var ctx2 = new MedSegContext(seed: 6) { Progress = new Collect(_ => cts.Cancel()) };
        long finalized = TorchRuntime.FinalizedTensorCount;
        Assert.ThrowsException<OperationCanceledException>(() => new ImageDiffusionEstimator(ctx2, Tiny(epochs: 2)).Fit(data, cts.Token));
        Assert.AreEqual(finalized, TorchRuntime.FinalizedTensorCount, "a cancelled fit disposes everything it made (nothing is left to the finalizer)");
    }

    [TestMethod]
    public void NanLossAndBadSchemasThrowClearly()
    {
        var ctx = new MedSegContext(seed: 7);
        using var nan = Blobs(4, 7, nan: true);
        var e = Assert.ThrowsException<TrainingDivergedException>(() => new ImageDiffusionEstimator(ctx, Tiny()).Fit(nan));
        StringAssert.Contains(e.Message, "NaN");
        using var data = Blobs(4, 7);
        var o = Tiny();
        o.ImageChannels = 3;
        var s = Assert.ThrowsException<SchemaException>(() => new ImageDiffusionEstimator(ctx, o).GetOutputSchema(data.Schema));
        Assert.AreEqual("Image", s.ColumnName);
        o = Tiny();
        o.Network.ChannelMultipliers = [1, 1, 1, 1, 1, 1];  // 2^5 = 32 does not divide 16
        s = Assert.ThrowsException<SchemaException>(() => new ImageDiffusionEstimator(ctx, o).Fit(data));
        StringAssert.Contains(s.Message, "divisible");
        o = Tiny();
        o.ConditionColumn = "SyntheticMask";
        s = Assert.ThrowsException<SchemaException>(() => new ImageDiffusionEstimator(ctx, o).GetOutputSchema(data.Schema));
        Assert.AreEqual("SyntheticMask", s.ColumnName);
        Assert.ThrowsException<ArgumentException>(() => new ImageDiffusionEstimator(ctx, new ImageDiffusionOptions { SampleSteps = 2000 }));
    }

    [TestMethod]
    public void CheckpointResume_GivesTheWeightsOfAStraightRun()
    {
        using var data = Blobs(8, 4);
        ResumeCheck.Run(3, 2, (folder, onEpoch, ct) =>
        {
            var o = Tiny(epochs: 3);
            o.CheckpointFolder = folder;
            if (onEpoch is not null) o.EpochCompleted = r => onEpoch(r.Epoch);
            using var m = new ImageDiffusionEstimator(new MedSegContext(seed: 4), o).Fit(data, ct);
            return ResumeCheck.Weights(m.Network);
        });
    }
}
