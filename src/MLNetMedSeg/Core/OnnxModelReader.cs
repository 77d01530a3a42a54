using System.Runtime.InteropServices;
using Google.Protobuf;

namespace MLNetMedSeg.Core;

/// <summary>One node of an ONNX graph: operator, inputs, outputs and the attributes this library reads.</summary>
internal sealed record OnnxNode(string OpType, string Name, IReadOnlyList<string> Inputs, IReadOnlyList<string> Outputs,
    IReadOnlyDictionary<string, OnnxAttribute> Attributes)
{
    /// <summary>An integer-list attribute (kernel_shape, strides, pads, dilations), or null when absent.</summary>
    public long[]? Ints(string name) => Attributes.TryGetValue(name, out var a) ? a.Ints : null;

    /// <summary>An integer attribute, or <paramref name="fallback"/> when absent.</summary>
    public long Int(string name, long fallback) => Attributes.TryGetValue(name, out var a) && a.Int is { } i ? i : fallback;

    /// <summary>A float attribute, or <paramref name="fallback"/> when absent.</summary>
    public float Float(string name, float fallback) => Attributes.TryGetValue(name, out var a) && a.Float is { } f ? f : fallback;
}

/// <summary>An ONNX attribute's value (only the kinds this library needs: float, int, string, ints).</summary>
internal sealed record OnnxAttribute(string Name, float? Float, long? Int, string? String, long[]? Ints);

/// <summary>A float32 initializer of an ONNX graph (row-major values).</summary>
internal sealed record OnnxTensor(string Name, long[] Dims, float[] Values);

/// <summary>
/// The parts of an ONNX model (onnx.proto's ModelProto) that importing weights needs: the graph's nodes in file
/// order, its float32 initializers, its input and output names and the default-domain opset. Read with Google.Protobuf's
/// <see cref="CodedInputStream"/> against the few ONNX schema fields used (ModelProto.graph = 7, opset_import = 8;
/// GraphProto.node = 1, initializer = 5, input = 11, output = 12; NodeProto.input = 1, output = 2, name = 3, op_type = 4,
/// attribute = 5; AttributeProto.name = 1, f = 2, i = 3, s = 4, ints = 8; TensorProto.dims = 1, data_type = 2,
/// float_data = 4, name = 8, raw_data = 9, data_location = 14; ValueInfoProto.name = 1; OperatorSetIdProto.domain = 1,
/// version = 2). Other fields are skipped.
/// </summary>
internal sealed class OnnxModel
{
    private OnnxModel(string path) => Path = path;

    /// <summary>The file read (named in every error).</summary>
    public string Path { get; }

    /// <summary>Graph nodes in file order (ONNX requires topological order).</summary>
    public List<OnnxNode> Nodes { get; } = [];

    /// <summary>Float32 initializers by name.</summary>
    public Dictionary<string, OnnxTensor> Initializers { get; } = new(StringComparer.Ordinal);

    /// <summary>Graph input names (including initializers listed as inputs, as older exporters do).</summary>
    public List<string> Inputs { get; } = [];

    /// <summary>Graph output names.</summary>
    public List<string> Outputs { get; } = [];

    /// <summary>The default-domain opset version (0 when the model declares none).</summary>
    public long Opset { get; private set; }

    /// <summary>Reads <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">The file is not an ONNX model (truncated, not protobuf, no graph, or an
    /// initializer that is not float32 or is stored outside the file); the message names the file.</exception>
    public static OnnxModel Read(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"ONNX model '{path}' does not exist", path);
        var bytes = File.ReadAllBytes(path);
        var model = new OnnxModel(path);
        bool hasGraph = false;
        try
        {
            var s = new CodedInputStream(bytes);
            uint tag;
            while ((tag = s.ReadTag()) != 0)
            {
                switch (WireFormat.GetTagFieldNumber(tag))
                {
                    case 7 when IsMessage(tag): model.ReadGraph(Sub(s.ReadBytes())); hasGraph = true; break;
                    case 8 when IsMessage(tag): model.ReadOpset(Sub(s.ReadBytes())); break;
                    default: s.SkipLastField(); break;
                }
            }
        }
        catch (InvalidProtocolBufferException e)
        {
            throw new InvalidDataException($"'{path}' is not a readable ONNX model (truncated or not protobuf: {e.Message})", e);
        }
        if (!hasGraph || model.Nodes.Count == 0)
            throw new InvalidDataException($"'{path}' is not an ONNX model: it has no graph nodes");
        return model;
    }

    /// <summary>The initializer <paramref name="name"/>; an <see cref="InvalidDataException"/> naming the file when absent.</summary>
    public OnnxTensor Initializer(string name) => Initializers.TryGetValue(name, out var t) ? t
        : throw new InvalidDataException($"'{Path}': the graph has no float32 initializer '{name}'");

    private static bool IsMessage(uint tag) => WireFormat.GetTagWireType(tag) == WireFormat.WireType.LengthDelimited;

    private static CodedInputStream Sub(ByteString bytes)
        => MemoryMarshal.TryGetArray(bytes.Memory, out var seg)
            ? new CodedInputStream(seg.Array!, seg.Offset, seg.Count)
            : new CodedInputStream(bytes.ToByteArray());

    private void ReadOpset(CodedInputStream s)
    {
        string domain = "";
        long version = 0;
        uint tag;
        while ((tag = s.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: domain = s.ReadString(); break;
                case 2: version = s.ReadInt64(); break;
                default: s.SkipLastField(); break;
            }
        }
        if (domain is "" or "ai.onnx") Opset = version;
    }

    private void ReadGraph(CodedInputStream s)
    {
        uint tag;
        while ((tag = s.ReadTag()) != 0)
        {
            int field = WireFormat.GetTagFieldNumber(tag);
            if (!IsMessage(tag)) { s.SkipLastField(); continue; }
            switch (field)
            {
                case 1: Nodes.Add(ReadNode(Sub(s.ReadBytes()))); break;
                case 5:
                    var t = ReadTensor(Sub(s.ReadBytes()));
                    Initializers[t.Name] = t;
                    break;
                case 11: Inputs.Add(ReadValueInfoName(Sub(s.ReadBytes()))); break;
                case 12: Outputs.Add(ReadValueInfoName(Sub(s.ReadBytes()))); break;
                default: s.SkipLastField(); break;
            }
        }
    }

    private static string ReadValueInfoName(CodedInputStream s)
    {
        string name = "";
        uint tag;
        while ((tag = s.ReadTag()) != 0)
        {
            if (WireFormat.GetTagFieldNumber(tag) == 1) name = s.ReadString();
            else s.SkipLastField();
        }
        return name;
    }

    private static OnnxNode ReadNode(CodedInputStream s)
    {
        var inputs = new List<string>();
        var outputs = new List<string>();
        var attrs = new Dictionary<string, OnnxAttribute>(StringComparer.Ordinal);
        string op = "", name = "";
        uint tag;
        while ((tag = s.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: inputs.Add(s.ReadString()); break;
                case 2: outputs.Add(s.ReadString()); break;
                case 3: name = s.ReadString(); break;
                case 4: op = s.ReadString(); break;
                case 5 when IsMessage(tag):
                    var a = ReadAttribute(Sub(s.ReadBytes()));
                    attrs[a.Name] = a;
                    break;
                default: s.SkipLastField(); break;
            }
        }
        return new OnnxNode(op, name, inputs, outputs, attrs);
    }

    private static OnnxAttribute ReadAttribute(CodedInputStream s)
    {
        string name = "";
        float? f = null;
        long? i = null;
        string? str = null;
        List<long>? ints = null;
        uint tag;
        while ((tag = s.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1: name = s.ReadString(); break;
                case 2: f = s.ReadFloat(); break;
                case 3: i = s.ReadInt64(); break;
                case 4: str = s.ReadBytes().ToStringUtf8(); break;
                case 8:
                    ints ??= [];
                    if (IsMessage(tag))
                    {
                        var p = Sub(s.ReadBytes());
                        while (!p.IsAtEnd) ints.Add(p.ReadInt64());
                    }
                    else ints.Add(s.ReadInt64());
                    break;
                default: s.SkipLastField(); break;
            }
        }
        return new OnnxAttribute(name, f, i, str, ints?.ToArray());
    }

    private OnnxTensor ReadTensor(CodedInputStream s)
    {
        var dims = new List<long>();
        string name = "";
        int dataType = 0;
        long dataLocation = 0;
        float[]? floats = null;
        List<float>? unpacked = null;
        byte[]? raw = null;
        uint tag;
        while ((tag = s.ReadTag()) != 0)
        {
            switch (WireFormat.GetTagFieldNumber(tag))
            {
                case 1:
                    if (IsMessage(tag)) { var p = Sub(s.ReadBytes()); while (!p.IsAtEnd) dims.Add(p.ReadInt64()); }
                    else dims.Add(s.ReadInt64());
                    break;
                case 2: dataType = s.ReadInt32(); break;
                case 4:
                    if (IsMessage(tag))
                    {
                        var span = s.ReadBytes().Span;
                        if (span.Length % 4 != 0) throw new InvalidDataException($"'{Path}': float_data of a tensor has {span.Length} bytes, not a multiple of 4");
                        floats = MemoryMarshal.Cast<byte, float>(span).ToArray();
                    }
                    else (unpacked ??= []).Add(s.ReadFloat());
                    break;
                case 8: name = s.ReadString(); break;
                case 9: raw = s.ReadBytes().ToByteArray(); break;
                case 14: dataLocation = s.ReadInt64(); break;
                default: s.SkipLastField(); break;
            }
        }
        if (dataType != 1)
            throw new InvalidDataException($"'{Path}': initializer '{name}' has ONNX data type {dataType}; only float32 (1) is read");
        if (dataLocation != 0)
            throw new InvalidDataException($"'{Path}': initializer '{name}' is stored in an external file; only weights inside the model are read");
        float[] values;
        if (raw is not null)
        {
            if (raw.Length % 4 != 0) throw new InvalidDataException($"'{Path}': raw_data of '{name}' has {raw.Length} bytes, not a multiple of 4");
            if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("reading ONNX raw_data needs a little-endian machine");
            values = MemoryMarshal.Cast<byte, float>(raw).ToArray();   // ONNX stores raw_data little-endian
        }
        else values = floats ?? unpacked?.ToArray() ?? [];
        long count = dims.Aggregate(1L, (a, b) => a * b);
        if (count != values.Length)
            throw new InvalidDataException($"'{Path}': initializer '{name}' has dims [{string.Join(", ", dims)}] ({count} values) but holds {values.Length} (truncated?)");
        return new OnnxTensor(name, dims.ToArray(), values);
    }
}
