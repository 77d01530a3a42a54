using System.CommandLine;
using Microsoft.ML;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Imaging;
using TorchSharp;
using MLNetMedSeg.Data;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg predict --model MODEL.zip --images DIR --out DIR</c>: runs an ML.NET segmentation model (one that reads
/// an ImagePath column, as <c>medseg train</c> and <c>medseg dasp</c> write) on every image of DIR and writes one binary
/// mask per image as a 0/255 PNG named by the image's stem, at the image's own size (the model's probabilities are
/// resized back bilinearly and thresholded at --threshold).
/// </summary>
internal static class PredictCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Option<string>("--model") { Description = "a model file written by 'medseg train' or 'medseg dasp'", Required = true };
        var images = new Option<string>("--images") { Description = "folder of images to segment", Required = true };
        var output = new Option<string>("--out") { Description = "folder for the predicted masks (0/255 PNG, named by stem)", Required = true };
        var threshold = new Option<double>("--threshold") { Description = "probability threshold", DefaultValueFactory = _ => 0.5 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var cmd = new Command("predict", "segment a folder of images with a trained model") { model, images, output, threshold, device };
        cmd.SetAction((parse, ct) => console.Invoke(() =>
        {
            var ml = MLNetRun.CreateContext(console, seed: 0, parse.GetValue(device)!, ct);
            string modelPath = parse.GetRequiredValue(model);
            var loaded = MLNetRun.LoadModel(ml, modelPath, out _);
            try
            {
                var input = ml.Data.LoadFromEnumerable(ImageFiles(parse.GetRequiredValue(images)));
                EvaluateCommand.ProbabilitySize(loaded, input.Schema, modelPath);
                string outDir = parse.GetRequiredValue(output);
                Directory.CreateDirectory(outDir);
                double t = parse.GetValue(threshold);
                int written = 0;
                var scored = MLNetData.AsLibraryView(loaded.Transform(input));
                using var cursor = scored.GetRowCursor(MLNetRun.Id, MLNetRun.ImagePath, MLNetRun.Probability);
                while (cursor.MoveNext())
                {
                    ct.ThrowIfCancellationRequested();
                    using var scope = torch.NewDisposeScope();
                    string path = cursor.GetText(MLNetRun.ImagePath);
                    var original = ImageIO.Read(path);
                    var probability = cursor.GetTensor(MLNetRun.Probability);
                    if (probability.shape[^2] != original.Height || probability.shape[^1] != original.Width)
                        probability = torch.nn.functional.interpolate(probability.unsqueeze(0), size: [original.Height, original.Width],
                            mode: InterpolationMode.Bilinear, align_corners: false)[0];
                    var mask = ((probability >= S(t)).to(ScalarType.Byte) * S(255)).cpu();
                    ImageIO.WritePng(Path.Combine(outDir, cursor.GetText(MLNetRun.Id) + ".png"), mask);
                    written++;
                }
                console.Out.WriteLine($"wrote {written} masks to {outDir}");
                return 0;
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
            }
        }, ct));
        return cmd;
    }

    /// <summary>One row of the images to segment: the file's stem and its full path.</summary>
    private sealed class ImageRow
    {
        public string Id { get; set; } = "";
        public string ImagePath { get; set; } = "";
    }

    /// <summary>The image files of a folder (by extension), sorted by name; a file stem appearing twice is an error.</summary>
    private static List<ImageRow> ImageFiles(string folder)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"the image folder '{folder}' does not exist");
        var extensions = new HashSet<string>(new ImageMaskLoaderOptions().Extensions, StringComparer.OrdinalIgnoreCase);
        var rows = new List<ImageRow>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
        {
            if (!extensions.Contains(Path.GetExtension(f))) continue;
            string stem = Path.GetFileNameWithoutExtension(f);
            if (!seen.Add(stem)) throw new InvalidDataException($"the image folder '{folder}' has two files named '{stem}'");
            rows.Add(new ImageRow { Id = stem, ImagePath = Path.GetFullPath(f) });
        }
        if (rows.Count == 0) throw new InvalidDataException($"the image folder '{folder}' holds no image files ({string.Join(", ", extensions)})");
        return rows;
    }
}
