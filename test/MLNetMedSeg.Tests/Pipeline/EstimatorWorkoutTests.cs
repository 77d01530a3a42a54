using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Testing;

namespace MLNetMedSeg.Tests.Pipeline;

[TestClass]
public class EstimatorWorkoutTests
{
    private MedSegContext _ctx = null!;

    [TestInitialize]
    public void Init()
    {
        TestStages.EnsureRegistered();
        _ctx = new MedSegContext(seed: 3);
    }

    [TestMethod]
    public void GoodEstimators_Pass()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        var r = EstimatorWorkout.Run(_ctx, new MeanCenterEstimator(), data, "Image");
        Assert.AreEqual(5, r.Rows);
        Assert.AreEqual("Id: Text, Image: Tensor<Float32>[3,?,?], Weight: Number, Centered: Tensor<Float32>[3,?,?]", r.OutputSchema.ToString());
        Assert.IsTrue(r.ModelBytes > 0);

        EstimatorWorkout.Run(_ctx, new AddConstantEstimator("Image", 0.5f), data, "Image");
        EstimatorWorkout.Run(_ctx, new AddConstantEstimator("Image", 0.5f).Append(new MeanCenterEstimator()), data, "Image");
    }

    private static AssertFailedException Fails(MedSegContext ctx, Flaw flaw)
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        return Assert.ThrowsException<AssertFailedException>(() => EstimatorWorkout.Run(ctx, new MeanCenterEstimator(flaw: flaw), data, "Image"));
    }

    [TestMethod]
    public void LyingOutputSchema_FailsCheckA()
    {
        var ex = Fails(_ctx, Flaw.LyingSchema);
        StringAssert.Contains(ex.Message, "(a)");
        StringAssert.Contains(ex.Message, "Centered");
        StringAssert.Contains(ex.Message, "Float64");
    }

    [TestMethod]
    public void MissingSchemaCheck_FailsCheckB()
    {
        var ex = Fails(_ctx, Flaw.SkipsSchemaCheck);
        StringAssert.Contains(ex.Message, "(b)");
        StringAssert.Contains(ex.Message, "'Image'");
    }

    [TestMethod]
    public void SaveThatLosesState_FailsCheckC()
    {
        var ex = Fails(_ctx, Flaw.ForgetsMeanOnSave);
        StringAssert.Contains(ex.Message, "(c)");
        StringAssert.Contains(ex.Message, "column 'Centered'");
    }

    [TestMethod]
    public void LeakedTensor_FailsCheckD()
    {
        var ex = Fails(_ctx, Flaw.Leaks);
        StringAssert.Contains(ex.Message, "(d)");
        StringAssert.Contains(ex.Message, "1 tensor(s) were left to the garbage collector");
    }

    [TestMethod]
    public void WrongExceptionType_ForAWrongColumnType_Fails()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        var ex = Assert.ThrowsException<AssertFailedException>(() => EstimatorWorkout.Run(_ctx, new CastingEstimator(), data, "Image"));
        StringAssert.Contains(ex.Message, "(b)");
        StringAssert.Contains(ex.Message, "InvalidCastException");
    }

    [TestMethod]
    public void RequiredColumnAbsentFromTheData_Fails()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages();
        var ex = Assert.ThrowsException<AssertFailedException>(() => EstimatorWorkout.Run(_ctx, new MeanCenterEstimator(), data, "Mask"));
        StringAssert.Contains(ex.Message, "'Mask'");
    }

    [TestMethod]
    public void SchemaEditedView_RemovesOrRetypesOneColumn()
    {
        using var scope = torch.NewDisposeScope();
        using var data = TestStages.RandomImages(2);
        var without = SchemaEditedView.WithoutColumn(data, "Image");
        Assert.AreEqual("Id: Text, Weight: Number", without.Schema.ToString());
        CollectionAssert.AreEqual(new[] { "case0", "case1" }, without.GetTextColumn("Id"));
        var retyped = SchemaEditedView.WithColumnType(data, "Weight", TextColumnType.Instance);
        Assert.AreEqual("Id: Text, Image: Tensor<Float32>[3,?,?], Weight: Text", retyped.Schema.ToString());
        using var cur = retyped.GetRowCursor(retyped.Schema);
        Assert.IsTrue(cur.MoveNext());
        Assert.AreEqual(2, cur.GetTensor("Image").shape.Length - 1);
        Assert.ThrowsException<InvalidOperationException>(() => cur.GetValue(retyped.Schema["Weight"]));
    }

    /// <summary>Checks its column by casting: a wrong type gives an InvalidCastException, not a SchemaException.</summary>
    private sealed class CastingEstimator : IEstimator<ITransformer>
    {
        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
        {
            var t = (TensorColumnType)inputSchema["Image"].Type;
            if (t.DType != ScalarType.Float32) throw new InvalidCastException("Image must be float32");
            return inputSchema;
        }

        public ITransformer Fit(IDataView input, CancellationToken cancellationToken = default)
        {
            GetOutputSchema(input.Schema);
            return new AddConstantTransformer(new AddConstantOptions { Column = "Image", Value = 0 });
        }
    }
}
