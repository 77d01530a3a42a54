using MLNetMedSeg.Core;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Testing;
using static MLNetMedSeg.Tests.Augmentation.Adversarial.AdversarialTestKit;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Augmentation.Adversarial;

[TestClass]
public sealed class AdversarialAttackStageTests
{
    private static AdversarialAttackOptions SmallPgd()
    {
        var o = AdversarialAttackOptions.PgdPreset();
        o.Steps = 3;
        o.BatchSize = 3;
        return o;
    }

    private static AdversarialAttackOptions SmallDasp()
    {
        var o = AdversarialAttackOptions.Dasp();
        o.Steps = 2;
        o.BatchSize = 2;
        o.PerturbedImageColumn = "Perturbed";
        o.UncertaintyColumn = "Uncertainty";
        return o;
    }

    [TestMethod]
    public void Workout_Pgd()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 1);
        using var seg = Segmenter(ctx);
        using var data = Discs(5, 1);
        var result = EstimatorWorkout.Run(ctx, new AdversarialAttackEstimator(ctx, seg, SmallPgd()), data, "Image",
            new WorkoutOptions { MoreRequiredColumns = ["Mask"] });
        Assert.AreEqual("Image, Mask, AttackedImage", string.Join(", ", result.OutputSchema.Select(c => c.Name)));
        Assert.AreEqual(5, result.Rows);
    }

    [TestMethod]
    public void Workout_MultiClass()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 3);
        using var seg = Segmenter(ctx, classes: 3);
        using var data = Discs(3, 3, multiClass: true);
        var o = SmallPgd();
        o.UncertaintyColumn = "W";
        EstimatorWorkout.Run(ctx, new AdversarialAttackEstimator(ctx, seg, o), data, "Image", new WorkoutOptions { MoreRequiredColumns = ["Mask"] });
    }

    private static List<float[]> Column(IDataView view, string column)
    {
        var list = new List<float[]>();
        using var cur = view.GetRowCursor(column);
        while (cur.MoveNext()) list.Add(Values(cur.GetTensor(column)));
        return list;
    }

    [TestMethod]
    public void Transform_IsReproducible_FromTheContextSeed_AndLeavesTheMask()
    {
        using var scope = NewDisposeScope();
        using var data = Discs(4, 4);
        List<float[]> Attacked(int seed)
        {
            var ctx = new MedSegContext(seed);
            using var seg = Segmenter(ctx);
            using var t = new AdversarialAttackEstimator(ctx, seg, SmallPgd()).Fit(data);
            var out1 = Column(t.Transform(data), "AttackedImage");
            var out2 = Column(t.Transform(data), "AttackedImage");
            for (int i = 0; i < out1.Count; i++) CollectionAssert.AreEqual(out1[i], out2[i], $"row {i}: the same transformer twice");
            return out1;
        }
        var a = Attacked(7);
        var b = Attacked(7);
        var c = Attacked(8);
        for (int i = 0; i < a.Count; i++) CollectionAssert.AreEqual(a[i], b[i], $"row {i}: same context seed");
        Assert.IsTrue(a.Zip(c).Any(p => !p.First.SequenceEqual(p.Second)), "another context seed draws other random starts");

        var ctx2 = new MedSegContext(9);
        using var seg2 = Segmenter(ctx2);
        using var t2 = new AdversarialAttackEstimator(ctx2, seg2, SmallPgd()).Fit(data);
        var output = t2.Transform(data);
        var masksIn = Column(data, "Mask");
        var masksOut = Column(output, "Mask");
        for (int i = 0; i < masksIn.Count; i++) CollectionAssert.AreEqual(masksIn[i], masksOut[i]);
    }

    [TestMethod]
    public void DiffPgd_NeedsAnSdEditor_AndAnUnsavedOneMustBeSetAgainAfterLoading()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 5);
        using var seg = Segmenter(ctx);
        using var data = Discs(2, 5);
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new AdversarialAttackEstimator(ctx, seg, AdversarialAttackOptions.Dasp()));
        StringAssert.Contains(ex.Message, "ISdEditor");

        var editor = new UnsavedBlurSdEditor();
        using var fitted = new AdversarialAttackEstimator(ctx, seg, SmallDasp(), editor).Fit(data);
        var expected = Column(fitted.Transform(data), "AttackedImage");
        string file = Path.Combine(Path.GetTempPath(), $"attack-{Guid.NewGuid():N}.zip");
        try
        {
            TestModels.Save(fitted, file);
            var loaded = (AdversarialAttackTransformer)TestModels.Load(file);
            using (loaded)
            {
                var missing = Assert.ThrowsExactly<InvalidOperationException>(() => loaded.Transform(data));
                StringAssert.Contains(missing.Message, "SdEditor");
                loaded.SdEditor = editor;
                var actual = Column(loaded.Transform(data), "AttackedImage");
                for (int i = 0; i < expected.Count; i++) CollectionAssert.AreEqual(expected[i], actual[i], $"row {i} after load");
            }
        }
        finally
        {
            File.Delete(file);
        }
        Assert.IsTrue(seg.Network.parameters().All(p => !p.IsInvalid), "the caller's segmenter is not disposed by the stage");
    }

    [TestMethod]
    public void Schema_MaskMustMatchTheHead()
    {
        using var scope = NewDisposeScope();
        var ctx = new MedSegContext(seed: 6);
        using var seg = Segmenter(ctx, classes: 3);
        using var binary = Discs(2, 6);
        var ex = Assert.ThrowsExactly<SchemaException>(() => new AdversarialAttackEstimator(ctx, seg, SmallPgd()).GetOutputSchema(binary.Schema));
        Assert.AreEqual("Mask", ex.ColumnName);
        StringAssert.Contains(ex.Message, "class-index");
    }
}
