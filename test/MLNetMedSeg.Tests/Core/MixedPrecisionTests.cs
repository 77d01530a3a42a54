using TorchSharp;
using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Core;

/// <summary>
/// <see cref="MixedPrecision"/>'s bf16 gradients against float64 ones. libtorch 2.10's CPU bf16 convolution kernels are
/// wrong for layers with few channels (a 1-channel segmentation head: input-gradient cosine 0.67 to float64, which then
/// reached every layer below it); the compute copy keeps such layers in float32.
/// </summary>
[TestClass]
public sealed class MixedPrecisionTests
{
    private static double Cosine(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var x = a.to(ScalarType.Float64).flatten();
        var y = b.to(ScalarType.Float64).flatten();
        return x.dot(y).item<double>() / (x.norm().item<double>() * y.norm().item<double>());
    }

    // A decoder's last block and a segmentation head: 3×3 conv 32 → 32, BatchNorm, ReLU, 1×1 conv 32 → 1.
    private static nn.Module<Tensor, Tensor> Net() => nn.Sequential(
        ("conv", nn.Conv2d(32, 32, 3, padding: 1, bias: false)), ("bn", Layers.BatchNorm2d(32)), ("relu", nn.ReLU()),
        ("head", nn.Conv2d(32, 1, 1)));

    [TestMethod]
    public void Bf16Gradients_MatchFloat64_WithANarrowHead()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(5);
        var master = Net();
        var reference = Net();
        reference.to(ScalarType.Float64);
        using (torch.no_grad())
        {
            var sd = master.state_dict();
            foreach (var (k, v) in reference.state_dict()) v.copy_(sd[k]);
        }
        using var mixed = new MixedPrecision(master, Net(), TrainingPrecision.BFloat16);

        // Only the head is narrow (1 output channel): it stays float32, the 32-channel convolution is bf16.
        Assert.AreEqual(1, mixed.Float32Convolutions);
        var compute = mixed.Compute.named_parameters().ToDictionary(e => e.name, e => e.parameter.dtype);
        Assert.AreEqual(ScalarType.Float32, compute["head.weight"]);
        Assert.AreEqual(ScalarType.BFloat16, compute["conv.weight"]);

        var x = torch.randn(8, 32, 32, 32);
        var r = torch.arange(32, dtype: ScalarType.Float32);
        var mask = (r.view(1, 1, 32, 1) - 16).pow(2).add((r.view(1, 1, 1, 32) - 16).pow(2)).lt(100).to(ScalarType.Float32).expand(8, 1, 32, 32);

        var logits64 = reference.call(x.to(ScalarType.Float64));
        nn.functional.binary_cross_entropy_with_logits(logits64, mask.to(ScalarType.Float64)).backward();

        var logits = ((nn.Module<Tensor, Tensor>)mixed.Compute).call(x.to(ScalarType.BFloat16));
        Assert.AreEqual(ScalarType.BFloat16, logits.dtype, "the kept layer's output is cast back to the compute type");
        nn.functional.binary_cross_entropy_with_logits(logits.to(ScalarType.Float32), mask).backward();
        Assert.IsTrue(mixed.TakeGradients());

        Assert.IsTrue(Cosine(logits, logits64) > 0.999, "forward");
        var want = reference.named_parameters().ToDictionary(e => e.name, e => e.parameter.grad!);
        foreach (var (name, p) in master.named_parameters())
        {
            double cos = Cosine(p.grad!, want[name]);
            Console.WriteLine($"{name}: cosine to float64 {cos:F4}");
            // bf16 rounding alone leaves the cosine above 0.99; the wrong kernel gave 0.67 for every layer below the head.
            Assert.IsTrue(cos > 0.99, $"{name}: the bf16 gradient's cosine to float64 is {cos:F4}");
        }
    }

    [TestMethod]
    public void NarrowLayers_AreCountedByChannelsPerGroup()
    {
        using var scope = NewDisposeScope();
        // An RGB stem (3 inputs) and a 1-channel transposed head are narrow; a depthwise 64-channel conv (1 per group) is
        // narrow; 16 → 16 is not.
        nn.Module<Tensor, Tensor> Make() => nn.Sequential(
            ("stem", nn.Conv2d(3, 16, 3, padding: 1)), ("wide", nn.Conv2d(16, 64, 3, padding: 1)),
            ("depthwise", nn.Conv2d(64, 64, 3, padding: 1, groups: 64)), ("mid", nn.Conv2d(64, 16, 1)),
            ("up", nn.ConvTranspose2d(16, 1, 2, stride: 2)));
        var master = Make();
        using var mixed = new MixedPrecision(master, Make(), TrainingPrecision.BFloat16);
        Assert.AreEqual(3, mixed.Float32Convolutions);
        var dtypes = mixed.Compute.named_parameters().ToDictionary(e => e.name, e => e.parameter.dtype);
        Assert.AreEqual(ScalarType.Float32, dtypes["stem.weight"]);
        Assert.AreEqual(ScalarType.BFloat16, dtypes["wide.weight"]);
        Assert.AreEqual(ScalarType.Float32, dtypes["depthwise.weight"]);
        Assert.AreEqual(ScalarType.BFloat16, dtypes["mid.weight"]);
        Assert.AreEqual(ScalarType.Float32, dtypes["up.weight"]);
        var y = ((nn.Module<Tensor, Tensor>)mixed.Compute).call(torch.randn(2, 3, 8, 8).to(ScalarType.BFloat16));
        CollectionAssert.AreEqual(new long[] { 2, 1, 16, 16 }, y.shape);
        Assert.AreEqual(ScalarType.BFloat16, y.dtype);
    }

    [TestMethod]
    public void ComputeScope_TurnsOneDnnOnOnlyWhereTheProcessTurnedItOff_AndOnlyForNetworksItComputesRight()
    {
        using var scope = NewDisposeScope();
        bool before = OneDnn.Enabled;
        // A narrow 3×3 output layer is one oneDNN gets wrong on faulty CPUs: never turned on for it.
        var prone = nn.Sequential(("conv", nn.Conv2d(16, 16, 3, padding: 1)), ("out", nn.Conv2d(16, 3, 3, padding: 1)));
        using (var mixed = new MixedPrecision(prone, nn.Sequential(("conv", nn.Conv2d(16, 16, 3, padding: 1)), ("out", nn.Conv2d(16, 3, 3, padding: 1))), TrainingPrecision.BFloat16))
        using (mixed.ComputeScope())
            Assert.AreEqual(before, OneDnn.Enabled, "a network with a fault-prone layer computes without oneDNN where it is off");
        // The head network (1×1 head) has none: where the process turned oneDNN off, the scope turns it on, then off.
        using (var mixed = new MixedPrecision(Net(), Net(), TrainingPrecision.BFloat16))
        {
            using (mixed.ComputeScope())
                Assert.AreEqual(OneDnn.TurnedOff || before, OneDnn.Enabled);
            Assert.AreEqual(before, OneDnn.Enabled, "the scope restores the setting");
        }
    }

    [TestMethod]
    public void KeptLayersHooks_LeaveNoTensorToTheCollector()
    {
        long before = TorchRuntime.FinalizedTensorCount;
        nn.Module<Tensor, Tensor> master, copy;
        using (NewDisposeScope()) { master = Net(); copy = Net(); }   // layer initialisation's temporaries go now
        using (var mixed = new MixedPrecision(master, copy, TrainingPrecision.BFloat16))
        {
            Assert.AreEqual(1, mixed.Float32Convolutions, "the head is kept float32 (hooked)");
            for (int i = 0; i < 3; i++)
            {
                using var scope = NewDisposeScope();
                using var compute = mixed.ComputeScope();
                var y = ((nn.Module<Tensor, Tensor>)mixed.Compute).call(torch.randn(2, 32, 8, 8).to(ScalarType.BFloat16));
                y.to(ScalarType.Float32).sigmoid().mean().backward();
                Assert.IsTrue(mixed.TakeGradients());
                mixed.PushWeights();
            }
        }
        master.Dispose();
        Assert.AreEqual(before, TorchRuntime.FinalizedTensorCount, "tensors left to the garbage collector");
    }
}
