using MLNetMedSeg.Tests.Core.Training;
using MLNetMedSeg.Attacks;
using MLNetMedSeg.Attacks.Networks;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Testing;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Attacks;

[TestClass]
public sealed class DeformationAttackEstimatorTests
{
    /// <summary>An untrained tiny U-Net segmenter (weights from a fixed seed): enough to attack in plumbing tests.</summary>
    internal static SegmentationTransformer Untrained(MedSegContext ctx, bool binary = false)
    {
        var net = new SegmentationNetworkOptions
        {
            Architecture = SegmentationArchitecture.UNet, InChannels = 1, Classes = binary ? 1 : 3, EncoderDepth = 2, EncoderWidths = [4, 8],
        };
        using var g = new Generator(5);
        return new SegmentationTransformer(ctx, new SegmentationModelOptions { Network = net }, SegmentationNetworks.Create(net, g));
    }

    private static DeformationAttackOptions Tiny(int samples = 1, DeformationAttackVariant variant = DeformationAttackVariant.DeformationAndIntensity) => new()
    {
        Generator = new DeformationGeneratorOptions { InChannels = 1, Widths = [4, 8], LatentChannels = 2, Variant = variant },
        CriticWidths = [4],
        Epochs = 1,
        BatchSize = 4,
        Samples = samples,
        LearningRate = 1e-3,
    };

    private static Dictionary<string, float[]> Weights(nn.Module m) =>
        m.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.to(ScalarType.Float32).cpu().contiguous().ToArray<float>());

    [TestMethod]
    public void Workout_MultiClass_TwoSamplesPerImage()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 1);
        using var seg = Untrained(ctx);
        using var data = AttackData.Organs(5, 1);
        var r = EstimatorWorkout.Run(ctx, new DeformationAttackEstimator(ctx, Tiny(samples: 2), seg), data, "Image",
            new WorkoutOptions { MoreRequiredColumns = ["Mask"] });
        Assert.AreEqual(10, r.Rows);
        Assert.AreEqual(TensorColumnType.Image(1, 32, 32), r.OutputSchema["AttackedImage"].Type);
        Assert.AreEqual(TensorColumnType.ClassMask(32, 32), r.OutputSchema["DeformedMask"].Type);
        Assert.AreEqual(new TensorColumnType(ScalarType.Float32, [2, 32, 32]), r.OutputSchema["Deformation"].Type);
        Assert.AreEqual(TensorColumnType.Image(1, 32, 32), r.OutputSchema["Intensity"].Type);
    }

    [TestMethod]
    public void Workout_Binary_WithoutMaskColumn()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 2);
        using var seg = Untrained(ctx, binary: true);
        using var data = AttackData.Organs(4, 2, binary: true);
        var o = Tiny();
        o.MaskColumn = null;
        var r = EstimatorWorkout.Run(ctx, new DeformationAttackEstimator(ctx, o, seg), data, "Image");
        Assert.AreEqual(4, r.Rows);
        Assert.IsFalse(r.OutputSchema.Contains("DeformedMask"));
    }

    [TestMethod]
    public void Fit_LeavesTheSegmenterUnchanged_NoGradientsAndRequiresGradRestored()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 3);
        using var seg = Untrained(ctx);
        using var data = AttackData.Organs(6, 3);
        var before = Weights(seg.Network);
        var o = Tiny();
        o.Epochs = 2;
        using var attacker = new DeformationAttackEstimator(ctx, o, seg).Fit(data);
        var after = Weights(seg.Network);
        CollectionAssert.AreEquivalent(before.Keys.ToList(), after.Keys.ToList());
        foreach (var (k, v) in before) CollectionAssert.AreEqual(v, after[k], $"segmenter weight '{k}' changed");
        foreach (var p in seg.Network.parameters())
        {
            Assert.IsNull(p.grad, "a gradient reached the segmenter");
            Assert.IsTrue(p.requires_grad, "requires_grad was not restored");
        }
        Assert.IsFalse(seg.Network.training, "the segmenter left eval mode");
        Assert.AreEqual(2, attacker.History.Count);
        Assert.IsTrue(attacker.History.All(h => double.IsFinite(h.GeneratorLoss) && double.IsFinite(h.CriticLoss)));
    }

    [TestMethod]
    public void Fit_IsDeterministic_AndRowsAreSeededPerRowNotPerBatch()
    {
        using var scope = NewDisposeScope();
        using var data = AttackData.Organs(5, 4);
        var images = AttackData.Column(data);
        float[] Fit(out float[] rowByRow)
        {
            var ctx = new MedSegContext(seed: 4);
            using var seg = Untrained(ctx);
            using var a = new DeformationAttackEstimator(ctx, Tiny(samples: 2), seg).Fit(data);
            using var all = a.Attack(images);
            rowByRow = Enumerable.Range(0, 5).SelectMany(i =>
            {
                using var one = a.Attack(images.narrow(0, i, 1), firstRow: i);
                return one.Attacked.contiguous().ToArray<float>();
            }).ToArray();
            return all.Attacked.contiguous().ToArray<float>();
        }
        var first = Fit(out var rows);
        var second = Fit(out _);
        CollectionAssert.AreEqual(first, second, "two fits with the same seed differ");
        for (int i = 0; i < first.Length; i++) Assert.AreEqual(first[i], rows[i], 1e-5, $"element {i}: batched vs row by row");
    }

    [TestMethod]
    public void Samples_DifferPerRowAndPerSample()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 5);
        using var seg = Untrained(ctx);
        using var data = AttackData.Organs(4, 5);
        var o = Tiny(samples: 3);
        o.Epochs = 2;
        using var a = new DeformationAttackEstimator(ctx, o, seg).Fit(data);
        using var b = a.Attack(AttackData.Column(data).narrow(0, 0, 1));
        var v = b.Intensity;
        Assert.IsTrue(v.narrow(0, 0, 1).sub(v.narrow(0, 1, 1)).abs().max().ToSingle() > 0, "two samples of a row are equal");
    }

    [TestMethod]
    public void Variants_DeformationOnlyAndIntensityOnly_ComposeAsEquation1()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 6);
        using var seg = Untrained(ctx);
        using var data = AttackData.Organs(4, 6);
        var x = AttackData.Column(data);
        foreach (var variant in new[] { DeformationAttackVariant.DeformationOnly, DeformationAttackVariant.IntensityOnly })
        {
            var o = Tiny(variant: variant);
            o.Epochs = 2;
            using var a = new DeformationAttackEstimator(ctx, o, seg).Fit(data);
            using var b = a.Attack(x);
            if (variant == DeformationAttackVariant.DeformationOnly)
            {
                Assert.AreEqual(0f, b.Intensity.abs().max().ToSingle());
                Assert.IsTrue(b.Deformation.abs().max().ToSingle() > 0);
                Assert.AreEqual(0.0, b.Attacked.sub(DeformationWarp.Warp(x, b.Deformation)).abs().max().ToSingle(), 1e-6);
                Assert.IsFalse(a.Generator.StateDictInOrder().Keys.Any(k => k.StartsWith("decoder_v.", StringComparison.Ordinal)));
            }
            else
            {
                Assert.AreEqual(0f, b.Deformation.abs().max().ToSingle());
                Assert.AreEqual(0.0, b.Attacked.sub(x.add(b.Intensity)).abs().max().ToSingle(), 1e-6);
                Assert.IsFalse(a.Generator.StateDictInOrder().Keys.Any(k => k.StartsWith("decoder_d.", StringComparison.Ordinal)));
            }
        }
    }

    [TestMethod]
    public void WeightClipping_TrainsWithFiniteLosses_AndDiffersFromTheGradientPenalty()
    {
        using var scope = NewDisposeScope();
        using var data = AttackData.Organs(6, 10);
        float[] Fit(CriticRegularization r, out IReadOnlyList<DeformationAttackEpochRecord> history)
        {
            var ctx = new MedSegContext(seed: 10);
            using var seg = Untrained(ctx);
            var o = Tiny();
            o.Epochs = 2;
            o.CriticIterations = 2;
            o.CriticRegularization = r;
            using var a = new DeformationAttackEstimator(ctx, o, seg).Fit(data);
            history = a.History;
            using var b = a.Attack(AttackData.Column(data));
            return b.Attacked.contiguous().ToArray<float>();
        }
        var clipped = Fit(CriticRegularization.WeightClipping, out var hc);
        var penalised = Fit(CriticRegularization.GradientPenalty, out var hp);
        Assert.IsTrue(hc.All(h => double.IsFinite(h.CriticLoss) && double.IsFinite(h.GeneratorLoss)));
        // Clipped to ±0.01, the critic's scores are tiny: its loss is far smaller than under the penalty (≈ λ at the start).
        Assert.IsTrue(Math.Abs(hc[0].CriticLoss) < 0.1 && hp[0].CriticLoss > 1, $"{hc[0].CriticLoss} vs {hp[0].CriticLoss}");
        CollectionAssert.AreNotEqual(clipped, penalised);
    }

    [TestMethod]
    public void Fit_HonoursCancellation_AndReportsProgress()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 7);
        var reports = new List<TrainingProgress>();
        ctx.Progress = new SyncProgress(reports.Add);
        using var seg = Untrained(ctx);
        using var data = AttackData.Organs(8, 7);
        using var cts = new CancellationTokenSource();
        var o = Tiny();
        o.Epochs = 3;
        o.EpochCompleted = _ => cts.Cancel();
        Assert.ThrowsException<OperationCanceledException>(() => new DeformationAttackEstimator(ctx, o, seg).Fit(data, cts.Token));
        Assert.IsTrue(reports.Count >= 2 && reports.All(p => p.Stage == "DeformationAttackEstimator"));
        Assert.IsTrue(seg.Network.parameters().All(p => p.requires_grad), "requires_grad was not restored after cancellation");
    }

    [TestMethod]
    public void Options_AreValidated_AndChannelsMustMatchTheSegmenter()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 8);
        using var seg = Untrained(ctx);
        Assert.ThrowsException<ArgumentException>(() => new DeformationAttackEstimator(ctx, new DeformationAttackOptions(), seg), "3-channel generator, 1-channel segmenter");
        var bad = Tiny();
        bad.Samples = 0;
        Assert.ThrowsException<ArgumentException>(() => new DeformationAttackEstimator(ctx, bad, seg));
        bad = Tiny();
        bad.DeformationColumn = bad.IntensityColumn;
        Assert.ThrowsException<ArgumentException>(() => new DeformationAttackEstimator(ctx, bad, seg));
    }

    [TestMethod]
    public void Report_HasTheDocumentedJsonFields()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 9);
        using var seg = Untrained(ctx);
        using var data = AttackData.Organs(4, 9);
        using var a = new DeformationAttackEstimator(ctx, Tiny(samples: 2), seg).Fit(data);
        var report = a.Evaluate(data);
        Assert.AreEqual(4, report.Images);
        Assert.AreEqual(2, report.PerClass.Count);
        using var doc = System.Text.Json.JsonDocument.Parse(report.ToJson());
        foreach (var f in new[] { "dice_before", "dice_after", "success_rate", "p", "per_class", "xi" })
            Assert.IsTrue(doc.RootElement.TryGetProperty(f, out _), $"report.json lacks '{f}'");
        var c1 = doc.RootElement.GetProperty("per_class")[0];
        foreach (var f in new[] { "class", "dice_before", "dice_after", "dice_30pct_decrease", "attacked", "success_rate" })
            Assert.IsTrue(c1.TryGetProperty(f, out _), $"per_class lacks '{f}'");
        Assert.AreEqual((report.PerClass[0].DiceBefore + report.PerClass[1].DiceBefore) / 2, report.DiceBefore, 1e-12);
        Assert.IsTrue(report.P > 0 && report.P < 1);
    }

    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }

    [TestMethod]
    public void CheckpointResume_GivesTheWeightsOfAStraightRun()
    {
        var segCtx = new MedSegContext(seed: 5);
        using var seg = Untrained(segCtx);
        using var data = AttackData.Organs(6, 5);
        ResumeCheck.Run(3, 1, (folder, onEpoch, ct) =>
        {
            var o = Tiny();
            o.Epochs = 3;
            o.CheckpointFolder = folder;
            if (onEpoch is not null) o.EpochCompleted = r => onEpoch(r.Epoch);
            using var m = new DeformationAttackEstimator(new MedSegContext(seed: 6), o, seg).Fit(data, ct);
            return ResumeCheck.Weights(m.Generator);
        });
    }
}
