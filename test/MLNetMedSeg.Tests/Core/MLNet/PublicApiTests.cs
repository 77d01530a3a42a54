using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Segmentation.Networks;
using MLNetMedSeg.Tests.Segmentation.Networks;
using TorchSharp;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Core.MLNet;

/// <summary>
/// The library's public surface is ML.NET's: no look-alike contract is exported, and what applications need beyond
/// the stages (generated pairs, offline attacked pairs, per-epoch validation in a chain, tensors out of a column)
/// works on ML.NET data views.
/// </summary>
[TestClass]
public sealed class PublicApiTests
{
    [TestMethod]
    public void NoLookAlikeContractIsPublic()
    {
        var exported = typeof(MLNetMedSeg.Segmentation.SegmentationTrainer).Assembly.GetExportedTypes();
        string[] lookAlikes = ["IDataView", "ITransformer", "IEstimator`1", "DataViewSchema", "DataViewRowCursor", "MedSegContext",
            "EstimatorChain`1", "TransformerChain`1", "ModelLoaderRegistry", "ModelSaveContext", "ModelLoadContext", "InMemoryDataView",
            "TransformerScope", "CatalogBase", "DataCatalog", "ModelOperationsCatalog"];
        var found = exported.Where(t => t.Namespace?.StartsWith("MLNetMedSeg", StringComparison.Ordinal) == true && lookAlikes.Contains(t.Name))
            .Select(t => t.FullName).ToList();
        Assert.AreEqual(0, found.Count, "public look-alikes of ML.NET contracts: " + string.Join(", ", found));
        // Every public estimator is an ML.NET estimator, every public fitted stage an ML.NET transformer.
        foreach (var t in exported.Where(t => t is { IsClass: true, IsAbstract: false }))
        {
            if (t.Name.EndsWith("Estimator", StringComparison.Ordinal) || t.Name.EndsWith("Trainer", StringComparison.Ordinal))
                Assert.IsTrue(t.GetInterfaces().Any(i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IEstimator<>)),
                    $"{t.FullName} is not an ML.NET IEstimator");
            if (t.IsSubclassOf(typeof(StageTransformer)))
                Assert.IsTrue(typeof(ITransformer).IsAssignableFrom(t), $"{t.FullName} is not an ML.NET ITransformer");
        }
    }

    private static DiffusionUNetOptions TinyUNet() => new()
    {
        BaseChannels = 16, ChannelMultipliers = [1, 2], AttentionResolutions = [], HeadChannels = 16, GroupNormGroups = 8,
    };

    private static SegmentationTrainerOptions TinySegmentation(int epochs = 1) => new()
    {
        Network = NetworkTestUtil.Small(SegmentationArchitecture.UNet, depth: 2), Epochs = epochs, BatchSize = 4, LearningRate = 1e-2,
        Loss = new SegmentationLossOptions { Kind = SegmentationLossKind.DiceBce },
    };

    private sealed class IdRow
    {
        public string Id { get; set; } = "";
    }

    [TestMethod]
    public void GeneratePairs_DrawsKPairsPerRow_AsAnMLNetView_ReadTensorsReadsThem()
    {
        var ml = new MLContext(seed: 11);
        var train = ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(6, 11));
        using var masks = ml.MedSeg().Generation.MaskDiffusion(new MaskDiffusionOptions
        {
            Network = TinyUNet(), Steps = 50, Epochs = 1, BatchSize = 4, LearningRate = 2e-3, SampleSteps = 4, SamplesPerRow = 2,
        }).Fit(train);
        using var images = ml.MedSeg().Generation.ImageDiffusion(new ImageDiffusionOptions
        {
            Network = TinyUNet(), TimeSteps = 50, Epochs = 1, BatchSize = 4, LearningRate = 2e-3, SampleSteps = 4, ConditionColumn = "SyntheticMask",
        }).Fit(train);
        var ids = ml.Data.LoadFromEnumerable(new[] { "a", "b", "c" }.Select(i => new IdRow { Id = i }).ToList());

        var pairs = ml.MedSeg().Generation.GeneratePairs(masks, images, ids);
        Assert.AreEqual("Vector<Single, 1, 16, 16>", pairs.Schema["SyntheticMask"].Type.ToString());
        Assert.AreEqual("Vector<Single, 3, 16, 16>", pairs.Schema["SyntheticImage"].Type.ToString());
        CollectionAssert.AreEqual(new[] { "a", "a", "b", "b", "c", "c" }, pairs.GetColumn<string>("Id").ToArray(), "k = 2 pairs per row, in row order");

        var m = MLNetData.ReadTensors(pairs, "SyntheticMask");
        var x = MLNetData.ReadTensors(pairs, "SyntheticImage");
        try
        {
            Assert.AreEqual(6, m.Count);
            foreach (var t in m)
            {
                CollectionAssert.AreEqual(new long[] { 1, 16, 16 }, t.shape);
                Assert.IsTrue(t.eq(S(0)).logical_or(t.eq(S(1))).all().item<bool>(), "generated masks are binary");
            }
            foreach (var t in x)
            {
                CollectionAssert.AreEqual(new long[] { 3, 16, 16 }, t.shape);
                Assert.IsTrue(t.ge(S(0)).logical_and(t.le(S(1))).all().item<bool>(), "images in [0,1]");
            }
            // Same MLContext seed, same models → the same pairs (seeded per row).
            var again = MLNetData.ReadTensors(ml.MedSeg().Generation.GeneratePairs(masks, images, ids), "SyntheticImage");
            for (int i = 0; i < x.Count; i++) Assert.IsTrue(x[i].eq(again[i]).all().item<bool>(), $"pair {i} differs on a second draw");
            foreach (var t in again) t.Dispose();
        }
        finally
        {
            foreach (var t in m.Concat(x)) t.Dispose();
        }

        var missing = Assert.ThrowsException<MLNetMedSeg.Data.SchemaException>(() => MLNetData.ReadTensors(pairs, "Nope"));
        Assert.AreEqual("Nope", missing.ColumnName);
        var text = Assert.ThrowsException<MLNetMedSeg.Data.SchemaException>(() => MLNetData.ReadTensors(pairs, "Id"));
        StringAssert.Contains(text.Message, "not a tensor column");
    }

    [TestMethod]
    public void AdversarialPairs_RealRowsThenAttackedOnes_FlagFeedsEq11()
    {
        var ml = new MLContext(seed: 12);
        var rows = WorkoutRows.Discs16(5, 12);
        var data = ml.Data.LoadFromEnumerable(rows);
        using var segmenter = ml.MedSeg().Trainers.Segmentation(TinySegmentation()).Fit(data);

        var pairs = ml.MedSeg().Augmentation.AdversarialPairs(data, segmenter, AdversarialAttackOptions.FgsmPreset(0.05));
        Assert.AreEqual(15L, pairs.GetRowCount(), "N real + 2N attacked (DASP's N′ = 2N)");
        var flag = pairs.GetColumn<double>("IsAugmented").ToArray();
        CollectionAssert.AreEqual(Enumerable.Repeat(0.0, 5).Concat(Enumerable.Repeat(1.0, 10)).ToArray(), flag);
        var images = MLNetData.ReadTensors(pairs, "Image");
        try
        {
            using var original = torch.tensor(rows[0].Image).reshape(3, 16, 16);
            Assert.IsTrue(images[0].eq(original).all().item<bool>(), "the real rows come first, unchanged");
            Assert.IsFalse(images[5].eq(original).all().item<bool>(), "the attacked copy of row 0 differs from it");
            double change = images[5].sub(original).abs().max().item<float>();
            Assert.AreEqual(0.05, change, 1e-5, "FGSM moves pixels by ε at most (and some by ε exactly)");
        }
        finally
        {
            foreach (var t in images) t.Dispose();
        }

        // A second fit weighs real and attacked rows by Eq. 11 through the flag.
        var o = TinySegmentation();
        o.SampleWeightColumn = "IsAugmented";
        using var retrained = ml.MedSeg().Trainers.Segmentation(o).Fit(pairs);
        Assert.AreEqual(1, retrained.History.Count);
    }

    [TestMethod]
    public void ValidationSet_ValidatesATrainerInsideAChain_EveryEpoch()
    {
        var ml = new MLContext(seed: 13);
        var train = ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(6, 13));
        var validation = ml.Data.LoadFromEnumerable(WorkoutRows.Discs16(3, 14));
        var o = TinySegmentation(epochs: 2);
        o.ValidationSet = validation;
        var chain = ml.Transforms.CopyColumns("Image", "Image").Append(ml.MedSeg().Trainers.Segmentation(o));
        using var model = chain.Fit(train);
        var history = model.LastTransformer.History;
        Assert.AreEqual(2, history.Count);
        Assert.IsTrue(history.All(h => h.ValidationDice is double d && d >= 0 && d <= 1), "mDice on the validation set every epoch");

        // A validation set without the mask column is refused before training, naming the column.
        var o2 = TinySegmentation();
        o2.ValidationSet = ml.Transforms.DropColumns("Mask").Fit(validation).Transform(validation);
        var e = Assert.ThrowsException<MLNetMedSeg.Data.SchemaException>(() => ml.MedSeg().Trainers.Segmentation(o2).Fit(train));
        Assert.AreEqual("Mask", e.ColumnName);
        StringAssert.Contains(e.Message, "ValidationSet", "the error says which data lacks the column");
    }
}
