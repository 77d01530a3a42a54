using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Pipeline;

[TestClass]
public class ChainTests
{
    [TestInitialize]
    public void Init() => TestStages.EnsureRegistered();

    [TestMethod]
    public void Fit_FitsStagesInOrder_AndPassesEachTheTransformedData()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.ConstantImages(4); // images of 1,2,3,4: mean 2.5
        var log = new FitLog();
        var chain = new AddConstantEstimator("Image", 1f, log).Append(new MeanCenterEstimator(log: log));
        using var model = chain.Fit(data);

        CollectionAssert.AreEqual(new[] { "AddConstant:Image", "MeanCenter:Image" }, log.Calls);
        // The mean stage saw the augmented images (2,3,4,5): 3.5.
        Assert.AreEqual(3.5f, model.LastTransformer.MeanValue);
        Assert.AreEqual(2, model.Count);
        Assert.AreEqual(TransformerScope.Training, model[0].Scope, "an IScopedTransformer's default scope");
        Assert.AreEqual(TransformerScope.Everything, model[1].Scope, "a plain transformer's default scope");
        CollectionAssert.AreEqual(new[] { typeof(AddConstantTransformer), typeof(MeanCenterTransformer) },
            model.Select(t => t.Transformer.GetType()).ToArray());
    }

    [TestMethod]
    public void Transform_SkipsTrainingOnlyStages_GetModelForSelectsByScope()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.ConstantImages(4);
        using var model = new AddConstantEstimator("Image", 1f).Append(new MeanCenterEstimator()).Fit(data);

        var scored = model.Transform(data);
        // Scoring: the augmenter is skipped; Centered = x - 3.5 on the original images.
        CollectionAssert.AreEqual(new[] { -2.5f, -1.5f, -0.5f, 0.5f }, TestStages.Column(scored, "Centered").Select(v => v[0]).ToArray());
        CollectionAssert.AreEqual(new[] { 1f, 2f, 3f, 4f }, TestStages.Column(scored, "Image").Select(v => v[0]).ToArray());
        Assert.IsTrue(TestStages.Column(scored, "Centered").All(v => v.Length == 48 && v.All(x => x == v[0])));

        var training = model.GetModelFor(TransformerScope.Training);
        Assert.AreEqual(2, training.Count);
        CollectionAssert.AreEqual(new[] { -1.5f, -0.5f, 0.5f, 1.5f }, TestStages.Column(training.Transform(data), "Centered").Select(v => v[0]).ToArray());
        var scoring = model.GetModelFor(TransformerScope.Scoring);
        Assert.AreEqual(1, scoring.Count);
        Assert.AreSame(model.LastTransformer, scoring.LastTransformer);
        Assert.AreEqual(TransformerScope.Scoring, model.AppliesIn);
        Assert.AreEqual(TransformerScope.Training, training.AppliesIn);
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => model.GetModelFor(TransformerScope.None));
    }

    [TestMethod]
    public void ExplicitScope_OverridesTheTransformersDefault()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.ConstantImages(4);
        // Augmenter applied everywhere: fitted mean 3.5, scoring also adds 1: 2 - 3.5 = -1.5 for the first row.
        using (var everywhere = new EstimatorChain<ITransformer>()
                   .Append(new AddConstantEstimator("Image", 1f), TransformerScope.Everything)
                   .Append(new MeanCenterEstimator()).Fit(data))
        {
            Assert.AreEqual(TransformerScope.Everything, everywhere[0].Scope);
            Assert.AreEqual(-1.5f, TestStages.Column(everywhere.Transform(data), "Centered")[0][0]);
        }
        // Scoring-only: the mean stage is fitted on the original data (2.5), scoring adds 1: 2 - 2.5 = -0.5.
        using var scoringOnly = new EstimatorChain<ITransformer>()
            .Append(new AddConstantEstimator("Image", 1f), TransformerScope.Scoring)
            .Append(new MeanCenterEstimator()).Fit(data);
        Assert.AreEqual(2.5f, scoringOnly.LastTransformer.MeanValue);
        Assert.AreEqual(-0.5f, TestStages.Column(scoringOnly.Transform(data), "Centered")[0][0]);
    }

    [TestMethod]
    public void MissingColumn_FailsAtSchemaCheck_BeforeAnyStageIsFitted()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.ConstantImages(2);
        var log = new FitLog();
        var chain = new AddConstantEstimator("Image", 1f, log)
            .Append(new MeanCenterEstimator("Image", "Centered", log))
            .Append(new MeanCenterEstimator("Mask", "CenteredMask", log));

        var ex = Assert.ThrowsException<SchemaException>(() => chain.GetOutputSchema(data.Schema));
        Assert.AreEqual("Mask", ex.ColumnName);
        StringAssert.Contains(ex.Message, "'Mask'");
        StringAssert.Contains(ex.Message, "stage 2");

        var fitEx = Assert.ThrowsException<SchemaException>(() => chain.Fit(data));
        Assert.AreEqual("Mask", fitEx.ColumnName);
        Assert.AreEqual(0, log.Calls.Count, "no stage may be fitted when a later stage's column is missing");
    }

    [TestMethod]
    public void WronglyTypedColumn_FailsAtSchemaCheck_NamingIt()
    {
        using var scope = torch.NewDisposeScope();
        var labels = new List<object> { torch.zeros([1, 2, 2], ScalarType.Int64) };
        var images = new List<object> { torch.zeros([3, 2, 2]) };
        using var data = InMemoryDataView.Create(("Image", TensorColumnType.Image(3), images), ("Label", new TensorColumnType(ScalarType.Int64, [1, -1, -1]), labels));
        var log = new FitLog();
        var chain = new MeanCenterEstimator("Image", "C1", log).Append(new MeanCenterEstimator("Label", "C2", log));
        var ex = Assert.ThrowsException<SchemaException>(() => chain.Fit(data));
        Assert.AreEqual("Label", ex.ColumnName);
        StringAssert.Contains(ex.Message, "Int64");
        Assert.AreEqual(0, log.Calls.Count);
    }

    [TestMethod]
    public void Fit_HonoursCancellation_BetweenStages_AndDisposesWhatItFitted()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.ConstantImages(2);
        long baseline = TorchRuntime.LiveTensorCount;

        var log = new FitLog();
        var chain = new MeanCenterEstimator(log: log).Append(new AddConstantEstimator("Image", 1f, log));
        using (var cancelled = new CancellationTokenSource())
        {
            cancelled.Cancel();
            Assert.ThrowsException<OperationCanceledException>(() => chain.Fit(data, cancelled.Token));
            Assert.AreEqual(0, log.Calls.Count);
        }

        using var cts = new CancellationTokenSource();
        log.OnFit = _ => cts.Cancel();
        Assert.ThrowsException<OperationCanceledException>(() => chain.Fit(data, cts.Token));
        CollectionAssert.AreEqual(new[] { "MeanCenter:Image" }, log.Calls, "the second stage must not be fitted after cancellation");
        Assert.AreEqual(baseline, TorchRuntime.LiveTensorCount, "the first stage's fitted transformer (holding a tensor) must be disposed");
    }

    [TestMethod]
    public void GetOutputSchema_PropagatesThroughEveryStage()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.ConstantImages(2);
        var chain = new MeanCenterEstimator("Image", "A").Append(new MeanCenterEstimator("A", "B"));
        var schema = chain.GetOutputSchema(data.Schema);
        CollectionAssert.AreEqual(new[] { "Id", "Image", "A", "B" }, schema.Select(c => c.Name).ToArray());
        using var model = chain.Fit(data);
        Assert.AreEqual(schema.ToString(), model.GetOutputSchema(data.Schema).ToString());
        Assert.AreEqual(schema.ToString(), model.Transform(data).Schema.ToString());
        // A transformer chain checks the schema before transforming.
        using var other = InMemoryDataView.Create(("Id", TextColumnType.Instance, new List<object> { "x" }));
        Assert.AreEqual("Image", Assert.ThrowsException<SchemaException>(() => model.Transform(other)).ColumnName);
    }

    [TestMethod]
    public void TransformerAppend_AndEmptyChain()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.ConstantImages(2);
        var aug = new AddConstantEstimator("Image", 10f).Fit(data);
        var mean = new MeanCenterEstimator().Fit(data); // 1.5
        using var chain = aug.Append(mean);
        Assert.AreEqual(TransformerScope.Training, chain[0].Scope);
        Assert.AreSame(mean, chain.LastTransformer);
        Assert.AreEqual(-0.5f, TestStages.Column(chain.Transform(data), "Centered")[0][0]);

        using var empty = new EstimatorChain<ITransformer>().Fit(data);
        Assert.AreEqual(0, empty.Count);
        Assert.AreSame(data, empty.Transform(data));
        Assert.ThrowsException<InvalidOperationException>(() => empty.LastTransformer);
    }

    [TestMethod]
    public void ResolveScope_UsesExplicitThenDefaultThenEverything()
    {
        var aug = new AddConstantTransformer(new AddConstantOptions());
        using var mean = new MeanCenterTransformer(new MeanCenterOptions(), torch.tensor(0f).DetachFromDisposeScope());
        Assert.AreEqual(TransformerScope.Training, ChainExtensions.ResolveScope(aug, TransformerScope.None));
        Assert.AreEqual(TransformerScope.Scoring, ChainExtensions.ResolveScope(aug, TransformerScope.Scoring));
        Assert.AreEqual(TransformerScope.Everything, ChainExtensions.ResolveScope(mean, TransformerScope.None));
        Assert.AreEqual(TransformerScope.TrainTest, ChainExtensions.ResolveScope(mean, TransformerScope.TrainTest));
    }
}
