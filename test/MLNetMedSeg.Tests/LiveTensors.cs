using MLNetMedSeg.Core;

namespace MLNetMedSeg.Tests;

/// <summary>
/// The live-tensor count for leak checks. <see cref="TorchRuntime.LiveTensorCount"/> is process-wide, and the finalizer
/// thread lowers it whenever it releases a tensor that earlier code (usually a test's own setup) left to the garbage
/// collector; a raw before/after comparison then fails by that many tensors at random. <see cref="Settled"/> runs those
/// finalizers first, so the difference between two readings is what the code in between kept alive.
/// </summary>
internal static class LiveTensors
{
    /// <summary>Live tensors after a full collection has finalized everything already unreachable.</summary>
    public static long Settled()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        return TorchRuntime.LiveTensorCount;
    }
}
