// Makes the shipped Kvasir-SEG sample: a seeded choice of image/mask pairs, resized (images bilinear, masks nearest
// after thresholding), written as JPEG images and 0/255 PNG masks.
//   dotnet run --project build/tools/MakeSample -- <kvasir dir> <out dir> [count=120] [size=128] [seed=20201]
using MLNetMedSeg.Data.Transforms;
using System.Globalization;
using MLNetMedSeg.Data;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;

if (args.Length < 2)
{
    Console.Error.WriteLine("usage: MakeSample <kvasir dir (with images/ and masks/)> <out dir> [count=120] [size=128] [seed=20201]");
    return 2;
}
string kvasir = args[0], outDir = args[1];
int count = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 120;
int size = args.Length > 3 ? int.Parse(args[3], CultureInfo.InvariantCulture) : 128;
int seed = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 20201;
const int JpegQuality = 90;

var ctx = new MedSegContext(seed: seed);
ctx.Log += (_, e) => { if (e.Level >= LogLevel.Warning) Console.Error.WriteLine(e); };

// Kvasir-SEG masks are JPEG with values in 0–10 and 245–255: threshold at half scale (the dataset README's 127).
var all = DataViews.LoadImagesAndMasks(ctx, Path.Combine(kvasir, "images"), Path.Combine(kvasir, "masks"),
    new ImageMaskLoaderOptions { ImageChannels = 3, MaskThreshold = 0.5 });
if (count < 1 || count > all.RowCount) { Console.Error.WriteLine($"count must be in 1..{all.RowCount}"); return 2; }

// A seeded permutation of the rows (sorted by id), first `count` taken, then sorted by id again.
var perm = RowDataView.Permutation(all.RowCount, new Random(seed));
var chosen = perm.Take(count).Order().ToArray();
var sample = DataViews.SelectRows(ctx, all, chosen);
var resized = EngineTransforms.Resize(size, size).Fit(sample).Transform(sample);

string imgDir = Path.Combine(outDir, "images"), maskDir = Path.Combine(outDir, "masks");
foreach (var d in new[] { imgDir, maskDir })
{
    Directory.CreateDirectory(d);
    foreach (var f in Directory.EnumerateFiles(d)) File.Delete(f);
}
using (var cur = resized.GetRowCursor("Id", "Image", "Mask"))
{
    while (cur.MoveNext())
    {
        using var scope = torch.NewDisposeScope();
        string id = cur.GetText("Id");
        ImageIO.WriteJpeg(Path.Combine(imgDir, id + ".jpg"), cur.GetTensor("Image"), JpegQuality);
        ImageIO.WritePng(Path.Combine(maskDir, id + ".png"), cur.GetTensor("Mask")); // {0,1} → 0/255
    }
}
Console.WriteLine($"wrote {count} pairs of {size}x{size} to '{outDir}' (seed {seed}, from {all.RowCount} pairs; " +
                  $"{all.NonBinaryMaskPixels} non-binary mask pixels thresholded in the chosen masks)");
return 0;
