using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Pipeline;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Data;

[TestClass]
public sealed class DataBatchTests
{
    /// <summary>n rows: Image [1,2,2] filled with the row index, Id "rK", Weight K/10.</summary>
    private static InMemoryDataView Numbered(int n, Func<int, long[]>? shape = null)
    {
        using var scope = torch.NewDisposeScope();
        var images = Enumerable.Range(0, n).Select(i => (object)torch.full(shape?.Invoke(i) ?? [1, 2, 2], S(i), ScalarType.Float32)).ToList();
        return InMemoryDataView.Create(
            ("Image", TensorColumnType.Image(1), images),
            ("Id", TextColumnType.Instance, Enumerable.Range(0, n).Select(i => (object)$"r{i}").ToList()),
            ("Weight", NumberColumnType.Instance, Enumerable.Range(0, n).Select(i => (object)(i / 10.0)).ToList()));
    }

    private static float FirstValue(Tensor batch, int row)
    {
        using var scope = torch.NewDisposeScope();
        return batch[row].flatten()[0].ToSingle();
    }

    [TestMethod]
    public void BatchesStackRowsInOrderWithARaggedLastBatch()
    {
        long baseline = LiveTensors.Settled();
        using (var data = Numbered(5))
        {
            var sizes = new List<int>();
            var seen = new List<float>();
            foreach (var b in data.GetBatches(["Image", "Id", "Weight"], batchSize: 2))
            {
                CollectionAssert.AreEqual(new long[] { b.Count, 1, 2, 2 }, b["Image"].shape);
                for (int r = 0; r < b.Count; r++)
                {
                    seen.Add(FirstValue(b["Image"], r));
                    Assert.AreEqual($"r{(int)seen[^1]}", b.Texts("Id")[r]);
                    Assert.AreEqual(seen[^1] / 10.0, b.Numbers("Weight")[r], 1e-12);
                }
                sizes.Add(b.Count);
            }
            CollectionAssert.AreEqual(new[] { 2, 2, 1 }, sizes);
            CollectionAssert.AreEqual(new float[] { 0, 1, 2, 3, 4 }, seen);
            Assert.AreEqual(2, data.GetBatches(["Image"], 2, dropLast: true).Count());
        }
        Assert.AreEqual(baseline, LiveTensors.Settled(), "batches free their tensors and the view its own");
    }

    [TestMethod]
    public void ShufflingIsSeededAndChangesEveryEpoch()
    {
        using var data = Numbered(12);
        List<float> Order(Random rand) => data.GetBatches(["Image"], 5, rand)
            .SelectMany(b => Enumerable.Range(0, b.Count).Select(r => FirstValue(b["Image"], r)).ToList()).ToList();

        var r1 = new Random(11);
        var epoch1 = Order(r1);
        var epoch2 = Order(r1);
        var again = Order(new Random(11));
        CollectionAssert.AreEqual(epoch1, again, "same seed → same order");
        CollectionAssert.AreNotEqual(epoch1, epoch2, "a new order each epoch");
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 12).Select(i => (float)i).ToList(), epoch1, "every row exactly once");
        CollectionAssert.AreNotEqual(Enumerable.Range(0, 12).Select(i => (float)i).ToList(), epoch1);
    }

    [TestMethod]
    public void RowsOfDifferentSizesInOneBatchAreAClearError()
    {
        using var data = Numbered(3, i => i == 1 ? [1, 3, 2] : [1, 2, 2]);
        var ex = Assert.ThrowsException<InvalidOperationException>(() => data.GetBatches(["Image"], 3).ToList());
        StringAssert.Contains(ex.Message, "'Image'");
        StringAssert.Contains(ex.Message, "Resize");
    }

    [TestMethod]
    public void UnknownColumnAndBadBatchSizeFailUpFront()
    {
        using var data = Numbered(2);
        var ex = Assert.ThrowsException<SchemaException>(() => data.GetBatches(["Mask"], 2));
        Assert.AreEqual("Mask", ex.ColumnName);
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => data.GetBatches(["Image"], 0));
    }

    [TestMethod]
    public void CancellationStopsBetweenBatches()
    {
        using var data = Numbered(6);
        using var cts = new CancellationTokenSource();
        int n = 0;
        Assert.ThrowsException<OperationCanceledException>(() =>
        {
            foreach (var b in data.GetBatches(["Image"], 2, cancellationToken: cts.Token))
            {
                n++;
                cts.Cancel();
            }
        });
        Assert.AreEqual(1, n);
    }

    [TestMethod]
    public void CursorsHandOutRowValuesThatLiveUntilMoveNext()
    {
        using var data = Numbered(2);
        using var cur = data.GetRowCursor("Image");
        Assert.IsTrue(cur.MoveNext());
        var first = cur.GetTensor("Image");
        Assert.AreSame(first, cur.GetTensor("Image"), "a value is computed once per row");
        Assert.IsTrue(cur.MoveNext());
        Assert.IsTrue(first.IsInvalid, "the previous row's tensors are freed on MoveNext");
        Assert.AreEqual(1f, FirstValue(cur.GetTensor("Image").unsqueeze(0), 0));
        Assert.IsFalse(cur.MoveNext());
        Assert.ThrowsException<InvalidOperationException>(() => cur.GetTensor("Image"));
    }

    [TestMethod]
    public void SchemaChecksNameTheColumn()
    {
        var schema = DataViewSchema.Create(("Image", TensorColumnType.Image(3)), ("Id", TextColumnType.Instance));
        var missing = Assert.ThrowsException<SchemaException>(() => schema.RequireTensor("Mask", TensorColumnType.BinaryMask(), "Trainer"));
        StringAssert.Contains(missing.Message, "Trainer: column 'Mask' was not found");
        var wrong = Assert.ThrowsException<SchemaException>(() => schema.RequireTensor("Id", TensorColumnType.BinaryMask()));
        StringAssert.Contains(wrong.Message, "'Id' has type Text");
        var channels = Assert.ThrowsException<SchemaException>(() => schema.RequireTensor("Image", TensorColumnType.Image(1)));
        StringAssert.Contains(channels.Message, "Tensor<Float32>[1,?,?] is required");
        Assert.AreEqual("Image", schema.RequireTensor("Image", TensorColumnType.Image()).Name);
    }
}
