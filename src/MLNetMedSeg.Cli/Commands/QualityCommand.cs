using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using MLNetMedSeg.Data;
using MLNetMedSeg.Evaluation;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg quality --real DIR --generated DIR --out quality.json</c>: paper 004's intrinsic evaluation of generated
/// images (§4.4, Tables 1–2) with <c>ml.MedSeg().EvaluateImageQuality</c> — the Fréchet ResNet-18 distance between the
/// two sets (not FID: ImageNet ResNet-18 features, see <see cref="ImageSetQuality"/>) and each set's MS-SSIM diversity.
/// A folder is read as the other verbs read image folders: DIR/images when it exists (a data folder, or the output of
/// <c>medseg generate</c>), else DIR itself; PNG, JPEG and TIFF files by extension, sorted by name. Both sets are
/// decoded by one loader — ML.NET's <c>LoadImages</c>, or the library's when either folder holds TIFF — and brought to
/// <c>--size</c> by the same antialiased resize; a difference in file format between the sets is warned about.
/// </summary>
internal static class QualityCommand
{
    public static Command Create(CliConsole console)
    {
        var real = new Option<string>("--real") { Description = "folder of real images (or a data folder with images/)", Required = true };
        var generated = new Option<string>("--generated") { Description = "folder of generated images (or a folder with images/, as 'medseg generate' writes)", Required = true };
        var output = new Option<string>("--out") { Description = "where to write the JSON (frechet_resnet18, ms_ssim, counts)", Required = true };
        var size = new Option<int>("--size") { Description = "side both sets are resized to before measuring (bilinear, antialiased)", DefaultValueFactory = _ => 256 };
        var featureSize = new Option<int>("--feature-size") { Description = "side of the ResNet-18's input (224: its training size)", DefaultValueFactory = _ => 224 };
        var pairs = new Option<int>("--pairs") { Description = "image pairs averaged for MS-SSIM per set (all pairs when there are fewer)", DefaultValueFactory = _ => 500 };
        var seed = new Option<int>("--seed") { Description = "seed of the sampled MS-SSIM pairs", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var cmd = new Command("quality", "Fréchet ResNet-18 distance and MS-SSIM diversity of generated images against real ones (paper 004)")
        {
            real, generated, output, size, featureSize, pairs, seed, device,
        };
        cmd.SetAction((parse, ct) => console.Invoke(() =>
        {
            var ml = MLNetRun.CreateContext(console, parse.GetValue(seed), parse.GetValue(device)!, ct);
            string realDir = parse.GetRequiredValue(real), generatedDir = parse.GetRequiredValue(generated);
            var realFiles = ImageFiles(realDir, "real");
            var generatedFiles = ImageFiles(generatedDir, "generated");
            var realFormats = Formats(realFiles);
            var generatedFormats = Formats(generatedFiles);
            if (!realFormats.SequenceEqual(generatedFormats))
                console.Err.WriteLine($"warning: the real images are {string.Join("/", realFormats)} files, the generated ones {string.Join("/", generatedFormats)}: " +
                    "the encoding alone shifts the Fréchet distance (Parmar et al. 2022); save generated images in the real set's format to compare like with like");
            var options = new ImageQualityOptions
            {
                ImageSize = parse.GetValue(size), FeatureInputSize = parse.GetValue(featureSize), MsSsimPairs = parse.GetValue(pairs),
            };
            var loader = Loader(ml, realFiles.Concat(generatedFiles), options.ImageSize!.Value);
            var realData = ml.Data.LoadFromEnumerable(realFiles);
            var generatedData = ml.Data.LoadFromEnumerable(generatedFiles);
            var result = ml.MedSeg().EvaluateImageQuality(loader.Fit(realData).Transform(realData), loader.Fit(generatedData).Transform(generatedData),
                MLNetRun.Image, options: options);
            var json = JsonNode.Parse(result.ToJson())!.AsObject();
            json["real"] = Path.GetFullPath(realDir);
            json["generated"] = Path.GetFullPath(generatedDir);
            json["real_formats"] = new JsonArray(realFormats.Select(f => (JsonNode)f).ToArray());
            json["generated_formats"] = new JsonArray(generatedFormats.Select(f => (JsonNode)f).ToArray());
            string outPath = parse.GetRequiredValue(output);
            EvaluateCommand.WriteAtomic(outPath, json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Fréchet ResNet-18 distance {result.FrechetResNet18:F4} ({result.RealCount} real vs {result.GeneratedCount} generated, {result.ImageHeight}x{result.ImageWidth}, features at {result.FeatureInputSize} px; not FID)"));
            console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"MS-SSIM diversity (lower = more diverse): generated {result.MsSsim:F4} ({result.MsSsimPairs} pairs), real {result.RealMsSsim:F4} ({result.RealMsSsimPairs} pairs) → {outPath}"));
            return 0;
        }, ct));
        return cmd;
    }

    /// <summary>
    /// ImagePath → Image for both sets, one loader: ML.NET's <c>LoadImages</c> (each image at its own size; the
    /// evaluation resizes) unless a file is TIFF, which ImageAnalytics cannot decode — then the library's
    /// <c>LoadImages</c> at <paramref name="size"/> (bilinear) for both sets.
    /// </summary>
    private static IEstimator<ITransformer> Loader(MLContext ml, IEnumerable<ImageRow> files, int size) =>
        files.Any(f => IsTiff(f.ImagePath))
            ? ml.MedSeg().Transforms.LoadImages(MLNetRun.Image, null, MLNetRun.ImagePath, size, size)
            : ml.Transforms.LoadImages(MLNetRun.Image, null, MLNetRun.ImagePath);

    private static bool IsTiff(string path) => Path.GetExtension(path).ToLowerInvariant() is ".tif" or ".tiff";

    /// <summary>The file formats of a set, by extension (jpeg for .jpg/.jpeg, tiff for .tif/.tiff), sorted.</summary>
    private static string[] Formats(IEnumerable<ImageRow> files) =>
        files.Select(f => Path.GetExtension(f.ImagePath).ToLowerInvariant() switch
        {
            ".jpg" or ".jpeg" => "jpeg",
            ".tif" or ".tiff" => "tiff",
            var e => e.TrimStart('.'),
        }).Distinct().Order(StringComparer.Ordinal).ToArray();

    /// <summary>One image file: its stem and full path.</summary>
    private sealed class ImageRow
    {
        public string Id { get; set; } = "";
        public string ImagePath { get; set; } = "";
    }

    /// <summary>
    /// The image files of DIR/images (when it exists) or DIR, by extension, sorted by name. A missing folder, or one
    /// without image files, is an error naming it and the set.
    /// </summary>
    private static List<ImageRow> ImageFiles(string dir, string set)
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"the {set} folder '{dir}' does not exist");
        string folder = Directory.Exists(Path.Combine(dir, "images")) ? Path.Combine(dir, "images") : dir;
        var extensions = new HashSet<string>(new ImageMaskLoaderOptions().Extensions, StringComparer.OrdinalIgnoreCase);
        var rows = Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal)
            .Where(f => extensions.Contains(Path.GetExtension(f)))
            .Select(f => new ImageRow { Id = Path.GetFileNameWithoutExtension(f), ImagePath = Path.GetFullPath(f) })
            .ToList();
        if (rows.Count == 0) throw new InvalidDataException($"the {set} folder '{folder}' holds no image files ({string.Join(", ", extensions)})");
        return rows;
    }
}
