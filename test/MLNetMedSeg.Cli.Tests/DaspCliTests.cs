using System.Text.Json;
using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Cli.Tests;

[TestClass]
public sealed class DaspCliTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), $"medseg-cli-dasp-{Guid.NewGuid():N}"));

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    private static (int code, string stdout, string stderr) Medseg(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = MedsegCli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>n RGB 16×16 images with a bright disc and 0/255 masks of it.</summary>
    private static void MakeData(string dir, int n, int seed)
    {
        Directory.CreateDirectory(Path.Combine(dir, "images"));
        Directory.CreateDirectory(Path.Combine(dir, "masks"));
        var rng = new Random(seed);
        const int s = 16;
        for (int i = 0; i < n; i++)
        {
            int cx = rng.Next(5, 11), cy = rng.Next(5, 11), r = rng.Next(3, 5);
            var img = new byte[s * s * 3];
            var mask = new byte[s * s];
            for (int y = 0; y < s; y++)
                for (int x = 0; x < s; x++)
                {
                    bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
                    mask[y * s + x] = inside ? (byte)255 : (byte)0;
                    byte v = (byte)Math.Clamp((inside ? 190 : 70) + rng.Next(-20, 20), 0, 255);
                    img[(y * s + x) * 3] = v;
                    img[(y * s + x) * 3 + 1] = (byte)(v / 2);
                    img[(y * s + x) * 3 + 2] = (byte)(v / 3);
                }
            ImageIO.WritePng(Path.Combine(dir, "images", $"case{i:D2}.png"), img, s, s, 3);
            ImageIO.WritePng(Path.Combine(dir, "masks", $"case{i:D2}.png"), mask, s, s, 1);
        }
    }

    [TestMethod]
    public void Dasp_RunsTheFlow_WritesMetricsTableFiguresAndAModelThatPredicts()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 10, seed: 3);
        string run = Path.Combine(_dir, "run");
        var (code, stdout, stderr) = Medseg("dasp", "--data", data, "--size", "16", "--widths", "4,8", "--epochs", "3", "--batch", "4", "--lr", "0.03",
            "--diffusion-epochs", "1", "--diffusion-width", "8", "--timesteps", "20", "--sample-steps", "4", "--attack-steps", "2", "--sdedit-steps", "10",
            "--sdedit-depth", "2", "--attack-every", "1", "--methods", "noaug,dasp", "--test-fraction", "0.2", "--out", run);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "| dasp |");

        var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "metrics.json"))).RootElement;
        Assert.IsTrue(metrics.GetProperty("mDice").GetDouble() is >= 0 and <= 1);
        Assert.IsTrue(metrics.GetProperty("mIoU").GetDouble() is >= 0 and <= 1);
        var rows = metrics.GetProperty("methods").EnumerateArray().Select(r => r.GetProperty("method").GetString()).ToArray();
        CollectionAssert.AreEqual(new[] { "noaug", "dasp" }, rows);
        Assert.IsTrue(metrics.GetProperty("generator_seconds").GetDouble() > 0);
        var table = File.ReadAllText(Path.Combine(run, "comparison.md"));
        StringAssert.Contains(table, "| noaug |");
        StringAssert.Contains(table, "ε = 0.2");
        foreach (var r in metrics.GetProperty("methods").EnumerateArray())
            Assert.AreEqual(5, r.GetProperty("fgsm_robustness").GetArrayLength());
        Assert.IsTrue(File.Exists(Path.Combine(run, "figures", "dasp_samples.png")));
        Assert.IsTrue(File.Exists(Path.Combine(run, "dasp_evaluation.json")));

        // The saved flow loads in the other verbs: it predicts masks and serves as the SDEdit generator of 'attack'.
        string masks = Path.Combine(_dir, "pred");
        (code, _, stderr) = Medseg("predict", "--model", Path.Combine(run, "model.zip"), "--images", Path.Combine(data, "images"), "--out", masks);
        Assert.AreEqual(0, code, stderr);
        Assert.AreEqual(10, Directory.GetFiles(masks, "*.png").Length);
        (code, stdout, stderr) = Medseg("info", "--model", Path.Combine(run, "model.zip"));
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "MEDSEG.DASP");
        string attacked = Path.Combine(_dir, "attacked");
        (code, _, stderr) = Medseg("attack", "--model", Path.Combine(run, "model.zip"), "--generator", Path.Combine(run, "model.zip"), "--data", data,
            "--method", "dasp", "--steps", "2", "--sdedit-steps", "10", "--sdedit-depth", "2", "--out", attacked);
        Assert.AreEqual(0, code, stderr);
        Assert.AreEqual(10, Directory.GetFiles(Path.Combine(attacked, "images"), "*.png").Length);
    }

    [TestMethod]
    public void Dasp_BadArguments_FailClearly()
    {
        var (code, _, stderr) = Medseg("dasp", "--data", Path.Combine(_dir, "missing"), "--out", Path.Combine(_dir, "run"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "missing");
        string data = Path.Combine(_dir, "data");
        MakeData(data, 2, seed: 1);
        (code, _, stderr) = Medseg("dasp", "--data", data, "--methods", "noaug,magic", "--out", Path.Combine(_dir, "run"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "magic");
        (code, _, stderr) = Medseg("dasp", "--data", data, "--size", "20", "--out", Path.Combine(_dir, "run"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--size");
    }
}
