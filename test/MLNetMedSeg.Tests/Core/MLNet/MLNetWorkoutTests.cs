using Microsoft.ML;
using Microsoft.ML.Data;
using BinarizeMaskEstimator = MLNetMedSeg.Data.Transforms.BinarizeMaskEstimator;
using BinarizeMaskOptions = MLNetMedSeg.Data.Transforms.BinarizeMaskOptions;
using BinarizeMaskTransformer = MLNetMedSeg.Data.Transforms.BinarizeMaskTransformer;
using MLNetMedSeg.Testing;

namespace MLNetMedSeg.Tests.Core.MLNet;

/// <summary>The ML.NET workout catches what it is meant to catch: each flawed estimator fails the check named.</summary>
[TestClass]
public sealed class MLNetWorkoutTests
{
    public sealed class Row
    {
        [VectorType(1, 4, 4)] public float[] Soft { get; set; } = [];
    }

    private static List<Row> Rows()
    {
        var rng = new Random(5);
        return Enumerable.Range(0, 3).Select(_ => new Row { Soft = Enumerable.Range(0, 16).Select(_ => (float)rng.NextDouble()).ToArray() }).ToList();
    }

    private static BinarizeMaskEstimator Binarize(MLContext ml, double threshold = 0.5) => ml.MedSeg().Transforms.BinarizeMask("Binary", "Soft", threshold);

    private enum Flaw { None, OmitsColumnFromShape, SkipsSchemaCheck, SavesAnotherModel, LeaksATensor, PredictsOtherwise }

    /// <summary>An estimator over BinarizeMask with one flaw.</summary>
    private sealed class FlawedEstimator(MLContext ml, Flaw flaw) : IEstimator<ITransformer>
    {
        private readonly BinarizeMaskEstimator _inner = Binarize(ml);

        public SchemaShape GetOutputSchema(SchemaShape inputSchema)
        {
            if (flaw == Flaw.SkipsSchemaCheck) return inputSchema;
            var output = _inner.GetOutputSchema(inputSchema);   // checks the input
            return flaw == Flaw.OmitsColumnFromShape ? inputSchema : output;
        }

        public ITransformer Fit(IDataView input)
        {
            // Skipping the check: a transformer is returned whatever the input holds.
            var fitted = flaw == Flaw.SkipsSchemaCheck ? new BinarizeMaskTransformer(new BinarizeMaskOptions { Column = "Soft", OutputColumn = "Binary" }) : _inner.Fit(input);
            return new FlawedTransformer(ml, fitted, flaw);
        }
    }

    private sealed class FlawedTransformer(MLContext ml, BinarizeMaskTransformer inner, Flaw flaw) : ITransformer
    {
        public bool IsRowToRowMapper => ((ITransformer)inner).IsRowToRowMapper;

        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => ((ITransformer)inner).GetOutputSchema(inputSchema);

        public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => flaw == Flaw.PredictsOtherwise
            ? ((ITransformer)Binarize(ml, threshold: 0.9).Fit(ml.Data.LoadFromEnumerable(Rows()))).GetRowToRowMapper(inputSchema)
            : ((ITransformer)inner).GetRowToRowMapper(inputSchema);

        public void Save(ModelSaveContext ctx)
        {
            ICanSaveModel saved = flaw == Flaw.SavesAnotherModel ? Binarize(ml, threshold: 0.9).Fit(ml.Data.LoadFromEnumerable(Rows())) : inner;
            saved.Save(ctx);
        }

        public IDataView Transform(IDataView input)
        {
            if (flaw == Flaw.LeaksATensor) _ = torch.zeros(4);   // never disposed: left to the finalizer
            return ((ITransformer)inner).Transform(input);
        }
    }

    private static AssertFailedException Fails(Flaw flaw)
    {
        var ml = new MLContext(seed: 1);
        return Assert.ThrowsException<AssertFailedException>(() => MLNetWorkout.Run(ml, new FlawedEstimator(ml, flaw), Rows(), "Soft"));
    }

    [TestMethod]
    public void TheUnflawedWrapper_Passes()
    {
        var ml = new MLContext(seed: 1);
        var r = MLNetWorkout.Run(ml, new FlawedEstimator(ml, Flaw.None), Rows(), "Soft");
        CollectionAssert.AreEqual(new[] { "Binary: Vector<Single, 1, 4, 4>" }, r.AddedColumns.ToArray());
        Assert.AreEqual(3, r.Rows);
        Assert.AreEqual(3, r.PredictionEngineRows);
        var d = MLNetWorkout.Run(ml, Binarize(ml), ml.Data.LoadFromEnumerable(Rows()), "Soft");
        Assert.AreEqual(3, d.PredictionEngineRows, "the data-view overload runs the row mapper instead");
    }

    [TestMethod]
    public void ASchemaShapeMissingTheAddedColumn_FailsCheckA()
    {
        var e = Fails(Flaw.OmitsColumnFromShape);
        StringAssert.Contains(e.Message, "(a)");
        StringAssert.Contains(e.Message, "'Binary'");
    }

    [TestMethod]
    public void AcceptingAMissingColumn_FailsCheckB()
    {
        var e = Fails(Flaw.SkipsSchemaCheck);
        StringAssert.Contains(e.Message, "(b)");
        StringAssert.Contains(e.Message, "'Soft'");
    }

    [TestMethod]
    public void SavingSomethingElse_FailsCheckC()
    {
        var e = Fails(Flaw.SavesAnotherModel);
        StringAssert.Contains(e.Message, "(c)");
        StringAssert.Contains(e.Message, "column 'Binary'");
    }

    [TestMethod]
    public void ATensorLeftToTheFinalizer_FailsCheckD()
    {
        var e = Fails(Flaw.LeaksATensor);
        StringAssert.Contains(e.Message, "(d)");
    }

    [TestMethod]
    public void APredictionEngineThatDisagreesWithTransform_FailsCheckE()
    {
        var e = Fails(Flaw.PredictsOtherwise);
        StringAssert.Contains(e.Message, "(e)");
        StringAssert.Contains(e.Message, "fitted model");
        StringAssert.Contains(e.Message, "column 'Binary'");
    }

    [TestMethod]
    public void WrongTypes_AreTheMistakesApplicationsMake()
    {
        Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Double, 1, 4, 4),
            MLNetWorkout.WrongTypeFor(new VectorDataViewType(NumberDataViewType.Single, 1, 4, 4)), "double[] where float[] was meant");
        Assert.AreEqual(NumberDataViewType.Single, MLNetWorkout.WrongTypeFor(TextDataViewType.Instance));
        Assert.AreEqual(TextDataViewType.Instance, MLNetWorkout.WrongTypeFor(new Microsoft.ML.Transforms.Image.ImageDataViewType()));
    }
}
