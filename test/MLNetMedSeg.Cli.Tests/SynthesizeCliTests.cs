using System.Text.Json.Nodes;
using Microsoft.ML;
using MLNetMedSeg.Imaging;
using TorchSharp;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// <c>medseg synthesize</c> at a tiny size (16 px, 1 epoch, T = 20): joint and repaint end to end (folders, names,
/// counts, binary 0/255 masks, quality.json, grid.png), --save-model then --model giving the same files, bad input named.
/// </summary>
[TestClass]
public sealed class SynthesizeCliTests : OneThreadCliTestBase
{
    private static readonly DiscSpec Discs = new(16, 16, 5, 11, 5, 11, 2, 5, 200, 60, 20);

    /// <summary>The options every run shares: 16 px, 1 epoch, T = 20, small ResNet-18 input for clusters and quality.</summary>
    private static string[] Args(string data, string method, string outDir, params string[] more) =>
        ["synthesize", "--data", data, "--method", method, "--per-image", "2", "--feature-size", "32", "--pairs", "10", "--seed", "3",
         "--repaint-steps", "6", "--jump-length", "2", "--jump-resamplings", "2", "--sample-steps", "4", "--out", outDir, .. more];

    private static readonly string[] Train = ["--size", "16", "--epochs", "1", "--diffusion-steps", "20", "--batch", "4"];

    private static byte[] Pixels(string path) => ImageIO.Read(path).Pixels8!;

    /// <summary>Checks the output folder: ID_J names for 6 real images × 2, binary 16 px masks, RGB images, the grid, quality.json.</summary>
    private static JsonNode CheckOutput(string outDir, string method)
    {
        var expected = Enumerable.Range(0, 6).SelectMany(i => new[] { $"case{i:D2}_0.png", $"case{i:D2}_1.png" }).ToArray();
        CollectionAssert.AreEqual(expected, Directory.GetFiles(Path.Combine(outDir, "images")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray());
        CollectionAssert.AreEqual(expected, Directory.GetFiles(Path.Combine(outDir, "masks")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray());
        foreach (var name in expected)
        {
            var m = ImageIO.Read(Path.Combine(outDir, "masks", name));
            Assert.AreEqual((16, 16, 1), (m.Width, m.Height, m.Channels), name);
            Assert.IsTrue(m.Pixels8!.All(v => v is 0 or 255), $"mask {name} is binary 0/255");
            var im = ImageIO.Read(Path.Combine(outDir, "images", name));
            Assert.AreEqual((16, 16, 3), (im.Width, im.Height, im.Channels), name);
        }
        // grid.png: 4 columns of (mask | 2 px | image) pairs, 3 rows for 12 pairs, 2 px borders.
        var grid = ImageIO.Read(Path.Combine(outDir, "grid.png"));
        Assert.AreEqual((2 + 4 * (34 + 2), 2 + 3 * (16 + 2)), (grid.Width, grid.Height));
        var q = JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "quality.json")))!;
        double frechet = (double)q["frechet_resnet18"]!, ms = (double)q["ms_ssim"]!, msReal = (double)q["ms_ssim_real"]!;
        Assert.IsTrue(double.IsFinite(frechet) && frechet > 0, $"frechet_resnet18 {frechet}");
        Assert.IsTrue(ms > 0 && ms < 1 && msReal > 0 && msReal < 1, $"ms_ssim {ms}, ms_ssim_real {msReal}");
        Assert.AreEqual((6, 12, 12), ((int)q["real_count"]!, (int)q["generated_count"]!, (int)q["pairs_written"]!));
        Assert.AreEqual((16, 16), ((int)q["image_height"]!, (int)q["image_width"]!));
        Assert.AreEqual(method, (string)q["method"]!);
        Assert.AreEqual(2, (int)q["per_image"]!);
        return q;
    }

    private static void AssertSameFiles(string a, string b)
    {
        foreach (var kind in new[] { "images", "masks" })
            foreach (var f in Directory.GetFiles(Path.Combine(a, kind)).Select(Path.GetFileName))
                CollectionAssert.AreEqual(Pixels(Path.Combine(a, kind, f!)), Pixels(Path.Combine(b, kind, f!)), $"{kind}/{f}");
    }

    [TestMethod]
    public void JointPerClusterThenTheSavedModelGivesTheSamePairs()
    {
        string data = Path.Combine(_dir, "data"), gen = Path.Combine(_dir, "joint.zip"), out1 = Path.Combine(_dir, "o1"), out2 = Path.Combine(_dir, "o2");
        MakeData(data, 6, seed: 1, Discs);
        // --train-steps: each cluster's model gets 2 optimizer steps whatever its size (the paper's equal iterations).
        var (code, stdout, stderr) = Medseg([.. Args(data, "joint", out1, "--clusters", "2", "--save-model", gen), .. Train, "--train-steps", "2"]);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stderr, "of each cluster at 16x16, 2 steps each");
        StringAssert.Contains(stdout, "synthesized 12 pairs (joint, 2 per real image, 16x16)");
        StringAssert.Contains(stderr, "clustering 6 pairs into 2 clusters");
        StringAssert.Contains(stderr, "[cluster 0] epoch 1");
        var q = CheckOutput(out1, "joint");
        Assert.AreEqual(2, (int)q["clusters"]!);
        // Joint masks are generated, not copied: the pair's mask is not necessarily the real one, but both samples
        // of an image come from different noise, so they differ somewhere.
        Assert.IsFalse(Pixels(Path.Combine(out1, "images", "case00_0.png")).SequenceEqual(Pixels(Path.Combine(out1, "images", "case00_1.png"))));

        // The model file is an ML.NET model: the clustering stage, then the joint diffusion models.
        var loaded = new MLContext().Model.Load(gen, out var schema);
        CollectionAssert.AreEqual(new[] { "ClusterImagesTransformer", "JointDiffusionTransformer" },
            ((IEnumerable<ITransformer>)loaded).Select(t => t.GetType().Name).ToArray());
        CollectionAssert.AreEqual(new[] { "Id", "Image", "Mask" }, schema.Select(c => c.Name).ToArray());
        (loaded as IDisposable)?.Dispose();

        (code, _, stderr) = Medseg(Args(data, "joint", out2, "--model", gen));
        Assert.AreEqual(0, code, stderr);
        Assert.IsFalse(stderr.Contains("epoch 1", StringComparison.Ordinal), "nothing is trained with --model: " + stderr);
        CheckOutput(out2, "joint");
        AssertSameFiles(out1, out2);
    }

    [TestMethod]
    public void RePaintKeepsTheImageOutsideTheDilatedMaskAndTheMaskItself()
    {
        string data = Path.Combine(_dir, "data"), gen = Path.Combine(_dir, "full.zip"), out1 = Path.Combine(_dir, "o1"), out2 = Path.Combine(_dir, "o2");
        MakeData(data, 6, seed: 2, Discs);
        var (code, stdout, stderr) = Medseg([.. Args(data, "repaint", out1, "--no-clusters", "--dilation", "1", "--save-model", gen), .. Train]);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "synthesized 12 pairs (repaint");
        StringAssert.Contains(stderr, "mask dilated by 1 px");
        var q = CheckOutput(out1, "repaint");
        Assert.IsNull(q["clusters"], "--no-clusters: one model");

        for (int i = 0; i < 6; i++)
        {
            // The pair's mask is the real mask (the input is 16 px already): equal for both samples and to the file.
            var realMask = Pixels(Path.Combine(data, "masks", $"case{i:D2}.png"));
            var m0 = Pixels(Path.Combine(out1, "masks", $"case{i:D2}_0.png"));
            CollectionAssert.AreEqual(realMask, m0, $"case{i:D2}: the original mask");
            CollectionAssert.AreEqual(m0, Pixels(Path.Combine(out1, "masks", $"case{i:D2}_1.png")));
            // Outside the mask dilated by 1 px (a pixel and its 4 neighbours) both samples are the real image; inside they differ.
            var a = Pixels(Path.Combine(out1, "images", $"case{i:D2}_0.png"));
            var b = Pixels(Path.Combine(out1, "images", $"case{i:D2}_1.png"));
            var real = Pixels(Path.Combine(data, "images", $"case{i:D2}.png"));
            int differInside = 0;
            for (int y = 0; y < 16; y++)
                for (int x = 0; x < 16; x++)
                {
                    bool near = new[] { (0, 0), (1, 0), (-1, 0), (0, 1), (0, -1) }.Any(d =>
                        y + d.Item1 is >= 0 and < 16 && x + d.Item2 is >= 0 and < 16 && realMask[(y + d.Item1) * 16 + x + d.Item2] > 127);
                    for (int c = 0; c < 3; c++)
                    {
                        int p = (y * 16 + x) * 3 + c;
                        if (!near)
                        {
                            Assert.AreEqual(real[p], a[p], $"case{i:D2} ({y},{x}) outside the dilated mask is kept");
                            Assert.AreEqual(real[p], b[p]);
                        }
                        else if (a[p] != b[p]) differInside++;
                    }
                }
            Assert.IsTrue(differInside > 0, $"case{i:D2}: the inpainted region differs between samples");
        }

        (code, _, stderr) = Medseg(Args(data, "repaint", out2, "--model", gen, "--dilation", "1"));
        Assert.AreEqual(0, code, stderr);
        AssertSameFiles(out1, out2);

        // styled: the same inpainted pairs, each image then styled towards its original; the masks stay the real ones.
        string out3 = Path.Combine(_dir, "o3");
        (code, stdout, stderr) = Medseg(Args(data, "styled", out3, "--model", gen, "--dilation", "1", "--style-steps", "4", "--style-skip", "2"));
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stderr, "styling each inpainted image towards its original (4 steps, 2 skipped");
        CheckOutput(out3, "styled");
        int changed = 0;
        for (int i = 0; i < 6; i++)
        {
            CollectionAssert.AreEqual(Pixels(Path.Combine(data, "masks", $"case{i:D2}.png")), Pixels(Path.Combine(out3, "masks", $"case{i:D2}_0.png")));
            var styled = Pixels(Path.Combine(out3, "images", $"case{i:D2}_0.png"));
            var inpainted = Pixels(Path.Combine(out1, "images", $"case{i:D2}_0.png"));
            changed += styled.Zip(inpainted).Count(p => p.First != p.Second);
        }
        Assert.IsTrue(changed > 0, "styling changes the inpainted images");
    }

    [TestMethod]
    public void BadInputIsNamed()
    {
        string data = Path.Combine(_dir, "data"), empty = Path.Combine(_dir, "empty"), o = Path.Combine(_dir, "o");
        MakeData(data, 3, seed: 1, Discs);
        Directory.CreateDirectory(Path.Combine(empty, "images"));
        Directory.CreateDirectory(Path.Combine(empty, "masks"));

        var (code, _, stderr) = Medseg("synthesize", "--data", empty, "--method", "joint", "--out", o);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, Path.Combine(empty, "images"));
        StringAssert.Contains(stderr, "holds no image files");

        (code, _, stderr) = Medseg("synthesize", "--data", data, "--method", "gan", "--out", o);
        Assert.AreEqual(2, code, "an unknown method is a usage error");
        StringAssert.Contains(stderr, "'gan'");

        (code, _, stderr) = Medseg("synthesize", "--data", data, "--method", "joint", "--clusters", "4", "--out", o);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--clusters 4 is more than the 3 images");
        (code, _, stderr) = Medseg("synthesize", "--data", data, "--method", "joint", "--out", o);
        Assert.AreEqual(1, code, "the default 20 clusters on 3 images");
        StringAssert.Contains(stderr, "--clusters 20 is more than the 3 images");
        StringAssert.Contains(stderr, "--no-clusters");

        (code, _, stderr) = Medseg("synthesize", "--data", data, "--method", "styled", "--style-steps", "1", "--out", o);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--style-steps must be at least 2");
        (code, _, stderr) = Medseg("synthesize", "--data", data, "--method", "joint", "--train-steps", "0", "--out", o);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--train-steps must be at least 1");

        (code, _, stderr) = Medseg("synthesize", "--data", data, "--method", "joint", "--clusters", "2", "--no-clusters", "--out", o);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--no-clusters");
        (code, _, stderr) = Medseg("synthesize", "--data", data, "--method", "joint", "--model", "a.zip", "--save-model", "b.zip", "--out", o);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "--save-model");
        (code, _, stderr) = Medseg("synthesize", "--data", data, "--method", "repaint", "--model", Path.Combine(_dir, "missing.zip"), "--out", o);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "missing.zip");
        (code, _, stderr) = Medseg("synthesize", "--data", Path.Combine(_dir, "nope"), "--method", "joint", "--out", o);
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "nope");
        Assert.IsFalse(Directory.Exists(o), "nothing written on bad input");
    }
}
