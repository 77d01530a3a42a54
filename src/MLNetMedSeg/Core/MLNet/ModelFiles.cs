using System.Text;
using System.Text.Json;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using MLNetMedSeg.Pipeline;
using TorchSharp;
using MLModelLoadContext = Microsoft.ML.ModelLoadContext;
using MLModelSaveContext = Microsoft.ML.ModelSaveContext;

namespace MLNetMedSeg.Core.MLNet;

/// <summary>
/// The library's stages inside ML.NET model files (<c>ml.Model.Save</c> / <c>ml.Model.Load</c>). Together with
/// <c>LoadableStages.cs</c> this file is the only code that uses ML.NET internals (see
/// <c>build/msbuild/MLNetInternals.targets</c> for how and why); everything else uses ML.NET's public API.
/// <para>A stage's entry in the zip: ML.NET's model header (an 8-character model signature derived from the stage's
/// loader signature, the format version written and the oldest version that reads it, the loader's assembly), then in
/// the main stream the stage's own signature and version; next to it <c>options.json</c> (the stage's options, JSON),
/// one <c>&lt;name&gt;.safetensors</c> per tensor set (weights), text entries, and child stages in sub-folders.</para>
/// </summary>
internal static class ModelFiles
{
    /// <summary>How options are written as JSON (camelCase, enums by name, indented).</summary>
    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    /// <summary>Versions in ML.NET's header are 0x0001nnnn for the stage's format version nnnn.</summary>
    private const uint VersionBase = 0x00010000;

    /// <summary>ML.NET's 8-character model signature for a loader signature ("MEDSEG.SEGMENTER" → "SEGMENTE").</summary>
    internal static string ModelSignature(string loaderSignature)
    {
        var s = loaderSignature.StartsWith("MEDSEG.", StringComparison.Ordinal) ? loaderSignature[7..] : loaderSignature;
        s = new string(s.Where(char.IsAsciiLetterOrDigit).ToArray()).ToUpperInvariant();
        return (s.Length >= 8 ? s[..8] : s.PadRight(8, '_'));
    }

    /// <summary>The longest loader signature ML.NET's model header holds (a fixed field of 24 characters with its terminator).</summary>
    internal const int MaxHeaderSignature = 23;

    /// <summary>
    /// The loader signature written into ML.NET's header for a stage signature: the signature itself when it fits
    /// (<see cref="MaxHeaderSignature"/>), else "MS." + the part after "MEDSEG." ("MEDSEG.ADVERSARIAL_ATTACK" →
    /// "MS.ADVERSARIAL_ATTACK"). <c>LoadableStages.cs</c> registers each stage's loader under this name; the stage's own
    /// signature follows in the entry's stream.
    /// </summary>
    internal static string HeaderSignature(string loaderSignature)
    {
        if (loaderSignature.Length <= MaxHeaderSignature) return loaderSignature;
        string s = loaderSignature.StartsWith("MEDSEG.", StringComparison.Ordinal) ? "MS." + loaderSignature[7..] : loaderSignature;
        if (s.Length > MaxHeaderSignature)
            throw new InvalidOperationException($"the loader signature '{loaderSignature}' is too long for ML.NET's model header ({MaxHeaderSignature} characters at most, after shortening '{s}')");
        return s;
    }

    private static VersionInfo Version(string loaderSignature, int written, int oldestReadable) => new(
        modelSignature: ModelSignature(loaderSignature),
        verWrittenCur: VersionBase + (uint)written,
        verReadableCur: VersionBase + (uint)oldestReadable,
        verWeCanReadBack: VersionBase + 1,
        loaderAssemblyName: typeof(ModelFiles).Assembly.FullName,
        loaderSignature: HeaderSignature(loaderSignature),
        loaderSignatureAlt: null);

    /// <summary>Saves <paramref name="stage"/> into ML.NET's context (its <see cref="Pipeline.ITransformer.Save"/>, adapted).</summary>
    public static void Save(Pipeline.ITransformer stage, MLModelSaveContext ctx)
    {
        ArgumentNullException.ThrowIfNull(stage);
        ArgumentNullException.ThrowIfNull(ctx);
        ctx.CheckAtModel();
        var writer = new SaveContext(ctx);
        stage.Save(writer);
        if (!writer.HeaderWritten) throw new InvalidOperationException($"{stage.GetType().Name}.Save wrote no header");
    }

    /// <summary>
    /// Loads a stage written by <see cref="Save"/>: checks the header against <paramref name="loaderSignature"/>,
    /// then calls the stage's own loader. Every failure names the entry and says what was wrong.
    /// </summary>
    public static T Load<T>(IHostEnvironment env, MLModelLoadContext ctx, string loaderSignature, int currentVersion,
        Func<Pipeline.ModelLoadContext, T> load) where T : Pipeline.ITransformer
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(ctx);
        string where = string.IsNullOrEmpty(ctx.Directory) ? loaderSignature : $"{ctx.Directory} ({loaderSignature})";
        try
        {
            ctx.CheckAtModel(Version(loaderSignature, currentVersion, 1));
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{where}: the model entry's header does not fit this library's {loaderSignature} format (version {currentVersion}): {e.Message}", e);
        }
        string signature = ctx.Reader.ReadString();
        int version = ctx.Reader.ReadInt32();
        if (signature != loaderSignature) throw new InvalidDataException($"{where}: the entry was written by '{signature}', not '{loaderSignature}'");
        if (version > currentVersion) throw new InvalidDataException($"{where}: the entry's format version {version} is newer than this library reads ({currentVersion}); upgrade MLNetMedSeg");
        var reader = new LoadContext(env, ctx, signature, version, where);
        return load(reader);
    }

    /// <summary>The seed an <see cref="MLContext"/> was made with (null when it was made without one).</summary>
    public static int? Seed(IHostEnvironment env) => (env as IHostEnvironmentInternal)?.Seed;

    /// <summary>ML.NET's device choice (<see cref="MLContext.GpuDeviceId"/>, <see cref="MLContext.FallbackToCpu"/>) from any environment.</summary>
    public static (int? GpuDeviceId, bool FallbackToCpu) DeviceChoice(IHostEnvironment env) =>
        env is IHostEnvironmentInternal i ? (i.GpuDeviceId, i.FallbackToCpu) : (null, true);

    /// <summary>The <see cref="SchemaShape"/> of a schema (<c>SchemaShape.Create</c> is internal in ML.NET 6).</summary>
    public static SchemaShape Shape(DataViewSchema schema) => SchemaShape.Create(schema);

    /// <summary>A column of a <see cref="SchemaShape"/> (its constructor is internal in ML.NET 6).</summary>
    public static SchemaShape.Column ShapeColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey = false) =>
        new(name, kind, itemType, isKey, null);

    private sealed class SaveContext(MLModelSaveContext ctx) : Pipeline.ModelSaveContext
    {
        private readonly HashSet<string> _names = new(StringComparer.Ordinal);

        public bool HeaderWritten { get; private set; }

        public override void WriteHeader(string signature, int version, int oldestReadableVersion)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(signature);
            if (HeaderWritten) throw new InvalidOperationException("the header was already written");
            ctx.SetVersionInfo(Version(signature, version, oldestReadableVersion));
            ctx.Writer.Write(signature);
            ctx.Writer.Write(version);
            HeaderWritten = true;
        }

        public override void WriteOptions<T>(T options)
        {
            var bytes = JsonSerializer.SerializeToUtf8Bytes(options, JsonOptions);
            Entry("options.json");
            ctx.SaveBinaryStream("options.json", w => w.Write(bytes));
        }

        public override void WriteTensors(string name, IReadOnlyDictionary<string, Tensor> tensors)
        {
            using var ms = new MemoryStream();
            Safetensors.Save(tensors, ms);
            var bytes = ms.ToArray();
            string entry = name + ".safetensors";
            Entry(entry);
            ctx.SaveBinaryStream(entry, w => w.Write(bytes));
        }

        public override void WriteText(string name, string text)
        {
            Entry(name);
            var bytes = Encoding.UTF8.GetBytes(text);
            ctx.SaveBinaryStream(name, w => w.Write(bytes));
        }

        public override void WriteChild(string name, Pipeline.ITransformer child)
        {
            Entry(name);
            if (child is not ICanSaveModel saveable)
                throw new InvalidOperationException($"child '{name}' ({child.GetType().Name}) cannot be saved into an ML.NET model");
            ctx.SaveModel(saveable, name);
        }

        private void Entry(string name)
        {
            if (!HeaderWritten) throw new InvalidOperationException("write the header first");
            if (!_names.Add(name)) throw new InvalidOperationException($"entry '{name}' was written twice");
        }
    }

    private sealed class LoadContext(IHostEnvironment env, MLModelLoadContext ctx, string signature, int version, string where)
        : Pipeline.ModelLoadContext
    {
        private MedSegContext? _context;

        public override MedSegContext Context => _context ??= MLContextBridge.ContextFor(env, Signature);

        public override string Signature => signature;

        public override int Version => version;

        private byte[] Bytes(string entry)
        {
            byte[]? bytes = null;
            bool found = ctx.TryLoadBinaryStream(entry, r =>
            {
                using var ms = new MemoryStream();
                r.BaseStream.CopyTo(ms);
                bytes = ms.ToArray();
            });
            if (!found || bytes is null) throw new InvalidDataException($"{where}: the model lacks the entry '{entry}' (truncated or not written by this library)");
            return bytes;
        }

        public override T ReadOptions<T>()
        {
            var bytes = Bytes("options.json");
            try
            {
                return JsonSerializer.Deserialize<T>(bytes, JsonOptions) ?? throw new InvalidDataException("null options");
            }
            catch (JsonException e)
            {
                throw new InvalidDataException($"{where}: options.json is not valid for {typeof(T).Name}: {e.Message}", e);
            }
        }

        public override Dictionary<string, Tensor> ReadTensors(string name, Device? device = null, IReadOnlyDictionary<string, long[]>? expectedShapes = null)
        {
            string entry = name + ".safetensors";
            var bytes = Bytes(entry);
            Dictionary<string, Tensor> tensors;
            try
            {
                using var ms = new MemoryStream(bytes, writable: false);
                tensors = Safetensors.Load(ms, device ?? Context.Device);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or ArgumentException)
            {
                throw new InvalidDataException($"{where}: '{entry}' is not a readable safetensors file: {e.Message}", e);
            }
            if (expectedShapes is not null)
            {
                try
                {
                    foreach (var (key, shape) in expectedShapes)
                    {
                        if (!tensors.TryGetValue(key, out var t)) throw new InvalidDataException($"{where}: '{entry}' lacks the tensor '{key}'");
                        if (!t.shape.SequenceEqual(shape))
                            throw new InvalidDataException($"{where}: '{entry}': tensor '{key}' has shape [{string.Join(",", t.shape)}], [{string.Join(",", shape)}] expected");
                    }
                }
                catch
                {
                    foreach (var t in tensors.Values) t.Dispose();
                    throw;
                }
            }
            return tensors;
        }

        public override string ReadText(string name) => Encoding.UTF8.GetString(Bytes(name));

        public override Pipeline.ITransformer ReadChild(string name)
        {
            if (!ctx.ContainsModel(name)) throw new InvalidDataException($"{where}: the model lacks the child entry '{name}'");
            ctx.LoadModel<object, SignatureLoadModel>(env, out var child, name);
            return child as Pipeline.ITransformer
                ?? throw new InvalidDataException($"{where}: child '{name}' is a {child?.GetType().Name}, not a stage of this library");
        }
    }
}
