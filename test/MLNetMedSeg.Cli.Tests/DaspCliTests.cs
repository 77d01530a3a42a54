using System.Text.Json;
using Microsoft.ML;
using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Cli.Tests;

[TestClass]
public sealed class DaspCliTests : CliTestBase
{
    /// <summary>16×16 images with a disc of radius 3–4.</summary>
    private static readonly DiscSpec Small16 = new(16, 16, 5, 11, 5, 11, 3, 5, 190, 70, 20);

    [TestMethod]
    public void Dasp_WithTrainedGenerators_OverSeveralSeeds_ReportsMeanSdAndThePairedLine()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 10, seed: 4, Small16);
        string gen = Path.Combine(_dir, "gen.zip");
        var (code, _, stderr) = Medseg("generate", "--data", data, "--size", "16", "--epochs", "1", "--mask-steps", "20", "--image-steps", "20",
            "--sample-steps", "4", "--count", "2", "--batch", "4", "--seed", "1", "--out", Path.Combine(_dir, "drawn"), "--save-model", gen);
        Assert.AreEqual(0, code, stderr);

        string run = Path.Combine(_dir, "seeds");
        string stdout;
        (code, stdout, stderr) = Medseg("dasp", "--data", data, "--size", "16", "--widths", "4,8", "--epochs", "2", "--batch", "4", "--lr", "0.03",
            "--generators", gen, "--synthetic", "2", "--seeds", "1,2", "--robustness", "false", "--methods", "noaug,generated", "--test-fraction", "0.2", "--out", run);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stderr, "using the generators of");
        StringAssert.Contains(stderr, "training seed 2 (2 of 2)");
        // Every seed's steps are shown; the second seed reuses the pairs the first one drew from the same generators.
        StringAssert.Contains(stderr, "[DASP] 3/4 generating 2 pairs per real image");
        StringAssert.Contains(stderr, "[DASP] 3/4 reusing the 16 pairs drawn before");
        StringAssert.Contains(stdout, "over 2 training seeds (1, 2)");
        StringAssert.Contains(stdout, "| generated |");
        StringAssert.Contains(stdout, "generated − noaug:");
        var summary = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "seeds.json"))).RootElement;
        CollectionAssert.AreEqual(new[] { 1, 2 }, summary.GetProperty("seeds").EnumerateArray().Select(e => e.GetInt32()).ToArray());
        foreach (var m in summary.GetProperty("methods").EnumerateArray())
        {
            Assert.AreEqual(2, m.GetProperty("runs").GetInt32());
            Assert.IsTrue(m.GetProperty("mDice_sd").GetDouble() >= 0);
        }
        var paired = summary.GetProperty("paired").EnumerateArray().Single();
        Assert.AreEqual(2, paired.GetProperty("images").GetInt32(), "the 2 held-out images of the 10");
        var first = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "metrics.json"))).RootElement;
        Assert.AreEqual(0.0, first.GetProperty("generator_seconds").GetDouble(), "no diffusion model was trained");

        // The same comparison split over processes (seed 1 whole; seed 2's methods one each) and joined with
        // dasp-summary gives the joint run's scores, per-image Dice and paired line (the joint run drew the generated
        // pairs once for both seeds; each part draws its own).
        string[] common = ["dasp", "--data", data, "--size", "16", "--widths", "4,8", "--epochs", "2", "--batch", "4", "--lr", "0.03",
            "--generators", gen, "--synthetic", "2", "--robustness", "false", "--test-fraction", "0.2"];
        string[] parts = [Path.Combine(_dir, "p1"), Path.Combine(_dir, "p2a"), Path.Combine(_dir, "p2b")];
        foreach (var (dir, s, m) in new[] { (parts[0], "1", "noaug,generated"), (parts[1], "2", "noaug"), (parts[2], "2", "generated") })
        {
            (code, _, stderr) = Medseg([.. common, "--seeds", s, "--methods", m, "--out", dir]);
            Assert.AreEqual(0, code, stderr);
        }
        string joinedDir = Path.Combine(_dir, "joined");
        (code, stdout, stderr) = Medseg(["dasp-summary", .. parts, "--out", joinedDir]);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "over 2 training seeds (1, 2)");
        var joined = JsonDocument.Parse(File.ReadAllText(Path.Combine(joinedDir, "seeds.json"))).RootElement;
        foreach (var (a, b) in summary.GetProperty("methods").EnumerateArray().Zip(joined.GetProperty("methods").EnumerateArray()))
        {
            Assert.AreEqual(a.GetProperty("method").GetString(), b.GetProperty("method").GetString());
            Assert.AreEqual(a.GetProperty("mDice").GetDouble(), b.GetProperty("mDice").GetDouble(), 1e-9, a.GetProperty("method").GetString());
            Assert.AreEqual(a.GetProperty("mDice_sd").GetDouble(), b.GetProperty("mDice_sd").GetDouble(), 1e-9);
        }
        Assert.AreEqual(paired.GetProperty("line").GetString(), joined.GetProperty("paired").EnumerateArray().Single().GetProperty("line").GetString());
        // Joining a part twice names the clash; a folder without runs.json is named.
        (code, _, stderr) = Medseg("dasp-summary", parts[0], parts[0], "--out", Path.Combine(_dir, "bad"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "seed 1: method 'noaug' appears in more than one run");
        (code, _, stderr) = Medseg("dasp-summary", data, "--out", Path.Combine(_dir, "bad"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "no runs.json there");

        // A separate held-out folder: every --data pair trains, the --test pairs are scored.
        string held = Path.Combine(_dir, "held");
        MakeData(held, 3, seed: 9, Small16);
        string run2 = Path.Combine(_dir, "heldout");
        (code, _, stderr) = Medseg("dasp", "--data", data, "--test", held, "--size", "16", "--widths", "4,8", "--epochs", "1", "--batch", "4",
            "--robustness", "false", "--methods", "noaug", "--out", run2);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stderr, "10 training pairs, 3 held out");

        // Generators at another size are refused, naming the size to use.
        (code, _, stderr) = Medseg("dasp", "--data", data, "--size", "24", "--generators", gen, "--methods", "generated", "--out", Path.Combine(_dir, "bad"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "run with --size 16");
        (code, _, stderr) = Medseg("dasp", "--data", data, "--seeds", "1,x", "--out", Path.Combine(_dir, "bad"));
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(stderr, "--seeds: 'x' is not an integer");
    }

    [TestMethod]
    public void Dasp_RunsTheFlow_WritesMetricsTableFiguresAndAModelThatPredicts()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 10, seed: 3, Small16);
        string run = Path.Combine(_dir, "run");
        var (code, stdout, stderr) = Medseg("dasp", "--data", data, "--size", "16", "--widths", "4,8", "--epochs", "3", "--batch", "4", "--lr", "0.03",
            "--diffusion-epochs", "1", "--diffusion-width", "8", "--timesteps", "20", "--sample-steps", "4", "--attack-steps", "2", "--sdedit-steps", "10",
            "--sdedit-depth", "2", "--attack-every", "1", "--methods", "noaug,sdedit,dasp", "--test-fraction", "0.2", "--out", run);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "| dasp |");

        var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "metrics.json"))).RootElement;
        Assert.IsTrue(metrics.GetProperty("mDice").GetDouble() is >= 0 and <= 1);
        Assert.IsTrue(metrics.GetProperty("mIoU").GetDouble() is >= 0 and <= 1);
        var rows = metrics.GetProperty("methods").EnumerateArray().Select(r => r.GetProperty("method").GetString()).ToArray();
        CollectionAssert.AreEqual(new[] { "noaug", "sdedit", "dasp" }, rows);
        Assert.IsTrue(metrics.GetProperty("generator_seconds").GetDouble() > 0);
        var table = File.ReadAllText(Path.Combine(run, "comparison.md"));
        StringAssert.Contains(table, "| noaug |");
        StringAssert.Contains(table, "ε = 0.2");
        foreach (var r in metrics.GetProperty("methods").EnumerateArray())
            Assert.AreEqual(5, r.GetProperty("fgsm_robustness").GetArrayLength());
        Assert.IsTrue(File.Exists(Path.Combine(run, "figures", "dasp_samples.png")));
        Assert.IsTrue(File.Exists(Path.Combine(run, "dasp_evaluation.json")));

        // The saved flow is an ML.NET model: LoadImages → ResizeImages → the flow, read from an ImagePath.
        var loaded = new MLContext().Model.Load(Path.Combine(run, "model.zip"), out var inputSchema);
        CollectionAssert.AreEqual(new[] { "ImageLoadingTransformer", "ImageResizingTransformer", "DaspTransformer" },
            ((IEnumerable<ITransformer>)loaded).Select(t => t.GetType().Name).ToArray());
        Assert.AreEqual("ImagePath", string.Join(",", inputSchema.Select(c => c.Name)));
        (loaded as IDisposable)?.Dispose();

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

        // ... and 'generate' draws pairs from its two diffusion models (the image model conditioned on the generated masks),
        // the same pairs on a second run.
        string gen1 = Path.Combine(_dir, "gen1"), gen2 = Path.Combine(_dir, "gen2");
        (code, stdout, stderr) = Medseg("generate", "--model", Path.Combine(run, "model.zip"), "--count", "3", "--out", gen1);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "generated 3 pairs");
        (code, _, stderr) = Medseg("generate", "--model", Path.Combine(run, "model.zip"), "--count", "3", "--out", gen2);
        Assert.AreEqual(0, code, stderr);
        foreach (var kind in new[] { "images", "masks" })
        {
            var files = Directory.GetFiles(Path.Combine(gen1, kind), "*.png").Select(Path.GetFileName).Order().ToArray();
            Assert.AreEqual(3, files.Length, kind);
            foreach (var f in files)
            {
                var a = MLNetMedSeg.Imaging.ImageIO.Read(Path.Combine(gen1, kind, f!));
                Assert.AreEqual((16, 16), (a.Width, a.Height), $"{kind}/{f}");
                CollectionAssert.AreEqual(a.Pixels8, MLNetMedSeg.Imaging.ImageIO.Read(Path.Combine(gen2, kind, f!)).Pixels8, $"{kind}/{f}");
            }
        }
    }

    [TestMethod]
    public void Dasp_WithTheCdalBackbone_RunsEndToEnd_AndSavesACdalFlow()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 8, seed: 5, Small16);
        string run = Path.Combine(_dir, "cdal");
        var (code, stdout, stderr) = Medseg("dasp", "--data", data, "--size", "16", "--backbone", "cdal", "--epochs", "1", "--batch", "4",
            "--cdal-timesteps", "2", "--samples", "2", "--attention-scale", "8", "--latent-dim", "16",
            "--diffusion-epochs", "1", "--diffusion-width", "8", "--timesteps", "20", "--sample-steps", "4", "--attack-steps", "1", "--sdedit-steps", "10",
            "--sdedit-depth", "2", "--attack-every", "1", "--robustness", "false", "--test-fraction", "0.25", "--out", run);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "| dasp |");
        var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "metrics.json"))).RootElement;
        CollectionAssert.AreEqual(new[] { "noaug", "dasp" }, metrics.GetProperty("methods").EnumerateArray().Select(r => r.GetProperty("method").GetString()).ToArray(),
            "cDAL's default comparison leaves out 'basic'");
        Assert.IsTrue(metrics.GetProperty("mDice").GetDouble() is >= 0 and <= 1);

        var loaded = new MLContext().Model.Load(Path.Combine(run, "model.zip"), out _);
        var flow = ((IEnumerable<ITransformer>)loaded).OfType<MLNetMedSeg.Dasp.DaspTransformer>().Single();
        Assert.IsInstanceOfType<MLNetMedSeg.Segmentation.Cdal.CdalTransformer>(flow.Segmenter);
        (loaded as IDisposable)?.Dispose();
        string masks = Path.Combine(_dir, "cdal-pred");
        (code, _, stderr) = Medseg("predict", "--model", Path.Combine(run, "model.zip"), "--images", Path.Combine(data, "images"), "--out", masks);
        Assert.AreEqual(0, code, stderr);
        Assert.AreEqual(8, Directory.GetFiles(masks, "*.png").Length);

        (code, _, stderr) = Medseg("dasp", "--data", data, "--size", "16", "--backbone", "cdal", "--methods", "noaug,basic", "--out", Path.Combine(_dir, "bad"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "'basic'");
    }

    [TestMethod]
    public void Dasp_BadArguments_FailClearly()
    {
        var (code, _, stderr) = Medseg("dasp", "--data", Path.Combine(_dir, "missing"), "--out", Path.Combine(_dir, "run"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "missing");
        string data = Path.Combine(_dir, "data");
        MakeData(data, 2, seed: 1, Small16);
        (code, _, stderr) = Medseg("dasp", "--data", data, "--methods", "noaug,magic", "--out", Path.Combine(_dir, "run"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "magic");
        (code, _, stderr) = Medseg("dasp", "--data", data, "--size", "20", "--out", Path.Combine(_dir, "run"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--size");
    }
}
