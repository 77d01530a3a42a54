using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace MLNetMedSeg.Torch.Native;

/// <summary>
/// Owns one native <c>at::Tensor*</c>. Marshalling a SafeHandle keeps it alive for the duration of a call.
/// Explicit disposal frees immediately; when only the finalizer reaches a handle, the pointer is queued and
/// freed later on a user thread (see <see cref="PendingRelease"/>), never on the finalizer thread.
/// </summary>
internal sealed class TensorHandle : SafeHandle
{
    /// <summary>A never-disposed invalid handle, passed where an optional tensor argument is absent.</summary>
    internal static readonly TensorHandle Null = new();

    private volatile bool _explicitRelease;

    public TensorHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    internal TensorHandle(IntPtr h) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(h);

    public override bool IsInvalid => handle == IntPtr.Zero;

    internal IntPtr Raw => handle;

    internal void ReleaseNow()
    {
        _explicitRelease = true;
        Dispose();
    }

    protected override bool ReleaseHandle()
    {
        if (_explicitRelease) LibTorch.mt_tensor_free(handle);
        else PendingRelease.Enqueue(handle);
        return true;
    }
}

/// <summary>Owns one native <c>at::Generator*</c>; same release policy as <see cref="TensorHandle"/>.</summary>
internal sealed class GeneratorHandle : SafeHandle
{
    internal static readonly GeneratorHandle Null = new();
    private volatile bool _explicitRelease;

    public GeneratorHandle() : base(IntPtr.Zero, ownsHandle: true) { }
    internal GeneratorHandle(IntPtr h) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(h);

    public override bool IsInvalid => handle == IntPtr.Zero;

    internal void ReleaseNow()
    {
        _explicitRelease = true;
        Dispose();
    }

    protected override bool ReleaseHandle()
    {
        if (_explicitRelease) LibTorch.mt_generator_free(handle);
        else PendingRelease.EnqueueGenerator(handle);
        return true;
    }
}

/// <summary>
/// Native objects whose managed owner was finalized without being disposed. They are freed on the next
/// user-thread call that drains the queue (tensor creation, dispose-scope exit, <c>torch.CollectGarbage</c>).
/// </summary>
internal static class PendingRelease
{
    private static readonly ConcurrentQueue<IntPtr> Tensors = new();
    private static readonly ConcurrentQueue<IntPtr> Generators = new();
    private static volatile bool _any;

    internal static void Enqueue(IntPtr h) { Tensors.Enqueue(h); _any = true; }
    internal static void EnqueueGenerator(IntPtr h) { Generators.Enqueue(h); _any = true; }

    internal static bool Any => _any;

    internal static int Drain()
    {
        if (!_any) return 0;
        _any = false;
        int n = 0;
        while (Tensors.TryDequeue(out var h)) { LibTorch.mt_tensor_free(h); n++; }
        while (Generators.TryDequeue(out var g)) { LibTorch.mt_generator_free(g); n++; }
        return n;
    }
}

/// <summary>
/// Raw pointers of a list of tensors for one native call, with each SafeHandle ref-counted so that
/// none can be released while the call runs. Use with <c>using</c>.
/// </summary>
internal readonly struct HandleArray : IDisposable
{
    internal readonly IntPtr[] Pointers;
    private readonly SafeHandle[] _handles;
    private readonly bool[] _added;

    internal HandleArray(IReadOnlyList<Tensor?> tensors, bool allowNull = false)
    {
        int n = tensors.Count;
        Pointers = new IntPtr[n];
        _handles = new SafeHandle[n];
        _added = new bool[n];
        try
        {
            for (int k = 0; k < n; k++)
            {
                var t = tensors[k];
                if (t is null)
                {
                    if (!allowNull) throw new ArgumentNullException($"tensors[{k}]");
                    continue;
                }
                var h = t.Handle;
                h.DangerousAddRef(ref _added[k]);
                _handles[k] = h;
                Pointers[k] = h.DangerousGetHandle();
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    internal int Length => Pointers.Length;

    public void Dispose()
    {
        if (_handles is null) return;
        for (int k = 0; k < _handles.Length; k++)
            if (_added[k]) { _handles[k].DangerousRelease(); _added[k] = false; }
    }
}
