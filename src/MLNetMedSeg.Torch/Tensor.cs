using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

/// <summary>
/// A libtorch tensor. Owns one native handle; dispose it (or let a <see cref="DisposeScope"/> do it).
/// The SafeHandle's finalizer is only a backstop: it queues the native pointer for release on a user
/// thread. Using a disposed tensor throws <see cref="ObjectDisposedException"/>.
/// Operations are spread over partial files by area (Tensor.Math.cs, Tensor.Shape.cs, ...).
/// </summary>
public partial class Tensor : IDisposable
{
    private TensorHandle? _handle;
    internal DisposeScope? OwningScope;

    /// <summary>Wraps a handle returned by the shim; registers it in the current dispose scope.</summary>
    internal Tensor(IntPtr handle)
    {
        if (handle == IntPtr.Zero) throw new ArgumentException("null tensor handle", nameof(handle));
        if (PendingRelease.Any) PendingRelease.Drain();
        _handle = new TensorHandle(handle);
        DisposeScope.Register(this);
    }

    /// <summary>Wraps a result handle, or returns null when the shim returned none (e.g. no gradient).</summary>
    internal static Tensor? WrapOrNull(IntPtr handle) => handle == IntPtr.Zero ? null : new Tensor(handle);

    internal TensorHandle Handle
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _handle ?? throw new ObjectDisposedException(nameof(Tensor), "the tensor has been disposed");
    }

    public bool IsDisposed => _handle is null;

    /// <summary>Frees the native tensor now (idempotent).</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        var h = _handle;
        if (h is null) return;
        _handle = null;
        OwningScope?.Remove(this);
        OwningScope = null;
        h.ReleaseNow();
    }

    // ------------------------------------------------------------ dispose-scope membership

    /// <summary>Moves this tensor from its scope to the enclosing one (or out of all scopes). Returns this.</summary>
    public Tensor MoveToOuterDisposeScope()
    {
        var s = OwningScope;
        if (s is null) return this;
        s.Remove(this);
        OwningScope = null;
        var outer = s.Outer;
        while (outer is not null && outer.IsDisposed) outer = outer.Outer;
        outer?.Attach(this);
        return this;
    }

    /// <summary>Removes this tensor from any dispose scope: the caller owns it. Returns this.</summary>
    public Tensor DetachFromDisposeScope()
    {
        OwningScope?.Remove(this);
        OwningScope = null;
        return this;
    }

    // ------------------------------------------------------------ metadata

    public long dim()
    {
        LibTorch.Check(LibTorch.mt_tensor_dim(Handle, out long d));
        return d;
    }

    public long Dimensions => dim();

    /// <summary>The sizes of every dimension.</summary>
    public unsafe long[] shape
    {
        get
        {
            var h = Handle;
            LibTorch.Check(LibTorch.mt_tensor_dim(h, out long d));
            var s = new long[d];
            fixed (long* p = s) LibTorch.Check(LibTorch.mt_tensor_shape(h, p, d));
            return s;
        }
    }

    public unsafe long[] stride()
    {
        var h = Handle;
        LibTorch.Check(LibTorch.mt_tensor_dim(h, out long d));
        var s = new long[d];
        fixed (long* p = s) LibTorch.Check(LibTorch.mt_tensor_strides(h, p, d));
        return s;
    }

    /// <summary>The size of one dimension (negative counts from the end).</summary>
    public long size(int dim)
    {
        var s = shape;
        int d = dim < 0 ? dim + s.Length : dim;
        if (d < 0 || d >= s.Length)
            throw new IndexOutOfRangeException($"dimension {dim} is out of range for a tensor of {s.Length} dimensions");
        return s[d];
    }

    public long numel()
    {
        LibTorch.Check(LibTorch.mt_tensor_numel(Handle, out long n));
        return n;
    }

    public ScalarType dtype
    {
        get
        {
            LibTorch.Check(LibTorch.mt_tensor_dtype(Handle, out int t));
            return (ScalarType)t;
        }
    }

    public Device device
    {
        get
        {
            LibTorch.Check(LibTorch.mt_tensor_device(Handle, out int type, out int index));
            return new Device((DeviceType)type, index);
        }
    }

    public bool is_cuda => device.type == DeviceType.CUDA;

    public long element_size()
    {
        LibTorch.Check(LibTorch.mt_tensor_element_size(Handle, out long n));
        return n;
    }

    public bool is_contiguous()
    {
        LibTorch.Check(LibTorch.mt_tensor_is_contiguous(Handle, out bool v));
        return v;
    }

    public bool is_inference()
    {
        LibTorch.Check(LibTorch.mt_tensor_is_inference(Handle, out bool v));
        return v;
    }

    // ------------------------------------------------------------ autograd

    public bool requires_grad
    {
        get
        {
            LibTorch.Check(LibTorch.mt_tensor_requires_grad(Handle, out bool v));
            return v;
        }
        set => LibTorch.Check(LibTorch.mt_tensor_set_requires_grad(Handle, value));
    }

    /// <summary>Sets requires_grad in place; returns this.</summary>
    public Tensor requires_grad_(bool requiresGrad = true)
    {
        requires_grad = requiresGrad;
        return this;
    }

    public bool is_leaf
    {
        get
        {
            LibTorch.Check(LibTorch.mt_tensor_is_leaf(Handle, out bool v));
            return v;
        }
    }

    /// <summary>
    /// The accumulated gradient (a new handle to it, owned by the caller/current scope), or null when none
    /// has been computed. Setting null clears it.
    /// </summary>
    public Tensor? grad
    {
        get
        {
            LibTorch.Check(LibTorch.mt_tensor_grad(Handle, out IntPtr g));
            return WrapOrNull(g);
        }
        set => LibTorch.Check(LibTorch.mt_tensor_set_grad(Handle, value?.Handle ?? TensorHandle.Null));
    }

    /// <summary>Back-propagates from this tensor into the leaves' <see cref="grad"/>.</summary>
    /// <param name="gradient">d(loss)/d(this); may be omitted for a one-element tensor.</param>
    /// <param name="retain_graph">Keep the graph for another backward (default: same as create_graph).</param>
    /// <param name="create_graph">Record the backward pass itself, for higher-order gradients.</param>
    public void backward(Tensor? gradient = null, bool? retain_graph = null, bool create_graph = false)
    {
        int retain = retain_graph.HasValue ? (retain_graph.Value ? 1 : 0) : -1;
        LibTorch.Check(LibTorch.mt_backward(Handle, gradient?.Handle ?? TensorHandle.Null, retain, create_graph));
    }

    // ------------------------------------------------------------ copies and conversion

    /// <summary>A second handle to the same tensor (same storage and autograd identity).</summary>
    public Tensor alias()
    {
        LibTorch.Check(LibTorch.mt_tensor_alias(Handle, out IntPtr r));
        return new Tensor(r);
    }

    public Tensor clone()
    {
        LibTorch.Check(LibTorch.mt_clone(Handle, out IntPtr r));
        return new Tensor(r);
    }

    /// <summary>A tensor sharing storage but cut from the autograd graph.</summary>
    public Tensor detach()
    {
        LibTorch.Check(LibTorch.mt_detach(Handle, out IntPtr r));
        return new Tensor(r);
    }

    public Tensor detach_()
    {
        LibTorch.Check(LibTorch.mt_detach_(Handle));
        return this;
    }

    public Tensor contiguous()
    {
        LibTorch.Check(LibTorch.mt_contiguous(Handle, out IntPtr r));
        return new Tensor(r);
    }

    /// <summary>Sets every element to zero in place; returns this.</summary>
    public Tensor zero_()
    {
        LibTorch.Check(LibTorch.mt_zero_(Handle));
        return this;
    }

    /// <summary>Sets every element to <paramref name="value"/> in place; returns this.</summary>
    public Tensor fill_(Scalar value)
    {
        LibTorch.Check(LibTorch.mt_fill_(Handle, value));
        return this;
    }

    /// <summary>Copies src into this tensor (broadcasting, converting dtype/device); returns this.</summary>
    public Tensor copy_(Tensor src, bool non_blocking = false)
    {
        LibTorch.Check(LibTorch.mt_copy_(Handle, src.Handle, non_blocking));
        return this;
    }

    /// <summary>Converts dtype and/or device. Always returns a new handle (sharing data when nothing changes).</summary>
    public Tensor to(ScalarType? dtype = null, Device? device = null, bool non_blocking = false, bool copy = false)
    {
        device?.EnsureAvailable();
        int dt = dtype.HasValue ? (int)dtype.Value : -1;
        int devType = device is null ? -1 : (int)device.type;
        int devIndex = device?.NativeIndex ?? -1;
        LibTorch.Check(LibTorch.mt_to(Handle, dt, devType, devIndex, non_blocking, copy, out IntPtr r));
        return new Tensor(r);
    }

    public Tensor to(Device device, bool non_blocking = false) => to(null, device, non_blocking);
    public Tensor to(ScalarType dtype) => to(dtype, null);
    public Tensor to_type(ScalarType dtype) => to(dtype, null);
    public Tensor cpu() => to(null, torch.CPU);
    public Tensor cuda(int index = 0) => to(null, new Device(DeviceType.CUDA, index));
    public Tensor @float() => to(ScalarType.Float32);
    public Tensor @double() => to(ScalarType.Float64);
    public Tensor @long() => to(ScalarType.Int64);
    public Tensor @int() => to(ScalarType.Int32);
    public Tensor @bool() => to(ScalarType.Bool);
    public Tensor half() => to(ScalarType.Float16);
    public Tensor bfloat16() => to(ScalarType.BFloat16);

    // ------------------------------------------------------------ data out

    /// <summary>The value of a one-element tensor.</summary>
    public Scalar item()
    {
        LibTorch.Check(LibTorch.mt_item(Handle, out Scalar s));
        return s;
    }

    /// <summary>The value of a one-element tensor as T (float, double, long, int, bool).</summary>
    public T item<T>() where T : unmanaged
    {
        var s = item();
        object v;
        if (typeof(T) == typeof(float)) v = (float)s.ToDouble();
        else if (typeof(T) == typeof(double)) v = s.ToDouble();
        else if (typeof(T) == typeof(long)) v = s.ToInt64();
        else if (typeof(T) == typeof(int)) v = checked((int)s.ToInt64());
        else if (typeof(T) == typeof(bool)) v = s.ToBoolean();
        else if (typeof(T) == typeof(byte)) v = checked((byte)s.ToInt64());
        else throw new NotSupportedException($"item<{typeof(T).Name}> is not supported");
        return (T)v;
    }

    /// <summary>
    /// The elements in row-major order, copied to a new managed array. T must match the dtype exactly
    /// (convert first with <see cref="to(ScalarType)"/>). Works for any device.
    /// </summary>
    public unsafe T[] ToArray<T>() where T : unmanaged
    {
        var want = torch.DTypeOf<T>();
        var have = dtype;
        if (want != have)
            throw new ArgumentException($"ToArray<{typeof(T).Name}> needs a {want} tensor but this one is {have}; convert it with .to({want}) first");
        long n = numel();
        var arr = new T[n];
        fixed (T* p = arr) LibTorch.Check(LibTorch.mt_to_buffer(Handle, p, n * sizeof(T)));
        return arr;
    }

    /// <summary>Copies the elements into a span (row-major; dtype must match T).</summary>
    public unsafe void CopyTo<T>(Span<T> destination) where T : unmanaged
    {
        var want = torch.DTypeOf<T>();
        if (want != dtype) throw new ArgumentException($"CopyTo<{typeof(T).Name}> needs a {want} tensor but this one is {dtype}");
        fixed (T* p = destination) LibTorch.Check(LibTorch.mt_to_buffer(Handle, p, (long)destination.Length * sizeof(T)));
    }

    /// <summary>Shape, dtype and device, e.g. <c>[2x3], type = Float32, device = cpu</c>.</summary>
    public override string ToString()
    {
        if (IsDisposed) return "Tensor(disposed)";
        return $"[{string.Join("x", shape)}], type = {dtype}, device = {device}";
    }

    /// <summary>A readable dump of small tensors (values with the given precision), for debugging.</summary>
    public string ToString(int maxElements, string format = "G6")
    {
        var sb = new StringBuilder(ToString());
        long n = numel();
        if (n > maxElements) return sb.Append(" (").Append(n).Append(" elements)").ToString();
        using var d = to(ScalarType.Float64, torch.CPU);
        var v = d.ToArray<double>();
        sb.Append(" {");
        sb.Append(string.Join(", ", v.Select(x => x.ToString(format, CultureInfo.InvariantCulture))));
        return sb.Append('}').ToString();
    }
}
