using System.Runtime.InteropServices;

namespace MLNetMedSeg.Torch.Native;

// Entry points of native/src/optim.cpp.
internal static partial class LibTorch
{
    [LibraryImport(Lib)]
    internal static partial int mt_sgd_step(TensorHandle param, TensorHandle grad, TensorHandle buf, double lr, double momentum,
        double dampening, double weightDecay, [MarshalAs(UnmanagedType.U1)] bool nesterov, [MarshalAs(UnmanagedType.U1)] bool maximize, out IntPtr newBuf);

    [LibraryImport(Lib)]
    internal static partial int mt_adam_step(TensorHandle param, TensorHandle grad, TensorHandle expAvg, TensorHandle expAvgSq,
        TensorHandle maxExpAvgSq, long step, double lr, double beta1, double beta2, double eps, double weightDecay,
        [MarshalAs(UnmanagedType.U1)] bool amsgrad, [MarshalAs(UnmanagedType.U1)] bool decoupledWeightDecay, [MarshalAs(UnmanagedType.U1)] bool maximize);

    [LibraryImport(Lib)]
    internal static unsafe partial int mt_adam_step_foreach(IntPtr* parameters, IntPtr* grads, IntPtr* expAvgs, IntPtr* expAvgSqs,
        long* steps, long n, double lr, double beta1, double beta2, double eps, double weightDecay,
        [MarshalAs(UnmanagedType.U1)] bool decoupledWeightDecay, [MarshalAs(UnmanagedType.U1)] bool maximize);

    [LibraryImport(Lib)]
    internal static partial int mt_rmsprop_step(TensorHandle param, TensorHandle grad, TensorHandle squareAvg, TensorHandle gradAvg,
        TensorHandle momentumBuffer, double lr, double alpha, double eps, double weightDecay, double momentum,
        [MarshalAs(UnmanagedType.U1)] bool centered, [MarshalAs(UnmanagedType.U1)] bool maximize);

    [LibraryImport(Lib)]
    internal static unsafe partial int mt_clip_grad_norm_(IntPtr* parameters, long n, double maxNorm, double normType, out double totalNorm);
}
