using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Tests.Augmentation.Adversarial;
using MLNetMedSeg.Tests.Core.MLNet;

namespace MLNetMedSeg.Tests.Augmentation;

/// <summary>
/// DASP as an ML.NET EstimatorChain (DESIGN.md's example): LoadImages → ResizeImages → LoadMasks → mask diffusion →
/// image diffusion → adversarial training → segmentation trainer. The augmenters act while the chain is fitted and
/// vanish when the fitted model scores.
/// </summary>
[TestClass]
public sealed class AugmentedChainTests
{
    private const int S = 16;
    private static string _root = "";

    [ClassInitialize]
    public static void WriteData(TestContext _)
    {
        _root = Path.Combine(Path.GetTempPath(), "medseg-chain-" + Guid.NewGuid().ToString("N"));
        MLNetPipelineTests.WriteDiscs(_root, 8, 21, size: 24);
    }

    [ClassCleanup]
    public static void Cleanup()
    {
        try { Directory.Delete(_root, true); } catch (IOException) { }
    }

    private static DiffusionUNetOptions TinyUNet() => new()
    {
        BaseChannels = 16, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 16, GroupNormGroups = 8,
    };

    private static IDataView Pairs(MLContext ml) =>
        ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(_root, "images"), Path.Combine(_root, "masks"));

    private static EstimatorChain<MLNetMedSeg.Data.Transforms.LoadMaskTransformer> Loading(MLContext ml) =>
        ml.Transforms.LoadImages("Image", null, "ImagePath")
            .Append(ml.Transforms.ResizeImages("Image", S, S))
            .Append(ml.MedSeg().Transforms.LoadMasks("Mask", null, "MaskPath", S, S));

    private static MaskDiffusionEstimator Masks(MLContext ml) => ml.MedSeg().Generation.MaskDiffusion(new MaskDiffusionOptions
    {
        Network = TinyUNet(), Steps = 50, Epochs = 2, BatchSize = 8, LearningRate = 2e-3, EmaDecay = 0.99, SampleSteps = 5, SamplesPerRow = 2,
    });

    private static ImageDiffusionEstimator Images(MLContext ml) => ml.MedSeg().Generation.ImageDiffusion(new ImageDiffusionOptions
    {
        ImageChannels = 3, Network = TinyUNet(), TimeSteps = 50, Epochs = 2, BatchSize = 8, LearningRate = 2e-3, EmaDecay = 0.99, SampleSteps = 5,
    });

    private static SegmentationTrainerOptions Seg() => new()
    {
        Network = AdversarialTestKit.TinyNet(), Epochs = 2, BatchSize = 4, LearningRate = 3e-2,
        Loss = new SegmentationLossOptions { Kind = SegmentationLossKind.DiceBce },
    };

    private static float[][] Probabilities(IDataView scored)
    {
        var col = scored.Schema["Probability"];
        var rows = new List<float[]>();
        using var cur = scored.GetRowCursor([col]);
        var get = cur.GetGetter<VBuffer<float>>(col);
        VBuffer<float> b = default;
        while (cur.MoveNext())
        {
            get(ref b);
            rows.Add(b.DenseValues().ToArray());
        }
        return rows.ToArray();
    }

    public sealed class PathInput
    {
        public string ImagePath { get; set; } = "";
        public string MaskPath { get; set; } = "";
    }

    public sealed class ProbabilityOutput
    {
        [VectorType(1, S, S)]
        public float[] Probability { get; set; } = [];
    }

    [TestMethod]
    public void CdalAfterTheGenerators_TrainsOnRealPlusGeneratedPairs_AndRunsAdversarialTrainingOnline()
    {
        var ml = new MLContext(seed: 6);
        var log = new List<(string Source, string Message)>();
        ml.Log += (_, e) => { lock (log) log.Add((e.Source, e.Message)); };
        var cdal = new MLNetMedSeg.Segmentation.Cdal.CdalTrainerOptions
        {
            Cdal = MLNetMedSeg.Tests.Segmentation.Cdal.CdalTestUtil.Small(S), Epochs = 1, BatchSize = 4, PredictionBatchSize = 4,
        };
        cdal.Cdal.Samples = 2;
        var data = Pairs(ml);
        var model = Loading(ml).Append(Masks(ml)).Append(Images(ml)).Append(ml.MedSeg().Trainers.Cdal(cdal)).Fit(data);
        string Line(string what)
        {
            lock (log) return log.Select(l => l.Message).FirstOrDefault(m => m.Contains(what, StringComparison.Ordinal)) ?? "";
        }
        StringAssert.Contains(Line("generated pairs"), "8 real rows + 16 generated pairs", "cDAL saw the 8 real rows and k = 2 generated pairs per row");
        var scored = model.Transform(data);
        Assert.AreEqual(8, Probabilities(scored).Length, "the augmenters add no rows when the model scores");

        // Adversarial training in the chain: the generated pairs are attacked against the cDAL generator being trained.
        lock (log) log.Clear();
        var withAttack = Loading(ml).Append(Masks(ml)).Append(Images(ml))
            .Append(ml.MedSeg().Augmentation.AdversarialTraining(new AdversarialAttackOptions { Steps = 1, SdEditRespacing = 10, SdEditDepth = 2 }))
            .Append(ml.MedSeg().Trainers.Cdal(cdal));
        var attacked = withAttack.Fit(data);
        string line = Line("generated pairs");
        StringAssert.Contains(line, "8 real rows + 16 generated pairs");
        StringAssert.Contains(line, "attacked online (DiffPgd + W");
        StringAssert.Contains(Line("attacked rows"), "epoch 1: 16 attacked rows", "one attacked copy of each of the 16 generated pairs (the chain stage's default)");
        Assert.AreEqual(1, attacked.OfType<AdversarialTrainingTransformer>().Count());
        var cdalModel = attacked.OfType<MLNetMedSeg.Segmentation.Cdal.CdalTransformer>().Single();
        Assert.IsTrue(double.IsFinite(cdalModel.History.Single().GeneratorLoss));
        var p = Probabilities(attacked.Transform(data));
        Assert.AreEqual(8, p.Length, "one scored row per input row");
        Assert.IsTrue(p.All(r => r.All(v => v >= 0 && v <= 1)));
    }

    [TestMethod]
    public void DesignChain_TrainsOnRealPlusAttackedGeneratedPairs_ThenScoresWithoutTheAugmenters()
    {
        var ml = new MLContext(seed: 5);
        var log = new List<string>();
        ml.Log += (_, e) => { lock (log) log.Add(e.Message); };
        var chain = Loading(ml)
            .Append(Masks(ml))
            .Append(Images(ml))
            .Append(ml.MedSeg().Augmentation.AdversarialTraining(new AdversarialAttackOptions { Steps = 2, SdEditRespacing = 10, SdEditDepth = 2 }))
            .Append(ml.MedSeg().Trainers.Segmentation(Seg()));
        var data = Pairs(ml);
        var model = chain.Fit(data);

        string line;
        lock (log) line = log.FirstOrDefault(m => m.Contains("generated pairs", StringComparison.Ordinal)) ?? "";
        StringAssert.Contains(line, "8 real rows + 16 generated pairs", "the trainer saw the 8 real rows and k = 2 generated pairs per row");
        StringAssert.Contains(line, "DiffPgd + W");
        Assert.AreEqual(1, model.OfType<MaskDiffusionTransformer>().Count());
        Assert.AreEqual(1, model.OfType<AdversarialTrainingTransformer>().Count());

        // Scoring: one row per input row, the input's columns as they were, the segmenter's columns added.
        var scored = model.Transform(data);
        var p1 = Probabilities(scored);
        Assert.AreEqual(8, p1.Length, "the augmenters add no rows when the model scores");
        Assert.IsNull(scored.Schema.GetColumnOrNull("SyntheticMask"), "the mask diffusion adds nothing ML.NET sees");

        string path = Path.Combine(_root, "dasp-chain.zip");
        ml.MedSeg().SaveModel(model, data.Schema, path);
        var ml2 = new MLContext(seed: 77);
        var loaded = ml2.Model.Load(path, out _);
        var p2 = Probabilities(loaded.Transform(Pairs(ml2)));
        for (int r = 0; r < p1.Length; r++) CollectionAssert.AreEqual(p1[r], p2[r], $"row {r}: the loaded chain predicts bit-identically");

        var engine = ml2.Model.CreatePredictionEngine<PathInput, ProbabilityOutput>(loaded);
        var first = Directory.GetFiles(Path.Combine(_root, "images")).Order(StringComparer.Ordinal).First();
        var pred = engine.Predict(new PathInput { ImagePath = first, MaskPath = Path.Combine(_root, "masks", Path.GetFileName(first)) });
        double diff = pred.Probability.Zip(p1[0]).Max(z => Math.Abs(z.First - z.Second));
        Assert.IsTrue(diff < 1e-5, $"PredictionEngine through the augmenters differs by {diff}");
    }

    [TestMethod]
    public void GeneratedMasksWithoutImageDiffusion_TrainerSaysWhatIsMissing()
    {
        var ml = new MLContext(seed: 6);
        var chain = Loading(ml).Append(Masks(ml)).Append(ml.MedSeg().Trainers.Segmentation(Seg()));
        var e = Assert.ThrowsException<InvalidOperationException>(() => chain.Fit(Pairs(ml)));
        StringAssert.Contains(e.Message, "ImageDiffusion");
    }
}
