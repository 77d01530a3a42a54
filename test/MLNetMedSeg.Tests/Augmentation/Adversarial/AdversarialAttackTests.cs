using MLNetMedSeg.Core;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Pipeline;
using static MLNetMedSeg.Tests.Augmentation.Adversarial.AdversarialTestKit;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Augmentation.Adversarial;

[TestClass]
public sealed class AdversarialAttackTests
{
    private static MedSegContext Ctx() => new(seed: 11);

    [TestMethod]
    public void Fgsm_IncreasesTheLoss_StaysInTheBallAndInRange()
    {
        using var scope = NewDisposeScope();
        var seg = TrainedSegmenter();
        var (x, y) = Batch(4, 1);
        double eps = 4.0 / 255;
        var r = new AdversarialAttack(AdversarialAttackOptions.FgsmPreset(eps)).Run(seg, x, y, 5);
        Assert.IsTrue(ReferenceEquals(r.Attacked, r.Perturbed));
        Assert.IsNull(r.Uncertainty);
        Assert.IsTrue(MaxAbs(r.Attacked, x) <= eps + 1e-6, "inside the ε-ball");
        Assert.IsTrue(MaxAbs(r.Attacked, x) >= eps - 1e-6, "a full ε step somewhere");
        Assert.IsTrue(r.Attacked.min().ToSingle() >= 0 && r.Attacked.max().ToSingle() <= 1);
        double before = Loss(seg, x, y), after = Loss(seg, r.Attacked, y);
        Assert.IsTrue(after > before * 1.1, $"FGSM raises the loss: {before} → {after}");
    }

    [TestMethod]
    public void InverseFgsm_DecreasesTheLoss()
    {
        using var scope = NewDisposeScope();
        var seg = TrainedSegmenter();
        var (x, y) = Batch(4, 1);
        double eps = 2.0 / 255;
        var r = new AdversarialAttack(AdversarialAttackOptions.InverseFgsmPreset(eps)).Run(seg, x, y, 5);
        Assert.IsTrue(MaxAbs(r.Attacked, x) <= eps + 1e-6);
        double before = Loss(seg, x, y), after = Loss(seg, r.Attacked, y);
        Assert.IsTrue(after < before * 0.9, $"Inverse FGSM lowers the loss: {before} → {after}");
        var up = new AdversarialAttack(AdversarialAttackOptions.FgsmPreset(eps)).Run(seg, x, y, 5);
        // Away from the clip, the two steps are mirror images around x.
        var mid = up.Attacked.add(r.Attacked).div(S(2));
        var inside = x.gt(S(eps)).logical_and(x.lt(S(1 - eps)));
        Assert.IsTrue(mid.sub(x).abs().masked_select(inside).max().ToSingle() < 1e-6);
    }

    [TestMethod]
    public void Pgd_RaisesTheLossMoreThanOneStep_AndProjectsOntoTheBall()
    {
        using var scope = NewDisposeScope();
        var seg = TrainedSegmenter();
        var (x, y) = Batch(4, 2);
        var pgd = AdversarialAttackOptions.PgdPreset();
        pgd.Epsilon = 4.0 / 255;
        pgd.StepSize = 1.5 / 255;
        pgd.Steps = 6;
        var r = new AdversarialAttack(pgd).Run(seg, x, y, 5);
        Assert.IsTrue(MaxAbs(r.Attacked, x) <= pgd.Epsilon + 1e-6, $"inside the ε-ball: {MaxAbs(r.Attacked, x)}");
        Assert.IsTrue(r.Attacked.min().ToSingle() >= 0 && r.Attacked.max().ToSingle() <= 1);
        double before = Loss(seg, x, y), after = Loss(seg, r.Attacked, y);
        double fgsm = Loss(seg, new AdversarialAttack(AdversarialAttackOptions.FgsmPreset(1.5 / 255)).Run(seg, x, y, 5).Attacked, y);
        Assert.IsTrue(after > fgsm && fgsm > before, $"PGD ({after}) > one step ({fgsm}) > clean ({before})");
    }

    [TestMethod]
    public void Pgd_WithoutBall_MovesUpToKTimesGamma()
    {
        using var scope = NewDisposeScope();
        var ctx = Ctx();
        using var seg = Segmenter(ctx);
        var (x, y) = Batch(2, 3);
        var o = AdversarialAttackOptions.Dasp();
        o.Method = AdversarialAttackMethod.Pgd; // DASP's budget without SDEdit: K = 10, γ = 1/255, no ε
        var r = new AdversarialAttack(o).Run(seg, x, y, 5);
        double d = MaxAbs(r.Attacked, x);
        Assert.IsTrue(d > 5.0 / 255 && d <= 10.0 / 255 + 1e-6, $"max |x′ − x| = {d * 255} / 255");
        Assert.IsNotNull(r.Uncertainty, "the DASP loss computes W");
    }

    [TestMethod]
    public void GradientSign_MatchesFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        // A small nonlinear "segmenter" in float64: z = a·x (per channel) + 0.5·(Σ_c x_c)² − 0.7.
        var a = tensor(new double[] { 1.5, -2.0 }, [1, 2, 1, 1]);
        Tensor Logits(Tensor t) => t.mul(a).sum([1], keepdim: true).add(t.sum([1], keepdim: true).square().mul(S(0.5))).sub(S(0.7));
        var rng = new Random(4);
        var x = tensor(Enumerable.Range(0, 2 * 2 * 3 * 3).Select(_ => 0.2 + 0.6 * rng.NextDouble()).ToArray(), [2, 2, 3, 3]);
        var y = tensor(Enumerable.Range(0, 2 * 3 * 3).Select(i => (double)(i % 3 == 0 ? 1 : 0)).ToArray(), [2, 1, 3, 3]);
        double eps = 0.01;
        var r = new AdversarialAttack(AdversarialAttackOptions.FgsmPreset(eps)).Run(Logits, x, y, 0);
        var step = r.Attacked.sub(x).div(S(eps)).reshape(-1).ToArray<double>();
        var flat = x.reshape(-1).ToArray<double>();
        double L(double[] v) => AdversarialLoss.PerImage(Logits(tensor(v, [2, 2, 3, 3])), y, null, false).sum().ToDouble();
        int checkedCount = 0;
        for (int i = 0; i < flat.Length; i++)
        {
            using var inner = NewDisposeScope();
            var p = (double[])flat.Clone();
            var m = (double[])flat.Clone();
            p[i] += 1e-6;
            m[i] -= 1e-6;
            double fd = (L(p) - L(m)) / 2e-6;
            if (Math.Abs(fd) < 1e-7) continue;
            Assert.AreEqual(Math.Sign(fd), Math.Sign(step[i]), $"element {i}: finite difference {fd}, step {step[i]}");
            Assert.AreEqual(1.0, Math.Abs(step[i]), 1e-9);
            checkedCount++;
        }
        Assert.IsTrue(checkedCount > 30, $"{checkedCount} elements checked");
    }

    [TestMethod]
    public void MultiClass_Pgd_RaisesTheCrossEntropy()
    {
        using var scope = NewDisposeScope();
        var seg = TrainedSegmenter(classes: 3);
        var (x, y) = Batch(3, 5, multiClass: true);
        var o = AdversarialAttackOptions.PgdPreset();
        o.Epsilon = 4.0 / 255;
        o.Steps = 4;
        var r = new AdversarialAttack(o).Run(seg, x, y, 5);
        double before = Loss(seg, x, y), after = Loss(seg, r.Attacked, y);
        Assert.IsTrue(after > before * 1.05, $"cross-entropy {before} → {after}");
        Assert.IsTrue(MaxAbs(r.Attacked, x) <= o.Epsilon + 1e-6);

        var dasp = AdversarialAttackOptions.Dasp();
        dasp.Method = AdversarialAttackMethod.Pgd;
        var rd = new AdversarialAttack(dasp).Run(seg, x, y, 5);
        CollectionAssert.AreEqual(new long[] { 3, 1, AdversarialTestKit.Size, AdversarialTestKit.Size }, rd.Uncertainty!.shape);
        var w = AdversarialLoss.UncertaintyMap(seg.Network.call(x), 4.0);
        Assert.IsTrue(MaxAbs(w, rd.Uncertainty) < 1e-6, "W of a multi-class head from the top-2 margin on the clean images");
    }

    [TestMethod]
    public void RandomStart_IsSeededPerRow()
    {
        using var scope = NewDisposeScope();
        // A linear per-pixel "segmenter" keeps rows independent and gradients far from 0.
        static Tensor Logits(Tensor t) => t.sum([1], keepdim: true).sub(S(1.5));
        var (x, y) = Batch(3, 6);
        var o = AdversarialAttackOptions.PgdPreset();
        o.Steps = 2;
        var attack = new AdversarialAttack(o);
        var a = attack.Run(Logits, x, y, 5, [10, 11, 12]).Attacked;
        var b = attack.Run(Logits, x, y, 5, [10, 11, 12]).Attacked;
        var c = attack.Run(Logits, x, y, 6, [10, 11, 12]).Attacked;
        Assert.AreEqual(0.0, MaxAbs(a, b), "same seed and keys → same result");
        Assert.IsTrue(MaxAbs(a, c) > 0, "another seed → another start");
        // Row 11 alone, with its key, draws the same start and hence gives the same result.
        var single = attack.Run(Logits, x.narrow(0, 1, 1), y.narrow(0, 1, 1), 5, [11]).Attacked;
        Assert.AreEqual(0.0, MaxAbs(single, a.narrow(0, 1, 1)));
        var shifted = attack.Run(Logits, x.narrow(0, 1, 1), y.narrow(0, 1, 1), 5, [12]).Attacked;
        Assert.IsTrue(MaxAbs(shifted, a.narrow(0, 1, 1)) > 0, "another key → another start");
    }

    [TestMethod]
    public void DiffPgd_DiffersFromPgd_AndStaysCloserToTheSdEditedCleanImage()
    {
        using var scope = NewDisposeScope();
        var ctx = Ctx();
        using var seg = Segmenter(ctx);
        var (x, y) = Batch(4, 7);
        var editor = new BlurSdEditor();
        var diff = AdversarialAttackOptions.DiffPgdPreset();
        diff.Steps = 5;
        var pgd = AdversarialAttackOptions.PgdPreset();
        pgd.Steps = 5;
        pgd.RandomStart = false;
        var rd = new AdversarialAttack(diff, editor).Run(seg, x, y, 5);
        var rp = new AdversarialAttack(pgd).Run(seg, x, y, 5);
        Assert.AreEqual(5 + 1, editor.Calls, "one SDEdit per step plus the final refinement");
        Assert.IsFalse(ReferenceEquals(rd.Attacked, rd.Perturbed));
        Assert.IsTrue(MaxAbs(rd.Attacked, rp.Attacked) > 1e-3, "Diff-PGD's output is not PGD's");
        Assert.IsTrue(MaxAbs(rd.Perturbed, x) <= diff.Epsilon + 1e-6, "x̃ᴷ stays in the ε-ball");
        using var g = new Generator(1);
        var clean = editor.SdEdit(x, AdversarialAttack.SdEditCondition(y), 50, 3, false, g);
        double dDiff = MeanAbs(rd.Attacked, clean), dPgd = MeanAbs(rp.Attacked, clean);
        Assert.IsTrue(dDiff < 0.75 * dPgd, $"mean |Diff-PGD − SDEdit(x)| = {dDiff} should be clearly below PGD's {dPgd}");
        Assert.IsTrue(Loss(seg, rd.Attacked, y) > Loss(seg, clean, y), "the refined attack still raises the loss over the refined clean image");
    }

    [TestMethod]
    public void DiffPgd_FullAndDetachedGradients_BothRunAndDiffer()
    {
        using var scope = NewDisposeScope();
        var ctx = Ctx();
        using var seg = Segmenter(ctx);
        var (x, y) = Batch(2, 8);
        var o = AdversarialAttackOptions.DiffPgdPreset();
        o.Steps = 3;
        o.Gradient = DiffPgdGradient.Detached;
        var detached = new AdversarialAttack(o, new BlurSdEditor()).Run(seg, x, y, 5);
        o.Gradient = DiffPgdGradient.Full;
        var full = new AdversarialAttack(o, new BlurSdEditor()).Run(seg, x, y, 5);
        Assert.IsTrue(MaxAbs(detached.Perturbed, full.Perturbed) > 1e-3, "the two gradient forms take different steps");
        double clean = Loss(seg, x, y);
        Assert.IsTrue(Loss(seg, full.Perturbed, y) > clean && Loss(seg, detached.Perturbed, y) > clean);
    }

    [TestMethod]
    public void DiffPgd_GradientForms_MatchFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        // A noise-free SDEdit stand-in (the blur B) and the small nonlinear float64 "segmenter" of the FGSM check.
        var a = tensor(new double[] { 1.5, -2.0 }, [1, 2, 1, 1]);
        Tensor Logits(Tensor t) => t.mul(a).sum([1], keepdim: true).add(t.sum([1], keepdim: true).square().mul(S(0.5))).sub(S(0.7));
        var rng = new Random(5);
        var x = tensor(Enumerable.Range(0, 2 * 2 * 4 * 4).Select(_ => 0.3 + 0.4 * rng.NextDouble()).ToArray(), [2, 2, 4, 4]);
        var y = tensor(Enumerable.Range(0, 2 * 4 * 4).Select(i => (double)(i % 3 == 0 ? 1 : 0)).ToArray(), [2, 1, 4, 4]);
        var o = AdversarialAttackOptions.DiffPgdPreset();
        o.Steps = 1;
        o.StepSize = 0.01;
        double L(Tensor t) => AdversarialLoss.PerImage(Logits(t), y, null, false).sum().ToDouble();
        double[] Fd(Func<Tensor, Tensor> f)
        {
            var flat = x.reshape(-1).ToArray<double>();
            var g = new double[flat.Length];
            for (int i = 0; i < flat.Length; i++)
            {
                using var inner = NewDisposeScope();
                var p = (double[])flat.Clone();
                var m = (double[])flat.Clone();
                p[i] += 1e-6;
                m[i] -= 1e-6;
                g[i] = (L(f(tensor(p, x.shape))) - L(f(tensor(m, x.shape)))) / 2e-6;
            }
            return g;
        }
        void Check(DiffPgdGradient form, double[] fd)
        {
            o.Gradient = form;
            var r = new AdversarialAttack(o, new BlurSdEditor(2, noisePerStep: 0)).Run(Logits, x, y, 0);
            var step = r.Perturbed.sub(x).div(S(o.StepSize)).reshape(-1).ToArray<double>();
            int n = 0;
            for (int i = 0; i < fd.Length; i++)
            {
                if (Math.Abs(fd[i]) < 1e-7) continue;
                Assert.AreEqual(Math.Sign(fd[i]), Math.Sign(step[i]), $"{form}, element {i}: finite difference {fd[i]}, step {step[i]}");
                n++;
            }
            Assert.IsTrue(n > 40, $"{form}: {n} elements checked");
        }
        // Full: the gradient of L(f(B(x))) with respect to x. Detached: the gradient of L(f(x_d)) at x_d = B(x).
        var blurred = BlurSdEditor.Blur(x);
        var full = Fd(t => BlurSdEditor.Blur(t));
        var detached = Fd(t => t.sub(x).add(blurred));
        Assert.IsTrue(full.Zip(detached).Count(p => Math.Sign(p.First) != Math.Sign(p.Second)) >= 5, "the two forms point in different directions here");
        Check(DiffPgdGradient.Full, full);
        Check(DiffPgdGradient.Detached, detached);
    }

    [TestMethod]
    public void Attack_DoesNotChangeTheSegmenter_RestoresItsMode_AndLeaksNothing()
    {
        var ctx = Ctx();
        using var seg = Segmenter(ctx);
        var before = seg.Network.StateDictInOrder().ToDictionary(e => e.Key, e => Values(e.Value));
        var (x, y) = Batch(2, 9);
        try
        {
            var o = AdversarialAttackOptions.Dasp();
            o.Steps = 4;
            var attack = new AdversarialAttack(o, new BlurSdEditor());
            float[] inEval;
            using (NewDisposeScope()) inEval = Values(attack.Run(seg, x, y, 5).Attacked);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect(); GC.WaitForPendingFinalizers();
            long live = LiveTensors.Settled();
            seg.Network.train();
            using (NewDisposeScope())
            {
                var r = attack.Run(seg, x, y, 5);
                CollectionAssert.AreEqual(inEval, Values(r.Attacked), "the attack runs the network in eval mode");
            }
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect(); GC.WaitForPendingFinalizers();
            Assert.AreEqual(live, LiveTensors.Settled(), "no tensor left behind by a 4-step DASP attack");
            Assert.IsTrue(seg.Network.training && seg.Network.modules().All(m => m.training), "train mode restored");
            foreach (var (k, t) in seg.Network.StateDictInOrder()) CollectionAssert.AreEqual(before[k], Values(t), $"weight {k} unchanged");
            Assert.IsTrue(seg.Network.parameters().All(p => p.grad is null), "no gradient accumulated into the weights");
        }
        finally
        {
            x.Dispose();
            y.Dispose();
        }
    }

    [TestMethod]
    public void Options_AreValidated_AndDiffPgdNeedsAnSdEditor()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => new AdversarialAttack(AdversarialAttackOptions.Dasp()));
        StringAssert.Contains(ex.Message, "ISdEditor");
        Assert.ThrowsExactly<ArgumentException>(() => new AdversarialAttack(new AdversarialAttackOptions { Method = AdversarialAttackMethod.Fgsm }));
        Assert.ThrowsExactly<ArgumentException>(() => new AdversarialAttack(new AdversarialAttackOptions { Method = AdversarialAttackMethod.Pgd, Steps = 0 }));
        Assert.ThrowsExactly<ArgumentException>(() => new AdversarialAttack(new AdversarialAttackOptions { SdEditDepth = 60 }, new BlurSdEditor()));
        Assert.ThrowsExactly<ArgumentException>(() => new AdversarialAttack(new AdversarialAttackOptions { Method = AdversarialAttackMethod.Pgd, UncertaintyVariance = 0 }));
        Assert.ThrowsExactly<ArgumentException>(() => AdversarialAttackOptions.Preset("cw"));
        foreach (var name in AdversarialAttackOptions.PresetNames) AdversarialAttackOptions.Preset(name).Validate();
        var dasp = AdversarialAttackOptions.Dasp();
        Assert.AreEqual(10, dasp.Steps);
        Assert.AreEqual(1.0 / 255, dasp.StepSize, 1e-12);
        Assert.IsNull(dasp.Epsilon);
        Assert.AreEqual(3, dasp.SdEditDepth);
        Assert.AreEqual(4.0, dasp.UncertaintyVariance);
        Assert.IsTrue(dasp.UncertaintyWeighting && dasp.ForegroundOnly);
        var d = AdversarialAttackOptions.DiffPgdPreset();
        Assert.AreEqual(16.0 / 255, d.Epsilon!.Value, 1e-12);
        Assert.AreEqual(2.0 / 255, d.StepSize, 1e-12);
        Assert.AreEqual(0.1, AdversarialAttackOptions.FgsmPreset().Epsilon!.Value, 1e-12);
    }
}
