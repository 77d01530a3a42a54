namespace MLNetMedSeg.Data.Transforms;

/// <summary>
/// Short factories of the engine's tensor transforms (internal: the library's tools and tests build engine pipelines
/// with them; applications use <c>ml.MedSeg().Transforms</c> and ML.NET's image transforms).
/// </summary>
internal static class EngineTransforms
{
    /// <summary>Bilinear resize of images and nearest resize of masks to <paramref name="height"/>×<paramref name="width"/> (null leaves a column out).</summary>
    public static ResizeEstimator Resize(int height, int width, string? imageColumn = "Image", string? maskColumn = "Mask") =>
        new(new ResizeOptions { Height = height, Width = width, ImageColumn = imageColumn, MaskColumn = maskColumn });

    /// <summary>Thresholds a soft mask column at <paramref name="threshold"/>.</summary>
    public static BinarizeMaskEstimator BinarizeMask(double threshold = 0.5, string column = "Mask") =>
        new(new BinarizeMaskOptions { Threshold = threshold, Column = column });

    /// <summary>Converts an image column to <paramref name="channels"/> channels (1 or 3).</summary>
    public static ConvertChannelsEstimator ConvertChannels(int channels, string column = "Image") =>
        new(new ConvertChannelsOptions { Channels = channels, Column = column });

    /// <summary>Maps mask pixel values to class indices.</summary>
    public static MapMaskValuesEstimator MapMaskValues(IReadOnlyDictionary<int, long> map, string column = "Mask") =>
        new(new MapMaskValuesOptions { Map = new Dictionary<int, long>(map), Column = column });
}
