namespace MLNetMedSeg.Torch;

/// <summary>
/// One entry of a Python-style index, as in TorchSharp: <c>t[TensorIndex.Ellipsis, 0]</c>,
/// <c>t[.., 1..3]</c>, <c>t[TensorIndex.Slice(0, null, 2)]</c>, <c>t[mask]</c>. Integers, C# <see cref="System.Index"/>
/// and <see cref="System.Range"/> values and tensors convert implicitly.
/// </summary>
/// <remarks>
/// C# ranges map to slices: <c>a..b</c> is <c>a:b</c>, <c>^k</c> counts from the end (<c>-k</c>), <c>..</c> is <c>:</c>.
/// Ranges have no step; use <see cref="Slice"/> for one.
/// </remarks>
public sealed class TensorIndex
{
    /// <summary>What an index entry selects.</summary>
    public enum Kind
    {
        /// <summary>Inserts a new dimension of size 1 (Python's <c>None</c>).</summary>
        None,
        /// <summary>Stands for as many full slices as needed (Python's <c>...</c>).</summary>
        Ellipsis,
        /// <summary>One position; removes the dimension.</summary>
        Single,
        /// <summary><c>True</c> adds a dimension of size 1; <c>False</c> one of size 0.</summary>
        Bool,
        /// <summary>A start:stop:step slice.</summary>
        Slice,
        /// <summary>Advanced indexing with an integer tensor (positions) or a bool tensor (mask).</summary>
        Tensor,
    }

    private TensorIndex(Kind kind) => kind_ = kind;

    private readonly Kind kind_;

    /// <summary>The kind of this entry.</summary>
    public Kind kind => kind_;

    /// <summary>The position of a <see cref="Kind.Single"/> entry or the start of a slice (null = from the beginning).</summary>
    public long? start { get; private init; }

    /// <summary>The (exclusive) end of a slice; null = to the end.</summary>
    public long? stop { get; private init; }

    /// <summary>The step of a slice; null = 1.</summary>
    public long? step { get; private init; }

    /// <summary>The value of a <see cref="Kind.Bool"/> entry.</summary>
    public bool boolean { get; private init; }

    /// <summary>The index tensor of a <see cref="Kind.Tensor"/> entry (not owned by this entry).</summary>
    public MLNetMedSeg.Torch.Tensor? tensor { get; private init; }

    /// <summary>Python's <c>None</c>: a new axis of size 1.</summary>
    public static TensorIndex None { get; } = new(Kind.None);

    /// <summary>Python's <c>...</c>.</summary>
    public static TensorIndex Ellipsis { get; } = new(Kind.Ellipsis);

    /// <summary>Python's <c>:</c> (the whole dimension).</summary>
    public static TensorIndex Colon { get; } = new(Kind.Slice);

    /// <summary>One position (negative counts from the end); the dimension is removed.</summary>
    public static TensorIndex Single(long index) => new(Kind.Single) { start = index };

    /// <summary>Python's <c>start:stop:step</c>; null parts take the defaults (0, end, 1). Negative start/stop count from the end; step must be positive.</summary>
    public static TensorIndex Slice(long? start = null, long? stop = null, long? step = null) => new(Kind.Slice) { start = start, stop = stop, step = step };

    /// <summary>Python's <c>True</c>/<c>False</c> index.</summary>
    public static TensorIndex Bool(bool value) => new(Kind.Bool) { boolean = value };

    /// <summary>Advanced indexing with an integer (positions) or bool (mask) tensor.</summary>
    public static TensorIndex Tensor(MLNetMedSeg.Torch.Tensor index) => new(Kind.Tensor) { tensor = index ?? throw new ArgumentNullException(nameof(index)) };

    /// <summary>An integer position.</summary>
    public static implicit operator TensorIndex(long index) => Single(index);

    /// <summary>An integer position.</summary>
    public static implicit operator TensorIndex(int index) => Single(index);

    /// <summary>A C# index: <c>^k</c> is position -k.</summary>
    public static implicit operator TensorIndex(Index index)
    {
        if (!index.IsFromEnd) return Single(index.Value);
        if (index.Value == 0) throw new ArgumentOutOfRangeException(nameof(index), "^0 designates the position past the end and cannot index a single element");
        return Single(-(long)index.Value);
    }

    /// <summary>A C# range: <c>a..b</c> is the slice <c>a:b</c>, with <c>^k</c> meaning -k.</summary>
    public static implicit operator TensorIndex(Range range)
    {
        long? start = range.Start.IsFromEnd
            ? (range.Start.Value == 0 ? long.MaxValue : -(long)range.Start.Value) // ^0.. is empty
            : range.Start.Value;
        long? stop = range.End.IsFromEnd
            ? (range.End.Value == 0 ? null : -(long)range.End.Value)
            : range.End.Value;
        return Slice(start, stop);
    }

    /// <summary>Advanced indexing with a tensor (see <see cref="Tensor(MLNetMedSeg.Torch.Tensor)"/>).</summary>
    public static implicit operator TensorIndex(MLNetMedSeg.Torch.Tensor index) => Tensor(index);

    /// <summary>Python notation of this entry, e.g. <c>1:3</c>, <c>...</c>, <c>None</c>.</summary>
    public override string ToString() => kind_ switch
    {
        Kind.None => "None",
        Kind.Ellipsis => "...",
        Kind.Single => start!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture),
        Kind.Bool => boolean ? "True" : "False",
        Kind.Slice => $"{start}:{stop}" + (step.HasValue ? $":{step}" : ""),
        _ => $"tensor{tensor}",
    };
}
