using MLNetMedSeg.Core;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Diffusion;

[TestClass]
public sealed class GaussianDiffusionTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => SingleThreaded.Enter();

    [ClassCleanup]
    public static void Cleanup() => SingleThreaded.Leave();

    private static readonly NoiseSchedule Two = NoiseSchedule.FromBetas([0.1, 0.2]);   // ᾱ = 0.9, 0.72

    /// <summary>A tiny conditional U-Net with its zero layers randomised (so its output depends on every input).</summary>
    private static DiffusionUNet TinyNet(ulong seed)
    {
        var net = new DiffusionUNet(DiffusionUNetTests.Tiny(cond: 1), new Generator(seed));
        using var scope = NewDisposeScope();
        using var g = new Generator(seed + 1);
        using (no_grad())
            foreach (var (name, p) in net.named_parameters())
                if (name.Contains("out_conv") || name.Contains("proj")) p.copy_(randn(p.shape, generator: g) * S(0.05));
        net.eval();
        return net;
    }

    [TestMethod]
    public void QSampleHasTheMarginalMeanAndVarianceOfTheSchedule()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Create(BetaScheduleKind.Linear, 1000);
        var d = new GaussianDiffusion(s);
        using var g = new Generator(1);
        const int n = 2000;
        var x0 = full([n, 1, 8, 8], S(0.5), ScalarType.Float32);
        var t = cat([full([n / 2], S(100), ScalarType.Int64), full([n / 2], S(700), ScalarType.Int64)], 0);
        var xt = d.QSample(x0, t, randn([n, 1, 8, 8], generator: g));
        foreach (var (rows, step) in new[] { (xt.narrow(0, 0, n / 2), 100), (xt.narrow(0, n / 2, n / 2), 700) })
        {
            double ab = s.AlphasCumprod[step];
            Assert.AreEqual(Math.Sqrt(ab) * 0.5, rows.mean().ToSingle(), 0.01, $"mean at t = {step}");
            Assert.AreEqual(Math.Sqrt(1 - ab), rows.std().ToSingle(), 0.01, $"std at t = {step}");
        }
    }

    [TestMethod]
    public void TrainingLossIsTheNoiseMseAtUniformSteps()
    {
        using var scope = NewDisposeScope();
        var s = NoiseSchedule.Create(BetaScheduleKind.Cosine, 10);
        var d = new GaussianDiffusion(s);
        var x0 = full([3000, 1, 2, 2], S(-0.3), ScalarType.Float32);
        var seen = new List<long>();
        // The oracle recovers ε exactly from x_t and t: the loss vanishes, so q_sample used ᾱ of the drawn t.
        Tensor Oracle(Tensor xt, Tensor t, Tensor? c)
        {
            seen.AddRange(t.ToArray<long>());
            var ab = tensor(t.ToArray<long>().Select(i => s.AlphasCumprod[(int)i]).ToArray()).to(ScalarType.Float32).reshape(-1, 1, 1, 1);
            return (xt - ab.sqrt() * x0) / (S(1) - ab).sqrt();
        }
        using var g = new Generator(2);
        Assert.AreEqual(0.0, d.TrainingLoss(Oracle, x0, null, 0, g).ToSingle(), 1e-9);
        Assert.AreEqual(1.0, d.TrainingLoss((x, t, c) => zeros_like(x), x0, null, 0, g).ToSingle(), 0.03, "E‖ε‖² = 1");
        var counts = seen.GroupBy(v => v).ToDictionary(e => e.Key, e => e.Count());
        Assert.AreEqual(10, counts.Count, "every step is drawn");
        Assert.IsTrue(counts.Values.All(c => Math.Abs(c - 300) < 80), string.Join(", ", counts.OrderBy(e => e.Key).Select(e => e.Value)));
        // The loss keeps the graph to the predictor's parameters.
        var w = tensor(0.5).requires_grad_(true);
        var loss = d.TrainingLoss((x, t, c) => x * w, x0.narrow(0, 0, 4), null, 0, g);
        loss.backward();
        Assert.IsTrue(w.grad!.abs().ToSingle() > 0);
    }

    [TestMethod]
    public void ConditionDropoutZeroesWholeConditionsWithTheGivenProbability()
    {
        using var scope = NewDisposeScope();
        var d = new GaussianDiffusion(Two);
        var x0 = zeros(1000, 1, 2, 2);
        var cond = ones(1000, 1, 2, 2);
        float[]? perRow = null;
        using var g = new Generator(3);
        d.TrainingLoss((x, t, c) => { perRow = c!.sum([1, 2, 3]).ToArray<float>(); return zeros_like(x); }, x0, cond, 0.3, g);
        Assert.IsTrue(perRow!.All(v => v == 0 || v == 4), "a condition is dropped whole or kept whole");
        Assert.AreEqual(0.3, perRow!.Count(v => v == 0) / 1000.0, 0.05);
        d.TrainingLoss((x, t, c) => { perRow = c!.sum([1, 2, 3]).ToArray<float>(); return zeros_like(x); }, x0, cond, 0, g);
        Assert.IsTrue(perRow!.All(v => v == 4), "no dropout at p = 0");
    }

    [TestMethod]
    public void GuidanceCombinesConditionalAndNullPredictions()
    {
        using var scope = NewDisposeScope();
        var x = full([2, 1, 2, 2], S(0.25), ScalarType.Float32);
        var cond = tensor(new float[] { 1, -1, 1, 1, -1, -1, 1, -1 }).reshape(2, 1, 2, 2);
        int calls = 0;
        Tensor Model(Tensor xt, Tensor t, Tensor? c)
        {
            calls++;
            Assert.AreEqual(4, xt.size(0), "one forward over [x; x]");
            Assert.IsTrue(c!.narrow(0, 2, 2).IsEqual(zeros(2, 1, 2, 2)), "the null condition is zeros");
            CollectionAssert.AreEqual(new long[] { 7, 7, 7, 7 }, t.ToArray<long>());
            return c + xt;                       // ε(x, y) = y + x; ε(x, ∅) = x
        }
        var eps = GaussianDiffusion.PredictNoise(Model, x, 7, cond, 2.0);
        Assert.AreEqual(1, calls);
        // (1 + 2)·(y + x) − 2·x = 3y + x.
        Assert.AreEqual(0.0, (eps - (cond * S(3) + x)).abs().max().ToSingle(), 1e-6);
        Assert.IsTrue(GaussianDiffusion.Guide(full([1], S(2.0), ScalarType.Float32), full([1], S(1.0), ScalarType.Float32), 0.5).IsEqual(full([1], S(2.5), ScalarType.Float32)));
        Assert.IsTrue(GaussianDiffusion.PredictNoise((xt, t, c) => c! + xt, x, 7, cond, 0).IsEqual(cond + x), "w = 0: conditional only");
    }

    [TestMethod]
    public void DdimStepMatchesTheHandComputedUpdate()
    {
        using var scope = NewDisposeScope();
        var d = new GaussianDiffusion(Two);
        var inputs = new List<float>();
        Tensor Constant(Tensor x, Tensor t, Tensor? c) { inputs.Add(x.ToArray<float>()[0]); return full_like(x, S(0.2)); }
        var opts = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddim, Steps = 2 };
        var y = d.Denoise(Constant, full([1, 1, 1, 1], S(0.5), ScalarType.Float32), null, Two, 2, opts);
        // Step i = 1 (ᾱ = 0.72, ᾱ_prev = 0.9): x̂₀ = (0.5 − √0.28·0.2)/√0.72, x_0 = √0.9·x̂₀ + √0.1·0.2.
        double x0Hat = (0.5 - Math.Sqrt(0.28) * 0.2) / Math.Sqrt(0.72);
        double x1 = Math.Sqrt(0.9) * x0Hat + Math.Sqrt(0.1) * 0.2;
        Assert.AreEqual(2, inputs.Count);
        Assert.AreEqual(x1, inputs[1], 1e-6);
        // Step i = 0 (ᾱ_prev = 1) returns x̂₀ = (x1 − √0.1·0.2)/√0.9.
        Assert.AreEqual((x1 - Math.Sqrt(0.1) * 0.2) / Math.Sqrt(0.9), y.ToSingle(), 1e-6);

        // Clipping: x = 5 gives x̂₀ = 1 and ε' recomputed from the clipped x̂₀.
        inputs.Clear();
        d.Denoise(Constant, full([1, 1, 1, 1], S(5.0), ScalarType.Float32), null, Two, 2, opts);
        double epsPrime = (5 - Math.Sqrt(0.72) * 1) / Math.Sqrt(0.28);
        Assert.AreEqual(Math.Sqrt(0.9) * 1 + Math.Sqrt(0.1) * epsPrime, inputs[1], 1e-5);
    }

    [TestMethod]
    public void DdpmStepIsThePosteriorMeanPlusBetaTildeNoise()
    {
        using var scope = NewDisposeScope();
        var d = new GaussianDiffusion(Two);
        float[]? second = null;
        int k = 0;
        Tensor Constant(Tensor x, Tensor t, Tensor? c) { if (k++ == 1) second = x.ToArray<float>(); return full_like(x, S(0.2)); }
        var opts = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddpm, Steps = 2 };
        using var g = new Generator(11);
        d.Denoise(Constant, full([1, 1, 2, 2], S(0.5), ScalarType.Float32), null, Two, 2, opts, [g]);
        double x0Hat = (0.5 - Math.Sqrt(0.28) * 0.2) / Math.Sqrt(0.72);
        double mean = 0.2 * Math.Sqrt(0.9) / 0.28 * x0Hat + 0.1 * Math.Sqrt(0.8) / 0.28 * 0.5;
        double sigma = Math.Sqrt(0.2 * 0.1 / 0.28);
        using var g2 = new Generator(11);
        var z = randn([1, 1, 2, 2], generator: g2);
        Assert.AreEqual(0.0, (tensor(second!).reshape(1, 1, 2, 2) - (z * S(sigma) + S(mean))).abs().max().ToSingle(), 1e-6);
    }

    [TestMethod]
    public void DdimWithEtaZeroIsDeterministicAndIndependentOfTheGenerator()
    {
        using var scope = NewDisposeScope();
        using var net = TinyNet(20);
        var d = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 100));
        var spaced = d.Schedule.Respace(10);
        using var g = new Generator(21);
        var xT = randn([2, 1, 16, 16], generator: g);
        var cond = rand([2, 1, 16, 16], generator: g).gt(S(0.5)).to(ScalarType.Float32) * S(2) - S(1);
        var opts = new GaussianSamplingOptions { Steps = 10, Eta = 0 };
        using var _ = no_grad();
        var a = d.Denoise(net.forward, xT, cond, spaced, 10, opts, [new Generator(1)]);
        var b = d.Denoise(net.forward, xT, cond, spaced, 10, opts, [new Generator(2)]);
        Assert.IsTrue(a.IsEqual(b));
        opts.Eta = 1;
        var c1 = d.Denoise(net.forward, xT, cond, spaced, 10, opts, [new Generator(1)]);
        var c2 = d.Denoise(net.forward, xT, cond, spaced, 10, opts, [new Generator(2)]);
        Assert.IsFalse(c1.IsEqual(c2), "η = 1 draws noise");
        Assert.IsTrue(a.abs().max().ToSingle() <= 1.0f + 1e-6f, "x₀ = clipped x̂₀ at the last step");
    }

    [TestMethod]
    public void NetworkSeesTheOriginalIndicesOfTheRespacedSteps()
    {
        using var scope = NewDisposeScope();
        var d = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 1000));
        var seen = new List<long>();
        d.Sample((x, t, c) => { seen.Add(t.ToArray<long>()[0]); return zeros_like(x); }, [1, 1, 2, 2], null,
            new GaussianSamplingOptions { Steps = 4 }, [new Generator(0)]);
        CollectionAssert.AreEqual(new long[] { 999, 666, 333, 0 }, seen);
    }

    [TestMethod]
    public void SamplesWithOneGeneratorPerRowDoNotDependOnBatching()
    {
        using var scope = NewDisposeScope();
        using var net = TinyNet(30);
        var d = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 50));
        var cond = rand([3, 1, 16, 16], generator: new Generator(31)).gt(S(0.5)).to(ScalarType.Float32) * S(2) - S(1);
        var opts = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddpm, Steps = 5 };
        var all = d.Sample(net.forward, [3, 1, 16, 16], cond, opts, [new Generator(100), new Generator(101), new Generator(102)]);
        var row1 = d.Sample(net.forward, [1, 1, 16, 16], cond.narrow(0, 1, 1), opts, [new Generator(101)]);
        // Float rounding only: libtorch 2.10 (oneDNN) may pick another convolution kernel for a batch of 1 than for 3
        // (seen: 1.2e-5). A row drawing from another row's generator would differ by O(1).
        Assert.AreEqual(0.0, (all.narrow(0, 1, 1) - row1).abs().max().ToSingle(), 1e-4);
        var row2 = d.Sample(net.forward, [1, 1, 16, 16], cond.narrow(0, 1, 1), opts, [new Generator(102)]);
        Assert.IsTrue((all.narrow(0, 1, 1) - row2).abs().max().ToSingle() > 0.1, "another row's generator gives another sample");
        Assert.IsFalse(all.requires_grad, "sampling records no graph");
    }

    [TestMethod]
    public void SdEditDepthZeroIsTheIdentity()
    {
        using var scope = NewDisposeScope();
        using var net = TinyNet(40);
        var d = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 100));
        var x = rand([2, 1, 16, 16], generator: new Generator(41)) * S(2) - S(1);
        var cond = ones(2, 1, 16, 16);
        Assert.IsTrue(d.SdEdit(net.forward, x, cond, 10, 0, differentiable: false).IsEqual(x));
        Assert.IsTrue(d.SdEdit(net.forward, x, cond, 10, 0, differentiable: true).IsEqual(x));
        var edited = d.SdEdit(net.forward, x, cond, 10, 3, differentiable: false, [new Generator(1)]);
        Assert.IsFalse(edited.IsEqual(x));
        Assert.IsTrue(d.SdEdit(net.forward, x, cond, 10, 3, false, [new Generator(1)]).IsEqual(edited), "same generator seed, same edit");
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => d.SdEdit(net.forward, x, cond, 10, 11, false));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => d.SdEdit(net.forward, x, cond, 10, 10, false), "index T^s = 10 does not exist in 10 respaced steps");
    }

    [TestMethod]
    public void SdEditNoisesToIndexDepthAndRunsDepthPlusOneDdimSteps()
    {
        // DASP Eq. 1: SDEdit(x, T^s) = R(…R(R(x_{T^s}, T^s), T^s − 1)…, 0), i.e. noise to respaced index T^s and T^s + 1
        // denoiser calls (Diff-PGD's range(t + 1)). Hand computation for T^s = 3 on a 10-step respacing of T = 1000.
        using var scope = NewDisposeScope();
        var d = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 1000));
        var spaced = d.Schedule.Respace(10);
        CollectionAssert.AreEqual(new[] { 0, 111, 222, 333 }, spaced.Timesteps.Take(4).ToArray(), "respaced indices 0..3 are steps 0, 111, 222, 333");
        var steps = new List<long>();
        var firstInput = new List<float[]>();
        var x = full([1, 1, 4, 4], S(0.3), ScalarType.Float32);
        d.SdEdit((xt, t, c) => { steps.Add(t.ToArray<long>()[0]); if (firstInput.Count == 0) firstInput.Add(xt.ToArray<float>()); return zeros_like(xt); },
            x, null, 10, 3, false, [new Generator(5)]);
        CollectionAssert.AreEqual(new long[] { 333, 222, 111, 0 }, steps, "depth 3 = 4 denoiser calls at respaced indices 3, 2, 1, 0");
        // The noise level: ᾱ of original step 333 = Π_{s ≤ 333} (1 − β_s), β linear from 1e-4 to 0.02 over 1000 steps.
        double ab = 1;
        for (int s = 0; s <= 333; s++) ab *= 1 - (1e-4 + (0.02 - 1e-4) * s / 999.0);
        Assert.AreEqual(ab, spaced.AlphasCumprod[3], 1e-12);
        var z = randn([1, 1, 4, 4], generator: new Generator(5));
        Assert.AreEqual(0.0, (tensor(firstInput[0]).reshape(1, 1, 4, 4) - (x * S(Math.Sqrt(ab)) + z * S(Math.Sqrt(1 - ab)))).abs().max().ToSingle(), 1e-6);
        // Depth 1 by hand with ε̂ = 0: two DDIM steps (η = 0) from x_1 = √ᾱ_1·x + √(1 − ᾱ_1)·z.
        steps.Clear();
        var one = d.SdEdit((xt, t, c) => { steps.Add(t.ToArray<long>()[0]); return zeros_like(xt); }, x, null, 10, 1, false, [new Generator(5)]);
        CollectionAssert.AreEqual(new long[] { 111, 0 }, steps, "depth 1 = 2 calls");
        double ab1 = spaced.AlphasCumprod[1], ab0 = spaced.AlphasCumprod[0];
        var z1 = randn([1, 1, 4, 4], generator: new Generator(5));
        var x1 = x * S(Math.Sqrt(ab1)) + z1 * S(Math.Sqrt(1 - ab1));
        var x0Hat = (x1 / S(Math.Sqrt(ab1))).clamp(S(-1), S(1));                     // call 1 (index 1)
        var epsClipped = (x1 - x0Hat * S(Math.Sqrt(ab1))) / S(Math.Sqrt(1 - ab1));
        var xi0 = x0Hat * S(Math.Sqrt(ab0)) + epsClipped * S(Math.Sqrt(1 - ab0));
        var expected = (xi0 / S(Math.Sqrt(ab0))).clamp(S(-1), S(1));                 // call 2 (index 0): ᾱ_{−1} = 1 gives x̂₀
        Assert.AreEqual(0.0, (one - expected).abs().max().ToSingle(), 1e-5);
    }

    [TestMethod]
    public void SdEditGradientMatchesFiniteDifferencesThroughATinyDenoiser()
    {
        // Eq. 9 differentiates through SDEdit: the autograd gradient of Σ v·SDEdit(x) (through Core.Gradients) against
        // central differences, in float64, with the forward noise held fixed (same generator seed for every evaluation).
        using var scope = NewDisposeScope();
        var d = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 100));
        var eps = TinyFloat64Denoiser();
        var rng = new Random(3);
        var x0 = tensor(Enumerable.Range(0, 2 * 1 * 5 * 5).Select(_ => rng.NextDouble() - 0.5).ToArray(), [2, 1, 5, 5]);
        var cond = tensor(Enumerable.Range(0, 2 * 1 * 5 * 5).Select(i => i % 3 == 0 ? 1.0 : -1.0).ToArray(), [2, 1, 5, 5]);
        var v = tensor(Enumerable.Range(0, 2 * 1 * 5 * 5).Select(_ => rng.NextDouble() * 2 - 1).ToArray(), [2, 1, 5, 5]);
        double F(Tensor x)
        {
            using var inner = NewDisposeScope();
            using var g = new Generator(9);
            using var _ = no_grad();
            return d.SdEdit(eps, x, cond, 10, 3, differentiable: false, [g]).mul(v).sum().ToDouble();
        }
        var xg = x0.clone().requires_grad_();
        Tensor grad;
        using (var g = new Generator(9))
            grad = Gradients.Grad(d.SdEdit(eps, xg, cond, 10, 3, differentiable: true, [g]).mul(v).sum(), [xg], what: "SDEdit gradient")[0];
        var auto = grad.reshape(-1).ToArray<double>();
        var flat = x0.reshape(-1).ToArray<double>();
        int nonzero = 0;
        for (int i = 0; i < flat.Length; i++)
        {
            var p = (double[])flat.Clone();
            var m = (double[])flat.Clone();
            p[i] += 1e-6;
            m[i] -= 1e-6;
            double fd = (F(tensor(p, x0.shape)) - F(tensor(m, x0.shape))) / 2e-6;
            Assert.AreEqual(fd, auto[i], 1e-6 * Math.Max(1, Math.Abs(fd)), $"element {i}");
            if (Math.Abs(fd) > 1e-3) nonzero++;
        }
        Assert.IsTrue(nonzero > 40, $"the gradient reaches the input through the denoiser ({nonzero} elements)");
    }

    /// <summary>A tiny nonlinear float64 ε-predictor: 0.7·x + 0.3·tanh(k ∗ x)·(0.5 + t/100) + 0.1·y.</summary>
    internal static NoisePredictor TinyFloat64Denoiser()
    {
        var k = tensor(new[] { 0.2, -0.1, 0.05, 0.3, 0.9, -0.2, 0.1, 0.15, -0.3 }, [1, 1, 3, 3]);
        return (xt, t, c) =>
        {
            var s = t.to(ScalarType.Float64).div(S(100)).add(S(0.5)).reshape(-1, 1, 1, 1);
            var e = xt.mul(S(0.7)).add(nn.functional.conv2d(xt, k.to(xt.dtype), padding: [1, 1]).tanh().mul(S(0.3)).mul(s));
            return c is null ? e : e.add(c.to(xt.dtype).mul(S(0.1)));
        };
    }

    [TestMethod]
    public void SdEditDifferentiableFormPassesGradientsAndDetachedFormDoesNot()
    {
        using var scope = NewDisposeScope();
        using var net = TinyNet(50);
        var d = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 100));
        var x = (rand([2, 1, 16, 16], generator: new Generator(51)) * S(1.6) - S(0.8)).requires_grad_(true);
        var cond = ones(2, 1, 16, 16);
        var y = d.SdEdit(net.forward, x, cond, 10, 2, differentiable: true, [new Generator(2)]);
        Assert.IsTrue(y.requires_grad);
        var grad = torch.autograd.grad([y.sum()], [x])[0];
        Assert.IsTrue(grad.abs().sum().ToSingle() > 0, "the gradient reaches the input through the denoiser");
        var yd = d.SdEdit(net.forward, x, cond, 10, 2, differentiable: false, [new Generator(2)]);
        Assert.IsFalse(yd.requires_grad, "the detached form has no graph");
        Assert.AreEqual(0.0, (yd - y.detach()).abs().max().ToSingle(), 1e-6, "both forms compute the same edit");
    }

    [TestMethod]
    public void SamplingLeavesNoTensorBehind()
    {
        using var scope = NewDisposeScope();
        using var net = TinyNet(60);
        var d = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 20));
        var cond = ones(2, 1, 16, 16);
        var opts = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddpm, Steps = 4, GuidanceScale = 1 };
        using var g = new Generator(61);
        d.Sample(net.forward, [2, 1, 16, 16], cond, opts, [g]).Dispose();
        long live = LiveTensors.Settled();
        d.Sample(net.forward, [2, 1, 16, 16], cond, opts, [g]).Dispose();
        d.SdEdit(net.forward, cond, cond, 4, 2, false, [g]).Dispose();
        Assert.AreEqual(live, LiveTensors.Settled());
    }
}
