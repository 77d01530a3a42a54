using System.Diagnostics;
using Microsoft.ML;
using MedSegContext = MLNetMedSeg.Pipeline.MedSegContext;
using MLNetMedSeg.Data;
using MLNetMedSeg.Segmentation.Cdal;
using MLNetMedSeg.Testing;
using MLNetMedSeg.Tests.Core.MLNet;
using MLNetMedSeg.Tests.Core.Training;
using static TorchSharp.torch;
using LibSchema = MLNetMedSeg.Data.DataViewSchema;

namespace MLNetMedSeg.Tests.Segmentation.Cdal;

/// <summary>
/// cDAL as a stage (<see cref="CdalTrainer"/> → <see cref="CdalTransformer"/>): the ML.NET workout (schema checks,
/// save/load bit-identical, PredictionEngine), checkpoint/resume bit-identical, learning through the stage scored by
/// the evaluator, batch independence of the content-seeded prediction.
/// </summary>
[TestClass]
public sealed class CdalStageTests
{
    private static readonly MLNetWorkoutOptions ImageAndMask = new() { MoreRequiredColumns = ["Mask"] };

    private static CdalTrainerOptions Tiny(int size = 16, int classes = 1, int epochs = 1) => new()
    {
        Cdal = Small(size, classes), Epochs = epochs, BatchSize = 4, PredictionBatchSize = 3,
    };

    private static CdalOptions Small(int size, int classes)
    {
        var o = CdalTestUtil.Small(size, classes);
        o.Samples = 3;
        o.GeneratorLearningRate = 2e-3;
        o.DiscriminatorLearningRate = 1e-4;
        return o;
    }

    /// <summary>A library view with Image [3,S,S] and Mask [1,S,S] (binary) of synthetic discs.</summary>
    private static InMemoryDataView Discs(int size, int n, int seed)
    {
        var (images, masks) = CdalTestUtil.Discs(size, n, seed);
        using (images)
        using (masks)
        using (NewDisposeScope())
        {
            var x = Enumerable.Range(0, n).Select(i => images[i].clone().DetachFromDisposeScope()).ToList();
            var y = Enumerable.Range(0, n).Select(i => masks[i].clone().DetachFromDisposeScope()).ToList();
            return InMemoryDataView.Create(
                ("Image", TensorColumnType.Image(3, size, size), x),
                ("Mask", TensorColumnType.BinaryMask(size, size), y));
        }
    }

    [TestMethod]
    public void Workout_Binary()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 11);
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Trainers.Cdal(Tiny()), WorkoutRows.Discs16(6, 11), "Image", ImageAndMask);
        CollectionAssert.AreEqual(new[] { "Probability: Vector<Single, 1, 16, 16>", "Predicted: Vector<Single, 1, 16, 16>" }, r.AddedColumns.ToArray());
        Assert.AreEqual(6, r.PredictionEngineRows);
        Console.WriteLine($"cDAL binary: model {r.ModelBytes} bytes, {sw.Elapsed.TotalSeconds:F1} s");
    }

    [TestMethod]
    public void Workout_MultiClass()
    {
        var ml = new MLContext(seed: 12);
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Trainers.Cdal(Tiny(classes: 3)), WorkoutRows.Classes16(6, 12), "Image", ImageAndMask);
        CollectionAssert.AreEqual(new[] { "Probability: Vector<Single, 3, 16, 16>", "Predicted: Vector<Int64, 16, 16>" }, r.AddedColumns.ToArray());
    }

    [TestMethod]
    public void CheckpointResume_GivesTheWeightsOfAStraightRun()
    {
        using var data = Discs(16, 6, 3);
        using var validation = Discs(16, 2, 4);
        ResumeCheck.Run(3, 1, (folder, onEpoch, ct) =>
        {
            var o = Tiny(epochs: 3);
            o.CheckpointFolder = folder;
            o.ValidationData = validation;   // the validation handler's best weights are restored at the end: they must survive the resume too
            o.Cdal.R1Interval = 2;           // the step count is in the checkpoint: R1 runs on the same steps
            if (onEpoch is not null) o.EpochCompleted = r => onEpoch(r.Epoch);
            using var m = new CdalTrainer(new MedSegContext(seed: 5), o).Fit(data, ct);
            Assert.AreEqual(3, m.History.Count);
            return ResumeCheck.Weights(m.Network);
        });
    }

    [TestMethod]
    public void CosineSchedule_AnnealsBothRatesPerEpoch()
    {
        using var data = Discs(16, 4, 5);
        var o = Tiny(epochs: 3);
        using var m = new CdalTrainer(new MedSegContext(seed: 6), o).Fit(data);
        double lr0 = o.Cdal.GeneratorLearningRate, min = o.MinLearningRate;
        for (int e = 0; e < 3; e++)
            Assert.AreEqual(min + (lr0 - min) * (1 + Math.Cos(Math.PI * e / 3)) / 2, m.History[e].LearningRate, 1e-9, $"epoch {e + 1}");
    }

    [TestMethod]
    public void SameSeed_SameModel_AndPredictionDoesNotDependOnBatching()
    {
        using var data = Discs(16, 4, 7);
        using var a = new CdalTrainer(new MedSegContext(seed: 8), Tiny()).Fit(data);
        using var b = new CdalTrainer(new MedSegContext(seed: 8), Tiny()).Fit(data);
        var wa = ResumeCheck.Weights(a.Network);
        var wb = ResumeCheck.Weights(b.Network);
        foreach (var (k, v) in wa) CollectionAssert.AreEqual(v, wb[k], k);

        var (images, _) = CdalTestUtil.Discs(16, 4, 9);
        using (images)
        {
            using var all = a.PredictProbabilities(images);
            using var last = a.PredictProbabilities(images.narrow(0, 2, 2));
            using var one = a.PredictProbabilities(images.narrow(0, 3, 1));
            Assert.IsTrue(all.narrow(0, 2, 2).allclose(last, rtol: 0, atol: 1e-5), "rows 2–3 alone give what they give in the batch of 4");
            Assert.IsTrue(all.narrow(0, 3, 1).allclose(one, rtol: 0, atol: 1e-5), "row 3 alone");
            using var scope = NewDisposeScope();
            var again = a.PredictProbabilities(images);
            Assert.IsTrue(all.eq(again).all().item<bool>(), "the same images give the same prediction");
            var other = a.PredictProbabilities(images.flip(3));
            Assert.IsFalse(all.flip(3).eq(other).all().item<bool>(), "another image draws other noise (and is another image)");
        }
    }

    [TestMethod]
    public void NonSquareImagesOrWrongMaskType_AreSchemaErrorsNamingTheColumn()
    {
        var trainer = new CdalTrainer(new MedSegContext(seed: 1), Tiny());
        var wide = new LibSchema.Builder().AddColumn("Image", TensorColumnType.Image(3, 16, 24)).AddColumn("Mask", TensorColumnType.BinaryMask(16, 24)).ToSchema();
        var e = Assert.ThrowsException<SchemaException>(() => trainer.GetOutputSchema(wide));
        StringAssert.Contains(e.Message, "'Image'");
        StringAssert.Contains(e.Message, "square");
        var classes = new LibSchema.Builder().AddColumn("Image", TensorColumnType.Image(3, 16, 16)).AddColumn("Mask", TensorColumnType.ClassMask(16, 16)).ToSchema();
        e = Assert.ThrowsException<SchemaException>(() => trainer.GetOutputSchema(classes));
        StringAssert.Contains(e.Message, "'Mask'");
        // An attention scale the data's side does not have: named when fitting.
        using var data = Discs(16, 2, 1);
        var o = Tiny();
        o.Cdal.ImageSize = 64;          // valid for 64 px images; the image size is then the data's
        o.Cdal.AttentionScale = 32;
        var a = Assert.ThrowsException<ArgumentException>(() => new CdalTrainer(new MedSegContext(seed: 1), o).Fit(data));
        StringAssert.Contains(a.Message, "AttentionScale");
        StringAssert.Contains(a.Message, "16 px");
    }

    /// <summary>
    /// Learning through the stage: ML.NET rows → the catalog's trainer (with validation data) → Transform of held-out
    /// images → ml.MedSeg().Evaluate. The all-background prediction scores a per-image Dice of 0 on these discs.
    /// </summary>
    [TestMethod]
    public void LearnsSyntheticDiscs_ThroughTheStage_ScoredByTheEvaluator()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 21);
        var train = ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(16, 21));
        var val = ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(2, 22));
        var test = ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(8, 23));
        var o = Tiny(epochs: 8);   // validation mDice ≈ 0.9 after 2 epochs, ≈ 1 from about 8 (25 epochs: test mDice 0.999)
        using var model = ml.MedSeg().Trainers.Cdal(o).Fit(train, val);
        var scores = ml.MedSeg().Evaluate(model.Transform(test));
        var history = string.Join(", ", model.History.Select(r => $"{r.GeneratorLoss:F3}/{r.ValidationDice:F2}"));
        string summary = $"test mDice {scores.MeanDice:F4} (all-background baseline 0), best val {model.BestEpoch?.ValidationDice:F4} at epoch {model.BestEpoch?.Epoch}; " +
            $"G loss/val Dice per epoch: {history}; {sw.Elapsed.TotalSeconds:F0} s";
        Console.WriteLine(summary);
        Assert.AreEqual(8, scores.ImageCount);
        Assert.IsTrue(scores.MeanDice > 0.7, summary);
        Assert.IsTrue(model.History.All(r => r.ValidationDice is not null && double.IsFinite(r.DiscriminatorLoss)), summary);
    }
}
