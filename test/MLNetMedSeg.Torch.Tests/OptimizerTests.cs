using MLNetMedSeg.Torch.Optim;

namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class OptimizerTests
{
    // One float32 parameter and a fixed gradient sequence, set directly on .grad before each step.
    private static readonly float[] W0 = [1.0f, -2.0f, 3.0f, -0.5f];
    private static readonly float[][] Grads =
    [
        [0.5f, -1.0f, 2.0f, 0.1f],
        [-0.3f, 0.4f, 1.5f, -0.2f],
        [0.2f, 0.2f, -1.0f, 0.7f],
    ];

    /// <summary>The parameter's values after each of the three steps.</summary>
    private static float[][] Run(Func<IEnumerable<Parameter>, Optimizer> make)
    {
        using var scope = torch.NewDisposeScope();
        using var p = torch.nn.Parameter(torch.tensor(W0));
        using var opt = make([p]);
        var result = new float[Grads.Length][];
        for (int k = 0; k < Grads.Length; k++)
        {
            p.grad = torch.tensor(Grads[k]);
            opt.step();
            result[k] = p.detach().ToArray<float>();
        }
        return result;
    }

    /// <summary>Bit-for-bit comparison (by default): the native updates run the same at:: kernels as PyTorch 1.13.</summary>
    private static void AssertSteps(float[][] expected, float[][] actual, string what, float tolerance = 0f)
    {
        for (int k = 0; k < expected.Length; k++)
            for (int i = 0; i < expected[k].Length; i++)
                Assert.AreEqual(expected[k][i], actual[k][i], tolerance,
                    $"{what}: step {k + 1}, element {i}: expected {expected[k][i]:R}, got {actual[k][i]:R}");
    }

    // PyTorch's Adam(lr=0.01), Adam(lr=0.01, weight_decay=0.1) and AdamW(lr=0.01, weight_decay=0.1) on W0 and Grads.
    private static readonly float[][] AdamLr001 =
    [
        [0.99000001f, -1.99000001f, 2.99000001f, -0.50999999f],
        [0.988085032f, -1.98654389f, 2.9801743f, -0.506338954f],
        [0.984610736f, -1.98508465f, 2.97549725f, -0.511563838f],
    ];
    private static readonly float[][] AdamLr001Wd01 =
    [
        [0.99000001f, -1.99000001f, 2.99000001f, -0.50999999f],
        [0.986011624f, -1.98462152f, 2.98013711f, -0.50401032f],
        [0.980495572f, -1.98047197f, 2.97421885f, -0.508257806f],
    ];
    private static readonly float[][] AdamWLr001Wd01 =
    [
        [0.989000022f, -1.98800004f, 2.98699999f, -0.509500027f],
        [0.986096084f, -1.98255599f, 2.97418737f, -0.50532949f],
        [0.98163569f, -1.97911417f, 2.96653628f, -0.510049045f],
    ];

    // Expected values below were computed once with /usr/bin/python3 and torch 1.13 (foreach=False), e.g.
    //   p = torch.nn.Parameter(torch.tensor(W0)); opt = torch.optim.SGD([p], lr=0.1, ...)
    //   for g in Grads: p.grad = torch.tensor(g); opt.step(); print(p)
    // and printed with '%.9g' (round-trips float32).

    [TestMethod]
    public void SgdPlainMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // By hand, step 1: w - 0.1·g1 = [1 - 0.05, -2 + 0.1, 3 - 0.2, -0.5 - 0.01] = [0.95, -1.9, 2.8, -0.51].
        AssertSteps(
        [
            [0.949999988f, -1.89999998f, 2.79999995f, -0.50999999f],
            [0.980000019f, -1.93999994f, 2.64999986f, -0.48999998f],
            [0.960000038f, -1.95999992f, 2.74999976f, -0.560000002f],
        ], Run(ps => torch.optim.SGD(ps, lr: 0.1)), "SGD");
        Assert.AreEqual(0.95f, Run(ps => torch.optim.SGD(ps, lr: 0.1))[0][0], 1e-7f);
    }

    [TestMethod]
    public void SgdMomentumMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // SGD(lr=0.1, momentum=0.9, dampening=0.1): the first buffer is the gradient itself (no dampening).
        AssertSteps(
        [
            [0.949999988f, -1.89999998f, 2.79999995f, -0.50999999f],
            [0.931999981f, -1.84599996f, 2.4849999f, -0.500999987f],
            [0.897799969f, -1.8154f, 2.29149985f, -0.555899978f],
        ], Run(ps => torch.optim.SGD(ps, lr: 0.1, momentum: 0.9, dampening: 0.1)), "SGD momentum");
    }

    [TestMethod]
    public void SgdNesterovMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // By hand, step 1: b = g1, d = g1 + 0.9·b = 1.9·g1, w - 0.1·d: 1 - 0.095 = 0.905, -2 + 0.19 = -1.81.
        AssertSteps(
        [
            [0.904999971f, -1.80999994f, 2.61999989f, -0.518999994f],
            [0.921499968f, -1.80499995f, 2.17299986f, -0.489099979f],
            [0.87134999f, -1.80250001f, 2.09569979f, -0.613189995f],
        ], Run(ps => torch.optim.SGD(ps, lr: 0.1, momentum: 0.9, nesterov: true)), "SGD nesterov");
    }

    [TestMethod]
    public void SgdWeightDecayAndMaximizeMatchPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // By hand, step 1: d = g1 + 0.01·w0 → w0[0]: 1 - 0.1·(0.5 + 0.01) = 0.949.
        AssertSteps(
        [
            [0.949000001f, -1.898f, 2.79699993f, -0.509500027f],
            [0.978051007f, -1.93610203f, 2.64420295f, -0.488990515f],
            [0.957072973f, -1.95416594f, 2.74155879f, -0.558501542f],
        ], Run(ps => torch.optim.SGD(ps, lr: 0.1, weight_decay: 0.01)), "SGD weight decay");
        AssertSteps(
        [
            [1.04999995f, -2.0999999f, 3.20000005f, -0.49000001f],
            [1.04499996f, -2.1099999f, 3.45000005f, -0.504999995f],
            [1.0625f, -2.09499979f, 3.47500014f, -0.442499995f],
        ], Run(ps => torch.optim.SGD(ps, lr: 0.1, momentum: 0.5, maximize: true)), "SGD maximize");
    }

    [TestMethod]
    public void AdamMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // By hand, step 1: m̂ = g, v̂ = g², so the update is -lr·g/(|g| + eps) ≈ -lr·sign(g):
        // [1 - 0.01, -2 + 0.01, 3 - 0.01, -0.5 - 0.01] = [0.99, -1.99, 2.99, -0.51].
        var expected = AdamLr001;
        AssertSteps(expected, Run(ps => torch.optim.Adam(ps, lr: 0.01)), "Adam");
        for (int i = 0; i < 4; i++) Assert.AreEqual(W0[i] - 0.01f * MathF.Sign(Grads[0][i]), expected[0][i], 1e-6f);
        AssertSteps(AdamLr001Wd01, Run(ps => torch.optim.Adam(ps, lr: 0.01, weight_decay: 0.1)), "Adam weight decay");
    }

    [TestMethod]
    public void AdamAmsgradMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // betas (0.5, 0.5) so that the second moment falls and the running maximum matters: without amsgrad
        // the results differ (PyTorch gives [0.990880489, -1.98899496, ...] at step 2).
        var amsgrad = Run(ps => torch.optim.Adam(ps, lr: 0.01, beta1: 0.5, beta2: 0.5, amsgrad: true));
        AssertSteps(
        [
            [0.99000001f, -1.99000001f, 2.99000001f, -0.50999999f],
            [0.990816534f, -1.98918355f, 2.98009849f, -0.504226506f],
            [0.988170803f, -1.99031746f, 2.97918177f, -0.510826051f],
        ], amsgrad, "Adam amsgrad");
        AssertSteps(
        [
            [0.99000001f, -1.99000001f, 2.99000001f, -0.50999999f],
            [0.990880489f, -1.98899496f, 2.98009849f, -0.504226506f],
            [0.987435997f, -1.99085903f, 2.97902942f, -0.510826051f],
        ], Run(ps => torch.optim.Adam(ps, lr: 0.01, beta1: 0.5, beta2: 0.5)), "Adam betas 0.5");
    }

    [TestMethod]
    public void AdamWMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // By hand, step 1: w·(1 - 0.01·0.1) then the Adam step: 1·0.999 - 0.01 = 0.989, -2·0.999 + 0.01 = -1.988.
        AssertSteps(AdamWLr001Wd01, Run(ps => torch.optim.AdamW(ps, lr: 0.01, weight_decay: 0.1)), "AdamW");
        AssertSteps(
        [
            [1.00800002f, -2.00600004f, 3.00399995f, -0.489000022f],
            [1.0051676f, -2.00280476f, 3.00789356f, -0.493795544f],
            [1.00580299f, -1.99766529f, 3.0027945f, -0.486208409f],
        ], Run(ps => torch.optim.AdamW(ps, lr: 0.01, beta1: 0.5, beta2: 0.5, weight_decay: 0.2, amsgrad: true, maximize: true)),
        "AdamW amsgrad maximize");
    }

    [TestMethod]
    public void AdamForeachMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // The multi-tensor path (PyTorch's default on a GPU) reaches PyTorch's single-tensor values. libtorch 2.x
        // spells its first-moment update as a lerp, hence the rounding-level tolerance.
        AssertSteps(AdamLr001, Run(ps => torch.optim.Adam(ps, lr: 0.01, @foreach: true)), "Adam foreach", 1e-6f);
        AssertSteps(AdamLr001Wd01, Run(ps => torch.optim.Adam(ps, lr: 0.01, weight_decay: 0.1, @foreach: true)), "Adam foreach weight decay", 1e-6f);
        AssertSteps(AdamWLr001Wd01, Run(ps => torch.optim.AdamW(ps, lr: 0.01, weight_decay: 0.1, @foreach: true)), "AdamW foreach", 1e-6f);
        AssertSteps(Run(ps => torch.optim.AdamW(ps, lr: 0.01, beta1: 0.5, beta2: 0.5, weight_decay: 0.2, maximize: true, @foreach: false)),
            Run(ps => torch.optim.AdamW(ps, lr: 0.01, beta1: 0.5, beta2: 0.5, weight_decay: 0.2, maximize: true, @foreach: true)),
            "AdamW maximize: foreach vs single-tensor", 1e-6f);
        // The default on the CPU is the single-tensor path (as PyTorch's); amsgrad always takes it.
        using var p = torch.nn.Parameter(torch.tensor(W0));
        using var adam = torch.optim.Adam([p], lr: 0.01);
        using var ams = torch.optim.Adam([p], lr: 0.01, amsgrad: true, @foreach: true);
        p.grad = torch.tensor(Grads[0]);
        adam.step();
        ams.step();
        Assert.IsFalse(adam.UsedMultiTensorKernels);
        Assert.IsFalse(ams.UsedMultiTensorKernels);
    }

    [TestMethod]
    public void AdamForeachKeepsEachParametersStepCount()
    {
        // Two parameters; the second has no gradient at step 2, so its bias corrections lag one step behind.
        (float[] A, float[] B, long[] Steps) Train(bool useForeach)
        {
            using var scope = torch.NewDisposeScope();
            using var a = torch.nn.Parameter(torch.tensor(W0));
            using var b = torch.nn.Parameter(torch.tensor(new[] { 0.5f, 0.25f }));
            using var opt = torch.optim.Adam([a, b], lr: 0.05, weight_decay: 0.01, @foreach: useForeach);
            for (int k = 0; k < Grads.Length; k++)
            {
                a.grad = torch.tensor(Grads[k]);
                b.grad = k == 1 ? null : torch.tensor(new[] { Grads[k][0], -Grads[k][1] });
                opt.step();
                Assert.AreEqual(useForeach, opt.UsedMultiTensorKernels, "the path taken");
            }
            var sd = opt.state_dict();
            return (a.detach().ToArray<float>(), b.detach().ToArray<float>(),
                [sd["state.0.step"].item<long>(), sd["state.1.step"].item<long>()]);
        }
        var single = Train(false);
        var multi = Train(true);
        CollectionAssert.AreEqual(new long[] { 3, 2 }, multi.Steps);
        CollectionAssert.AreEqual(single.Steps, multi.Steps);
        for (int i = 0; i < single.A.Length; i++) Assert.AreEqual(single.A[i], multi.A[i], 1e-6f, $"a[{i}]");
        for (int i = 0; i < single.B.Length; i++) Assert.AreEqual(single.B[i], multi.B[i], 1e-6f, $"b[{i}]");
    }

    [TestMethod]
    public void RmspropMatchesPyTorch()
    {
        using var scope = torch.NewDisposeScope();
        // By hand, step 1: s = 0.01·g², avg = 0.1·|g| + eps, so w - 0.01·g/(0.1·|g|) = w - 0.1·sign(g):
        // [0.9, -1.9, 2.9, -0.6].
        AssertSteps(
        [
            [0.900000036f, -1.89999998f, 2.9000001f, -0.599999905f],
            [0.951639831f, -1.93730021f, 2.83980727f, -0.510467649f],
            [0.918941796f, -1.9557234f, 2.87721062f, -0.605778456f],
        ], Run(ps => torch.optim.RMSprop(ps, lr: 0.01)), "RMSprop");
        AssertSteps(
        [
            [0.899496257f, -1.8994962f, 2.89949632f, -0.600503623f],
            [0.85133177f, -1.83595312f, 2.74748063f, -0.595639288f],
            [0.770416319f, -1.7883085f, 2.64141393f, -0.685627818f],
        ], Run(ps => torch.optim.RMSprop(ps, lr: 0.01, momentum: 0.9, centered: true, weight_decay: 0.05)), "RMSprop centered momentum");
    }

    [TestMethod]
    public void OptimizersMinimiseAQuadratic()
    {
        using var scope = torch.NewDisposeScope();
        var target = torch.tensor(new float[] { 1.5f, -0.5f, 2.0f, 0.25f, -3.0f });
        var makers = new (string, Func<IEnumerable<Parameter>, Optimizer>)[]
        {
            ("SGD", ps => torch.optim.SGD(ps, lr: 0.1, momentum: 0.5)),
            ("Adam", ps => torch.optim.Adam(ps, lr: 0.1)),
            ("AdamW", ps => torch.optim.AdamW(ps, lr: 0.1, weight_decay: 0)),
            ("RMSprop", ps => torch.optim.RMSprop(ps, lr: 0.01)),
        };
        foreach (var (name, make) in makers)
        {
            using var w = torch.nn.Parameter(torch.zeros(5));
            using var opt = make([w]);
            double first = 0, last = 0;
            for (int it = 0; it < 300; it++)
            {
                using var s = torch.NewDisposeScope();
                var d = w - target;
                var loss = (d * d).sum();
                if (it == 0) first = loss.item<double>();
                last = loss.item<double>();
                opt.zero_grad();
                loss.backward();
                opt.step();
            }
            Assert.IsTrue(last < first / 100, $"{name}: loss went from {first} to {last}, not down by 100x");
        }
    }

    [TestMethod]
    public void ZeroGradClearsOrZeroes()
    {
        using var scope = torch.NewDisposeScope();
        using var p = torch.nn.Parameter(torch.ones(3));
        using var opt = torch.optim.SGD([p], lr: 0.1);
        (p * 2).sum().backward();
        CollectionAssert.AreEqual(new float[] { 2, 2, 2 }, p.grad!.ToArray<float>());
        opt.zero_grad(set_to_none: false);
        CollectionAssert.AreEqual(new float[] { 0, 0, 0 }, p.grad!.ToArray<float>());
        opt.zero_grad();
        Assert.IsNull(p.grad);
    }

    [TestMethod]
    public void ParametersWithoutGradAreUntouched()
    {
        using var scope = torch.NewDisposeScope();
        using var a = torch.nn.Parameter(torch.tensor(new float[] { 1, 2 }));
        using var b = torch.nn.Parameter(torch.tensor(new float[] { 3, 4 }));
        // Weight decay would move b if it were not skipped.
        using var opt = torch.optim.AdamW(new[] { a, b }, lr: 0.1, weight_decay: 0.5);
        a.grad = torch.tensor(new float[] { 1, -1 });
        opt.step();
        CollectionAssert.AreEqual(new float[] { 3, 4 }, b.ToArray<float>());
        Assert.AreNotEqual(1f, a.ToArray<float>()[0]);
        var state = opt.state_dict();
        Assert.IsTrue(state.ContainsKey("state.0.exp_avg"));
        Assert.IsFalse(state.Keys.Any(k => k.StartsWith("state.1.", StringComparison.Ordinal)), "no state for a parameter that never had a gradient");
    }

    [TestMethod]
    public void NoTensorLeakAcross100Steps()
    {
        long baseline = torch.LiveTensorCount;
        Parameter p;
        using (var data = torch.ones(4, 3)) p = torch.nn.Parameter(data);
        var opt = torch.optim.Adam([p], lr: 0.01, amsgrad: true);
        long afterFirst = 0;
        for (int it = 0; it < 100; it++)
        {
            using (var scope = torch.NewDisposeScope())
            {
                var loss = (p * p).sum();
                opt.zero_grad();
                loss.backward();
                opt.step();
            }
            if (it == 0) afterFirst = torch.LiveTensorCount;
        }
        // the parameter plus three state tensors (exp_avg, exp_avg_sq, max_exp_avg_sq) stay; nothing else
        Assert.AreEqual(baseline + 4, afterFirst);
        Assert.AreEqual(afterFirst, torch.LiveTensorCount, "steps must not accumulate tensors");
        opt.zero_grad();
        opt.Dispose();
        p.Dispose();
        Assert.AreEqual(baseline, torch.LiveTensorCount);
    }

    [TestMethod]
    public void ParamGroupsHaveTheirOwnLearningRates()
    {
        using var scope = torch.NewDisposeScope();
        using var a = torch.nn.Parameter(torch.zeros(1));
        using var b = torch.nn.Parameter(torch.zeros(1));
        using var opt = torch.optim.SGD([a], lr: 0.1);
        opt.add_param_group([b], o => o.lr = 0.01);
        Assert.AreEqual(2, opt.ParamGroups.Count);
        Assert.AreEqual(0.01, opt.ParamGroups[1].lr);
        a.grad = torch.ones(1);
        b.grad = torch.ones(1);
        opt.step();
        Assert.AreEqual(-0.1f, a.ToArray<float>()[0], 1e-7f);
        Assert.AreEqual(-0.01f, b.ToArray<float>()[0], 1e-8f);
        opt.ParamGroups[0].lr = 1.0;
        opt.step();
        Assert.AreEqual(-1.1f, a.ToArray<float>()[0], 1e-6f);
        Assert.ThrowsException<ArgumentException>(() => opt.add_param_group([a]));
        using var c = torch.nn.Parameter(torch.zeros(1));
        var g = opt.add_param_group([c], (SGDOptions o) => { o.momentum = 0.9; o.lr = 0.5; });
        Assert.AreEqual(0.9, ((SGDOptions)g.Options).momentum);
        Assert.AreEqual(0.0, ((SGDOptions)opt.ParamGroups[0].Options).momentum, "groups hold their own copies");
        using var d = torch.nn.Parameter(torch.zeros(1));
        var wrongType = Assert.ThrowsException<ArgumentException>(() => opt.add_param_group([d], (AdamOptions o) => o.lr = 1));
        StringAssert.Contains(wrongType.Message, "SGD uses SGDOptions, not AdamOptions");
        Assert.ThrowsException<ArgumentException>(() => torch.optim.SGD(Array.Empty<Parameter>(), lr: 0.1));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => torch.optim.Adam([b], lr: -1));
        Assert.ThrowsException<ArgumentException>(() => torch.optim.SGD([b], lr: 0.1, nesterov: true));
    }

    [TestMethod]
    public void StateDictRoundTripContinuesIdentically()
    {
        using var scope = torch.NewDisposeScope();
        using var p1 = torch.nn.Parameter(torch.tensor(W0));
        using var opt1 = torch.optim.Adam([p1], lr: 0.01, amsgrad: true);
        foreach (var g in Grads.Take(2)) { p1.grad = torch.tensor(g); opt1.step(); }
        var state = opt1.state_dict();
        Assert.AreEqual(2L, state["state.0.step"].item<long>());
        Assert.AreEqual(0.01, state["param_groups.0.lr"].item<double>());
        CollectionAssert.AreEqual(new long[] { 0 }, state["param_groups.0.params"].ToArray<long>());

        using var p2 = torch.nn.Parameter(p1.detach().clone());
        using var opt2 = torch.optim.Adam([p2], lr: 0.5);
        opt2.load_state_dict(state);
        Assert.AreEqual(0.01, opt2.ParamGroups[0].lr);
        Assert.IsTrue(((AdamOptions)opt2.ParamGroups[0].Options).amsgrad);
        p1.grad = torch.tensor(Grads[2]);
        p2.grad = torch.tensor(Grads[2]);
        opt1.step();
        opt2.step();
        CollectionAssert.AreEqual(p1.ToArray<float>(), p2.ToArray<float>());
        // the state dict's tensors are copies: disposing them leaves the optimizer intact
        foreach (var t in state.Values) t.Dispose();
        opt1.step();

        using var wrong = torch.nn.Parameter(torch.zeros(2));
        using var opt3 = torch.optim.Adam([wrong]);
        var ex = Assert.ThrowsException<ArgumentException>(() => opt3.load_state_dict(opt1.state_dict()));
        StringAssert.Contains(ex.Message, "state.0.exp_avg");
    }

    [TestMethod]
    public void ClipGradNormTwoNorm()
    {
        using var scope = torch.NewDisposeScope();
        using var a = torch.nn.Parameter(torch.zeros(2));
        using var b = torch.nn.Parameter(torch.zeros(2));
        using var c = torch.nn.Parameter(torch.zeros(2)); // no grad: skipped
        a.grad = torch.tensor(new float[] { 3, 0 });
        b.grad = torch.tensor(new float[] { 0, 4 });
        // By hand: total = sqrt(3² + 4²) = 5; coef = 1/(5 + 1e-6), so the grads become [0.6, 0] and [0, 0.8].
        double total = torch.nn.utils.clip_grad_norm_([a, b, c], max_norm: 1.0);
        Assert.AreEqual(5.0, total, 1e-6);
        // PyTorch 1.13 (computed once with /usr/bin/python3): a.grad = [0.5999999046325684, 0], b.grad = [0, 0.7999998331069946].
        CollectionAssert.AreEqual(new float[] { 0.5999999046325684f, 0 }, a.grad!.ToArray<float>());
        CollectionAssert.AreEqual(new float[] { 0, 0.7999998331069946f }, b.grad!.ToArray<float>());
        Assert.IsNull(c.grad);
        // Below the threshold nothing changes (coef clamped to 1).
        double again = torch.nn.utils.clip_grad_norm_([a, b], max_norm: 10.0);
        Assert.AreEqual(1.0, again, 1e-6);
        CollectionAssert.AreEqual(new float[] { 0.5999999046325684f, 0 }, a.grad!.ToArray<float>());
        Assert.AreEqual(0.0, torch.nn.utils.clip_grad_norm_([c], 1.0));
    }

    [TestMethod]
    public void ClipGradNormInfNorm()
    {
        using var scope = torch.NewDisposeScope();
        using var a = torch.nn.Parameter(torch.zeros(2));
        using var b = torch.nn.Parameter(torch.zeros(2));
        a.grad = torch.tensor(new float[] { 3, -7 });
        b.grad = torch.tensor(new float[] { 0.5f, 4 });
        // By hand: total = max |g| = 7; coef = 2/7: a → [6/7, -2], b → [1/7, 8/7] (less 1e-6 relative).
        double total = torch.nn.utils.clip_grad_norm_([a, b], max_norm: 2.0, norm_type: double.PositiveInfinity);
        Assert.AreEqual(7.0, total);
        // PyTorch 1.13: a.grad = [0.8571426868438721, -1.9999996423721313], b.grad = [0.1428571194410324, 1.1428569555282593].
        CollectionAssert.AreEqual(new float[] { 0.8571426868438721f, -1.9999996423721313f }, a.grad!.ToArray<float>());
        CollectionAssert.AreEqual(new float[] { 0.1428571194410324f, 1.1428569555282593f }, b.grad!.ToArray<float>());
        Assert.AreEqual(6.0 / 7, a.grad!.ToArray<float>()[0], 1e-6);
    }
}
