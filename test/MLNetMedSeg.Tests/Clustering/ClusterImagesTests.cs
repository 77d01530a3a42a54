using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Clustering;
using SchemaException = MLNetMedSeg.Data.SchemaException;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Testing;

namespace MLNetMedSeg.Tests.Clustering;

/// <summary>
/// The image clustering stage (paper 004 §3.2 step 1): ResNet-18 features of image and mask, ML.NET's KMeans seeded from
/// the MLContext; the ML.NET workout (schema, bad columns, save/load, PredictionEngine, no leaked tensors), reproducibility
/// by seed, separation of two obviously different groups, the Fig. 2 grid, bad input.
/// </summary>
[TestClass]
public sealed class ClusterImagesTests
{
    /// <summary>A tiny RGB image with its mask and the group it was drawn from.</summary>
    public sealed class Row
    {
        [VectorType(3, 32, 32)] public float[] Image { get; set; } = [];
        [VectorType(1, 32, 32)] public float[] Mask { get; set; } = [];
        public float Group { get; set; }
    }

    /// <summary>
    /// Rows of two groups that differ in every way a feature could see: group 0 smooth warm gradients with a small disc
    /// on the left; group 1 a cool, fine checkerboard with a large disc on the right. Sizes, shades and positions jitter.
    /// </summary>
    internal static List<Row> TwoGroups(int perGroup, int seed)
    {
        const int s = 32;
        var rng = new Random(seed);
        var rows = new List<Row>();
        for (int i = 0; i < 2 * perGroup; i++)
        {
            int g = i % 2;
            var image = new float[3 * s * s];
            var mask = new float[s * s];
            double shade = 0.8 + 0.2 * rng.NextDouble(), cx = g == 0 ? 9 + rng.Next(3) : 21 + rng.Next(3), cy = 14 + rng.Next(4);
            double r = g == 0 ? 3 + rng.Next(2) : 9 + rng.Next(2);
            for (int y = 0; y < s; y++)
                for (int x = 0; x < s; x++)
                {
                    bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
                    mask[y * s + x] = inside ? 1 : 0;
                    float[] rgb = g == 0
                        ? [(float)(shade * (0.5 + 0.5 * x / s)), (float)(shade * 0.35 * y / s), 0.1f]
                        : (((x / 2) + (y / 2)) % 2 == 0 ? [0.05f, (float)(0.3 * shade), (float)shade] : [0.0f, 0.1f, (float)(0.4 * shade)]);
                    if (inside) rgb = g == 0 ? [1f, 0.8f, 0.6f] : [0.9f, 0.9f, 0.2f];
                    for (int c = 0; c < 3; c++) image[(c * s + y) * s + x] = rgb[c];
                }
            rows.Add(new Row { Image = image, Mask = mask, Group = g });
        }
        return rows;
    }

    private static ClusterImagesOptions Small(int k = 2, string? mask = "Mask") => new()
    {
        NumberOfClusters = k, FeatureInputSize = 32, BatchSize = 5, MaskColumnName = mask,
    };

    private static double[] Clusters(IDataView data) => data.GetColumn<double>("Cluster").ToArray();

    [TestMethod]
    public void Workout()
    {
        var sw = Stopwatch.StartNew();
        var ml = new MLContext(seed: 1);
        var r = MLNetWorkout.Run(ml, ml.MedSeg().Transforms.ClusterImages(Small()), TwoGroups(4, 1), "Image",
            new MLNetWorkoutOptions { MoreRequiredColumns = ["Mask"] });
        CollectionAssert.AreEqual(new[] { "Cluster: Double" }, r.AddedColumns.ToArray());
        Assert.AreEqual(8, r.PredictionEngineRows);
        Console.WriteLine($"ClusterImages workout: model {r.ModelBytes} bytes, {sw.Elapsed.TotalSeconds:F1} s");
    }

    [TestMethod]
    public void KMeansClustersAreReproducibleBySeed()
    {
        var rows = TwoGroups(6, 2);
        (float[][] Centroids, double[] Clusters, long[] Sizes) Fit(int seed, ClusterImagesOptions options)
        {
            var ml = new MLContext(seed);
            var data = ml.Data.LoadFromEnumerable(rows);
            using var model = ml.MedSeg().Transforms.ClusterImages(options).Fit(data);
            return (model.GetCentroids(), Clusters(model.Transform(data)), model.ClusterSizes.ToArray());
        }
        // k = 4 on two groups: how the groups are split depends on the k-means++ draws, i.e. on the seed.
        var a = Fit(7, Small(k: 4));
        var b = Fit(7, Small(k: 4));
        Assert.AreEqual(4, a.Centroids.Length);
        Assert.AreEqual(1024, a.Centroids[0].Length, "image and mask features, concatenated");
        for (int c = 0; c < 4; c++) CollectionAssert.AreEqual(a.Centroids[c], b.Centroids[c], $"centroid {c} with the same seed");
        CollectionAssert.AreEqual(a.Clusters, b.Clusters);
        CollectionAssert.AreEqual(a.Sizes, b.Sizes);
        Assert.AreEqual(rows.Count, a.Sizes.Sum());
        // The sizes recorded at Fit are the clusters Transform gives the training rows.
        CollectionAssert.AreEqual(a.Sizes, Enumerable.Range(0, 4).Select(c => (long)a.Clusters.Count(x => x == c)).ToArray());
        // Other seeds draw other initial centroids: at least one of them ends elsewhere.
        bool differs = new[] { 8, 9, 10 }.Select(s => Fit(s, Small(k: 4))).Any(o => !o.Centroids.Zip(a.Centroids).All(p => p.First.SequenceEqual(p.Second)));
        Assert.IsTrue(differs, "three other seeds all gave bit-identical centroids: the seed does not reach KMeans");
    }

    [TestMethod]
    public void SeparatesTwoObviouslyDifferentGroups()
    {
        var rows = TwoGroups(6, 3);
        foreach (var mask in new[] { "Mask", null })
        {
            var ml = new MLContext(seed: 3);
            var data = ml.Data.LoadFromEnumerable(rows);
            using var model = ml.MedSeg().Transforms.ClusterImages(Small(mask: mask)).Fit(data);
            Assert.AreEqual(mask is null ? 512 : 1024, model.FeatureDimension);
            var output = ml.Data.Cache(model.Transform(data));
            var clusters = Clusters(output);
            var groups = output.GetColumn<float>("Group").ToArray();
            double of0 = clusters[Array.IndexOf(groups, 0f)];
            for (int i = 0; i < rows.Count; i++)
                Assert.AreEqual(groups[i] == 0 ? of0 : 1 - of0, clusters[i], $"row {i} (group {groups[i]}), mask features {mask ?? "off"}: clusters {string.Join(",", clusters)}");
            CollectionAssert.AreEqual(new long[] { 6, 6 }, model.ClusterSizes.ToArray());
            // One cluster as ML.NET filters it: the number column works with FilterRowsByColumn.
            var first = ml.Data.FilterRowsByColumn(output, "Cluster", of0, of0 + 1);
            CollectionAssert.AreEqual(Enumerable.Repeat(0f, 6).ToArray(), first.GetColumn<float>("Group").ToArray());
        }
    }

    [TestMethod]
    public void WritesExamplesPerCluster()
    {
        var ml = new MLContext(seed: 4);
        var data = ml.Data.LoadFromEnumerable(TwoGroups(3, 4));
        using var model = ml.MedSeg().Transforms.ClusterImages(Small()).Fit(data);
        string path = Path.Combine(Path.GetTempPath(), $"clusters-{Guid.NewGuid():N}.png");
        try
        {
            var shown = model.WriteExamples(data, path, imagesPerCluster: 4, tileSize: 16);
            CollectionAssert.AreEqual(new[] { 3, 3 }, shown, "three rows per group, four slots per cluster");
            var png = ImageIO.Read(path);
            // Two rows of four 16-px tiles with 2-px borders.
            Assert.AreEqual((2 * 18 + 2, 4 * 18 + 2), (png.Height, png.Width));
            var withMasks = model.WriteExamples(data, path, imagesPerCluster: 2, tileSize: 16, withMasks: true);
            CollectionAssert.AreEqual(new[] { 2, 2 }, withMasks);
            png = ImageIO.Read(path);
            Assert.AreEqual((2 * 18 + 2, 2 * (2 * 16 + 2 + 2) + 2), (png.Height, png.Width));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [TestMethod]
    public void BadInputIsNamed()
    {
        var ml = new MLContext(seed: 5);
        var rows = TwoGroups(2, 5);
        var data = ml.Data.LoadFromEnumerable(rows);
        var tooMany = Assert.ThrowsException<InvalidDataException>(() => ml.MedSeg().Transforms.ClusterImages(Small(k: 5)).Fit(data));
        StringAssert.Contains(tooMany.Message, "4 row(s)");
        StringAssert.Contains(tooMany.Message, "5 clusters");
        var empty = ml.Data.LoadFromEnumerable(new List<Row>());
        StringAssert.Contains(Assert.ThrowsException<InvalidDataException>(() => ml.MedSeg().Transforms.ClusterImages(Small()).Fit(empty)).Message, "no rows");
        var missing = Assert.ThrowsException<SchemaException>(() => ml.MedSeg().Transforms.ClusterImages(Small() is var o ? Set(o, "Picture") : o).Fit(data));
        StringAssert.Contains(missing.Message, "'Picture'");
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => ml.MedSeg().Transforms.ClusterImages(numberOfClusters: 0));
        Assert.ThrowsException<ArgumentException>(() => ml.MedSeg().Transforms.ClusterImages(outputColumnName: "Image"));
    }

    private static ClusterImagesOptions Set(ClusterImagesOptions o, string imageColumn)
    {
        o.ImageColumnName = imageColumn;
        return o;
    }
}
