using static TorchSharp.torch;

namespace MLNetMedSeg.Tests.Segmentation;

/// <summary>
/// The trainers rely on TorchSharp's Adam, AdamW and RMSprop doing what PyTorch's do: three steps of each against the
/// update rules written out in float64 (PyTorch's docs, torch.optim), with weight decay, on a fixed gradient sequence.
/// </summary>
[TestClass]
public sealed class OptimizerEquivalenceTests
{
    private static readonly double[] W0 = [0.5, -1.25, 2.0, 0.0];
    private static readonly double[][] Grads = [[0.1, -0.2, 0.3, 0.0], [-0.05, 0.4, 0.1, 1.0], [0.2, 0.2, -0.3, -0.5]];

    private static double[] Run(Func<IEnumerable<TorchSharp.Modules.Parameter>, optim.Optimizer> make)
    {
        using var scope = NewDisposeScope();
        var p = new TorchSharp.Modules.Parameter(tensor(W0, ScalarType.Float64));
        using var opt = make([p]);
        foreach (var g in Grads)
        {
            p.grad = tensor(g, ScalarType.Float64);
            opt.step();
        }
        return p.detach().ToArray<double>();
    }

    [TestMethod]
    public void Adam_MatchesTheRule()
    {
        double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
        var w = (double[])W0.Clone();
        var m = new double[4]; var v = new double[4];
        for (int t = 1; t <= Grads.Length; t++)
            for (int i = 0; i < 4; i++)
            {
                double g = Grads[t - 1][i] + wd * w[i];                  // L2 weight decay (Adam)
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double mh = m[i] / (1 - Math.Pow(b1, t)), denom = Math.Sqrt(v[i]) / Math.Sqrt(1 - Math.Pow(b2, t)) + eps;
                w[i] -= lr * mh / denom;
            }
        var got = Run(ps => optim.Adam(ps, lr, b1, b2, eps, weight_decay: wd));
        for (int i = 0; i < 4; i++) Assert.AreEqual(w[i], got[i], 1e-12, $"Adam w[{i}]");
    }

    [TestMethod]
    public void AdamW_MatchesTheRule()
    {
        double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
        var w = (double[])W0.Clone();
        var m = new double[4]; var v = new double[4];
        for (int t = 1; t <= Grads.Length; t++)
            for (int i = 0; i < 4; i++)
            {
                w[i] *= 1 - lr * wd;                                     // decoupled weight decay (AdamW)
                double g = Grads[t - 1][i];
                m[i] = b1 * m[i] + (1 - b1) * g;
                v[i] = b2 * v[i] + (1 - b2) * g * g;
                double mh = m[i] / (1 - Math.Pow(b1, t)), denom = Math.Sqrt(v[i]) / Math.Sqrt(1 - Math.Pow(b2, t)) + eps;
                w[i] -= lr * mh / denom;
            }
        var got = Run(ps => optim.AdamW(ps, lr, b1, b2, eps, weight_decay: wd));
        for (int i = 0; i < 4; i++) Assert.AreEqual(w[i], got[i], 1e-12, $"AdamW w[{i}]");
    }

    [TestMethod]
    public void RmsProp_MatchesTheRule()
    {
        // The deformation attacker's optimizer (paper 002): v = α v + (1 − α) g², w −= lr g / (√v + ε).
        double lr = 0.01, alpha = 0.9, eps = 1e-8;
        var w = (double[])W0.Clone();
        var v = new double[4];
        for (int t = 1; t <= Grads.Length; t++)
            for (int i = 0; i < 4; i++)
            {
                double g = Grads[t - 1][i];
                v[i] = alpha * v[i] + (1 - alpha) * g * g;
                w[i] -= lr * g / (Math.Sqrt(v[i]) + eps);
            }
        var got = Run(ps => optim.RMSProp(ps, lr, alpha, eps));
        for (int i = 0; i < 4; i++) Assert.AreEqual(w[i], got[i], 1e-12, $"RMSprop w[{i}]");
    }
}
