using MLNetMedSeg.Core;
using System.CommandLine;
using MLNetMedSeg.Data;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg predict --model MODEL.zip --images DIR --out DIR</c>: writes one binary mask per image as a 0/255 PNG
/// named by the image's stem, at the image's own size (the model's probabilities are resized back bilinearly and
/// thresholded at --threshold).
/// </summary>
internal static class PredictCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Option<string>("--model") { Description = "a model file written by 'medseg train'", Required = true };
        var images = new Option<string>("--images") { Description = "folder of images to segment", Required = true };
        var output = new Option<string>("--out") { Description = "folder for the predicted masks (0/255 PNG, named by stem)", Required = true };
        var threshold = new Option<double>("--threshold") { Description = "probability threshold", DefaultValueFactory = _ => 0.5 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var cmd = new Command("predict", "segment a folder of images with a trained model") { model, images, output, threshold, device };
        cmd.SetAction((parse, ct) => Task.FromResult(console.Guard(() =>
        {
            var ctx = new MedSegContext(seed: 0, device: Devices.Parse(parse.GetValue(device)!));
            string modelPath = parse.GetRequiredValue(model);
            if (!File.Exists(modelPath)) throw new FileNotFoundException($"model file '{modelPath}' does not exist");
            var loaded = ctx.Model.Load(modelPath, out _);
            try
            {
                var input = ctx.Data.LoadImages(parse.GetRequiredValue(images), channels: 3);
                string outDir = parse.GetRequiredValue(output);
                Directory.CreateDirectory(outDir);
                double t = parse.GetValue(threshold);
                int written = 0;
                foreach (var (id, probability, image) in ModelScoring.ProbabilitiesAtOriginalSize(loaded, input, "Image", ct))
                {
                    using var scope = torch.NewDisposeScope();
                    scope.Attach(probability);
                    scope.Attach(image);
                    var mask = ((probability >= t).to(ScalarType.Byte) * 255).cpu();
                    ImageIO.WritePng(Path.Combine(outDir, id + ".png"), mask);
                    written++;
                }
                console.Out.WriteLine($"wrote {written} masks to {outDir}");
                return 0;
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
            }
        }, ct)));
        return cmd;
    }
}

/// <summary>Scoring helpers shared by the verbs.</summary>
internal static class ModelScoring
{
    /// <summary>
    /// Runs the model on <paramref name="data"/> and yields each row's id, foreground probability [1,H,W] resized
    /// (bilinear) to the size of <paramref name="referenceColumn"/>'s tensor in the unscored data, and that reference
    /// tensor. The caller disposes both.
    /// </summary>
    public static IEnumerable<(string Id, Tensor Probability, Tensor Reference)> ProbabilitiesAtOriginalSize(ITransformer model, IDataView data, string referenceColumn, CancellationToken ct)
    {
        var scored = model.Transform(data);
        using var sc = scored.GetRowCursor("Id", "Probability");
        using var rc = data.GetRowCursor("Id", referenceColumn);
        while (sc.MoveNext())
        {
            ct.ThrowIfCancellationRequested();
            if (!rc.MoveNext()) throw new InvalidOperationException("the scored data has more rows than its input");
            string id = sc.GetText("Id");
            if (id != rc.GetText("Id")) throw new InvalidOperationException($"row order changed while scoring ('{id}' vs '{rc.GetText("Id")}')");
            Tensor p, r;
            using (var scope = torch.NewDisposeScope())
            {
                var prob = sc.GetTensor("Probability");
                var reference = rc.GetTensor(referenceColumn);
                long h = reference.size(-2), w = reference.size(-1);
                p = prob.shape[^2] == h && prob.shape[^1] == w
                    ? prob.clone()
                    : torch.nn.functional.interpolate(prob.unsqueeze(0), size: [h, w], mode: InterpolationMode.Bilinear, align_corners: false)[0];
                p.DetachFromDisposeScope(); // handed to the caller
                r = reference.alias().DetachFromDisposeScope();
            }
            yield return (id, p, r);
        }
    }
}
