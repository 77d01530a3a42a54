using System.IO.Compression;
using System.Text;
using System.Text.Json;

namespace MLNetMedSeg.Pipeline;

/// <summary>One stage entry of a model file: where it is, its header, its options and its stored files.</summary>
public sealed record ModelEntryDescription(string Path, ModelEntryHeader Header, string? OptionsJson, IReadOnlyList<(string Name, long Bytes)> Files)
{
    /// <summary>Nesting depth (0 = the root entry).</summary>
    public int Depth => Path.Count(c => c == '/');
}

/// <summary>
/// What a model file holds, for people (<c>medseg info</c>): the manifest (versions, input schema) and every stage
/// entry with its header and options. The file is fully validated (manifest, hashes) before it is described.
/// </summary>
public sealed class ModelDescription
{
    private ModelDescription(string path, ModelManifest manifest, IReadOnlyList<ModelEntryDescription> entries)
    {
        FilePath = path;
        Manifest = manifest;
        Entries = entries;
    }

    public string FilePath { get; }
    public ModelManifest Manifest { get; }
    public IReadOnlyList<ModelEntryDescription> Entries { get; }

    /// <summary>Reads and validates <paramref name="path"/>; errors are <see cref="InvalidDataException"/>s naming the file.</summary>
    public static ModelDescription Read(ModelOperationsCatalog catalog, string path)
    {
        var manifest = catalog.ReadManifest(path); // magic, format version and every entry's hash
        string full = System.IO.Path.GetFullPath(path);
        using var zip = ZipFile.OpenRead(full);
        var folders = manifest.Entries.Keys
            .Where(k => k.EndsWith("/" + ModelEntryHeader.FileName, StringComparison.Ordinal) || k == ModelEntryHeader.FileName)
            .Select(k => k.Length == ModelEntryHeader.FileName.Length ? "" : k[..^(ModelEntryHeader.FileName.Length + 1)])
            .OrderBy(f => f, StringComparer.Ordinal)
            .ToList();
        var entries = new List<ModelEntryDescription>();
        foreach (var folder in folders)
        {
            string prefix = folder.Length == 0 ? "" : folder + "/";
            var header = JsonSerializer.Deserialize<ModelEntryHeader>(ReadText(zip, prefix + ModelEntryHeader.FileName), ModelManifest.JsonOptions)
                ?? throw ModelFileErrors.Create(ModelFileError.Corrupt, full, folder, "empty header");
            string? options = manifest.Entries.ContainsKey(prefix + "options.json") ? ReadText(zip, prefix + "options.json") : null;
            var files = zip.Entries
                .Where(e => e.FullName.StartsWith(prefix, StringComparison.Ordinal) && !e.FullName[prefix.Length..].Contains('/'))
                .Where(e => e.Name != ModelEntryHeader.FileName && e.Name != "options.json")
                .Select(e => (e.Name, e.Length))
                .ToList();
            entries.Add(new ModelEntryDescription(folder, header, options, files));
        }
        return new ModelDescription(full, manifest, entries);
    }

    private static string ReadText(ZipArchive zip, string name)
    {
        using var s = zip.GetEntry(name)!.Open();
        using var r = new StreamReader(s, Encoding.UTF8);
        return r.ReadToEnd();
    }

    /// <summary>A readable summary: versions, input schema, then each stage (indented by nesting) with its options.</summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"model file   {FilePath}");
        sb.AppendLine($"format       {Manifest.Magic} v{Manifest.FormatVersion}");
        sb.AppendLine($"written by   MLNetMedSeg {Manifest.LibraryVersion}, libtorch {Manifest.TorchVersion}, {Manifest.CreatedUtc:u}");
        sb.AppendLine("input schema " + string.Join(", ", Manifest.InputSchema.Select(c => $"{c.Name}: {c.Type}")));
        sb.AppendLine("stages");
        foreach (var e in Entries)
        {
            string indent = new(' ', 2 + 2 * e.Depth);
            sb.AppendLine($"{indent}{(e.Path.Length == 0 ? "(root)" : e.Path)}: {e.Header.Signature} v{e.Header.VersionWritten} (readable from v{e.Header.OldestReadableVersion}) by {e.Header.LoaderName}");
            if (e.OptionsJson is { } json)
                sb.AppendLine($"{indent}  options {Compact(json)}");
            foreach (var (name, bytes) in e.Files)
                sb.AppendLine($"{indent}  {name} ({bytes:N0} bytes)");
        }
        return sb.ToString();
    }

    private static string Compact(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            return JsonSerializer.Serialize(doc.RootElement);
        }
        catch (JsonException)
        {
            return json.Trim();
        }
    }
}

public static class ModelDescriptionExtensions
{
    /// <summary>Describes a model file (validated first); see <see cref="ModelDescription"/>.</summary>
    public static ModelDescription Describe(this ModelOperationsCatalog catalog, string path) => ModelDescription.Read(catalog, path);
}
