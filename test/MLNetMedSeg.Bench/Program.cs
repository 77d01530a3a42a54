using System.Diagnostics;
using System.Globalization;
using MLNetMedSeg.Bench;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

// The C# side of build/bench.sh. Usage: MLNetMedSeg.Bench <case> [--threads N] [--warmup N] [--iters N]
//   [--size N] [--batch N] [--ops N] [--device cpu|cuda]. Prints "<case> <median_ms>" like build/bench/bench_torch.py; the seg_step_* cases
//   (one training step of a MLNetMedSeg.Segmentation.Networks backbone) add a third field, the parameter count, which
//   build/bench.sh compares with the PyTorch twin's (build/bench/networks.py). diffpgd_batch (one DASP attack of a
//   batch, AttackCases.cs) prints "<case> <median_ms> <segmenter params>+<diffusion params> unet_calls=<diffusion
//   network forwards>+<segmenter forwards>" (per attack); build/bench.sh requires both fields to match PyTorch's.
var opts = new Dictionary<string, int> { ["threads"] = 0, ["warmup"] = 3, ["iters"] = 10, ["size"] = 128, ["batch"] = 8, ["ops"] = 10000 };
if (args.Length < 1) { Console.Error.WriteLine("usage: MLNetMedSeg.Bench unet_train_step|unet_train_step_bf16|tiny_ops|tiny_ops_overhead|seg_step_unet|seg_step_unetpp|seg_step_linknet|seg_step_deeplabv3plus|diffusion_train_step|ddim50_sample|diffpgd_batch [--threads N] ..."); return 2; }
string benchCase = args[0];
var given = new HashSet<string>();
// --device cpu|cuda: the U-Net, seg_step_* and tiny_ops cases run on that device (timed up to a synchronize).
Device dev = CPU;
for (int k = 1; k + 1 < args.Length; k += 2)
{
    string key = args[k].TrimStart('-');
    if (key == "device") { dev = device(args[k + 1]); continue; }
    if (!opts.ContainsKey(key)) { Console.Error.WriteLine($"unknown option {args[k]}"); return 2; }
    opts[key] = int.Parse(args[k + 1], CultureInfo.InvariantCulture);
    given.Add(key);
}
if (opts["threads"] > 0) set_num_threads(opts["threads"]);
if (dev.type != DeviceType.CPU && benchCase is "diffusion_train_step" or "ddim50_sample" or "diffpgd_batch")
{
    Console.Error.WriteLine($"{benchCase} runs on the CPU only");
    return 2;
}

long paramCount = -1;
string? paramText = null, extraField = null;
double ms = benchCase switch
{
    "unet_train_step" => UNetCase(bf16: false),
    "unet_train_step_bf16" => UNetCase(bf16: true),
    "tiny_ops" => TinyOpsCase(),
    "seg_step_unet" => SegStepCase(SegmentationArchitecture.UNet),
    "seg_step_unetpp" => SegStepCase(SegmentationArchitecture.UNetPlusPlus),
    "seg_step_linknet" => SegStepCase(SegmentationArchitecture.LinkNet),
    "seg_step_deeplabv3plus" => SegStepCase(SegmentationArchitecture.DeepLabV3Plus),
    "diffusion_train_step" => Diffusion(DiffusionCases.TrainStep),
    "ddim50_sample" => Diffusion(DiffusionCases.Ddim50),
    "diffpgd_batch" => DiffPgdCase(),
    "tiny_ops_overhead" => TinyOpsOverheadCase(),
    _ => throw new ArgumentException($"unknown case '{benchCase}'"),
};
Console.WriteLine($"{benchCase} {ms.ToString("F3", CultureInfo.InvariantCulture)}" + (paramText is not null ? $" {paramText}" : paramCount >= 0 ? $" {paramCount}" : "")
    + (extraField is not null ? $" {extraField}" : ""));
return 0;

double MedianMs(Action fn)
{
    for (int k = 0; k < opts["warmup"]; k++) fn();
    Sync();
    var times = new List<double>();
    for (int k = 0; k < opts["iters"]; k++)
    {
        long t0 = Stopwatch.GetTimestamp();
        fn();
        Sync(); // GPU work is asynchronous: a step ends when the device is done
        times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
    }
    times.Sort();
    int n = times.Count;
    return n % 2 == 1 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
}

void Sync()
{
    if (dev.type == DeviceType.CUDA) cuda.synchronize();
}

// The diffusion cases (64 px unless --size is given): the image diffusion stage's default network; the third field is
// its parameter count, as for seg_step_*.
double Diffusion(Func<int, int, Func<Action, double>, (double ms, long parameters)> run)
{
    var (ms, p) = run(given.Contains("size") ? opts["size"] : 64, opts["batch"], MedianMs);
    paramCount = p;
    return ms;
}

// One DASP Diff-PGD attack of a batch (64 px unless --size is given) through the library's AdversarialAttack.
double DiffPgdCase()
{
    var (ms, p, calls) = AttackCases.DiffPgdBatch(given.Contains("size") ? opts["size"] : 64, opts["batch"], MedianMs);
    paramText = p;
    extraField = $"unet_calls={calls}";
    return ms;
}

double UNetCase(bool bf16)
{
    using var g = new Generator(0);
    BenchUNet net;
    using (nn.init.UseGenerator(g)) net = new BenchUNet();
    using var _net = net;
    net.to(dev);
    using var opt = optim.Adam(net.parameters(), lr: 1e-3);
    int b = opts["batch"], s = opts["size"];
    using var x0 = rand([b, 3, s, s], generator: g);
    using var r = rand([b, 1, s, s], generator: g);
    using var y0 = (r > 0.5).to(ScalarType.Float32);
    using var x = x0.to(dev);
    using var y = y0.to(dev);

    void Step()
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        Tensor loss;
        if (bf16)
        {
            Tensor logits;
            using (autocast(dev.type, ScalarType.BFloat16)) logits = net.call(x);
            loss = SoftDiceLoss(logits.to(ScalarType.Float32), y);
        }
        else loss = SoftDiceLoss(net.call(x), y);
        loss.backward();
        opt.step();
    }
    return MedianMs(Step);
}

// One training step (forward, soft-Dice loss, backward, Adam step) of a backbone with default options
// (3 channels, binary), as seg_step_* in build/bench/bench_torch.py.
double SegStepCase(SegmentationArchitecture arch)
{
    using var g = new Generator(0);
    using var net = SegmentationNetworks.Create(new SegmentationNetworkOptions { Architecture = arch }, g);
    paramCount = net.num_parameters();
    net.to(dev);
    using var opt = optim.Adam(net.parameters(), lr: 1e-3);
    int b = opts["batch"], s = opts["size"];
    using var x0 = rand([b, 3, s, s], generator: g);
    using var r = rand([b, 1, s, s], generator: g);
    using var y0 = (r > 0.5).to(ScalarType.Float32);
    using var x = x0.to(dev);
    using var y = y0.to(dev);

    void Step()
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        var loss = SoftDiceLoss(net.call(x), y);
        loss.backward();
        opt.step();
    }
    return MedianMs(Step);
}

static Tensor SoftDiceLoss(Tensor logits, Tensor target, double eps = 1.0)
{
    var p = logits.sigmoid();
    var inter = (p * target).sum();
    return 1 - (2 * inter + eps) / (p.sum() + target.sum() + eps);
}

// Not a side-by-side case: build/bench.sh prints its line after tiny_ops (see TinyOpsOverhead).
double TinyOpsOverheadCase()
{
    extraField = TinyOpsOverhead.Run(rounds: 40);
    return 0;
}

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
            using var ab = a * b;   // two elementwise ops per iteration, each result freed at once
            using var y = ab + c;
        }
    }
    return MedianMs(Loop);
}
