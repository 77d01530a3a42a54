using System.Globalization;
using System.Text;
using MLNetMedSeg.Core;
using MLNetMedSeg.Imaging;
using TorchSharp;
using TorchSharp.Modules;
using Spectre.Console;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

// A first taste of the tensor engine (TorchSharp): a small CNN learns to segment bright discs in noisy synthetic images.
// Usage: dotnet run --project examples/ToySegmentation -c Release [-- --epochs N --seed S --device cpu|cuda --out DIR]
// Writes DIR/predictions.png (image | ground truth | prediction for 4 held-out cases; default DIR artifacts/demo).
int epochs = 30;
ulong seed = 42;
string deviceName = "cpu";
string outDir = Path.Combine("artifacts", "demo");
for (int k = 0; k + 1 < args.Length; k += 2)
{
    switch (args[k])
    {
        case "--epochs": epochs = int.Parse(args[k + 1], CultureInfo.InvariantCulture); break;
        case "--seed": seed = ulong.Parse(args[k + 1], CultureInfo.InvariantCulture); break;
        case "--device": deviceName = args[k + 1]; break;
        case "--out": outDir = args[k + 1]; break;
        default: Console.Error.WriteLine($"unknown option {args[k]}"); return 2;
    }
}
TorchRuntime.Initialize();
var device = Devices.Parse(deviceName);
Devices.EnsureAvailable(device);
AnsiConsole.MarkupLine($"[bold]TorchSharp[/] on libtorch {torch.__version__}, device {Devices.Name(device)}, {get_num_threads()} threads");

const int size = 32, batch = 16, trainImages = 128;
using var gen = new Generator(seed);
var (trainX, trainY) = Discs(trainImages, size, (int)seed);
var (testX, testY) = Discs(32, size, (int)seed + 1);
using var tx = trainX.to(device); using var ty = trainY.to(device);
using var vx = testX.to(device); using var vy = testY.to(device);
trainX.Dispose(); trainY.Dispose(); testX.Dispose(); testY.Dispose();

// TorchSharp's constructors draw their initial weights from the global generator; SeededInit re-initialises them
// (PyTorch's default rules) from this run's generator, so the seed alone fixes the run.
using var net = ModuleExtensions.Build(() => nn.Sequential(
    nn.Conv2d(1, 16, 3, padding: 1), Layers.BatchNorm2d(16), nn.ReLU(),
    nn.Conv2d(16, 16, 3, padding: 2, dilation: 2), Layers.BatchNorm2d(16), nn.ReLU(),
    nn.Conv2d(16, 16, 3, padding: 4, dilation: 4), Layers.BatchNorm2d(16), nn.ReLU(),
    nn.Conv2d(16, 1, 1)));
SeededInit.Apply(net, gen);
net.MoveTo(device);
using var opt = Optimizers.Adam(net.parameters(), lr: 3e-3);
AnsiConsole.MarkupLine($"network: {net.ParameterCount():N0} parameters; data: {trainImages} train / 32 test images of {size}x{size}");

var losses = new List<double>();
AnsiConsole.Progress()
    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
    .Start(ctx =>
    {
        var task = ctx.AddTask("training", maxValue: epochs);
        for (int epoch = 1; epoch <= epochs; epoch++)
        {
            net.train();
            double sum = 0;
            int steps = 0;
            using (var perm = randperm(trainImages, generator: gen))
            {
                var order = perm.ToArray<long>();
                for (int start = 0; start < trainImages; start += batch)
                {
                    using var scope = NewDisposeScope();
                    var idx = torch.tensor(order[start..Math.Min(start + batch, trainImages)]).to(device);
                    var x = tx.index_select(0, idx);
                    var y = ty.index_select(0, idx);
                    opt.ZeroGrad();
                    var loss = nn.functional.binary_cross_entropy_with_logits(net.call(x), y);
                    loss.backward();
                    opt.step();
                    sum += loss.DoubleValue();
                    steps++;
                }
            }
            losses.Add(sum / steps);
            task.Description = $"epoch {epoch}/{epochs} loss {sum / steps:F4}";
            task.Increment(1);
        }
    });

net.eval();
using (no_grad())
using (NewDisposeScope())
{
    var pred = (net.call(vx) > S(0)).to(ScalarType.Float32);
    var inter = (pred * vy).sum(new long[] { 1, 2, 3 });
    var dice = (S(2) * inter).Plus(S(1e-6)) / pred.sum(new long[] { 1, 2, 3 }).Plus(vy.sum(new long[] { 1, 2, 3 })).Plus(S(1e-6));
    AnsiConsole.MarkupLine($"loss {losses[0]:F4} -> {losses[^1]:F4}; held-out mean Dice [green]{dice.mean().DoubleValue():F3}[/]");

    // one held-out case side by side: ground truth | prediction
    var gt = vy[0, 0].cpu().ToArray<float>();
    var pr = pred[0, 0].cpu().ToArray<float>();
    var sb = new StringBuilder("ground truth                      prediction\n");
    for (int y = 0; y < size; y += 2)
    {
        for (int x = 0; x < size; x++) sb.Append(gt[y * size + x] > 0.5 ? '#' : '.');
        sb.Append("  ");
        for (int x = 0; x < size; x++) sb.Append(pr[y * size + x] > 0.5 ? '#' : '.');
        sb.Append('\n');
    }
    Console.Write(sb.ToString());

    // The same as a picture: one row per case, image | ground truth | prediction, upscaled 4x.
    var rows = new List<Tensor>();
    for (int i = 0; i < 4; i++)
        rows.Add(torch.cat([vx[i], vy[i], pred[i]], 2));
    var grid = torch.cat(rows, 1).unsqueeze(0);
    var big = nn.functional.interpolate(grid, scale_factor: [4.0, 4.0], mode: InterpolationMode.Nearest)[0];
    string png = Path.Combine(outDir, "predictions.png");
    ImageIO.WritePng(png, big.cpu());
    AnsiConsole.MarkupLine($"wrote [blue]{png}[/] (rows: held-out cases; columns: image, ground truth, prediction)");
}
return 0;

static (Tensor images, Tensor masks) Discs(int n, int size, int seed)
{
    var rng = new Random(seed);
    var img = new float[n * size * size];
    var msk = new float[n * size * size];
    for (int i = 0; i < n; i++)
    {
        double cx = rng.Next(size / 4, 3 * size / 4), cy = rng.Next(size / 4, 3 * size / 4), r = rng.Next(size / 8, size / 4);
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                int k = (i * size + y) * size + x;
                bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
                msk[k] = inside ? 1f : 0f;
                img[k] = (float)Math.Clamp((inside ? 0.65 : 0.35) + (rng.NextDouble() - 0.5) * 0.5, 0, 1);
            }
    }
    return (torch.tensor(img, [n, 1, size, size]), torch.tensor(msk, [n, 1, size, size]));
}
