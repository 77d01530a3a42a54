using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Testing;

namespace ModelTests;

/// <summary>
/// Acceptance test of a saved segmentation model: its mean Dice on a folder of image/mask pairs must reach a bar.
/// Settings come from runsettings parameters (<c>dotnet test -- TestRunParameters.Parameter(name="Model", value="…")</c>)
/// or, failing that, from environment variables:
/// <list type="table">
/// <item><term>Model / MEDSEG_MODEL</term><description>the model file (ml.Model.Save / ml.MedSeg().SaveModel)</description></item>
/// <item><term>Images / MEDSEG_EVAL_IMAGES</term><description>the folder of images</description></item>
/// <item><term>Masks / MEDSEG_EVAL_MASKS</term><description>the folder of masks, matched to the images by file name</description></item>
/// <item><term>MinDice / MEDSEG_MIN_DICE</term><description>the bar for the per-image mean Dice (default 0.8)</description></item>
/// </list>
/// </summary>
[TestClass]
public sealed class ModelEvaluationTests
{
    /// <summary>Set by MSTest: the runsettings parameters and the test's log.</summary>
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void SavedModel_ReachesTheDiceBar_OnTheHeldOutPairs()
    {
        string modelPath = Setting("Model", "MEDSEG_MODEL");
        string images = Setting("Images", "MEDSEG_EVAL_IMAGES");
        string masks = Setting("Masks", "MEDSEG_EVAL_MASKS");
        string bar = Setting("MinDice", "MEDSEG_MIN_DICE", "0.8");
        if (!double.TryParse(bar, NumberStyles.Float, CultureInfo.InvariantCulture, out double minDice) || double.IsNaN(minDice))
            Assert.Fail($"MinDice / MEDSEG_MIN_DICE must be a number, got '{bar}'");

        var ml = new MLContext(seed: 1);
        var model = ml.MedSeg().LoadModel(modelPath, out _);
        var pairs = ml.MedSeg().Data.LoadImageMaskPairs(images, masks);

        // Ground-truth masks at the size the model predicts (its Probability column is float [1,H,W]).
        var probability = model.GetOutputSchema(pairs.Schema).GetColumnOrNull("Probability");
        Assert.IsTrue(probability?.Type is VectorDataViewType { Dimensions.Length: 3 } v && v.Dimensions[0] == 1,
            $"'{modelPath}' has no binary segmentation output (a 'Probability' column [1,H,W]); its output columns: " +
            string.Join(", ", model.GetOutputSchema(pairs.Schema).Select(c => $"{c.Name} {c.Type}")));
        var dims = ((VectorDataViewType)probability!.Value.Type).Dimensions;
        var data = ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", imageWidth: dims[2], imageHeight: dims[1])
            .Fit(pairs).Transform(pairs);

        var metrics = ml.MedSeg().Evaluate(model.Transform(data), labelColumnName: "Mask", scoreColumnName: "Probability");

        TestContext.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"model {modelPath}: {metrics.ImageCount} pair(s) at {dims[2]}x{dims[1]}, mDice {metrics.MeanDice:F4}, mIoU {metrics.MeanIoU:F4} (bar: mDice >= {minDice})"));
        TestContext.WriteLine(metrics.ToMarkdown());
        Assert.AreEqual(pairs.GetColumn<string>("Id").Count(), metrics.ImageCount, "every pair is scored");
        MetricsAssert.AtLeast(metrics, dice: minDice);
    }

    /// <summary>A runsettings parameter, else an environment variable, else <paramref name="fallback"/>, else a clear failure.</summary>
    private string Setting(string parameter, string variable, string? fallback = null)
    {
        if (TestContext.Properties[parameter] is string s && s.Length > 0) return s;
        string? e = Environment.GetEnvironmentVariable(variable);
        if (!string.IsNullOrEmpty(e)) return e;
        if (fallback is not null) return fallback;
        Assert.Fail($"set the runsettings parameter '{parameter}' or the environment variable {variable} (see README.md)");
        return "";
    }
}
