using System.Diagnostics;
using System.Globalization;
using MLNetMedSeg.Bench;
using MLNetMedSeg.Core;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using static TorchSharp.torch;

// The C# side of build/bench.sh (TorchSharp). Usage: MLNetMedSeg.Bench <case> [--threads N] [--warmup N] [--iters N]
//   [--size N] [--batch N] [--ops N] [--device cpu|cuda]. Prints "<case> <median_ms> [key=value ...]" like
//   build/bench/bench_torch.py; build/bench.sh reads the keys:
//   params=   parameter count (training-step, diffusion and cDAL cases; must equal PyTorch's: the same network;
//             cdal_train_step "<generator>+<discriminator>")
//   calls=    network calls per run (diffpgd_batch: "<diffusion forwards>+<segmenter forwards>"; must equal PyTorch's)
//   flops=    (C# only) FLOPs of one training step: forward conv/linear FLOPs (2 per multiply-add, counted by forward
//             hooks on the network's Conv2d/ConvTranspose2d/Linear layers) x 3 for forward + backward
//   gflops=   (sgemm cases) 2 n^3 / time
//   us_per_op= (tiny_ops) microseconds per elementwise op
//   min_ms=   the fastest timed run (medians are what build/bench.sh compares; the minimum helps on a busy machine)
//   cpu_ms=   the median CPU time (user + system, all threads) of a timed run: with one thread, the work itself, which
//             other processes on a busy machine do not stretch as they stretch the wall-clock time
//   cl=       (C# only, *_channels_last cases) convolutions whose output was channels-last / convolutions, and 4-D
//             parameters still channels-last after the timed steps / 4-D parameters
// Training-step cases: unet_train_step (the 7.76 M U-Net of UNet.cs) and seg_step_<arch> (a library backbone), each
// optionally followed by _bf16 (mixed precision, MixedPrecision.cs) and/or _channels_last (input and 4-D weights in
// channels-last layout), e.g. unet_train_step_bf16_channels_last.
// cDAL cases (CdalCases.cs): cdal_train_step (one Algorithm-1 iteration, D step then G step) and cdal_predict5
// (Algorithm 2, 5 samples averaged per image), 64 px, batch 8, T = 2, CdalTrainerOptions.CpuSizedModel().
var opts = new Dictionary<string, int> { ["threads"] = 0, ["warmup"] = 3, ["iters"] = 10, ["size"] = 0, ["batch"] = 8, ["ops"] = 10000, ["paper"] = 0 };
if (args.Length < 1)
{
    Console.Error.WriteLine("usage: MLNetMedSeg.Bench unet_train_step[_bf16][_channels_last]|seg_step_{unet,unetpp,linknet,deeplabv3plus}[_bf16][_channels_last]"
        + "|tiny_ops|sgemm|sgemm_bf16|interleaved_unet|diffusion_train_step|ddim50_sample|diffpgd_batch|cdal_train_step|cdal_predict5 [--threads N] [--warmup N] [--iters N] [--size N] [--batch N] [--ops N] [--device cpu|cuda]"
        + " (diffpgd_batch --paper 1: DASP's own reading, Eq. 9's gradient through SDEdit and T^s = 3 as 4 calls, instead of the PyTorch twin's)");
    return 2;
}
TorchRuntime.Initialize(); // the library's allocator policy, as every stage applies it
string benchCase = args[0];
Device dev = CPU;
for (int k = 1; k + 1 < args.Length; k += 2)
{
    string key = args[k].TrimStart('-');
    if (key == "device") { dev = device(args[k + 1]); continue; }
    if (!opts.ContainsKey(key)) { Console.Error.WriteLine($"unknown option {args[k]}"); return 2; }
    opts[key] = int.Parse(args[k + 1], CultureInfo.InvariantCulture);
}
if (opts["threads"] > 0) set_num_threads(opts["threads"]);
if (dev.type != DeviceType.CPU && benchCase is "diffusion_train_step" or "ddim50_sample" or "diffpgd_batch" or "cdal_train_step" or "cdal_predict5")
{
    Console.Error.WriteLine($"{benchCase} runs on the CPU only");
    return 2;
}
int Size(int dflt) => opts["size"] > 0 ? opts["size"] : dflt;

var fields = new List<string>();
string I(FormattableString f) => f.ToString(CultureInfo.InvariantCulture);
double ms;
if (TrainStepCase.TryParse(benchCase, out var spec))
{
    var r = TrainStepCase.Run(spec, dev, Size(128), opts["batch"], MedianMs);
    ms = r.Ms;
    fields.Add($"params={r.Parameters}");
    fields.Add(I($"flops={r.Flops:F0}"));
    if (r.ChannelsLast is not null) fields.Add($"cl={r.ChannelsLast}");
}
else switch (benchCase)
{
    case "interleaved_unet": // C# only: see TrainStepCase.RunInterleaved (build/bench.sh runs it for the summary)
        fields.Add(TrainStepCase.RunInterleaved(dev, Size(128), opts["batch"], opts["warmup"], opts["iters"]));
        ms = 0;
        break;
    case "tiny_ops":
        ms = TinyOpsCase();
        fields.Add(I($"us_per_op={ms * 1000 / opts["ops"]:F3}"));
        break;
    case "sgemm":
    case "sgemm_bf16":
    {
        int n = Size(2048);
        ms = GemmCase(n, benchCase == "sgemm" ? ScalarType.Float32 : ScalarType.BFloat16);
        fields.Add(I($"gflops={2.0 * n * n * n / (ms * 1e6):F1}"));
        break;
    }
    case "diffusion_train_step":
    {
        (ms, long p) = DiffusionCases.TrainStep(Size(64), opts["batch"], MedianMs);
        fields.Add($"params={p}");
        break;
    }
    case "ddim50_sample":
    {
        (ms, long p) = DiffusionCases.Ddim50(Size(64), opts["batch"], MedianMs);
        fields.Add($"params={p}");
        break;
    }
    case "diffpgd_batch":
    {
        (ms, string p, string calls) = AttackCases.DiffPgdBatch(Size(64), opts["batch"], MedianMs, paperReading: opts["paper"] == 1);
        fields.Add($"params={p}");
        fields.Add($"calls={calls}");
        break;
    }
    case "cdal_train_step":
    {
        (ms, string p) = CdalCases.TrainStep(Size(64), opts["batch"], MedianMs);
        fields.Add($"params={p}");
        break;
    }
    case "cdal_predict5":
    {
        (ms, long p) = CdalCases.Predict5(Size(64), opts["batch"], MedianMs);
        fields.Add($"params={p}");
        break;
    }
    default:
        Console.Error.WriteLine($"unknown case '{benchCase}'");
        return 2;
}
Console.WriteLine(I($"{benchCase} {ms:F3}") + string.Concat(fields.Select(f => " " + f)));
return 0;

double MedianMs(Action fn)
{
    for (int k = 0; k < opts["warmup"]; k++) fn();
    Sync();
    var times = new List<double>();
    var cpu = new List<double>();
    for (int k = 0; k < opts["iters"]; k++)
    {
        double c0 = CpuClock.Ms();
        long t0 = Stopwatch.GetTimestamp();
        fn();
        Sync(); // GPU work is asynchronous: a step ends when the device is done
        times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        cpu.Add(CpuClock.Ms() - c0);
    }
    int n = times.Count;
    if (n > 0) fields.Add(I($"min_ms={times.Min():F3}"));
    if (n > 0) fields.Add(I($"cpu_ms={Median(cpu):F3}"));
    return Median(times);
}

static double Median(List<double> v)
{
    var s = v.OrderBy(t => t).ToList();
    int n = s.Count;
    return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

void Sync()
{
    if (dev.type == DeviceType.CUDA) cuda.synchronize();
}

// An n x n x n matrix product (the machine's attainable GEMM rate; the peak the U-Net steps are compared with).
double GemmCase(int n, ScalarType dtype)
{
    using var g = new Generator(0);
    using var a0 = randn([n, n], generator: g);
    using var b0 = randn([n, n], generator: g);
    using var a = a0.to(dtype, dev);
    using var b = b0.to(dtype, dev);
    return MedianMs(() => { using var c = a.mm(b); });
}

// 10k tiny elementwise ops (a*b+c on 16 floats), each result freed at once: TorchSharp's per-op cost.
double TinyOpsCase()
{
    using var g = new Generator(0);
    using var a0 = rand([16], generator: g);
    using var b0 = rand([16], generator: g);
    using var c0 = rand([16], generator: g);
    using var a = a0.to(dev);
    using var b = b0.to(dev);
    using var c = c0.to(dev);
    int n = opts["ops"] / 2;
    void Loop()
    {
        for (int k = 0; k < n; k++)
        {
            using var ab = a * b;   // two elementwise ops per iteration
            using var y = ab + c;
        }
    }
    return MedianMs(Loop);
}
