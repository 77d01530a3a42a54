using System.Globalization;
using TorchSharp;

namespace MLNetMedSeg.Core;

/// <summary>
/// Device names and checks, in one place. The library is device-generic: which devices exist is the application's
/// choice of libtorch backend package (libtorch-cpu-linux-x64 for the CPU; TorchSharp-cuda-linux or
/// TorchSharp-cuda-windows for NVIDIA GPUs).
/// </summary>
public static class Devices
{
    /// <summary>Parses "cpu", "cuda" or "cuda:N" (case-insensitive) into a TorchSharp device.</summary>
    public static Device Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var s = spec.Trim().ToLowerInvariant();
        if (s == "cpu") return torch.CPU;
        if (s == "cuda") return new Device(DeviceType.CUDA, 0);
        if (s.StartsWith("cuda:", StringComparison.Ordinal) &&
            int.TryParse(s.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int i))
            return new Device(DeviceType.CUDA, i);
        throw new ArgumentException($"'{spec}' is not a device: use \"cpu\", \"cuda\" or \"cuda:N\"", nameof(spec));
    }

    /// <summary>The canonical name of a device: "cpu" or "cuda:N".</summary>
    public static string Name(Device device) => device.type == DeviceType.CPU ? "cpu" : $"cuda:{Math.Max(device.index, 0)}";

    /// <summary>
    /// Throws <see cref="InvalidOperationException"/> when <paramref name="device"/> cannot be used here (CUDA asked for
    /// without a CUDA backend or without a visible GPU, or a GPU index past the last one), naming the device and the fix.
    /// </summary>
    public static void EnsureAvailable(Device device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.type == DeviceType.CPU) return;
        if (device.type != DeviceType.CUDA)
            throw new InvalidOperationException($"device '{device}' is not supported: use \"cpu\" or \"cuda[:N]\"");
        if (!torch.cuda.is_available())
            throw new InvalidOperationException(
                $"device '{Name(device)}' was requested but CUDA is not available: the application references a CPU libtorch " +
                "backend (libtorch-cpu-*) or no GPU is visible. Reference TorchSharp-cuda-linux (or TorchSharp-cuda-windows) " +
                "instead of the CPU backend, or use \"cpu\".");
        int n = torch.cuda.device_count();
        if (Math.Max(device.index, 0) >= n)
            throw new InvalidOperationException($"device '{Name(device)}' was requested but only {n} CUDA device(s) are visible");
    }
}
