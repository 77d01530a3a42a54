using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Diffusion.Synthesis;
using MLNetMedSeg.Tests.Core.MLNet;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;
using MLDataView = Microsoft.ML.IDataView;

namespace MLNetMedSeg.Tests.Diffusion;

/// <summary>
/// The styling losses (paper 004 Appendix A.1.2): every term's gradient — alone and through the diffusion U-Net's
/// Tweedie estimate, as the guided step takes it — against central finite differences in float64 on tiny networks;
/// ZeCon's PatchNCE is lowest for identical features.
/// </summary>
[TestClass]
public sealed class StylingLossTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => SingleThreaded.Enter();

    [ClassCleanup]
    public static void Cleanup() => SingleThreaded.Leave();

    /// <summary>Checks ⟨∇f(x), v⟩ against (f(x + hv) − f(x − hv))/2h along three seeded directions (float64).</summary>
    internal static void CheckGradient(Func<Tensor, Tensor> f, Tensor x0, string what, double tolerance = 1e-5, double h = 1e-6)
    {
        using var scope = NewDisposeScope();
        var x = x0.detach().clone().requires_grad_(true);
        var y = f(x);
        var g = Gradients.Grad(y, [x], what: what)[0];
        Assert.IsTrue(g.abs().max().ToDouble() > 0, $"{what}: the gradient is zero (the check would be vacuous)");
        using var gen = new Generator(17, CPU);
        for (int k = 0; k < 3; k++)
        {
            var v = randn(x0.shape, ScalarType.Float64, generator: gen);
            double analytic = (g * v).sum().ToDouble();
            double numeric;
            using (no_grad())
                numeric = (f(x0 + v * S(h)).ToDouble() - f(x0 - v * S(h)).ToDouble()) / (2 * h);
            Assert.IsTrue(Math.Abs(analytic - numeric) <= tolerance * Math.Max(1, Math.Abs(numeric)),
                $"{what}: direction {k}: autograd {analytic:G10}, finite differences {numeric:G10}");
        }
    }

    [TestMethod]
    public void EachLossTerm_GradientMatchesFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(3, CPU);
        var x0 = randn([2, 3, 8, 8], ScalarType.Float64, generator: gen) * S(1.5);      // partly outside [−1, 1]
        var reference = randn([2, 3, 8, 8], ScalarType.Float64, generator: gen);
        CheckGradient(x => StylingLosses.PixelMse(x, reference).sum(), x0, "ℓ_MSE / ℓ_L2");
        CheckGradient(x => StylingLosses.Range(x).sum(), x0, "ℓ_rng");
        var e0 = randn([2, 16], ScalarType.Float64, generator: gen);
        var eRef = randn([2, 16], ScalarType.Float64, generator: gen);
        CheckGradient(e => StylingLosses.EmbeddingDistance(eRef, e).sum(), e0, "ℓ_sty on the embedding");
        CheckGradient(e => (-StylingLosses.EmbeddingDistance(e, eRef)).sum(), e0, "ℓ_sem on the embedding");
        CheckGradient(e => StylingLosses.EmbeddingMeanSquared(eRef, e).sum(), e0, "ℓ_sty / ℓ_sem as DiffuseIT's code (mean squared)");
        using (no_grad())
            Assert.AreEqual(((eRef - e0).square().sum(1) / S(16)).sum().ToDouble(), StylingLosses.EmbeddingMeanSquared(eRef, e0).sum().ToDouble(), 1e-12,
                "mean over the 16 values of the squared difference");
        var f0 = randn([2, 5, 4, 4], ScalarType.Float64, generator: gen);
        var fRef = randn([2, 5, 4, 4], ScalarType.Float64, generator: gen);
        var locations = StylingLosses.DrawLocations(2, 16, 6, [gen], CPU);
        CheckGradient(f => StylingLosses.ZeCon([f], [fRef], [locations], 0.07).sum(), f0, "ℓ_ZeCon on features");
        CheckGradient(f => StylingLosses.Perceptual([f, f * S(2)], [fRef, fRef]).sum(), f0, "ℓ_perc on maps");
        // Through the ResNet-18 stand-in (random float64 weights, narrow widths).
        using var resnet = StyleFeatureNetwork.Random(5, 32, CPU, ScalarType.Float64, [8, 8, 8, 16, 16]);
        var img0 = rand([1, 3, 16, 16], ScalarType.Float64, generator: gen);
        var (refMaps, refEmb) = resnet.Features(rand([1, 3, 16, 16], ScalarType.Float64, generator: gen));
        CheckGradient(x => StylingLosses.Perceptual(resnet.Features(x).Maps, refMaps).sum(), img0, "ℓ_perc through the ResNet-18");
        CheckGradient(x => StylingLosses.EmbeddingDistance(refEmb, resnet.Features(x).Embedding).sum(), img0, "ℓ_sty through the ResNet-18");
    }

    [TestMethod]
    public void ZeCon_IsLowestForIdenticalFeatures()
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator(4, CPU);
        var f = randn([1, 32, 8, 8], generator: gen);
        var locations = StylingLosses.DrawLocations(1, 64, 64, [gen], CPU);
        double same = StylingLosses.ZeCon([f], [f], [locations]).ToDouble();
        // The same features at shuffled locations, and a slightly perturbed copy.
        var perm = randperm(64, generator: gen);
        var shuffled = f.flatten(2).index_select(2, perm).reshape(1, 32, 8, 8);
        double mixed = StylingLosses.ZeCon([f], [shuffled], [locations]).ToDouble();
        double noisy = StylingLosses.ZeCon([f], [f + randn(f.shape, generator: gen) * S(0.3)], [locations]).ToDouble();
        Assert.IsTrue(same < noisy && noisy < mixed, $"identical {same:F4} < perturbed {noisy:F4} < shuffled {mixed:F4}");
        Assert.IsTrue(same < 0.01, $"identical features: the positive dominates (τ = 0.07), loss {same:F5}");
        Assert.IsTrue(mixed > Math.Log(64) - 1, $"shuffled features: about chance, log 64 = {Math.Log(64):F2}; got {mixed:F3}");
        // The U-Net's encoder features that ZeCon compares: the input conv, then every encoder step.
        using var g = new Generator(1, CPU);
        using var net = new DiffusionUNet(new DiffusionUNetOptions
        {
            BaseChannels = 8, ChannelMultipliers = [1, 2], BlocksPerLevel = 2, AttentionResolutions = [], HeadChannels = 8, GroupNormGroups = 4,
            InChannels = 3, OutChannels = 3,
        }, g);
        Assert.AreEqual(1 + 2 + 1 + 2, net.EncoderFeatureCount);
        var maps = net.EncoderFeatures(zeros([2, 3, 16, 16]), zeros([2], ScalarType.Int64), null, [0, 2, 3, 5]);
        CollectionAssert.AreEqual(new long[] { 2, 8, 16, 16 }, maps[0].shape);
        CollectionAssert.AreEqual(new long[] { 2, 8, 16, 16 }, maps[1].shape);
        CollectionAssert.AreEqual(new long[] { 2, 8, 8, 8 }, maps[2].shape, "layer 3: the down-sampling");
        CollectionAssert.AreEqual(new long[] { 2, 16, 8, 8 }, maps[3].shape);
        CollectionAssert.AreEqual(new[] { 0, 2, 5 }, StylingScheduler.ZeConLayersFor(new StyleOptions(), net), "ZeCon's 0, 2, 5, 8, 11 that exist (0..5)");
    }

    [TestMethod]
    public void GuidanceFactors_PosteriorVariance_Resolution_SemanticCutoff()
    {
        var diffusion = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 50));
        var o = new StyleOptions { SampleSteps = 10, SkipSteps = 4, FeatureImageSize = 32 };
        var scheduler = new StylingScheduler(diffusion, o, StyleFeatureNetwork.Random(6, 32, CPU, ScalarType.Float32, [8, 8, 8, 16, 16]));
        var sp = scheduler.Spaced;
        for (int i = 1; i < 10; i++)
            Assert.AreEqual(sp.Betas[i] * (1 - sp.AlphasCumprod[i - 1]) / (1 - sp.AlphasCumprod[i]), scheduler.GradientScale(i), 1e-15,
                $"step {i}: β̃_i = β_i(1 − ᾱ_(i−1))/(1 − ᾱ_i)");
        Assert.AreEqual(scheduler.GradientScale(1), scheduler.GradientScale(0), "step 0 (β̃_0 = 0) takes β̃_1");
        Assert.IsTrue(scheduler.GradientScale(9) > scheduler.GradientScale(1), "the posterior variance grows with the noise level");
        Assert.AreEqual(32.0 * 32 / (256 * 256), scheduler.ResolutionScale(32, 32), 1e-15, "H·W / 256² (Table A.1's 256 px)");
        Assert.IsTrue(scheduler.SemanticActive(6) && !scheduler.SemanticActive(5), "ℓ_sem only above 0.5 · SampleSteps");
        var printed = new StylingScheduler(diffusion, new StyleOptions
        {
            SampleSteps = 10, SkipSteps = 4, GuidanceScaling = StyleGuidanceScaling.None, WeightsImageSize = null, SemanticCutoff = 0,
            PerceptualWeight = 0, StyleWeight = 0, SemanticWeight = 0,
        }, null);
        Assert.AreEqual(1.0, printed.GradientScale(3));
        Assert.AreEqual(1.0, printed.ResolutionScale(32, 32));
        Assert.IsTrue(printed.SemanticActive(1));
        Assert.ThrowsException<ArgumentException>(() => new StyleOptions { SemanticCutoff = 1.5 }.Validate());
        Assert.ThrowsException<ArgumentException>(() => new StyleOptions { WeightsImageSize = -1 }.Validate());
    }

    private static DiffusionUNet Float64UNet()
    {
        using var g = new Generator(11, CPU);
        var net = new DiffusionUNet(new DiffusionUNetOptions
        {
            BaseChannels = 8, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 8, GroupNormGroups = 4,
            InChannels = 3, OutChannels = 3,
        }, g);
        using (no_grad())
            foreach (var p in net.parameters()) p.add_(randn(p.shape, generator: g) * S(0.05));   // off the zero-initialised start
        net.to(ScalarType.Float64);
        net.eval();
        return net;
    }

    [TestMethod]
    public void GuidedStep_GradientOfEachTermThroughTheNetwork_MatchesFiniteDifferences()
    {
        using var scope = NewDisposeScope();
        using var net = Float64UNet();
        using var resnet = StyleFeatureNetwork.Random(6, 32, CPU, ScalarType.Float64, [8, 8, 8, 16, 16]);
        var diffusion = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 50));
        using var gen = new Generator(8, CPU);
        var source = rand([1, 3, 16, 16], ScalarType.Float64, generator: gen) * S(2) - S(1);
        var target = rand([1, 3, 16, 16], ScalarType.Float64, generator: gen) * S(2) - S(1);
        var xt = randn([1, 3, 16, 16], ScalarType.Float64, generator: gen) * S(1.2);
        var previous = randn([1, 16], ScalarType.Float64, generator: gen);
        string[] names = ["ZeCon", "Perceptual", "Mse", "Style", "L2", "Semantic", "Range"];
        foreach (var name in names)
        {
            var o = new StyleOptions
            {
                SampleSteps = 10, SkipSteps = 2, ZeConWeight = 0, PerceptualWeight = 0, MseWeight = 0, StyleWeight = 0, L2Weight = 0,
                SemanticWeight = 0, RangeWeight = 0, ZeConPatches = 8, FeatureImageSize = 32, ContentReference = StyleContentReference.Source,
                SemanticCutoff = 0,
            };
            typeof(StyleOptions).GetProperty(name + "Weight")!.SetValue(o, 2.0);
            var scheduler = new StylingScheduler(diffusion, o, resnet);
            using var inputs = new StylingScheduler.Inputs
            {
                Network = net, ImageChannels = 3, Source = source, Target = target, ZeConLayers = StylingScheduler.ZeConLayersFor(o, net),
                ReferenceKind = o.ContentReference,
            };
            scheduler.Prepare(inputs);
            Tensor Total(Tensor x, out StylingLossTerms terms)
            {
                using var patches = new Generator(21, CPU);
                var g = scheduler.Guidance(inputs, x, 5, previous, [patches]);
                terms = g.Terms;
                return g.Gradient;
            }
            var grad = Total(xt, out var t0);
            var values = new[] { t0.ZeCon, t0.Perceptual, t0.Mse, t0.Style, t0.L2, t0.Semantic, t0.Range };
            for (int k = 0; k < names.Length; k++)
                if (names[k] != name) Assert.AreEqual(0.0, values[k], $"{name} alone: the {names[k]} term is off");
            Assert.AreEqual(2.0 * values[Array.IndexOf(names, name)], t0.Total, 1e-9 * Math.Abs(t0.Total), $"{name}: total = λ·term");
            Assert.IsTrue(grad.abs().max().ToDouble() > 0, $"{name}: non-zero gradient");
            using var dirGen = new Generator(31, CPU);
            const double h = 1e-6;
            for (int k = 0; k < 2; k++)
            {
                var v = randn(xt.shape, ScalarType.Float64, generator: dirGen);
                double analytic = (grad * v).sum().ToDouble();
                Total(xt + v * S(h), out var plus);
                Total(xt - v * S(h), out var minus);
                double numeric = (plus.Total - minus.Total) / (2 * h);
                Assert.IsTrue(Math.Abs(analytic - numeric) <= 1e-5 * Math.Max(1, Math.Abs(numeric)),
                    $"{name}: ∇_x_t ℓ(x̂₀(x_t)) along direction {k}: autograd {analytic:G10}, finite differences {numeric:G10}");
            }
        }
    }
}

/// <summary>
/// The styling stage through the ML.NET API on 16 px data with a tiny joint diffusion model: λ = 0 is the plain reverse
/// process bit for bit; guidance moves the source towards the target; seeded; ml.Model.Save/Load round trip; errors.
/// </summary>
[TestClass]
public sealed class StyleStageTests
{
    [ClassInitialize]
    public static void Init(TestContext _) => SingleThreaded.Enter();

    [ClassCleanup]
    public static void Cleanup() => SingleThreaded.Leave();

    /// <summary>A 16 px row: the original, its mask and an image to style.</summary>
    public sealed class StyleRow
    {
        [VectorType(3, 16, 16)] public float[] Image { get; set; } = [];
        [VectorType(1, 16, 16)] public float[] Mask { get; set; } = [];
        [VectorType(3, 16, 16)] public float[] InpaintedImage { get; set; } = [];
    }

    /// <summary>A target of another size.</summary>
    public sealed class MismatchRow
    {
        [VectorType(3, 16, 16)] public float[] InpaintedImage { get; set; } = new float[3 * 16 * 16];
        [VectorType(3, 8, 8)] public float[] Image { get; set; } = new float[3 * 8 * 8];
        [VectorType(1, 16, 16)] public float[] Mask { get; set; } = new float[16 * 16];
    }

    private static List<StyleRow> Rows(int n, int seed) =>
        WorkoutRows.Discs16(n, seed).Select(r => new StyleRow
        {
            Image = r.Image, Mask = r.Mask,
            InpaintedImage = r.Image.Select((v, i) => i < 256 ? 1f - v : 0.5f * v).ToArray(),   // red inverted, green and blue halved
        }).ToList();

    private static JointDiffusionOptions TinyJoint() => new()
    {
        Network = new DiffusionUNetOptions { BaseChannels = 16, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 16, GroupNormGroups = 8 },
        TimeSteps = 1000, Epochs = 2, BatchSize = 4, LearningRate = 2e-3, EmaDecay = 0.9, SampleSteps = 4,
    };

    private static StyleOptions Off() => new()
    {
        SampleSteps = 10, SkipSteps = 4, ZeConWeight = 0, PerceptualWeight = 0, MseWeight = 0, StyleWeight = 0, L2Weight = 0,
        SemanticWeight = 0, RangeWeight = 0, ZeConPatches = 16, FeatureImageSize = 32, TransformBatchSize = 2,
    };

    private static List<float[]> Column(MLDataView view, string name)
    {
        var list = new List<float[]>();
        using var cur = view.GetRowCursor([view.Schema[name]]);
        var get = cur.GetGetter<VBuffer<float>>(view.Schema[name]);
        VBuffer<float> v = default;
        while (cur.MoveNext())
        {
            get(ref v);
            list.Add(v.DenseValues().ToArray());
        }
        return list;
    }

    private static double MeanAbs(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Average();

    private static void Log(string what, Stopwatch sw) => Console.WriteLine($"{what}: {sw.Elapsed.TotalSeconds:F1} s");

    [TestMethod]
    public void ZeroWeights_AreThePlainReverseProcess_BitForBit()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 1);
        var rows = Rows(2, 1);
        using var joint = ml.MedSeg().Generation.JointDiffusion(TinyJoint()).Fit(ml.Data.LoadFromEnumerable(rows));
        using var stage = ml.MedSeg().Generation.Style(joint, Off()).Fit(ml.Data.LoadFromEnumerable(rows));
        using var scope = NewDisposeScope();
        var src = tensor(rows[1].InpaintedImage, [1, 3, 16, 16]);
        var tgt = tensor(rows[1].Image, [1, 3, 16, 16]);
        var m = tensor(rows[1].Mask, [1, 1, 16, 16]);
        var steps = new List<StylingStep>();
        var styled = stage.Style(src, tgt, m, firstRow: 1, observer: s => steps.Add(s with { State = s.State.clone().DetachFromDisposeScope() }));
        Assert.AreEqual(6, steps.Count, "SampleSteps − SkipSteps reverse steps");
        Assert.IsTrue(steps.All(s => s.Terms is null && s.Estimate is null), "nothing is differentiated");
        CollectionAssert.AreEqual(new[] { 5, 4, 3, 2, 1, 0 }, steps.Select(s => s.Step).ToArray());

        // The plain process: q-sample the source to respaced step 5, DDPM reverse steps, the mask channel known.
        var net = joint.NetworkFor(null);
        var spaced = joint.Diffusion.Schedule.Respace(10);
        using var g = new Generator(MLNetMedSeg.Pipeline.MedSegContext.MixSeed(stage.SamplingSeed, "row 1", 0), CPU);
        var x0 = JointDiffusionTransformer.ToModelSpace(tgt, m, "Mask");
        var x = JointDiffusionTransformer.ToModelSpace(src, m, "Mask") * S(Math.Sqrt(spaced.AlphasCumprod[5]))
            + randn([1, 4, 16, 16], generator: g) * S(Math.Sqrt(1 - spaced.AlphasCumprod[5]));
        var keep = cat([zeros([1, 3, 16, 16], ScalarType.Bool), ones([1, 1, 16, 16], ScalarType.Bool)], 1);
        var ddpm = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddpm, Steps = 10 };
        var scheduler = new RePaintScheduler(joint.Diffusion);
        using (no_grad())
            for (int i = 5; i >= 0; i--)
            {
                var next = joint.Diffusion.ReverseStep(net.forward, x, null, spaced, i, ddpm, [g]);
                x = RePaintScheduler.Merge(scheduler.KnownSample(x0, spaced, i, [g]), next, keep);
                Assert.IsTrue(x.eq(steps[5 - i].State).all().item<bool>(), $"step {i}: the stage's state is the plain process's, bit for bit");
            }
        var expected = GaussianDiffusion.ToImageRange(x.narrow(1, 0, 3));
        Assert.IsTrue(styled.eq(expected).all().item<bool>(), "λ = 0: the plain reverse process, bit for bit");
        Log("zero weights", sw);
    }

    [TestMethod]
    public void Guidance_MovesTheSourceTowardsTheTarget()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 2);
        var rows = Rows(2, 2);
        var data = ml.Data.LoadFromEnumerable(rows);
        using var joint = ml.MedSeg().Generation.JointDiffusion(TinyJoint()).Fit(data);
        List<float[]> Run(StyleOptions o)
        {
            using var stage = ml.MedSeg().Generation.Style(joint, o).Fit(data);
            return Column(stage.Transform(data), "StyledImage");
        }
        var plain = Run(Off());
        // Pixel guidance with Table A.3's weights (λ_L2 10000, λ_MSE 5000) and the default scaling (β̃_t, H·W/256²): on
        // this 16 px model about 13 % closer to the target than the unguided steps (> 10 % asserted).
        var pixel = Off();
        pixel.L2Weight = 10000;
        pixel.MseWeight = 5000;
        var guided = Run(pixel);
        for (int r = 0; r < rows.Count; r++)
        {
            double dPlain = MeanAbs(plain[r], rows[r].Image), dGuided = MeanAbs(guided[r], rows[r].Image);
            Console.WriteLine($"row {r}: |styled − target| plain {dPlain:F4}, pixel-guided {dGuided:F4}");
            Assert.IsTrue(dGuided < 0.9 * dPlain, $"row {r}: pixel guidance moves towards the target: {dGuided:F4} vs unguided {dPlain:F4}");
        }
        // Semantic guidance alone (ℓ_sty on the ImageNet ResNet-18's pooled feature's direction, DiffuseIT's mean squared
        // distance) lowers the distance of the directions to the target's. Table A.3's λ_sty (10⁴) lowers it by ~8 % on
        // this barely trained 16 px model in 6 steps; 4·10⁴ is used to see the direction clearly.
        var style = Off();
        style.StyleWeight = 40000;
        var styled = Run(style);
        using var resnet = StyleFeatureNetwork.ImageNet(null, 32, CPU);
        using var scope = NewDisposeScope();
        Tensor Emb(List<float[]> images)
        {
            var e = resnet.Features(stack(images.Select(i => tensor(i, [3, 16, 16])).ToArray())).Embedding;
            return e / e.norm(1, true);   // the direction that ℓ_sty compares (NormalizeEmbedding)
        }
        var eTarget = Emb(rows.Select(r => r.Image).ToList());
        var lPlain = StylingLosses.EmbeddingDistance(eTarget, Emb(plain));
        var lStyled = StylingLosses.EmbeddingDistance(eTarget, Emb(styled));
        Console.WriteLine($"ℓ_sty plain [{string.Join(", ", lPlain.data<float>().ToArray())}], style-guided [{string.Join(", ", lStyled.data<float>().ToArray())}]");
        Assert.IsTrue(lStyled.lt(lPlain * S(0.9)).all().item<bool>(), "ℓ_sty to the target falls (by > 10 %) with style guidance");
        Log("guidance", sw);
    }

    [TestMethod]
    public void TableA3Weights_StayBounded_ThePrintedEquationDiverges_WithAClearError()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 5);
        var rows = Rows(2, 4);
        var data = ml.Data.LoadFromEnumerable(rows);
        using var joint = ml.MedSeg().Generation.JointDiffusion(TinyJoint()).Fit(data);
        var paper = new StyleOptions { SampleSteps = 10, SkipSteps = 4, ZeConPatches = 16, FeatureImageSize = 32, TransformBatchSize = 2 };
        using (var stage = ml.MedSeg().Generation.Style(joint, paper).Fit(data))
        using (var scope = NewDisposeScope())
        {
            double largest = 0;
            stage.Style(tensor(rows[0].InpaintedImage, [1, 3, 16, 16]), tensor(rows[0].Image, [1, 3, 16, 16]), tensor(rows[0].Mask, [1, 1, 16, 16]),
                observer: s => largest = Math.Max(largest, s.State.abs().max().ToDouble()));
            Console.WriteLine($"Table A.3's weights, default scaling: largest |x_t| {largest:F2}");
            // The noised source itself reaches |x| ≈ 3.3 here; before the β̃_t and H·W/256² scaling and the normalised
            // embedding, the same run reached |x_t| ≈ 2.5·10⁴ (ℓ_sty) and the 32 px Kvasir model produced NaN.
            Assert.IsTrue(largest < 10, $"every state stays at the scale of the noised image (largest |x_t| {largest:F2})");
        }
        var printed = new StyleOptions
        {
            SampleSteps = 10, SkipSteps = 4, ZeConPatches = 16, FeatureImageSize = 32, TransformBatchSize = 2,
            GuidanceScaling = StyleGuidanceScaling.None, WeightsImageSize = null, EmbeddingLoss = StyleEmbeddingLoss.Norm, SemanticCutoff = 0,
            NormalizeEmbedding = false,
        };
        using (var stage = ml.MedSeg().Generation.Style(joint, printed).Fit(data))
        {
            var e = Assert.ThrowsException<InvalidOperationException>(() => Column(stage.Transform(data), "StyledImage"));
            Console.WriteLine(e.Message);
            StringAssert.Contains(e.Message, "styling diverged at respaced step");
            StringAssert.Contains(e.Message, "rows 0..1");
            StringAssert.Contains(e.Message, "Lower the loss weights");
        }
        Log("Table A.3 weights", sw);
    }

    [TestMethod]
    public void AllTerms_Seeded_ProgressReported_SaveLoadIdentical()
    {
        var sw = Stopwatch.StartNew();
        var rows = Rows(3, 3);
        var o = Off();
        (o.ZeConWeight, o.PerceptualWeight, o.MseWeight, o.StyleWeight, o.L2Weight, o.SemanticWeight, o.RangeWeight) = (5, 1, 20, 30, 40, 10, 2);
        float[][] Styled(MLContext ml, Action<StyleTransformer>? more = null)
        {
            var data = ml.Data.LoadFromEnumerable(rows);
            using var joint = ml.MedSeg().Generation.JointDiffusion(TinyJoint()).Fit(data);
            using var stage = ml.MedSeg().Generation.Style(joint, o).Fit(data);
            var result = Column(stage.Transform(data), "StyledImage").ToArray();
            more?.Invoke(stage);
            return result;
        }
        var ml1 = new MLContext(seed: 3);
        var progress = new List<MLNetMedSeg.Pipeline.TrainingProgress>();
        ml1.MedSeg().Progress = new Progress(progress);
        var path = Path.Combine(Path.GetTempPath(), $"style-{Guid.NewGuid():N}.zip");
        try
        {
            var a = Styled(ml1, stage =>
            {
                var data = ml1.Data.LoadFromEnumerable(rows);
                ml1.Model.Save(stage, data.Schema, path);
                var loaded = new MLContext(seed: 99).Model.Load(path, out _);
                var again = Column(loaded.Transform(data), "StyledImage");
                var before = Column(stage.Transform(data), "StyledImage");
                for (int i = 0; i < rows.Count; i++) CollectionAssert.AreEqual(before[i], again[i], $"row {i} after ml.Model.Save/Load");
                Assert.IsInstanceOfType<StyleTransformer>(loaded);
                (loaded as IDisposable)?.Dispose();
            });
            Assert.IsTrue(a.All(x => x.All(v => v >= 0 && v <= 1 && float.IsFinite(v))));
            CollectionAssert.AreNotEqual(a[0], rows[0].InpaintedImage, "the source is changed");
            var b = Styled(new MLContext(seed: 3));
            for (int i = 0; i < rows.Count; i++) CollectionAssert.AreEqual(a[i], b[i], $"row {i}: same MLContext seed, same styled image");
            var c = Styled(new MLContext(seed: 4));
            CollectionAssert.AreNotEqual(a[0], c[0], "another seed, another result");
            var styleSteps = progress.Where(p => p.Stage == "Style").ToList();
            Assert.AreEqual(2 * (6 + 6), styleSteps.Count(p => p.Loss is not null), "one report per reverse step and batch (batches of 2 and 1), two Transforms");
            Assert.IsTrue(styleSteps.All(p => p.StepsPerEpoch == 6));
        }
        finally { File.Delete(path); }
        Log("all terms / seeded / save-load", sw);
    }

    [TestMethod]
    public void Workout_WithAMaskConditionedImageModel_AndTheTensorCallMatchesTransform()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 6);
        var rows = Rows(3, 6);
        using var image = ml.MedSeg().Generation.ImageDiffusion(new ImageDiffusionOptions
        {
            Network = TinyJoint().Network, TimeSteps = 50, Epochs = 1, BatchSize = 4, LearningRate = 2e-3, EmaDecay = 0.9, SampleSteps = 4,
        }).Fit(ml.Data.LoadFromEnumerable(rows));
        var o = Off();
        (o.ZeConWeight, o.PerceptualWeight, o.L2Weight, o.RangeWeight) = (5, 1, 40, 2);
        var r = MLNetMedSeg.Testing.MLNetWorkout.Run(ml, ml.MedSeg().Generation.Style(image, o), rows, "InpaintedImage",
            new MLNetMedSeg.Testing.MLNetWorkoutOptions { MoreRequiredColumns = ["Image", "Mask"] });
        CollectionAssert.AreEqual(new[] { "StyledImage: Vector<Single, 3, 16, 16>" }, r.AddedColumns.ToArray());
        Assert.AreEqual(3, r.PredictionEngineRows);
        using var stage = ml.MedSeg().Generation.Style(image, o).Fit(ml.Data.LoadFromEnumerable(rows));
        var column = Column(stage.Transform(ml.Data.LoadFromEnumerable(rows)), "StyledImage");
        using var scope = NewDisposeScope();
        var y = stage.Style(tensor(rows[2].InpaintedImage, [1, 3, 16, 16]), tensor(rows[2].Image, [1, 3, 16, 16]), tensor(rows[2].Mask, [1, 1, 16, 16]), firstRow: 2);
        var expected = column[2];
        var actual = y.flatten().data<float>().ToArray();
        Assert.IsTrue(expected.Zip(actual, (a, b) => Math.Abs(a - b)).Max() < 1e-4, "Style(…, firstRow: 2) = Transform's row 2 (batch rounding aside)");
        Log("image model workout", sw);
    }

    /// <summary>A styling row with a cluster id.</summary>
    public sealed class ClusterStyleRow
    {
        [VectorType(3, 16, 16)] public float[] Image { get; set; } = [];
        [VectorType(1, 16, 16)] public float[] Mask { get; set; } = [];
        [VectorType(3, 16, 16)] public float[] InpaintedImage { get; set; } = [];
        public string Cluster { get; set; } = "";
    }

    [TestMethod]
    public void PerClusterJointModel_StylesEachRowWithItsClustersNetwork()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 7);
        var rows = Rows(4, 7).Select((r, i) => new ClusterStyleRow { Image = r.Image, Mask = r.Mask, InpaintedImage = r.InpaintedImage, Cluster = i % 2 == 0 ? "a" : "b" }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var jo = TinyJoint();
        jo.Epochs = 1;
        jo.ClusterColumnName = "Cluster";
        using var joint = ml.MedSeg().Generation.JointDiffusion(jo).Fit(data);
        var o = Off();
        (o.ZeConWeight, o.L2Weight) = (5, 40);
        using var stage = ml.MedSeg().Generation.Style(joint, o).Fit(data);
        var column = Column(stage.Transform(data), "StyledImage");
        using var scope = NewDisposeScope();
        Tensor Call(int row, string cluster) => stage.Style(tensor(rows[row].InpaintedImage, [1, 3, 16, 16]), tensor(rows[row].Image, [1, 3, 16, 16]),
            tensor(rows[row].Mask, [1, 1, 16, 16]), cluster, firstRow: row);
        var own = Call(3, "b").flatten().data<float>().ToArray();
        var other = Call(3, "a").flatten().data<float>().ToArray();
        Assert.IsTrue(column[3].Zip(own, (a, b) => Math.Abs(a - b)).Max() < 1e-4, "row 3 (cluster b) is styled with cluster b's network");
        Assert.IsTrue(column[3].Zip(other, (a, b) => Math.Abs(a - b)).Max() > 1e-3, "cluster a's network gives another image");
        var e = Assert.ThrowsException<SchemaException>(() => ml.MedSeg().Generation.Style(joint, o).Fit(ml.Data.LoadFromEnumerable(Rows(2, 1))));
        StringAssert.Contains(e.Message, "'Cluster'");
        Log("per-cluster styling", sw);
    }

    private sealed class Progress(List<MLNetMedSeg.Pipeline.TrainingProgress> items) : IProgress<MLNetMedSeg.Pipeline.TrainingProgress>
    {
        public void Report(MLNetMedSeg.Pipeline.TrainingProgress value) { lock (items) items.Add(value); }
    }

    [TestMethod]
    public void BadInputErrorsNameTheColumnOrArgument()
    {
        var ml = new MLContext(seed: 5);
        var rows = Rows(2, 5);
        var data = ml.Data.LoadFromEnumerable(rows);
        using var joint = ml.MedSeg().Generation.JointDiffusion(TinyJoint()).Fit(data);
        var style = ml.MedSeg().Generation.Style(joint, Off());
        var noSource = ml.Transforms.DropColumns("InpaintedImage").Fit(data).Transform(data);
        var e = Assert.ThrowsException<SchemaException>(() => style.Fit(noSource));
        StringAssert.Contains(e.Message, "'InpaintedImage'");
        e = Assert.ThrowsException<SchemaException>(() => style.Fit(ml.Data.LoadFromEnumerable(new[] { new MismatchRow() })));
        StringAssert.Contains(e.Message, "'Image'");
        StringAssert.Contains(e.Message, "8×8");
        var a = Assert.ThrowsException<ArgumentException>(() => ml.MedSeg().Generation.Style(joint, new StyleOptions { SampleSteps = 10, SkipSteps = 10 }));
        Assert.AreEqual("SkipSteps", a.ParamName);
        a = Assert.ThrowsException<ArgumentException>(() => ml.MedSeg().Generation.Style(joint, new StyleOptions { SampleSteps = 1001 }));
        StringAssert.Contains(a.Message, "TimeSteps");
        a = Assert.ThrowsException<ArgumentException>(() => ml.MedSeg().Generation.Style(joint, new StyleOptions { L2Weight = -1 }));
        Assert.AreEqual("L2Weight", a.ParamName);
        var zecon = Off();
        zecon.ZeConWeight = 1;
        zecon.ZeConLayers = [0, 40];
        a = Assert.ThrowsException<ArgumentException>(() => ml.MedSeg().Generation.Style(joint, zecon));
        StringAssert.Contains(a.Message, "40");
        a = Assert.ThrowsException<ArgumentException>(() => ml.MedSeg().Generation.Style(ml.Transforms.CopyColumns("Copy", "Image").Fit(data), Off()));
        Assert.AreEqual("diffusionModel", a.ParamName);
        using var stage = style.Fit(data);
        using var scope = NewDisposeScope();
        a = Assert.ThrowsException<ArgumentException>(() => stage.Style(zeros([1, 3, 16, 16]), zeros([1, 3, 8, 8]), zeros([1, 1, 16, 16])));
        Assert.AreEqual("targets", a.ParamName);
        a = Assert.ThrowsException<ArgumentException>(() => stage.Style(zeros([1, 3, 16, 16]), zeros([1, 3, 16, 16]), zeros([1, 1, 8, 8])));
        Assert.AreEqual("masks", a.ParamName);
        // A cancelled token stops styling at the first reverse step.
        var ml2 = new MLContext(seed: 5);
        using var cts = new CancellationTokenSource();
        ml2.MedSeg().CancellationToken = cts.Token;
        using var cancellable = ml2.MedSeg().Generation.Style(joint, Off()).Fit(data);
        cts.Cancel();
        Assert.ThrowsException<OperationCanceledException>(() => cancellable.Style(zeros([1, 3, 16, 16]), zeros([1, 3, 16, 16]), zeros([1, 1, 16, 16])));
        var d = StyleOptions.PaperPreset();
        Assert.AreEqual((200, 80, 500.0, 100.0, 5000.0, 10000.0, 10000.0, 40000.0, 200.0),
            (d.SampleSteps, d.SkipSteps, d.ZeConWeight, d.PerceptualWeight, d.MseWeight, d.StyleWeight, d.L2Weight, d.SemanticWeight, d.RangeWeight),
            "Table A.1 respacing / skip and Table A.3's weights");
    }
}
