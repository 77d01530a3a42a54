using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.RegularExpressions;
using MLNetMedSeg.Data;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Pipeline;

/// <summary>What went wrong reading a model file (see <see cref="ModelFileErrors.GetModelFileError"/>).</summary>
public enum ModelFileError
{
    /// <summary>Not a zip archive: random bytes, an empty or truncated file.</summary>
    NotAZip,
    /// <summary>A zip, but not a model file of this library (no manifest, or a manifest with another magic).</summary>
    Foreign,
    /// <summary>An entry's bytes do not match the SHA-256 in the manifest, or entries were added/removed.</summary>
    Tampered,
    /// <summary>An entry cannot be decompressed or parsed.</summary>
    Corrupt,
    /// <summary>An entry (or the file format) was written by a newer version than this library's loader reads.</summary>
    NewerVersion,
    /// <summary>No loader is registered for an entry's signature.</summary>
    UnknownSignature,
    /// <summary>A tensor is missing or has another shape than the loader expects.</summary>
    TensorShape,
    /// <summary>An entry the loader asked for is not in the file.</summary>
    MissingEntry,
}

/// <summary>
/// Model-file errors are <see cref="InvalidDataException"/>s (a sealed type) whose message names the file and, where
/// it applies, the zip entry; their <see cref="Exception.Data"/> carries the kind of problem, the file and the entry,
/// read back with these extensions.
/// </summary>
public static class ModelFileErrors
{
    private const string ErrorKey = "MLNetMedSeg.ModelFileError";
    private const string FileKey = "MLNetMedSeg.ModelFile";
    private const string EntryKey = "MLNetMedSeg.ModelEntry";

    /// <summary>A model-file error: "model file 'F', entry 'E': reason".</summary>
    public static InvalidDataException Create(ModelFileError error, string fileName, string? entryName, string reason, Exception? inner = null)
    {
        var ex = new InvalidDataException($"model file '{fileName}'{(entryName is null ? "" : $", entry '{entryName}'")}: {reason}", inner);
        ex.Data[ErrorKey] = error.ToString();
        ex.Data[FileKey] = fileName;
        if (entryName is not null) ex.Data[EntryKey] = entryName;
        return ex;
    }

    /// <summary>The kind of model-file problem, or null when <paramref name="ex"/> is not a model-file error.</summary>
    public static ModelFileError? GetModelFileError(this Exception ex) =>
        ex.Data[ErrorKey] is string s && Enum.TryParse<ModelFileError>(s, out var e) ? e : null;

    /// <summary>The model file a model-file error is about (full path, or "&lt;stream&gt;").</summary>
    public static string? GetModelFileName(this Exception ex) => ex.Data[FileKey] as string;

    /// <summary>The zip entry (or entry folder) a model-file error is about, if any.</summary>
    public static string? GetModelEntryName(this Exception ex) => ex.Data[EntryKey] as string;
}

/// <summary>One input column in the manifest: name, type description (<see cref="ColumnType.Describe"/>) and annotations.</summary>
public sealed class ManifestColumn
{
    public string Name { get; set; } = "";

    /// <summary>e.g. <c>Tensor&lt;Float32&gt;[3,?,?]</c>, <c>Text</c>, <c>Number</c>; see <see cref="ModelManifest.ParseColumnType"/>.</summary>
    public string Type { get; set; } = "";

    public Dictionary<string, string>? Annotations { get; set; }
}

/// <summary>
/// The <c>manifest.json</c> at the root of a model zip: format magic and version, the library and libtorch versions
/// that wrote it, when, the input schema, the root entry folder, and the SHA-256 of every other zip entry.
/// </summary>
public sealed class ModelManifest
{
    /// <summary>The value of <see cref="Magic"/> in every model file of this library.</summary>
    public const string MagicValue = "MLNetMedSeg.Model";

    /// <summary>The zip layout version written; files with a newer one are refused.</summary>
    public const int CurrentFormatVersion = 1;

    /// <summary>The manifest's entry name.</summary>
    public const string EntryName = "manifest.json";

    public string Magic { get; set; } = "";
    public int FormatVersion { get; set; }
    public string LibraryVersion { get; set; } = "";
    public string TorchVersion { get; set; } = "";
    public DateTime CreatedUtc { get; set; }
    public List<ManifestColumn> InputSchema { get; set; } = [];

    /// <summary>The folder of the root model entry (e.g. "Model").</summary>
    public string Root { get; set; } = "";

    /// <summary>Every entry but the manifest: path → lower-case hex SHA-256 of its uncompressed bytes.</summary>
    public SortedDictionary<string, string> Entries { get; set; } = new(StringComparer.Ordinal);

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new JsonStringEnumConverter() },
    };

    /// <summary>The library's assembly version, written into new files.</summary>
    public static string CurrentLibraryVersion => typeof(ModelManifest).Assembly.GetName().Version?.ToString() ?? "0.0.0.0";

    /// <summary>The input schema as a <see cref="DataViewSchema"/>.</summary>
    /// <exception cref="FormatException">A column's type description cannot be parsed.</exception>
    public DataViewSchema GetInputSchema()
    {
        var b = new DataViewSchema.Builder();
        foreach (var c in InputSchema)
            b.AddColumn(c.Name, ParseColumnType(c.Type), c.Annotations ?? new Dictionary<string, string>());
        return b.ToSchema();
    }

    /// <summary>Describes a schema for the manifest.</summary>
    public static List<ManifestColumn> DescribeSchema(DataViewSchema schema) =>
        schema.Select(c => new ManifestColumn
        {
            Name = c.Name,
            Type = c.Type.Describe(),
            Annotations = c.Annotations.Count == 0 ? null : new Dictionary<string, string>(c.Annotations),
        }).ToList();

    private static readonly Regex TensorType = new(@"^Tensor<([A-Za-z0-9]+)>\[([^\]]*)\]$", RegexOptions.CultureInvariant);

    /// <summary>
    /// Parses a type description written by <see cref="ColumnType.Describe"/> back into a <see cref="ColumnType"/>:
    /// <c>Text</c>, <c>Number</c>, or <c>Tensor&lt;DType&gt;[d0,d1,...]</c> with <c>?</c> for a varying dimension.
    /// </summary>
    /// <exception cref="FormatException">Not such a description.</exception>
    public static ColumnType ParseColumnType(string description)
    {
        ArgumentNullException.ThrowIfNull(description);
        if (description == TextColumnType.Instance.Describe()) return TextColumnType.Instance;
        if (description == NumberColumnType.Instance.Describe()) return NumberColumnType.Instance;
        var m = TensorType.Match(description);
        if (!m.Success || !Enum.TryParse<ScalarType>(m.Groups[1].Value, ignoreCase: false, out var dtype) ||
            !Enum.IsDefined(dtype) || int.TryParse(m.Groups[1].Value, out _))
            throw new FormatException($"'{description}' is not a column type (expected Text, Number or Tensor<DType>[dims])");
        string dims = m.Groups[2].Value;
        var shape = dims.Length == 0 ? [] : dims.Split(',').Select(d =>
            d == "?" ? -1L
            : long.TryParse(d, NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v
            : throw new FormatException($"'{description}': dimension '{d}' is neither a number nor '?'")).ToArray();
        return new TensorColumnType(dtype, shape);
    }
}
