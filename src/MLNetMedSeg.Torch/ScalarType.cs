namespace MLNetMedSeg.Torch;

/// <summary>Element types; the values are libtorch's <c>c10::ScalarType</c> codes (stable across 1.13 and 2.x).</summary>
public enum ScalarType
{
    Byte = 0,
    Int8 = 1,
    Int16 = 2,
    Int32 = 3,
    Int64 = 4,
    Float16 = 5,
    Float32 = 6,
    Float64 = 7,
    Bool = 11,
    BFloat16 = 15,
}

public static partial class torch
{
    public const ScalarType uint8 = ScalarType.Byte;
    public const ScalarType int8 = ScalarType.Int8;
    public const ScalarType int16 = ScalarType.Int16;
    public const ScalarType int32 = ScalarType.Int32;
    public const ScalarType int64 = ScalarType.Int64;
    public const ScalarType float16 = ScalarType.Float16;
    public const ScalarType half = ScalarType.Float16;
    public const ScalarType float32 = ScalarType.Float32;
    public const ScalarType @float = ScalarType.Float32;
    public const ScalarType float64 = ScalarType.Float64;
    public const ScalarType @double = ScalarType.Float64;
    public const ScalarType bfloat16 = ScalarType.BFloat16;
    public const ScalarType @bool = ScalarType.Bool;

    /// <summary>Bytes per element of a dtype.</summary>
    public static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool => 1,
        ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Int32 or ScalarType.Float32 => 4,
        ScalarType.Int64 or ScalarType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t), t, "unsupported dtype"),
    };

    /// <summary>True for the floating-point dtypes.</summary>
    public static bool is_floating_point(ScalarType t) =>
        t is ScalarType.Float16 or ScalarType.Float32 or ScalarType.Float64 or ScalarType.BFloat16;

    internal static ScalarType DTypeOf<T>() where T : unmanaged
    {
        if (typeof(T) == typeof(float)) return ScalarType.Float32;
        if (typeof(T) == typeof(double)) return ScalarType.Float64;
        if (typeof(T) == typeof(long)) return ScalarType.Int64;
        if (typeof(T) == typeof(int)) return ScalarType.Int32;
        if (typeof(T) == typeof(short)) return ScalarType.Int16;
        if (typeof(T) == typeof(byte)) return ScalarType.Byte;
        if (typeof(T) == typeof(sbyte)) return ScalarType.Int8;
        if (typeof(T) == typeof(bool)) return ScalarType.Bool;
        if (typeof(T) == typeof(Half)) return ScalarType.Float16;
        if (typeof(T) == typeof(BFloat16)) return ScalarType.BFloat16;
        throw new NotSupportedException($"no tensor dtype corresponds to {typeof(T).Name}");
    }
}

/// <summary>A bfloat16 value as stored (the top 16 bits of a float32); for moving raw data in and out.</summary>
public readonly struct BFloat16(ushort bits)
{
    public ushort Bits { get; } = bits;
    public static explicit operator float(BFloat16 v) => BitConverter.Int32BitsToSingle(v.Bits << 16);
    public static explicit operator BFloat16(float f)
    {
        int b = BitConverter.SingleToInt32Bits(f);
        int rounding = 0x7FFF + ((b >> 16) & 1); // round to nearest even
        return new BFloat16((ushort)((b + rounding) >> 16));
    }
    public override string ToString() => ((float)this).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
