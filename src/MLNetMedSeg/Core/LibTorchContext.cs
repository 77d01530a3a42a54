using System.Runtime.InteropServices;
using TorchSharp;

namespace MLNetMedSeg.Core;

/// <summary>
/// libtorch's global context (<c>at::globalContext()</c>), whose settings TorchSharp 0.107 does not expose, reached
/// through libtorch's exported C++ entry points (Itanium ABI: Linux, macOS). <see cref="CuDnn"/> and
/// <see cref="OneDnn"/> read and write its switches.
/// </summary>
internal static class LibTorchContext
{
    /// <summary>libtorch_cpu.so / .dylib, loaded by TorchSharp before any call here.</summary>
    public const string Lib = "torch_cpu";

    [DllImport(Lib, EntryPoint = "_ZN2at13globalContextEv")]
    private static extern IntPtr GlobalContext();

    private static readonly Lazy<IntPtr> Context = new(() =>
    {
        _ = torch.cuda.is_available();   // makes TorchSharp load libtorch first
        try { return GlobalContext(); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return IntPtr.Zero; }
    });

    /// <summary>The context, or zero where its entry point cannot be reached (Windows' MSVC names).</summary>
    public static IntPtr Pointer => Context.Value;
}
