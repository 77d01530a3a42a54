using System.Runtime.InteropServices;

namespace MLNetMedSeg.Torch.Native;

// Entry points of native/src/ops_math.cpp.
internal static partial class LibTorch
{
    [LibraryImport(Lib)] internal static partial int mt_add(TensorHandle a, TensorHandle b, Scalar alpha, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_add_(TensorHandle a, TensorHandle b, Scalar alpha);
    [LibraryImport(Lib)] internal static partial int mt_add_scalar(TensorHandle a, Scalar b, Scalar alpha, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_add_scalar_(TensorHandle a, Scalar b, Scalar alpha);
    [LibraryImport(Lib)] internal static partial int mt_sub(TensorHandle a, TensorHandle b, Scalar alpha, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_sub_(TensorHandle a, TensorHandle b, Scalar alpha);
    [LibraryImport(Lib)] internal static partial int mt_sub_scalar(TensorHandle a, Scalar b, Scalar alpha, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_sub_scalar_(TensorHandle a, Scalar b, Scalar alpha);
    [LibraryImport(Lib)] internal static partial int mt_rsub_scalar(TensorHandle a, Scalar b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_mul(TensorHandle a, TensorHandle b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_mul_scalar(TensorHandle a, Scalar b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_mul_(TensorHandle a, TensorHandle b);
    [LibraryImport(Lib)] internal static partial int mt_mul_scalar_(TensorHandle a, Scalar b);
    [LibraryImport(Lib)] internal static partial int mt_div(TensorHandle a, TensorHandle b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_div_scalar(TensorHandle a, Scalar b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_div_(TensorHandle a, TensorHandle b);
    [LibraryImport(Lib)] internal static partial int mt_div_scalar_(TensorHandle a, Scalar b);
    [LibraryImport(Lib)] internal static partial int mt_rdiv_scalar(TensorHandle a, Scalar b, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_sum_all(TensorHandle a, out IntPtr r);
    [LibraryImport(Lib)] internal static partial int mt_mean_all(TensorHandle a, out IntPtr r);
}
