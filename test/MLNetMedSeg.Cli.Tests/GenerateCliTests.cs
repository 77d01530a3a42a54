using System.IO.Compression;
using Microsoft.ML;
using MLNetMedSeg.Imaging;
using TorchSharp;

namespace MLNetMedSeg.Cli.Tests;

/// <summary><c>medseg generate</c> at a tiny size: train both diffusion models, save, reload, generate the same pairs.</summary>
[TestClass]
public sealed class GenerateCliTests : OneThreadCliTestBase
{
    private static byte[] Pixels(string path) => ImageIO.Read(path).Pixels8!;

    [TestMethod]
    public void TrainSaveGenerateThenLoadGeneratesTheSamePairs()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 8, seed: 3, new DiscSpec(24, 24, 8, 16, 8, 16, 3, 7, 200, 60, 20));
        string gen = Path.Combine(_dir, "gen.zip"), out1 = Path.Combine(_dir, "out1"), out2 = Path.Combine(_dir, "out2");
        var (code, stdout, stderr) = Medseg("generate", "--data", data, "--size", "16", "--epochs", "1", "--mask-steps", "20",
            "--image-steps", "20", "--sampler", "ddim", "--sample-steps", "4", "--count", "5", "--batch", "4", "--seed", "2",
            "--out", out1, "--save-model", gen);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "generated 5 pairs");
        StringAssert.Contains(stderr, "mask diffusion epoch 1");
        Assert.IsTrue(File.Exists(gen));
        var names = Directory.GetFiles(Path.Combine(out1, "masks")).Select(f => Path.GetFileName(f)).Order().ToArray();
        CollectionAssert.AreEqual(Enumerable.Range(0, 5).Select(i => $"pair{i:D4}.png").ToArray(), names);
        CollectionAssert.AreEqual(names, Directory.GetFiles(Path.Combine(out1, "images")).Select(Path.GetFileName).Order().ToArray());
        var m = ImageIO.Read(Path.Combine(out1, "masks", "pair0000.png"));
        Assert.AreEqual((16, 16, 1), (m.Width, m.Height, m.Channels));
        Assert.IsTrue(m.Pixels8!.All(v => v is 0 or 255), "binary 0/255 masks");
        var im = ImageIO.Read(Path.Combine(out1, "images", "pair0000.png"));
        Assert.AreEqual((16, 16, 3), (im.Width, im.Height, im.Channels));
        // grid.png: 4 columns of (mask | 2 px | image) pairs, 2 rows for 5 pairs, 2 px borders.
        var grid = ImageIO.Read(Path.Combine(out1, "grid.png"));
        Assert.AreEqual((2 + 4 * (34 + 2), 2 + 2 * (16 + 2)), (grid.Width, grid.Height));

        // The generator file is an ML.NET model: mask diffusion, then image diffusion.
        var loaded = new MLContext().Model.Load(gen, out var inputSchema);
        CollectionAssert.AreEqual(new[] { "MaskDiffusionTransformer", "ImageDiffusionTransformer" },
            ((IEnumerable<ITransformer>)loaded).Select(t => t.GetType().Name).ToArray());
        Assert.AreEqual("Id", string.Join(",", inputSchema.Select(c => c.Name)));
        (loaded as IDisposable)?.Dispose();

        (code, stdout, stderr) = Medseg("generate", "--model", gen, "--count", "5", "--out", out2);
        Assert.AreEqual(0, code, stderr);
        foreach (var n in names.Select(v => v!))
        {
            CollectionAssert.AreEqual(Pixels(Path.Combine(out1, "masks", n)), Pixels(Path.Combine(out2, "masks", n)), $"mask {n}");
            CollectionAssert.AreEqual(Pixels(Path.Combine(out1, "images", n)), Pixels(Path.Combine(out2, "images", n)), $"image {n}");
        }
    }

    [TestMethod]
    public void TheShippedGenerators_LoadInMLNet_AndDrawPolypSizedMasksWithEndoscopyImages()
    {
        // data/models/kvasir-64-generators.zip (data/models/README.md): an ML.NET model file that ml.Model.Load and
        // 'medseg generate --model' accept, drawing 64×64 pairs.
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "MLNetMedSeg.sln"))) dir = dir.Parent;
        Assert.IsNotNull(dir, "the repository root (MLNetMedSeg.sln) above the test binaries");
        string model = Path.Combine(dir.FullName, "data", "models", "kvasir-64-generators.zip");
        Assert.IsTrue(File.Exists(model), $"{model} is shipped");
        var loaded = new MLContext().Model.Load(model, out var inputSchema);
        CollectionAssert.AreEqual(new[] { "MaskDiffusionTransformer", "ImageDiffusionTransformer" },
            ((IEnumerable<ITransformer>)loaded).Select(t => t.GetType().Name).ToArray());
        Assert.AreEqual("Id", string.Join(",", inputSchema.Select(c => c.Name)));
        (loaded as IDisposable)?.Dispose();

        string drawn = Path.Combine(_dir, "drawn");
        var (code, stdout, stderr) = Medseg("generate", "--model", model, "--count", "4", "--out", drawn);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "generated 4 pairs");
        int polypSized = 0;
        foreach (var n in Enumerable.Range(0, 4).Select(i => $"pair{i:D4}.png"))
        {
            var mask = ImageIO.Read(Path.Combine(drawn, "masks", n));
            var image = ImageIO.Read(Path.Combine(drawn, "images", n));
            Assert.AreEqual((64, 64, 64, 64), (mask.Width, mask.Height, image.Width, image.Height), n);
            Assert.IsTrue(mask.Pixels8!.All(v => v is 0 or 255), $"{n}: binary mask");
            double fraction = mask.Pixels8!.Count(v => v == 255) / (64.0 * 64);
            if (fraction is > 0.005 and < 0.6) polypSized++;
            // Not noise: an endoscopy frame has a dark border (the scope's field of view) around a brighter centre, and
            // neighbouring pixels agree far more than in noise.
            var px = image.Pixels8!;
            double Lum(int x, int y) => (px[(y * 64 + x) * 3] + px[(y * 64 + x) * 3 + 1] + px[(y * 64 + x) * 3 + 2]) / 3.0;
            double corners = new[] { Lum(1, 1), Lum(62, 1), Lum(1, 62), Lum(62, 62) }.Min();
            double centre = Enumerable.Range(24, 16).SelectMany(y => Enumerable.Range(24, 16).Select(x => Lum(x, y))).Average();
            Assert.IsTrue(centre > corners + 20, $"{n}: centre {centre:F0} vs darkest corner {corners:F0}");
            double neighbour = Enumerable.Range(0, 64).SelectMany(y => Enumerable.Range(0, 63).Select(x => Math.Abs(Lum(x + 1, y) - Lum(x, y)))).Average();
            Assert.IsTrue(neighbour < 20, $"{n}: mean neighbour difference {neighbour:F1} grey levels (noise: ~40)");
        }
        Assert.IsTrue(polypSized >= 3, $"{polypSized} of 4 masks cover 0.5–60 % of the image");
    }

    /// <summary>The safetensors entries of a model zip (name → bytes): the weights, without the options and training history.</summary>
    private static SortedDictionary<string, byte[]> Weights(string zip)
    {
        using var archive = ZipFile.OpenRead(zip);
        var result = new SortedDictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var e in archive.Entries.Where(e => e.FullName.EndsWith(".safetensors", StringComparison.Ordinal)))
        {
            using var s = e.Open();
            using var m = new MemoryStream();
            s.CopyTo(m);
            result[e.FullName] = m.ToArray();
        }
        return result;
    }

    private static string[] GenerateArgs(string data, int epochs, string outDir, string zip, params string[] more) =>
        ["generate", "--data", data, "--size", "16", "--epochs", epochs.ToString(System.Globalization.CultureInfo.InvariantCulture),
         "--mask-steps", "20", "--image-steps", "20", "--sample-steps", "4", "--count", "3", "--batch", "4", "--seed", "5",
         "--out", outDir, "--save-model", zip, .. more];

    [TestMethod]
    public void CheckpointedRunInterruptedAfterOneEpochThenResumedGivesTheStraightRunsModel()
    {
        string data = Path.Combine(_dir, "data"), ck = Path.Combine(_dir, "ck");
        MakeData(data, 6, seed: 4, new DiscSpec(16, 16, 5, 11, 5, 11, 2, 5, 200, 60, 20));

        // Straight: 2 epochs, no checkpoints, no grids.
        string straight = Path.Combine(_dir, "straight.zip");
        var (code, _, stderr) = Medseg(GenerateArgs(data, 2, Path.Combine(_dir, "o1"), straight));
        Assert.AreEqual(0, code, stderr);

        // Interrupted: 1 epoch with checkpoints (and grids every epoch), then the same command with --epochs 2.
        string first = Path.Combine(_dir, "first.zip"), resumed = Path.Combine(_dir, "resumed.zip");
        (code, _, stderr) = Medseg(GenerateArgs(data, 1, Path.Combine(_dir, "o2"), first, "--checkpoints", ck, "--sample-grid-every", "1"));
        Assert.AreEqual(0, code, stderr);
        foreach (var m in new[] { "mask-diffusion", "image-diffusion" })
            Assert.IsTrue(File.Exists(Path.Combine(ck, m, "checkpoint.json")), $"{m} checkpoint after epoch 1");
        Assert.IsTrue(File.Exists(Path.Combine(ck, "mask-diffusion", "grids", "final.png")), "mask grid after training");
        Assert.IsTrue(File.Exists(Path.Combine(ck, "image-diffusion", "grids", "grid_final.png")), "image grid after training");
        CollectionAssert.AreNotEqual(Weights(straight).Values.SelectMany(b => b).ToArray(), Weights(first).Values.SelectMany(b => b).ToArray(),
            "one epoch is not two (else the comparison below proves nothing)");

        (code, _, stderr) = Medseg(GenerateArgs(data, 2, Path.Combine(_dir, "o3"), resumed, "--checkpoints", ck, "--sample-grid-every", "1"));
        Assert.AreEqual(0, code, stderr);
        Assert.IsFalse(stderr.Contains("mask diffusion epoch 1:", StringComparison.Ordinal), "epoch 1 is not trained again: " + stderr);
        StringAssert.Contains(stderr, "mask diffusion epoch 2:");
        StringAssert.Contains(stderr, "image diffusion epoch 2:");
        var a = Weights(straight);
        var b = Weights(resumed);
        CollectionAssert.AreEqual(a.Keys.ToArray(), b.Keys.ToArray());
        foreach (var k in a.Keys) CollectionAssert.AreEqual(a[k], b[k], $"weights {k}: resumed run = straight run");
        foreach (var f in Directory.GetFiles(Path.Combine(_dir, "o1", "images")).Select(Path.GetFileName))
        {
            CollectionAssert.AreEqual(Pixels(Path.Combine(_dir, "o1", "images", f!)), Pixels(Path.Combine(_dir, "o3", "images", f!)), $"image {f}");
            CollectionAssert.AreEqual(Pixels(Path.Combine(_dir, "o1", "masks", f!)), Pixels(Path.Combine(_dir, "o3", "masks", f!)), $"mask {f}");
        }

        // A finished model's checkpoint: the same command trains no step and gives the same model.
        string again = Path.Combine(_dir, "again.zip");
        (code, _, stderr) = Medseg(GenerateArgs(data, 2, Path.Combine(_dir, "o4"), again, "--checkpoints", ck, "--sample-grid-every", "1"));
        Assert.AreEqual(0, code, stderr);
        Assert.IsFalse(stderr.Contains("diffusion epoch", StringComparison.Ordinal), "no epoch is trained: " + stderr);
        var c = Weights(again);
        foreach (var k in a.Keys) CollectionAssert.AreEqual(a[k], c[k], $"weights {k}: finished checkpoint = straight run");

        // Other options than the checkpoint's: a clear error, nothing overwritten.
        (code, _, stderr) = Medseg(["generate", "--data", data, "--size", "16", "--epochs", "2", "--mask-steps", "30", "--image-steps", "20",
            "--sample-steps", "4", "--count", "1", "--batch", "4", "--seed", "5", "--out", Path.Combine(_dir, "o5"), "--checkpoints", ck, "--sample-grid-every", "1"]);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "other options");
    }

    [TestMethod]
    public void UsageErrors()
    {
        var (code, _, stderr) = Medseg("generate", "--model", "a.zip", "--save-model", "b.zip", "--count", "2", "--out", _dir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--save-model");
        (code, _, stderr) = Medseg("generate", "--count", "2", "--out", _dir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--data");
        (code, _, stderr) = Medseg("generate", "--model", Path.Combine(_dir, "missing.zip"), "--count", "2", "--out", _dir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "missing.zip");
        (code, _, _) = Medseg("generate", "--data", _dir, "--out", _dir);
        Assert.AreEqual(2, code, "--count is required");
        (code, _, stderr) = Medseg("generate", "--data", _dir, "--count", "2", "--out", _dir, "--sampler", "euler");
        Assert.AreEqual(2, code, stderr);
        (code, _, stderr) = Medseg("generate", "--model", "a.zip", "--checkpoints", _dir, "--count", "2", "--out", _dir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--checkpoints");
        (code, _, stderr) = Medseg("generate", "--data", _dir, "--sample-grid-every", "-1", "--count", "2", "--out", _dir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--sample-grid-every");
        (code, _, stderr) = Medseg("generate", "--data", _dir, "--image-lr", "0", "--count", "2", "--out", _dir);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--image-lr");
    }
}
