using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Testing;
using static MLNetMedSeg.Core.Scalars;

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
            masks.Add((torch.rand([1, h, w], generator: g) > S(0.6)).to(ScalarType.Float32));
        }
        return DataViews.LoadFromArrays(ctx, images, masks, Enumerable.Range(0, n).Select(i => $"r{i}").ToList());
    }

    [TestMethod]
    public void ResizeWorkout()
    {
        var ctx = new MedSegContext(seed: 1);
        using var data = Rows(ctx);
        EstimatorWorkout.Run(ctx, EngineTransforms.Resize(6, 9), data, "Image", new WorkoutOptions { MoreRequiredColumns = ["Mask"] });
    }

    [TestMethod]
    public void ConvertChannelsWorkout()
    {
        var ctx = new MedSegContext(seed: 1);
        using var data = Rows(ctx);
        EstimatorWorkout.Run(ctx, EngineTransforms.ConvertChannels(1), data, "Image");
    }

    [TestMethod]
    public void BinarizeMaskWorkout()
    {
        var ctx = new MedSegContext(seed: 1);
        using var data = Rows(ctx);
        EstimatorWorkout.Run(ctx, EngineTransforms.BinarizeMask(0.5), data, "Mask");
    }
}
