using MLNetMedSeg.Imaging;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Data;

/// <summary>
/// Images without masks (for prediction): columns Id (file stem), Image (float32 [C,H,W] in [0,1]) and ImagePath,
/// sorted by id and decoded lazily. Made by <see cref="ImageFolderCatalogExtensions.LoadImages"/>.
/// </summary>
public sealed class ImageFolderDataView : RowDataView
{
    private readonly (string Id, string Path)[] _files;
    private readonly int? _channels;

    internal ImageFolderDataView((string Id, string Path)[] files, int? channels)
        : base(DataViewSchema.Create(
            (ImageMaskDataView.IdColumn, TextColumnType.Instance),
            (ImageMaskDataView.ImageColumn, TensorColumnType.Image(channels ?? -1)),
            (ImageMaskDataView.ImagePathColumn, TextColumnType.Instance)))
    {
        _files = files;
        _channels = channels;
    }

    /// <summary>The files, in row order.</summary>
    public IReadOnlyList<(string Id, string Path)> Files => _files;

    public override long RowCount => _files.Length;

    protected override object ComputeValue(long row, DataViewSchema.Column column) => column.Name switch
    {
        ImageMaskDataView.IdColumn => _files[row].Id,
        ImageMaskDataView.ImagePathColumn => _files[row].Path,
        ImageMaskDataView.ImageColumn => ImageIO.ReadTensor(_files[row].Path, _channels),
        _ => throw new SchemaException($"column '{column.Name}' is not a column of this view", column.Name),
    };
}

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
