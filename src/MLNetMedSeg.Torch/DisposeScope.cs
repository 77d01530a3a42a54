namespace MLNetMedSeg.Torch;

/// <summary>
/// Deterministic release of native tensors, as TorchSharp's dispose scopes: every tensor created on a thread
/// while a scope is open belongs to the innermost open scope and is disposed when that scope is disposed,
/// unless it was moved out (<see cref="Tensor.MoveToOuterDisposeScope"/>) or detached
/// (<see cref="Tensor.DetachFromDisposeScope"/>). Parameters and optimizer state are created detached.
/// <code>
/// using (torch.NewDisposeScope())
/// {
///     var y = (x * 2 + 1).relu();          // temporaries die with the scope
///     result = y.sum().MoveToOuterDisposeScope();
/// }
/// </code>
/// </summary>
public sealed class DisposeScope : IDisposable
{
    [ThreadStatic] private static DisposeScope? _current;

    private readonly HashSet<Tensor> _tensors = new(ReferenceEqualityComparer.Instance);
    private readonly int _threadId;
    private bool _disposed;

    internal DisposeScope()
    {
        Outer = _current;
        _threadId = Environment.CurrentManagedThreadId;
        _current = this;
        Native.PendingRelease.Drain();
    }

    /// <summary>The innermost open scope on this thread, or null.</summary>
    public static DisposeScope? Current => _current;

    /// <summary>The scope that was current when this one was opened.</summary>
    public DisposeScope? Outer { get; }

    /// <summary>How many tensors this scope currently owns.</summary>
    public int Count => _tensors.Count;

    public bool IsDisposed => _disposed;

    internal static void Register(Tensor t)
    {
        var s = _current;
        if (s is null) return;
        s._tensors.Add(t);
        t.OwningScope = s;
    }

    internal void Remove(Tensor t) => _tensors.Remove(t);

    /// <summary>Takes ownership of a tensor (removing it from the scope that owned it, if any).</summary>
    public Tensor Attach(Tensor t)
    {
        ThrowIfDisposed();
        t.OwningScope?.Remove(t);
        _tensors.Add(t);
        t.OwningScope = this;
        return t;
    }

    /// <summary>Moves the tensors to the outer scope (or detaches them when there is none).</summary>
    public void MoveToOuter(params Tensor[] tensors)
    {
        foreach (var t in tensors) t.MoveToOuterDisposeScope();
    }

    /// <summary>Removes the tensors from every scope: the caller now owns them.</summary>
    public void Detach(params Tensor[] tensors)
    {
        foreach (var t in tensors) t.DetachFromDisposeScope();
    }

    /// <summary>Disposes every owned tensor except the given ones, which stay owned by this scope.</summary>
    public void DisposeEverythingBut(params Tensor[] keep)
    {
        var keepSet = new HashSet<Tensor>(keep, ReferenceEqualityComparer.Instance);
        foreach (var t in _tensors.Where(t => !keepSet.Contains(t)).ToList())
        {
            t.OwningScope = null;
            _tensors.Remove(t);
            t.Dispose();
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        if (Environment.CurrentManagedThreadId != _threadId)
            throw new InvalidOperationException("a DisposeScope must be disposed on the thread that opened it");
        // Close any inner scope that was left open, innermost first.
        while (_current is not null && !ReferenceEquals(_current, this))
        {
            if (!IsOuterOf(_current)) break;
            _current.Dispose();
        }
        _disposed = true;
        var owned = _tensors.ToArray();
        _tensors.Clear();
        foreach (var t in owned)
        {
            t.OwningScope = null;
            t.Dispose();
        }
        if (ReferenceEquals(_current, this)) _current = Outer;
        Native.PendingRelease.Drain();
    }

    private bool IsOuterOf(DisposeScope inner)
    {
        for (var s = inner.Outer; s is not null; s = s.Outer)
            if (ReferenceEquals(s, this)) return true;
        return false;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);
}

public static partial class torch
{
    /// <summary>Opens a dispose scope on this thread; see <see cref="DisposeScope"/>.</summary>
    public static DisposeScope NewDisposeScope() => new();
}
