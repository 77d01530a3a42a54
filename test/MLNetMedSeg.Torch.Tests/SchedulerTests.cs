using MLNetMedSeg.Torch.Optim;

namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class SchedulerTests
{
    // Every expected sequence was computed once with /usr/bin/python3 and torch 1.13:
    //   a, b = Parameter(zeros(1)), Parameter(zeros(1))
    //   o = torch.optim.SGD([{'params': [a], 'lr': 0.1}, {'params': [b], 'lr': 0.02}], lr=0.1); s = <scheduler>(o, ...)
    //   seq = [s.get_last_lr()]; 12 × (o.step(); s.step(); seq.append(s.get_last_lr()))
    // PyTorch updates recursively; ours uses the closed forms, so values agree to double rounding.

    private sealed class Fixture : IDisposable
    {
        public readonly Parameter A = torch.nn.Parameter(torch.zeros(1));
        public readonly Parameter B = torch.nn.Parameter(torch.zeros(1));
        public readonly SGD Opt;

        public Fixture()
        {
            Opt = torch.optim.SGD([A], lr: 0.1);
            Opt.add_param_group([B], o => o.lr = 0.02);
        }

        public void Dispose()
        {
            Opt.Dispose();
            A.Dispose();
            B.Dispose();
        }
    }

    private static void AssertSequence(double[,] expected, LRScheduler s, Optimizer opt, string what)
    {
        for (int k = 0; k < expected.GetLength(0); k++)
        {
            if (k > 0)
            {
                opt.step();
                s.step();
            }
            var lr = s.get_last_lr();
            Assert.AreEqual(2, lr.Count);
            for (int g = 0; g < 2; g++)
            {
                double e = expected[k, g];
                Assert.AreEqual(e, lr[g], 1e-12 * Math.Abs(e) + 1e-17, $"{what}: epoch {k}, group {g}");
                Assert.AreEqual(lr[g], opt.ParamGroups[g].lr, $"{what}: the optimizer's lr is the scheduled one");
            }
        }
        Assert.AreEqual(expected.GetLength(0) - 1, s.last_epoch);
    }

    [TestMethod]
    public void StepLRMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        using var f = new Fixture();
        var s = torch.optim.lr_scheduler.StepLR(f.Opt, step_size: 3, gamma: 0.5);
        AssertSequence(new double[,]
        {
            { 0.1, 0.02 }, { 0.1, 0.02 }, { 0.1, 0.02 }, { 0.05, 0.01 }, { 0.05, 0.01 }, { 0.05, 0.01 },
            { 0.025, 0.005 }, { 0.025, 0.005 }, { 0.025, 0.005 }, { 0.0125, 0.0025 }, { 0.0125, 0.0025 },
            { 0.0125, 0.0025 }, { 0.00625, 0.00125 },
        }, s, f.Opt, "StepLR");
        CollectionAssert.AreEqual(new[] { 0.1, 0.02 }, s.base_lrs.ToArray());
        Assert.AreEqual(0.1, f.Opt.ParamGroups[0].initial_lr);
    }

    [TestMethod]
    public void CosineAnnealingLRMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        using var f = new Fixture();
        var s = torch.optim.lr_scheduler.CosineAnnealingLR(f.Opt, T_max: 10, eta_min: 0.001);
        AssertSequence(new double[,]
        {
            { 0.1, 0.02 },
            { 0.09757729755661011, 0.01953503690480396 },
            { 0.0905463412215599, 0.018185661446562 },
            { 0.07959536998847742, 0.016083959896778494 },
            { 0.0657963412215599, 0.013435661446561997 },
            { 0.0505, 0.010499999999999995 },
            { 0.03520365877844011, 0.007564338553437996 },
            { 0.02140463001152259, 0.004916040103221504 },
            { 0.010453658778440109, 0.0028143385534379994 },
            { 0.0034227024433899004, 0.0014649630951960413 },
            { 0.001, 0.001 },
            { 0.0034227024433899004, 0.0014649630951960415 },
            { 0.01045365877844014, 0.002814338553438007 },
        }, s, f.Opt, "CosineAnnealingLR");
        // By hand: half way (epoch 5) the lr is eta_min + (base - eta_min)/2 = 0.001 + 0.099/2 = 0.0505.
        Assert.AreEqual(0.0505, s.get_closed_form_lr(5)[0], 1e-15);
    }

    [TestMethod]
    public void LinearLRMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        using var f = new Fixture();
        var s = torch.optim.lr_scheduler.LinearLR(f.Opt, start_factor: 0.25, end_factor: 1.0, total_iters: 4);
        AssertSequence(new double[,]
        {
            { 0.025, 0.005 }, { 0.043750000000000004, 0.00875 }, { 0.06250000000000001, 0.0125 },
            { 0.08125000000000002, 0.01625 }, { 0.10000000000000002, 0.02 }, { 0.10000000000000002, 0.02 },
            { 0.10000000000000002, 0.02 }, { 0.10000000000000002, 0.02 }, { 0.10000000000000002, 0.02 },
            { 0.10000000000000002, 0.02 }, { 0.10000000000000002, 0.02 }, { 0.10000000000000002, 0.02 },
            { 0.10000000000000002, 0.02 },
        }, s, f.Opt, "LinearLR");
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => torch.optim.lr_scheduler.LinearLR(f.Opt, start_factor: 1.5));
    }

    [TestMethod]
    public void SequentialWarmupThenCosineMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        using var f = new Fixture();
        // PyTorch: SequentialLR(o, [LinearLR(o, start_factor=0.1, total_iters=3), CosineAnnealingLR(o, T_max=7)], milestones=[3])
        var warm = torch.optim.lr_scheduler.LinearLR(f.Opt, start_factor: 0.1, total_iters: 3);
        var cos = torch.optim.lr_scheduler.CosineAnnealingLR(f.Opt, T_max: 7);
        var s = torch.optim.lr_scheduler.SequentialLR(f.Opt, [warm, cos], [3]);
        AssertSequence(new double[,]
        {
            { 0.010000000000000002, 0.002 },
            { 0.04, 0.007999999999999998 },
            { 0.07, 0.013999999999999997 },
            { 0.1, 0.02 },
            { 0.09504844339512096, 0.01900968867902419 },
            { 0.08117449009293669, 0.016234898018587338 },
            { 0.061126046697815725, 0.012225209339563146 },
            { 0.03887395330218429, 0.007774790660436858 },
            { 0.018825509907063328, 0.003765101981412666 },
            { 0.004951556604879048, 0.0009903113209758097 },
            { 0.0, 0.0 },
            { 0.004951556604879043, 0.0009903113209758087 },
            { 0.018825509907063314, 0.0037651019814126632 },
        }, s, f.Opt, "SequentialLR");
        Assert.AreEqual(9, cos.last_epoch, "the cosine restarted at epoch 0 at milestone 3, so at epoch 12 it is at 9");
        Assert.AreEqual(2, warm.last_epoch, "the warm-up last ran at epoch 2");
    }

    [TestMethod]
    public void LinearWarmupFromZeroThenCosine()
    {
        using var scope = torch.NewDisposeScope();
        using var f = new Fixture();
        var warm = torch.optim.lr_scheduler.LinearWarmup(f.Opt, warmup_steps: 4);
        var cos = torch.optim.lr_scheduler.CosineAnnealingLR(f.Opt, T_max: 4, eta_min: 0.0);
        var s = torch.optim.lr_scheduler.SequentialLR(f.Opt, [warm, cos], [4]);
        // By hand: warm-up 0, 1/4, 2/4, 3/4 of 0.1, then cosine 0.1·(1 + cos(πk/4))/2 for k = 0..4.
        double c1 = 0.1 * (1 + Math.Cos(Math.PI / 4)) / 2, c3 = 0.1 * (1 + Math.Cos(3 * Math.PI / 4)) / 2;
        double[] expected = [0.0, 0.025, 0.05, 0.075, 0.1, c1, 0.05, c3, 0.0];
        for (int k = 0; k < expected.Length; k++)
        {
            if (k > 0) s.step();
            Assert.AreEqual(expected[k], f.Opt.ParamGroups[0].lr, 1e-15, $"epoch {k}");
            Assert.AreEqual(expected[k] / 5, f.Opt.ParamGroups[1].lr, 1e-15, $"epoch {k}, group 1");
        }
        Assert.ThrowsException<ArgumentException>(() => torch.optim.lr_scheduler.SequentialLR(f.Opt, [warm, cos], []));
    }
}
