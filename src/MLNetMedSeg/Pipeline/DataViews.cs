using System.Text;
using MLNetMedSeg.Data;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Pipeline;

/// <summary>A train/validation/test split of one view (disjoint, together covering every row).</summary>
internal sealed record TrainValidationTestData(IDataView Train, IDataView Validation, IDataView Test);

/// <summary>One fold of a k-fold split: <see cref="Test"/> is fold <see cref="Fold"/>, <see cref="Train"/> the other folds.</summary>
internal sealed record CrossValidationFold(int Fold, IDataView Train, IDataView Test);

/// <summary>The engine's loaders, splits, shuffling and caching over its internal data views (applications use <c>ml.MedSeg().Data</c> and ML.NET's own).</summary>
internal static class DataViews
{
    private static string Stem(string path) => Path.GetFileNameWithoutExtension(path);

    /// <summary>
    /// Loads a folder of images and a folder of masks, matched by file stem ("a.jpg" ↔ "a.png"; extensions do not
    /// matter, order never does). Columns: Id (the stem), Image (float32 [C,H,W] in [0,1]), Mask (float32 [1,H,W]
    /// {0,1}, or int64 [H,W] with <see cref="ImageMaskLoaderOptions.MaskValueToClass"/>), ImagePath, MaskPath. Rows
    /// are sorted by id. Files are listed now and decoded lazily, when a cursor reads them.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">A folder does not exist.</exception>
    /// <exception cref="InvalidDataException">A folder holds no image files, a stem appears twice in one folder, or
    /// (with the default <see cref="UnmatchedFilePolicy.Error"/>) some files have no partner — all listed by name.</exception>
    public static ImageMaskDataView LoadImagesAndMasks(MedSegContext context, string imageFolder, string maskFolder, ImageMaskLoaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(imageFolder);
        ArgumentException.ThrowIfNullOrEmpty(maskFolder);
        options ??= new ImageMaskLoaderOptions();
        options.Validate();
        var pairs = MatchPairs(imageFolder, maskFolder, options, msg => context.WriteLog(LogLevel.Warning, "LoadImagesAndMasks", msg));
        return new ImageMaskDataView(pairs, options, (source, message) => context.WriteLog(LogLevel.Info, source, message));
    }

    /// <summary>
    /// The image/mask pairs of two folders, matched by file stem and sorted by id; unmatched files are an error listing
    /// them, or (<see cref="UnmatchedFilePolicy.SkipWithWarning"/>) left out and passed to <paramref name="warn"/>.
    /// </summary>
    internal static List<ImageMaskPair> MatchPairs(string imageFolder, string maskFolder, ImageMaskLoaderOptions options, Action<string> warn)
    {
        var images = ListImages(imageFolder, options, "image");
        var masks = ListImages(maskFolder, options, "mask");
        var pairs = new List<ImageMaskPair>();
        var noMask = new List<string>();
        foreach (var (stem, path) in images)
            if (masks.TryGetValue(stem, out var m)) pairs.Add(new ImageMaskPair(stem, path, m));
            else noMask.Add(Path.GetFileName(path));
        var noImage = masks.Where(kv => !images.ContainsKey(kv.Key)).Select(kv => Path.GetFileName(kv.Value)).ToList();
        if (noMask.Count + noImage.Count > 0)
        {
            var msg = new StringBuilder();
            if (noMask.Count > 0) msg.Append($"{noMask.Count} image(s) in '{imageFolder}' have no mask in '{maskFolder}': {string.Join(", ", noMask.Order(StringComparer.Ordinal))}");
            if (noImage.Count > 0)
            {
                if (msg.Length > 0) msg.Append("; ");
                msg.Append($"{noImage.Count} mask(s) in '{maskFolder}' have no image in '{imageFolder}': {string.Join(", ", noImage.Order(StringComparer.Ordinal))}");
            }
            if (options.UnmatchedFiles == UnmatchedFilePolicy.Error)
                throw new InvalidDataException($"{msg} (files are matched by name without extension; set UnmatchedFiles = SkipWithWarning to leave them out)");
            warn($"skipped unmatched files: {msg}");
        }
        if (pairs.Count == 0)
            throw new InvalidDataException($"no image in '{imageFolder}' has a mask in '{maskFolder}'");
        pairs.Sort((a, b) => string.CompareOrdinal(a.Id, b.Id));
        return pairs;
    }

    private static Dictionary<string, string> ListImages(string folder, ImageMaskLoaderOptions options, string what)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"the {what} folder '{folder}' does not exist");
        var exts = new HashSet<string>(options.Extensions, StringComparer.OrdinalIgnoreCase);
        var byStem = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var f in Directory.EnumerateFiles(folder).Order(StringComparer.Ordinal))
        {
            if (!exts.Contains(Path.GetExtension(f))) continue;
            var stem = Stem(f);
            if (!byStem.TryAdd(stem, Path.GetFullPath(f)))
                throw new InvalidDataException($"the {what} folder '{folder}' has two files named '{stem}': '{Path.GetFileName(byStem[stem])}' and '{Path.GetFileName(f)}'");
        }
        if (byStem.Count == 0)
            throw new InvalidDataException($"the {what} folder '{folder}' holds no image files ({string.Join(", ", options.Extensions)})");
        return byStem;
    }

    /// <summary>
    /// Loads the pairs listed in a CSV manifest with the header <c>image,mask</c> or <c>image,mask,id</c> (any column
    /// order; fields may be double-quoted, with "" for a quote). Paths are relative to the CSV's folder (absolute paths
    /// are allowed); the id defaults to the image's file stem. Same columns and options as
    /// <see cref="LoadImagesAndMasks"/>; rows keep the manifest's order. Every file must exist.
    /// </summary>
    /// <exception cref="InvalidDataException">A bad header or line, a duplicate id, or a missing file (naming the CSV line and the file).</exception>
    public static ImageMaskDataView LoadFromManifest(MedSegContext context, string csvPath, ImageMaskLoaderOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrEmpty(csvPath);
        options ??= new ImageMaskLoaderOptions();
        options.Validate();
        if (!File.Exists(csvPath)) throw new FileNotFoundException($"the manifest '{csvPath}' does not exist", csvPath);
        string dir = Path.GetDirectoryName(Path.GetFullPath(csvPath))!;
        var lines = File.ReadAllLines(csvPath);
        int headerLine = Array.FindIndex(lines, l => l.Trim().Length > 0);
        if (headerLine < 0) throw new InvalidDataException($"the manifest '{csvPath}' is empty (expected a header 'image,mask[,id]')");
        var header = SplitCsvLine(lines[headerLine], csvPath, headerLine + 1).Select(h => h.Trim().ToLowerInvariant()).ToList();
        int iImage = header.IndexOf("image"), iMask = header.IndexOf("mask"), iId = header.IndexOf("id");
        if (iImage < 0 || iMask < 0)
            throw new InvalidDataException($"{csvPath}:{headerLine + 1}: the header must name the columns 'image' and 'mask' (and optionally 'id'), found: {lines[headerLine]}");
        var pairs = new List<ImageMaskPair>();
        var ids = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int k = headerLine + 1; k < lines.Length; k++)
        {
            if (lines[k].Trim().Length == 0) continue;
            int lineNo = k + 1;
            var f = SplitCsvLine(lines[k], csvPath, lineNo);
            if (f.Count != header.Count)
                throw new InvalidDataException($"{csvPath}:{lineNo}: expected {header.Count} fields, found {f.Count}");
            string image = Resolve(dir, f[iImage].Trim(), csvPath, lineNo, "image");
            string mask = Resolve(dir, f[iMask].Trim(), csvPath, lineNo, "mask");
            string id = iId >= 0 && f[iId].Trim().Length > 0 ? f[iId].Trim() : Stem(image);
            if (!ids.TryAdd(id, lineNo))
                throw new InvalidDataException($"{csvPath}:{lineNo}: id '{id}' was already used on line {ids[id]}");
            pairs.Add(new ImageMaskPair(id, image, mask));
        }
        if (pairs.Count == 0) throw new InvalidDataException($"the manifest '{csvPath}' lists no pairs");
        return new ImageMaskDataView(pairs, options, (source, message) => context.WriteLog(LogLevel.Info, source, message));
    }

    private static string Resolve(string dir, string path, string csv, int line, string what)
    {
        if (path.Length == 0) throw new InvalidDataException($"{csv}:{line}: the {what} path is empty");
        string full = Path.GetFullPath(Path.Combine(dir, path));
        if (!File.Exists(full)) throw new FileNotFoundException($"{csv}:{line}: the {what} file '{path}' does not exist (looked for '{full}')", full);
        return full;
    }

    /// <summary>Splits one CSV line into fields (RFC 4180 quoting, one physical line per record).</summary>
    internal static List<string> SplitCsvLine(string line, string csv, int lineNo)
    {
        var fields = new List<string>();
        var sb = new StringBuilder();
        int i = 0;
        while (true)
        {
            sb.Clear();
            if (i < line.Length && line[i] == '"')
            {
                i++;
                while (true)
                {
                    if (i >= line.Length) throw new InvalidDataException($"{csv}:{lineNo}: a quoted field is not closed");
                    if (line[i] == '"')
                    {
                        if (i + 1 < line.Length && line[i + 1] == '"') { sb.Append('"'); i += 2; continue; }
                        i++;
                        break;
                    }
                    sb.Append(line[i++]);
                }
                while (i < line.Length && line[i] is ' ' or '\t') i++;
                if (i < line.Length && line[i] != ',') throw new InvalidDataException($"{csv}:{lineNo}: unexpected text after a quoted field");
            }
            else
            {
                while (i < line.Length && line[i] != ',') sb.Append(line[i++]);
            }
            fields.Add(sb.ToString());
            if (i >= line.Length) break;
            i++; // the comma
        }
        return fields;
    }

    /// <summary>
    /// An in-memory view of images (float32 [C,H,W]), optional masks (all float32 [1,H,W] binary, or all int64 [H,W]
    /// class masks, each the size of its image) and optional ids (default "0", "1", …). The tensors are copied: the
    /// caller keeps its own. Columns: Id, Image and (with masks) Mask. Dispose the view to free the copies.
    /// </summary>
    /// <exception cref="ArgumentException">A count, dtype or shape is wrong (naming the row), or an id is repeated.</exception>
    public static InMemoryDataView LoadFromArrays(MedSegContext context, IReadOnlyList<Tensor> images, IReadOnlyList<Tensor>? masks = null, IReadOnlyList<string>? ids = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(images);
        int n = images.Count;
        if (n == 0) throw new ArgumentException("no images were given", nameof(images));
        if (masks is not null && masks.Count != n) throw new ArgumentException($"{n} images but {masks.Count} masks", nameof(masks));
        if (ids is not null && ids.Count != n) throw new ArgumentException($"{n} images but {ids.Count} ids", nameof(ids));
        long channels = -2;
        bool? classMasks = null;
        for (int r = 0; r < n; r++)
        {
            var im = images[r] ?? throw new ArgumentException($"row {r}: the image is null", nameof(images));
            if (im.dtype != ScalarType.Float32 || im.dim() != 3)
                throw new ArgumentException($"row {r}: the image is a {im.dtype} tensor of shape [{string.Join(",", im.shape)}]; expected float32 [C,H,W]", nameof(images));
            channels = channels == -2 || channels == im.size(0) ? im.size(0) : -1;
            if (masks is null) continue;
            var m = masks[r] ?? throw new ArgumentException($"row {r}: the mask is null", nameof(masks));
            bool isClass = m.dtype == ScalarType.Int64 && m.dim() == 2;
            bool isBinary = m.dtype == ScalarType.Float32 && m.dim() == 3 && m.size(0) == 1;
            if (!isClass && !isBinary)
                throw new ArgumentException($"row {r}: the mask is a {m.dtype} tensor of shape [{string.Join(",", m.shape)}]; expected float32 [1,H,W] or int64 [H,W]", nameof(masks));
            if (classMasks is bool c && c != isClass)
                throw new ArgumentException($"row {r}: the mask is {(isClass ? "an int64 class mask" : "a float32 binary mask")} but row 0's is not; all masks must be of one kind", nameof(masks));
            classMasks = isClass;
            long mh = isClass ? m.size(0) : m.size(1), mw = isClass ? m.size(1) : m.size(2);
            if (mh != im.size(1) || mw != im.size(2))
                throw new ArgumentException($"row {r}: the image is {im.size(2)}x{im.size(1)} (width x height) but the mask is {mw}x{mh}", nameof(masks));
        }
        var idList = ids?.ToList() ?? Enumerable.Range(0, n).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int r = 0; r < n; r++)
        {
            if (idList[r] is null) throw new ArgumentException($"row {r}: the id is null", nameof(ids));
            if (!seen.TryAdd(idList[r], r)) throw new ArgumentException($"row {r}: id '{idList[r]}' is also the id of row {seen[idList[r]]}", nameof(ids));
        }
        var imgCopies = new List<Tensor>(n);
        var maskCopies = new List<Tensor>(n);
        try
        {
            using (torch.NewDisposeScope())
            {
                foreach (var t in images) imgCopies.Add(t.detach().clone().DetachFromDisposeScope());
                if (masks is not null) foreach (var t in masks) maskCopies.Add(t.detach().clone().DetachFromDisposeScope());
            }
            var cols = new List<(string, ColumnType, System.Collections.IList)>
            {
                (ImageMaskDataView.IdColumn, TextColumnType.Instance, idList),
                (ImageMaskDataView.ImageColumn, TensorColumnType.Image(channels), imgCopies),
            };
            if (masks is not null)
                cols.Add((ImageMaskDataView.MaskColumn, classMasks == true ? TensorColumnType.ClassMask() : TensorColumnType.BinaryMask(), maskCopies));
            return InMemoryDataView.Create([.. cols]);
        }
        catch
        {
            foreach (var t in imgCopies) t.Dispose();
            foreach (var t in maskCopies) t.Dispose();
            throw;
        }
    }

    // ------------------------------------------------------------------ splits, shuffling, caching

    private static long RowCountOf(IDataView data) => data.GetRowCount() ?? data.CountRows();

    private static int SeedOrDerived(MedSegContext context, int? seed, string component) =>
        seed ?? (int)(context.DeriveSeed(component) & 0x7FFFFFFF);

    /// <summary>A lazy view of the chosen source rows (in the given order): indexable and shufflable when the source is.</summary>
    public static IDataView SelectRows(MedSegContext context, IDataView data, IReadOnlyList<long> rows)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (MappedDataView.HasIndexedAccess(data)) return new SubsetDataView((IRowAccessDataView)data, rows);
        var sorted = rows.ToArray();
        if (sorted.Distinct().Count() != sorted.Length || !sorted.Zip(sorted.Skip(1)).All(p => p.First < p.Second))
            throw new InvalidOperationException("this view has no random row access: rows can only be selected once each, in source order; cache it first (ml.Data.Cache)");
        return new FilteredDataView(data, sorted);
    }

    /// <summary>
    /// A deterministic train/validation/test split (80/10/10 by default, as DASP and cDAL use). The rows are permuted
    /// with a <see cref="Random"/> of <paramref name="seed"/> (default: derived from the context's seed); the first
    /// round(n·trainFraction) go to Train, the next round(n·validationFraction) to Validation (fewer if rows run out),
    /// the rest to Test — rounding is to nearest, halves away from zero (1000 rows → 800/100/100; 120 → 96/12/12;
    /// 15 → 12/2/1). The parts are disjoint, cover every row, keep source order inside each part, and stay lazy and shufflable.
    /// </summary>
    public static TrainValidationTestData TrainValidationTestSplit(MedSegContext context, IDataView data,
        double trainFraction = 0.8, double validationFraction = 0.1, int? seed = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(data);
        if (double.IsNaN(trainFraction) || trainFraction < 0 || trainFraction > 1)
            throw new ArgumentOutOfRangeException(nameof(trainFraction), trainFraction, "trainFraction must be in [0, 1]");
        if (double.IsNaN(validationFraction) || validationFraction < 0 || trainFraction + validationFraction > 1 + 1e-12)
            throw new ArgumentOutOfRangeException(nameof(validationFraction), validationFraction, "validationFraction must be in [0, 1 - trainFraction]");
        long n = RowCountOf(data);
        var (nTrain, nVal) = SplitCounts(n, trainFraction, validationFraction);
        var perm = RowDataView.Permutation(n, new Random(SeedOrDerived(context, seed, "TrainValidationTestSplit")));
        long[] Part(long from, long count) { var a = perm.AsSpan((int)from, (int)count).ToArray(); Array.Sort(a); return a; }
        return new TrainValidationTestData(
            SelectRows(context, data, Part(0, nTrain)),
            SelectRows(context, data, Part(nTrain, nVal)),
            SelectRows(context, data, Part(nTrain + nVal, n - nTrain - nVal)));
    }

    /// <summary>The (train, validation) row counts of <see cref="TrainValidationTestSplit"/>; test gets the rest.</summary>
    public static (long Train, long Validation) SplitCounts(long rows, double trainFraction, double validationFraction)
    {
        long nTrain = Math.Min(rows, (long)Math.Round(rows * trainFraction, MidpointRounding.AwayFromZero));
        long nVal = Math.Min(rows - nTrain, (long)Math.Round(rows * validationFraction, MidpointRounding.AwayFromZero));
        return (nTrain, nVal);
    }

    /// <summary>
    /// k-fold cross-validation: the rows, permuted by <paramref name="seed"/> (default: derived from the context's),
    /// are cut into k consecutive folds whose sizes differ by at most one (the first n mod k folds get one more row).
    /// Fold i's Test is fold i; its Train is every other row. The k Test parts partition the data.
    /// </summary>
    public static IReadOnlyList<CrossValidationFold> KFold(MedSegContext context, IDataView data, int k = 5, int? seed = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(data);
        long n = RowCountOf(data);
        if (k < 2 || k > n) throw new ArgumentOutOfRangeException(nameof(k), k, $"k must be in 2..{n} (the number of rows)");
        var perm = RowDataView.Permutation(n, new Random(SeedOrDerived(context, seed, "KFold")));
        var folds = new List<CrossValidationFold>(k);
        long start = 0;
        for (int f = 0; f < k; f++)
        {
            long size = n / k + (f < n % k ? 1 : 0);
            var test = perm.AsSpan((int)start, (int)size).ToArray();
            var train = perm.Take((int)start).Concat(perm.Skip((int)(start + size))).ToArray();
            Array.Sort(test);
            Array.Sort(train);
            folds.Add(new CrossValidationFold(f, SelectRows(context, data, train), SelectRows(context, data, test)));
            start += size;
        }
        return folds;
    }

    /// <summary>
    /// The rows in one fixed random order drawn from <paramref name="seed"/> (default: derived from the context's
    /// seed): same seed, same order. Lazy; the result can itself be shuffled per epoch.
    /// </summary>
    public static IDataView Shuffle(MedSegContext context, IDataView data, int? seed = null)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(data);
        int s = SeedOrDerived(context, seed, "Shuffle");
        if (MappedDataView.HasIndexedAccess(data))
        {
            var ra = (IRowAccessDataView)data;
            return new SubsetDataView(ra, RowDataView.Permutation(ra.RowCount, new Random(s)));
        }
        if (data.CanShuffle) return new SeededShuffleDataView(data, s);
        throw new InvalidOperationException("this view cannot be shuffled; cache it first (ml.Data.Cache)");
    }

    /// <summary>
    /// Reads every row once into memory and returns a view with the same schema and values (so epochs do not decode
    /// the files again). The view owns the copies: dispose it when done. Resize before caching large images.
    /// </summary>
    public static CachedDataView Cache(MedSegContext context, IDataView data, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        return CachedDataView.Create(data, cancellationToken);
    }
}
