using MLNetMedSeg.Imaging;

namespace MLNetMedSeg.Data;

/// <summary>
/// Images without masks (for prediction): columns Id (file stem), Image (float32 [C,H,W] in [0,1]) and ImagePath,
/// sorted by id and decoded lazily. Made by <see cref="Pipeline.ImageFolderCatalogExtensions.LoadImages"/>.
/// </summary>
internal sealed class ImageFolderDataView : RowDataView
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
