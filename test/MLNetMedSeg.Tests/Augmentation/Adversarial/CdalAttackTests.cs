using System.Diagnostics;
using Microsoft.ML;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Core;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Cdal;
using MLNetMedSeg.Testing;
using MLNetMedSeg.Tests.Core.MLNet;
using MLNetMedSeg.Tests.Segmentation.Cdal;
using static MLNetMedSeg.Tests.Augmentation.Adversarial.AdversarialTestKit;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Augmentation.Adversarial;

/// <summary>
/// A tiny cDAL segmenter (16 px, 3 channels, binary, T = 2, K = 3) trained on 16 disc images for 4 epochs (16 steps;
/// after one epoch it still predicts all background, which would make Dice-based checks vacuous), shared by the
/// tests and never disposed.
/// </summary>
internal static class CdalAttackKit
{
    public static CdalTrainerOptions Tiny(int epochs = 4)
    {
        var c = CdalTestUtil.Small(AdversarialTestKit.Size, 1);
        c.Samples = 3;
        c.GeneratorLearningRate = 2e-3;
        c.DiscriminatorLearningRate = 1e-4;
        return new CdalTrainerOptions { Cdal = c, Epochs = epochs, BatchSize = 4, PredictionBatchSize = 3 };
    }

    private static readonly Lazy<CdalTransformer> TrainedModel = new(() =>
    {
        using var data = Discs(16, 31);
        return new CdalTrainer(new MedSegContext(seed: 31), Tiny()).Fit(data);
    });

    /// <summary>The shared model (eval mode; tests must leave it as they found it).</summary>
    public static CdalTransformer Trained => TrainedModel.Value;

    public static Dictionary<string, float[]> Weights(nn.Module m) =>
        m.StateDictInOrder().ToDictionary(e => e.Key, e => e.Value.to(ScalarType.Float32).cpu().contiguous().ToArray<float>());

    public static void AssertUnchanged(Dictionary<string, float[]> before, CdalTransformer model)
    {
        var after = Weights(model.Network);
        foreach (var (k, v) in before) CollectionAssert.AreEqual(v, after[k], $"weight {k} changed");
        Assert.IsFalse(model.Network.training, "the generator is back in eval mode");
        Assert.IsTrue(model.Network.parameters().All(p => p.requires_grad), "requires_grad is restored");
    }
}

/// <summary>
/// The adversarial augmenters against a cDAL segmenter (<see cref="CdalTransformer"/> as an
/// <see cref="IDifferentiableSegmenter"/>): FGSM's step, the unrolled sampler's gradient against finite differences,
/// the attack stage's ML.NET save/load and workout.
/// </summary>
[TestClass]
public sealed class CdalAttackTests
{
    private static readonly MLNetWorkoutOptions ImageAndMask = new() { MoreRequiredColumns = ["Mask"] };

    private static double[] GradSums(CdalTransformer m) =>
        m.Network.parameters().Select(p => p.grad is null ? -1 : p.grad.abs().sum().ToDouble()).ToArray();

    [TestMethod]
    public void Fgsm_OnCdal_MovesEveryUnclippedPixelByEpsilon_AndChangesThePrediction()
    {
        using var scope = NewDisposeScope();
        var cdal = CdalAttackKit.Trained;
        var before = CdalAttackKit.Weights(cdal.Network);
        var (x, y) = Batch(4, 41);
        const double eps = 0.1;
        var gradsBefore = GradSums(cdal);
        var r = new AdversarialAttack(AdversarialAttackOptions.FgsmPreset(eps)).Run(cdal, x, y, seed: 0);
        CdalAttackKit.AssertUnchanged(before, cdal);
        CollectionAssert.AreEqual(gradsBefore, GradSums(cdal), "no weight's .grad is touched (the gradient is taken with respect to the images only)");

        var d = r.Attacked.sub(x).abs();
        Assert.IsTrue(d.max().ToDouble() <= eps + 1e-6, $"no pixel moves by more than ε: {d.max().ToDouble()}");
        var free = x.ge(S(eps)).logical_and(x.le(S(1 - eps)));   // pixels whose step is not clipped to [0,1]
        var moved = d.masked_select(free);
        double byEps = moved.sub(S(eps)).abs().lt(S(1e-5)).to(ScalarType.Float64).mean().ToDouble();
        Assert.IsTrue(byEps > 0.9, $"unclipped pixels move by exactly ε (gradient sign ≠ 0): {byEps:P1} do");

        using var noGrad = no_grad();
        double lossClean = AdversarialLoss.PerImage(cdal.Logits(x), y, null, false).sum().ToDouble();
        double lossAttacked = AdversarialLoss.PerImage(cdal.Logits(r.Attacked), y, null, false).sum().ToDouble();
        var (pClean, mClean) = cdal.Predict(x);
        var (pAttacked, mAttacked) = cdal.Predict(r.Attacked);
        long flipped = mClean.ne(mAttacked).sum().ToInt64();
        string summary = $"loss {lossClean:F4} → {lossAttacked:F4}, {flipped} predicted pixels changed, mean |Δp| {MeanAbs(pClean, pAttacked):G3}";
        Console.WriteLine(summary);
        Assert.IsTrue(lossAttacked > lossClean, summary);
        Assert.IsTrue(flipped > 0, summary);

        // Paper 001's robustness table through the same interface.
        using var data = Discs(4, 41);
        var points = AdversarialRobustness.UnderFgsm(cdal, data, [0, eps], batchSize: 4);
        Console.WriteLine(string.Join("; ", points));
        Assert.AreEqual(2, points.Count);
        Assert.IsTrue(points.All(p => double.IsFinite(p.MeanDice)));
        Assert.IsTrue(points[1].MeanDice <= points[0].MeanDice, "FGSM does not raise the Dice");
        CdalAttackKit.AssertUnchanged(before, cdal);
    }

    /// <summary>
    /// The gradient of Σ w·Logits(x) (w fixed random weights) with respect to the image, through the T generator calls
    /// and K samples of the unrolled sampler with its noise fixed by seeded generators, against central differences at
    /// the three pixels with the largest gradient. The network works in float32 (its image encoding, schedule
    /// coefficients and noise are float32), so this is a float32 check: h = 1e-2 and a tolerance of 5% of the gradient
    /// plus 2% of the largest one (float32 round-off over the whole forward pass is ~1e-6 relative, ÷ 2h).
    /// </summary>
    [TestMethod]
    public void CdalLogits_GradientMatchesFiniteDifferences_AndSigmoidIsThePrediction()
    {
        using var scope = NewDisposeScope();
        var cdal = CdalAttackKit.Trained;
        var (x, _) = Batch(2, 43);
        using (no_grad())
        {
            double gap = MaxAbs(cdal.Logits(x).sigmoid(), cdal.PredictProbabilities(x));
            Assert.IsTrue(gap < 1e-5, $"sigmoid(Logits(x)) is the averaged prediction with the prediction's own seeding: max gap {gap:G3}");
        }
        var weights = randn([2, 1, AdversarialTestKit.Size, AdversarialTestKit.Size], ScalarType.Float32, generator: new Generator(7));
        List<Generator> Gens() => [new Generator(101), new Generator(102)];
        double F(Tensor images)
        {
            using var s = NewDisposeScope();
            using var ng = no_grad();
            var gens = Gens();
            try { return cdal.Logits(images, gens).to(ScalarType.Float64).mul(weights.to(ScalarType.Float64)).sum().ToDouble(); }
            finally { foreach (var g in gens) g.Dispose(); }
        }
        var xi = x.clone().requires_grad_();
        var gens0 = Gens();
        Tensor grad;
        try { grad = Gradients.Grad(cdal.Logits(xi, gens0).mul(weights).sum(), [xi])[0]!; }
        finally { foreach (var g in gens0) g.Dispose(); }
        var flat = grad.reshape(-1);
        double largest = flat.abs().max().ToDouble();
        Assert.IsTrue(largest > 1e-4, $"the logits depend on the image: max |∇| {largest:G3}");
        var (_, top) = flat.abs().topk(3);
        const double h = 1e-2;
        foreach (long i in top.data<long>().ToArray())
        {
            using var s = NewDisposeScope();
            var plus = x.clone().reshape(-1);
            var minus = x.clone().reshape(-1);
            plus[i] = plus[i].add(S(h));
            minus[i] = minus[i].sub(S(h));
            double fd = (F(plus.reshape(x.shape)) - F(minus.reshape(x.shape))) / (2 * h);
            double g = flat[i].ToDouble();
            string msg = $"pixel {i}: autograd {g:G6}, central difference {fd:G6}";
            Console.WriteLine(msg);
            Assert.AreEqual(g, fd, 0.05 * Math.Abs(g) + 0.02 * largest, msg);
        }
        Assert.IsFalse(cdal.Network.training);
    }

    [TestMethod]
    public void AttackStage_WithCdalSegmenter_RoundTripsThroughModelSaveLoad()
    {
        var ml = new MLContext(seed: 3);
        var rows = ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(4, 45));
        var cdal = CdalAttackKit.Trained;
        using var fitted = ml.MedSeg().Augmentation.Pgd(cdal, steps: 2).Fit(rows);
        Assert.AreSame(cdal, fitted.Segmenter);
        var expected = MLNetData.ReadTensors(fitted.Transform(rows), "AttackedImage");
        string file = Path.Combine(Path.GetTempPath(), $"cdal-attack-{Guid.NewGuid():N}.zip");
        try
        {
            ml.Model.Save(fitted, rows.Schema, file);
            var loaded = ml.Model.Load(file, out _);
            try
            {
                var stage = loaded as AdversarialAttackTransformer
                    ?? ((IEnumerable<Microsoft.ML.ITransformer>)loaded).OfType<AdversarialAttackTransformer>().Single();
                Assert.IsInstanceOfType<CdalTransformer>(stage.Segmenter, "the child entry is loaded back as a cDAL model");
                var actual = MLNetData.ReadTensors(loaded.Transform(rows), "AttackedImage");
                Assert.AreEqual(expected.Count, actual.Count);
                for (int i = 0; i < expected.Count; i++)
                    CollectionAssert.AreEqual(Values(expected[i]), Values(actual[i]), $"row {i} after ml.Model.Load");
                foreach (var t in actual) t.Dispose();
            }
            finally
            {
                (loaded as IDisposable)?.Dispose();
            }
        }
        finally
        {
            File.Delete(file);
            foreach (var t in expected) t.Dispose();
        }
        Assert.IsTrue(cdal.Network.parameters().All(p => !p.IsInvalid), "the caller's cDAL model is not disposed by the stage");
    }

    [TestMethod]
    public void Workout_FgsmOnCdal()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 5);
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Augmentation.Fgsm(CdalAttackKit.Trained, epsilon: 0.05), WorkoutRows.Discs16(5, 49), "Image", ImageAndMask);
        CollectionAssert.AreEqual(new[] { "AttackedImage: Vector<Single, 3, 16, 16>" }, r.AddedColumns.ToArray());
        Assert.AreEqual(5, r.PredictionEngineRows);
        Console.WriteLine($"FGSM on cDAL: model {r.ModelBytes} bytes, {sw.Elapsed.TotalSeconds:F1} s");
    }
}
