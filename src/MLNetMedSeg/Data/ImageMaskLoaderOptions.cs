namespace MLNetMedSeg.Data;

/// <summary>What a loader does with an image that has no mask, or a mask that has no image.</summary>
public enum UnmatchedFilePolicy
{
    /// <summary>Fail, listing every unmatched file by name (default: never pair silently).</summary>
    Error = 0,
    /// <summary>Leave the unmatched files out, and log a warning listing them through <c>MedSegContext.Log</c>.</summary>
    SkipWithWarning = 1,
}

/// <summary>
/// Options of <c>ml.MedSeg().Data.LoadImageMaskPairs</c> (folder pairing) and of the engine's folder and manifest loaders.
/// </summary>
public sealed class ImageMaskLoaderOptions
{
    /// <summary>
    /// Channels of the Image column: null keeps each file's (gray → 1, RGB → 3; alpha dropped), 1 converts RGB to gray
    /// (ITU-R BT.601 luma), 3 repeats gray into RGB. Default null.
    /// </summary>
    public int? ImageChannels { get; set; }

    /// <summary>
    /// Binary masks: a pixel is foreground (1) when its value is above this fraction of full scale (255 for 8-bit,
    /// 65535 for 16-bit), else background (0); the value of an RGB mask is its largest channel. Default 0.5: Kvasir-SEG's
    /// JPEG masks hold 0–10 and 245–255, so anything from 0.04 to 0.96 gives the same masks (the dataset's README
    /// thresholds at 127).
    /// </summary>
    public double MaskThreshold { get; set; } = 0.5;

    /// <summary>
    /// When true, a binary mask with any pixel other than 0 or full scale is an error naming the file; when false
    /// (default) such pixels are thresholded, counted (<see cref="ImageMaskDataView.NonBinaryMaskPixels"/>) and
    /// each file that had any is logged.
    /// </summary>
    public bool StrictBinaryMasks { get; set; }

    /// <summary>
    /// Multi-class masks: maps raw mask values (of the first channel, 0..255 or 0..65535) to class indices, e.g.
    /// {0:0, 128:1, 255:2}. When set, the Mask column is an int64 [H,W] class mask and a value not in the map is an
    /// error naming the file and the value. Default null (binary masks).
    /// </summary>
    public IReadOnlyDictionary<int, long>? MaskValueToClass { get; set; }

    /// <summary>Images without a mask and masks without an image. Default <see cref="UnmatchedFilePolicy.Error"/>.</summary>
    public UnmatchedFilePolicy UnmatchedFiles { get; set; } = UnmatchedFilePolicy.Error;

    /// <summary>File extensions (case-insensitive) taken as images or masks in a folder; other files are ignored.</summary>
    public IReadOnlyList<string> Extensions { get; set; } = [".jpg", ".jpeg", ".png", ".tif", ".tiff"];

    internal void Validate()
    {
        if (ImageChannels is not null and not 1 and not 3)
            throw new ArgumentOutOfRangeException(nameof(ImageChannels), ImageChannels, "ImageChannels must be 1, 3 or null");
        if (double.IsNaN(MaskThreshold) || MaskThreshold < 0 || MaskThreshold >= 1)
            throw new ArgumentOutOfRangeException(nameof(MaskThreshold), MaskThreshold, "MaskThreshold must be in [0, 1)");
        if (MaskValueToClass is { } map)
        {
            if (map.Count == 0) throw new ArgumentException("MaskValueToClass is empty", nameof(MaskValueToClass));
            foreach (var (k, v) in map)
            {
                if (k is < 0 or > 65535) throw new ArgumentOutOfRangeException(nameof(MaskValueToClass), k, $"mask value {k} is outside 0..65535");
                if (v < 0) throw new ArgumentOutOfRangeException(nameof(MaskValueToClass), v, $"class {v} (for value {k}) is negative");
            }
        }
    }
}
