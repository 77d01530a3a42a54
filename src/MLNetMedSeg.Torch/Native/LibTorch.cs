using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace MLNetMedSeg.Torch.Native;

/// <summary>
/// P/Invoke surface of the native shim (<c>libmedseg_torch.so</c>). Every entry point returns a status code
/// (0 = success) and passes results through out-parameters; <see cref="Check"/> turns a failure into a
/// <see cref="TorchException"/> carrying libtorch's message. This file holds the core entry points; each
/// area of the API declares its own in a sibling <c>LibTorch.*.cs</c> file.
/// </summary>
internal static partial class LibTorch
{
    internal const string Lib = "medseg_torch";

    /// <summary>The ABI version this assembly was written against; must equal the shim's <c>MT_ABI_VERSION</c>.</summary>
    internal const int ExpectedAbiVersion = 2;

    static LibTorch()
    {
        NativeLoader.EnsureLoaded();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Check(int status)
    {
        if (status != 0) Throw(status);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Throw(int status)
    {
        string message = Marshal.PtrToStringUTF8(mt_last_error()) ?? "unknown libtorch error";
        throw TorchException.FromStatus(status, message);
    }

    // ---- errors, versions, threads, seeds
    [LibraryImport(Lib)] internal static partial IntPtr mt_last_error();
    [LibraryImport(Lib)] internal static partial int mt_abi_version();
    [LibraryImport(Lib)] internal static partial IntPtr mt_torch_version();
    [LibraryImport(Lib)] internal static partial long mt_live_tensors();
    [LibraryImport(Lib)] internal static partial void mt_free_buffer(IntPtr p);
    [LibraryImport(Lib)] internal static partial int mt_set_num_threads(int n);
    [LibraryImport(Lib)] internal static partial int mt_get_num_threads(out int n);
    [LibraryImport(Lib)] internal static partial int mt_set_num_interop_threads(int n);
    [LibraryImport(Lib)] internal static partial int mt_manual_seed(ulong seed);

    // ---- modes
    [LibraryImport(Lib)] internal static partial int mt_set_grad_enabled([MarshalAs(UnmanagedType.U1)] bool enabled, [MarshalAs(UnmanagedType.U1)] out bool previous);
    [LibraryImport(Lib)][return: MarshalAs(UnmanagedType.U1)] internal static partial bool mt_is_grad_enabled();
    [LibraryImport(Lib)] internal static partial int mt_inference_mode_push([MarshalAs(UnmanagedType.U1)] bool enabled);
    [LibraryImport(Lib)] internal static partial int mt_inference_mode_pop();
    [LibraryImport(Lib)][return: MarshalAs(UnmanagedType.U1)] internal static partial bool mt_is_inference_mode();
    [LibraryImport(Lib)] internal static partial int mt_autocast_enter(int deviceType, [MarshalAs(UnmanagedType.U1)] bool enabled, int dtype, [MarshalAs(UnmanagedType.U1)] out bool prevEnabled, out int prevDtype);
    [LibraryImport(Lib)] internal static partial int mt_autocast_exit(int deviceType, [MarshalAs(UnmanagedType.U1)] bool prevEnabled, int prevDtype);
    [LibraryImport(Lib)][return: MarshalAs(UnmanagedType.U1)] internal static partial bool mt_autocast_is_enabled(int deviceType);

    // ---- CUDA
    [LibraryImport(Lib)][return: MarshalAs(UnmanagedType.U1)] internal static partial bool mt_cuda_is_available();
    [LibraryImport(Lib)] internal static partial int mt_cuda_device_count();
    [LibraryImport(Lib)] internal static partial int mt_cuda_synchronize(int deviceIndex);
    [LibraryImport(Lib)] internal static partial int mt_cuda_empty_cache();
    [LibraryImport(Lib)] internal static partial int mt_cuda_memory_allocated(int deviceIndex, out long bytes);
    [LibraryImport(Lib)][return: MarshalAs(UnmanagedType.U1)] internal static partial bool mt_cudnn_deterministic();
    [LibraryImport(Lib)] internal static partial int mt_set_cudnn_deterministic([MarshalAs(UnmanagedType.U1)] bool on);
    [LibraryImport(Lib)][return: MarshalAs(UnmanagedType.U1)] internal static partial bool mt_cudnn_benchmark();
    [LibraryImport(Lib)] internal static partial int mt_set_cudnn_benchmark([MarshalAs(UnmanagedType.U1)] bool on);

    // ---- generators
    [LibraryImport(Lib)] internal static partial int mt_generator_new(int deviceType, int deviceIndex, ulong seed, out IntPtr gen);
    [LibraryImport(Lib)] internal static partial int mt_generator_default(int deviceType, int deviceIndex, out IntPtr gen);
    [LibraryImport(Lib)] internal static partial void mt_generator_free(IntPtr gen);
    [LibraryImport(Lib)] internal static partial int mt_generator_manual_seed(GeneratorHandle gen, ulong seed);
    [LibraryImport(Lib)] internal static partial int mt_generator_initial_seed(GeneratorHandle gen, out ulong seed);
    [LibraryImport(Lib)] internal static partial int mt_generator_get_state(GeneratorHandle gen, out IntPtr state);
    [LibraryImport(Lib)] internal static partial int mt_generator_set_state(GeneratorHandle gen, TensorHandle state);

    // ---- tensor lifetime and metadata
    [LibraryImport(Lib)] internal static partial void mt_tensor_free(IntPtr t);
    [LibraryImport(Lib)] internal static partial int mt_tensor_alias(TensorHandle t, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_tensor_dim(TensorHandle t, out long dim);
    [LibraryImport(Lib)] internal static unsafe partial int mt_tensor_shape(TensorHandle t, long* sizes, long cap);
    [LibraryImport(Lib)] internal static unsafe partial int mt_tensor_strides(TensorHandle t, long* strides, long cap);
    [LibraryImport(Lib)] internal static partial int mt_tensor_numel(TensorHandle t, out long numel);
    [LibraryImport(Lib)] internal static partial int mt_tensor_dtype(TensorHandle t, out int dtype);
    [LibraryImport(Lib)] internal static partial int mt_tensor_device(TensorHandle t, out int type, out int index);
    [LibraryImport(Lib)] internal static partial int mt_tensor_requires_grad(TensorHandle t, [MarshalAs(UnmanagedType.U1)] out bool value);
    [LibraryImport(Lib)] internal static partial int mt_tensor_set_requires_grad(TensorHandle t, [MarshalAs(UnmanagedType.U1)] bool value);
    [LibraryImport(Lib)] internal static partial int mt_tensor_is_leaf(TensorHandle t, [MarshalAs(UnmanagedType.U1)] out bool value);
    [LibraryImport(Lib)] internal static partial int mt_tensor_is_contiguous(TensorHandle t, [MarshalAs(UnmanagedType.U1)] out bool value);
    [LibraryImport(Lib)] internal static partial int mt_tensor_element_size(TensorHandle t, out long size);
    [LibraryImport(Lib)] internal static partial int mt_tensor_is_inference(TensorHandle t, [MarshalAs(UnmanagedType.U1)] out bool value);

    // ---- creation
    [LibraryImport(Lib)] internal static partial int mt_empty(long[] shape, long ndim, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_zeros(long[] shape, long ndim, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_ones(long[] shape, long ndim, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_full(long[] shape, long ndim, Scalar value, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_rand(long[] shape, long ndim, GeneratorHandle gen, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_randn(long[] shape, long ndim, GeneratorHandle gen, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_randint(long low, long high, long[] shape, long ndim, GeneratorHandle gen, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_randperm(long n, GeneratorHandle gen, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_arange(Scalar start, Scalar end, Scalar step, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_linspace(double start, double end, long steps, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_eye(long n, long m, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_zeros_like(TensorHandle t, int dtype, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_ones_like(TensorHandle t, int dtype, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_empty_like(TensorHandle t, int dtype, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_full_like(TensorHandle t, Scalar value, int dtype, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_rand_like(TensorHandle t, GeneratorHandle gen, int dtype, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_randn_like(TensorHandle t, GeneratorHandle gen, int dtype, out IntPtr result);

    // ---- managed memory transfer
    [LibraryImport(Lib)] internal static unsafe partial int mt_from_buffer(void* data, long nbytes, long[] shape, long ndim, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool requiresGrad, out IntPtr result);
    [LibraryImport(Lib)] internal static unsafe partial int mt_to_buffer(TensorHandle t, void* dst, long nbytes);
    [LibraryImport(Lib)] internal static partial int mt_item(TensorHandle t, out Scalar value);

    // ---- conversion, copies, autograd
    [LibraryImport(Lib)] internal static partial int mt_to(TensorHandle t, int dtype, int deviceType, int deviceIndex, [MarshalAs(UnmanagedType.U1)] bool nonBlocking, [MarshalAs(UnmanagedType.U1)] bool copy, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_clone(TensorHandle t, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_detach(TensorHandle t, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_detach_(TensorHandle t);
    [LibraryImport(Lib)] internal static partial int mt_contiguous(TensorHandle t, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_copy_(TensorHandle dst, TensorHandle src, [MarshalAs(UnmanagedType.U1)] bool nonBlocking);
    [LibraryImport(Lib)] internal static partial int mt_backward(TensorHandle t, TensorHandle grad, int retainGraph, [MarshalAs(UnmanagedType.U1)] bool createGraph);
    [LibraryImport(Lib)] internal static partial int mt_tensor_grad(TensorHandle t, out IntPtr result);
    [LibraryImport(Lib)] internal static partial int mt_tensor_set_grad(TensorHandle t, TensorHandle grad);
    [LibraryImport(Lib)] internal static partial int mt_tensor_set_data(TensorHandle t, TensorHandle src);
    [LibraryImport(Lib)] internal static partial int mt_zero_(TensorHandle t);
    [LibraryImport(Lib)] internal static partial int mt_fill_(TensorHandle t, Scalar value);
    [LibraryImport(Lib)] internal static unsafe partial int mt_autograd_grad(IntPtr* outputs, long nOut, IntPtr* inputs, long nIn, IntPtr* gradOutputs, int retainGraph, [MarshalAs(UnmanagedType.U1)] bool createGraph, [MarshalAs(UnmanagedType.U1)] bool allowUnused, IntPtr* results);
}

/// <summary>Finds and validates the native shim once per process.</summary>
internal static class NativeLoader
{
    private static int _loaded;

    internal static void EnsureLoaded()
    {
        if (Interlocked.Exchange(ref _loaded, 1) == 1) return;
        NativeLibrary.SetDllImportResolver(typeof(NativeLoader).Assembly, Resolve);
        IntPtr lib = Resolve(LibTorch.Lib, typeof(NativeLoader).Assembly, null);
        if (lib == IntPtr.Zero)
            throw new DllNotFoundException(
                "MLNetMedSeg.Torch: libmedseg_torch.so was not found next to MLNetMedSeg.Torch.dll nor in MEDSEG_NATIVE_DIR. " +
                "Build the solution with `dotnet build` after running build/setup.sh.");
        if (!NativeLibrary.TryGetExport(lib, "mt_abi_version", out IntPtr fn))
            throw new InvalidOperationException("MLNetMedSeg.Torch: the loaded libmedseg_torch.so is not this project's shim (no mt_abi_version); rebuild it.");
        int abi;
        unsafe { abi = ((delegate* unmanaged<int>)fn)(); }
        if (abi != LibTorch.ExpectedAbiVersion)
            throw new InvalidOperationException(
                $"MLNetMedSeg.Torch: libmedseg_torch.so has ABI version {abi}, this assembly expects {LibTorch.ExpectedAbiVersion}. " +
                "The native library is stale: rebuild with `dotnet build` (or delete src/MLNetMedSeg.Torch/native/build).");
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? path)
    {
        if (name != LibTorch.Lib) return IntPtr.Zero;
        var candidates = new List<string>();
        string? envDir = Environment.GetEnvironmentVariable("MEDSEG_NATIVE_DIR");
        if (!string.IsNullOrEmpty(envDir)) candidates.Add(Path.Combine(envDir, "libmedseg_torch.so"));
        string? asmDir = Path.GetDirectoryName(assembly.Location);
        if (!string.IsNullOrEmpty(asmDir)) candidates.Add(Path.Combine(asmDir, "libmedseg_torch.so"));
        candidates.Add(Path.Combine(AppContext.BaseDirectory, "libmedseg_torch.so"));
        foreach (var c in candidates)
            if (File.Exists(c)) return NativeLibrary.Load(c); // throws with the loader's reason (e.g. a missing libtorch)
        return NativeLibrary.TryLoad("libmedseg_torch.so", assembly, path, out IntPtr h2) ? h2 : IntPtr.Zero;
    }
}
