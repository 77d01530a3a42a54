using System.Text.Json;
using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>train → deform-attack on a tiny synthetic folder: every output is written and report.json has its fields.</summary>
[TestClass]
public sealed class DeformAttackCliTests : CliTestBase
{
    [TestMethod]
    public void DeformAttack_WritesImagesMasksFieldsFigureAndReport()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 6, seed: 2);
        string model = Path.Combine(_dir, "seg.zip");
        var (code, _, stderr) = Medseg("train", "--data", data, "--size", "16", "--epochs", "1", "--batch", "4", "--val-fraction", "0", "--out", model);
        Assert.AreEqual(0, code, stderr);

        string outDir = Path.Combine(_dir, "attack");
        (code, var stdout, stderr) = Medseg("deform-attack", "--model", model, "--data", data, "--xi", "1.5", "--epochs", "1",
            "--samples", "2", "--batch", "4", "--figure-rows", "3", "--out", outDir);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stderr, "at 16x16", "the size comes from the model's resize");
        StringAssert.Contains(stdout, "ξ = 1.5");

        foreach (var sub in new[] { "attacked", "deformed-masks", "deformation", "intensity" })
        {
            var files = Directory.GetFiles(Path.Combine(outDir, sub)).Select(Path.GetFileName).Order().ToArray();
            Assert.AreEqual(12, files.Length, sub);
            Assert.AreEqual("case00_s0.png", files[0], sub);
        }
        var mask = ImageIO.Read(Path.Combine(outDir, "deformed-masks", "case03_s1.png"));
        Assert.IsTrue(mask.Pixels8!.All(v => v is 0 or 255), "deformed masks stay binary");
        var flow = ImageIO.Read(Path.Combine(outDir, "deformation", "case00_s0.png"));
        Assert.AreEqual((16, 16, 3), (flow.Width, flow.Height, flow.Channels));
        var fig = ImageIO.Read(Path.Combine(outDir, "figure.png"));
        Assert.AreEqual((7 * 16 + 6 * 2, 3 * 16 + 2 * 2), (fig.Width, fig.Height), "3 rows of I0, S_GT, S0, I_DV, V, D, S_DV");

        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "report.json")));
        var root = doc.RootElement;
        foreach (var f in new[] { "dice_before", "dice_after", "success_rate", "p" })
            Assert.AreEqual(JsonValueKind.Number, root.GetProperty(f).ValueKind, f);
        Assert.AreEqual(1.5, root.GetProperty("xi").GetDouble());
        Assert.AreEqual(6, root.GetProperty("images").GetInt32());
        var perClass = root.GetProperty("per_class");
        Assert.AreEqual(1, perClass.GetArrayLength());
        Assert.AreEqual(root.GetProperty("dice_before").GetDouble(), perClass[0].GetProperty("dice_before").GetDouble(), 1e-12);
    }

    [TestMethod]
    public void DeformAttack_MissingModel_IsAnError()
    {
        var (code, _, stderr) = Medseg("deform-attack", "--model", Path.Combine(_dir, "none.zip"), "--data", _dir, "--xi", "1", "--out", _dir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "none.zip");
    }
}
