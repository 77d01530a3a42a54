// EnterpriseApp: scores a folder of images with a saved MLNetMedSeg model and writes one PNG mask per image.
//
//   EnterpriseApp <model.zip> <imageFolder> <outFolder>
//
// The model is an ML.NET model file written by ml.Model.Save (or ml.MedSeg().SaveModel) from a chain such as
// LoadImages("Image", null, "ImagePath") → ResizeImages → … → the MLNetMedSeg segmentation stage, which adds the
// columns Probability and Predicted (float [1,H,W]). Only the input column ImagePath is needed to score.

using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Imaging;

return EnterpriseApp.App.Run(args);

namespace EnterpriseApp
{
    /// <summary>The input row: the path of one image (what LoadImages reads).</summary>
    public sealed class ImageInput
    {
        public string ImagePath { get; set; } = "";
    }

    /// <summary>The output row: the predicted mask, 1·H·W values in {0,1}, row-major (its size comes from the model).</summary>
    public sealed class MaskPrediction
    {
        public float[] Predicted { get; set; } = [];
    }

    /// <summary>The command: load the model, predict each image with a PredictionEngine, write the masks.</summary>
    public static class App
    {
        private static readonly string[] ImageExtensions = [".png", ".jpg", ".jpeg", ".bmp", ".webp"];

        public static int Run(string[] args)
        {
            if (args.Length != 3)
            {
                Console.Error.WriteLine("usage: EnterpriseApp <model.zip> <imageFolder> <outFolder>");
                return 2;
            }
            string modelPath = Path.GetFullPath(args[0]), imageFolder = Path.GetFullPath(args[1]), outFolder = Path.GetFullPath(args[2]);
            if (!File.Exists(modelPath)) return Fail($"the model file '{modelPath}' does not exist");
            if (!Directory.Exists(imageFolder)) return Fail($"the image folder '{imageFolder}' does not exist");
            var images = Directory.EnumerateFiles(imageFolder)
                .Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()))
                .Order(StringComparer.Ordinal).ToArray();
            if (images.Length == 0) return Fail($"the image folder '{imageFolder}' holds no image ({string.Join(", ", ImageExtensions)})");
            var stems = images.GroupBy(Path.GetFileNameWithoutExtension).Where(g => g.Count() > 1).Select(g => g.Key).ToArray();
            if (stems.Length > 0) return Fail($"two images in '{imageFolder}' would write the same mask: {string.Join(", ", stems)}");

            var watch = Stopwatch.StartNew();
            var ml = new MLContext();
            ITransformer model;
            try
            {
                // ml.Model.Load with errors that name the file.
                model = ml.MedSeg().LoadModel(modelPath, out _);
            }
            catch (InvalidDataException e)
            {
                return Fail(e.Message);
            }

            // The mask size is the model's: read it from the output schema for an input with just ImagePath.
            var inputSchema = ml.Data.LoadFromEnumerable(Array.Empty<ImageInput>()).Schema;
            DataViewSchema outputSchema;
            try
            {
                outputSchema = model.GetOutputSchema(inputSchema);
            }
            catch (Exception e) when (e is ArgumentException or InvalidOperationException)
            {
                return Fail($"the model '{modelPath}' cannot score an input with only an ImagePath column: {e.Message}");
            }
            var predicted = outputSchema.GetColumnOrNull("Predicted");
            if (predicted?.Type is not VectorDataViewType type || type.ItemType != NumberDataViewType.Single
                || type.Dimensions.Length != 3 || type.Dimensions[0] != 1)
                return Fail($"the model '{modelPath}' has no binary segmentation output (a float 'Predicted' column [1,H,W]): is it an MLNetMedSeg segmentation model?");

            int height = type.Dimensions[1], width = type.Dimensions[2];
            Directory.CreateDirectory(outFolder);
            var engine = ml.Model.CreatePredictionEngine<ImageInput, MaskPrediction>(model);
            var pixels = new byte[height * width];
            int written = 0, failed = 0;
            double foreground = 0;
            Console.WriteLine($"model {modelPath}: masks of {width}×{height}; {images.Length} image(s) in {imageFolder}");
            foreach (var image in images)
            {
                MaskPrediction prediction;
                try
                {
                    prediction = engine.Predict(new ImageInput { ImagePath = image });
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    Console.Error.WriteLine($"error: could not score '{image}': {e.Message}");
                    failed++;
                    continue;
                }
                if (prediction.Predicted.Length != pixels.Length)
                    return Fail($"the model returned {prediction.Predicted.Length} values for '{image}', expected {pixels.Length}");
                int on = 0;
                for (int i = 0; i < pixels.Length; i++)
                {
                    bool fg = prediction.Predicted[i] >= 0.5f;
                    pixels[i] = fg ? (byte)255 : (byte)0;
                    on += fg ? 1 : 0;
                }
                string maskPath = Path.Combine(outFolder, Path.GetFileNameWithoutExtension(image) + ".png");
                ImageIO.WritePng(maskPath, pixels, width, height, 1);
                double fraction = (double)on / pixels.Length;
                foreground += fraction;
                written++;
                Console.WriteLine($"  {Path.GetFileName(image)} -> {Path.GetFileName(maskPath)}  foreground {100 * fraction:F1}%");
            }
            Console.WriteLine($"wrote {written} mask(s) to {outFolder} in {watch.Elapsed.TotalSeconds:F1} s; mean foreground {(written > 0 ? 100 * foreground / written : 0):F1}%; {failed} failed");
            return failed == 0 ? 0 : 1;
        }

        private static int Fail(string message)
        {
            Console.Error.WriteLine("error: " + message);
            return 1;
        }
    }
}
