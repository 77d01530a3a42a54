using MLNetMedSeg.Core;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using TorchSharp;

namespace MLNetMedSeg.Core;

/// <summary>
/// Reads and writes the safetensors format (https://github.com/huggingface/safetensors): an 8-byte little-endian
/// header length N, N bytes of UTF-8 JSON <c>{"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
/// ..., "__metadata__": {"key": "value"}}</c> (padded with spaces to a multiple of 8), then the raw little-endian
/// tensor data, each tensor's bytes at [begin, end) of the data section, with no gaps or overlaps.
/// Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. Files written here load in Python's
/// <c>safetensors</c> and vice versa. Every format error is an <see cref="InvalidDataException"/> whose message names the source.
/// </summary>
public static class Safetensors
{
    /// <summary>The largest header accepted (as the reference implementation: 100 MB).</summary>
    public const long MaxHeaderSize = 100_000_000;

    private const string MetadataKey = "__metadata__";
    private const int CopyChunk = 1 << 24;

    // The reference writer orders tensors by dtype (larger alignment first, its enum order reversed) then by name,
    // so every tensor's data is aligned to its element size.
    private static readonly (ScalarType Type, string Code, int Rank)[] DTypes =
    [
        (ScalarType.Bool, "BOOL", 0),
        (ScalarType.Byte, "U8", 1),
        (ScalarType.Int8, "I8", 2),
        (ScalarType.Int16, "I16", 5),
        (ScalarType.Float16, "F16", 7),
        (ScalarType.BFloat16, "BF16", 8),
        (ScalarType.Int32, "I32", 9),
        (ScalarType.Float32, "F32", 11),
        (ScalarType.Float64, "F64", 12),
        (ScalarType.Int64, "I64", 13),
    ];

    /// <summary>The safetensors dtype code of a tensor dtype ("F32", "BF16", ...).</summary>
    public static string DTypeCode(ScalarType dtype)
    {
        foreach (var d in DTypes) if (d.Type == dtype) return d.Code;
        throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "this dtype cannot be stored in safetensors");
    }

    private static int Rank(ScalarType dtype)
    {
        foreach (var d in DTypes) if (d.Type == dtype) return d.Rank;
        throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "this dtype cannot be stored in safetensors");
    }

    private static bool TryParseDType(string code, out ScalarType dtype)
    {
        foreach (var d in DTypes)
            if (d.Code == code) { dtype = d.Type; return true; }
        dtype = default;
        return false;
    }

    // ================================================================ writing

    /// <summary>
    /// Writes <paramref name="tensors"/> to <paramref name="path"/> atomically: the data goes to a temporary file in
    /// the same folder, which then replaces <paramref name="path"/>; on any failure the temporary file is deleted and
    /// an existing file is left unchanged. Tensors may live on any device and have any layout (they are copied to
    /// the CPU, contiguous); the dictionary's tensors are not modified or disposed.
    /// </summary>
    /// <param name="tensors">Tensors by name (any name except "__metadata__").</param>
    /// <param name="path">The file to write.</param>
    /// <param name="metadata">Optional string key/value pairs stored in the header's "__metadata__".</param>
    public static void Save(IReadOnlyDictionary<string, Tensor> tensors, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? throw new ArgumentException($"'{path}' has no folder", nameof(path));
        var plan = Plan(tensors, metadata); // argument errors surface before any file is touched
        string tmp = Path.Combine(dir, "." + Path.GetFileName(full) + "." + Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Write(plan, fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch (Exception ex)
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            if (ex is IOException or UnauthorizedAccessException)
                throw new IOException($"could not save safetensors file '{full}': {ex.Message}", ex);
            throw;
        }
    }

    /// <summary>Writes <paramref name="tensors"/> in safetensors format to <paramref name="stream"/> (at its current position; the stream stays open).</summary>
    public static void Save(IReadOnlyDictionary<string, Tensor> tensors, Stream stream, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        Write(Plan(tensors, metadata), stream);
    }

    /// <summary>The safetensors bytes of <paramref name="tensors"/>.</summary>
    public static byte[] SaveToBytes(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var ms = new MemoryStream();
        Save(tensors, ms, metadata);
        return ms.ToArray();
    }

    private sealed record Entry(string Name, Tensor Tensor, ScalarType DType, long[] Shape, long Begin, long End);

    private sealed record WritePlan(byte[] Header, List<Entry> Entries);

    private static WritePlan Plan(IReadOnlyDictionary<string, Tensor> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors I/O needs a little-endian machine");
        var items = new List<(string Name, byte[] Utf8, Tensor T, ScalarType DType, long[] Shape, long Bytes)>();
        foreach (var (name, t) in tensors)
        {
            if (name is null) throw new ArgumentException("a tensor name is null", nameof(tensors));
            if (name == MetadataKey) throw new ArgumentException($"'{MetadataKey}' is reserved and cannot name a tensor", nameof(tensors));
            if (t is null) throw new ArgumentException($"tensor '{name}' is null", nameof(tensors));
            if (t.IsInvalid) throw new ObjectDisposedException($"tensor '{name}'", $"tensor '{name}' is disposed: it cannot be saved");
            var dtype = t.dtype;
            Rank(dtype);
            var shape = t.shape;
            long bytes = checked(t.numel() * TensorExtensions.ElementSize(dtype));
            items.Add((name, Encoding.UTF8.GetBytes(name), t, dtype, shape, bytes));
        }
        items.Sort((a, b) =>
        {
            int c = Rank(b.DType).CompareTo(Rank(a.DType));
            return c != 0 ? c : a.Utf8.AsSpan().SequenceCompareTo(b.Utf8);
        });

        var entries = new List<Entry>(items.Count);
        long offset = 0;
        foreach (var it in items)
        {
            entries.Add(new Entry(it.Name, it.T, it.DType, it.Shape, offset, offset + it.Bytes));
            offset += it.Bytes;
        }

        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            if (metadata is not null)
            {
                w.WriteStartObject(MetadataKey);
                foreach (var (k, v) in metadata.OrderBy(e => e.Key, StringComparer.Ordinal))
                {
                    if (k is null || v is null) throw new ArgumentException("metadata keys and values must not be null", nameof(metadata));
                    w.WriteString(k, v);
                }
                w.WriteEndObject();
            }
            foreach (var e in entries)
            {
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", DTypeCode(e.DType));
                w.WriteStartArray("shape");
                foreach (var s in e.Shape) w.WriteNumberValue(s);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(e.Begin);
                w.WriteNumberValue(e.End);
                w.WriteEndArray();
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        int len = (int)ms.Length;
        int padded = (len + 7) / 8 * 8;
        var header = new byte[padded];
        ms.GetBuffer().AsSpan(0, len).CopyTo(header);
        header.AsSpan(len).Fill((byte)' ');
        return new WritePlan(header, entries);
    }

    private static unsafe void Write(WritePlan plan, Stream stream)
    {
        Span<byte> lenBytes = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(lenBytes, (ulong)plan.Header.Length);
        stream.Write(lenBytes);
        stream.Write(plan.Header);
        foreach (var e in plan.Entries)
        {
            long n = e.End - e.Begin;
            if (n == 0) continue;
            using (torch.NewDisposeScope())
            {
                var c = e.Tensor.detach().to(DeviceType.CPU).contiguous();
                if (c.NumberOfElements * c.ElementSize != n)
                    throw new InvalidOperationException($"tensor '{e.Name}' changed size while it was being saved");
                ReadOnlySpan<byte> data = c.bytes;
                for (long off = 0; off < n; off += CopyChunk)
                    stream.Write(data.Slice((int)off, (int)Math.Min(CopyChunk, n - off)));
            }
        }
    }

    // ================================================================ reading

    /// <summary>
    /// Loads every tensor of a safetensors file onto <paramref name="device"/> (default CPU). The tensors belong to
    /// the current dispose scope (or to the caller when none is open).
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not valid safetensors (the message names the file and the problem).</exception>
    public static Dictionary<string, Tensor> Load(string path, Device? device = null) => LoadWithMetadata(path, device).Tensors;

    /// <summary>Loads the tensors and the header's "__metadata__" (empty when absent) of a safetensors file.</summary>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) LoadWithMetadata(string path, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        return Read(fs, fs.Length, $"safetensors file '{full}'", device);
    }

    /// <summary>Loads tensors from a stream holding safetensors data (e.g. a zip entry); <paramref name="name"/> is used in error messages.</summary>
    public static Dictionary<string, Tensor> Load(Stream stream, Device? device = null, string? name = null)
        => LoadWithMetadata(stream, device, name).Tensors;

    /// <summary>Loads tensors and metadata from a stream; reads the stream to its end.</summary>
    public static (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) LoadWithMetadata(Stream stream, Device? device = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        long? length = null;
        if (stream.CanSeek) length = stream.Length - stream.Position;
        return Read(stream, length, $"safetensors data '{name ?? "<stream>"}'", device);
    }

    /// <summary>Loads tensors from safetensors bytes.</summary>
    public static Dictionary<string, Tensor> Load(byte[] data, Device? device = null, string? name = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        using var ms = new MemoryStream(data, writable: false);
        return Read(ms, data.Length, $"safetensors data '{name ?? "<bytes>"}'", device).Tensors;
    }

    /// <summary>The header's "__metadata__" of a safetensors file (empty when absent), without loading tensor data.</summary>
    public static Dictionary<string, string> ReadMetadata(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        string full = Path.GetFullPath(path);
        using var fs = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read);
        return ReadHeader(fs, fs.Length, $"safetensors file '{full}'").Metadata;
    }

    private sealed record HeaderEntry(string Name, ScalarType DType, long[] Shape, long Begin, long End);

    private sealed record Header(List<HeaderEntry> Entries, Dictionary<string, string> Metadata, long HeaderLength);

    private static Exception Bad(string source, string problem) => new InvalidDataException($"{source}: {problem}");

    private static Header ReadHeader(Stream stream, long? length, string source)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors I/O needs a little-endian machine");
        Span<byte> lenBytes = stackalloc byte[8];
        int got = ReadFully(stream, lenBytes);
        if (got < 8)
            throw Bad(source, $"too short ({got} bytes): a safetensors file starts with an 8-byte header length");
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(lenBytes);
        if (length is long L && n > (ulong)(L - 8))
            throw Bad(source, $"the header length {n} is larger than the file ({L} bytes), so the file is truncated or not safetensors");
        if (n > MaxHeaderSize)
            throw Bad(source, $"the header length {n} exceeds the limit of {MaxHeaderSize} bytes");
        var headerBytes = new byte[(int)n];
        got = ReadFully(stream, headerBytes);
        if (got < headerBytes.Length)
            throw Bad(source, $"truncated: the header needs {n} bytes but only {got} follow");

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(headerBytes, new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"{source}: the header is not valid JSON ({ex.Message})", ex);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw Bad(source, $"the header must be a JSON object, not {root.ValueKind}");
            var entries = new List<HeaderEntry>();
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var prop in root.EnumerateObject())
            {
                if (!seen.Add(prop.Name)) throw Bad(source, $"the header names '{prop.Name}' twice");
                if (prop.Name == MetadataKey)
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object) throw Bad(source, "'__metadata__' must be an object of strings");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String) throw Bad(source, $"metadata '{m.Name}' is not a string");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                entries.Add(ParseEntry(prop, source));
            }

            // The data section must be covered exactly: sorted by offsets, each tensor starts where the previous ended.
            var sorted = entries.OrderBy(e => e.Begin).ThenBy(e => e.End).ToList();
            long expected = 0;
            foreach (var e in sorted)
            {
                if (e.Begin < expected) throw Bad(source, $"tensor '{e.Name}' overlaps the previous tensor's data (offsets [{e.Begin}, {e.End}], previous end {expected})");
                if (e.Begin > expected) throw Bad(source, $"there is a gap of {e.Begin - expected} bytes before tensor '{e.Name}' (offsets [{e.Begin}, {e.End}])");
                expected = e.End;
            }
            if (length is long L2)
            {
                long dataLen = L2 - 8 - (long)n;
                if (expected > dataLen)
                    throw Bad(source, $"truncated: the tensors need {expected} bytes of data but the file has {dataLen}");
                if (expected < dataLen)
                    throw Bad(source, $"{dataLen - expected} bytes follow the last tensor's data (the header does not describe the whole file)");
            }
            return new Header(sorted, metadata, (long)n);
        }
    }

    private static HeaderEntry ParseEntry(JsonProperty prop, string source)
    {
        string name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object) throw Bad(source, $"tensor '{name}' is not a JSON object");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw Bad(source, $"tensor '{name}' has no \"dtype\" string");
        string code = dt.GetString()!;
        if (!TryParseDType(code, out var dtype))
            throw Bad(source, $"tensor '{name}' has an unknown or unsupported dtype '{code}' (supported: {string.Join(" ", DTypes.Select(d => d.Code))})");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw Bad(source, $"tensor '{name}' has no \"shape\" array");
        var shape = new long[sh.GetArrayLength()];
        long numel = 1;
        int k = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long s) || s < 0)
                throw Bad(source, $"tensor '{name}' has an invalid shape entry {d.GetRawText()}");
            shape[k++] = s;
            try { numel = checked(numel * s); }
            catch (OverflowException) { throw Bad(source, $"tensor '{name}' has a shape too large to address"); }
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw Bad(source, $"tensor '{name}' has no \"data_offsets\" pair");
        var o = off.EnumerateArray().ToArray();
        if (o[0].ValueKind != JsonValueKind.Number || o[1].ValueKind != JsonValueKind.Number
            || !o[0].TryGetInt64(out long begin) || !o[1].TryGetInt64(out long end) || begin < 0 || end < begin)
            throw Bad(source, $"tensor '{name}' has invalid data_offsets {off.GetRawText()}");
        long need;
        try { need = checked(numel * TensorExtensions.ElementSize(dtype)); }
        catch (OverflowException) { throw Bad(source, $"tensor '{name}' has a shape too large to address"); }
        if (end - begin != need)
            throw Bad(source, $"tensor '{name}' has data_offsets [{begin}, {end}] ({end - begin} bytes) but its shape [{string.Join(", ", shape)}] and dtype {code} need {need} bytes");
        return new HeaderEntry(name, dtype, shape, begin, end);
    }

    private static unsafe (Dictionary<string, Tensor> Tensors, Dictionary<string, string> Metadata) Read(Stream stream, long? length, string source, Device? device)
    {
        var header = ReadHeader(stream, length, source);
        var dev = device ?? torch.CPU;
        Devices.EnsureAvailable(dev);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var e in header.Entries)
            {
                long n = e.End - e.Begin;
                byte* buf = (byte*)NativeMemory.Alloc((nuint)Math.Max(n, 1));
                try
                {
                    for (long off = 0; off < n;)
                    {
                        int want = (int)Math.Min(CopyChunk, n - off);
                        int got = ReadFully(stream, new Span<byte>(buf + off, want));
                        if (got < want)
                            throw Bad(source, $"truncated: the data of tensor '{e.Name}' ends after {off + got} of {n} bytes");
                        off += got;
                    }
                    if (e.DType == ScalarType.Bool)
                        for (long i = 0; i < n; i++)
                            if (buf[i] > 1) throw Bad(source, $"tensor '{e.Name}' (BOOL) holds the byte {buf[i]} at element {i}; booleans must be 0 or 1");
                    var t = torch.empty(e.Shape, e.DType, torch.CPU);
                    if (n > 0) new ReadOnlySpan<byte>(buf, (int)n).CopyTo(t.bytes);
                    if (dev.type != DeviceType.CPU) { var moved = t.to(dev); t.Dispose(); t = moved; }
                    result.Add(e.Name, t);
                }
                finally
                {
                    NativeMemory.Free(buf);
                }
            }
            if (length is null && stream.ReadByte() >= 0)
                throw Bad(source, "bytes follow the last tensor's data (the header does not describe the whole stream)");
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
        return (result, header.Metadata);
    }

    private static int ReadFully(Stream s, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int r = s.Read(buffer[total..]);
            if (r == 0) break;
            total += r;
        }
        return total;
    }
}
