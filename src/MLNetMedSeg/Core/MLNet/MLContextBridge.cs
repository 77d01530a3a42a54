using System.Runtime.CompilerServices;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using TorchSharp;

namespace MLNetMedSeg.Core.MLNet;

/// <summary>
/// What a stage takes from the <see cref="MLContext"/> it was created from, in one place: its seed, derived from the
/// context's seed and the stage's stable name when Fit starts (so creating or schema-checking other stages never shifts
/// it); the device, from <see cref="MLContext.GpuDeviceId"/> and <see cref="MLContext.FallbackToCpu"/>; and where its
/// log and progress go (<see cref="MLContext.Log"/>, and the <see cref="IProgress{T}"/> set on <c>ml.MedSeg()</c>).
/// </summary>
public static class MLContextBridge
{
    private static readonly ConditionalWeakTable<IHostEnvironment, Settings> PerContext = new();

    /// <summary>Per-MLContext settings of this library (kept as long as the MLContext lives).</summary>
    internal sealed class Settings
    {
        public IProgress<TrainingProgress>? Progress { get; set; }

        public CancellationToken CancellationToken { get; set; }
    }

    internal static Settings For(IHostEnvironment env) => PerContext.GetValue(env, _ => new Settings());

    /// <summary>
    /// The device ML.NET's settings ask for: CPU without <see cref="MLContext.GpuDeviceId"/>; CUDA device n with it,
    /// or the CPU when CUDA is missing and <see cref="MLContext.FallbackToCpu"/> is true (logged); otherwise an error
    /// saying how to get a CUDA backend.
    /// </summary>
    public static Device DeviceFor(IHostEnvironment env)
    {
        ArgumentNullException.ThrowIfNull(env);
        var (gpu, fallback) = ModelFiles.DeviceChoice(env);
        if (gpu is not int id) return torch.CPU;
        if (id < 0) throw new ArgumentOutOfRangeException(nameof(env), id, "MLContext.GpuDeviceId must be ≥ 0");
        var cuda = new Device(DeviceType.CUDA, id);
        if (torch.cuda.is_available() && id < torch.cuda.device_count()) return cuda;
        if (fallback)
        {
            env.Register("MLNetMedSeg").Start("device").Warning(
                $"MLContext.GpuDeviceId = {id} but {(torch.cuda.is_available() ? $"only {torch.cuda.device_count()} CUDA device(s) exist" : "CUDA is not available")}; running on the CPU (FallbackToCpu)");
            return torch.CPU;
        }
        Devices.EnsureAvailable(cuda);
        return cuda;
    }

    /// <summary>
    /// A library context for one stage of <paramref name="env"/>: seed = hash(MLContext seed, <paramref name="stage"/>)
    /// (a random seed when the MLContext has none), the device of <see cref="DeviceFor"/>, log lines to ML.NET's log.
    /// </summary>
    internal static MedSegContext ContextFor(IHostEnvironment env, string stage)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentException.ThrowIfNullOrEmpty(stage);
        int? seed = ModelFiles.Seed(env) is int s ? (int)(MedSegContext.MixSeed((ulong)s, stage, 0) & 0x7FFFFFFF) : null;
        var ctx = new MedSegContext(seed, DeviceFor(env));
        var host = env.Register(stage);
        var settings = For(env);
        ctx.Log += (_, e) =>
        {
            using var ch = host.Start(e.Source);
            switch (e.Level)
            {
                case Pipeline.LogLevel.Error: ch.Error(e.Message); break;
                case Pipeline.LogLevel.Warning: ch.Warning(e.Message); break;
                case Pipeline.LogLevel.Trace: ch.Trace(e.Message); break;
                default: ch.Info(e.Message); break;
            }
        };
        ctx.Progress = new ProgressToLog(host, settings);
        ctx.CancellationTokenSource = () => settings.CancellationToken;
        return ctx;
    }

    /// <summary>
    /// Progress to ML.NET's log (at most every 2 s, and at each epoch's end) and to the reporter set on
    /// <c>ml.MedSeg().Progress</c> — read at each report, so one set after the pipeline was built still hears it.
    /// </summary>
    private sealed class ProgressToLog(IHost host, Settings settings) : IProgress<TrainingProgress>
    {
        private DateTime _last = DateTime.MinValue;

        public void Report(TrainingProgress value)
        {
            settings.Progress?.Report(value);
            var now = DateTime.UtcNow;
            if (value.Step < value.StepsPerEpoch && now - _last < TimeSpan.FromSeconds(2)) return;
            _last = now;
            using var ch = host.Start("progress");
            ch.Info(value.ToString());
        }
    }

    /// <summary>
    /// Schema propagation for an estimator over ML.NET's <see cref="SchemaShape"/> (which carries no dimensions): the
    /// input's columns are read as the library would read them (an image → float32 [3,?,?], a float vector →
    /// float32 [?,?,?], an integer vector → int64 [?,?], text, numbers), <paramref name="stageSchema"/> checks them and
    /// adds its columns, and those come back as vectors of Single (or text / double). Columns the stage does not touch
    /// are returned as given, so ML.NET's later stages see their types unchanged.
    /// </summary>
    internal static SchemaShape PropagateShape(SchemaShape input, Func<Data.DataViewSchema, Data.DataViewSchema> stageSchema)
    {
        ArgumentNullException.ThrowIfNull(input);
        var b = new Data.DataViewSchema.Builder();
        foreach (var c in input)
            if (ShapeType(c) is { } t) b.AddColumn(c.Name, t);
        var inner = b.ToSchema();
        var output = MLNetData.ExplainUnreadable(() => stageSchema(inner), name =>
            input.TryFindColumn(name, out var c) && !c.IsKey ? $"{c.Kind} of {c.ItemType}" : null);
        var result = input.ToDictionary(c => c.Name);
        foreach (var c in output)
        {
            var before = inner.GetColumnOrNull(c.Name);
            if (before is not null && ReferenceEquals(before.Type, c.Type)) continue;
            result[c.Name] = c.Type switch
            {
                TensorColumnType { DType: ScalarType.Int64 } => ModelFiles.ShapeColumn(c.Name, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Int64),
                TensorColumnType => ModelFiles.ShapeColumn(c.Name, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single),
                TextColumnType => ModelFiles.ShapeColumn(c.Name, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance),
                _ => ModelFiles.ShapeColumn(c.Name, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Double),
            };
        }
        return new SchemaShape(result.Values);
    }

    /// <summary>
    /// The <see cref="SchemaShape"/> of <paramref name="schema"/>, what <c>IEstimator.GetOutputSchema</c> takes (ML.NET
    /// builds it inside <c>EstimatorChain.Fit</c>; its own <c>SchemaShape.Create</c> is not public), e.g. to check a
    /// standalone estimator against data before fitting: <c>estimator.GetOutputSchema(MLContextBridge.ShapeOf(data.Schema))</c>.
    /// </summary>
    public static SchemaShape ShapeOf(Microsoft.ML.DataViewSchema schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        return ModelFiles.Shape(schema);
    }

    private static ColumnType? ShapeType(SchemaShape.Column c)
    {
        if (c.IsKey) return null;
        bool vector = c.Kind != SchemaShape.Column.VectorKind.Scalar;
        if (!vector && c.ItemType is ImageDataViewType) return TensorColumnType.Image(3);
        if (vector && c.ItemType == NumberDataViewType.Single) return new TensorColumnType(ScalarType.Float32, [-1, -1, -1]);
        if (vector && (c.ItemType == NumberDataViewType.Int64 || c.ItemType == NumberDataViewType.Int32 || c.ItemType == NumberDataViewType.Byte))
            return TensorColumnType.ClassMask();
        if (!vector && c.ItemType is TextDataViewType) return TextColumnType.Instance;
        if (!vector && (c.ItemType is NumberDataViewType || c.ItemType is BooleanDataViewType)) return NumberColumnType.Instance;
        return null;
    }
}
