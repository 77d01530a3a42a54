namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// The runnable programs of examples/ (built beside the tests through project references), each run as a process at
/// a tiny size: they finish, write what their headers promise, and stop cleanly on Ctrl+C.
/// </summary>
[TestClass]
public sealed class ExamplesTests : CliTestBase
{
    private static void RunToTheEnd(ChildProcess program)
    {
        Assert.IsTrue(program.WaitForExit(TimeSpan.FromMinutes(5)), "did not finish within 5 minutes: " + program.Output);
        Assert.AreEqual(0, program.ExitCode, program.Output);
    }

    private static void AssertFiles(string dir, params string[] files)
    {
        foreach (var f in files)
            Assert.IsTrue(File.Exists(Path.Combine(dir, f)) || Directory.Exists(Path.Combine(dir, f)), $"{f} was not written in {dir}");
    }

    [TestMethod]
    public void ToySegmentation_TrainsAndWritesItsPredictions()
    {
        using var program = new ChildProcess("ToySegmentation.dll", "--epochs", "2", "--out", _dir);
        RunToTheEnd(program);
        AssertFiles(_dir, "predictions.png");
    }

    /// <summary>PolypSegmentation on 20 synthetic pairs at 16 px, writing _dir/run/.</summary>
    private ChildProcess StartPolypSegmentation(int epochs)
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 20, seed: 7);
        return new ChildProcess("PolypSegmentation.dll", "--data", data, "--size", "16", "--epochs", $"{epochs}", "--batch", "4",
            "--out", _dir, "--name", "run");
    }

    [TestMethod]
    public void PolypSegmentation_TrainsEvaluatesAndSavesAnMLNetModel()
    {
        using var program = StartPolypSegmentation(epochs: 2);
        RunToTheEnd(program);
        StringAssert.Contains(program.Output, "test mIoU");
        string run = Path.Combine(_dir, "run");
        AssertFiles(run, "metrics.json", "metrics.md", "metrics.csv", "loss_curve.png", "model.zip", "overlays");
        var ml = new Microsoft.ML.MLContext();
        using var model = (IDisposable)ml.Model.Load(Path.Combine(run, "model.zip"), out var schema);
        Assert.AreEqual("ImagePath", string.Join(",", schema.Select(c => c.Name)), "the saved model reads an image path");
    }

    [TestMethod]
    public void PolypSegmentation_CtrlC_StopsTraining_Exit130()
    {
        using var program = StartPolypSegmentation(epochs: 500);
        Assert.IsTrue(program.WaitForLine("epoch   1:", TimeSpan.FromMinutes(3)), "the first epoch did not finish: " + program.Output);
        program.Signal(2);
        Assert.IsTrue(program.WaitForExit(TimeSpan.FromSeconds(60)), "Ctrl+C did not stop it within a minute: " + program.Output);
        Assert.AreEqual(130, program.ExitCode, program.Output);
        StringAssert.Contains(program.Output, "cancelled");
        Assert.IsFalse(File.Exists(Path.Combine(_dir, "run", "model.zip")), "a cancelled run saves no model");
    }

    [TestMethod]
    public void SyntheticPairs_TrainsBothDiffusionModels_WritesPairsAndQuality()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 20, seed: 8);
        using var program = new ChildProcess("SyntheticPairs.dll", "--data", data, "--size", "16", "--mask-epochs", "1", "--image-epochs", "1",
            "--seg-epochs", "1", "--count", "2", "--sample-steps", "5", "--pairs", "8", "--out", _dir, "--name", "run");
        RunToTheEnd(program);
        string run = Path.Combine(_dir, "run");
        AssertFiles(run, "pairs.png", "quality.json", "grids", Path.Combine("generated", "images", "pair0001.png"), Path.Combine("generated", "masks", "pair0001.png"));
    }
}
