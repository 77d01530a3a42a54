using System.Globalization;

namespace MLNetMedSeg.Torch;

/// <summary>Device kinds; the values are libtorch's <c>c10::DeviceType</c> codes.</summary>
public enum DeviceType
{
    CPU = 0,
    CUDA = 1,
}

/// <summary>A compute device: <c>cpu</c> or <c>cuda:N</c>.</summary>
public sealed record Device(DeviceType type, int index = -1)
{
    /// <summary>Parses "cpu", "cuda" or "cuda:N".</summary>
    public static Device Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var s = spec.Trim().ToLowerInvariant();
        if (s == "cpu") return new Device(DeviceType.CPU);
        if (s == "cuda") return new Device(DeviceType.CUDA, 0);
        if (s.StartsWith("cuda:", StringComparison.Ordinal) &&
            int.TryParse(s.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int i))
            return new Device(DeviceType.CUDA, i);
        throw new ArgumentException($"'{spec}' is not a device: use \"cpu\", \"cuda\" or \"cuda:N\"", nameof(spec));
    }

    /// <summary>Throws when this device cannot be used on this machine/build (e.g. CUDA without a GPU).</summary>
    public void EnsureAvailable()
    {
        if (type != DeviceType.CUDA) return;
        if (!torch.cuda.is_available())
            throw new InvalidOperationException(
                $"device '{this}' was requested but CUDA is not available (the shim was built against a CPU libtorch, or no GPU is visible). " +
                "Use \"cpu\", or rebuild with MEDSEG_TORCH_DIR pointing at a CUDA libtorch.");
        int n = torch.cuda.device_count();
        if (index >= n)
            throw new InvalidOperationException($"device '{this}' was requested but only {n} CUDA device(s) are visible");
    }

    internal int NativeIndex => type == DeviceType.CPU ? -1 : Math.Max(index, 0);

    public override string ToString() => type == DeviceType.CPU ? "cpu" : $"cuda:{Math.Max(index, 0)}";
}

public static partial class torch
{
    public static readonly Device CPU = new(DeviceType.CPU);
    public static Device CUDA => new(DeviceType.CUDA, 0);

    /// <summary>A device from its name ("cpu", "cuda", "cuda:1").</summary>
    public static Device device(string spec) => Device.Parse(spec);
    public static Device device(DeviceType type, int index = -1) => new(type, type == DeviceType.CUDA ? Math.Max(index, 0) : -1);
}
