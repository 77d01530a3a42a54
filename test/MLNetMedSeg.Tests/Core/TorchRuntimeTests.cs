using System.Runtime.CompilerServices;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core;

/// <summary><see cref="TorchRuntime"/>: the finalizer-based leak counter and the allocator policy decision.</summary>
[TestClass]
public sealed class TorchRuntimeTests
{
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void DropOneTensorUndisposed() => _ = ones(3);

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void MakeAndDisposeTensors()
    {
        using var a = ones(3);
        using var b = a + S(1);
        using (NewDisposeScope()) { _ = a * b; }
    }

    [TestMethod]
    public void FinalizedTensorCountCountsExactlyTheTensorsNobodyDisposed()
    {
        long before = TorchRuntime.FinalizedTensorCount;
        DropOneTensorUndisposed();
        long afterOne = TorchRuntime.FinalizedTensorCount;
        Assert.AreEqual(before + 1, afterOne, "one tensor left to the garbage collector");
        MakeAndDisposeTensors();
        Assert.AreEqual(afterOne, TorchRuntime.FinalizedTensorCount, "disposed tensors (by using or by a scope) are not counted");
        for (int k = 0; k < 3; k++) DropOneTensorUndisposed();
        Assert.AreEqual(afterOne + 3, TorchRuntime.FinalizedTensorCount);
        Assert.AreEqual(afterOne + 3, TorchRuntime.FinalizedTensorCount, "reading it does not move it");
    }

    private static Func<string, string?> Env(params (string Name, string Value)[] vars)
    {
        var d = vars.ToDictionary(v => v.Name, v => v.Value);
        return name => d.TryGetValue(name, out var v) ? v : null;
    }

    [TestMethod]
    public void MallocPolicyIsWantedOnLinuxUnlessTheEnvironmentSaysOtherwise()
    {
        Assert.IsTrue(TorchRuntime.MallocPolicyWanted(Env(), isLinux: true), "applied by default on Linux");
        Assert.IsFalse(TorchRuntime.MallocPolicyWanted(Env(), isLinux: false), "glibc's knobs only exist on Linux");
        Assert.IsFalse(TorchRuntime.MallocPolicyWanted(Env(("MEDSEG_MALLOC_TUNING", "0")), isLinux: true), "opted out");
        Assert.IsTrue(TorchRuntime.MallocPolicyWanted(Env(("MEDSEG_MALLOC_TUNING", "1")), isLinux: true));
        Assert.IsFalse(TorchRuntime.MallocPolicyWanted(Env(("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")), isLinux: true));
        Assert.IsFalse(TorchRuntime.MallocPolicyWanted(Env(("GLIBC_TUNABLES", "glibc.pthread.rseq=0:glibc.malloc.trim_threshold=0")), isLinux: true));
        Assert.IsTrue(TorchRuntime.MallocPolicyWanted(Env(("GLIBC_TUNABLES", "glibc.pthread.rseq=0")), isLinux: true), "other tunables do not matter");
        foreach (var v in new[] { "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_" })
        {
            Assert.IsFalse(TorchRuntime.MallocPolicyWanted(Env((v, "131072")), isLinux: true), v);
            Assert.IsFalse(TorchRuntime.MallocPolicyWanted(Env((v, "")), isLinux: true), v + " set, even empty");
        }
        Assert.ThrowsException<ArgumentNullException>(() => TorchRuntime.MallocPolicyWanted(null!, true));

        // This process: Initialize applied what the decision says (glibc here, so mallopt exists).
        TorchRuntime.Initialize();
        TorchRuntime.Initialize();   // idempotent
        bool wanted = TorchRuntime.MallocPolicyWanted(Environment.GetEnvironmentVariable, OperatingSystem.IsLinux());
        Assert.AreEqual(wanted, TorchRuntime.MallocPolicyApplied);
    }
}
