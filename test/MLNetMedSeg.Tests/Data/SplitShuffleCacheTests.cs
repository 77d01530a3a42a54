using MLNetMedSeg.Core;
using MLNetMedSeg.Data;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Data;

[TestClass]
public sealed class SplitShuffleCacheTests
{
    private static MedSegContext Ctx() => new(seed: 1);

    private static InMemoryDataView Ids(int n) => InMemoryDataView.Create(
        ("Id", TextColumnType.Instance, Enumerable.Range(0, n).Select(i => $"r{i:D3}").ToList()));

    [TestMethod]
    public void SplitCountsFollowTheDocumentedRounding()
    {
        Assert.AreEqual((800L, 100L), DataViews.SplitCounts(1000, 0.8, 0.1));
        Assert.AreEqual((96L, 12L), DataViews.SplitCounts(120, 0.8, 0.1));
        Assert.AreEqual((12L, 2L), DataViews.SplitCounts(15, 0.8, 0.1)); // 12, 1.5 → 2, rest 1
        Assert.AreEqual((2L, 1L), DataViews.SplitCounts(3, 0.5, 0.5)); // halves away from zero: 1.5 → 2; validation capped by the rows left
    }

    [TestMethod]
    public void TrainValidationTestSplitIsDeterministicDisjointAndCovering()
    {
        using var data = Ids(15);
        var ctx = Ctx();
        var a = DataViews.TrainValidationTestSplit(ctx, data, seed: 7);
        var b = DataViews.TrainValidationTestSplit(ctx, data, seed: 7);
        var c = DataViews.TrainValidationTestSplit(ctx, data, seed: 8);
        var (tr, va, te) = (a.Train.GetTextColumn("Id"), a.Validation.GetTextColumn("Id"), a.Test.GetTextColumn("Id"));
        Assert.AreEqual((12, 2, 1), (tr.Count, va.Count, te.Count));
        Assert.AreEqual((12L, 2L, 1L), (a.Train.GetRowCount(), a.Validation.GetRowCount(), a.Test.GetRowCount()));
        CollectionAssert.AreEquivalent(data.GetTextColumn("Id"), tr.Concat(va).Concat(te).ToList()); // disjoint + covering
        CollectionAssert.AreEqual(tr, b.Train.GetTextColumn("Id"));
        CollectionAssert.AreEqual(va, b.Validation.GetTextColumn("Id"));
        CollectionAssert.AreEqual(te, b.Test.GetTextColumn("Id"));
        CollectionAssert.AreNotEqual(tr, c.Train.GetTextColumn("Id"));
        CollectionAssert.AreEqual(tr.Order(StringComparer.Ordinal).ToList(), tr, "each part keeps source order");

        // Default seed is derived from the context's seed: two contexts with one seed agree.
        var d1 = DataViews.TrainValidationTestSplit(new MedSegContext(seed: 5), data);
        var d2 = DataViews.TrainValidationTestSplit(new MedSegContext(seed: 5), data);
        CollectionAssert.AreEqual(d1.Test.GetTextColumn("Id"), d2.Test.GetTextColumn("Id"));

        Assert.ThrowsException<ArgumentOutOfRangeException>(() => DataViews.TrainValidationTestSplit(ctx, data, 0.8, 0.3));
    }

    [TestMethod]
    public void KFoldPartitionsTheRows()
    {
        using var data = Ids(10);
        var folds = DataViews.KFold(Ctx(), data, 4, seed: 3);
        Assert.AreEqual(4, folds.Count);
        CollectionAssert.AreEqual(new[] { 3, 3, 2, 2 }, folds.Select(f => f.Test.GetTextColumn("Id").Count).ToArray());
        var all = data.GetTextColumn("Id");
        CollectionAssert.AreEquivalent(all, folds.SelectMany(f => f.Test.GetTextColumn("Id")).ToList());
        foreach (var f in folds)
        {
            var train = f.Train.GetTextColumn("Id");
            var test = f.Test.GetTextColumn("Id");
            Assert.AreEqual(0, train.Intersect(test).Count());
            CollectionAssert.AreEquivalent(all, train.Concat(test).ToList());
        }
        var again = DataViews.KFold(Ctx(), data, 4, seed: 3);
        CollectionAssert.AreEqual(folds[2].Test.GetTextColumn("Id"), again[2].Test.GetTextColumn("Id"));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => DataViews.KFold(Ctx(), data, 11));
    }

    [TestMethod]
    public void ShuffleIsReproduciblePerSeed()
    {
        using var data = Ids(30);
        var ctx = Ctx();
        var s1 = DataViews.Shuffle(ctx, data, seed: 11).GetTextColumn("Id");
        var s2 = DataViews.Shuffle(ctx, data, seed: 11).GetTextColumn("Id");
        var s3 = DataViews.Shuffle(ctx, data, seed: 12).GetTextColumn("Id");
        CollectionAssert.AreEqual(s1, s2);
        CollectionAssert.AreNotEqual(s1, s3);
        CollectionAssert.AreNotEqual(data.GetTextColumn("Id"), s1);
        CollectionAssert.AreEquivalent(data.GetTextColumn("Id"), s1);
        // Reading the same shuffled view twice gives the same order.
        var view = DataViews.Shuffle(ctx, data, seed: 11);
        CollectionAssert.AreEqual(view.GetTextColumn("Id"), view.GetTextColumn("Id"));
    }

    private static List<string> ReadIds(IDataView v, Random? rand)
    {
        using var cur = v.GetRowCursor([v.Schema["Id"]], rand);
        var l = new List<string>();
        while (cur.MoveNext()) l.Add(cur.GetText("Id"));
        return l;
    }

    [TestMethod]
    public void SubsetsOfLazyViewsStayLazyAndShufflable()
    {
        using var scope = torch.NewDisposeScope();
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        for (int i = 0; i < 10; i++)
        {
            string n = $"f{i}";
            if (i == 4) File.WriteAllText(Path.Combine(im, n + ".png"), "corrupt");
            else TestImages.WriteRgb(Path.Combine(im, n + ".png"), 6, 6, i);
            TestImages.WriteMask(Path.Combine(mk, n + ".png"), 6, 6, i);
        }
        var ctx = Ctx();
        var loaded = DataViews.LoadImagesAndMasks(ctx, im, mk);
        var resized = EngineTransforms.Resize(4, 4).Fit(loaded).Transform(loaded); // a mapped view: row access passes through
        var split = DataViews.TrainValidationTestSplit(ctx, resized, 0.6, 0.2, seed: 2); // nothing decoded: no error yet
        int partsWithCorrupt = 0;
        foreach (var part in new[] { split.Train, split.Validation, split.Test })
        {
            Assert.IsTrue(part.CanShuffle);
            var ids = part.GetTextColumn("Id");
            var shuffled = ReadIds(part, new Random(1));
            CollectionAssert.AreEquivalent(ids, shuffled);
            CollectionAssert.AreEqual(shuffled, ReadIds(part, new Random(1)));
            // Reading images fails only in the part holding the corrupt file, and only when that row is read.
            if (ids.Contains("f4")) partsWithCorrupt++;
            using var cur = part.GetRowCursor("Id", "Image");
            while (cur.MoveNext())
            {
                if (cur.GetText("Id") == "f4")
                    Assert.ThrowsException<ImageFileException>(() => cur.GetTensor("Image"));
                else
                    CollectionAssert.AreEqual(new long[] { 3, 4, 4 }, cur.GetTensor("Image").shape);
            }
        }
        Assert.AreEqual(1, partsWithCorrupt);
        var batches = split.Train.GetBatches(["Mask"], 3, new Random(5)).Select(b => b["Mask"].shape[0]).ToList();
        CollectionAssert.AreEqual(new long[] { 3, 3 }, batches);
    }

    [TestMethod]
    public void CacheHasTheSameSchemaAndValuesAndNeedsNoFiles()
    {
        using var dir = new TempDir();
        string im = dir.Sub("images"), mk = dir.Sub("masks");
        for (int i = 0; i < 4; i++)
        {
            TestImages.WriteRgb(Path.Combine(im, $"c{i}.png"), 5, 7, i);
            TestImages.WriteMask(Path.Combine(mk, $"c{i}.png"), 5, 7, 3 * i);
        }
        var ctx = Ctx();
        var loaded = DataViews.LoadImagesAndMasks(ctx, im, mk);
        long before = LiveTensors.Settled();
        using (var scope = torch.NewDisposeScope())
        {
            var expected = new List<(string, Tensor, Tensor)>();
            using (var cur = loaded.GetRowCursor())
                while (cur.MoveNext()) expected.Add((cur.GetText("Id"), cur.GetTensor("Image").clone(), cur.GetTensor("Mask").clone()));
            using var cache = DataViews.Cache(ctx, loaded);
            Assert.AreSame(loaded.Schema, cache.Schema);
            Assert.AreEqual(4L, cache.GetRowCount());
            Directory.Delete(dir.Path, recursive: true); // the cache does not decode again
            for (int pass = 0; pass < 2; pass++)
            {
                using var cur = cache.GetRowCursor();
                int r = 0;
                while (cur.MoveNext())
                {
                    Assert.AreEqual(expected[r].Item1, cur.GetText("Id"));
                    Assert.IsTrue(cur.GetTensor("Image").IsEqual(expected[r].Item2));
                    Assert.IsTrue(cur.GetTensor("Mask").IsEqual(expected[r].Item3));
                    StringAssert.EndsWith(cur.GetText("ImagePath"), $"c{r}.png");
                    r++;
                }
                Assert.AreEqual(4, r);
            }
            Assert.IsTrue(cache.CanShuffle);
            CollectionAssert.AreEquivalent(cache.GetTextColumn("Id"), ReadIds(cache, new Random(3)));
        }
        Assert.AreEqual(before, LiveTensors.Settled(), "the cache frees its tensors when disposed");
    }
}

/// <summary>Splits and shuffles of views without random row access (a streaming source).</summary>
[TestClass]
public sealed class StreamingSourceSplitTests
{
    /// <summary>Forwards cursors only: no <see cref="IRowAccessDataView"/>.</summary>
    private sealed class StreamingView(IDataView inner, bool canShuffle) : IDataView
    {
        public DataViewSchema Schema => inner.Schema;
        public long? GetRowCount() => null;
        public bool CanShuffle => canShuffle;
        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null) => inner.GetRowCursor(columnsNeeded, rand);
    }

    private static InMemoryDataView Ids(int n) => InMemoryDataView.Create(
        ("Id", TextColumnType.Instance, Enumerable.Range(0, n).Select(i => $"r{i:D2}").ToList()));

    [TestMethod]
    public void SplitOfAStreamingViewIsLazyButNotShufflable()
    {
        using var data = Ids(20);
        var stream = new StreamingView(data, canShuffle: false);
        var ctx = new MedSegContext(seed: 1);
        var split = DataViews.TrainValidationTestSplit(ctx, stream, seed: 3);
        var tr = split.Train.GetTextColumn("Id");
        var va = split.Validation.GetTextColumn("Id");
        var te = split.Test.GetTextColumn("Id");
        Assert.AreEqual((16, 2, 2), (tr.Count, va.Count, te.Count));
        CollectionAssert.AreEquivalent(data.GetTextColumn("Id"), tr.Concat(va).Concat(te).ToList());
        // Same rows as the split of the indexable view with the same seed.
        CollectionAssert.AreEqual(DataViews.TrainValidationTestSplit(ctx, data, seed: 3).Test.GetTextColumn("Id"), te);
        Assert.IsFalse(split.Train.CanShuffle);
        Assert.ThrowsException<InvalidOperationException>(() => split.Train.GetBatches(["Id"], 4, new Random(1)).ToList());
        Assert.ThrowsException<InvalidOperationException>(() => DataViews.Shuffle(ctx, stream, seed: 1));

        // Mapped views over a streaming source (two levels) have no row access either, and splits still work.
        var m1 = new MappedDataView(stream, [new MappedColumn("A", TextColumnType.Instance, ["Id"], c => c.GetText("Id") + "a")]);
        var m2 = new MappedDataView(m1, [new MappedColumn("B", TextColumnType.Instance, ["A"], c => c.GetText("A") + "b")]);
        Assert.IsFalse(m2.HasRowAccess);
        var s2 = DataViews.TrainValidationTestSplit(ctx, m2, seed: 3);
        CollectionAssert.AreEqual(te.Select(t => t + "ab").ToList(), s2.Test.GetTextColumn("B"));
        Assert.ThrowsException<InvalidOperationException>(() => m2.GetIndexedRowCursor([m2.Schema["B"]], new long[] { 0 }));
    }

    [TestMethod]
    public void ShuffleOfAShufflableStreamingViewIsSeeded()
    {
        using var data = Ids(20);
        var stream = new StreamingView(data, canShuffle: true);
        var ctx = new MedSegContext(seed: 1);
        var a = DataViews.Shuffle(ctx, stream, seed: 9).GetTextColumn("Id");
        CollectionAssert.AreEqual(a, DataViews.Shuffle(ctx, stream, seed: 9).GetTextColumn("Id"));
        CollectionAssert.AreNotEqual(a, DataViews.Shuffle(ctx, stream, seed: 10).GetTextColumn("Id"));
        CollectionAssert.AreEquivalent(data.GetTextColumn("Id"), a);
    }
}
