using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using MLNetMedSeg.Torch.Serialization;

namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class SafetensorsTests
{
    private string _dir = "";

    [TestInitialize]
    public void Init()
    {
        _dir = Path.Combine(Path.GetTempPath(), "mt_safetensors_" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TestCleanup]
    public void Cleanup()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>The raw bytes of a tensor's elements (row-major), whatever its dtype.</summary>
    private static byte[] Bytes(Tensor t) => t.dtype switch
    {
        ScalarType.Float32 => MemoryMarshal.AsBytes<float>(t.ToArray<float>()).ToArray(),
        ScalarType.Float64 => MemoryMarshal.AsBytes<double>(t.ToArray<double>()).ToArray(),
        ScalarType.Float16 => MemoryMarshal.AsBytes<Half>(t.ToArray<Half>()).ToArray(),
        ScalarType.BFloat16 => MemoryMarshal.AsBytes<BFloat16>(t.ToArray<BFloat16>()).ToArray(),
        ScalarType.Int64 => MemoryMarshal.AsBytes<long>(t.ToArray<long>()).ToArray(),
        ScalarType.Int32 => MemoryMarshal.AsBytes<int>(t.ToArray<int>()).ToArray(),
        ScalarType.Int16 => MemoryMarshal.AsBytes<short>(t.ToArray<short>()).ToArray(),
        ScalarType.Int8 => MemoryMarshal.AsBytes<sbyte>(t.ToArray<sbyte>()).ToArray(),
        ScalarType.Byte => t.ToArray<byte>(),
        ScalarType.Bool => MemoryMarshal.AsBytes<bool>(t.ToArray<bool>()).ToArray(),
        _ => throw new ArgumentException(t.dtype.ToString()),
    };

    private static Dictionary<string, Tensor> EveryDtype()
    {
        var f = new float[] { 1.5f, -0.0f, float.NaN, float.PositiveInfinity, -3.25e-7f, 65504f };
        return new Dictionary<string, Tensor>
        {
            ["f32"] = torch.tensor(f, [2, 3]),
            ["f64"] = torch.tensor(new double[] { Math.PI, -1e300, double.Epsilon, double.NegativeInfinity }, [4, 1]),
            ["f16"] = torch.tensor(f).to(ScalarType.Float16),
            ["bf16"] = torch.tensor(f, [3, 2]).to(ScalarType.BFloat16),
            ["i64"] = torch.tensor(new long[] { long.MinValue, -1, 0, long.MaxValue }),
            ["i32"] = torch.tensor(new int[] { int.MinValue, 7, int.MaxValue }),
            ["i16"] = torch.tensor(new int[] { -32768, 12, 32767 }).to(ScalarType.Int16),
            ["i8"] = torch.tensor(new int[] { -128, 0, 127 }).to(ScalarType.Int8),
            ["u8"] = torch.tensor(new byte[] { 0, 128, 255 }),
            ["bool"] = torch.tensor(new bool[] { true, false, false, true }, [2, 2]),
            ["scalar"] = torch.tensor(2.75, ScalarType.Float64),
            ["scalar_i64"] = torch.full([], 9, ScalarType.Int64),
            ["empty"] = torch.zeros([0], ScalarType.Float32),
            ["empty_2d"] = torch.zeros([2, 0, 3], ScalarType.Int16),
            ["nested.name.weight"] = torch.ones([1, 1, 1, 2], ScalarType.Float32),
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
        Assert.AreEqual(2.75, loaded["scalar"].item<double>());
        CollectionAssert.AreEqual(new long[] { 2, 0, 3 }, loaded["empty_2d"].shape);

        // Format: header length is a multiple of 8, padded with spaces, and the data covers the rest exactly.
        var raw = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(raw);
        Assert.AreEqual(0UL, n % 8);
        string header = Encoding.UTF8.GetString(raw, 8, (int)n);
        Assert.IsTrue(header.StartsWith('{'));
        Assert.IsTrue(header.TrimEnd(' ').EndsWith('}'));
        long dataBytes = tensors.Values.Sum(t => t.numel() * torch.ElementSize(t.dtype));
        Assert.AreEqual(8 + (long)n + dataBytes, raw.LongLength);
        // Reference writer order: larger dtypes first, then by name.
        int iI64 = header.IndexOf("\"i64\"", StringComparison.Ordinal), iF64 = header.IndexOf("\"f64\"", StringComparison.Ordinal);
        int iF32 = header.IndexOf("\"f32\"", StringComparison.Ordinal), iBool = header.IndexOf("\"bool\"", StringComparison.Ordinal);
        Assert.IsTrue(iI64 < iF64 && iF64 < iF32 && iF32 < iBool, header);
        Assert.IsTrue(header.IndexOf("\"empty\"", StringComparison.Ordinal) < iF32, "F32 tensors sorted by name");

        // onto a device given explicitly, through the torch.safetensors surface
        var viaTorch = torch.safetensors.load(path, torch.CPU);
        AssertSame(tensors, viaTorch);
    }

    [TestMethod]
    public void NonContiguousAndGradTensorsAreSavedAsValues()
    {
        using var scope = torch.NewDisposeScope();
        var p = torch.tensor(new float[] { 1, 2, 3, 4 }, [2, 2], requires_grad: true);
        var y = p * 2; // part of a graph
        string path = PathOf("g.safetensors");
        Safetensors.Save(new Dictionary<string, Tensor> { ["y"] = y }, path);
        var back = Safetensors.Load(path)["y"];
        CollectionAssert.AreEqual(new float[] { 2, 4, 6, 8 }, back.ToArray<float>());
        Assert.IsFalse(back.requires_grad);
    }

    [TestMethod]
    public void MetadataRoundTrip()
    {
        using var scope = torch.NewDisposeScope();
        string path = PathOf("m.safetensors");
        var meta = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "é ünïcode \"quoted\"", ["empty"] = "" };
        Safetensors.Save(new Dictionary<string, Tensor> { ["x"] = torch.ones(2) }, path, meta);
        var (tensors, metadata) = Safetensors.LoadWithMetadata(path);
        CollectionAssert.AreEquivalent(meta.ToList(), metadata.ToList());
        CollectionAssert.AreEquivalent(meta.ToList(), Safetensors.ReadMetadata(path).ToList());
        CollectionAssert.AreEqual(new float[] { 1, 1 }, tensors["x"].ToArray<float>());

        string plain = PathOf("plain.safetensors");
        torch.safetensors.save(new Dictionary<string, Tensor> { ["x"] = torch.ones(2) }, plain);
        Assert.AreEqual(0, torch.safetensors.metadata(plain).Count);
        Assert.IsFalse(Encoding.UTF8.GetString(File.ReadAllBytes(plain)).Contains("__metadata__"));

        Assert.ThrowsException<ArgumentException>(() =>
            Safetensors.Save(new Dictionary<string, Tensor> { ["__metadata__"] = torch.ones(1) }, PathOf("bad.safetensors")));
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
        var bytes = ms.ToArray()[1..];
        CollectionAssert.AreEqual(bytes, Safetensors.SaveToBytes(tensors, new Dictionary<string, string> { ["k"] = "v" }));

        ms.Position = 1;
        var (fromStream, meta) = Safetensors.LoadWithMetadata(ms);
        AssertSame(tensors, fromStream);
        Assert.AreEqual("v", meta["k"]);
        AssertSame(tensors, Safetensors.Load(bytes));
        AssertSame(tensors, Safetensors.Load(new TrickleStream(bytes), name: "entry.safetensors"));

        // a file written by path holds the same bytes as the stream writer's
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
        long before = torch.LiveTensorCount;
        var ex = Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(path), label);
        StringAssert.Contains(ex.Message, path, $"{label}: the message names the file");
        StringAssert.Contains(ex.Message, expectedPart, label);
        Assert.AreEqual(before, torch.LiveTensorCount, $"{label}: no tensor leaks from a failed load");
        // the same content through a non-seekable stream fails too, naming the entry
        var ex2 = Assert.ThrowsException<InvalidDataException>(() => Safetensors.Load(new TrickleStream(content), name: "zip:" + label), label + " (stream)");
        StringAssert.Contains(ex2.Message, "zip:" + label);
    }

    [TestMethod]
    public void CorruptFilesGiveErrorsNamingTheFile()
    {
        using var scope = torch.NewDisposeScope();
        var eight = new byte[8];
        const string ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        // sanity: the well-formed reference loads
        File.WriteAllBytes(PathOf("good.safetensors"), Make(ok, eight));
        CollectionAssert.AreEqual(new float[] { 0, 0 }, Safetensors.Load(PathOf("good.safetensors"))["a"].ToArray<float>());

        AssertCorrupt([1, 2, 3], "too short", "short");
        AssertCorrupt(Make(ok, eight, headerLength: 10_000), "header length 10000 is larger than the file", "hugeheader");
        AssertCorrupt(Make("{\"a\": {\"dtype\": \"F32\", ", eight), "not valid JSON", "json");
        AssertCorrupt(Make("[1, 2]", []), "must be a JSON object", "notobject");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", eight), "unknown or unsupported dtype 'C64'", "dtype");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", eight), "truncated", "outofrange");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", eight), "need 12 bytes", "sizemismatch");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", eight),
            "overlaps", "overlap");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", eight), "gap of 4 bytes", "gap");
        AssertCorrupt(Make(ok, new byte[12]), "4 bytes follow the last tensor", "trailing");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", eight), "invalid shape", "negshape");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", eight), "data_offsets", "nooffsets");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[0,2]}}", [1, 2]), "booleans must be 0 or 1", "boolbyte");
        AssertCorrupt(Make("{\"__metadata__\":{\"k\":1}}", []), "metadata 'k' is not a string", "metadata");
        AssertCorrupt(Make("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", eight),
            "names 'a' twice", "duplicate");
    }

    [TestMethod]
    public void TruncatedStreamDataIsReported()
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
    }

    // ------------------------------------------------------------ atomic save

    [TestMethod]
    public void FailedSaveLeavesExistingFileUnchangedAndNoTemp()
    {
        using var scope = torch.NewDisposeScope();
        string path = PathOf("model.safetensors");
        Safetensors.Save(new Dictionary<string, Tensor> { ["a"] = torch.ones(3) }, path);
        var before = File.ReadAllBytes(path);

        var disposed = torch.zeros(2);
        disposed.Dispose();
        Assert.ThrowsException<ObjectDisposedException>(() =>
            Safetensors.Save(new Dictionary<string, Tensor> { ["a"] = torch.full([3], 5), ["b"] = disposed }, path));
        CollectionAssert.AreEqual(before, File.ReadAllBytes(path), "the existing file is unchanged");
        CollectionAssert.AreEqual(new[] { "model.safetensors" }, Directory.GetFiles(_dir).Select(f => Path.GetFileName(f)).ToArray(), "no temporary file is left");

        // A failure after the data is written (the destination is a folder, so the final move fails) removes the temporary file.
        string folder = PathOf("taken");
        Directory.CreateDirectory(folder);
        var ex = Assert.ThrowsException<IOException>(() => Safetensors.Save(new Dictionary<string, Tensor> { ["a"] = torch.ones(1000) }, folder));
        StringAssert.Contains(ex.Message, folder);
        Assert.IsTrue(Directory.Exists(folder));
        CollectionAssert.AreEqual(new[] { "model.safetensors" }, Directory.GetFiles(_dir).Select(f => Path.GetFileName(f)).ToArray(), "no temporary file is left");

        // A successful save replaces the file.
        Safetensors.Save(new Dictionary<string, Tensor> { ["a"] = torch.full([3], 7) }, path);
        CollectionAssert.AreEqual(new float[] { 7, 7, 7 }, Safetensors.Load(path)["a"].ToArray<float>());
        Assert.AreEqual(2, Directory.GetFileSystemEntries(_dir).Length);
    }

    // ------------------------------------------------------------ interop with PyTorch

    /// <summary>Debian's python3 with python3-torch (build/setup.sh installs it); MEDSEG_TEST_PYTHON names another, e.g.
    /// the PyTorch install on a GPU machine that has no Debian torch (build/gpu/device.sh).</summary>
    private static string Python => Environment.GetEnvironmentVariable("MEDSEG_TEST_PYTHON") is { Length: > 0 } p ? p : "/usr/bin/python3";

    private static string Script => Path.Combine(AppContext.BaseDirectory, "TestData", "safetensors_interop.py");

    private static (int code, string output) RunPython(params string[] args)
    {
        var psi = new ProcessStartInfo(Python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + Python);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(180_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Python} {string.Join(' ', args)} did not finish in 180 s");
        }
        return (p.ExitCode, stdout.Result + stderr.Result);
    }

    private static void RequirePythonTorch()
    {
        if (!File.Exists(Python))
            Assert.Fail($"{Python} is missing: the safetensors interop test needs Debian's python3 with python3-torch and python3-numpy (apt-get install python3-torch python3-numpy)");
        var (code, output) = RunPython("-c", "import torch, numpy; print(torch.__version__)");
        if (code != 0)
            Assert.Fail($"{Python} cannot import torch and numpy (install Debian's python3-torch and python3-numpy): {output}");
        Assert.IsTrue(File.Exists(Script), $"the interop script was not copied to the test output: {Script}");
    }

    /// <summary>The tensors of reference() in TestData/safetensors_interop.py.</summary>
    private static Dictionary<string, Tensor> InteropReference() => new()
    {
        ["f32"] = torch.tensor(new float[] { 1.5f, -2.25f, 3.0f, 0.0f, 1e-3f, -7.5f }, [2, 3]),
        ["f64"] = torch.tensor(new double[] { Math.PI, -1e300, 2.5 }),
        ["bf16"] = torch.tensor(new float[] { 1.0f, -2.5f, 0.15625f, 256.0f }).to(ScalarType.BFloat16),
        ["i64"] = torch.tensor(new long[] { -(1L << 62), 0, (1L << 40) + 1 }),
        ["u8"] = torch.tensor(new byte[] { 0, 7, 255 }),
        ["mask"] = torch.tensor(new bool[] { true, false, true, true }, [2, 2]),
        ["scalar"] = torch.tensor(42.5, ScalarType.Float32),
        ["empty"] = torch.zeros([0, 3], ScalarType.Float32),
    };

    [TestMethod]
    public void PythonWrittenFileLoadsInCSharp()
    {
        using var scope = torch.NewDisposeScope();
        RequirePythonTorch();
        string path = PathOf("from_python.safetensors");
        var (code, output) = RunPython(Script, "write", path);
        Assert.AreEqual(0, code, "the Python writer failed: " + output);
        var (tensors, metadata) = Safetensors.LoadWithMetadata(path);
        AssertSame(InteropReference(), tensors);
        Assert.AreEqual("python", metadata["source"]);
        Assert.AreEqual("pt", metadata["format"]);
        // spot-check values independently of the byte comparison
        Assert.AreEqual(-2.5f, (float)tensors["bf16"].ToArray<BFloat16>()[1]);
        Assert.AreEqual((1L << 40) + 1, tensors["i64"].ToArray<long>()[2]);
        Assert.AreEqual(42.5f, tensors["scalar"].item<float>());
    }

    [TestMethod]
    public void CSharpWrittenFileLoadsInPython()
    {
        using var scope = torch.NewDisposeScope();
        RequirePythonTorch();
        string path = PathOf("from_csharp.safetensors");
        Safetensors.Save(InteropReference(), path, new Dictionary<string, string> { ["writer"] = "csharp" });
        var (code, output) = RunPython(Script, "check", path);
        Assert.AreEqual(0, code, "Python rejected the C# file: " + output);
        StringAssert.Contains(output, "ok: 8 tensors match");

        // and the checker is not a pushover: a changed value is reported
        var changed = InteropReference();
        changed["u8"] = torch.tensor(new byte[] { 0, 7, 254 });
        Safetensors.Save(changed, path, new Dictionary<string, string> { ["writer"] = "csharp" });
        (code, output) = RunPython(Script, "check", path);
        Assert.AreEqual(1, code, output);
        StringAssert.Contains(output, "u8: values");
    }
}
