using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MLNetMedSeg.Core;

/// <summary>
/// libtorch's oneDNN (MKL-DNN) CPU kernels: the switch (<c>torch.backends.mkldnn.enabled</c>, which TorchSharp 0.107
/// does not expose; read and written through libtorch's global context as <see cref="CuDnn"/> does) and a check that
/// its convolutions compute right on this machine.
/// </summary>
/// <remarks>
/// On some CPUs (seen on an AMD EPYC with AVX-512 BF16, libtorch 2.10) oneDNN's convolution backward pass is wrong for
/// layers with few output channels: the input gradient of a float32 3×3 convolution with 1–15 output channels has a
/// cosine of 0.92–0.97 to float64's, or is NaN (32 → 1), and bf16 is wrong for more shapes. Every network with a narrow
/// 3×3 layer (diffusion models' output convolutions, small test networks) then trains on wrong gradients, and some
/// diverge. libtorch's other CPU convolution kernels are exact there. <see cref="Check"/> finds out (a few
/// milliseconds, once per process): it compares a float32 convolution's gradients with oneDNN against float64's, which
/// never uses oneDNN. <see cref="TorchRuntime.Initialize"/> runs it and turns oneDNN (and NNPACK, see
/// <see cref="NnpackEnabled"/>) off where it fails: float32 convolutions are then about 20 % slower on the CPU, bf16
/// ones about 10× slower, so <see cref="MixedPrecision"/> turns oneDNN back on for its compute passes when its network
/// has no layer oneDNN gets wrong. MEDSEG_ONEDNN=on or off overrides the decision.
/// </remarks>
public static class OneDnn
{
    private const string Lib = LibTorchContext.Lib;

    [DllImport(Lib, EntryPoint = "_ZNK2at7Context17userEnabledMkldnnEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static extern bool GetEnabled(IntPtr context);

    [DllImport(Lib, EntryPoint = "_ZN2at7Context20setUserEnabledMkldnnEb")]
    private static extern void SetEnabled(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value);

    [DllImport(Lib, EntryPoint = "_ZNK2at7Context17userEnabledNNPACKEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static extern bool GetNnpackEnabled(IntPtr context);

    [DllImport(Lib, EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    private static extern void SetNnpackEnabled(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool value);

    private static readonly Lazy<OneDnnCheck> CheckResult = new(RunCheck);

    /// <summary>Whether the switch can be read and set through this libtorch build (Itanium C++ names: Linux, macOS).</summary>
    public static bool IsSupported => LibTorchContext.Pointer != IntPtr.Zero;

    /// <summary>Whether libtorch may use oneDNN kernels (<c>torch.backends.mkldnn.enabled</c>; libtorch's default is true).</summary>
    public static bool Enabled
    {
        get => IsSupported && GetEnabled(LibTorchContext.Pointer);
        set
        {
            if (!IsSupported) throw new PlatformNotSupportedException("libtorch's oneDNN switch cannot be reached through this libtorch build (its C++ names are not the Itanium ABI's)");
            SetEnabled(LibTorchContext.Pointer, value);
        }
    }

    /// <summary>
    /// Whether libtorch may use NNPACK's convolutions (<c>torch.backends.nnpack.enabled</c>). Turned off with oneDNN:
    /// without oneDNN libtorch tries NNPACK for every float32 convolution, and where NNPACK cannot start (the CPUs seen
    /// with the oneDNN fault) it logs a warning each time and falls back to its exact BLAS-based kernel anyway.
    /// </summary>
    public static bool NnpackEnabled
    {
        get => IsSupported && GetNnpackEnabled(LibTorchContext.Pointer);
        set
        {
            if (!IsSupported) throw new PlatformNotSupportedException("libtorch's NNPACK switch cannot be reached through this libtorch build (its C++ names are not the Itanium ABI's)");
            SetNnpackEnabled(LibTorchContext.Pointer, value);
        }
    }

    /// <summary>
    /// Whether oneDNN's convolution gradients are right on this machine (computed once per process, with oneDNN on,
    /// whatever <see cref="Enabled"/> is now).
    /// </summary>
    public static OneDnnCheck Check => CheckResult.Value;

    /// <summary>
    /// The probe: 3×3 convolutions with few output channels (8 → 1, 8 → 8, 4 → 4, 32 → 1), the shapes that fail where
    /// oneDNN is faulty. Each input gradient is compared in float32 with oneDNN against float64's by the cosine; below
    /// 0.9999 (float32 rounding alone gives 1.0000) is a failure.
    /// </summary>
    private static OneDnnCheck RunCheck()
    {
        if (!IsSupported) return new OneDnnCheck(true, "not checked: the oneDNN switch is not reachable in this libtorch build");
        bool was = Enabled, nnpack = NnpackEnabled;
        try
        {
            Enabled = true;
            NnpackEnabled = false;   // not what is checked; where it cannot start it would log a warning per call
            using var scope = NewDisposeScope();
            using var gen = new Generator(20261205);
            foreach (var (cin, cout, k) in new[] { (8, 1, 3), (8, 8, 3), (4, 4, 3), (32, 1, 3) })
            {
                var x = SeededRandom.Randn([2, cin, 16, 16], ScalarType.Float64, torch.CPU, gen);
                var w = SeededRandom.Randn([cout, cin, k, k], ScalarType.Float64, torch.CPU, gen).mul_(Scalars.S(0.2));
                var g = SeededRandom.Randn([2, cout, 16, 16], ScalarType.Float64, torch.CPU, gen);
                double cos = Cosine(InputGradient(x, w, g, ScalarType.Float32), InputGradient(x, w, g, ScalarType.Float64));
                if (!(cos > 0.9999))
                    return new OneDnnCheck(false, $"oneDNN's float32 {k}×{k} convolution {cin} → {cout} channels gives a wrong input gradient (cosine {cos:F4} to float64's)");
            }
            return new OneDnnCheck(true, "oneDNN's convolution gradients match float64's");
        }
        finally { Enabled = was; NnpackEnabled = nnpack; }
    }

    private static Tensor InputGradient(Tensor x, Tensor w, Tensor g, ScalarType dtype)
    {
        var xi = x.to(dtype).requires_grad_(true);
        var y = nn.functional.conv2d(xi, w.to(dtype), padding: [w.size(2) / 2, w.size(3) / 2]);
        y.mul(g.to(dtype)).sum().backward();
        return xi.grad!.to(ScalarType.Float64);
    }

    private static double Cosine(Tensor a, Tensor b)
    {
        var x = a.flatten();
        var y = b.flatten();
        return x.dot(y).item<double>() / (x.norm().item<double>() * y.norm().item<double>());
    }

    /// <summary>
    /// The decision <see cref="TorchRuntime.Initialize"/> takes: MEDSEG_ONEDNN "on" or "off" forces it; otherwise
    /// ("auto" or unset) oneDNN stays on where <see cref="Check"/> passes.
    /// </summary>
    /// <param name="setting">MEDSEG_ONEDNN's value (null when unset).</param>
    /// <param name="check">Runs the check (called only for "auto").</param>
    /// <returns>Whether oneDNN should be enabled.</returns>
    public static bool Wanted(string? setting, Func<OneDnnCheck> check)
    {
        ArgumentNullException.ThrowIfNull(check);
        return setting?.Trim().ToLowerInvariant() switch
        {
            null or "" or "auto" => check().Passed,
            "on" or "1" or "true" => true,
            "off" or "0" or "false" => false,
            _ => throw new InvalidOperationException($"MEDSEG_ONEDNN='{setting}' is not one of auto, on, off"),
        };
    }

    /// <summary>
    /// Whether the process turned oneDNN off at start because <see cref="Check"/> failed (see
    /// <see cref="TorchRuntime.Initialize"/>); false where MEDSEG_ONEDNN=off forced it off.
    /// </summary>
    public static bool TurnedOff { get; private set; }

    /// <summary>
    /// <see cref="TorchRuntime.Initialize"/>'s step: oneDNN and NNPACK off unless <see cref="Wanted"/> says on;
    /// <see cref="TurnedOff"/> when the check decided it.
    /// </summary>
    internal static void Apply(string? setting)
    {
        if (!IsSupported) return;
        bool checkDecided = false;
        if (Wanted(setting, () => { checkDecided = true; return Check; })) return;
        Enabled = false;
        NnpackEnabled = false;
        TurnedOff = checkDecided;
    }

    /// <summary>
    /// Turns oneDNN on for the returned scope's lifetime when the process turned it off because of <see cref="Check"/>;
    /// otherwise changes nothing. For networks without a layer oneDNN gets wrong (<see cref="HasFaultProneLayer"/>).
    /// Nested and concurrent scopes count: oneDNN goes back off when the last one ends.
    /// </summary>
    internal static IDisposable EnableIfTurnedOff()
        => TurnedOff ? new EnabledScope() : NoScope.Instance;

    /// <summary>Whether <paramref name="network"/> has a convolution oneDNN gets wrong on faulty CPUs (<see cref="IsFaultProne"/>).</summary>
    internal static bool HasFaultProneLayer(nn.Module network)
        => network.modules().Any(m => m is Convolution c && IsFaultProne(c));

    /// <summary>
    /// A convolution whose kernels are more than 1×1 with fewer than <see cref="MixedPrecision.NarrowChannels"/> output
    /// channels per group: the shapes oneDNN gets wrong on faulty machines, in float32 and bf16 alike.
    /// </summary>
    internal static bool IsFaultProne(Convolution c)
    {
        long groups = Math.Max(1, c.groups);
        var w = c.weight;
        if (w is null) return false;
        bool spatial = Enumerable.Range(2, (int)w.dim() - 2).Any(d => w.size(d) > 1);
        return spatial && c.out_channels / groups < MixedPrecision.NarrowChannels;
    }

    private static int _scopes;

    private sealed class EnabledScope : IDisposable
    {
        private int _disposed;

        public EnabledScope()
        {
            if (Interlocked.Increment(ref _scopes) == 1) Enabled = true;
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
            if (Interlocked.Decrement(ref _scopes) == 0) Enabled = false;
        }
    }

    internal sealed class NoScope : IDisposable
    {
        public static readonly NoScope Instance = new();
        public void Dispose() { }
    }
}

/// <summary>The outcome of <see cref="OneDnn.Check"/>.</summary>
/// <param name="Passed">Whether oneDNN's convolution gradients are right (or could not be checked).</param>
/// <param name="Message">What was found.</param>
public sealed record OneDnnCheck(bool Passed, string Message);
