using MLNetMedSeg;
using MLNetMedSeg.Data;
using MLNetMedSeg.Data.Transforms;
using MLNetMedSeg.Pipeline;
using Microsoft.ML.Runtime;

namespace Microsoft.ML;

/// <summary>One row of <see cref="MedSegDataCatalogExtensions.LoadImageMaskPairs"/>: an id and the two file paths.</summary>
public sealed class ImageMaskPathRow
{
    /// <summary>The shared file name without extension.</summary>
    public string Id { get; set; } = "";

    /// <summary>The image's full path (feed it to <c>ml.Transforms.LoadImages</c>).</summary>
    public string ImagePath { get; set; } = "";

    /// <summary>The mask's full path (feed it to <c>ml.MedSeg().Transforms.LoadMasks</c>).</summary>
    public string MaskPath { get; set; } = "";
}

/// <summary>Loading image/mask pairs into ML.NET data views (<c>ml.MedSeg().Data</c>).</summary>
public static class MedSegDataCatalogExtensions
{
    /// <summary>
    /// Pairs a folder of images with a folder of masks by file name without extension ("a.jpg" ↔ "a.png"; never by
    /// order) and returns the pairs as an ML.NET data view with the text columns <c>Id</c>, <c>ImagePath</c> and
    /// <c>MaskPath</c>, sorted by id. Files with no partner are an error listing them all, or with
    /// <see cref="UnmatchedFilePolicy.SkipWithWarning"/> left out and listed in <see cref="MLContext.Log"/>.
    /// Load the pixels with <c>ml.Transforms.LoadImages("Image", null, "ImagePath")</c> and
    /// <c>ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", width, height)</c>.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">A folder does not exist (named).</exception>
    /// <exception cref="InvalidDataException">A folder holds no image files, a name appears twice in one folder, or files are unmatched.</exception>
    public static IDataView LoadImageMaskPairs(this MedSegDataCatalog catalog, string imageFolder, string maskFolder, ImageMaskLoaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(imageFolder);
        ArgumentException.ThrowIfNullOrEmpty(maskFolder);
        options ??= new ImageMaskLoaderOptions();
        options.Validate();
        var ml = catalog.Owner.MLContext;
        var pairs = DataViews.MatchPairs(imageFolder, maskFolder, options, msg =>
        {
            using var ch = ((Microsoft.ML.Runtime.IHostEnvironment)ml).Register("LoadImageMaskPairs").Start("load");
            ch.Warning(msg);
        });
        var rows = pairs.Select(p => new ImageMaskPathRow { Id = p.Id, ImagePath = p.ImagePath, MaskPath = p.MaskPath }).ToList();
        return ml.Data.LoadFromEnumerable(rows);
    }

    /// <summary>
    /// A seeded three-way split (default 80/10/10, the papers' Kvasir-SEG protocol) built on ML.NET's
    /// <c>ml.Data.TrainTestSplit</c>: the test part first, then the validation part out of the rest. Rows are assigned
    /// by a hash of <paramref name="samplingKeyColumnName"/> (e.g. "Id": the same image always lands in the same part,
    /// whatever the row order) or, without one, by a seeded random key. For k-fold cross-validation use ML.NET's
    /// <c>ml.Data.CrossValidationSplit</c> directly.
    /// </summary>
    public static TrainValidationTestData TrainValidationTestSplit(this MedSegDataCatalog catalog, IDataView data,
        double validationFraction = 0.1, double testFraction = 0.1, string? samplingKeyColumnName = null, int? seed = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(data);
        if (!(testFraction > 0 && testFraction < 1)) throw new ArgumentOutOfRangeException(nameof(testFraction), testFraction, "testFraction must be in (0, 1)");
        if (!(validationFraction > 0 && validationFraction + testFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "validationFraction must be > 0 and leave rows to train on");
        var ml = catalog.Owner.MLContext;
        var first = ml.Data.TrainTestSplit(data, testFraction, samplingKeyColumnName, seed);
        var second = ml.Data.TrainTestSplit(first.TrainSet, validationFraction / (1 - testFraction), samplingKeyColumnName, seed is int s ? s + 1 : null);
        return new TrainValidationTestData(second.TrainSet, second.TestSet, first.TestSet);
    }
}

/// <summary>The three parts of <see cref="MedSegDataCatalogExtensions.TrainValidationTestSplit"/>.</summary>
/// <param name="Train">Rows to train on.</param>
/// <param name="Validation">Rows for model selection (best epoch, early stopping).</param>
/// <param name="Test">Held-out rows for the final figures.</param>
public sealed record TrainValidationTestData(IDataView Train, IDataView Validation, IDataView Test);

/// <summary>Image and mask transforms (<c>ml.MedSeg().Transforms</c>).</summary>
public static class MedSegTransformsCatalogExtensions
{
    /// <summary>
    /// Loads masks from the paths in <paramref name="inputColumnName"/> into <paramref name="outputColumnName"/> as
    /// float [1, <paramref name="imageHeight"/>, <paramref name="imageWidth"/>] in {0,1}: nearest-neighbour resize
    /// (never interpolated), foreground above <paramref name="threshold"/> of full scale; pixels that were not binary
    /// are counted and logged. The masks are stretched to the size (no cropping): resize the images the same way,
    /// <c>ResizeImages(..., resizing: ImageResizingEstimator.ResizingKind.Fill)</c> — ImageAnalytics' default, IsoCrop,
    /// crops the image to the aspect ratio and would misalign a non-square image with its mask.
    /// </summary>
    public static LoadMaskEstimator LoadMasks(this MedSegTransformsCatalog catalog, string outputColumnName, string? imageFolder,
        string inputColumnName, int imageWidth, int imageHeight, double threshold = 0.5)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return catalog.LoadMasks(new LoadMaskOptions
        {
            OutputColumnName = outputColumnName, ImageFolder = imageFolder, InputColumnName = inputColumnName,
            Width = imageWidth, Height = imageHeight, Threshold = threshold,
        });
    }

    /// <summary>
    /// Loads images from the paths in <paramref name="inputColumnName"/> into <paramref name="outputColumnName"/> as
    /// float [<paramref name="channels"/>, <paramref name="imageHeight"/>, <paramref name="imageWidth"/>] in [0,1] —
    /// for the files ImageAnalytics' <c>ml.Transforms.LoadImages</c> cannot decode: TIFF (8/16 bit) and 16-bit PNG
    /// (JPEG, PNG, BMP, WebP work too). Bilinear resize, stretched (no cropping), so <c>LoadMasks</c> at the same size
    /// stays aligned. A missing or corrupt file is an error naming it.
    /// </summary>
    public static LoadImageEstimator LoadImages(this MedSegTransformsCatalog catalog, string outputColumnName, string? imageFolder,
        string inputColumnName, int imageWidth, int imageHeight, int channels = 3)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LoadImageEstimator(new LoadImageOptions
        {
            OutputColumnName = outputColumnName, ImageFolder = imageFolder, InputColumnName = inputColumnName,
            Width = imageWidth, Height = imageHeight, Channels = channels,
        });
    }

    /// <summary>Loads masks with every option (multi-class value maps, strict binary masks).</summary>
    public static LoadMaskEstimator LoadMasks(this MedSegTransformsCatalog catalog, LoadMaskOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new LoadMaskEstimator(options, catalog.ContextFor("LoadMasks"));
    }

    /// <summary>
    /// Thresholds a float mask column — a soft label, or a mask that went through an interpolating resize or
    /// normalisation — to {0,1}: a value above <paramref name="threshold"/> becomes 1, anything else 0. Reads
    /// <paramref name="inputColumnName"/> (float [1,H,W], or [H,W]) and writes float [1,H,W] to
    /// <paramref name="outputColumnName"/> (the same column when <paramref name="inputColumnName"/> is null, as ML.NET's
    /// transforms do). Nothing is learnt.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">The binary mask column.</param>
    /// <param name="inputColumnName">The mask read (default: <paramref name="outputColumnName"/>).</param>
    /// <param name="threshold">Values above it become 1 (default 0.5: half of full scale, as <see cref="LoadMasks(MedSegTransformsCatalog, string, string?, string, int, int, double)"/>).</param>
    public static BinarizeMaskEstimator BinarizeMask(this MedSegTransformsCatalog catalog, string outputColumnName,
        string? inputColumnName = null, double threshold = 0.5)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(outputColumnName);
        return catalog.BinarizeMask(new BinarizeMaskOptions
        {
            Column = inputColumnName ?? outputColumnName, OutputColumn = outputColumnName, Threshold = threshold,
        });
    }

    /// <summary>Thresholds a float mask column to {0,1} with every option.</summary>
    public static BinarizeMaskEstimator BinarizeMask(this MedSegTransformsCatalog catalog, BinarizeMaskOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new BinarizeMaskEstimator(options);
    }

    /// <summary>
    /// Maps the raw values of a mask to class indices, e.g. {0 → 0, 128 → 1, 255 → 2} for a three-label 8-bit mask,
    /// as <c>ml.Transforms.Conversion.MapValue</c> does for scalars. Reads <paramref name="inputColumnName"/> — float
    /// [1,H,W] in [0,1] (a value v is read as round(v·255), the 8-bit value), or an integer [H,W] class map — and writes
    /// an Int64 [H,W] class map to <paramref name="outputColumnName"/> (the input column when
    /// <paramref name="inputColumnName"/> is null), what the multi-class segmentation trainer and
    /// <c>EvaluateMultiClass</c> read. A value missing from the map is an error naming the column, the row and the value.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="outputColumnName">The class map column.</param>
    /// <param name="valueToClass">Mask value → class index (≥ 0).</param>
    /// <param name="inputColumnName">The mask read (default: <paramref name="outputColumnName"/>).</param>
    public static MapMaskValuesEstimator MapMaskValues(this MedSegTransformsCatalog catalog, string outputColumnName,
        IEnumerable<KeyValuePair<int, long>> valueToClass, string? inputColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(outputColumnName);
        ArgumentNullException.ThrowIfNull(valueToClass);
        return catalog.MapMaskValues(new MapMaskValuesOptions
        {
            Map = valueToClass.ToDictionary(kv => kv.Key, kv => kv.Value), Column = inputColumnName ?? outputColumnName, OutputColumn = outputColumnName,
        });
    }

    /// <summary>Maps mask values to class indices with every option (the full-scale value of float masks).</summary>
    public static MapMaskValuesEstimator MapMaskValues(this MedSegTransformsCatalog catalog, MapMaskValuesOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new MapMaskValuesEstimator(options);
    }
}
