// Checks a set of generated (mask, image) pairs against real pairs and writes OUT/checks.json and OUT/checks.md:
//  - masks: foreground fraction per mask, generated against real (two-sample Kolmogorov–Smirnov D and p-value), means,
//    and the share of empty masks;
//  - diversity: mean pairwise MS-SSIM of the generated images and masks, and of the real ones for comparison (lower is
//    more diverse);
//  - fidelity: the Fréchet ResNet-18 distance (Fréchet distance of the ImageNet ResNet-18's 512-d pooled features at
//    224 px; NOT FID, which uses Inception-v3) between real and generated images, and — with --reference — between the
//    real images and as many other real images (the floor that finite samples give), with the image diversity computed
//    by ml.MedSeg().CreateImageQualityEvaluator (the library's one path for both, as `medseg quality`);
//  - OUT/real-grid.png: 16 real pairs (mask | image) at the checked size, beside the generator's own grid.png.
// Every set is read as build/tools/MakeSample reads data (images RGB, masks thresholded at half scale) and resized to
// SIZE×SIZE (images bilinear, masks nearest).
//   dotnet run --project build/tools/CheckGenerators -- --real DIR --generated DIR --out DIR [--reference DIR]
//     [--size 64] [--name NAME] [--pairs 500] [--seed 0] [--feature-size 224]
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Data;
using MLNetMedSeg.Data.Transforms;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Evaluation;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using static TorchSharp.torch;
using IDataView = MLNetMedSeg.Data.IDataView;
using MLDataView = Microsoft.ML.IDataView;

var opts = new Dictionary<string, string>(StringComparer.Ordinal);
for (int i = 0; i < args.Length; i++)
{
    if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
    {
        Console.Error.WriteLine($"unexpected argument '{args[i]}'");
        return Usage();
    }
    opts[args[i][2..]] = args[++i];
}
string? Opt(string k) => opts.TryGetValue(k, out var v) ? v : null;
int IntOpt(string k, int d) => Opt(k) is { } v ? int.Parse(v, CultureInfo.InvariantCulture) : d;
if (Opt("real") is not { } realDir || Opt("generated") is not { } genDir || Opt("out") is not { } outDir) return Usage();
string? referenceDir = Opt("reference");
int size = IntOpt("size", 64), pairs = IntOpt("pairs", 500), seed = IntOpt("seed", 0), featureSize = IntOpt("feature-size", 224);
string name = Opt("name") ?? Path.GetFileName(Path.GetFullPath(genDir).TrimEnd('/'));
Directory.CreateDirectory(outDir);

var ctx = new MedSegContext(seed: seed);
ctx.Log += (_, e) => { if (e.Level >= LogLevel.Warning) Console.Error.WriteLine(e); };

(Tensor Images, Tensor Masks, int Count) Load(string dir, int? limit = null)
{
    foreach (var sub in new[] { "images", "masks" })
        if (!Directory.Exists(Path.Combine(dir, sub))) throw new DirectoryNotFoundException($"'{dir}' has no {sub}/ folder (expected images/ and masks/ matched by file stem)");
    var all = DataViews.LoadImagesAndMasks(ctx, Path.Combine(dir, "images"), Path.Combine(dir, "masks"),
        new ImageMaskLoaderOptions { ImageChannels = 3, MaskThreshold = 0.5 });
    IDataView data = all;
    if (limit is int l && l < all.RowCount) data = DataViews.SelectRows(ctx, all, Enumerable.Range(0, l).Select(i => (long)i).ToArray());
    var resized = EngineTransforms.Resize(size, size).Fit(data).Transform(data);
    var images = new List<Tensor>();
    var masks = new List<Tensor>();
    using (var cur = resized.GetRowCursor("Image", "Mask"))
        while (cur.MoveNext())
        {
            images.Add(cur.GetTensor("Image").clone());
            masks.Add(cur.GetTensor("Mask").clone());
        }
    if (images.Count < 2) throw new InvalidDataException($"'{dir}' holds {images.Count} pair(s); the checks need at least 2");
    var x = stack(images, 0);
    var y = stack(masks, 0);
    foreach (var t in images.Concat(masks)) t.Dispose();
    return (x, y, (int)x.size(0));
}

double[] Fractions(Tensor masks) => masks.mean([1, 2, 3]).to(ScalarType.Float64).data<double>().ToArray();
double Msssim(Tensor images, ulong s)
{
    using var g = new Generator(s);
    return MsSsim.MeanPairwise(images, pairs, g);
}
static double Sd(double[] v) { double m = v.Average(); return Math.Sqrt(v.Sum(x => (x - m) * (x - m)) / Math.Max(1, v.Length - 1)); }

var clock = System.Diagnostics.Stopwatch.StartNew();
var (realImages, realMasks, nReal) = Load(realDir);
var (genImages, genMasks, nGen) = Load(genDir);
Console.Error.WriteLine($"{name}: {nGen} generated pairs against {nReal} real pairs at {size}x{size}");

var realFrac = Fractions(realMasks);
var genFrac = Fractions(genMasks);
var ks = KolmogorovSmirnov.TwoSample(realFrac, genFrac);
double msGenMasks = Msssim(genMasks, 2), msRealMasks = Msssim(realMasks, 2);

// Fidelity and image diversity through the library's API (ml.MedSeg().CreateImageQualityEvaluator, as medseg quality):
// one resize path for every set (antialiased bilinear to the feature size), the real set measured once.
double frd, msGenImages, msRealImages;
double? floor = null;
int? nReference = null;
var ml = new MLContext(seed);
var qualityOptions = new ImageQualityOptions { FeatureInputSize = featureSize, MsSsimPairs = pairs };
using (var evaluator = ml.MedSeg().CreateImageQualityEvaluator(AsMLView(ml, realImages), "Image", qualityOptions))
{
    var q = evaluator.Evaluate(AsMLView(ml, genImages));
    (frd, msGenImages, msRealImages) = (q.FrechetResNet18, q.MsSsim, q.RealMsSsim);
    if (referenceDir is not null)
    {
        var (refImages, refMasks, nRef) = Load(referenceDir, nGen);
        using (refImages) using (refMasks)
        {
            floor = evaluator.Evaluate(AsMLView(ml, refImages)).FrechetResNet18;
            nReference = nRef;
        }
    }
}

// Real pairs as a grid (mask | image), the layout of medseg generate's grid.png.
using (var scope = NewDisposeScope())
{
    int k = Math.Min(16, nReal);
    var tiles = SampleGrid.Pairs(realMasks[..k], realImages[..k]);
    SampleGrid.Write(Path.Combine(outDir, "real-grid.png"), tiles, Math.Min(4, k));
}

string F(double v, string f = "F4") => v.ToString(f, CultureInfo.InvariantCulture);
var json = new JsonObject
{
    ["name"] = name, ["generated"] = Path.GetFullPath(genDir), ["real"] = Path.GetFullPath(realDir),
    ["reference"] = referenceDir is null ? null : Path.GetFullPath(referenceDir),
    ["size"] = size, ["generated_pairs"] = nGen, ["real_pairs"] = nReal,
    ["foreground_fraction"] = new JsonObject
    {
        ["real_mean"] = realFrac.Average(), ["real_sd"] = Sd(realFrac), ["generated_mean"] = genFrac.Average(), ["generated_sd"] = Sd(genFrac),
        ["real_empty_share"] = realFrac.Count(f => f == 0) / (double)nReal, ["generated_empty_share"] = genFrac.Count(f => f == 0) / (double)nGen,
        ["ks_statistic"] = ks.Statistic, ["ks_p_value"] = ks.PValue,
    },
    ["ms_ssim_diversity"] = new JsonObject
    {
        ["pairs"] = pairs, ["generated_images"] = msGenImages, ["real_images"] = msRealImages,
        ["generated_masks"] = msGenMasks, ["real_masks"] = msRealMasks,
    },
    ["frechet_resnet18_distance"] = new JsonObject
    {
        ["features"] = $"ImageNet ResNet-18 (Microsoft.ML.DnnImageFeaturizer.ResNet18 0.24.0), 512-d global average pool after layer4, images resized {size} -> {featureSize} px bilinear, antialiased (ml.MedSeg().EvaluateImageQuality)",
        ["real_vs_generated"] = frd,
        ["real_vs_reference"] = floor, ["reference_pairs"] = nReference,
    },
    ["seconds"] = clock.Elapsed.TotalSeconds,
};
File.WriteAllText(Path.Combine(outDir, "checks.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");

var md = new StringBuilder();
md.AppendLine($"# Generator checks: {name}");
md.AppendLine();
md.AppendLine($"{nGen} generated pairs (`{genDir}`) against {nReal} real pairs (`{realDir}`), both at {size}×{size}.");
md.AppendLine();
md.AppendLine("| check | generated | real | comparison |");
md.AppendLine("|---|---|---|---|");
md.AppendLine($"| mask foreground fraction, mean ± sd | {F(genFrac.Average(), "F3")} ± {F(Sd(genFrac), "F3")} | {F(realFrac.Average(), "F3")} ± {F(Sd(realFrac), "F3")} | KS D = {F(ks.Statistic, "F3")}, p = {ks.PValue.ToString("G3", CultureInfo.InvariantCulture)} |");
md.AppendLine($"| empty masks | {F(100.0 * genFrac.Count(f => f == 0) / nGen, "F1")} % | {F(100.0 * realFrac.Count(f => f == 0) / nReal, "F1")} % | |");
md.AppendLine($"| MS-SSIM diversity, images ({pairs} random pairs; lower = more diverse) | {F(msGenImages, "F3")} | {F(msRealImages, "F3")} | |");
md.AppendLine($"| MS-SSIM diversity, masks | {F(msGenMasks, "F3")} | {F(msRealMasks, "F3")} | |");
md.AppendLine($"| Fréchet ResNet-18 distance to the real images | {F(frd, "F2")} | {(floor is double fl ? $"{F(fl, "F2")} ({nReference} other real images)" : "—")} | lower is closer |");
md.AppendLine();
md.AppendLine($"Fréchet ResNet-18 distance: the Fréchet distance between Gaussians fitted to the 512-d pooled features of the ImageNet " +
              $"ResNet-18 (Microsoft.ML.DnnImageFeaturizer.ResNet18) at {featureSize} px. It is not FID (Inception-v3) and not comparable to FID values; " +
              "it depends on the set sizes, so compare rows computed with the same counts. The KS test asks whether the generated masks' " +
              "foreground fractions could come from the real masks' distribution (small p: they differ).");
md.AppendLine();
md.AppendLine("Grids: `real-grid.png` (real pairs) and the generator's `grid.png` (mask | image).");
File.WriteAllText(Path.Combine(outDir, "checks.md"), md.ToString());
Console.Write(md.ToString());
return 0;

// Images [N,3,S,S] as an ML.NET data view with an Image column of float [3,S,S], what EvaluateImageQuality reads.
static MLDataView AsMLView(MLContext ml, Tensor images)
{
    int n = (int)images.size(0), c = (int)images.size(1), h = (int)images.size(2), w = (int)images.size(3);
    var flat = images.to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
    var rows = Enumerable.Range(0, n).Select(i => new ImageRow { Image = flat.AsSpan(i * c * h * w, c * h * w).ToArray() }).ToList();
    var definition = SchemaDefinition.Create(typeof(ImageRow));
    definition[nameof(ImageRow.Image)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, c, h, w);
    return ml.Data.LoadFromEnumerable(rows, definition);
}

static int Usage()
{
    Console.Error.WriteLine("usage: CheckGenerators --real DIR --generated DIR --out DIR [--reference DIR] [--size 64] [--name NAME] [--pairs 500] [--seed 0] [--feature-size 224]");
    return 2;
}

/// <summary>One image of <c>AsMLView</c>.</summary>
internal sealed class ImageRow
{
    public float[] Image { get; set; } = [];
}
