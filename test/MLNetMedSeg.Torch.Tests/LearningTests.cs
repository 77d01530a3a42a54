using static MLNetMedSeg.Torch.torch;

namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class LearningTests
{
    private static nn.Sequential TinyCnn() => new(
        nn.Conv2d(1, 8, 3, padding: 1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding: 1), nn.ReLU(),
        nn.Conv2d(8, 1, 1));

    private static double TrainStep(nn.Module<Tensor, Tensor> net, Optim.Optimizer opt, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        opt.zero_grad();
        var loss = nn.functional.binary_cross_entropy_with_logits(net.call(x), y);
        loss.backward();
        opt.step();
        return loss.item<double>();
    }

    [TestMethod]
    public void TinyCnnLearnsToySegmentation_LossFallsTenfold()
    {
        using var scope = NewDisposeScope();
        using var g = new Generator(1234);
        nn.Sequential net;
        using (nn.init.UseGenerator(g)) net = TinyCnn();
        using var _ = net;
        using var opt = optim.Adam(net.parameters(), lr: 1e-2);
        var (x, y) = ToyData.Discs(16, 24, seed: 7);

        double first = TrainStep(net, opt, x, y);
        double last = first;
        for (int step = 0; step < 300; step++) last = TrainStep(net, opt, x, y);
        Assert.IsTrue(last < first / 10, $"loss fell from {first:F4} to {last:F4}, less than 10x");

        // and it segments held-out discs: pixel accuracy well above the all-background baseline
        var (xt, yt) = ToyData.Discs(8, 24, seed: 99);
        net.eval();
        using (no_grad())
        {
            var pred = (net.call(xt) > 0).to(ScalarType.Float32);
            double acc = (1 - (pred - yt).abs().mean()).item<double>();
            double baseline = 1 - yt.mean().item<double>();
            Assert.IsTrue(acc > 0.97 && acc > baseline + 0.05, $"held-out accuracy {acc:F3}, background baseline {baseline:F3}");
        }
    }

    [TestMethod]
    public void SameSeedSameTraining()
    {
        double Run()
        {
            using var scope = NewDisposeScope();
            using var g = new Generator(5);
            nn.Sequential net;
            using (nn.init.UseGenerator(g)) net = TinyCnn();
            using var _ = net;
            using var opt = optim.Adam(net.parameters(), lr: 1e-2);
            var (x, y) = ToyData.Discs(4, 16, seed: 3);
            double l = 0;
            for (int k = 0; k < 5; k++) l = TrainStep(net, opt, x, y);
            return l;
        }
        Assert.AreEqual(Run(), Run(), "same seed, same device must give the same loss");
    }
}
