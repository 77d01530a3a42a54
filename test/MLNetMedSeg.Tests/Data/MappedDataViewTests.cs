using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Data;

[TestClass]
public sealed class MappedDataViewTests
{
    private static InMemoryDataView Source(int n)
    {
        using var scope = torch.NewDisposeScope();
        return InMemoryDataView.Create(
            ("Id", TextColumnType.Instance, Enumerable.Range(0, n).Select(i => $"r{i}").ToList()),
            ("X", new TensorColumnType(ScalarType.Float32, [2]), Enumerable.Range(0, n).Select(i => torch.tensor(new float[] { i, 10 * i })).ToList()));
    }

    [TestMethod]
    public void AddsAndReplacesColumnsLazily()
    {
        long before = LiveTensors.Settled();
        using (var src = Source(4))
        {
            int computed = 0;
            var view = new MappedDataView(src,
            [
                new MappedColumn("X", new TensorColumnType(ScalarType.Float32, [2]), ["X"], c => { computed++; return c.GetTensor("X") * S(2); }),
                new MappedColumn("Sum", NumberColumnType.Instance, ["X"], c => (double)c.GetTensor("X").sum().ToSingle()),
                new MappedColumn("Tag", TextColumnType.Instance, ["Id"], c => c.GetText("Id") + "!"),
            ]);
            Assert.AreEqual("Id: Text, X: Tensor<Float32>[2], Sum: Number, Tag: Text", view.Schema.ToString());
            Assert.AreEqual(4L, view.GetRowCount());
            Assert.IsTrue(view.CanShuffle);
            Assert.AreEqual(0, computed);
            CollectionAssert.AreEqual(new[] { "r0!", "r1!", "r2!", "r3!" }, view.GetTextColumn("Tag"));
            Assert.AreEqual(0, computed, "X was not asked for");
            using (var cur = view.GetRowCursor("X", "Sum"))
            {
                int r = 0;
                while (cur.MoveNext())
                {
                    using var scope = torch.NewDisposeScope();
                    CollectionAssert.AreEqual(new float[] { 2 * r, 20 * r }, cur.GetTensor("X").ToArray<float>());
                    _ = cur.GetTensor("X"); // cached per row
                    Assert.AreEqual(11.0 * r, cur.GetNumber("Sum"));
                    r++;
                }
                Assert.AreEqual(4, r);
            }
            Assert.AreEqual(4, computed);
        }
        Assert.AreEqual(before, LiveTensors.Settled(), "mapped cursors free what they computed");
    }

    [TestMethod]
    public void ShufflingAndRowAccessFollowTheSource()
    {
        using var src = Source(6);
        var view = new MappedDataView(src, [new MappedColumn("Tag", TextColumnType.Instance, ["Id"], c => c.GetText("Id"))]);
        List<string> Read(IDataView v, Random? rand, string col)
        {
            using var cur = v.GetRowCursor([v.Schema[col]], rand);
            var l = new List<string>();
            while (cur.MoveNext()) l.Add(cur.GetText(col));
            return l;
        }
        CollectionAssert.AreEqual(Read(src, new Random(4), "Id"), Read(view, new Random(4), "Tag"));
        Assert.IsTrue(view.HasRowAccess);
        using var cur = view.GetIndexedRowCursor([view.Schema["Tag"]], new long[] { 5, 0, 5 });
        var got = new List<string>();
        while (cur.MoveNext()) got.Add(cur.GetText("Tag"));
        CollectionAssert.AreEqual(new[] { "r5", "r0", "r5" }, got);
    }

    [TestMethod]
    public void ReturningASourceValueIsAliasedNotStolen()
    {
        long before = LiveTensors.Settled();
        using (var src = Source(2))
        {
            var view = new MappedDataView(src, [new MappedColumn("Y", new TensorColumnType(ScalarType.Float32, [2]), ["X"], c => c.GetTensor("X"))]);
            using var cur = view.GetRowCursor("X", "Y");
            while (cur.MoveNext())
                Assert.AreNotSame(cur.GetTensor("X"), cur.GetTensor("Y"));
        }
        Assert.AreEqual(before, LiveTensors.Settled());
    }

    [TestMethod]
    public void MissingInputAndWrongResultAreNamed()
    {
        using var src = Source(1);
        var e = Assert.ThrowsException<SchemaException>(() => new MappedDataView(src, [new MappedColumn("Y", TextColumnType.Instance, ["Nope"], c => "")]));
        Assert.AreEqual("Nope", e.ColumnName);
        var view = new MappedDataView(src, [new MappedColumn("Y", new TensorColumnType(ScalarType.Float32, [3]), ["X"], c => c.GetTensor("X") + S(1))]);
        using var cur = view.GetRowCursor("Y");
        Assert.IsTrue(cur.MoveNext());
        var ex = Assert.ThrowsException<InvalidOperationException>(() => cur.GetTensor("Y"));
        StringAssert.Contains(ex.Message, "'Y'");
        StringAssert.Contains(ex.Message, "Id 'r0'");
    }
}
