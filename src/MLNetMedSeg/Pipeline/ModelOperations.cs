using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using MLNetMedSeg.Data;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Pipeline;

/// <summary>
/// <c>ctx.Model.Save/Load</c>: one zip per fitted pipeline. Layout: <c>manifest.json</c> (magic, format version,
/// library and libtorch versions, UTC time, input schema, root entry, SHA-256 per entry) and one folder per model
/// entry, <c>Model/</c> for the root, nested for children, each with <c>header.json</c> (signature, versionWritten,
/// oldestReadableVersion, loaderName), <c>options.json</c>, <c>&lt;name&gt;.safetensors</c> and <c>&lt;name&gt;.txt</c>.
/// No path of the saving machine is stored.
/// </summary>
public static class ModelOperationsCatalogExtensions
{
    /// <summary>
    /// Saves <paramref name="model"/> with the schema of the data it transforms into <paramref name="path"/>,
    /// atomically: the zip is written to a temporary file in the same folder and renamed over
    /// <paramref name="path"/>; when anything fails (a transformer's Save throws, the disk is full) the previous file
    /// is left untouched and the temporary file is removed.
    /// </summary>
    /// <exception cref="SchemaException"><paramref name="model"/> cannot transform data of <paramref name="inputSchema"/>.</exception>
    public static void Save(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string path)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputSchema);
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{path}' has no folder", nameof(path));
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"cannot save model '{full}': the folder '{dir}' does not exist");
        model.GetOutputSchema(inputSchema);
        string tmp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                using (var zip = new ZipArchive(fs, ZipArchiveMode.Create, leaveOpen: true))
                    WriteModel(zip, model, inputSchema);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Writes the model zip to <paramref name="stream"/> (at its position; the stream stays open).</summary>
    public static void Save(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(inputSchema);
        ArgumentNullException.ThrowIfNull(stream);
        model.GetOutputSchema(inputSchema);
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        WriteModel(zip, model, inputSchema);
    }

    private static void WriteModel(ZipArchive zip, ITransformer model, DataViewSchema inputSchema)
    {
        var writer = new ZipModelWriter(zip);
        ZipModelSaveContext.SaveEntry(writer, ModelNames.Root, model, 0);
        var manifest = new ModelManifest
        {
            Magic = ModelManifest.MagicValue,
            FormatVersion = ModelManifest.CurrentFormatVersion,
            LibraryVersion = ModelManifest.CurrentLibraryVersion,
            TorchVersion = torch.__version__,
            CreatedUtc = DateTime.UtcNow,
            InputSchema = ModelManifest.DescribeSchema(inputSchema),
            Root = ModelNames.Root,
            Entries = writer.Hashes,
        };
        var entry = zip.CreateEntry(ModelManifest.EntryName, CompressionLevel.Optimal);
        using var s = entry.Open();
        JsonSerializer.Serialize(s, manifest, ModelManifest.JsonOptions);
    }

    /// <summary>
    /// Loads a model saved by <see cref="Save(ModelOperationsCatalog, ITransformer, DataViewSchema, string)"/>; its
    /// tensors go to the context's device. Everything is checked first: the zip, the manifest's magic and format
    /// version, every entry's SHA-256, and then, per entry, the loader's version and the tensors' shapes.
    /// </summary>
    /// <param name="catalog">The model catalog of the loading application's context.</param>
    /// <param name="path">The model file.</param>
    /// <param name="inputSchema">The schema of the data the model was saved for.</param>
    /// <exception cref="FileNotFoundException"><paramref name="path"/> does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not a (valid) model file; the message names the file and entry, and <see cref="ModelFileErrors.GetModelFileError"/> tells the kind of problem.</exception>
    public static ITransformer Load(this ModelOperationsCatalog catalog, string path, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentException.ThrowIfNullOrEmpty(path);
        string full = Path.GetFullPath(path);
        using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Load(catalog.Context, fs, full, out inputSchema);
    }

    /// <summary>Loads a model from a stream holding a model zip (read from its position; the stream stays open).</summary>
    public static ITransformer Load(this ModelOperationsCatalog catalog, Stream stream, out DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(stream);
        return Load(catalog.Context, stream, "<stream>", out inputSchema);
    }

    /// <summary>Reads and checks the manifest of a model file (magic, format version, entry hashes) without loading the model.</summary>
    public static ModelManifest ReadManifest(this ModelOperationsCatalog catalog, string path)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        string full = Path.GetFullPath(path);
        using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        using var zip = OpenZip(fs, full);
        return ReadAndVerifyManifest(new ZipModelReader(zip, full, catalog.Context));
    }

    private static ZipArchive OpenZip(Stream stream, string name)
    {
        try
        {
            return new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
        }
        catch (InvalidDataException ex)
        {
            throw ModelFileErrors.Create(ModelFileError.NotAZip, name, null, $"not a zip archive, or truncated ({ex.Message})", ex);
        }
        catch (EndOfStreamException ex)
        {
            throw ModelFileErrors.Create(ModelFileError.NotAZip, name, null, $"not a zip archive, or truncated ({ex.Message})", ex);
        }
    }

    private static ITransformer Load(MedSegContext context, Stream stream, string name, out DataViewSchema inputSchema)
    {
        using var zip = OpenZip(stream, name);
        var reader = new ZipModelReader(zip, name, context);
        var manifest = ReadAndVerifyManifest(reader);
        try
        {
            inputSchema = manifest.GetInputSchema();
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            throw reader.Error(ModelFileError.Corrupt, ModelManifest.EntryName, "invalid input schema: " + ex.Message, ex);
        }
        return ZipModelLoadContext.LoadEntry(reader, manifest.Root, 0);
    }

    private static ModelManifest ReadAndVerifyManifest(ZipModelReader reader)
    {
        if (reader.Archive.GetEntry(ModelManifest.EntryName) is null)
            throw reader.Error(ModelFileError.Foreign, null,
                $"a zip archive without {ModelManifest.EntryName}: not an MLNetMedSeg model file");
        ModelManifest manifest;
        try
        {
            manifest = reader.ReadJson<ModelManifest>(ModelManifest.EntryName);
        }
        catch (InvalidDataException ex) when (ex.GetModelFileError() == ModelFileError.Corrupt && ex.InnerException is JsonException)
        {
            throw reader.Error(ModelFileError.Foreign, ModelManifest.EntryName, "not an MLNetMedSeg manifest: " + ex.InnerException.Message, ex);
        }
        if (manifest.Magic != ModelManifest.MagicValue)
            throw reader.Error(ModelFileError.Foreign, ModelManifest.EntryName,
                $"the manifest's magic is '{manifest.Magic}', not '{ModelManifest.MagicValue}': not an MLNetMedSeg model file");
        if (manifest.FormatVersion > ModelManifest.CurrentFormatVersion)
            throw reader.Error(ModelFileError.NewerVersion, ModelManifest.EntryName,
                $"format version {manifest.FormatVersion} (written by MLNetMedSeg {manifest.LibraryVersion}) is newer than this library reads ({ModelManifest.CurrentFormatVersion}); update MLNetMedSeg");
        if (manifest.FormatVersion < 1)
            throw reader.Error(ModelFileError.Corrupt, ModelManifest.EntryName, $"invalid format version {manifest.FormatVersion}");
        if (string.IsNullOrEmpty(manifest.Root) || !ModelNames.ChildName().IsMatch(manifest.Root))
            throw reader.Error(ModelFileError.Corrupt, ModelManifest.EntryName, $"invalid root entry '{manifest.Root}'");
        manifest.Entries ??= new SortedDictionary<string, string>(StringComparer.Ordinal);

        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in reader.Archive.Entries)
        {
            if (e.FullName == ModelManifest.EntryName) continue;
            if (!seen.Add(e.FullName))
                throw reader.Error(ModelFileError.Tampered, e.FullName, "the entry appears twice in the archive");
            if (!manifest.Entries.TryGetValue(e.FullName, out var expected))
                throw reader.Error(ModelFileError.Tampered, e.FullName, "the entry is not listed in the manifest (added after saving)");
            string actual;
            try
            {
                using var s = e.Open();
                actual = Convert.ToHexStringLower(SHA256.HashData(s));
            }
            catch (InvalidDataException ex)
            {
                throw reader.Error(ModelFileError.Corrupt, e.FullName, "the entry cannot be decompressed: " + ex.Message, ex);
            }
            if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
                throw reader.Error(ModelFileError.Tampered, e.FullName, $"SHA-256 {actual} does not match the manifest's {expected}: the entry was modified or damaged");
        }
        foreach (var listed in manifest.Entries.Keys)
            if (!seen.Contains(listed))
                throw reader.Error(ModelFileError.Tampered, listed, "the entry is listed in the manifest but missing from the archive");
        return manifest;
    }
}
