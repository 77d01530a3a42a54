using System.Text.Json;
using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>train → deform-attack on a tiny synthetic folder: every output is written and report.json has its fields.</summary>
[TestClass]
public sealed class DeformAttackCliTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init() => Directory.CreateDirectory(_dir = Path.Combine(Path.GetTempPath(), $"medseg-cli-deform-{Guid.NewGuid():N}"));

    [TestCleanup]
    public void Cleanup() => Directory.Delete(_dir, recursive: true);

    private static (int code, string stdout, string stderr) Medseg(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        int code = MedsegCli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    /// <summary>n RGB 20×24 images with a bright disc and its 0/255 mask.</summary>
    private static void MakeData(string dir, int n, int seed)
    {
        Directory.CreateDirectory(Path.Combine(dir, "images"));
        Directory.CreateDirectory(Path.Combine(dir, "masks"));
        var rng = new Random(seed);
        const int h = 20, w = 24;
        for (int i = 0; i < n; i++)
        {
            int cx = rng.Next(7, 17), cy = rng.Next(7, 13), r = rng.Next(3, 6);
            var img = new byte[h * w * 3];
            var mask = new byte[h * w];
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                {
                    bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
                    mask[y * w + x] = inside ? (byte)255 : (byte)0;
                    byte v = (byte)Math.Clamp((inside ? 190 : 70) + rng.Next(-30, 30), 0, 255);
                    img[(y * w + x) * 3] = v;
                    img[(y * w + x) * 3 + 1] = (byte)(v / 2);
                    img[(y * w + x) * 3 + 2] = (byte)(v / 3);
                }
            ImageIO.WritePng(Path.Combine(dir, "images", $"case{i:D2}.png"), img, w, h, 3);
            ImageIO.WritePng(Path.Combine(dir, "masks", $"case{i:D2}.png"), mask, w, h, 1);
        }
    }

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
