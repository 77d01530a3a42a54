using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;

namespace MLNetMedSeg.Core.Training;

/// <summary>
/// A resume checkpoint of <see cref="TrainingLoop"/> in its checkpoint folder: <c>checkpoint.json</c> (stage, epoch,
/// fingerprint of the options/seed/device, history, handler values, and the name of the tensor file) and
/// <c>checkpoint-eNNNN.safetensors</c> (each handler's tensors under "<c>handler/…</c>": weights, optimizer state,
/// generator states, best weights, EMA). Both files are written to a temporary name and renamed; the JSON is written
/// after its tensor file and names it, so a process killed at any moment leaves the previous complete checkpoint
/// readable. Older tensor files are deleted afterwards.
/// </summary>
internal sealed class TrainingCheckpoint
{
    public const string JsonName = "checkpoint.json";
    public const int FormatVersion = 2;

    public int Version { get; set; } = FormatVersion;
    public string Stage { get; set; } = "";
    public string Fingerprint { get; set; } = "";
    public int Epoch { get; set; }
    public long GlobalStep { get; set; }
    public string TensorFile { get; set; } = "";
    public List<EpochSummary> History { get; set; } = [];
    public JsonObject Values { get; set; } = [];

    /// <summary>Reads the checkpoint of <paramref name="folder"/>, or null when it has none.</summary>
    public static TrainingCheckpoint? TryRead(string folder, string stage)
    {
        string path = Path.Combine(folder, JsonName);
        if (!File.Exists(path)) return null;
        TrainingCheckpoint? c;
        try { c = JsonSerializer.Deserialize<TrainingCheckpoint>(File.ReadAllText(path)); }
        catch (JsonException ex) { throw new InvalidDataException($"{stage}: the checkpoint '{path}' is not valid JSON: {ex.Message}", ex); }
        if (c is null || c.Version != FormatVersion || c.Epoch < 1 || string.IsNullOrEmpty(c.TensorFile))
            throw new InvalidDataException($"{stage}: the checkpoint '{path}' is incomplete or of an unknown version (this library writes version {FormatVersion})");
        if (c.Stage != stage)
            throw new InvalidDataException($"{stage}: the checkpoint '{path}' was written by {c.Stage}; use a checkpoint folder per stage");
        if (!File.Exists(Path.Combine(folder, c.TensorFile)))
            throw new InvalidDataException($"{stage}: the checkpoint '{path}' names '{c.TensorFile}', which is missing");
        return c;
    }

    /// <summary>Loads the tensors this checkpoint names (on the CPU; the caller disposes them).</summary>
    public Dictionary<string, torch.Tensor> LoadTensors(string folder) => Safetensors.Load(Path.Combine(folder, TensorFile));

    /// <summary>Writes <paramref name="tensors"/> and then this JSON atomically into <paramref name="folder"/>, then deletes older tensor files.</summary>
    public void Write(string folder, IReadOnlyDictionary<string, torch.Tensor> tensors)
    {
        Directory.CreateDirectory(folder);
        TensorFile = $"checkpoint-e{Epoch:D4}.safetensors";
        Safetensors.Save(tensors, Path.Combine(folder, TensorFile));
        string json = Path.Combine(folder, JsonName);
        string tmp = Path.Combine(folder, $".{JsonName}.{Guid.NewGuid():N}.tmp");
        using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(fs, this, new JsonSerializerOptions { WriteIndented = true });
            fs.Flush(flushToDisk: true);
        }
        File.Move(tmp, json, overwrite: true);
        foreach (var f in Directory.EnumerateFiles(folder, "checkpoint-e*.safetensors"))
            if (Path.GetFileName(f) != TensorFile)
                try { File.Delete(f); } catch (IOException) { }
    }
}
