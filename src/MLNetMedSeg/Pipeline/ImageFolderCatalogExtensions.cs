using MLNetMedSeg.Data;
using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Pipeline;

/// <summary>Image folders without masks on <c>ctx.Data</c>.</summary>
public static class ImageFolderCatalogExtensions
{
    /// <summary>
    /// Loads every image file (by extension, as <see cref="ImageMaskLoaderOptions.Extensions"/>) of a folder, without masks.
    /// <paramref name="channels"/> (1 or 3) converts gray↔RGB; null keeps each file's.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="InvalidDataException">The folder holds no image file, or two files share a stem.</exception>
    public static ImageFolderDataView LoadImages(this DataCatalog catalog, string folder, int? channels = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        if (channels is not null and not 1 and not 3) throw new ArgumentOutOfRangeException(nameof(channels), channels, "channels must be 1, 3 or null");
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"the image folder '{folder}' does not exist");
        var exts = new HashSet<string>(new ImageMaskLoaderOptions().Extensions, StringComparer.OrdinalIgnoreCase);
        var files = new List<(string Id, string Path)>();
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
        {
            if (!exts.Contains(Path.GetExtension(f))) continue;
            string stem = Path.GetFileNameWithoutExtension(f);
            if (!seen.TryAdd(stem, f))
                throw new InvalidDataException($"the image folder '{folder}' has two files named '{stem}': '{Path.GetFileName(seen[stem])}' and '{Path.GetFileName(f)}'");
            files.Add((stem, Path.GetFullPath(f)));
        }
        if (files.Count == 0)
            throw new InvalidDataException($"the image folder '{folder}' holds no image files ({string.Join(", ", exts)})");
        return new ImageFolderDataView([.. files], channels);
    }
}
