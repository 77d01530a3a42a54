using MLNetMedSeg.Core;
using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core;

/// <summary>Small tensor helpers used across the library (array round trips, element sizes).</summary>
public static class TensorExtensions
{
    /// <summary>Copies the tensor's elements (any device, any layout) into a new managed array, in row-major order.</summary>
    public static T[] ToArray<T>(this Tensor t) where T : unmanaged
    {
        ArgumentNullException.ThrowIfNull(t);
        using var scope = torch.NewDisposeScope();
        var c = t.detach();
        if (c.device_type != DeviceType.CPU) c = c.cpu();
        c = c.contiguous();
        var want = ScalarTypeOf<T>();
        if (c.dtype != want)
            throw new InvalidOperationException($"ToArray<{typeof(T).Name}>: the tensor holds {c.dtype}, not {want}");
        if (c.numel() == 0) return [];   // TorchSharp's accessor throws on an empty tensor
        return c.data<T>().ToArray();
    }

    /// <summary>A CPU tensor of <paramref name="shape"/> holding a copy of <paramref name="data"/> (then moved to <paramref name="device"/>).</summary>
    public static Tensor FromArray<T>(ReadOnlySpan<T> data, long[] shape, Device? device = null) where T : unmanaged
    {
        long n = 1;
        foreach (var d in shape) n *= d;
        if (n != data.Length)
            throw new ArgumentException($"{data.Length} values do not fill a tensor of shape [{string.Join(", ", shape)}]", nameof(data));
        var t = torch.empty(shape, ScalarTypeOf<T>(), torch.CPU);
        if (n > 0) MemoryMarshal.AsBytes(data).CopyTo(t.bytes);
        if (device is null || device.type == DeviceType.CPU) return t;
        var moved = t.to(device);
        t.Dispose();
        return moved;
    }

    /// <summary>The size in bytes of one element of <paramref name="dtype"/>.</summary>
    public static int ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Bool or ScalarType.Byte or ScalarType.Int8 => 1,
        ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Int32 or ScalarType.Float32 => 4,
        ScalarType.Int64 or ScalarType.Float64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.ComplexFloat64 => 16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown element size"),
    };

    /// <summary>The tensor dtype of a managed element type.</summary>
    public static ScalarType ScalarTypeOf<T>() where T : unmanaged
        => typeof(T) == typeof(float) ? ScalarType.Float32
         : typeof(T) == typeof(double) ? ScalarType.Float64
         : typeof(T) == typeof(long) ? ScalarType.Int64
         : typeof(T) == typeof(int) ? ScalarType.Int32
         : typeof(T) == typeof(short) ? ScalarType.Int16
         : typeof(T) == typeof(byte) ? ScalarType.Byte
         : typeof(T) == typeof(sbyte) ? ScalarType.Int8
         : typeof(T) == typeof(bool) ? ScalarType.Bool
         : typeof(T) == typeof(Half) ? ScalarType.Float16
         : throw new NotSupportedException($"no tensor dtype for {typeof(T).Name}");
}
