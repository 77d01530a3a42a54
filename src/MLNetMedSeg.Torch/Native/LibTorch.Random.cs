using System.Runtime.InteropServices;

namespace MLNetMedSeg.Torch.Native;

// Entry points of native/src/ops_random.cpp. A null GeneratorHandle selects the device's default generator.
internal static partial class LibTorch
{
    [LibraryImport(Lib)] internal static partial int mt_bernoulli(TensorHandle a, GeneratorHandle gen, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_bernoulli_p(TensorHandle a, double p, GeneratorHandle gen, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_bernoulli_p_(TensorHandle a, double p, GeneratorHandle gen);
    [LibraryImport(Lib)] internal static partial int mt_bernoulli_tensor_(TensorHandle a, TensorHandle p, GeneratorHandle gen);
    [LibraryImport(Lib)] internal static partial int mt_normal_tt(TensorHandle mean, TensorHandle std, GeneratorHandle gen, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_normal_ts(TensorHandle mean, double std, GeneratorHandle gen, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_normal_st(double mean, TensorHandle std, GeneratorHandle gen, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_normal_size(double mean, double std, long[] shape, long n, GeneratorHandle gen, int dtype, int deviceType, int deviceIndex, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_multinomial(TensorHandle a, long numSamples, [MarshalAs(UnmanagedType.U1)] bool replacement, GeneratorHandle gen, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_random_(TensorHandle a, long from, [MarshalAs(UnmanagedType.U1)] bool hasTo, long to, GeneratorHandle gen);
}
