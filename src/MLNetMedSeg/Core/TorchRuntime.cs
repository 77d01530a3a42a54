using System.Runtime.InteropServices;
using TorchSharp;

namespace MLNetMedSeg.Core;

/// <summary>
/// Process-wide facts and settings of the tensor engine that TorchSharp does not expose as such: the live tensor count
/// (for leak checks), the libtorch version, and the CPU allocator policy that keeps a training run's resident memory flat.
/// </summary>
public static class TorchRuntime
{
    private static int _initialized;

    /// <summary>
    /// Tensor objects alive in this process as TorchSharp counts them (<c>torch.Tensor.TotalCount</c>). A diagnostic
    /// only: TorchSharp counts a parameter twice (the tensor it was made from is never uncounted), so the number
    /// drifts up as modules are built. To check that code disposes its tensors, use <see cref="FinalizedTensorCount"/>.
    /// </summary>
    public static long LiveTensorCount => torch.Tensor.TotalCount;

    /// <summary>
    /// How many tensors the garbage collector has released so far in this process: tensors that nobody disposed, whose
    /// native memory lived until a finalizer ran. Library code never leaves a tensor to the finalizer, so across a
    /// piece of work this number must not move. It runs the finalizers first (a full collection), so call it outside
    /// hot loops, typically before and after the work a test checks.
    /// </summary>
    public static long FinalizedTensorCount
    {
        get
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            // TorchSharp's statistics are per thread; finalizers run on the finalizer thread. A sentinel's finalizer
            // reads that thread's count of tensors disposed there.
            Sentinel.Create();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            return Interlocked.Read(ref Sentinel.LastReading);
        }
    }

    private sealed class Sentinel
    {
        public static long LastReading;

        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
        public static void Create() => _ = new Sentinel();

        ~Sentinel()
        {
            var s = DisposeScopeManager.Statistics;
            Interlocked.Exchange(ref LastReading, s.DisposedOutsideScopeCount + s.DisposedInScopeCount);
        }
    }

    /// <summary>
    /// Whether <see cref="Initialize"/> applied the allocator policy (false when opted out, when the environment sets
    /// glibc's malloc itself, or off glibc).
    /// </summary>
    public static bool MallocPolicyApplied { get; private set; }

    /// <summary>
    /// Applies the library's process-wide settings once (idempotent, thread-safe); a <c>MedSegContext</c> calls it when
    /// created. The intra-op thread count is libtorch's default (every core) unless MEDSEG_NUM_THREADS sets it. On Linux with glibc it sets the CPU allocator policy: libtorch allocates CPU tensors with
    /// posix_memalign, and under glibc's defaults blocks above the dynamic mmap threshold are unmapped on free and
    /// freed memory at the top of the heap is trimmed, so every training step page-faults its activations in again
    /// and the resident size creeps up step after step. Keeping blocks up to 32 MiB on the heap (M_MMAP_THRESHOLD)
    /// and up to 1 GiB of freed memory in the process (M_TRIM_THRESHOLD), as jemalloc/tcmalloc would, makes the
    /// resident size flat at its peak. Opt out with MEDSEG_MALLOC_TUNING=0; explicit glibc settings in the
    /// environment (GLIBC_TUNABLES glibc.malloc.*, MALLOC_*_ variables) always win. Where libtorch's oneDNN
    /// convolutions compute wrong gradients (<see cref="OneDnn.Check"/>) it turns oneDNN off (MEDSEG_ONEDNN=on|off|auto).
    /// </summary>
    public static void Initialize()
    {
        if (Interlocked.Exchange(ref _initialized, 1) == 1) return;
        MallocPolicyApplied = ApplyMallocPolicy();
        // Threads: libtorch's default is every core; MEDSEG_NUM_THREADS overrides it for the whole process.
        if (Environment.GetEnvironmentVariable("MEDSEG_NUM_THREADS") is { } n)
        {
            if (!int.TryParse(n, out int threads) || threads < 1)
                throw new InvalidOperationException($"MEDSEG_NUM_THREADS='{n}' is not a positive number of threads");
            torch.set_num_threads(threads);
        }
        // oneDNN's convolutions are wrong on some CPUs (see OneDnn): off there, unless MEDSEG_ONEDNN says otherwise.
        OneDnn.Apply(Environment.GetEnvironmentVariable("MEDSEG_ONEDNN"));
    }

    /// <summary>
    /// The decision <see cref="Initialize"/> takes, as a function of the environment: true on Linux unless
    /// MEDSEG_MALLOC_TUNING is "0", GLIBC_TUNABLES sets any glibc.malloc.* tunable, or one of glibc's
    /// MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_, MALLOC_MMAP_MAX_ variables is set (to anything).
    /// (Whether the C library is glibc is found out when the policy is applied: elsewhere mallopt is missing.)
    /// </summary>
    /// <param name="getEnvironmentVariable">Reads an environment variable (null when unset), e.g. <see cref="Environment.GetEnvironmentVariable(string)"/>.</param>
    /// <param name="isLinux">Whether the process runs on Linux.</param>
    public static bool MallocPolicyWanted(Func<string, string?> getEnvironmentVariable, bool isLinux)
    {
        ArgumentNullException.ThrowIfNull(getEnvironmentVariable);
        if (!isLinux) return false;
        if (getEnvironmentVariable("MEDSEG_MALLOC_TUNING") == "0") return false;
        var tunables = getEnvironmentVariable("GLIBC_TUNABLES");
        if (tunables is not null && tunables.Contains("glibc.malloc.", StringComparison.Ordinal)) return false;
        foreach (var v in new[] { "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_" })
            if (getEnvironmentVariable(v) is not null) return false;
        return true;
    }

    private static bool ApplyMallocPolicy()
    {
        if (!MallocPolicyWanted(Environment.GetEnvironmentVariable, OperatingSystem.IsLinux())) return false;
        try
        {
            const int M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3;
            return mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1 & mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;   // not glibc (musl, ...): nothing to tune
        }
    }

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
