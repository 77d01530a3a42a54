using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

/// <summary>
/// The static surface, named as in PyTorch/TorchSharp: <c>torch.zeros</c>, <c>torch.nn.functional.conv2d</c>,
/// <c>torch.optim.Adam</c>, ... Defaults: dtype float32, device CPU, threads = <see cref="Environment.ProcessorCount"/>
/// (override with the MEDSEG_NUM_THREADS environment variable or <see cref="set_num_threads"/>).
/// </summary>
public static partial class torch
{
    static torch()
    {
        NativeLoader.EnsureLoaded();
        int threads = Environment.ProcessorCount;
        if (int.TryParse(Environment.GetEnvironmentVariable("MEDSEG_NUM_THREADS"), out int t) && t > 0) threads = t;
        LibTorch.Check(LibTorch.mt_set_num_threads(threads));
    }

    /// <summary>libtorch version the shim was built against, e.g. "1.13.0" or "2.5.1+cuda".</summary>
    public static string __version__ => System.Runtime.InteropServices.Marshal.PtrToStringUTF8(LibTorch.mt_torch_version()) ?? "?";

    /// <summary>Native tensor handles alive right now (includes ones queued by finalizers but not yet freed).</summary>
    public static long LiveTensorCount => LibTorch.mt_live_tensors();

    /// <summary>Frees native objects whose managed owners were garbage-collected without being disposed.</summary>
    public static int CollectGarbage() => PendingRelease.Drain();

    public static void set_num_threads(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "thread count must be positive");
        LibTorch.Check(LibTorch.mt_set_num_threads(n));
    }

    public static int get_num_threads()
    {
        LibTorch.Check(LibTorch.mt_get_num_threads(out int n));
        return n;
    }

    /// <summary>Seeds the global generators of every device. Components should prefer their own <see cref="Generator"/>.</summary>
    public static void manual_seed(ulong seed) => LibTorch.Check(LibTorch.mt_manual_seed(seed));

    /// <summary>The global generator of a device.</summary>
    public static Generator default_generator(Device? device = null) => Generator.Default(device ?? CPU);

    // ------------------------------------------------------------ creation

    private static (int type, int index) Dev(Device? device)
    {
        if (device is null) return (0, -1);
        device.EnsureAvailable();
        return ((int)device.type, device.NativeIndex);
    }

    private static Tensor Wrap(int status, IntPtr r)
    {
        LibTorch.Check(status);
        return new Tensor(r);
    }

    public static Tensor empty(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null, bool requires_grad = false)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_empty(size, size.Length, (int)dtype, dt, di, requires_grad, out var r), r);
    }

    public static Tensor zeros(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null, bool requires_grad = false)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_zeros(size, size.Length, (int)dtype, dt, di, requires_grad, out var r), r);
    }

    public static Tensor zeros(params long[] size) => zeros(size, ScalarType.Float32);

    public static Tensor ones(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null, bool requires_grad = false)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_ones(size, size.Length, (int)dtype, dt, di, requires_grad, out var r), r);
    }

    public static Tensor ones(params long[] size) => ones(size, ScalarType.Float32);

    public static Tensor full(long[] size, Scalar value, ScalarType dtype = ScalarType.Float32, Device? device = null, bool requires_grad = false)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_full(size, size.Length, value, (int)dtype, dt, di, requires_grad, out var r), r);
    }

    /// <summary>Uniform samples from [0, 1).</summary>
    public static Tensor rand(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null, bool requires_grad = false, Generator? generator = null)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_rand(size, size.Length, generator?.Handle ?? GeneratorHandle.Null, (int)dtype, dt, di, requires_grad, out var r), r);
    }

    public static Tensor rand(params long[] size) => rand(size, ScalarType.Float32);

    /// <summary>Standard normal samples.</summary>
    public static Tensor randn(long[] size, ScalarType dtype = ScalarType.Float32, Device? device = null, bool requires_grad = false, Generator? generator = null)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_randn(size, size.Length, generator?.Handle ?? GeneratorHandle.Null, (int)dtype, dt, di, requires_grad, out var r), r);
    }

    public static Tensor randn(params long[] size) => randn(size, ScalarType.Float32);

    /// <summary>Integers uniformly drawn from [low, high).</summary>
    public static Tensor randint(long low, long high, long[] size, ScalarType dtype = ScalarType.Int64, Device? device = null, Generator? generator = null)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_randint(low, high, size, size.Length, generator?.Handle ?? GeneratorHandle.Null, (int)dtype, dt, di, false, out var r), r);
    }

    public static Tensor randint(long high, long[] size, ScalarType dtype = ScalarType.Int64, Device? device = null, Generator? generator = null)
        => randint(0, high, size, dtype, device, generator);

    /// <summary>A random permutation of 0..n-1.</summary>
    public static Tensor randperm(long n, ScalarType dtype = ScalarType.Int64, Device? device = null, Generator? generator = null)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_randperm(n, generator?.Handle ?? GeneratorHandle.Null, (int)dtype, dt, di, false, out var r), r);
    }

    /// <summary>Values from start (inclusive) to end (exclusive) by step. Integer arguments give int64 unless dtype is given.</summary>
    public static Tensor arange(Scalar start, Scalar end, Scalar step, ScalarType? dtype = null, Device? device = null, bool requires_grad = false)
    {
        var (dt, di) = Dev(device);
        var t = dtype ?? (start.IsFloatingPoint || end.IsFloatingPoint || step.IsFloatingPoint ? ScalarType.Float32 : ScalarType.Int64);
        return Wrap(LibTorch.mt_arange(start, end, step, (int)t, dt, di, requires_grad, out var r), r);
    }

    public static Tensor arange(Scalar start, Scalar end, ScalarType? dtype = null, Device? device = null) => arange(start, end, 1, dtype, device);
    public static Tensor arange(Scalar end, ScalarType? dtype = null, Device? device = null) => arange(0, end, 1, dtype, device);

    public static Tensor linspace(double start, double end, long steps, ScalarType dtype = ScalarType.Float32, Device? device = null, bool requires_grad = false)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_linspace(start, end, steps, (int)dtype, dt, di, requires_grad, out var r), r);
    }

    public static Tensor eye(long n, long? m = null, ScalarType dtype = ScalarType.Float32, Device? device = null, bool requires_grad = false)
    {
        var (dt, di) = Dev(device);
        return Wrap(LibTorch.mt_eye(n, m ?? n, (int)dtype, dt, di, requires_grad, out var r), r);
    }

    public static Tensor zeros_like(Tensor t, ScalarType? dtype = null, bool requires_grad = false)
        => Wrap(LibTorch.mt_zeros_like(t.Handle, dtype.HasValue ? (int)dtype.Value : -1, requires_grad, out var r), r);
    public static Tensor ones_like(Tensor t, ScalarType? dtype = null, bool requires_grad = false)
        => Wrap(LibTorch.mt_ones_like(t.Handle, dtype.HasValue ? (int)dtype.Value : -1, requires_grad, out var r), r);
    public static Tensor empty_like(Tensor t, ScalarType? dtype = null, bool requires_grad = false)
        => Wrap(LibTorch.mt_empty_like(t.Handle, dtype.HasValue ? (int)dtype.Value : -1, requires_grad, out var r), r);
    public static Tensor full_like(Tensor t, Scalar value, ScalarType? dtype = null, bool requires_grad = false)
        => Wrap(LibTorch.mt_full_like(t.Handle, value, dtype.HasValue ? (int)dtype.Value : -1, requires_grad, out var r), r);
    public static Tensor rand_like(Tensor t, ScalarType? dtype = null, Generator? generator = null)
        => Wrap(LibTorch.mt_rand_like(t.Handle, generator?.Handle ?? GeneratorHandle.Null, dtype.HasValue ? (int)dtype.Value : -1, out var r), r);
    public static Tensor randn_like(Tensor t, ScalarType? dtype = null, Generator? generator = null)
        => Wrap(LibTorch.mt_randn_like(t.Handle, generator?.Handle ?? GeneratorHandle.Null, dtype.HasValue ? (int)dtype.Value : -1, out var r), r);

    /// <summary>A tensor holding a copy of <paramref name="data"/> with the given shape (default: 1-D).</summary>
    public static unsafe Tensor from_array<T>(ReadOnlySpan<T> data, long[]? shape = null, Device? device = null, bool requires_grad = false) where T : unmanaged
    {
        shape ??= [data.Length];
        long n = 1;
        foreach (var s in shape) n *= s;
        if (n != data.Length)
            throw new ArgumentException($"shape [{string.Join(", ", shape)}] needs {n} elements but the data has {data.Length}", nameof(shape));
        var (dt, di) = Dev(device);
        var dtype = DTypeOf<T>();
        fixed (T* p = data)
            return Wrap(LibTorch.mt_from_buffer(p, (long)data.Length * sizeof(T), shape, shape.Length, (int)dtype, dt, di, requires_grad, out var r), r);
    }

    public static Tensor tensor(float[] data, long[]? shape = null, Device? device = null, bool requires_grad = false) => from_array<float>(data, shape, device, requires_grad);
    public static Tensor tensor(double[] data, long[]? shape = null, Device? device = null, bool requires_grad = false) => from_array<double>(data, shape, device, requires_grad);
    public static Tensor tensor(long[] data, long[]? shape = null, Device? device = null) => from_array<long>(data, shape, device);
    public static Tensor tensor(int[] data, long[]? shape = null, Device? device = null) => from_array<int>(data, shape, device);
    public static Tensor tensor(byte[] data, long[]? shape = null, Device? device = null) => from_array<byte>(data, shape, device);
    public static Tensor tensor(bool[] data, long[]? shape = null, Device? device = null) => from_array<bool>(data, shape, device);

    /// <summary>A 0-dimensional tensor.</summary>
    public static Tensor tensor(double value, ScalarType dtype = ScalarType.Float32, Device? device = null, bool requires_grad = false)
        => full([], value, dtype, device, requires_grad);

    // ------------------------------------------------------------ modes

    public static bool is_grad_enabled() => LibTorch.mt_is_grad_enabled();

    /// <summary>Disables gradient recording on this thread until disposed: <c>using (torch.no_grad()) { ... }</c>.</summary>
    public static GradModeScope no_grad() => new(false);

    /// <summary>Enables gradient recording on this thread until disposed (inside a no_grad region, for attacks).</summary>
    public static GradModeScope enable_grad() => new(true);

    public static GradModeScope set_grad_enabled(bool enabled) => new(enabled);

    /// <summary>Inference mode (faster than no_grad; tensors made inside cannot later join autograd).</summary>
    public static InferenceModeScope inference_mode(bool enabled = true) => new(enabled);

    public static bool is_inference_mode_enabled() => LibTorch.mt_is_inference_mode();

    /// <summary>
    /// Automatic mixed precision on this thread until disposed: eligible ops (convolutions, matmul, ...) run in
    /// <paramref name="dtype"/> (bfloat16 on CPU; float16 or bfloat16 on CUDA), precision-sensitive ones in float32.
    /// </summary>
    public static AutocastScope autocast(Device device, ScalarType dtype = ScalarType.BFloat16, bool enabled = true) => new(device.type, dtype, enabled);

    public static AutocastScope autocast(DeviceType deviceType, ScalarType dtype = ScalarType.BFloat16, bool enabled = true) => new(deviceType, dtype, enabled);

    public static bool is_autocast_enabled(DeviceType deviceType = DeviceType.CUDA) => LibTorch.mt_autocast_is_enabled((int)deviceType);

    /// <summary>CUDA queries and control. All are safe to call in a CPU-only build.</summary>
    public static class cuda
    {
        public static bool is_available() => LibTorch.mt_cuda_is_available();
        public static int device_count() => LibTorch.mt_cuda_device_count();
        public static void synchronize(int device = -1) => LibTorch.Check(LibTorch.mt_cuda_synchronize(device));
        /// <summary>Returns cached, unused GPU memory to the driver (no-op in a CPU build).</summary>
        public static void empty_cache() => LibTorch.Check(LibTorch.mt_cuda_empty_cache());
        /// <summary>Seeds every CUDA device's global generator (same as <see cref="torch.manual_seed"/> for CUDA).</summary>
        public static void manual_seed_all(ulong seed) => torch.manual_seed(seed);

        /// <summary>
        /// Bytes held by live tensors on CUDA device <paramref name="device"/> (PyTorch's
        /// <c>torch.cuda.memory_allocated</c>; the allocator's cached pool is not counted). 0 in a CPU-only build.
        /// </summary>
        public static long memory_allocated(int device = 0)
        {
            LibTorch.Check(LibTorch.mt_cuda_memory_allocated(device, out long bytes));
            return bytes;
        }
    }

    /// <summary>Backend switches, as PyTorch's <c>torch.backends</c>.</summary>
    public static class backends
    {
        /// <summary>cuDNN's algorithm choice (no effect on CPU).</summary>
        public static class cudnn
        {
            /// <summary>Only deterministic cuDNN kernels: the same inputs give bitwise the same outputs and gradients.</summary>
            public static bool deterministic
            {
                get => LibTorch.mt_cudnn_deterministic();
                set => LibTorch.Check(LibTorch.mt_set_cudnn_deterministic(value));
            }

            /// <summary>Autotune the convolution algorithm per input shape (faster, not reproducible run to run).</summary>
            public static bool benchmark
            {
                get => LibTorch.mt_cudnn_benchmark();
                set => LibTorch.Check(LibTorch.mt_set_cudnn_benchmark(value));
            }
        }
    }

    public static class autograd
    {
        /// <summary>
        /// Gradients of <paramref name="outputs"/> with respect to <paramref name="inputs"/>, returned rather than
        /// accumulated into <c>.grad</c> (weights are untouched). An input the outputs do not depend on yields
        /// null when <paramref name="allow_unused"/> is true.
        /// </summary>
        public static unsafe Tensor?[] grad(IReadOnlyList<Tensor> outputs, IReadOnlyList<Tensor> inputs,
            IReadOnlyList<Tensor?>? grad_outputs = null, bool? retain_graph = null, bool create_graph = false, bool allow_unused = false)
        {
            if (grad_outputs is not null && grad_outputs.Count != outputs.Count)
                throw new ArgumentException($"grad_outputs has {grad_outputs.Count} entries but there are {outputs.Count} outputs", nameof(grad_outputs));
            using var outs = new HandleArray(outputs);
            using var ins = new HandleArray(inputs);
            using var gouts = grad_outputs is null ? default : new HandleArray(grad_outputs, allowNull: true);
            var results = new IntPtr[inputs.Count];
            int retain = retain_graph.HasValue ? (retain_graph.Value ? 1 : 0) : -1;
            fixed (IntPtr* po = outs.Pointers, pi = ins.Pointers, pr = results)
            fixed (IntPtr* pg = grad_outputs is null ? null : gouts.Pointers)
                LibTorch.Check(LibTorch.mt_autograd_grad(po, outs.Length, pi, ins.Length, pg, retain, create_graph, allow_unused, pr));
            var r = new Tensor?[results.Length];
            for (int k = 0; k < r.Length; k++) r[k] = Tensor.WrapOrNull(results[k]);
            return r;
        }

        public static Tensor?[] grad(Tensor output, IReadOnlyList<Tensor> inputs, bool? retain_graph = null, bool create_graph = false, bool allow_unused = false)
            => grad([output], inputs, null, retain_graph, create_graph, allow_unused);
    }
}

/// <summary>Restores the previous grad mode when disposed.</summary>
public readonly struct GradModeScope : IDisposable
{
    private readonly bool _previous;
    internal GradModeScope(bool enabled) => LibTorch.Check(LibTorch.mt_set_grad_enabled(enabled, out _previous));
    public void Dispose() => LibTorch.Check(LibTorch.mt_set_grad_enabled(_previous, out _));
}

/// <summary>Leaves the inference-mode region when disposed.</summary>
public readonly struct InferenceModeScope : IDisposable
{
    private readonly bool _entered;
    internal InferenceModeScope(bool enabled)
    {
        LibTorch.Check(LibTorch.mt_inference_mode_push(enabled));
        _entered = true;
    }
    public void Dispose()
    {
        if (_entered) LibTorch.Check(LibTorch.mt_inference_mode_pop());
    }
}

/// <summary>Restores the previous autocast state when disposed.</summary>
public readonly struct AutocastScope : IDisposable
{
    private readonly int _deviceType;
    private readonly bool _prevEnabled;
    private readonly int _prevDtype;
    private readonly bool _entered;

    internal AutocastScope(DeviceType deviceType, ScalarType dtype, bool enabled)
    {
        _deviceType = (int)deviceType;
        LibTorch.Check(LibTorch.mt_autocast_enter(_deviceType, enabled, (int)dtype, out _prevEnabled, out _prevDtype));
        _entered = true;
    }

    public void Dispose()
    {
        if (_entered) LibTorch.Check(LibTorch.mt_autocast_exit(_deviceType, _prevEnabled, _prevDtype));
    }
}
