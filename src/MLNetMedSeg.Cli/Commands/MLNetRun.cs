using System.IO.Compression;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using Microsoft.ML.Transforms;
using MLNetMedSeg.Core;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Dasp;
using MLNetMedSeg.Segmentation;
using CachedDataView = MLNetMedSeg.Data.CachedDataView;
using ConsoleProgressBar = MLNetMedSeg.Pipeline.ConsoleProgressBar;
using DataViews = MLNetMedSeg.Pipeline.DataViews;
using LoadMaskEstimator = MLNetMedSeg.Data.Transforms.LoadMaskEstimator;
using LoadMaskOptions = MLNetMedSeg.Data.Transforms.LoadMaskOptions;
using LoadMaskTransformer = MLNetMedSeg.Data.Transforms.LoadMaskTransformer;
using RowDataView = MLNetMedSeg.Data.RowDataView;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// What the verbs share on ML.NET: the <see cref="MLContext"/> of a run (seed, device, warnings, progress bar), data
/// folders as ML.NET data views (<c>Id</c>, <c>ImagePath</c>, <c>MaskPath</c>), the seeded split, the image and mask
/// loading stages, and the stages of a loaded model file.
/// </summary>
internal static class MLNetRun
{
    /// <summary>The column names every verb uses (those of <c>LoadImageMaskPairs</c>, <c>LoadImages</c> and <c>LoadMasks</c>).</summary>
    public const string Id = "Id", ImagePath = "ImagePath", MaskPath = "MaskPath", Image = "Image", Mask = "Mask", Probability = "Probability";

    /// <summary>
    /// The MLContext of one command: <paramref name="seed"/>, the device of <paramref name="device"/> ("cpu", "cuda",
    /// "cuda:N") as <see cref="MLContext.GpuDeviceId"/> (no silent fallback to the CPU: a missing CUDA device is an
    /// error here, before any work), ML.NET's warnings as "warning: ..." lines on stderr, and
    /// <paramref name="cancellationToken"/> (the command's: Ctrl+C, SIGTERM) as every stage's cancellation.
    /// </summary>
    public static MLContext CreateContext(CliConsole console, int seed, string device, CancellationToken cancellationToken)
    {
        var d = Devices.Parse(device);
        var ml = new MLContext(seed);
        ml.MedSeg().CancellationToken = cancellationToken;   // Ctrl+C / SIGTERM stop every stage's loop at its next step
        if (d.type == DeviceType.CUDA)
        {
            ml.GpuDeviceId = Math.Max(0, (int)d.index);
            ml.FallbackToCpu = false;
        }
        ml.Log += (_, e) =>
        {
            if (e.Kind == ChannelMessageKind.Warning) console.Err.WriteLine($"warning: {e.RawMessage}");
        };
        MLContextBridge.DeviceFor(ml);
        return ml;
    }

    /// <summary>A progress bar on stderr fed by every long Fit started from <paramref name="ml"/> (set it before creating stages).</summary>
    public static ConsoleProgressBar AttachProgressBar(MLContext ml, CliConsole console)
    {
        var bar = new ConsoleProgressBar(console.Err);
        ml.MedSeg().Progress = bar;
        return bar;
    }

    /// <summary>DIR/images and DIR/masks matched by file stem, sorted by id: the text columns Id, ImagePath, MaskPath.</summary>
    public static IDataView LoadPairs(MLContext ml, string dir, string what = "data")
    {
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"the {what} folder '{dir}' does not exist");
        return ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(dir, "images"), Path.Combine(dir, "masks"));
    }

    /// <summary>
    /// The seeded split the CLI has always used (the library's <c>TrainValidationTestSplit</c> on the pairs sorted by
    /// id): the rows permuted by <c>new Random(seed)</c>; the first round(n·<paramref name="trainFraction"/>) are
    /// Train, the next round(n·<paramref name="validationFraction"/>) Validation, the rest Test (each part in id order).
    /// Same seed and folder → same rows in each part.
    /// </summary>
    public static SplitPairs Split(MLContext ml, IDataView pairs, double trainFraction, double validationFraction, int seed)
    {
        var rows = ml.Data.CreateEnumerable<ImageMaskPathRow>(pairs, reuseRowObject: false).ToList();
        var (nTrain, nValidation) = DataViews.SplitCounts(rows.Count, trainFraction, validationFraction);
        var perm = RowDataView.Permutation(rows.Count, new Random(seed));
        List<ImageMaskPathRow> Part(long from, long count) =>
            perm.Skip((int)from).Take((int)count).Order().Select(i => rows[(int)i]).ToList();
        var train = Part(0, nTrain);
        var validation = Part(nTrain, nValidation);
        var test = Part(nTrain + nValidation, rows.Count - nTrain - nValidation);
        return new SplitPairs(ml.Data.LoadFromEnumerable(train), ml.Data.LoadFromEnumerable(validation), ml.Data.LoadFromEnumerable(test),
            train.Count, validation.Count, test.Count);
    }

    /// <summary>The three parts of <see cref="Split"/> and their row counts.</summary>
    public sealed record SplitPairs(IDataView Train, IDataView Validation, IDataView Test, int TrainCount, int ValidationCount, int TestCount);

    /// <summary>Rows of a data view (read with a cursor over no columns).</summary>
    public static long CountRows(IDataView data)
    {
        if (data.GetRowCount() is long n) return n;
        long count = 0;
        using var cursor = data.GetRowCursor([]);
        while (cursor.MoveNext()) count++;
        return count;
    }

    /// <summary>
    /// ImagePath → Image: <c>LoadImages</c>, then <c>ResizeImages</c> to <paramref name="height"/>×<paramref name="width"/>
    /// by stretching (<see cref="ImageResizingEstimator.ResizingKind.Fill"/>: the masks of <see cref="LoadMasks"/> are
    /// stretched the same way; ML.NET's default, IsoCrop, would crop the image and not its mask).
    /// </summary>
    public static EstimatorChain<ImageResizingTransformer> LoadImages(MLContext ml, int height, int width) =>
        ml.Transforms.LoadImages(Image, null, ImagePath)
            .Append(ml.Transforms.ResizeImages(Image, width, height, resizing: ImageResizingEstimator.ResizingKind.Fill));

    /// <summary>
    /// ImagePath → Image for the files of <paramref name="pairs"/>: ML.NET's <c>LoadImages</c> + <c>ResizeImages</c> (as
    /// above) when ImageAnalytics can decode them; when the folder holds TIFF images (8 or 16 bits, as microscopy and
    /// radiology exports are), which ImageAnalytics cannot decode, the library's <c>ml.MedSeg().Transforms.LoadImages</c>
    /// (float [3,H,W] in [0,1], resized bilinearly and stretched the same way). The saved model keeps the loader it was
    /// trained with, so it predicts from files of the same kind.
    /// </summary>
    /// <remarks>A flat chain, so that what callers append to it stays at the top level of the fitted model.</remarks>
    public static EstimatorChain<ITransformer> LoadImages(MLContext ml, IDataView pairs, int height, int width) =>
        HasTiffImages(pairs)
            ? new EstimatorChain<ITransformer>().Append<ITransformer>(ml.MedSeg().Transforms.LoadImages(Image, null, ImagePath, width, height))
            : new EstimatorChain<ITransformer>()
                .Append<ITransformer>(ml.Transforms.LoadImages(Image, null, ImagePath))
                .Append<ITransformer>(ml.Transforms.ResizeImages(Image, width, height, resizing: ImageResizingEstimator.ResizingKind.Fill));

    /// <summary>True when any ImagePath of <paramref name="pairs"/> is a .tif/.tiff file.</summary>
    public static bool HasTiffImages(IDataView pairs) =>
        pairs.GetColumn<ReadOnlyMemory<char>>(ImagePath).Any(p =>
            Path.GetExtension(p.ToString()) is { } e && (e.Equals(".tif", StringComparison.OrdinalIgnoreCase) || e.Equals(".tiff", StringComparison.OrdinalIgnoreCase)));

    /// <summary>MaskPath → Mask: float [1,H,W] in {0,1} (nearest resize, binarised), or class indices with <paramref name="valueToClass"/>.</summary>
    public static LoadMaskEstimator LoadMasks(MLContext ml, int height, int width, Dictionary<int, long>? valueToClass = null) =>
        ml.MedSeg().Transforms.LoadMasks(new LoadMaskOptions
        {
            OutputColumnName = Mask, InputColumnName = MaskPath, Height = height, Width = width, MaskValueToClass = valueToClass,
        });

    /// <summary>Keeps the columns the library's flows read (Id, Image, Mask).</summary>
    public static ColumnSelectingEstimator SelectIdImageMask(MLContext ml) => ml.Transforms.SelectColumns(Id, Image, Mask);

    /// <summary>Reads an ML.NET data view once into the library's in-memory view (images as float [3,H,W] tensors); dispose it.</summary>
    public static CachedDataView Cache(IDataView data, CancellationToken ct) => CachedDataView.Create(MLNetData.AsLibraryView(data), ct);

    /// <summary>The input schema saved with a model that predicts from an image file: one text column, ImagePath.</summary>
    public static DataViewSchema ImagePathSchema()
    {
        var b = new DataViewSchema.Builder();
        b.AddColumn(ImagePath, TextDataViewType.Instance);
        return b.ToSchema();
    }

    /// <summary>
    /// <c>ml.MedSeg().LoadModel</c> (errors name the file), with one more hint: a file in the library's own earlier
    /// model format (a zip with an MLNetMedSeg <c>manifest.json</c>) is named as such, with what to do about it.
    /// </summary>
    public static ITransformer LoadModel(MLContext ml, string path, out DataViewSchema inputSchema)
    {
        try
        {
            return ml.MedSeg().LoadModel(path, out inputSchema);
        }
        catch (InvalidDataException e) when (IsEarlierFormat(path))
        {
            throw new InvalidDataException($"'{path}' is a model file of an earlier MLNetMedSeg (its own format, not an ML.NET model): " +
                "model files are now ML.NET models (ml.Model.Load reads them); train or generate it again with this version", e);
        }
    }

    private static bool IsEarlierFormat(string path)
    {
        try
        {
            using var zip = ZipFile.OpenRead(path);
            if (zip.GetEntry("manifest.json") is not { } entry) return false;
            using var reader = new StreamReader(entry.Open());
            return reader.ReadToEnd().Contains("\"MLNetMedSeg.Model\"", StringComparison.Ordinal);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The stages of a model, nested chains flattened, in order.</summary>
    public static IReadOnlyList<ITransformer> Stages(ITransformer model) =>
        model is IEnumerable<ITransformer> chain ? chain.SelectMany(Stages).ToList() : [model];

    /// <summary>The height and width of an image column (MLImage with a size, or a float vector [C,H,W]).</summary>
    public static (int Height, int Width)? ImageSize(DataViewSchema schema, string column) => schema.GetColumnOrNull(column)?.Type switch
    {
        ImageDataViewType { Height: > 0, Width: > 0 } t => (t.Height, t.Width),
        VectorDataViewType { Dimensions.Length: 3 } v when v.Dimensions[1] > 0 && v.Dimensions[2] > 0 => (v.Dimensions[1], v.Dimensions[2]),
        _ => null,
    };

    /// <summary>
    /// The segmenter of a loaded model and the stages in front of it: the model's last stage must be a
    /// <see cref="SegmentationTransformer"/>, a cDAL model (<see cref="MLNetMedSeg.Segmentation.Cdal.CdalTransformer"/>) or a
    /// <see cref="DaspTransformer"/> (whose segmenter is taken), preceded
    /// only by ML.NET's image loading and resizing (and mask loading, which is left out: the verbs load the masks at the
    /// images' size themselves). <paramref name="verb"/> names the command in errors.
    /// </summary>
    public static (IDifferentiableSegmenter Segmenter, TransformerChain<ITransformer> ImageStages) Segmenter(ITransformer model, string path, string verb)
    {
        var stages = Stages(model);
        if (stages.Count == 0) throw new ArgumentException($"model '{path}' is empty");
        IDifferentiableSegmenter? segmenter = stages[^1] switch
        {
            IDifferentiableSegmenter s => s,
            DaspTransformer d => d.Segmenter,
            _ => null,
        };
        if (segmenter is null)
        {
            if (stages.Any(s => s is IDifferentiableSegmenter or DaspTransformer))
                throw new ArgumentException($"model '{path}': a {stages[^1].GetType().Name} follows the segmenter; '{verb}' needs a model whose last stage is the segmenter");
            throw new ArgumentException($"model '{path}' holds no segmentation model (its stages: {string.Join(", ", stages.Select(s => s.GetType().Name))})");
        }
        var before = new List<ITransformer>();
        foreach (var t in stages.Take(stages.Count - 1))
        {
            if (t is LoadMaskTransformer) continue; // the verbs load the masks themselves, at the images' size
            if (t is not (ImageLoadingTransformer or ImageResizingTransformer))
                throw new ArgumentException($"model '{path}': '{verb}' runs the segmenter on loaded, resized images only; the stage {t.GetType().Name} before it is not supported");
            before.Add(t);
        }
        return (segmenter, new TransformerChain<ITransformer>(before.ToArray()));
    }
}
