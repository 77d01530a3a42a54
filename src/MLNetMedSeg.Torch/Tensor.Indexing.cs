using MLNetMedSeg.Torch.Native;

namespace MLNetMedSeg.Torch;

// Python-style indexing: t[0, .., 1..3], t[TensorIndex.Ellipsis, TensorIndex.None], t[mask], t[idx] = v.
public partial class Tensor
{
    /// <summary>
    /// Python-style indexing. Reading returns a view for basic indices (integers, slices, None, Ellipsis, bools)
    /// and a copy when a tensor index is involved. Writing assigns <c>value</c> (broadcast) in place,
    /// like PyTorch's <c>t[...] = value</c>; use <see cref="index_put_(Scalar, TensorIndex[])"/> to assign a number.
    /// </summary>
    public Tensor this[params TensorIndex[] indices]
    {
        get => index(indices);
        set => index_put_(value, indices);
    }

    /// <summary>The sub-tensor selected by <paramref name="indices"/> (see the indexer).</summary>
    public Tensor index(params TensorIndex[] indices)
    {
        var (kinds, ints, has, tensors) = Lower(indices);
        using var handles = new HandleArray(tensors, allowNull: true);
        return Wrap(LibTorch.mt_index(Handle, kinds, ints, has, handles.Pointers, kinds.Length, out var r), r);
    }

    /// <summary>Writes <paramref name="value"/> (broadcast) into the positions selected by <paramref name="indices"/>; returns this.</summary>
    public Tensor index_put_(Tensor value, params TensorIndex[] indices)
    {
        var (kinds, ints, has, tensors) = Lower(indices);
        using var handles = new HandleArray(tensors, allowNull: true);
        LibTorch.Check(LibTorch.mt_index_put_(Handle, kinds, ints, has, handles.Pointers, kinds.Length, value.Handle));
        return this;
    }

    /// <summary>Writes the number <paramref name="value"/> into the positions selected by <paramref name="indices"/>; returns this.</summary>
    public Tensor index_put_(Scalar value, params TensorIndex[] indices)
    {
        var (kinds, ints, has, tensors) = Lower(indices);
        using var handles = new HandleArray(tensors, allowNull: true);
        LibTorch.Check(LibTorch.mt_index_put_scalar_(Handle, kinds, ints, has, handles.Pointers, kinds.Length, value));
        return this;
    }

    // The parallel arrays the shim's make_indices() reads: kinds (0 None, 1 Ellipsis, 2 Single, 3 Bool, 4 Slice,
    // 5 Tensor), three ints per entry (start/position/bool, stop, step), has-flags for slices (1 start, 2 stop,
    // 4 step), and the tensors (null where unused).
    private static (int[] kinds, long[] ints, int[] has, Tensor?[] tensors) Lower(TensorIndex[] indices)
    {
        ArgumentNullException.ThrowIfNull(indices);
        int n = indices.Length;
        var kinds = new int[n];
        var ints = new long[3 * n];
        var has = new int[n];
        var tensors = new Tensor?[n];
        for (int k = 0; k < n; k++)
        {
            var ix = indices[k] ?? throw new ArgumentNullException($"indices[{k}]", "use TensorIndex.None for a new axis");
            switch (ix.kind)
            {
                case TensorIndex.Kind.None: kinds[k] = 0; break;
                case TensorIndex.Kind.Ellipsis: kinds[k] = 1; break;
                case TensorIndex.Kind.Single: kinds[k] = 2; ints[3 * k] = ix.start!.Value; break;
                case TensorIndex.Kind.Bool: kinds[k] = 3; ints[3 * k] = ix.boolean ? 1 : 0; break;
                case TensorIndex.Kind.Slice:
                    kinds[k] = 4;
                    if (ix.start.HasValue) { has[k] |= 1; ints[3 * k] = ix.start.Value; }
                    if (ix.stop.HasValue) { has[k] |= 2; ints[3 * k + 1] = ix.stop.Value; }
                    if (ix.step.HasValue) { has[k] |= 4; ints[3 * k + 2] = ix.step.Value; }
                    break;
                case TensorIndex.Kind.Tensor: kinds[k] = 5; tensors[k] = ix.tensor; break;
                default: throw new ArgumentOutOfRangeException(nameof(indices), ix.kind, "unknown index kind");
            }
        }
        return (kinds, ints, has, tensors);
    }
}
