using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Testing;

namespace MLNetMedSeg.Tests.Data;

/// <summary>The data transforms through the estimator workout and the real model zip (registered loaders).</summary>
[TestClass]
public sealed class DataTransformWorkoutTests
{
    private static InMemoryDataView Rows(MedSegContext ctx, int n = 3, int h = 10, int w = 14)
    {
        using var g = new Generator(7);
        using var scope = torch.NewDisposeScope(); // LoadFromArrays copies: every tensor made here dies with the scope
        var images = new List<Tensor>();
        var masks = new List<Tensor>();
        for (int i = 0; i < n; i++)
        {
            images.Add(torch.rand([3, h, w], generator: g));
            masks.Add((torch.rand([1, h, w], generator: g) > 0.6).to(ScalarType.Float32));
        }
        return ctx.Data.LoadFromArrays(images, masks, Enumerable.Range(0, n).Select(i => $"r{i}").ToList());
    }

    [TestMethod]
    public void ResizeWorkout()
    {
        var ctx = new MedSegContext(seed: 1);
        using var data = Rows(ctx);
        EstimatorWorkout.Run(ctx, ctx.Data.Resize(6, 9), data, "Image", new WorkoutOptions { MoreRequiredColumns = ["Mask"] });
    }

    [TestMethod]
    public void ConvertChannelsWorkout()
    {
        var ctx = new MedSegContext(seed: 1);
        using var data = Rows(ctx);
        EstimatorWorkout.Run(ctx, ctx.Data.ConvertChannels(1), data, "Image");
    }

    [TestMethod]
    public void BinarizeMaskWorkout()
    {
        var ctx = new MedSegContext(seed: 1);
        using var data = Rows(ctx);
        EstimatorWorkout.Run(ctx, ctx.Data.BinarizeMask(0.5), data, "Mask");
    }

    [TestMethod]
    public void SamplePipelineSavesLoadsAndEvaluatesIdentically()
    {
        var ctx = new MedSegContext(seed: 3);
        string dir = Path.Combine(RepoRoot(), "data", "kvasir-seg-sample");
        var sample = ctx.Data.LoadImagesAndMasks(Path.Combine(dir, "images"), Path.Combine(dir, "masks"));
        var split = ctx.Data.TrainValidationTestSplit(sample, seed: 3);
        Assert.AreEqual(96L + 12 + 12, split.Train.CountRows() + split.Validation.CountRows() + split.Test.CountRows());

        var pipeline = ctx.Data.Resize(32, 32).Append(ctx.Data.ConvertChannels(1));
        using var model = pipeline.Fit(split.Train);
        string file = Path.Combine(Path.GetTempPath(), $"sample-pipeline-{Guid.NewGuid():N}.zip");
        try
        {
            ctx.Model.Save(model, split.Train.Schema, file);
            var loaded = ctx.Model.Load(file, out var inputSchema);
            Assert.AreEqual(split.Train.Schema.ToString(), inputSchema.ToString());
            var a = model.Transform(split.Test);
            var b = loaded.Transform(split.Test);
            using (var ca = a.GetRowCursor("Image", "Mask"))
            using (var cb = b.GetRowCursor("Image", "Mask"))
                while (ca.MoveNext())
                {
                    Assert.IsTrue(cb.MoveNext());
                    CollectionAssert.AreEqual(new long[] { 1, 32, 32 }, ca.GetTensor("Image").shape);
                    Assert.IsTrue(EstimatorWorkout.BitIdentical(ca.GetTensor("Image"), cb.GetTensor("Image"), out var d1), d1);
                    Assert.IsTrue(EstimatorWorkout.BitIdentical(ca.GetTensor("Mask"), cb.GetTensor("Mask"), out var d2), d2);
                }
            // a trivial "prediction" (the ground truth itself) evaluates to perfect scores through the same view
            var result = DataViewEvaluation.EvaluateBinary(ctx, b, "Mask", "Mask");
            MetricsAssert.AtLeast(result, dice: 1.0, iou: 1.0);
            (loaded as IDisposable)?.Dispose();
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "MLNetMedSeg.sln"))) return d.FullName;
        throw new DirectoryNotFoundException($"no MLNetMedSeg.sln above {AppContext.BaseDirectory}");
    }
}
