using System.Text.Json;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Data;

/// <summary>A model save context that keeps what a transformer writes in memory (options as JSON text), for round trips.</summary>
internal sealed class MemorySaveContext : ModelSaveContext
{
    public string? Signature { get; private set; }
    public int Version { get; private set; }
    public int OldestReadableVersion { get; private set; }
    public string? OptionsJson { get; private set; }
    public Dictionary<string, string> Texts { get; } = [];
    public Dictionary<string, Dictionary<string, Tensor>> Tensors { get; } = [];
    public Dictionary<string, ITransformer> Children { get; } = [];

    public override void WriteHeader(string signature, int version, int oldestReadableVersion)
    {
        Signature = signature;
        Version = version;
        OldestReadableVersion = oldestReadableVersion;
    }

    public override void WriteOptions<T>(T options) => OptionsJson = JsonSerializer.Serialize(options);

    public override void WriteTensors(string name, IReadOnlyDictionary<string, Tensor> tensors) =>
        Tensors[name] = tensors.ToDictionary(kv => kv.Key, kv => kv.Value.clone().DetachFromDisposeScope());

    public override void WriteText(string name, string text) => Texts[name] = text;

    public override void WriteChild(string name, ITransformer child) => Children[name] = child;
}

/// <summary>Reads back a <see cref="MemorySaveContext"/>.</summary>
internal sealed class MemoryLoadContext(MemorySaveContext saved, MedSegContext context) : ModelLoadContext
{
    public override MedSegContext Context => context;
    public override string Signature => saved.Signature!;
    public override int Version => saved.Version;
    public override T ReadOptions<T>() => JsonSerializer.Deserialize<T>(saved.OptionsJson!)!;

    public override Dictionary<string, Tensor> ReadTensors(string name, Device? device = null, IReadOnlyDictionary<string, long[]>? expectedShapes = null) =>
        saved.Tensors[name].ToDictionary(kv => kv.Key, kv => kv.Value.clone());

    public override string ReadText(string name) => saved.Texts[name];
    public override ITransformer ReadChild(string name) => saved.Children[name];
}
