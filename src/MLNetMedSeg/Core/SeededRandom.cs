using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core;

/// <summary>
/// Seeded random draws onto any device. TorchSharp 0.107's <see cref="Generator"/> is always a CPU generator in libtorch
/// (<c>THSGenerator_new</c> ignores its device argument; <see cref="Generator.device"/> only echoes it), and libtorch
/// refuses a CPU generator for a CUDA tensor ("Expected a 'cuda' device type for generator but found 'cpu'"). These
/// helpers therefore draw on the CPU and move the result to <c>device</c>: a CUDA run draws exactly the numbers a CPU
/// run draws (same seed, same noise, whatever the device). A null generator draws from libtorch's global generator on
/// <c>device</c>. Every seeded draw of the library goes through here.
/// </summary>
public static class SeededRandom
{
    /// <summary>U[0, 1) of <paramref name="shape"/> on <paramref name="device"/>.</summary>
    public static Tensor Rand(long[] shape, ScalarType dtype, Device device, Generator? generator)
        => Draw(device, generator, d => torch.rand(shape, dtype, d, generator: generator));

    /// <summary>N(0, 1) of <paramref name="shape"/> on <paramref name="device"/>.</summary>
    public static Tensor Randn(long[] shape, ScalarType dtype, Device device, Generator? generator)
        => Draw(device, generator, d => torch.randn(shape, dtype, d, generator: generator));

    /// <summary>Integers uniform in [<paramref name="low"/>, <paramref name="high"/>), int64, on <paramref name="device"/>.</summary>
    public static Tensor Randint(long low, long high, long[] shape, Device device, Generator? generator)
        => Draw(device, generator, d => torch.randint(low, high, shape, ScalarType.Int64, d, generator: generator));

    /// <summary>A random permutation of 0..n−1, int64, on <paramref name="device"/>.</summary>
    public static Tensor Randperm(long n, Device device, Generator? generator)
        => Draw(device, generator, d => torch.randperm(n, ScalarType.Int64, d, generator: generator));

    /// <summary>Whether two devices are the same (an unset CUDA index is device 0).</summary>
    public static bool SameDevice(Device a, Device b)
        => a.type == b.type && (a.type == DeviceType.CPU || Math.Max(a.index, 0) == Math.Max(b.index, 0));

    private static Tensor Draw(Device device, Generator? generator, Func<Device, Tensor> draw)
    {
        if (generator is null || device.type == DeviceType.CPU) return draw(device);
        using var onCpu = draw(torch.CPU);
        return onCpu.to(device);
    }
}
