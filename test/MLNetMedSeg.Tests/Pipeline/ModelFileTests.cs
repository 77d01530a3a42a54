using MLNetMedSeg.Core;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Testing;

namespace MLNetMedSeg.Tests.Pipeline;

[TestClass]
public class ModelFileTests
{
    private string _dir = "";
    private MedSegContext _ctx = null!;

    [TestInitialize]
    public void Init()
    {
        TestStages.EnsureRegistered();
        _dir = Path.Combine(Path.GetTempPath(), "medseg-modelfile-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        _ctx = new MedSegContext(seed: 1);
    }

    [TestCleanup]
    public void Cleanup()
    {
        if (Directory.Exists(_dir)) Directory.Delete(_dir, recursive: true);
    }

    private string PathOf(string name) => Path.Combine(_dir, name);

    private static TransformerChain<MeanCenterTransformer> FitChain(IDataView data, Flaw flaw = Flaw.None) =>
        new AddConstantEstimator("Image", 0.25f).Append(new MeanCenterEstimator(flaw: flaw)).Fit(data);

    /// <summary>Saves a fitted chain and returns its path.</summary>
    private string SaveGood(string name = "model.zip")
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        using var model = FitChain(data);
        string path = PathOf(name);
        _ctx.Model.Save(model, data.Schema, path);
        return path;
    }

    private static void AssertIdenticalViews(IDataView expected, IDataView actual)
    {
        Assert.AreEqual(expected.Schema.ToString(), actual.Schema.ToString());
        using var ce = expected.GetRowCursor(expected.Schema);
        using var ca = actual.GetRowCursor(actual.Schema);
        int rows = 0;
        while (ce.MoveNext())
        {
            Assert.IsTrue(ca.MoveNext());
            foreach (var col in expected.Schema)
                Assert.IsTrue(EstimatorWorkout.BitIdentical(ce.GetValue(col), ca.GetValue(col), out var why), $"row {rows} column {col.Name}: {why}");
            rows++;
        }
        Assert.IsFalse(ca.MoveNext());
        Assert.AreEqual(5, rows);
    }

    [TestMethod]
    public void SaveLoad_PredictsBitIdentically_AndKeepsScopesAndSchema()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        using var model = FitChain(data);
        string path = PathOf("model.zip");
        _ctx.Model.Save(model, data.Schema, path);

        using var loaded = (TransformerChain<ITransformer>)_ctx.Model.Load(path, out var schema);
        Assert.AreEqual(data.Schema.ToString(), schema.ToString());
        Assert.AreEqual(2, loaded.Count);
        Assert.AreEqual(TransformerScope.Training, loaded[0].Scope);
        Assert.AreEqual(TransformerScope.Everything, loaded[1].Scope);
        Assert.AreEqual(0.25f, ((AddConstantTransformer)loaded[0].Transformer).Value);
        Assert.AreEqual(model.LastTransformer.MeanValue, ((MeanCenterTransformer)loaded.LastTransformer).MeanValue);
        AssertIdenticalViews(model.Transform(data), loaded.Transform(data));
        AssertIdenticalViews(model.GetModelFor(TransformerScope.Training).Transform(data), loaded.GetModelFor(TransformerScope.Training).Transform(data));

        // A training-scope model keeps its scope through the file (it shares transformers with model: not disposed).
        var trainingModel = model.GetModelFor(TransformerScope.Training);
        using var ms = new MemoryStream();
        _ctx.Model.Save(trainingModel, data.Schema, ms);
        ms.Position = 0;
        using var loadedTraining = (TransformerChain<ITransformer>)_ctx.Model.Load(ms, out _);
        Assert.AreEqual(TransformerScope.Training, loadedTraining.AppliesIn);
        AssertIdenticalViews(trainingModel.Transform(data), loadedTraining.Transform(data));
        Assert.AreEqual(TestStages.Column(model.Transform(data), "Image")[0][0] + 0.25f,
            TestStages.Column(loadedTraining.Transform(data), "Image")[0][0], "the training model applies the augmenter");
    }

    [TestMethod]
    public void EmptyChain_AndSchemaAnnotations_RoundTrip()
    {
        var schema = new DataViewSchema.Builder()
            .AddColumn("Image", TensorColumnType.Image(3, 32, 32), new Dictionary<string, string> { ["role"] = "image" })
            .AddColumn("Mask", TensorColumnType.ClassMask())
            .AddColumn("Fold", NumberColumnType.Instance)
            .ToSchema();
        string path = PathOf("empty.zip");
        _ctx.Model.Save(new TransformerChain<ITransformer>(), schema, path);
        using var loaded = (TransformerChain<ITransformer>)_ctx.Model.Load(path, out var back);
        Assert.AreEqual(0, loaded.Count);
        Assert.AreEqual(schema.ToString(), back.ToString());
        Assert.AreEqual("Image: Tensor<Float32>[3,32,32], Mask: Tensor<Int64>[?,?], Fold: Number", back.ToString());
        Assert.AreEqual("image", back["Image"].Annotations["role"]);
        Assert.AreEqual(0, back["Mask"].Annotations.Count);
        Assert.AreEqual(ModelManifest.CurrentLibraryVersion, _ctx.Model.ReadManifest(path).LibraryVersion);
        Assert.AreEqual(typeof(ModelManifest).Assembly.GetName().Version!.ToString(), ModelManifest.CurrentLibraryVersion);
    }

    [TestMethod]
    public void NestedChain_RoundTrip_WritesNestedFolders()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        var inner = new AddConstantEstimator("Image", 0.5f).Append(new MeanCenterEstimator()).Fit(data);
        var outer = new TransformerChain<MeanCenterTransformer>(
            [(inner, TransformerScope.Everything), (new MeanCenterEstimator("Image", "Centered2").Fit(data), TransformerScope.None)]);
        using (outer)
        {
            string path = PathOf("nested.zip");
            _ctx.Model.Save(outer, data.Schema, path);
            using (var zip = ZipFile.OpenRead(path))
            {
                Assert.IsNotNull(zip.GetEntry("Model/stage_000/stage_001/mean.safetensors"));
                Assert.IsNotNull(zip.GetEntry("Model/stage_001/mean.safetensors"));
            }
            using var loaded = (TransformerChain<ITransformer>)_ctx.Model.Load(path, out _);
            var loadedInner = (TransformerChain<ITransformer>)loaded[0].Transformer;
            Assert.AreEqual(TransformerScope.Training, loadedInner[0].Scope);
            AssertIdenticalViews(outer.Transform(data), loaded.Transform(data));
        }
    }

    [TestMethod]
    public void ChainOptionsWithAnInvalidScope_AreCorrupt()
    {
        string path = SaveGood();
        RewriteEntry(path, "Model/options.json", t => t.Replace("\"scope\": \"Training\"", "\"scope\": 64"), fixHash: true);
        var ex = AssertLoadFails(path, ModelFileError.Corrupt, "Model");
        StringAssert.Contains(ex.Message, "invalid scope 64");
    }

    [TestMethod]
    public void StreamOverloads_RoundTrip()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        using var model = FitChain(data);
        using var ms = new MemoryStream();
        _ctx.Model.Save(model, data.Schema, ms);
        ms.Position = 0;
        using var loaded = (TransformerChain<ITransformer>)_ctx.Model.Load(ms, out var schema);
        Assert.AreEqual(data.Schema.ToString(), schema.ToString());
        AssertIdenticalViews(model.Transform(data), loaded.Transform(data));
    }

    [TestMethod]
    public void Layout_ManifestHeadersHashes_AndNoAbsolutePath()
    {
        string path = SaveGood();
        using var zip = ZipFile.OpenRead(path);
        var names = zip.Entries.Select(e => e.FullName).OrderBy(n => n, StringComparer.Ordinal).ToArray();
        CollectionAssert.AreEqual(new[]
        {
            "Model/header.json", "Model/options.json",
            "Model/stage_000/header.json", "Model/stage_000/note.txt", "Model/stage_000/options.json",
            "Model/stage_001/header.json", "Model/stage_001/mean.safetensors", "Model/stage_001/options.json",
            "manifest.json",
        }, names);

        var manifest = JsonNode.Parse(Read(zip, "manifest.json"))!;
        Assert.AreEqual("MLNetMedSeg.Model", (string)manifest["magic"]!);
        Assert.AreEqual(1, (int)manifest["formatVersion"]!);
        Assert.AreEqual(torch.__version__, (string)manifest["torchVersion"]!);
        Assert.IsFalse(string.IsNullOrEmpty((string)manifest["libraryVersion"]!));
        Assert.IsTrue(Math.Abs(((DateTime)manifest["createdUtc"]! - DateTime.UtcNow).TotalMinutes) < 5);
        Assert.AreEqual("Model", (string)manifest["root"]!);
        var cols = manifest["inputSchema"]!.AsArray();
        Assert.AreEqual("Image", (string)cols[1]!["name"]!);
        Assert.AreEqual("Tensor<Float32>[3,?,?]", (string)cols[1]!["type"]!);
        var entries = manifest["entries"]!.AsObject();
        Assert.AreEqual(names.Length - 1, entries.Count);
        foreach (var (name, hash) in entries)
        {
            using var s = zip.GetEntry(name)!.Open();
            Assert.AreEqual(Convert.ToHexStringLower(SHA256.HashData(s)), (string)hash!, name);
        }

        var header = JsonNode.Parse(Read(zip, "Model/stage_001/header.json"))!;
        Assert.AreEqual("TEST.MEANCENTER", (string)header["signature"]!);
        Assert.AreEqual(1, (int)header["versionWritten"]!);
        Assert.AreEqual(1, (int)header["oldestReadableVersion"]!);
        StringAssert.Contains((string)header["loaderName"]!, "MeanCenterTransformer");
        Assert.AreEqual("MEDSEG.CHAIN", (string)JsonNode.Parse(Read(zip, "Model/header.json"))!["signature"]!);
        Assert.AreEqual("adds a constant", Read(zip, "Model/stage_000/note.txt"));

        foreach (var e in zip.Entries.Where(e => !e.FullName.EndsWith(".safetensors", StringComparison.Ordinal)))
        {
            string text = Read(zip, e.FullName);
            Assert.IsFalse(text.Contains(_dir, StringComparison.Ordinal) || text.Contains(Path.GetTempPath(), StringComparison.Ordinal),
                $"entry {e.FullName} stores a path of the saving machine: {text}");
        }
    }

    private static string Read(ZipArchive zip, string name)
    {
        using var r = new StreamReader(zip.GetEntry(name)!.Open(), Encoding.UTF8);
        return r.ReadToEnd();
    }

    // ------------------------------------------------------------------ corruption

    private InvalidDataException AssertLoadFails(string path, ModelFileError error, string? entry)
    {
        var ex = Assert.ThrowsException<InvalidDataException>(() =>
        {
            var m = _ctx.Model.Load(path, out _);
            (m as IDisposable)?.Dispose();
        });
        Assert.AreEqual(error, ex.GetModelFileError(), ex.Message);
        StringAssert.Contains(ex.Message, Path.GetFullPath(path));
        Assert.AreEqual(Path.GetFullPath(path), ex.GetModelFileName());
        if (entry is not null)
        {
            StringAssert.Contains(ex.Message, $"entry '{entry}'");
            Assert.AreEqual(entry, ex.GetModelEntryName());
        }
        return ex;
    }

    /// <summary>Replaces one entry's bytes; with <paramref name="fixHash"/> also updates the manifest's hash (a "valid" edit).</summary>
    private static void RewriteEntry(string path, string entry, Func<string, string> edit, bool fixHash)
    {
        using var zip = ZipFile.Open(path, ZipArchiveMode.Update);
        string text = Read(zip, entry);
        var bytes = Encoding.UTF8.GetBytes(edit(text));
        zip.GetEntry(entry)!.Delete();
        using (var s = zip.CreateEntry(entry).Open()) s.Write(bytes);
        if (fixHash)
        {
            var manifest = JsonNode.Parse(Read(zip, "manifest.json"))!;
            manifest["entries"]![entry] = Convert.ToHexStringLower(SHA256.HashData(bytes));
            zip.GetEntry("manifest.json")!.Delete();
            using var s = zip.CreateEntry("manifest.json").Open();
            s.Write(Encoding.UTF8.GetBytes(manifest.ToJsonString()));
        }
    }

    [TestMethod]
    public void RandomBytes_EmptyFile_Truncated_AreNotAZip()
    {
        string random = PathOf("random.zip");
        File.WriteAllBytes(random, Enumerable.Range(0, 4096).Select(i => (byte)(i * 7919 % 251)).ToArray());
        AssertLoadFails(random, ModelFileError.NotAZip, null);

        string empty = PathOf("empty.zip");
        File.WriteAllBytes(empty, []);
        AssertLoadFails(empty, ModelFileError.NotAZip, null);

        string good = SaveGood();
        var bytes = File.ReadAllBytes(good);
        string truncated = PathOf("truncated.zip");
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var ex = AssertLoadFails(truncated, ModelFileError.NotAZip, null);
        StringAssert.Contains(ex.Message, "truncated");
    }

    [TestMethod]
    public void DamagedEntryBytes_AreDetected()
    {
        string path = SaveGood();
        var bytes = File.ReadAllBytes(path);
        // The weights are stored uncompressed: find the mean's 4 bytes after the safetensors header and flip one bit.
        using (var zip = ZipFile.OpenRead(path))
        {
            Assert.AreEqual(zip.GetEntry("Model/stage_001/mean.safetensors")!.Length, zip.GetEntry("Model/stage_001/mean.safetensors")!.CompressedLength);
        }
        int at = IndexOf(bytes, "\"data_offsets\":[0,4]}}"u8.ToArray());
        Assert.IsTrue(at > 0);
        int dataStart = at + "\"data_offsets\":[0,4]}}"u8.Length;
        while (bytes[dataStart] == (byte)' ') dataStart++;
        bytes[dataStart] ^= 0x01;
        File.WriteAllBytes(path, bytes);
        var ex = Assert.ThrowsException<InvalidDataException>(() => _ctx.Model.Load(path, out _));
        StringAssert.Contains(ex.Message, Path.GetFullPath(path));
        StringAssert.Contains(ex.Message, "Model/stage_001/mean.safetensors");
        Assert.IsTrue(ex.GetModelFileError() is ModelFileError.Tampered or ModelFileError.Corrupt, ex.Message);
    }

    private static int IndexOf(byte[] haystack, byte[] needle)
    {
        for (int i = 0; i + needle.Length <= haystack.Length; i++)
            if (haystack.AsSpan(i, needle.Length).SequenceEqual(needle)) return i;
        return -1;
    }

    [TestMethod]
    public void ForeignZip_NoManifest_OrWrongMagic()
    {
        string foreign = PathOf("foreign.zip");
        using (var zip = ZipFile.Open(foreign, ZipArchiveMode.Create))
        using (var s = zip.CreateEntry("readme.txt").Open())
            s.Write("hello"u8);
        var ex = AssertLoadFails(foreign, ModelFileError.Foreign, null);
        StringAssert.Contains(ex.Message, "manifest.json");

        string path = SaveGood();
        RewriteEntry(path, "manifest.json", t => t.Replace("MLNetMedSeg.Model", "SomethingElse.Model"), fixHash: false);
        ex = AssertLoadFails(path, ModelFileError.Foreign, "manifest.json");
        StringAssert.Contains(ex.Message, "SomethingElse.Model");

        string notJson = SaveGood("m2.zip");
        RewriteEntry(notJson, "manifest.json", _ => "<xml/>", fixHash: false);
        AssertLoadFails(notJson, ModelFileError.Foreign, "manifest.json");
    }

    [TestMethod]
    public void TamperedEntry_HashMismatch_NamesTheEntry()
    {
        string path = SaveGood();
        RewriteEntry(path, "Model/stage_000/options.json", t => t.Replace("0.25", "0.5"), fixHash: false);
        var ex = AssertLoadFails(path, ModelFileError.Tampered, "Model/stage_000/options.json");
        StringAssert.Contains(ex.Message, "SHA-256");
    }

    [TestMethod]
    public void AddedOrRemovedEntries_AreTampering()
    {
        string added = SaveGood("a.zip");
        using (var zip = ZipFile.Open(added, ZipArchiveMode.Update))
        using (var s = zip.CreateEntry("Model/extra.txt").Open())
            s.Write("x"u8);
        AssertLoadFails(added, ModelFileError.Tampered, "Model/extra.txt");

        string removed = SaveGood("r.zip");
        using (var zip = ZipFile.Open(removed, ZipArchiveMode.Update))
            zip.GetEntry("Model/stage_000/note.txt")!.Delete();
        AssertLoadFails(removed, ModelFileError.Tampered, "Model/stage_000/note.txt");
    }

    [TestMethod]
    public void EntryWrittenByNewerVersion_IsRefused()
    {
        string path = SaveGood();
        RewriteEntry(path, "Model/stage_001/header.json",
            t => t.Replace("\"versionWritten\": 1", "\"versionWritten\": 7").Replace("\"oldestReadableVersion\": 1", "\"oldestReadableVersion\": 5"), fixHash: true);
        var ex = AssertLoadFails(path, ModelFileError.NewerVersion, "Model/stage_001");
        StringAssert.Contains(ex.Message, "TEST.MEANCENTER");
        StringAssert.Contains(ex.Message, "version 7");
        StringAssert.Contains(ex.Message, "up to version 1");

        // The same through a transformer that writes header (3, readable from 2).
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        using var model = FitChain(data, Flaw.NewerFormat);
        string newer = PathOf("newer.zip");
        _ctx.Model.Save(model, data.Schema, newer);
        AssertLoadFails(newer, ModelFileError.NewerVersion, "Model/stage_001");
    }

    [TestMethod]
    public void OlderReadableEntry_FromNewerWriter_Loads()
    {
        // versionWritten 2 but readable from 1: a version-1 loader may read it and sees Version == 2.
        string path = SaveGood();
        RewriteEntry(path, "Model/stage_001/header.json", t => t.Replace("\"versionWritten\": 1", "\"versionWritten\": 2"), fixHash: true);
        using var scope = torch.NewDisposeScope();
        using var loaded = (TransformerChain<ITransformer>)_ctx.Model.Load(path, out _);
        Assert.IsInstanceOfType<MeanCenterTransformer>(loaded.LastTransformer);
    }

    [TestMethod]
    public void NewerFileFormat_IsRefused()
    {
        string path = SaveGood();
        RewriteEntry(path, "manifest.json", t => t.Replace("\"formatVersion\": 1", "\"formatVersion\": 9"), fixHash: false);
        var ex = AssertLoadFails(path, ModelFileError.NewerVersion, "manifest.json");
        StringAssert.Contains(ex.Message, "format version 9");
    }

    [TestMethod]
    public void UnknownSignature_ListsRegisteredLoaders()
    {
        string path = SaveGood();
        RewriteEntry(path, "Model/stage_001/header.json", t => t.Replace("TEST.MEANCENTER", "ACME.SECRET"), fixHash: true);
        var ex = AssertLoadFails(path, ModelFileError.UnknownSignature, "Model/stage_001");
        StringAssert.Contains(ex.Message, "ACME.SECRET");
        StringAssert.Contains(ex.Message, "MEDSEG.CHAIN");
        StringAssert.Contains(ex.Message, "TEST.MEANCENTER");
        StringAssert.Contains(ex.Message, "TEST.ADDCONSTANT");
    }

    [TestMethod]
    public void UnexpectedTensorShape_IsRefused_WithoutLeaking()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        using var model = FitChain(data, Flaw.WrongShapeOnSave);
        string path = PathOf("shape.zip");
        _ctx.Model.Save(model, data.Schema, path);
        long baseline = TorchRuntime.LiveTensorCount;
        var ex = AssertLoadFails(path, ModelFileError.TensorShape, "Model/stage_001/mean.safetensors");
        StringAssert.Contains(ex.Message, "tensor 'mean' has shape [1]");
        Assert.AreEqual(baseline, TorchRuntime.LiveTensorCount);
    }

    [TestMethod]
    public void InvalidOptionsJson_IsCorrupt_NamingTheEntry()
    {
        string path = SaveGood();
        RewriteEntry(path, "Model/stage_000/options.json", _ => "{ not json", fixHash: true);
        AssertLoadFails(path, ModelFileError.Corrupt, "Model/stage_000/options.json");
    }

    // ------------------------------------------------------------------ atomic save

    [TestMethod]
    public void FailingSave_LeavesThePreviousFileUntouched_AndNoTempFile()
    {
        string path = SaveGood();
        var before = File.ReadAllBytes(path);
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        using (var broken = FitChain(data, Flaw.ThrowsWhileSaving))
        {
            var ex = Assert.ThrowsException<InvalidOperationException>(() => _ctx.Model.Save(broken, data.Schema, path));
            StringAssert.Contains(ex.Message, "simulated failure");
            CollectionAssert.AreEqual(before, File.ReadAllBytes(path));
            CollectionAssert.AreEqual(new[] { "model.zip" }, Directory.GetFiles(_dir).Select(Path.GetFileName).ToArray());

            string fresh = PathOf("fresh.zip");
            Assert.ThrowsException<InvalidOperationException>(() => _ctx.Model.Save(broken, data.Schema, fresh));
            Assert.IsFalse(File.Exists(fresh));
            Assert.AreEqual(1, Directory.GetFiles(_dir).Length);
        }

        // A schema the model cannot transform is refused before any file is made.
        using var good = FitChain(data);
        var other = DataViewSchema.Create(("Id", TextColumnType.Instance));
        Assert.AreEqual("Image", Assert.ThrowsException<SchemaException>(() => _ctx.Model.Save(good, other, PathOf("x.zip"))).ColumnName);
        Assert.AreEqual(1, Directory.GetFiles(_dir).Length);

        // Overwriting with a good model replaces the file.
        _ctx.Model.Save(good, data.Schema, path);
        using var reloaded = (TransformerChain<ITransformer>)_ctx.Model.Load(path, out _);
        Assert.AreEqual(good.LastTransformer.MeanValue, ((MeanCenterTransformer)reloaded.LastTransformer).MeanValue);
    }

    [TestMethod]
    public void SaveContext_RequiresTheHeaderFirst_AndValidNames()
    {
        using var data = TestStages.ConstantImages(1);
        Assert.ThrowsException<InvalidOperationException>(() => _ctx.Model.Save(new RawSaver(c => c.WriteText("a", "b")), data.Schema, PathOf("h.zip")));
        Assert.ThrowsException<InvalidOperationException>(() => _ctx.Model.Save(new RawSaver(_ => { }), data.Schema, PathOf("h.zip")));
        Assert.ThrowsException<ArgumentException>(() => _ctx.Model.Save(new RawSaver(c => { c.WriteHeader("X", 1, 1); c.WriteText("../evil", "b"); }), data.Schema, PathOf("h.zip")));
        Assert.ThrowsException<ArgumentException>(() => _ctx.Model.Save(new RawSaver(c => { c.WriteHeader("X", 1, 1); c.WriteChild("a.b", new RawSaver(_ => { })); }), data.Schema, PathOf("h.zip")));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => _ctx.Model.Save(new RawSaver(c => c.WriteHeader("X", 1, 2)), data.Schema, PathOf("h.zip")));
        Assert.ThrowsException<InvalidOperationException>(() => _ctx.Model.Save(new RawSaver(c => { c.WriteHeader("X", 1, 1); c.WriteText("a", "1"); c.WriteText("a", "2"); }), data.Schema, PathOf("h.zip")));
        Assert.AreEqual(0, Directory.GetFiles(_dir).Length);
    }

    private sealed class RawSaver(Action<ModelSaveContext> save) : ITransformer
    {
        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inputSchema;
        public IDataView Transform(IDataView input) => input;
        public void Save(ModelSaveContext context) => save(context);
    }

    // ------------------------------------------------------------------ registry and schema text

    [TestMethod]
    public void Registry_IsExplicit_IdempotentForTheSameLoader_RefusesAnother()
    {
        CollectionAssert.Contains(ModelLoaderRegistry.Signatures.ToList(), TransformerChain.LoaderSignature);
        CollectionAssert.Contains(BuiltInModelLoaders.All.Select(l => l.Signature).ToList(), TransformerChain.LoaderSignature);
        TestStages.EnsureRegistered(); // again: no-op
        Assert.ThrowsException<InvalidOperationException>(() =>
            ModelLoaderRegistry.Register(MeanCenterTransformer.LoaderSignature, 1, _ => throw new InvalidOperationException()));
        Assert.ThrowsException<InvalidOperationException>(() =>
            ModelLoaderRegistry.Register(MeanCenterTransformer.LoaderSignature, 2, MeanCenterTransformer.Load));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => ModelLoaderRegistry.Register("TEST.V0", 0, MeanCenterTransformer.Load));
        Assert.IsFalse(ModelLoaderRegistry.IsRegistered("TEST.V0"));
        Assert.AreEqual(1, ModelLoaderRegistry.Find(MeanCenterTransformer.LoaderSignature)!.CurrentVersion);
    }

    [TestMethod]
    public void ColumnTypeDescriptions_RoundTrip()
    {
        ColumnType[] types =
        [
            TensorColumnType.Image(3), TensorColumnType.BinaryMask(64, 64), TensorColumnType.ClassMask(),
            new TensorColumnType(ScalarType.Float64, []), new TensorColumnType(ScalarType.Byte, [2, -1]),
            TextColumnType.Instance, NumberColumnType.Instance,
        ];
        foreach (var t in types)
            Assert.AreEqual(t, ModelManifest.ParseColumnType(t.Describe()), t.Describe());
        foreach (var bad in new[] { "Tensor<Float33>[1]", "Tensor<Float32>[a]", "Tensor<3>[1]", "Vector", "Tensor<Float32>[1,]" })
            Assert.ThrowsException<FormatException>(() => ModelManifest.ParseColumnType(bad), bad);
    }
}
