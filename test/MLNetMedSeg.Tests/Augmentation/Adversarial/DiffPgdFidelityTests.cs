using System.Text.Json;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Dasp;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Tests.Diffusion;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Augmentation.Adversarial;

/// <summary>
/// Diff-PGD as DASP writes it (paper 000, Eq. 1 and 9) through a real <see cref="GaussianDiffusion"/> SDEdit with a tiny
/// float64 denoiser: the SDEdit depth, the gradient through SDEdit, and Table 2's rows.
/// </summary>
[TestClass]
public sealed class DiffPgdFidelityTests
{
    /// <summary>
    /// An <see cref="ISdEditor"/> over <see cref="GaussianDiffusion.SdEdit"/> (T = 100, linear) with
    /// <see cref="GaussianDiffusionTests.TinyFloat64Denoiser"/>; its forward noise comes from a fresh generator of seed 7
    /// on every call (so finite differences see the attack's noise), and it counts the denoiser calls.
    /// </summary>
    private sealed class TinyDiffusionEditor : ISdEditor
    {
        private readonly GaussianDiffusion _process = new(NoiseSchedule.Create(BetaScheduleKind.Linear, 100));
        private readonly NoisePredictor _eps = GaussianDiffusionTests.TinyFloat64Denoiser();

        public int ImageChannels => 1;

        public int DenoiserCalls { get; private set; }

        public int Edits { get; private set; }

        public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, Generator? generator = null)
        {
            Edits++;
            using var g = new Generator(7);
            using var scope = NewDisposeScope();
            NoisePredictor counted = (x, t, c) => { DenoiserCalls++; return _eps(x, t, c); };
            var y = _process.SdEdit(counted, GaussianDiffusion.ToModelRange(images), masks.mul(S(2)).sub(S(1)), respacedSteps, depth, differentiable, [g]);
            return GaussianDiffusion.ToImageRange(y).MoveToOuterDisposeScope();
        }

        public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, IReadOnlyList<Generator> generators) =>
            SdEdit(images, masks, respacedSteps, depth, differentiable, (Generator?)null);
    }

    private static Tensor Logits(Tensor t) => t.mul(S(1.5)).add(t.square().mul(S(0.5))).sub(S(0.7));

    [TestMethod]
    public void DaspAttack_MakesTsPlusOneDenoiserCallsPerSdEdit()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Data();
        var o = AdversarialAttackOptions.Dasp();
        o.Steps = 2;
        o.SdEditRespacing = 10;
        var editor = new TinyDiffusionEditor();
        new AdversarialAttack(o, editor).Run(Logits, x, y, 0);
        Assert.AreEqual(3, o.SdEditDepth);
        Assert.AreEqual(2 + 1, editor.Edits, "one SDEdit per step and the final refinement");
        Assert.AreEqual((2 + 1) * (3 + 1), editor.DenoiserCalls, "T^s + 1 = 4 denoiser calls per SDEdit (Eq. 1)");
    }

    [TestMethod]
    public void FullGradient_FollowsEq9ThroughSdEdit_DetachedIsTheV2Approximation()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Data();
        var o = AdversarialAttackOptions.Dasp();
        Assert.AreEqual(DiffPgdGradient.Full, o.Gradient, "DASP's preset follows Eq. 9");
        Assert.AreEqual(DiffPgdGradient.Full, new AdversarialAttackOptions().Gradient);
        o.Steps = 1;
        o.StepSize = 0.01;
        o.SdEditRespacing = 10;
        o.UncertaintyWeighting = false;
        o.ForegroundOnly = false;
        var editor = new TinyDiffusionEditor();
        double L(Tensor t) => AdversarialLoss.PerImage(Logits(t), y, null, false).sum().ToDouble();
        Tensor Edit(Tensor t) => editor.SdEdit(t, y, o.SdEditRespacing, o.SdEditDepth, false);
        double[] Fd(Func<Tensor, Tensor> f)
        {
            var flat = x.reshape(-1).ToArray<double>();
            var g = new double[flat.Length];
            for (int i = 0; i < flat.Length; i++)
            {
                using var inner = NewDisposeScope();
                using var _ = no_grad();
                var p = (double[])flat.Clone();
                var m = (double[])flat.Clone();
                p[i] += 1e-6;
                m[i] -= 1e-6;
                g[i] = (L(f(tensor(p, x.shape))) - L(f(tensor(m, x.shape)))) / 2e-6;
            }
            return g;
        }
        // Eq. 9: ∇ w.r.t. x̃ᵏ of L(f(SDEdit(x̃ᵏ))). v2: ∇ w.r.t. x_d of L(f(x_d)) at x_d = SDEdit(x̃ᵏ), applied to x̃ᵏ.
        var full = Fd(Edit);
        Tensor xd;
        using (no_grad()) xd = Edit(x);
        var detached = Fd(t => t.sub(x).add(xd));
        void Check(DiffPgdGradient form, double[] fd)
        {
            o.Gradient = form;
            var r = new AdversarialAttack(o, new TinyDiffusionEditor()).Run(Logits, x, y, 0);
            var step = r.Perturbed.sub(x).div(S(o.StepSize)).reshape(-1).ToArray<double>();
            int n = 0;
            for (int i = 0; i < fd.Length; i++)
            {
                if (Math.Abs(fd[i]) < 1e-6) continue;
                Assert.AreEqual(Math.Sign(fd[i]), Math.Sign(step[i]), $"{form}, element {i}: finite difference {fd[i]}, step {step[i]}");
                n++;
            }
            Assert.IsTrue(n > 30, $"{form}: {n} elements checked");
        }
        int disagree = full.Zip(detached).Count(p => Math.Abs(p.First) > 1e-6 && Math.Abs(p.Second) > 1e-6 && Math.Sign(p.First) != Math.Sign(p.Second));
        Assert.IsTrue(disagree >= 3, $"through SDEdit and at its output the gradients differ in sign somewhere ({disagree} elements)");
        Check(DiffPgdGradient.Full, full);
        Check(DiffPgdGradient.Detached, detached);
    }

    [TestMethod]
    public void Table2Rows_DifferOnlyInSdEditAndW()
    {
        var flow = new DaspOptions();
        flow.Attack!.Steps = 4;
        flow.Attack.Epsilon = 8.0 / 255;
        var dasp = JsonSerializer.Serialize(DaspExperiment.Variant(flow, "dasp").Attack);
        string Normalised(AdversarialAttackOptions a)
        {
            var c = a.Clone();
            c.Method = AdversarialAttackMethod.DiffPgd;
            c.UncertaintyWeighting = true;
            return JsonSerializer.Serialize(c);
        }
        var pgd = DaspExperiment.Variant(flow, "pgd").Attack!;
        var diff = DaspExperiment.Variant(flow, "diffpgd").Attack!;
        Assert.AreEqual((AdversarialAttackMethod.Pgd, true), (pgd.Method, pgd.UncertaintyWeighting), "PGD + W");
        Assert.AreEqual((AdversarialAttackMethod.DiffPgd, false), (diff.Method, diff.UncertaintyWeighting), "Diff-PGD without W");
        Assert.AreEqual(dasp, Normalised(pgd), "PGD + W keeps every other setting of DASP's attack (ε, γ, K, random start, ỹ factor)");
        Assert.AreEqual(dasp, Normalised(diff));
        var viaHelper = AdversarialAttackOptions.Dasp().Ablation(sdEdit: false, uncertaintyWeighting: true);
        Assert.IsNull(viaHelper.Epsilon);
        Assert.AreEqual(1.0 / 255, viaHelper.StepSize, 1e-12);
        Assert.IsFalse(viaHelper.RandomStart);
        Assert.IsTrue(viaHelper.ForegroundOnly);
        Assert.ThrowsExactly<InvalidOperationException>(() => AdversarialAttackOptions.FgsmPreset().Ablation(true, true));
    }

    [TestMethod]
    public void SdEditControl_IsDaspsSdEditWithoutAnAttackStep()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Data();
        var flow = new DaspOptions();
        var control = DaspExperiment.Variant(flow, "sdedit").Attack!;
        Assert.AreEqual((AdversarialAttackMethod.DiffPgd, 0, false), (control.Method, control.Steps, control.RandomStart));
        control.Validate();
        control.SdEditRespacing = 10;
        var editor = new TinyDiffusionEditor();
        // What the segmenter says does not matter: the result is SDEdit of the clean image (one edit, T^s + 1 calls).
        var a = new AdversarialAttack(control, editor).Run(Logits, x, y, 0);
        var b = new AdversarialAttack(control, editor).Run(t => t.neg().mul(S(3)), x, y, 0);
        Assert.AreEqual((2, 2 * (3 + 1)), (editor.Edits, editor.DenoiserCalls));
        Assert.IsTrue(a.Perturbed.allclose(x, 0, 0), "no step moves the image before SDEdit");
        Assert.IsTrue(a.Attacked.allclose(b.Attacked, 0, 0), "the segmenter plays no part");
        Assert.IsTrue(a.Attacked.sub(x).abs().max().item<double>() > 1e-3, "SDEdit changes the image");
        // Only Diff-PGD takes K = 0.
        var pgd = DaspExperiment.Variant(flow, "pgd").Attack!;
        pgd.Steps = 0;
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(pgd.Validate).Message, "Steps");
    }

    [TestMethod]
    public void SdEditDepth_MustBeARespacedIndex()
    {
        var o = AdversarialAttackOptions.Dasp();
        o.SdEditRespacing = 10;
        o.SdEditDepth = 9;
        o.Validate();
        o.SdEditDepth = 10;
        var ex = Assert.ThrowsExactly<ArgumentException>(o.Validate);
        StringAssert.Contains(ex.Message, "SdEditDepth");
    }

    /// <summary>Two 1-channel 5×5 float64 images in [0.3, 0.7] and a mask.</summary>
    private static (Tensor x, Tensor y) Data()
    {
        var rng = new Random(5);
        var x = tensor(Enumerable.Range(0, 2 * 5 * 5).Select(_ => 0.3 + 0.4 * rng.NextDouble()).ToArray(), [2, 1, 5, 5]);
        var y = tensor(Enumerable.Range(0, 2 * 5 * 5).Select(i => (double)(i % 3 == 0 ? 1 : 0)).ToArray(), [2, 1, 5, 5]);
        return (x, y);
    }
}
