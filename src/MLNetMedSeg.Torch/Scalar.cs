using System.Globalization;
using System.Runtime.InteropServices;

namespace MLNetMedSeg.Torch;

/// <summary>
/// A number passed to libtorch by value (double, integer or bool), as <c>at::Scalar</c>. Implicit conversions
/// from the C# numeric types let operators and functions take plain numbers: <c>t * 2</c>, <c>t.clamp(0, 1)</c>.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct Scalar
{
    // Layout must match mt_scalar in native/src/common.h.
    private readonly int _kind;   // -1 none, 0 double, 1 int64, 2 bool
    private readonly int _pad;
    private readonly double _f;
    private readonly long _i;

    private Scalar(int kind, double f, long i)
    {
        _kind = kind;
        _pad = 0;
        _f = f;
        _i = i;
    }

    /// <summary>The absent scalar, for optional arguments.</summary>
    public static readonly Scalar None = new(-1, 0, 0);

    public bool IsNone => _kind < 0;
    public bool IsFloatingPoint => _kind == 0;
    public bool IsIntegral => _kind == 1;
    public bool IsBoolean => _kind == 2;

    public double ToDouble() => _kind switch { 0 => _f, 1 or 2 => _i, _ => throw new InvalidOperationException("the scalar is absent") };
    public long ToInt64() => _kind switch { 0 => (long)_f, 1 or 2 => _i, _ => throw new InvalidOperationException("the scalar is absent") };
    public bool ToBoolean() => ToDouble() != 0;

    public static implicit operator Scalar(double v) => new(0, v, 0);
    public static implicit operator Scalar(float v) => new(0, v, 0);
    public static implicit operator Scalar(long v) => new(1, 0, v);
    public static implicit operator Scalar(int v) => new(1, 0, v);
    public static implicit operator Scalar(bool v) => new(2, 0, v ? 1 : 0);

    internal static Scalar Opt(double? v) => v.HasValue ? v.Value : None;

    public override string ToString() => _kind switch
    {
        0 => _f.ToString("R", CultureInfo.InvariantCulture),
        1 => _i.ToString(CultureInfo.InvariantCulture),
        2 => _i != 0 ? "true" : "false",
        _ => "None",
    };
}
