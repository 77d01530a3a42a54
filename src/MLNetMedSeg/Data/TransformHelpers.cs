namespace MLNetMedSeg.Data;

/// <summary>Schema checks shared by the data transforms.</summary>
internal static class TransformHelpers
{
    /// <summary>
    /// Checks that <paramref name="column"/> is a mask column — binary float32 [1,H,W] (returns false) or class int64
    /// [H,W] (returns true) — else throws <see cref="SchemaException"/> naming it.
    /// </summary>
    public static bool RequireMask(DataViewSchema schema, string column, string consumer)
    {
        var c = schema.GetColumnOrNull(column) ?? throw SchemaException.Missing(column, schema, consumer);
        if (c.Type is TensorColumnType t)
        {
            if (t.DType == ScalarType.Float32 && t.Shape.Length == 3 && t.Shape[0] is 1 or -1) return false;
            if (t.DType == ScalarType.Int64 && t.Shape.Length == 2) return true;
        }
        throw new SchemaException($"{consumer}: column '{column}' has type {c.Type} but a mask is required ({TensorColumnType.BinaryMask()} or {TensorColumnType.ClassMask()})", column);
    }

    /// <summary>The (H, W) dims of a tensor column type (last two).</summary>
    public static long[] WithSpatial(long[] shape, long h, long w)
    {
        var s = (long[])shape.Clone();
        s[^2] = h;
        s[^1] = w;
        return s;
    }
}
