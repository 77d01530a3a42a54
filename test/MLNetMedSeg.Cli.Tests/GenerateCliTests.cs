using Microsoft.ML;
using MLNetMedSeg.Imaging;
using TorchSharp;

namespace MLNetMedSeg.Cli.Tests;

/// <summary><c>medseg generate</c> at a tiny size: train both diffusion models, save, reload, generate the same pairs.</summary>
[TestClass]
public sealed class GenerateCliTests : CliTestBase
{
    private static int _threads;

    /// <summary>One libtorch thread (restored afterwards): tiny networks, shared 2-core machines.</summary>
    [ClassInitialize]
    public static void OneThread(TestContext _)
    {
        _threads = torch.get_num_threads();
        torch.set_num_threads(1);
    }

    [ClassCleanup(ClassCleanupBehavior.EndOfClass)]
    public static void RestoreThreads() => torch.set_num_threads(_threads);

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
    }
}
