using System.Runtime.InteropServices;
using TorchSharp;

namespace MLNetMedSeg.Core;

/// <summary>
/// cuDNN's determinism switches (<c>torch.backends.cudnn.deterministic</c> and <c>.benchmark</c>), which TorchSharp
/// 0.107 does not expose. They are plain settings of libtorch's global context (<c>at::globalContext()</c>), read and
/// written here through libtorch's exported C++ entry points (Itanium ABI: Linux, macOS). Where those entry points
/// cannot be reached (Windows' MSVC names), <see cref="IsSupported"/> is false and setting a value throws
/// <see cref="PlatformNotSupportedException"/>. Being global settings, they hold on the CPU too (where cuDNN is unused).
/// </summary>
public static class CuDnn
{
    private const string Lib = LibTorchContext.Lib;

    [DllImport(Lib, EntryPoint = "_ZNK2at7Context18deterministicCuDNNEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static extern bool GetDeterministic(IntPtr context);

    [DllImport(Lib, EntryPoint = "_ZN2at7Context21setDeterministicCuDNNEb")]
    private static extern void SetDeterministic(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value);

    [DllImport(Lib, EntryPoint = "_ZNK2at7Context14benchmarkCuDNNEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static extern bool GetBenchmark(IntPtr context);

    [DllImport(Lib, EntryPoint = "_ZN2at7Context17setBenchmarkCuDNNEb")]
    private static extern void SetBenchmark(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value);

    /// <summary>Whether the switches can be read and set on this platform.</summary>
    public static bool IsSupported => LibTorchContext.Pointer != IntPtr.Zero;

    /// <summary>cuDNN uses only deterministic algorithms (PyTorch's <c>torch.backends.cudnn.deterministic</c>).</summary>
    public static bool Deterministic
    {
        get => IsSupported && GetDeterministic(LibTorchContext.Pointer);
        set { Require(); SetDeterministic(LibTorchContext.Pointer, value); }
    }

    /// <summary>cuDNN benchmarks algorithms per input shape and keeps the fastest (<c>torch.backends.cudnn.benchmark</c>).</summary>
    public static bool Benchmark
    {
        get => IsSupported && GetBenchmark(LibTorchContext.Pointer);
        set { Require(); SetBenchmark(LibTorchContext.Pointer, value); }
    }

    private static void Require()
    {
        if (!IsSupported)
            throw new PlatformNotSupportedException("cuDNN's determinism switches cannot be reached through this libtorch build (its C++ names are not the Itanium ABI's)");
    }
}
