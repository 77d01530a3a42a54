using MLNetMedSeg.Core;
using MLNetMedSeg.Imaging;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Data;

/// <summary>One image/mask pair of an <see cref="ImageMaskDataView"/>.</summary>
/// <param name="Id">Row id (the file stem, or the manifest's id).</param>
/// <param name="ImagePath">Full path of the image file.</param>
/// <param name="MaskPath">Full path of the mask file.</param>
internal sealed record ImageMaskPair(string Id, string ImagePath, string MaskPath);

/// <summary>
/// The view made by the image/mask loaders: columns Id, Image (float32 [C,H,W] in [0,1]), Mask (float32 [1,H,W]
/// binary, or int64 [H,W] class mask with a value→class map), ImagePath and MaskPath. Files are decoded only when a
/// cursor asks for Image or Mask; a corrupt file fails then, naming the file. Binary masks are thresholded and their
/// non-binary pixels counted per file (<see cref="NonBinaryMaskPixels"/>: the total over the masks read so far).
/// An image and its mask of different sizes fail (naming both files and sizes) when both of the row's Image and Mask
/// have been read.
/// </summary>
internal sealed class ImageMaskDataView : RowDataView
{
    /// <summary>Column names.</summary>
    public const string IdColumn = "Id", ImageColumn = "Image", MaskColumn = "Mask", ImagePathColumn = "ImagePath", MaskPathColumn = "MaskPath";

    private const string Source = "ImageMaskLoader";
    private readonly ImageMaskPair[] _pairs;
    private readonly ImageMaskLoaderOptions _options;
    private readonly Action<string, string>? _log;
    private readonly long[] _nonBinary; // per row; -1 = mask not read yet
    private readonly (int H, int W)?[] _imageSize, _maskSize;
    private readonly long[]? _lookup; // raw value -> class, -1 unknown

    /// <param name="pairs">The matched files.</param>
    /// <param name="options">Decoding options.</param>
    /// <param name="log">Receives (source, message) lines worth an information log entry (non-binary masks binarised).</param>
    internal ImageMaskDataView(IReadOnlyList<ImageMaskPair> pairs, ImageMaskLoaderOptions options, Action<string, string>? log)
        : base(MakeSchema(options))
    {
        _pairs = pairs.ToArray();
        _options = options;
        _log = log;
        _nonBinary = Enumerable.Repeat(-1L, _pairs.Length).ToArray();
        _imageSize = new (int, int)?[_pairs.Length];
        _maskSize = new (int, int)?[_pairs.Length];
        if (options.MaskValueToClass is { } map)
            _lookup = MaskDecoding.Lookup(map);
    }

    private static DataViewSchema MakeSchema(ImageMaskLoaderOptions o) => DataViewSchema.Create(
        (IdColumn, TextColumnType.Instance),
        (ImageColumn, TensorColumnType.Image(o.ImageChannels ?? -1)),
        (MaskColumn, o.MaskValueToClass is null ? TensorColumnType.BinaryMask() : TensorColumnType.ClassMask()),
        (ImagePathColumn, TextColumnType.Instance),
        (MaskPathColumn, TextColumnType.Instance));

    /// <summary>The matched pairs, in row order (sorted by id).</summary>
    public IReadOnlyList<ImageMaskPair> Pairs => _pairs;

    public override long RowCount => _pairs.Length;

    /// <summary>
    /// Total number of mask pixels that were neither 0 nor full scale, over the masks read so far (each file counted
    /// once however often it is read). After one full pass it is the dataset's total.
    /// </summary>
    public long NonBinaryMaskPixels
    {
        get { lock (_nonBinary) return _nonBinary.Where(v => v > 0).Sum(); }
    }

    /// <summary>Ids of the masks read so far that had non-binary pixels, with their counts.</summary>
    public IReadOnlyDictionary<string, long> NonBinaryMaskPixelsByFile
    {
        get { lock (_nonBinary) return Enumerable.Range(0, _pairs.Length).Where(i => _nonBinary[i] > 0).ToDictionary(i => _pairs[i].Id, i => _nonBinary[i]); }
    }

    /// <summary>Number of masks read so far (each file once).</summary>
    public int MasksRead
    {
        get { lock (_nonBinary) return _nonBinary.Count(v => v >= 0); }
    }

    protected override object ComputeValue(long row, DataViewSchema.Column column)
    {
        var p = _pairs[row];
        switch (column.Name)
        {
            case IdColumn: return p.Id;
            case ImagePathColumn: return p.ImagePath;
            case MaskPathColumn: return p.MaskPath;
            case ImageColumn:
            {
                var img = ImageIO.Read(p.ImagePath);
                SetSize(row, img.Height, img.Width, isImage: true);
                return ImageIO.ToTensor(img, _options.ImageChannels);
            }
            case MaskColumn:
            {
                var m = ImageIO.Read(p.MaskPath);
                SetSize(row, m.Height, m.Width, isImage: false);
                return _lookup is null ? ToBinaryMask(row, m) : ToClassMask(p.MaskPath, m);
            }
            default: throw new SchemaException($"column '{column.Name}' is not a column of this view", column.Name);
        }
    }

    private void SetSize(long row, int h, int w, bool isImage)
    {
        (int H, int W)? other;
        lock (_imageSize)
        {
            if (isImage) _imageSize[row] = (h, w); else _maskSize[row] = (h, w);
            other = isImage ? _maskSize[row] : _imageSize[row];
        }
        var p = _pairs[row];
        if (other is { } o && (o.H != h || o.W != w))
        {
            var (ih, iw) = isImage ? (h, w) : (o.H, o.W);
            var (mh, mw) = isImage ? (o.H, o.W) : (h, w);
            throw new InvalidDataException(
                $"image '{p.ImagePath}' is {iw}x{ih} (width x height) but its mask '{p.MaskPath}' is {mw}x{mh}; an image and its mask must have the same size");
        }
    }

    private Tensor ToBinaryMask(long row, DecodedImage m)
    {
        var p = _pairs[row];
        var t = MaskDecoding.ToBinaryMask(m, _options.MaskThreshold, _options.StrictBinaryMasks, p.MaskPath, out long nonBinary);
        bool first;
        lock (_nonBinary)
        {
            first = _nonBinary[row] < 0;
            _nonBinary[row] = nonBinary;
        }
        if (first && nonBinary > 0)
            _log?.Invoke(Source, MaskDecoding.NonBinaryMessage(p.MaskPath, nonBinary, m, _options.MaskThreshold));
        return t;
    }

    private Tensor ToClassMask(string path, DecodedImage m) => MaskDecoding.ToClassMask(m, _lookup!, path, _options.MaskValueToClass!.Keys);
}
