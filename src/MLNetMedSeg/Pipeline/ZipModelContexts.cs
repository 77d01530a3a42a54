using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using TorchSharp;
using TorchSharp.Modules;
using MLNetMedSeg.Core;

namespace MLNetMedSeg.Pipeline;

/// <summary>The header.json of one model entry, as ML.NET's VersionInfo.</summary>
public sealed class ModelEntryHeader
{
    /// <summary>The entry's header file name.</summary>
    public const string FileName = "header.json";

    /// <summary>Selects the registered loader.</summary>
    public string Signature { get; set; } = "";

    /// <summary>The format version the entry was written with.</summary>
    public int VersionWritten { get; set; }

    /// <summary>The oldest loader version that can read the entry.</summary>
    public int OldestReadableVersion { get; set; }

    /// <summary>The type that wrote the entry (informational).</summary>
    public string LoaderName { get; set; } = "";
}

internal static partial class ModelNames
{
    // Tensor and text names become "<name>.safetensors" / "<name>.txt"; child names become folders (no dot, so a
    // child can never collide with a file of its parent).
    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]
    internal static partial Regex FileName();

    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_-]{0,127}$")]
    internal static partial Regex ChildName();

    internal static void CheckFile(string name, string what)
    {
        ArgumentNullException.ThrowIfNull(name, what);
        if (!FileName().IsMatch(name))
            throw new ArgumentException($"'{name}' is not a valid {what} name (letters, digits, '_', '-', '.'; not starting with '.' or '-')", what);
    }

    internal static void CheckChild(string name)
    {
        ArgumentNullException.ThrowIfNull(name, "child");
        if (!ChildName().IsMatch(name))
            throw new ArgumentException($"'{name}' is not a valid child name (letters, digits, '_', '-'; not starting with '-')", "name");
    }

    internal const string Options = "options.json";
    internal const string TensorsSuffix = ".safetensors";
    internal const string TextSuffix = ".txt";
    internal const string Root = "Model";
    internal const int MaxDepth = 64;
}

/// <summary>Writes entries into a model zip, recording each entry's SHA-256.</summary>
internal sealed class ZipModelWriter(ZipArchive archive)
{
    public ZipArchive Archive { get; } = archive;
    public SortedDictionary<string, string> Hashes { get; } = new(StringComparer.Ordinal);

    public void Write(string path, CompressionLevel level, Action<Stream> write)
    {
        if (Hashes.ContainsKey(path)) throw new InvalidOperationException($"model entry '{path}' was already written");
        var entry = Archive.CreateEntry(path, level);
        entry.LastWriteTime = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero); // reproducible bytes
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var s = entry.Open())
        using (var hs = new HashingStream(s, hash))
            write(hs);
        Hashes[path] = Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    public void WriteBytes(string path, byte[] bytes, CompressionLevel level = CompressionLevel.Optimal) =>
        Write(path, level, s => s.Write(bytes));

    /// <summary>A write-only pass-through stream that hashes what goes through it.</summary>
    private sealed class HashingStream(Stream inner, IncrementalHash hash) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            hash.AppendData(buffer);
            inner.Write(buffer);
        }
    }
}

/// <summary>
/// Saves one model entry (a folder in the zip): header.json, options.json, &lt;name&gt;.safetensors, &lt;name&gt;.txt,
/// and child folders. The header must be written first.
/// </summary>
internal sealed class ZipModelSaveContext : ModelSaveContext
{
    private readonly ZipModelWriter _writer;
    private readonly string _folder; // "Model/stage_000/" (with the trailing slash)
    private readonly ITransformer _owner;
    private readonly int _depth;
    private readonly HashSet<string> _children = new(StringComparer.Ordinal);

    private ZipModelSaveContext(ZipModelWriter writer, string folder, ITransformer owner, int depth)
    {
        _writer = writer;
        _folder = folder;
        _owner = owner;
        _depth = depth;
    }

    public bool HeaderWritten { get; private set; }

    /// <summary>Saves <paramref name="transformer"/> into the entry folder <paramref name="folder"/> (no trailing slash).</summary>
    internal static void SaveEntry(ZipModelWriter writer, string folder, ITransformer transformer, int depth)
    {
        ArgumentNullException.ThrowIfNull(transformer);
        if (depth > ModelNames.MaxDepth) throw new InvalidOperationException($"model entries are nested more than {ModelNames.MaxDepth} deep at '{folder}'");
        var ctx = new ZipModelSaveContext(writer, folder + "/", transformer, depth);
        transformer.Save(ctx);
        if (!ctx.HeaderWritten)
            throw new InvalidOperationException($"{transformer.GetType().FullName}.Save did not call WriteHeader (model entry '{folder}')");
    }

    private void RequireHeader()
    {
        if (!HeaderWritten)
            throw new InvalidOperationException($"{_owner.GetType().Name}: call WriteHeader before writing anything else (model entry '{_folder}')");
    }

    public override void WriteHeader(string signature, int version, int oldestReadableVersion)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(signature);
        ArgumentOutOfRangeException.ThrowIfLessThan(version, 1);
        if (oldestReadableVersion < 1 || oldestReadableVersion > version)
            throw new ArgumentOutOfRangeException(nameof(oldestReadableVersion), oldestReadableVersion, $"must be between 1 and the version written ({version})");
        if (HeaderWritten) throw new InvalidOperationException($"the header of model entry '{_folder}' was already written");
        var t = _owner.GetType();
        var header = new ModelEntryHeader
        {
            Signature = signature,
            VersionWritten = version,
            OldestReadableVersion = oldestReadableVersion,
            LoaderName = (t.Namespace is null ? "" : t.Namespace + ".") + t.Name,
        };
        _writer.WriteBytes(_folder + ModelEntryHeader.FileName, JsonSerializer.SerializeToUtf8Bytes(header, ModelManifest.JsonOptions));
        HeaderWritten = true;
    }

    public override void WriteOptions<T>(T options)
    {
        RequireHeader();
        ArgumentNullException.ThrowIfNull(options);
        _writer.WriteBytes(_folder + ModelNames.Options, JsonSerializer.SerializeToUtf8Bytes(options, ModelManifest.JsonOptions));
    }

    public override void WriteTensors(string name, IReadOnlyDictionary<string, Tensor> tensors)
    {
        RequireHeader();
        ModelNames.CheckFile(name, "tensors");
        ArgumentNullException.ThrowIfNull(tensors);
        _writer.Write(_folder + name + ModelNames.TensorsSuffix, CompressionLevel.NoCompression, s => Safetensors.Save(tensors, s));
    }

    public override void WriteText(string name, string text)
    {
        RequireHeader();
        ModelNames.CheckFile(name, "text");
        ArgumentNullException.ThrowIfNull(text);
        _writer.WriteBytes(_folder + name + ModelNames.TextSuffix, Encoding.UTF8.GetBytes(text));
    }

    public override void WriteChild(string name, ITransformer child)
    {
        RequireHeader();
        ModelNames.CheckChild(name);
        ArgumentNullException.ThrowIfNull(child);
        if (!_children.Add(name)) throw new InvalidOperationException($"child '{name}' of model entry '{_folder}' was already written");
        SaveEntry(_writer, _folder + name, child, _depth + 1);
    }
}

/// <summary>Reads a model zip whose entries have been checked against the manifest.</summary>
internal sealed class ZipModelReader(ZipArchive archive, string fileName, MedSegContext context)
{
    public ZipArchive Archive { get; } = archive;
    public string FileName { get; } = fileName;
    public MedSegContext Context { get; } = context;

    public InvalidDataException Error(ModelFileError error, string? entry, string reason, Exception? inner = null) =>
        ModelFileErrors.Create(error, FileName, entry, reason, inner);

    public ZipArchiveEntry Entry(string path) =>
        Archive.GetEntry(path) ?? throw Error(ModelFileError.MissingEntry, path, "the entry is missing");

    public byte[] ReadBytes(string path)
    {
        var e = Entry(path);
        try
        {
            using var s = e.Open();
            using var ms = new MemoryStream();
            s.CopyTo(ms);
            return ms.ToArray();
        }
        catch (InvalidDataException ex)
        {
            throw Error(ModelFileError.Corrupt, path, "the entry cannot be decompressed: " + ex.Message, ex);
        }
    }

    public T ReadJson<T>(string path) where T : class
    {
        var bytes = ReadBytes(path);
        try
        {
            return JsonSerializer.Deserialize<T>(bytes, ModelManifest.JsonOptions)
                ?? throw Error(ModelFileError.Corrupt, path, "the entry holds JSON null");
        }
        catch (JsonException ex)
        {
            throw Error(ModelFileError.Corrupt, path, $"not valid JSON for {typeof(T).Name}: {ex.Message}", ex);
        }
    }
}

/// <summary>Reads one model entry folder back; errors are <see cref="InvalidDataException"/>s naming the file and entry (<see cref="ModelFileErrors"/>).</summary>
internal sealed class ZipModelLoadContext : ModelLoadContext
{
    private readonly ZipModelReader _reader;
    private readonly string _folder; // with trailing slash
    private readonly int _depth;
    private readonly string _signature;
    private readonly int _version;

    private ZipModelLoadContext(ZipModelReader reader, string folder, int depth, string signature, int version)
    {
        _reader = reader;
        _folder = folder;
        _depth = depth;
        _signature = signature;
        _version = version;
    }

    public override MedSegContext Context => _reader.Context;
    public override string Signature => _signature;
    public override int Version => _version;

    /// <summary>Reads the header of entry folder <paramref name="folder"/> (no trailing slash), finds its loader and runs it.</summary>
    internal static ITransformer LoadEntry(ZipModelReader reader, string folder, int depth)
    {
        if (depth > ModelNames.MaxDepth) throw reader.Error(ModelFileError.Corrupt, folder, $"model entries are nested more than {ModelNames.MaxDepth} deep");
        string headerPath = folder + "/" + ModelEntryHeader.FileName;
        var h = reader.ReadJson<ModelEntryHeader>(headerPath);
        if (string.IsNullOrWhiteSpace(h.Signature) || h.VersionWritten < 1 || h.OldestReadableVersion < 1 || h.OldestReadableVersion > h.VersionWritten)
            throw reader.Error(ModelFileError.Corrupt, headerPath,
                $"invalid header (signature '{h.Signature}', versionWritten {h.VersionWritten}, oldestReadableVersion {h.OldestReadableVersion})");
        var loader = ModelLoaderRegistry.Find(h.Signature)
            ?? throw reader.Error(ModelFileError.UnknownSignature, folder,
                $"no loader is registered for signature '{h.Signature}' (written by {h.LoaderName}); registered signatures: {string.Join(", ", ModelLoaderRegistry.Signatures)}. " +
                "Register the stage's loader with ModelLoaderRegistry.Register before loading.");
        if (h.OldestReadableVersion > loader.CurrentVersion)
            throw reader.Error(ModelFileError.NewerVersion, folder,
                $"'{h.Signature}' was written with format version {h.VersionWritten}, readable from version {h.OldestReadableVersion} on, but this library's loader reads up to version {loader.CurrentVersion}; update MLNetMedSeg");
        var ctx = new ZipModelLoadContext(reader, folder + "/", depth, h.Signature, h.VersionWritten);
        try
        {
            return loader.Load(ctx) ?? throw reader.Error(ModelFileError.Corrupt, folder, $"the loader of '{h.Signature}' returned null");
        }
        catch (Exception ex) when (ex is InvalidDataException or JsonException or FormatException && ex.GetModelFileError() is null)
        {
            throw reader.Error(ModelFileError.Corrupt, folder, $"the loader of '{h.Signature}' failed: {ex.Message}", ex);
        }
    }

    public override T ReadOptions<T>()
    {
        string path = _folder + ModelNames.Options;
        var bytes = _reader.ReadBytes(path);
        try
        {
            var v = JsonSerializer.Deserialize<T>(bytes, ModelManifest.JsonOptions);
            return v is null ? throw _reader.Error(ModelFileError.Corrupt, path, "the options are JSON null") : v;
        }
        catch (JsonException ex)
        {
            throw _reader.Error(ModelFileError.Corrupt, path, $"not valid JSON for {typeof(T).Name}: {ex.Message}", ex);
        }
    }

    public override Dictionary<string, Tensor> ReadTensors(string name, Device? device = null, IReadOnlyDictionary<string, long[]>? expectedShapes = null)
    {
        ModelNames.CheckFile(name, "tensors");
        string path = _folder + name + ModelNames.TensorsSuffix;
        var entry = _reader.Entry(path);
        Dictionary<string, Tensor> tensors;
        try
        {
            using var s = entry.Open();
            tensors = Safetensors.Load(s, device ?? Context.Device, $"{_reader.FileName}:{path}");
        }
        catch (InvalidDataException ex)
        {
            throw _reader.Error(ModelFileError.Corrupt, path, ex.Message, ex);
        }
        if (expectedShapes is not null)
        {
            foreach (var (tname, shape) in expectedShapes)
            {
                string? problem = null;
                if (!tensors.TryGetValue(tname, out var t))
                    problem = $"tensor '{tname}' is missing (the entry holds: {(tensors.Count == 0 ? "none" : string.Join(", ", tensors.Keys.Order(StringComparer.Ordinal)))})";
                else if (!t.shape.SequenceEqual(shape))
                    problem = $"tensor '{tname}' has shape [{string.Join(",", t.shape)}] but the loader expects [{string.Join(",", shape)}]";
                if (problem is not null)
                {
                    foreach (var x in tensors.Values) x.Dispose();
                    throw _reader.Error(ModelFileError.TensorShape, path, problem);
                }
            }
        }
        return tensors;
    }

    public override string ReadText(string name)
    {
        ModelNames.CheckFile(name, "text");
        string path = _folder + name + ModelNames.TextSuffix;
        var bytes = _reader.ReadBytes(path);
        try
        {
            return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(bytes);
        }
        catch (DecoderFallbackException ex)
        {
            throw _reader.Error(ModelFileError.Corrupt, path, "not valid UTF-8", ex);
        }
    }

    public override ITransformer ReadChild(string name)
    {
        ModelNames.CheckChild(name);
        return LoadEntry(_reader, _folder + name, _depth + 1);
    }
}
