using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Core;

/// <summary>The arithmetic a training step computes in.</summary>
public enum TrainingPrecision
{
    /// <summary>Everything in float32 (default).</summary>
    Float32,

    /// <summary>
    /// Mixed precision with bfloat16 compute: forward and backward in bf16 (fast on CPUs with AVX-512 BF16/AMX and on
    /// GPUs from Ampere on), float32 master weights, optimizer state, normalisation layers and loss. bf16 has float32's
    /// exponent range, so no loss scaling is needed.
    /// </summary>
    BFloat16,

    /// <summary>
    /// Mixed precision with float16 compute (CUDA): as <see cref="BFloat16"/>, plus dynamic loss scaling (PyTorch's
    /// GradScaler rule: start at 2^16, halve and skip the step on an overflow, double after 2000 clean steps).
    /// </summary>
    Float16,
}

/// <summary>
/// Mixed-precision training without autocast (TorchSharp has none): a low-precision compute copy of a float32 master
/// network. Each step runs forward and backward on <see cref="Compute"/>, <see cref="TakeGradients"/> hands the
/// gradients to the master as float32 (unscaled, checked for overflow), the optimizer updates the master, and
/// <see cref="PushWeights"/> copies the new weights back. Normalisation layers (BatchNorm, GroupNorm) stay float32 in the
/// compute copy, so running statistics are accumulated in float32; their buffers are copied back to the master after
/// every step. Convolutions with fewer than <see cref="NarrowChannels"/> input or output channels stay float32 too
/// (libtorch's CPU bf16 kernels are wrong for them: see there). The master stays what is saved, evaluated and loaded.
/// </summary>
public sealed class MixedPrecision : IDisposable
{
    private readonly nn.Module _compute;
    private readonly (Tensor Master, Tensor Compute)[] _parameters;
    private readonly (Tensor Master, Tensor Compute)[] _buffers;
    private int _cleanSteps;
    private readonly bool _oneDnnSafe;

    /// <summary>The compute dtype (BFloat16 or Float16).</summary>
    public ScalarType ComputeType { get; }

    /// <summary>The low-precision copy the forward and backward passes run on.</summary>
    public nn.Module Compute => _compute;

    /// <summary>The current loss scale (1 for bf16).</summary>
    public double LossScale { get; private set; }

    /// <summary>Steps skipped so far because the scaled gradients overflowed (fp16 only).</summary>
    public int SkippedSteps { get; private set; }

    /// <param name="master">The float32 network the optimizer updates (not owned).</param>
    /// <param name="computeCopy">A second instance of the same architecture (owned: disposed with this object).</param>
    /// <param name="precision">BFloat16 or Float16.</param>
    public MixedPrecision(nn.Module master, nn.Module computeCopy, TrainingPrecision precision)
    {
        ArgumentNullException.ThrowIfNull(master);
        ArgumentNullException.ThrowIfNull(computeCopy);
        ComputeType = precision switch
        {
            TrainingPrecision.BFloat16 => ScalarType.BFloat16,
            TrainingPrecision.Float16 => ScalarType.Float16,
            _ => throw new ArgumentException($"mixed precision needs BFloat16 or Float16, got {precision}", nameof(precision)),
        };
        LossScale = precision == TrainingPrecision.Float16 ? 65536.0 : 1.0;
        _compute = computeCopy;
        var device = master.parameters().FirstOrDefault()?.device ?? torch.CPU;
        using (torch.NewDisposeScope())
        {
            _compute.to(device);
            _compute.to(ComputeType);
            foreach (var (_, m) in _compute.PreOrder())
            {
                if (IsNormalisation(m)) m.to(ScalarType.Float32);
                else if (m is Convolution conv && IsNarrow(conv))
                {
                    conv.to(ScalarType.Float32);
                    conv.register_forward_pre_hook((_, x) => x.dtype == ScalarType.Float32 ? x : x.to(ScalarType.Float32));
                    var type = ComputeType;
                    conv.register_forward_hook((_, _, y) => y.to(type));
                    Float32Convolutions++;
                }
            }
        }
        _oneDnnSafe = !OneDnn.HasFaultProneLayer(_compute);
        var masterState = master.StateDictInOrder();
        var computeState = _compute.StateDictInOrder();
        if (!masterState.Keys.SequenceEqual(computeState.Keys))
            throw new ArgumentException("the compute copy's state dict differs from the master's: they must be the same architecture", nameof(computeCopy));
        var masterParams = master.named_parameters().ToDictionary(e => e.name, e => (Tensor)e.parameter);
        var computeParams = _compute.named_parameters().ToDictionary(e => e.name, e => (Tensor)e.parameter);
        _parameters = masterParams.Keys.Select(k => (masterParams[k], computeParams[k])).ToArray();
        _buffers = masterState.Keys.Where(k => !masterParams.ContainsKey(k)).Select(k => (masterState[k], computeState[k])).ToArray();
        foreach (var (m, _) in _parameters)
            if (m.dtype != ScalarType.Float32) throw new ArgumentException($"the master network must be float32, got a {m.dtype} parameter", nameof(master));
        using (torch.NewDisposeScope())
        using (torch.no_grad())
        {
            foreach (var (m, c) in _parameters) c.copy_(m);
            foreach (var (m, c) in _buffers) c.copy_(m);
        }
    }

    private static bool IsNormalisation(nn.Module m) => m is BatchNorm or GroupNorm or LayerNorm;

    /// <summary>
    /// Convolutions with fewer than this many input or output channels per group stay float32 in the compute copy.
    /// libtorch 2.10's CPU bfloat16 convolutions (oneDNN, measured on an AVX-512 BF16 CPU) are wrong for such
    /// layers: the forward pass of a 3×3 convolution with 1–8 output channels (cosine 0.83–0.97 to float64), and the
    /// input gradient with 1–15 input or some 1–5 output channels (cosine 0.67–0.97; 3×3 with 1–8 outputs: NaN), while
    /// float32 matches float64 exactly. A segmentation head (→ 1 channel) and an RGB stem (3 →) are such layers; in
    /// bfloat16 the head's wrong input gradient reached every layer below it, and LinkNet diverged to a NaN loss.
    /// The kept layers are cheap (a 1×1 head, one stem convolution) and get float32 input through a forward pre-hook;
    /// their output is cast back to the compute type.
    /// </summary>
    public const int NarrowChannels = 16;

    private static bool IsNarrow(Convolution conv)
    {
        long groups = Math.Max(1, conv.groups);
        return conv.in_channels / groups < NarrowChannels || conv.out_channels / groups < NarrowChannels;
    }

    /// <summary>How many convolutions of the compute copy stay float32 (see <see cref="NarrowChannels"/>).</summary>
    public int Float32Convolutions { get; private set; }

    /// <summary>
    /// Wrap each step's forward and backward passes in this scope. Where the process turned libtorch's oneDNN off
    /// because its convolutions are wrong on this CPU (<see cref="OneDnn"/>), it turns oneDNN back on for the scope
    /// when the compute copy has no layer oneDNN gets wrong (without oneDNN, bf16 convolutions are about 10× slower);
    /// elsewhere it changes nothing.
    /// </summary>
    public IDisposable ComputeScope() => _oneDnnSafe ? OneDnn.EnableIfTurnedOff() : OneDnn.NoScope.Instance;

    /// <summary>The loss to call backward on: multiplied by the loss scale (fp16), as is (bf16).</summary>
    public Tensor Scale(Tensor loss) => LossScale == 1.0 ? loss.alias() : loss.mul(S(LossScale));

    /// <summary>
    /// Moves the compute copy's gradients to the master's parameters as float32 (divided by the loss scale) and clears
    /// the copy's. Returns false when a gradient overflowed (inf/NaN) under fp16 loss scaling: the master's gradients
    /// are then cleared, the scale halves and the caller skips the optimizer step. Under bf16 it always returns true
    /// (a non-finite loss is the trainer's to report).
    /// </summary>
    public bool TakeGradients()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        bool finite = true;
        var grads = new Tensor?[_parameters.Length];
        for (int i = 0; i < _parameters.Length; i++)
        {
            var g = _parameters[i].Compute.grad;
            grads[i] = g is null ? null : g.to(ScalarType.Float32).div_(S(LossScale));
        }
        if (ComputeType == ScalarType.Float16)
        {
            var present = grads.Where(g => g is not null).Select(g => g!.isfinite().all()).ToList();
            finite = present.Count == 0 || torch.stack(present).all().BooleanValue();
        }
        for (int i = 0; i < _parameters.Length; i++)
        {
            _parameters[i].Compute.grad = null;
            _parameters[i].Master.grad = finite ? grads[i] : null;
        }
        if (ComputeType == ScalarType.Float16)
        {
            if (!finite) { LossScale /= 2; _cleanSteps = 0; SkippedSteps++; }
            else if (++_cleanSteps >= 2000) { LossScale *= 2; _cleanSteps = 0; }
        }
        return finite;
    }

    /// <summary>Copies the master's weights into the compute copy (after each optimizer step) and the copy's running statistics back to the master.</summary>
    public void PushWeights()
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (var (m, c) in _parameters) c.copy_(m);
        foreach (var (m, c) in _buffers) m.copy_(c);
    }

    /// <summary>Disposes the compute copy.</summary>
    public void Dispose() => _compute.Dispose();
}
