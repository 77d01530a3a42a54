using System.Buffers.Binary;
using System.Text;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// <see cref="Safetensors"/>: bit-identical round trips of every dtype, the header layout of the reference writer,
/// metadata, streams, atomic writes, every malformed file as an <see cref="InvalidDataException"/> naming the file, and
/// byte-level interop with PyTorch (ported from the old binding's SafetensorsTests).
/// </summary>
[TestClass]
public sealed class SafetensorsTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init()
    {
        _dir = Path.Combine(Path.GetTempPath(), "medseg-safetensors-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TestCleanup]
    public void Cleanup()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>The raw bytes of a tensor's elements (row-major), whatever its dtype.</summary>
    private static byte[] Bytes(Tensor t)
    {
        using var c = t.detach().contiguous();
        return c.bytes.ToArray();
    }

    private static Dictionary<string, Tensor> EveryDtype()
    {
        var f = new float[] { 1.5f, -0.0f, float.NaN, float.PositiveInfinity, -3.25e-7f, 65504f };
        return new Dictionary<string, Tensor>
        {
            ["f32"] = torch.tensor(f).reshape(2, 3),
            ["f64"] = torch.tensor(new double[] { Math.PI, -1e300, double.Epsilon, double.NegativeInfinity }).reshape(4, 1),
            ["f16"] = torch.tensor(f).to(ScalarType.Float16),
            ["bf16"] = torch.tensor(f).reshape(3, 2).to(ScalarType.BFloat16),
            ["i64"] = torch.tensor(new long[] { long.MinValue, -1, 0, long.MaxValue }),
            ["i32"] = torch.tensor(new int[] { int.MinValue, 7, int.MaxValue }),
            ["i16"] = torch.tensor(new int[] { -32768, 12, 32767 }).to(ScalarType.Int16),
            ["i8"] = torch.tensor(new int[] { -128, 0, 127 }).to(ScalarType.Int8),
            ["u8"] = torch.tensor(new byte[] { 0, 128, 255 }),
            ["bool"] = torch.tensor(new bool[] { true, false, false, true }).reshape(2, 2),
            ["scalar"] = torch.tensor(2.75, ScalarType.Float64),
            ["scalar_i64"] = torch.full(Array.Empty<long>(), S(9), ScalarType.Int64),
            ["empty"] = torch.zeros(new long[] { 0 }, ScalarType.Float32),
            ["empty_2d"] = torch.zeros(new long[] { 2, 0, 3 }, ScalarType.Int16),
            ["nested.name.weight"] = torch.ones(new long[] { 1, 1, 1, 2 }, ScalarType.Float32),
        };
    }

    private static void AssertSame(IReadOnlyDictionary<string, Tensor> expected, IReadOnlyDictionary<string, Tensor> actual)
    {
        CollectionAssert.AreEquivalent(expected.Keys.ToList(), actual.Keys.ToList());
        foreach (var (k, e) in expected)
        {
            var a = actual[k];
            Assert.AreEqual(e.dtype, a.dtype, k);
            CollectionAssert.AreEqual(e.shape, a.shape, k);
            CollectionAssert.AreEqual(Bytes(e), Bytes(a), $"{k}: the bytes differ");
        }
    }

    [TestMethod]
    public void RoundTripOfEveryDtypeIsBitIdentical()
    {
        using var scope = torch.NewDisposeScope();
        var tensors = EveryDtype();
        string path = PathOf("all.safetensors");
        Safetensors.Save(tensors, path);
        var loaded = Safetensors.Load(path);
        AssertSame(tensors, loaded);
        Assert.AreEqual(0, loaded["scalar"].shape.Length);
        Assert.AreEqual(2.75, loaded["scalar"].ToDouble());
        CollectionAssert.AreEqual(new long[] { 2, 0, 3 }, loaded["empty_2d"].shape);
        Assert.IsTrue(double.IsNaN(loaded["f32"].ToArray<float>()[2]));
        Assert.AreEqual(65504f, loaded["f16"].to(ScalarType.Float32).ToArray<float>()[5], "F16's largest finite value");

        // Format: the header length is a multiple of 8, padded with spaces, and the data covers the rest exactly.
        var raw = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(raw);
        Assert.AreEqual(0UL, n % 8);
        string header = Encoding.UTF8.GetString(raw, 8, (int)n);
        Assert.IsTrue(header.StartsWith('{'));
        Assert.IsTrue(header.TrimEnd(' ').EndsWith('}'));
        long dataBytes = tensors.Values.Sum(t => t.numel() * TensorExtensions.ElementSize(t.dtype));
        Assert.AreEqual(8 + (long)n + dataBytes, raw.LongLength);
        // The reference writer's order: larger dtypes first, then by name (so every tensor is aligned to its element size).
        int iI64 = header.IndexOf("\"i64\"", StringComparison.Ordinal), iF64 = header.IndexOf("\"f64\"", StringComparison.Ordinal);
        int iF32 = header.IndexOf("\"f32\"", StringComparison.Ordinal), iBool = header.IndexOf("\"bool\"", StringComparison.Ordinal);
        Assert.IsTrue(iI64 < iF64 && iF64 < iF32 && iF32 < iBool, header);
        Assert.IsTrue(header.IndexOf("\"empty\"", StringComparison.Ordinal) < iF32, "F32 tensors sorted by name");

        // An explicit device, and a file that overwrites an existing one.
        AssertSame(tensors, Safetensors.Load(path, torch.CPU));
        Safetensors.Save(new Dictionary<string, Tensor> { ["x"] = torch.ones(2) }, path);
        CollectionAssert.AreEqual(new[] { "x" }, Safetensors.Load(path).Keys.ToArray());
    }

    [TestMethod]
    public void NonContiguousAndGradTensorsAreSavedAsValues()
    {
        using var scope = torch.NewDisposeScope();
        var p = torch.tensor(new float[] { 1, 2, 3, 4 }, requires_grad: true);
        var y = p.reshape(2, 2) * S(2);   // part of a graph
        var t = torch.arange(S(6), ScalarType.Float32).reshape(2, 3).t();   // non-contiguous [3, 2]
        Assert.IsFalse(t.is_contiguous());
        string path = PathOf("g.safetensors");
        Safetensors.Save(new Dictionary<string, Tensor> { ["y"] = y, ["t"] = t }, path);
        var back = Safetensors.Load(path);
        CollectionAssert.AreEqual(new float[] { 2, 4, 6, 8 }, back["y"].ToArray<float>());
        Assert.IsFalse(back["y"].requires_grad);
        CollectionAssert.AreEqual(new long[] { 3, 2 }, back["t"].shape);
        CollectionAssert.AreEqual(new float[] { 0, 3, 1, 4, 2, 5 }, back["t"].ToArray<float>());
        Assert.IsTrue(p.requires_grad && !p.IsInvalid, "the saved tensors are not modified or disposed");
    }

    [TestMethod]
    public void MetadataRoundTrip()
    {
        using var scope = torch.NewDisposeScope();
        string path = PathOf("m.safetensors");
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "é ünïcode \"quoted\" \\ <tag> &", ["empty"] = "" };
        Safetensors.Save(new Dictionary<string, Tensor> { ["x"] = torch.ones(2) }, path, meta);
        var (tensors, metadata) = Safetensors.LoadWithMetadata(path);
        CollectionAssert.AreEquivalent(meta.ToList(), metadata.ToList());
        CollectionAssert.AreEquivalent(meta.ToList(), Safetensors.ReadMetadata(path).ToList());
        CollectionAssert.AreEqual(new float[] { 1, 1 }, tensors["x"].ToArray<float>());

        string plain = PathOf("plain.safetensors");
        Safetensors.Save(new Dictionary<string, Tensor> { ["x"] = torch.ones(2) }, plain);
        Assert.AreEqual(0, Safetensors.ReadMetadata(plain).Count);
        Assert.IsFalse(Encoding.UTF8.GetString(File.ReadAllBytes(plain)).Contains("__metadata__"));

        // Argument errors surface before any file is touched.
        Assert.ThrowsException<ArgumentException>(() =>
            Safetensors.Save(new Dictionary<string, Tensor> { ["__metadata__"] = torch.ones(1) }, PathOf("bad.safetensors")));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() =>
            Safetensors.Save(new Dictionary<string, Tensor> { ["c"] = torch.ones(new long[] { 2 }, ScalarType.ComplexFloat32) }, PathOf("bad.safetensors")));
        Assert.IsFalse(File.Exists(PathOf("bad.safetensors")));
        Assert.AreEqual(2, Directory.GetFileSystemEntries(_dir).Length, "no temporary file is left");
    }

    /// <summary>A read-only stream that cannot seek and returns few bytes per read, like a zip entry's.</summary>
    private sealed class TrickleStream(byte[] data) : Stream
    {
        private int _pos;
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = Math.Min(Math.Min(count, 5), data.Length - _pos);
            Array.Copy(data, _pos, buffer, offset, n);
            _pos += n;
            return n;
        }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }

    [TestMethod]
    public void StreamAndBytesRoundTrip()
    {
        using var scope = torch.NewDisposeScope();
        var tensors = EveryDtype();
        using var ms = new MemoryStream();
        ms.WriteByte(0xAB); // the stream's position is respected
        Safetensors.Save(tensors, ms, new Dictionary<string, string> { ["k"] = "v" });
        Assert.IsTrue(ms.CanWrite, "Save(…, Stream) leaves the stream open");
        ms.WriteByte(0xCD);
        var bytes = ms.ToArray()[1..^1];
        CollectionAssert.AreEqual(bytes, Safetensors.SaveToBytes(tensors, new Dictionary<string, string> { ["k"] = "v" }));

        using var readBack = new MemoryStream(ms.ToArray()[..^1]) { Position = 1 };
        var (fromStream, meta) = Safetensors.LoadWithMetadata(readBack);
        AssertSame(tensors, fromStream);
        Assert.AreEqual("v", meta["k"]);
        AssertSame(tensors, Safetensors.Load(bytes));
        AssertSame(tensors, Safetensors.Load(new TrickleStream(bytes), name: "entry.safetensors"));

        // A file written by path holds the same bytes as the stream writer's.
        string path = PathOf("s.safetensors");
        Safetensors.Save(tensors, path, new Dictionary<string, string> { ["k"] = "v" });
        CollectionAssert.AreEqual(bytes, File.ReadAllBytes(path));
    }

    // ------------------------------------------------------------ corruption

    private static byte[] Make(string json, byte[] data, long? headerLength = null)
    {
        var h = Encoding.UTF8.GetBytes(json);
        var r = new byte[8 + h.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(r, (ulong)(headerLength ?? h.Length));
        h.CopyTo(r, 8);
        data.CopyTo(r, 8 + h.Length);
        return r;
    }

    private void AssertCorrupt(byte[] content, string expectedPart, string label)
    {
        string path = PathOf(label + ".safetensors");
        File.WriteAllBytes(path, content);
        long before = LiveTensors.Settled();
        var ex = Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(path), label);
        StringAssert.Contains(ex.Message, path, $"{label}: the message names the file");
        StringAssert.Contains(ex.Message, expectedPart, label);
        Assert.AreEqual(before, LiveTensors.Settled(), $"{label}: no tensor leaks from a failed load");
        // The same content through a non-seekable stream fails too, naming the entry.
        var ex2 = Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(new TrickleStream(content), name: "zip:" + label), label + " (stream)");
        StringAssert.Contains(ex2.Message, "zip:" + label);
        Assert.AreEqual(before, LiveTensors.Settled(), $"{label}: no tensor leaks from a failed stream load");
        // ReadMetadata checks the header the same way (it fails on every header problem; data problems need the data).
        if (!label.StartsWith("data-", StringComparison.Ordinal))
            Assert.ThrowsException<InvalidDataException>(() => Safetensors.ReadMetadata(path), label + " (metadata)");
    }

    [TestMethod]
    public void CorruptFilesGiveErrorsNamingTheFile()
    {
        using var scope = torch.NewDisposeScope();
        var eight = new byte[8];
        const string ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        // Sanity: the well-formed reference loads (its header length is not a multiple of 8, which readers accept).
        File.WriteAllBytes(PathOf("good.safetensors"), Make(ok, eight));
        CollectionAssert.AreEqual(new float[] { 0, 0 }, Safetensors.Load(PathOf("good.safetensors"))["a"].ToArray<float>());

        AssertCorrupt([], "too short (0 bytes)", "empty");
        AssertCorrupt([1, 2, 3], "too short", "short");
        AssertCorrupt(Make(ok, eight, headerLength: 10_000), "header length 10000 is larger than the file", "hugeheader");
        AssertCorrupt(Make("", []), "not valid JSON", "zeroheader");
        AssertCorrupt(Make("{\"a\": {\"dtype\": \"F32\", ", eight), "not valid JSON", "json");
        AssertCorrupt([4, 0, 0, 0, 0, 0, 0, 0, 0x7B, 0xFF, 0xFE, 0x7D], "not valid JSON", "notutf8");
        AssertCorrupt(Make("[1, 2]", []), "must be a JSON object", "notobject");
        AssertCorrupt(Make("{\"a\":[1]}", []), "tensor 'a' is not a JSON object", "entrynotobject");
        AssertCorrupt(Make("{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", eight[..4]), "no \"dtype\"", "nodtype");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", eight), "unknown or unsupported dtype 'C64'", "dtype");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", eight), "no \"shape\" array", "shapenotarray");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", eight), "truncated", "outofrange");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", eight), "need 12 bytes", "sizemismatch");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", eight),
            "overlaps", "overlap");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", eight), "gap of 4 bytes", "gap");
        AssertCorrupt(Make(ok, new byte[12]), "4 bytes follow the last tensor", "trailing");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", eight), "invalid shape", "negshape");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", eight), "invalid shape", "floatshape");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", eight),
            "too large", "hugeshape");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", eight), "data_offsets", "nooffsets");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4,8]}}", eight), "data_offsets", "threeoffsets");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", eight), "invalid data_offsets", "reversedoffsets");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[\"0\",\"8\"]}}", eight), "invalid data_offsets", "stringoffsets");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[null,8]}}", eight), "invalid data_offsets", "nulloffset");
        AssertCorrupt(Make("{\"__metadata__\":{\"k\":1}}", []), "metadata 'k' is not a string", "metadata");
        AssertCorrupt(Make("{\"__metadata__\":[\"k\"]}", []), "'__metadata__' must be an object", "metadatanotobject");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
            "names 'a' twice", "duplicate");
        // Data errors: the first tensor ('a', I64 sorts first) is already made when the second fails, and is disposed.
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[8,10]}}",
            [.. eight, 1, 2]), "booleans must be 0 or 1", "data-boolbyte");
    }

    [TestMethod]
    public void ForeignFilesAreRejectedNamingTheFile()
    {
        using var scope = torch.NewDisposeScope();
        // TorchSharp's own module format (Module.save), a PyTorch .pt (a zip), a PNG, a text file, an empty file.
        string ts = PathOf("torchsharp.dat");
        using (var lin = torch.nn.Linear(3, 2)) lin.save(ts);
        File.WriteAllBytes(PathOf("pytorch.pt"), [0x50, 0x4B, 0x03, 0x04, 0x14, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        File.WriteAllBytes(PathOf("image.png"), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 0x49, 0x48, 0x44, 0x52]);
        File.WriteAllText(PathOf("notes.json"), "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}");
        File.WriteAllBytes(PathOf("empty.bin"), []);
        foreach (var name in new[] { "torchsharp.dat", "pytorch.pt", "image.png", "notes.json", "empty.bin" })
        {
            string path = PathOf(name);
            var ex = Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(path), name);
            StringAssert.Contains(ex.Message, path, name);
            Assert.ThrowsException<InvalidDataException>(() => Safetensors.ReadMetadata(path), name);
        }
    }

    [TestMethod]
    public void TruncatedDataIsReported()
    {
        using var scope = torch.NewDisposeScope();
        var full = Safetensors.SaveToBytes(new Dictionary<string, Tensor> { ["w"] = torch.ones(100) });
        var cut = full[..^10];
        var ex = Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(new TrickleStream(cut), name: "model/weights"));
        StringAssert.Contains(ex.Message, "model/weights");
        StringAssert.Contains(ex.Message, "truncated: the data of tensor 'w' ends after 390 of 400 bytes");
        File.WriteAllBytes(PathOf("cut.safetensors"), cut);
        var ex2 = Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(PathOf("cut.safetensors")));
        StringAssert.Contains(ex2.Message, "truncated: the tensors need 400 bytes of data but the file has 390");
        StringAssert.Contains(ex2.Message, PathOf("cut.safetensors"));
        // Cut inside the header.
        File.WriteAllBytes(PathOf("cuthead.safetensors"), full[..20]);
        StringAssert.Contains(Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(PathOf("cuthead.safetensors"))).Message, "larger than the file");
        StringAssert.Contains(Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(new TrickleStream(full[..20]), name: "head")).Message,
            "truncated: the header needs");
        // A stream with bytes after the data.
        StringAssert.Contains(Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(new TrickleStream([.. full, 0]), name: "tail")).Message,
            "bytes follow the last tensor's data");
    }

    // ------------------------------------------------------------ atomic save

    [TestMethod]
    public void FailedSaveLeavesExistingFileUnchangedAndNoTemp()
    {
        using var scope = torch.NewDisposeScope();
        string path = PathOf("model.safetensors");
        Safetensors.Save(new Dictionary<string, Tensor> { ["a"] = torch.ones(3) }, path);
        var before = File.ReadAllBytes(path);
        string[] Files() => Directory.GetFiles(_dir).Select(f => Path.GetFileName(f)!).ToArray();

        var disposed = torch.zeros(2);
        disposed.Dispose();
        var de = Assert.ThrowsException<ObjectDisposedException>(() =>
            Safetensors.Save(new Dictionary<string, Tensor> { ["a"] = torch.full(new long[] { 3 }, S(5f)), ["b"] = disposed }, path));
        StringAssert.Contains(de.Message, "tensor 'b'");
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path), "the existing file is unchanged");
        CollectionAssert.AreEqual(new[] { "model.safetensors" }, Files(), "no temporary file is left");

        // A failure after the data is written (the destination is a folder, so the final move fails) removes the temporary file.
        string folder = PathOf("taken");
        Directory.CreateDirectory(folder);
        var ex = Assert.ThrowsException<IOException>(() => Safetensors.Save(new Dictionary<string, Tensor> { ["a"] = torch.ones(1000) }, folder));
        StringAssert.Contains(ex.Message, folder);
        Assert.IsTrue(Directory.Exists(folder));
        CollectionAssert.AreEqual(new[] { "model.safetensors" }, Files(), "no temporary file is left");

        // A missing folder is an IOException naming the file.
        string nowhere = Path.Combine(_dir, "missing", "m.safetensors");
        StringAssert.Contains(Assert.ThrowsException<IOException>(() => Safetensors.Save(new Dictionary<string, Tensor> { ["a"] = torch.ones(1) }, nowhere)).Message, nowhere);

        // A successful save replaces the file.
        Safetensors.Save(new Dictionary<string, Tensor> { ["a"] = torch.full(new long[] { 3 }, S(7f)) }, path);
        CollectionAssert.AreEqual(new float[] { 7, 7, 7 }, Safetensors.Load(path)["a"].ToArray<float>());
        Assert.AreEqual(2, Directory.GetFileSystemEntries(_dir).Length);
    }

    // ------------------------------------------------------------ interop with PyTorch

    // Python's `safetensors` package is not packaged for Debian 12, so interop is checked at the byte level against
    // PyTorch tensors serialised by hand (struct + json + numpy bytes, in the reference writer's layout: header JSON
    // with "__metadata__" first, then tensors by dtype (larger alignment first) and name, padded with spaces to a
    // multiple of 8). The bytes below were made with /usr/bin/python3 (PyTorch 1.13) by the old binding's
    // interop script (safetensors_interop.py in the retired binding's test data, commit 25f11b8), in short:
    //
    //   ref = {"f32": torch.tensor([[1.5, -2.25, 3.0], [0.0, 1e-3, -7.5]]), "f64": torch.tensor([math.pi, -1e300, 2.5], dtype=torch.float64),
    //          "bf16": torch.tensor([1.0, -2.5, 0.15625, 256.0], dtype=torch.bfloat16), "i64": torch.tensor([-(2**62), 0, 2**40 + 1]),
    //          "u8": torch.tensor([0, 7, 255], dtype=torch.uint8), "mask": torch.tensor([[True, False], [True, True]]),
    //          "scalar": torch.tensor(42.5), "empty": torch.zeros((0, 3))}
    //   write(path, ref, {"source": "python", "format": "pt"})     # → PythonFile (base64)
    //   write(path, ref, {"writer": "csharp"})                     # → PythonHeaderForCSharpMetadata, same data bytes
    //   check(path)  # the script's reader: header multiple of 8, spans contiguous, reference order, values == ref
    //
    // A file whose bytes equal the Python writer's passes that reader (and safetensors' own, which accepts this layout).

    private const string PythonFile =
        "CAIAAAAAAAB7Il9fbWV0YWRhdGFfXyI6eyJzb3VyY2UiOiJweXRob24iLCJmb3JtYXQiOiJwdCJ9LCJpNjQiOnsiZHR5cGUiOiJJNjQiLCJzaGFwZSI6WzNdLCJkYXRhX29mZnNldHMiOlswLDI0XX0s" +
        "ImY2NCI6eyJkdHlwZSI6IkY2NCIsInNoYXBlIjpbM10sImRhdGFfb2Zmc2V0cyI6WzI0LDQ4XX0sImVtcHR5Ijp7ImR0eXBlIjoiRjMyIiwic2hhcGUiOlswLDNdLCJkYXRhX29mZnNldHMiOls0OCw0" +
        "OF19LCJmMzIiOnsiZHR5cGUiOiJGMzIiLCJzaGFwZSI6WzIsM10sImRhdGFfb2Zmc2V0cyI6WzQ4LDcyXX0sInNjYWxhciI6eyJkdHlwZSI6IkYzMiIsInNoYXBlIjpbXSwiZGF0YV9vZmZzZXRzIjpb" +
        "NzIsNzZdfSwiYmYxNiI6eyJkdHlwZSI6IkJGMTYiLCJzaGFwZSI6WzRdLCJkYXRhX29mZnNldHMiOls3Niw4NF19LCJ1OCI6eyJkdHlwZSI6IlU4Iiwic2hhcGUiOlszXSwiZGF0YV9vZmZzZXRzIjpb" +
        "ODQsODddfSwibWFzayI6eyJkdHlwZSI6IkJPT0wiLCJzaGFwZSI6WzIsMl0sImRhdGFfb2Zmc2V0cyI6Wzg3LDkxXX19ICAgAAAAAAAAAMAAAAAAAAAAAAEAAAAAAQAAGC1EVPshCUCcdQCIPOQ3/gAA" +
        "AAAAAARAAADAPwAAEMAAAEBAAAAAAG8SgzoAAPDAAAAqQoA/IMAgPoBDAAf/AQABAQ==";

    private const string PythonHeaderForCSharpMetadata =
        "{\"__metadata__\":{\"writer\":\"csharp\"},\"i64\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[0,24]},\"f64\":{\"dtype\":\"F64\",\"shape\":[3]," +
        "\"data_offsets\":[24,48]},\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[48,48]},\"f32\":{\"dtype\":\"F32\",\"shape\":[2,3]," +
        "\"data_offsets\":[48,72]},\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[72,76]},\"bf16\":{\"dtype\":\"BF16\",\"shape\":[4]," +
        "\"data_offsets\":[76,84]},\"u8\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[84,87]},\"mask\":{\"dtype\":\"BOOL\",\"shape\":[2,2]," +
        "\"data_offsets\":[87,91]}} ";

    /// <summary>The tensors of the Python snippet above.</summary>
    private static Dictionary<string, Tensor> InteropReference() => new()
    {
        ["f32"] = torch.tensor(new float[] { 1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.5f }).reshape(2, 3),
        ["f64"] = torch.tensor(new double[] { Math.PI, -1e300, 2.5 }),
        ["bf16"] = torch.tensor(new float[] { 1.0f, -2.5f, 0.15625f, 256.0f }).to(ScalarType.BFloat16),
        ["i64"] = torch.tensor(new long[] { -(1L << 62), 0, (1L << 40) + 1 }),
        ["u8"] = torch.tensor(new byte[] { 0, 7, 255 }),
        ["mask"] = torch.tensor(new bool[] { true, false, true, true }).reshape(2, 2),
        ["scalar"] = torch.tensor(42.5f),
        ["empty"] = torch.zeros(new long[] { 0, 3 }, ScalarType.Float32),
    };

    [TestMethod]
    public void PythonWrittenFileLoads()
    {
        using var scope = torch.NewDisposeScope();
        string path = PathOf("from_python.safetensors");
        File.WriteAllBytes(path, Convert.FromBase64String(PythonFile));
        var (tensors, metadata) = Safetensors.LoadWithMetadata(path);
        AssertSame(InteropReference(), tensors);
        CollectionAssert.AreEquivalent(new Dictionary<string, string> { ["source"] = "python", ["format"] = "pt" }.ToList(), metadata.ToList());
        // Spot checks independent of the byte comparison.
        Assert.AreEqual(-2.5f, tensors["bf16"].to(ScalarType.Float32).ToArray<float>()[1]);
        Assert.AreEqual((1L << 40) + 1, tensors["i64"].ToArray<long>()[2]);
        Assert.AreEqual(42.5f, tensors["scalar"].ToSingle());
        CollectionAssert.AreEqual(new[] { true, false, true, true }, tensors["mask"].ToArray<bool>());
    }

    [TestMethod]
    public void OurFileHasTheBytesOfThePythonWriter()
    {
        using var scope = torch.NewDisposeScope();
        var ours = Safetensors.SaveToBytes(InteropReference(), new Dictionary<string, string> { ["writer"] = "csharp" });
        var python = Convert.FromBase64String(PythonFile);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(ours);
        Assert.AreEqual(PythonHeaderForCSharpMetadata, Encoding.UTF8.GetString(ours, 8, (int)n), "the header, byte for byte");
        Assert.AreEqual((ulong)PythonHeaderForCSharpMetadata.Length, n);
        ulong pn = BinaryPrimitives.ReadUInt64LittleEndian(python);
        CollectionAssert.AreEqual(python[(8 + (int)pn)..], ours[(8 + (int)n)..], "the data section, byte for byte");
    }
}
