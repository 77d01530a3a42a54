using MLNetMedSeg.Torch.Serialization;

namespace MLNetMedSeg.Torch;

/// <summary>Saving and loading a module's <see cref="torch.nn.Module.state_dict"/> as a safetensors file.</summary>
public static class ModuleSafetensorsExtensions
{
    /// <summary>
    /// Writes the module's parameters and persistent buffers (dotted names, as <c>state_dict()</c>) to a safetensors
    /// file, atomically (see <see cref="Safetensors.Save(IReadOnlyDictionary{string, Tensor}, string, IReadOnlyDictionary{string, string}?)"/>).
    /// </summary>
    public static void save_safetensors(this torch.nn.Module module, string path, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        Safetensors.Save(module.state_dict(), path, metadata);
    }

    /// <summary>
    /// Loads a safetensors file into the module's parameters and buffers (copied in place, converted to each one's
    /// dtype and device), as <see cref="torch.nn.Module.load_state_dict"/>: with <paramref name="strict"/>, missing or
    /// unexpected keys throw. Returns the missing and unexpected keys.
    /// </summary>
    public static (IReadOnlyList<string> missing, IReadOnlyList<string> unexpected) load_safetensors(
        this torch.nn.Module module, string path, bool strict = true)
    {
        ArgumentNullException.ThrowIfNull(module);
        using var scope = torch.NewDisposeScope();
        var state = Safetensors.Load(path);
        return module.load_state_dict(state, strict);
    }
}

public static partial class torch
{
    /// <summary>Safetensors files as dictionaries of tensors; see <see cref="Serialization.Safetensors"/>.</summary>
    public static class safetensors
    {
        /// <summary>Writes tensors (and optional string metadata) to a safetensors file, atomically.</summary>
        public static void save(IReadOnlyDictionary<string, Tensor> tensors, string path, IReadOnlyDictionary<string, string>? metadata = null)
            => Safetensors.Save(tensors, path, metadata);

        /// <summary>Loads every tensor of a safetensors file onto <paramref name="device"/> (default CPU).</summary>
        public static Dictionary<string, Tensor> load(string path, Device? device = null) => Safetensors.Load(path, device);

        /// <summary>The "__metadata__" strings of a safetensors file.</summary>
        public static Dictionary<string, string> metadata(string path) => Safetensors.ReadMetadata(path);
    }
}
