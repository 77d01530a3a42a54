using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Bench;

/// <summary>
/// Where the binding's per-op time goes, measured in one process so that machine noise hits both sides alike:
/// 10k tiny ops (a·b·c on 16 floats) through the C# API, against the same native shim entry points called with raw
/// pointers (function pointers, no SafeHandle, no managed objects). Also times the managed pieces alone: creating and
/// disposing a SafeHandle (one per result) and the AddRef/Release that marshalling does per SafeHandle argument.
/// Prints "tiny_ops_overhead api_us=… raw_us=… overhead_us=… safehandle_ns=… argref_ns=…" (per op; medians over
/// alternating rounds).
/// </summary>
internal static unsafe class TinyOpsOverhead
{
    private sealed class ProbeHandle : SafeHandle
    {
        public ProbeHandle(IntPtr p) : base(IntPtr.Zero, ownsHandle: true) => SetHandle(p);
        public override bool IsInvalid => handle == IntPtr.Zero;
        protected override bool ReleaseHandle() => true;
    }

    public static string Run(int rounds)
    {
        using var g = new Generator(0);
        using var a = rand([16], generator: g);
        using var b = rand([16], generator: g);
        using var c = rand([16], generator: g);
        var handleOf = typeof(Tensor).GetProperty("Handle", BindingFlags.NonPublic | BindingFlags.Instance)
            ?? throw new InvalidOperationException("Tensor.Handle not found");
        IntPtr Raw(Tensor t) => ((SafeHandle)handleOf.GetValue(t)!).DangerousGetHandle();
        IntPtr ha = Raw(a), hb = Raw(b), hc = Raw(c);
        IntPtr lib = NativeLibrary.Load(Path.Combine(AppContext.BaseDirectory, "libmedseg_torch.so"));
        var mul = (delegate* unmanaged<IntPtr, IntPtr, IntPtr*, int>)NativeLibrary.GetExport(lib, "mt_mul");
        var free = (delegate* unmanaged<IntPtr, void>)NativeLibrary.GetExport(lib, "mt_tensor_free");
        const int n = 5000; // iterations of two ops

        double Api()
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int k = 0; k < n; k++) { using var ab = a * b; using var y = ab * c; }
            return Stopwatch.GetElapsedTime(t0).TotalMicroseconds / (2 * n);
        }
        double RawCalls()
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int k = 0; k < n; k++)
            {
                IntPtr ab, y;
                if (mul(ha, hb, &ab) != 0 || mul(ab, hc, &y) != 0) throw new InvalidOperationException("mt_mul failed");
                free(ab);
                free(y);
            }
            return Stopwatch.GetElapsedTime(t0).TotalMicroseconds / (2 * n);
        }
        double SafeHandleLife()
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int k = 0; k < 2 * n; k++) { var h = new ProbeHandle(1); h.Dispose(); }
            return Stopwatch.GetElapsedTime(t0).TotalNanoseconds / (2 * n);
        }
        using var probe = new ProbeHandle(1);
        double ArgRef()
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int k = 0; k < 2 * n; k++) { bool added = false; probe.DangerousAddRef(ref added); probe.DangerousRelease(); }
            return Stopwatch.GetElapsedTime(t0).TotalNanoseconds / (2 * n);
        }

        var api = new List<double>(); var raw = new List<double>(); var life = new List<double>(); var arg = new List<double>();
        for (int r = 0; r < rounds + 2; r++)
        {
            double x = Api(), y = RawCalls(), z = SafeHandleLife(), w = ArgRef();
            if (r < 2) continue; // warm-up
            api.Add(x); raw.Add(y); life.Add(z); arg.Add(w);
        }
        static double Median(List<double> v) { v.Sort(); return v.Count % 2 == 1 ? v[v.Count / 2] : (v[v.Count / 2 - 1] + v[v.Count / 2]) / 2; }
        double mApi = Median(api), mRaw = Median(raw);
        return FormattableString.Invariant(
            $"api_us={mApi:F3} raw_us={mRaw:F3} overhead_us={mApi - mRaw:F3} safehandle_ns={Median(life):F0} argref_ns={Median(arg):F0}");
    }
}
