using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Segmentation;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// The train → (ML.NET app) → info → predict → evaluate round trip on a tiny synthetic data folder: the model file
/// 'medseg train' writes is an ML.NET model an application loads with <c>new MLContext().Model.Load</c> and runs
/// through a PredictionEngine from an image path alone.
/// </summary>
[TestClass]
public sealed class TrainPredictCliTests : CliTestBase
{
    /// <summary>What an application passes: the image file only.</summary>
    public sealed class ImageInput
    {
        public string ImagePath { get; set; } = "";
    }

    /// <summary>What it gets back at the model's size (16×16).</summary>
    public sealed class MaskPrediction
    {
        [VectorType(1, 16, 16)]
        public float[] Probability { get; set; } = [];

        [VectorType(1, 16, 16)]
        public float[] Predicted { get; set; } = [];
    }

    [TestMethod]
    public void TrainOnA16BitTiffFolder_ThePredictingModelReadsTiff()
    {
        // ImageAnalytics cannot decode TIFF: on such a folder 'medseg train' loads images with the library's loader,
        // and the saved model keeps it, so an application predicts from .tif paths.
        string png = Path.Combine(_dir, "png"), data = Path.Combine(_dir, "tiff");
        MakeData(png, 8, seed: 6);
        Directory.CreateDirectory(Path.Combine(data, "images"));
        Directory.CreateDirectory(Path.Combine(data, "masks"));
        foreach (var f in Directory.GetFiles(Path.Combine(png, "images")))
        {
            var img = ImageIO.Read(f);
            ImageIO.WriteTiff16(Path.Combine(data, "images", Path.GetFileNameWithoutExtension(f) + ".tif"),
                img.Pixels8!.Select(v => (ushort)(v * 257)).ToArray(), img.Width, img.Height, img.Channels);
            File.Copy(Path.Combine(png, "masks", Path.GetFileName(f)), Path.Combine(data, "masks", Path.GetFileName(f)));
        }
        string model = Path.Combine(_dir, "tiff.zip");
        var (code, stdout, stderr) = Medseg("train", "--data", data, "--size", "16", "--epochs", "1", "--batch", "4",
            "--val-fraction", "0", "--out", model);
        Assert.AreEqual(0, code, stderr);
        var ml = new MLContext();
        var loaded = ml.Model.Load(model, out _);
        Assert.IsTrue(((IEnumerable<ITransformer>)loaded).OfType<MLNetMedSeg.Data.Transforms.LoadImageTransformer>().Any(), "the library's TIFF loader is saved with the model");
        var engine = ml.Model.CreatePredictionEngine<ImageInput, MaskPrediction>(loaded);
        var p = engine.Predict(new ImageInput { ImagePath = Path.Combine(data, "images", "case02.tif") });
        Assert.AreEqual(256, p.Probability.Length);
        Assert.IsTrue(p.Probability.All(v => v is >= 0 and <= 1));
        (code, _, stderr) = Medseg("predict", "--model", model, "--images", Path.Combine(data, "images"), "--out", Path.Combine(_dir, "pred"));
        Assert.AreEqual(0, code, stderr);
        var written = Directory.GetFiles(Path.Combine(_dir, "pred"));
        Assert.AreEqual(8, written.Length);
        Assert.AreEqual((24, 20), (ImageIO.Read(written[0]).Width, ImageIO.Read(written[0]).Height), "masks come back at the image's own size");
    }

    [TestMethod]
    public void PredictionEnginesOnFourThreadsUnderForcedCollections_GiveTheQuietRunsMasks()
    {
        // An enterprise app: one loaded model, a PredictionEngine per request thread, and garbage collections at any
        // moment from other threads. TorchSharp frees Scalars and tensors in finalizers, so a temporary the library left
        // to the GC would be freed while libtorch reads it (README, "Numbers as Scalars"): wrong numbers, an exception
        // or an aborted process. Every prediction must equal the quiet single-threaded one.
        string data = Path.Combine(_dir, "data");
        MakeData(data, 6, seed: 8);
        string model = Path.Combine(_dir, "model.zip");
        var (code, _, stderr) = Medseg("train", "--data", data, "--size", "16", "--epochs", "1", "--batch", "3",
            "--val-fraction", "0", "--seed", "2", "--out", model);
        Assert.AreEqual(0, code, stderr);
        var ml = new MLContext();
        var loaded = ml.Model.Load(model, out _);
        var images = Directory.GetFiles(Path.Combine(data, "images")).Order().ToArray();
        var quiet = ml.Model.CreatePredictionEngine<ImageInput, MaskPrediction>(loaded);
        var expected = images.Select(i => quiet.Predict(new ImageInput { ImagePath = i }).Probability).ToArray();

        using var stop = new CancellationTokenSource();
        long collections = 0;
        var collector = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.KeepAlive(new byte[32 * 1024]);
                if ((Interlocked.Increment(ref collections) & 63) == 0) GC.Collect(0);
            }
        });
        var mismatches = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, t =>
        {
            var engine = ml.Model.CreatePredictionEngine<ImageInput, MaskPrediction>(loaded);
            for (int round = 0; round < 25; round++)
                for (int k = 0; k < images.Length; k++)
                {
                    var p = engine.Predict(new ImageInput { ImagePath = images[k] }).Probability;
                    int bad = Enumerable.Range(0, p.Length).Count(i => Math.Abs(p[i] - expected[k][i]) > 1e-6f);
                    if (bad > 0) mismatches.Add($"thread {t} round {round} {Path.GetFileName(images[k])}: {bad} pixels differ");
                }
        });
        stop.Cancel();
        collector.Wait();
        Console.WriteLine($"{4 * 25 * images.Length} predictions under {GC.CollectionCount(0)} gen-0 collections");
        Assert.AreEqual(0, mismatches.Count, string.Join(Environment.NewLine, mismatches.Take(10)));
    }

    [TestMethod]
    public void TrainInfoPredictEvaluate()
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 10, seed: 4);
        string model = Path.Combine(_dir, "model.zip");

        // 9 training pairs in batches of 3: a last batch of one image would reach the default U-Net's 1×1 bottleneck
        // (16 px) as a single value per channel, whose BatchNorm variance is undefined (NaN running statistics).
        var (code, stdout, stderr) = Medseg("train", "--data", data, "--backbone", "unet", "--size", "16", "--epochs", "2",
            "--batch", "3", "--augment", "basic", "--seed", "3", "--out", model);
        Assert.AreEqual(0, code, stderr);
        Assert.IsTrue(File.Exists(model));
        StringAssert.Contains(stdout, "trained 2 epochs");
        StringAssert.Contains(stderr, "on 9 pairs, validating on 1", "--val-fraction 0.1 of 10 pairs");
        StringAssert.Contains(stderr, "epoch 2:");
        StringAssert.Contains(stderr, "100% SegmentationTrainer", "the progress bar is fed from ml.MedSeg().Progress");
        Assert.AreEqual(1, Directory.GetFiles(_dir).Length, "the model is written atomically: no temporary file is left");

        // An application: a fresh MLContext loads the file and predicts from an image path.
        var ml = new MLContext();
        var loaded = ml.Model.Load(model, out var inputSchema);
        Assert.AreEqual("ImagePath", string.Join(",", inputSchema.Select(c => c.Name)));
        var chain = (IEnumerable<ITransformer>)loaded;
        Assert.AreEqual(1, chain.OfType<SegmentationTransformer>().Count());
        Assert.IsInstanceOfType<SegmentationTransformer>(chain.Last(), "the segmenter is the last stage");
        Assert.IsFalse(chain.OfType<MLNetMedSeg.Data.Transforms.LoadMaskTransformer>().Any(), "masks are not needed to predict");
        var engine = ml.Model.CreatePredictionEngine<ImageInput, MaskPrediction>(loaded);
        var image = Path.Combine(data, "images", "case03.png");
        var prediction = engine.Predict(new ImageInput { ImagePath = image });
        Assert.AreEqual(256, prediction.Probability.Length);
        Assert.IsTrue(prediction.Probability.All(p => p is >= 0 and <= 1), $"probabilities: min {prediction.Probability.Min()} max {prediction.Probability.Max()} NaN {prediction.Probability.Count(float.IsNaN)}");
        for (int i = 0; i < 256; i++)
            Assert.AreEqual(prediction.Probability[i] >= 0.5f ? 1f : 0f, prediction.Predicted[i], $"pixel {i}: Predicted is Probability ≥ 0.5");
        // The same image through a batched Transform of the folder gives the same probabilities.
        var scored = loaded.Transform(ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(data, "images"), Path.Combine(data, "masks")));
        var batched = ml.Data.CreateEnumerable<IdAndProbability>(scored, reuseRowObject: false).Single(r => r.Id == "case03").Probability;
        for (int i = 0; i < 256; i++)
            Assert.AreEqual(batched[i], prediction.Probability[i], 1e-5, $"pixel {i}");

        (code, stdout, stderr) = Medseg("info", model);
        Assert.AreEqual(0, code, stderr);
        StringAssert.Contains(stdout, "input schema ImagePath: String");
        StringAssert.Contains(stdout, "adds   Image: Image<16, 16>");
        StringAssert.Contains(stdout, "3. SegmentationTransformer (MLNetMedSeg)");
        StringAssert.Contains(stdout, "adds   Probability: Vector<Single, 1, 16, 16>, Predicted: Vector<Single, 1, 16, 16>");
        StringAssert.Contains(stdout, "entry  MEDSEG.SEGMENTER");
        StringAssert.Contains(stdout, "\"architecture\":\"UNet\"");
        var segmenter = chain.OfType<SegmentationTransformer>().Single();
        long parameters = segmenter.Network.parameters().Sum(p => p.numel());
        StringAssert.Contains(stdout, $"network UNet: {parameters:N0} trainable parameters");

        string pred = Path.Combine(_dir, "pred");
        (code, stdout, stderr) = Medseg("predict", "--model", model, "--images", Path.Combine(data, "images"), "--out", pred);
        Assert.AreEqual(0, code, stderr);
        var files = Directory.GetFiles(pred).Select(Path.GetFileName).Order().ToArray();
        Assert.AreEqual(10, files.Length);
        Assert.AreEqual("case00.png", files[0]);
        var m = ImageIO.Read(Path.Combine(pred, "case00.png"));
        Assert.AreEqual((24, 20, 1), (m.Width, m.Height, m.Channels), "masks come back at the image's own size");
        Assert.IsTrue(m.Pixels8!.All(v => v is 0 or 255), "binary 0/255 masks");

        string json = Path.Combine(_dir, "eval.json");
        (code, stdout, stderr) = Medseg("evaluate", "--model", model, "--data", data, "--out", json);
        Assert.AreEqual(0, code, stderr);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        Assert.AreEqual(10, doc.RootElement.GetProperty("imageCount").GetInt32());
        double miou = doc.RootElement.GetProperty("mIoU").GetDouble();
        Assert.IsTrue(miou is >= 0 and <= 1);
        // The same scores as the app computes from the loaded model: masks loaded at the model's 16×16, ml.MedSeg().Evaluate.
        var withMasks = ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", 16, 16)
            .Fit(ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(data, "images"), Path.Combine(data, "masks")))
            .Transform(ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(data, "images"), Path.Combine(data, "masks")));
        var expected = ml.MedSeg().Evaluate(loaded.Transform(withMasks));
        Assert.AreEqual(expected.MeanIoU, miou, 1e-9);
        Assert.AreEqual(expected.MeanDice, doc.RootElement.GetProperty("mDice").GetDouble(), 1e-9);
        (loaded as IDisposable)?.Dispose();
    }

    public sealed class IdAndProbability
    {
        public string Id { get; set; } = "";

        [VectorType(1, 16, 16)]
        public float[] Probability { get; set; } = [];
    }

    [TestMethod]
    public void TrainRejectsBadArguments()
    {
        Assert.AreEqual(2, Medseg("train", "--data", _dir, "--backbone", "resnet", "--out", "m.zip").code);
        Assert.AreEqual(2, Medseg("train", "--data", _dir, "--augment", "mixup", "--out", "m.zip").code);
        var (code, _, stderr) = Medseg("train", "--data", Path.Combine(_dir, "nope"), "--out", Path.Combine(_dir, "m.zip"));
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "nope");
        (code, _, stderr) = Medseg("evaluate", "--model", "m.zip", "--pred", "p", "--out", "x.json");
        Assert.AreEqual(1, code);
        StringAssert.Contains(stderr, "either --model and --data, or --pred and --gt");
    }
}
