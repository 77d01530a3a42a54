using MLNetMedSeg.Core;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using TorchSharp.Modules;

namespace MLNetMedSeg.Pipeline;

/// <summary>Severity of a log message.</summary>
internal enum LogLevel { Trace, Info, Warning, Error }

/// <summary>A message logged by a stage.</summary>
internal sealed class LogEventArgs(LogLevel level, string source, string message) : EventArgs
{
    public LogLevel Level { get; } = level;
    public string Source { get; } = source;
    public string Message { get; } = message;
    public override string ToString() => $"[{Level}] {Source}: {Message}";
}

/// <summary>
/// What a stage's engine runs with (internal): seed stream, device, threads, logging, progress and cancellation.
/// Applications never make one: <c>ml.MedSeg()</c> gives each stage its own, derived from the <see cref="Microsoft.ML.MLContext"/>
/// (seed from the MLContext's seed and the stage's stable name, device from GpuDeviceId/FallbackToCpu, log to ml.Log;
/// see <see cref="Core.MLNet.MLContextBridge"/>).
/// Randomness: each component asks for its own seed (<see cref="DeriveSeed"/>) derived from the context's seed
/// and the component's name, so adding a stage does not change another stage's stream; nothing here touches
/// libtorch's global generator.
/// </summary>
internal sealed class MedSegContext
{
    private readonly Dictionary<string, int> _seedCounters = new(StringComparer.Ordinal);
    private readonly object _lock = new();

    /// <param name="seed">Master seed; null draws one at random (see <see cref="Seed"/> to report it).</param>
    /// <param name="device">Where tensors live and networks run (default CPU). Checked for availability now. A CUDA device
    /// switches cuDNN to its deterministic kernels (<see cref="CuDnn"/>), so that a seed reproduces a run.</param>
    /// <param name="threads">libtorch intra-op threads (default: <see cref="Environment.ProcessorCount"/>).</param>
    public MedSegContext(int? seed = null, Device? device = null, int? threads = null)
    {
        Seed = seed ?? RandomNumberGenerator.GetInt32(int.MaxValue);
        Device = device ?? torch.CPU;
        Devices.EnsureAvailable(Device);
        TorchRuntime.Initialize();
        // Same seed, same device → same result: on CUDA that needs cuDNN's deterministic kernels (and no autotuning).
        if (Device.type == DeviceType.CUDA && CuDnn.IsSupported)
        {
            CuDnn.Deterministic = true;
            CuDnn.Benchmark = false;
        }
        if (threads is int t)
        {
            if (t <= 0) throw new ArgumentOutOfRangeException(nameof(threads), t, "threads must be positive");
            torch.set_num_threads(t);
        }
    }

    /// <summary>The master seed (the one given, or the one drawn).</summary>
    public int Seed { get; }

    public Device Device { get; }

    public int Threads => torch.get_num_threads();

    /// <summary>Receives progress of long stages (epoch, step, loss, throughput, ETA).</summary>
    public IProgress<TrainingProgress>? Progress { get; set; }

    /// <summary>
    /// Cancels every training run of this context's stages (checked at every step, linked with the token a Fit call
    /// takes): set it before Fit, cancel the source to stop (<see cref="OperationCanceledException"/>; a checkpoint
    /// folder keeps the last finished epoch).
    /// </summary>
    public CancellationToken CancellationToken
    {
        get => CancellationTokenSource?.Invoke() ?? _cancellationToken;
        set => _cancellationToken = value;
    }

    private CancellationToken _cancellationToken;

    /// <summary>Where <see cref="CancellationToken"/> is read from when set (the MLContext's settings, for stages made through <c>ml.MedSeg()</c>).</summary>
    internal Func<CancellationToken>? CancellationTokenSource { get; set; }

    /// <summary>Log messages of every stage.</summary>
    public event EventHandler<LogEventArgs>? Log;

    /// <summary>
    /// A seed for the n-th component named <paramref name="component"/> created from this context: a hash of
    /// (master seed, name, n). Same context seed and same construction order per name → same seeds.
    /// </summary>
    public ulong DeriveSeed(string component)
    {
        int n;
        lock (_lock)
        {
            n = _seedCounters.GetValueOrDefault(component);
            _seedCounters[component] = n + 1;
        }
        return MixSeed((ulong)Seed, component, n);
    }

    /// <summary>A deterministic 64-bit seed from a base seed, a name and an index (see <see cref="Seeds.Mix"/>).</summary>
    public static ulong MixSeed(ulong baseSeed, string name, int index) => Seeds.Mix(baseSeed, name, index);

    /// <summary>
    /// A context for one independent part of a run (e.g. one method of a comparison): its seed comes from this
    /// context's seed and <paramref name="name"/> only, not from what was created before, so the part gives the same
    /// result whichever other parts run beside it and in whatever order (and so in separate processes). Device,
    /// progress, log and cancellation are this context's.
    /// </summary>
    public MedSegContext Fork(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var child = new MedSegContext((int)(MixSeed((ulong)Seed, "fork:" + name, 0) & 0x7FFFFFFF), Device)
        {
            Progress = Progress,
            CancellationTokenSource = () => CancellationToken,
        };
        child.Log += (sender, e) => Log?.Invoke(sender, e);
        return child;
    }

    /// <summary>A libtorch generator on this context's device for one component.</summary>
    public Generator CreateGenerator(string component) => new(DeriveSeed(component));   // libtorch CPU generator: see Core.SeededRandom

    /// <summary>A managed random source for one component (shuffling, splits).</summary>
    public Random CreateRandom(string component) => new((int)(DeriveSeed(component) & 0x7FFFFFFF));

    /// <summary>Raises <see cref="Log"/>.</summary>
    public void WriteLog(LogLevel level, string source, string message) => Log?.Invoke(this, new LogEventArgs(level, source, message));

    /// <summary>Reports progress to <see cref="Progress"/>.</summary>
    public void ReportProgress(TrainingProgress progress) => Progress?.Report(progress);
}
