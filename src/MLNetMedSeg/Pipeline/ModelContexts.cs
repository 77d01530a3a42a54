using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Pipeline;

/// <summary>
/// What a transformer writes when saved: its entry header (signature, version written, oldest version that can read
/// it, loader name), options as JSON, weights as safetensors, and child transformers. One context per model entry.
/// </summary>
internal abstract class ModelSaveContext
{
    /// <summary>
    /// Declares this entry: <paramref name="signature"/> names the registered loader (e.g. "MEDSEG.RESIZE");
    /// <paramref name="version"/> is the format version written; <paramref name="oldestReadableVersion"/> the oldest
    /// loader version that can still read it.
    /// </summary>
    public abstract void WriteHeader(string signature, int version, int oldestReadableVersion);

    /// <summary>Writes an options object as JSON (System.Text.Json, public properties).</summary>
    public abstract void WriteOptions<T>(T options);

    /// <summary>Writes named tensors as a safetensors entry called <paramref name="name"/>.</summary>
    public abstract void WriteTensors(string name, IReadOnlyDictionary<string, Tensor> tensors);

    /// <summary>Writes a UTF-8 text entry.</summary>
    public abstract void WriteText(string name, string text);

    /// <summary>Saves a nested transformer (chains, stages that embed a network stage) under <paramref name="name"/>.</summary>
    public abstract void WriteChild(string name, ITransformer child);

    /// <summary>The whole entry of a stage defined by its options alone: header (readable from version 1) and options.</summary>
    public void WriteOptionsEntry<T>(string signature, int version, T options)
    {
        WriteHeader(signature, version, 1);
        WriteOptions(options);
    }
}

/// <summary>What a loader reads back: the mirror of <see cref="ModelSaveContext"/>, with validation.</summary>
internal abstract class ModelLoadContext
{
    /// <summary>The context of the application loading the model (device, logging).</summary>
    public abstract MedSegContext Context { get; }

    /// <summary>The signature written in the entry's header.</summary>
    public abstract string Signature { get; }

    /// <summary>The format version the entry was written with.</summary>
    public abstract int Version { get; }

    public abstract T ReadOptions<T>();

    /// <summary>
    /// Reads the options after checking that the entry was not written by a newer format than
    /// <paramref name="currentVersion"/> (the version the calling loader reads).
    /// </summary>
    public T ReadOptions<T>(int currentVersion)
    {
        if (Version > currentVersion)
            throw new InvalidDataException($"{Signature}: model entry version {Version} is newer than this library reads ({currentVersion})");
        return ReadOptions<T>();
    }

    /// <summary>
    /// Reads a safetensors entry onto <paramref name="device"/> (default: the context's). When
    /// <paramref name="expectedShapes"/> is given, every listed tensor must be present with exactly that shape.
    /// </summary>
    public abstract Dictionary<string, Tensor> ReadTensors(string name, Device? device = null, IReadOnlyDictionary<string, long[]>? expectedShapes = null);

    public abstract string ReadText(string name);

    public abstract ITransformer ReadChild(string name);

    /// <summary>The entry's training history (<c>history.json</c>, an array of <typeparamref name="T"/>; empty when it holds null).</summary>
    public T[] ReadHistory<T>() => System.Text.Json.JsonSerializer.Deserialize<T[]>(ReadText("history.json")) ?? [];

    /// <summary>
    /// A network built by <paramref name="create"/> (its initial weights from a throwaway generator: the saved ones
    /// replace them), its weights read from the tensor file <paramref name="name"/> (<see cref="ReadModuleWeights"/>),
    /// handed to <paramref name="make"/>, which takes ownership; when reading or <paramref name="make"/> throws, the
    /// network is disposed.
    /// </summary>
    public TResult LoadNetwork<TNet, TResult>(string name, Func<Generator, TNet> create, Func<TNet, TResult> make) where TNet : torch.nn.Module
    {
        TNet net;
        using (var gen = new Generator(0)) net = create(gen);
        try
        {
            ReadModuleWeights(name, net);
            return make(net);
        }
        catch
        {
            net.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads the tensor file <paramref name="name"/> into <paramref name="module"/>'s parameters and buffers: every
    /// entry of its state dict must be there with its shape, and an entry the module does not have is an error (both
    /// name the entry). The read tensors are freed.
    /// </summary>
    public void ReadModuleWeights(string name, torch.nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var own = module.StateDictInOrder();
        var weights = ReadTensors(name, torch.CPU, own.ToDictionary(e => e.Key, e => e.Value.shape));
        try
        {
            var extra = weights.Keys.Where(k => !own.ContainsKey(k)).ToList();
            if (extra.Count > 0) throw new InvalidDataException($"{Signature}: '{name}' holds weights the network does not have: {string.Join(", ", extra)}");
            module.load_state_dict(weights);
        }
        finally
        {
            foreach (var t in weights.Values) t.Dispose();
        }
    }
}
