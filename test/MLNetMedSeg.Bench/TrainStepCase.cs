using System.Diagnostics;
using MLNetMedSeg.Core;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Bench;

/// <summary>Which network a training-step case trains, and how (see <see cref="TrainStepCase"/>).</summary>
internal sealed record TrainStepSpec(string Network, SegmentationArchitecture? Architecture, bool Bf16, bool ChannelsLast);

/// <summary>The result of a training-step case.</summary>
internal sealed record TrainStepResult(double Ms, long Parameters, double Flops, string? ChannelsLast);

/// <summary>
/// One training step — forward, soft-Dice loss, backward, Adam (lr 1e-3) — of a segmentation network at batch 8 on
/// random 3-channel images and binary masks, as unet_train_step / seg_step_* in build/bench/bench_torch.py.
/// <para>unet_train_step trains the 7.76 M U-Net of <see cref="BenchUNet"/>; seg_step_&lt;arch&gt; a library backbone with
/// default options (<see cref="SegmentationNetworks.Create(SegmentationNetworkOptions, Generator?)"/>). Suffixes, in any order:</para>
/// <list type="bullet">
/// <item>_channels_last: the input and every 4-D parameter in channels-last layout (TorchSharp has no memory-format
/// call: <c>t.permute(0,2,3,1).contiguous().permute(0,3,1,2)</c>, set into the parameter in place); PyTorch's twin is
/// <c>.to(memory_format=torch.channels_last)</c> on the network and the input. The case reports how many convolution
/// outputs came out channels-last and how many 4-D parameters still are after the timed steps.</item>
/// <item>_bf16: mixed precision, what PyTorch's <c>torch.autocast('cpu', dtype=torch.bfloat16)</c> gives and
/// TorchSharp lacks (see <see cref="MixedPrecisionStep"/>).</item>
/// </list>
/// BENCH_BREAKDOWN=1 prints where a step's time goes (forward + loss, backward, update) to stderr.
/// </summary>
internal static class TrainStepCase
{
    public static bool TryParse(string name, out TrainStepSpec spec)
    {
        spec = null!;
        bool bf16 = false, cl = false;
        string rest = name;
        while (true)
        {
            if (rest.EndsWith("_bf16", StringComparison.Ordinal)) { bf16 = true; rest = rest[..^5]; }
            else if (rest.EndsWith("_channels_last", StringComparison.Ordinal)) { cl = true; rest = rest[..^14]; }
            else break;
        }
        SegmentationArchitecture? arch;
        switch (rest)
        {
            case "unet_train_step": arch = null; break;
            case "seg_step_unet": arch = SegmentationArchitecture.UNet; break;
            case "seg_step_unetpp": arch = SegmentationArchitecture.UNetPlusPlus; break;
            case "seg_step_linknet": arch = SegmentationArchitecture.LinkNet; break;
            case "seg_step_deeplabv3plus": arch = SegmentationArchitecture.DeepLabV3Plus; break;
            default: return false;
        }
        spec = new TrainStepSpec(rest, arch, bf16, cl);
        return true;
    }

    /// <summary>The network of <paramref name="spec"/>, weights from seed 0 (fp32, CPU, training mode).</summary>
    private static nn.Module<Tensor, Tensor> Create(TrainStepSpec spec)
    {
        if (spec.Architecture is { } arch)
        {
            using var g = new Generator(0);
            return SegmentationNetworks.Create(new SegmentationNetworkOptions { Architecture = arch }, g);
        }
        manual_seed(0);
        return ModuleExtensions.Build(() => new BenchUNet());
    }

    public static TrainStepResult Run(TrainStepSpec spec, Device dev, int size, int batch, Func<Action, double> medianMs)
    {
        using var net = Create(spec);
        net.MoveTo(dev);
        long parameters = net.ParameterCount();
        using var g = new Generator(0);
        using var x0 = rand([batch, 3, size, size], generator: g);
        using var r = rand([batch, 1, size, size], generator: g);
        using var y0 = (r > S(0.5)).to(ScalarType.Float32);
        using var y = y0.to(dev);
        using var x = spec.ChannelsLast ? ToChannelsLast(x0.to(dev)) : x0.to(dev);
        if (spec.ChannelsLast) ChannelsLastInPlace(net);
        var (flops, clConvs, convs) = CountForward(net, x);
        flops *= 3;   // forward + backward (input and weight gradients): the usual 3x rule

        using IStepper stepper = spec.Bf16 ? new MixedPrecisionStep(net, Create(spec), dev, spec.ChannelsLast) : new Fp32Step(net);
        void Step()
        {
            using var scope = NewDisposeScope();
            stepper.Backward(stepper.Forward(x, y));
            stepper.Update();
        }
        double ms = medianMs(Step);
        if (Environment.GetEnvironmentVariable("BENCH_BREAKDOWN") == "1") Breakdown(stepper, x, y);

        string? cl = null;
        if (spec.ChannelsLast)
        {
            var w4 = net.parameters().Where(p => p.dim() == 4).ToList();
            cl = $"{clConvs}/{convs},{w4.Count(IsChannelsLast)}/{w4.Count}";
            if (clConvs != convs || w4.Any(p => !IsChannelsLast(p)))
                Console.Error.WriteLine($"warning: channels-last not kept everywhere: conv outputs, parameters {cl}");
        }
        return new TrainStepResult(ms, parameters, flops, cl);
    }

    /// <summary>
    /// The issue's two in-process targets measured so that machine noise hits every term alike: the fp32 U-Net step
    /// (unet_train_step), its channels-last, bf16 and bf16 + channels-last variants and a 2048³ fp32 matmul, one timed
    /// run of each per round, round after round (after <paramref name="warmup"/> rounds). Returns the median time of
    /// each (ms), and the medians of the per-round quotients: the fp32 step's GFLOP/s over the matmul's (fraction of
    /// the sgemm peak) and fp32 time over each variant's time (speed-ups).
    /// </summary>
    public static string RunInterleaved(Device dev, int size, int batch, int warmup, int iters)
    {
        string[] names = ["unet_train_step", "unet_train_step_channels_last", "unet_train_step_bf16", "unet_train_step_bf16_channels_last"];
        var nets = new List<nn.Module<Tensor, Tensor>>();
        var steppers = new List<IStepper>();
        var inputs = new List<Tensor>();
        using var g = new Generator(0);
        using var x0 = rand([batch, 3, size, size], generator: g);
        using var r = rand([batch, 1, size, size], generator: g);
        using var y0 = (r > S(0.5)).to(ScalarType.Float32);
        using var y = y0.to(dev);
        double flops = 0;
        foreach (var name in names)
        {
            TryParse(name, out var spec);
            var net = Create(spec);
            net.MoveTo(dev);
            var x = spec.ChannelsLast ? ToChannelsLast(x0.to(dev)) : x0.to(dev);
            if (spec.ChannelsLast) ChannelsLastInPlace(net);
            if (flops == 0) flops = 3 * CountForward(net, x).Flops;
            nets.Add(net);
            inputs.Add(x);
            steppers.Add(spec.Bf16 ? new MixedPrecisionStep(net, Create(spec), dev, spec.ChannelsLast) : new Fp32Step(net));
        }
        const int n = 2048;
        using var a = randn([n, n], generator: g).to(dev);
        using var b = randn([n, n], generator: g).to(dev);
        var times = names.Select(_ => new List<double>()).Append(new List<double>()).ToArray();   // last: sgemm
        var cpu = names.Select(_ => new List<double>()).Append(new List<double>()).ToArray();
        void Sync() { if (dev.type == DeviceType.CUDA) cuda.synchronize(); }
        for (int round = 0; round < warmup + iters; round++)
        {
            for (int k = 0; k <= names.Length; k++)
            {
                double c0 = CpuClock.Ms();
                long t0 = Stopwatch.GetTimestamp();
                using (var scope = NewDisposeScope())
                {
                    if (k == names.Length) a.mm(b);
                    else
                    {
                        steppers[k].Backward(steppers[k].Forward(inputs[k], y));
                        steppers[k].Update();
                    }
                    Sync();
                }
                double wall = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                double cpuMs = CpuClock.Ms() - c0;
                if (round >= warmup)
                {
                    times[k].Add(wall);
                    cpu[k].Add(cpuMs);
                }
            }
        }
        static double Median(IEnumerable<double> v)
        {
            var l = v.OrderBy(t => t).ToList();
            return l.Count % 2 == 1 ? l[l.Count / 2] : (l[l.Count / 2 - 1] + l[l.Count / 2]) / 2;
        }
        var idx = Enumerable.Range(0, iters).ToList();
        var sb = new System.Text.StringBuilder();
        sb.Append(FormattableString.Invariant($"gflop={flops / 1e9:F1}"));
        // Each quotient twice: from wall-clock times, and (suffix _cpu) from CPU times (with one thread the work
        // itself, robust to other processes on the machine).
        foreach (var (t, suffix) in new[] { (times, ""), (cpu, "_cpu") })
        {
            double Gflops(int i) => 2.0 * n * n * n / (t[^1][i] * 1e6);
            sb.Append(FormattableString.Invariant($" sgemm_gflops{suffix}={Median(idx.Select(Gflops)):F1}"));
            for (int k = 0; k < names.Length; k++) sb.Append(FormattableString.Invariant($" {names[k]}_ms{suffix}={Median(t[k]):F1}"));
            sb.Append(FormattableString.Invariant($" peak_frac{suffix}={Median(idx.Select(i => flops / (t[0][i] * 1e6) / Gflops(i))):F3}"));
            for (int k = 1; k < names.Length; k++)
                sb.Append(FormattableString.Invariant($" speedup_{names[k]["unet_train_step_".Length..]}{suffix}={Median(idx.Select(i => t[0][i] / t[k][i])):F2}"));
            sb.Append(FormattableString.Invariant($" speedup_bf16_channels_last_vs_channels_last{suffix}={Median(idx.Select(i => t[1][i] / t[3][i])):F2}"));
        }
        foreach (var s in steppers) s.Dispose();
        foreach (var net in nets) net.Dispose();
        foreach (var x in inputs) x.Dispose();
        return sb.ToString();
    }

    /// <summary>Prints the median time of each phase of 5 steps to stderr (BENCH_BREAKDOWN=1): where a step's time goes.</summary>
    private static void Breakdown(IStepper stepper, Tensor x, Tensor y)
    {
        var t = new[] { new List<double>(), new List<double>(), new List<double>() };
        var losses = new List<double>();
        for (int k = 0; k < 5; k++)
        {
            using var scope = NewDisposeScope();
            long t0 = Stopwatch.GetTimestamp();
            var loss = stepper.Forward(x, y);
            long t1 = Stopwatch.GetTimestamp();
            losses.Add(loss.ToDouble());
            stepper.Backward(loss);
            long t2 = Stopwatch.GetTimestamp();
            stepper.Update();
            long t3 = Stopwatch.GetTimestamp();
            t[0].Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            t[1].Add(Stopwatch.GetElapsedTime(t1, t2).TotalMilliseconds);
            t[2].Add(Stopwatch.GetElapsedTime(t2, t3).TotalMilliseconds);
        }
        static double Median(List<double> v) { v.Sort(); return v[v.Count / 2]; }
        Console.Error.WriteLine(FormattableString.Invariant(
            $"breakdown (median of 5 steps): forward+loss {Median(t[0]):F1} ms, backward {Median(t[1]):F1} ms, update {Median(t[2]):F1} ms; losses {string.Join(" ", losses.Select(l => l.ToString("F4")))}"));
    }

    /// <summary>Soft Dice loss of logits against a binary target (ε = 1), as soft_dice_loss in bench_torch.py.</summary>
    public static Tensor SoftDiceLoss(Tensor logits, Tensor target, double eps = 1.0)
    {
        var p = logits.sigmoid();
        var inter = (p * target).sum();
        return S(1) - (S(2) * inter + S(eps)) / (p.sum() + target.sum() + S(eps));
    }

    /// <summary>(N, C, H, W) in channels-last layout (strides H·W·C, 1, W·C, C): what TorchSharp lacks as memory_format.</summary>
    public static Tensor ToChannelsLast(Tensor t)
    {
        using var nhwc = t.permute(0, 2, 3, 1);
        using var c = nhwc.contiguous();
        return c.permute(0, 3, 1, 2);
    }

    /// <summary>Whether (N, C, H, W) <paramref name="t"/> has channels-last strides (those of size-1 dimensions do not matter).</summary>
    public static bool IsChannelsLast(Tensor t)
    {
        if (t.dim() != 4) return false;
        long n = t.size(0), c = t.size(1), h = t.size(2), w = t.size(3);
        return (c == 1 || t.stride(1) == 1) && (w == 1 || t.stride(3) == c) && (h == 1 || t.stride(2) == w * c)
            && (n == 1 || t.stride(0) == h * w * c);
    }

    /// <summary>Every 4-D parameter of <paramref name="module"/> re-laid out channels-last in place (set_), as PyTorch's module.to(memory_format=...).</summary>
    public static void ChannelsLastInPlace(nn.Module module)
    {
        using var scope = NewDisposeScope();
        using var ng = no_grad();
        foreach (var p in module.parameters())
            if (p.dim() == 4 && !IsChannelsLast(p)) p.set_(ToChannelsLast(p));
    }

    /// <summary>
    /// Forward FLOPs of one call (2 per multiply-add of every Conv2d, ConvTranspose2d and Linear; BatchNorm,
    /// activations, pooling and the loss not counted), counted by forward hooks in a no-grad forward of
    /// <paramref name="x"/>; also how many convolution outputs (with more than one channel) were channels-last.
    /// </summary>
    public static (double Flops, int ChannelsLastConvs, int Convs) CountForward(nn.Module<Tensor, Tensor> net, Tensor x)
    {
        double flops = 0;
        int cl = 0, convs = 0;
        var removers = new List<Action>();
        var notCl = new List<string>();
        foreach (var (name, m) in net.PreOrder())
        {
            if (m is Convolution conv)
            {
                long k = conv.kernel_size.Aggregate(1L, (a, b) => a * b);
                removers.Add(conv.register_forward_hook((mod, input, output) =>
                {
                    flops += conv.transposed
                        ? 2.0 * input.numel() * (conv.out_channels / conv.groups) * k
                        : 2.0 * output.numel() * (conv.in_channels / conv.groups) * k;
                    if (output.size(1) > 1)
                    {
                        convs++;
                        if (IsChannelsLast(output)) cl++;
                        else if (IsChannelsLast(x)) notCl.Add($"{name} (input {(IsChannelsLast(input) ? "" : "not ")}channels-last)");
                    }
                    return output;
                }).remove);
            }
            else if (m is Linear lin)
                removers.Add(lin.register_forward_hook((mod, input, output) =>
                {
                    flops += 2.0 * output.numel() * lin.in_features;
                    return output;
                }).remove);
        }
        using (var scope = NewDisposeScope())
        using (no_grad())
            net.call(x);
        foreach (var remove in removers) remove();
        if (notCl.Count > 0) Console.Error.WriteLine($"convolutions whose output is not channels-last: {string.Join(", ", notCl)}");
        return (flops, cl, convs);
    }
}

/// <summary>A training step in phases (forward + loss, backward, optimizer update), for the timing breakdown.</summary>
internal interface IStepper : IDisposable
{
    Tensor Forward(Tensor x, Tensor y);
    void Backward(Tensor loss);
    void Update();
}

/// <summary>The plain fp32 step: Adam over the network's parameters; gradients cleared after the update.</summary>
internal sealed class Fp32Step(nn.Module<Tensor, Tensor> net) : IStepper
{
    private readonly optim.Optimizer _opt = optim.Adam(net.parameters(), lr: 1e-3);

    public Tensor Forward(Tensor x, Tensor y) => TrainStepCase.SoftDiceLoss(net.call(x), y);

    public void Backward(Tensor loss) => loss.backward();

    private readonly Parameter[] _params = net.parameters().ToArray();
    private readonly bool _zeroInPlace = Environment.GetEnvironmentVariable("BENCH_ZERO_GRAD") == "zero";

    public void Update()
    {
        _opt.step();
        if (_zeroInPlace) _opt.ZeroGrad();   // TorchSharp's zero_grad: fills the gradients with zeros
        else foreach (var p in _params) p.grad = null;   // set to none, as PyTorch's zero_grad(set_to_none=True)
    }

    public void Dispose() => _opt.Dispose();
}

/// <summary>
/// Mixed-precision training without autocast (TorchSharp has none): fp32 master weights and a bf16 compute copy of
/// the same network. A step runs forward and backward on the bf16 copy (input cast to bf16, the logits cast back and
/// the loss computed in fp32), copies its gradients into the fp32 master's .grad, runs Adam on the master, and copies
/// the updated master weights into the bf16 copy. BatchNorm stays in the bf16 copy (bf16 statistics buffers).
/// This is what autocast + fp32 parameters amount to in PyTorch (there the bf16 weight casts happen inside the
/// forward); the update and the optimizer state stay in fp32.
/// </summary>
internal sealed class MixedPrecisionStep : IStepper
{
    private readonly nn.Module<Tensor, Tensor> _work;
    private readonly Parameter[] _master, _copy;
    private readonly optim.Optimizer _opt;

    /// <param name="master">The fp32 network (its parameters get the updates).</param>
    /// <param name="work">A second instance of the same network: becomes the bf16 copy (this object owns it).</param>
    public MixedPrecisionStep(nn.Module<Tensor, Tensor> master, nn.Module<Tensor, Tensor> work, Device dev, bool channelsLast)
    {
        _work = work;
        using (var scope = NewDisposeScope()) work.to(dev).to(ScalarType.BFloat16);
        if (channelsLast) TrainStepCase.ChannelsLastInPlace(work);
        _master = master.parameters().ToArray();
        _copy = work.parameters().ToArray();
        if (_master.Length != _copy.Length) throw new InvalidOperationException("master and copy differ");
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            for (int i = 0; i < _master.Length; i++)
            {
                _copy[i].copy_(_master[i]);
                _master[i].grad = zeros_like(_master[i]);   // the fp32 gradients, kept and overwritten every step
            }
            var mb = master.buffers().ToArray();
            var wb = work.buffers().ToArray();
            for (int i = 0; i < mb.Length; i++) wb[i].copy_(mb[i]);
        }
        _opt = optim.Adam(_master, lr: 1e-3);
    }

    public Tensor Forward(Tensor x, Tensor y)
    {
        var logits = _work.call(x.to(ScalarType.BFloat16));
        return TrainStepCase.SoftDiceLoss(logits.to(ScalarType.Float32), y);
    }

    public void Backward(Tensor loss) => loss.backward();

    public void Update()
    {
        using var scope = NewDisposeScope();
        using var ng = no_grad();
        for (int i = 0; i < _master.Length; i++)
        {
            _master[i].grad!.copy_(_copy[i].grad!);
            _copy[i].grad = null;   // set to none, as zero_grad(set_to_none=True)
        }
        _opt.step();
        for (int i = 0; i < _master.Length; i++) _copy[i].copy_(_master[i]);
    }

    public void Dispose()
    {
        _opt.Dispose();
        _work.Dispose();
    }
}
