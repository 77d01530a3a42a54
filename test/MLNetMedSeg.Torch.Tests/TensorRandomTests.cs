namespace MLNetMedSeg.Torch.Tests;

[TestClass]
public class TensorRandomTests
{
    [TestMethod]
    public void BernoulliIsReproducibleWithSeededGenerators()
    {
        using var scope = torch.NewDisposeScope();
        var p = torch.full([1000], 0.5);
        using var g1 = new Generator(7);
        using var g2 = new Generator(7);
        using var g3 = new Generator(8);
        var a = torch.bernoulli(p, g1).ToArray<float>();
        torch.bernoulli(p); // the global stream does not disturb g2
        var b = p.bernoulli(g2).ToArray<float>();
        var c = p.bernoulli(g3).ToArray<float>();
        CollectionAssert.AreEqual(a, b);
        CollectionAssert.AreNotEqual(a, c);
        // the generator advances: a second draw differs from the first
        CollectionAssert.AreNotEqual(a, p.bernoulli(g1).ToArray<float>());
        // reseeding restarts the stream
        g1.manual_seed(7);
        CollectionAssert.AreEqual(a, p.bernoulli(g1).ToArray<float>());

        using var h1 = new Generator(11);
        using var h2 = new Generator(11);
        var x = torch.zeros(500).bernoulli_(0.25, h1).ToArray<float>();
        var y = torch.zeros(500).bernoulli_(0.25, h2).ToArray<float>();
        CollectionAssert.AreEqual(x, y);
        var u = torch.zeros(500).bernoulli(0.25, h1).ToArray<float>();
        var w = torch.bernoulli(torch.zeros(500), 0.25, h2).ToArray<float>();
        CollectionAssert.AreEqual(u, w);
    }

    [TestMethod]
    public void BernoulliStatisticsAndValues()
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(123);
        var like = torch.zeros([100_000], ScalarType.Float64);
        var d = like.bernoulli(0.3, g);
        Assert.AreEqual(ScalarType.Float64, d.dtype);
        CollectionAssert.AreEqual(new long[] { 100_000 }, d.shape);
        Assert.IsTrue(d.eq(0).logical_or(d.eq(1)).all().item<bool>(), "only 0 and 1");
        Assert.AreEqual(0.3, d.mean().item<double>(), 0.01);

        var probs = torch.full([100_000], 0.8, ScalarType.Float64);
        Assert.AreEqual(0.8, probs.bernoulli(g).mean().item<double>(), 0.01);

        // probabilities 0 and 1 are deterministic
        var fixedP = torch.tensor(new float[] { 0, 1, 1, 0, 1 });
        CollectionAssert.AreEqual(new float[] { 0, 1, 1, 0, 1 }, fixedP.bernoulli(g).ToArray<float>());
        var t = torch.zeros(5);
        Assert.AreSame(t, t.bernoulli_(fixedP, g));
        CollectionAssert.AreEqual(new float[] { 0, 1, 1, 0, 1 }, t.ToArray<float>());
        // a broadcast probability per row
        var rows = torch.zeros(2, 50_000).bernoulli_(torch.tensor(new float[] { 0.1f, 0.9f }, [2, 1]), g);
        var rowMeans = rows.mean(1).ToArray<float>();
        Assert.AreEqual(0.1, rowMeans[0], 0.01);
        Assert.AreEqual(0.9, rowMeans[1], 0.01);
        var s = torch.zeros(100_000);
        Assert.AreSame(s, s.bernoulli_(generator: g));
        Assert.AreEqual(0.5, s.mean().item<float>(), 0.01, "default p = 0.5");

        var ex = Assert.ThrowsException<TorchException>(() => torch.ones(3).bernoulli_(1.5));
        StringAssert.Contains(ex.Message, "bernoulli_ expects p to be in [0, 1], but got p=1.5");
        Assert.ThrowsException<TorchException>(() => torch.tensor(new float[] { 2 }).bernoulli());
    }

    [TestMethod]
    public void NormalWithTensorAndScalarParameters()
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(5);
        var mean = torch.tensor(new double[] { 0, 10 }, [2, 1]).expand(2, 50_000);
        var std = torch.tensor(new double[] { 1, 0.1 }, [2, 1]).expand(2, 50_000);
        var n = torch.normal(mean, std, g);
        CollectionAssert.AreEqual(new long[] { 2, 50_000 }, n.shape);
        var m = n.mean(1).ToArray<double>();
        var sd = n.std(1).ToArray<double>();
        Assert.AreEqual(0, m[0], 0.03);
        Assert.AreEqual(10, m[1], 0.003);
        Assert.AreEqual(1, sd[0], 0.03);
        Assert.AreEqual(0.1, sd[1], 0.003);

        var n2 = torch.normal(torch.full([100_000], -3.0, ScalarType.Float64), 2, g);
        Assert.AreEqual(-3, n2.mean().item<double>(), 0.03);
        Assert.AreEqual(2, n2.std().item<double>(), 0.03);
        var n3 = torch.normal(4, torch.full([100_000], 0.5, ScalarType.Float64), g);
        Assert.AreEqual(4, n3.mean().item<double>(), 0.01);
        Assert.AreEqual(0.5, n3.std().item<double>(), 0.01);
        var n4 = torch.normal(1, 3, [400, 250], g, ScalarType.Float64);
        CollectionAssert.AreEqual(new long[] { 400, 250 }, n4.shape);
        Assert.AreEqual(ScalarType.Float64, n4.dtype);
        Assert.AreEqual(1, n4.mean().item<double>(), 0.05);
        Assert.AreEqual(3, n4.std().item<double>(), 0.05);
        Assert.AreEqual(ScalarType.Float32, torch.normal(0, 1, [3]).dtype);

        using var ga = new Generator(99);
        using var gb = new Generator(99);
        using var gc = new Generator(100);
        var zeros = torch.zeros(64);
        var ones = torch.ones(64);
        var a = torch.normal(zeros, ones, ga).ToArray<float>();
        var b = torch.normal(zeros, ones, gb).ToArray<float>();
        CollectionAssert.AreEqual(a, b);
        CollectionAssert.AreNotEqual(a, torch.normal(zeros, ones, gc).ToArray<float>());
        CollectionAssert.AreEqual(torch.normal(0, 1, [64], ga).ToArray<float>(), torch.normal(0, 1, [64], gb).ToArray<float>());

        var ex = Assert.ThrowsException<TorchException>(() => torch.normal(zeros, -1.0));
        StringAssert.Contains(ex.Message, "std");
    }

    [TestMethod]
    public void MultinomialDrawsFollowTheWeights()
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(3);
        var w = torch.tensor(new double[] { 0, 1, 3 });
        var s = w.multinomial(40_000, replacement: true, generator: g);
        Assert.AreEqual(ScalarType.Int64, s.dtype);
        CollectionAssert.AreEqual(new long[] { 40_000 }, s.shape);
        Assert.IsFalse(s.eq(0).any().item<bool>(), "a zero weight is never drawn");
        Assert.AreEqual(0.75, s.eq(2).to(ScalarType.Float64).mean().item<double>(), 0.01);

        // without replacement: distinct categories
        var d = torch.multinomial(torch.ones(6), 6, false, g).ToArray<long>();
        CollectionAssert.AreEquivalent(new long[] { 0, 1, 2, 3, 4, 5 }, d);
        // one row per distribution
        var rows = torch.tensor(new float[] { 1, 0, 0, 0, 0, 1 }, [2, 3]).multinomial(4, true, g);
        CollectionAssert.AreEqual(new long[] { 2, 4 }, rows.shape);
        CollectionAssert.AreEqual(new long[] { 0, 0, 0, 0, 2, 2, 2, 2 }, rows.ToArray<long>());

        using var g1 = new Generator(17);
        using var g2 = new Generator(17);
        var probs = torch.tensor(new float[] { 0.1f, 0.2f, 0.3f, 0.4f });
        CollectionAssert.AreEqual(probs.multinomial(50, true, g1).ToArray<long>(), probs.multinomial(50, true, g2).ToArray<long>());

        var ex = Assert.ThrowsException<TorchException>(() => torch.ones(3).multinomial(5));
        StringAssert.Contains(ex.Message, "cannot sample n_sample > prob_dist.size(-1) samples without replacement");
    }

    [TestMethod]
    public void RandomFillsWithIntegersInRange()
    {
        using var scope = torch.NewDisposeScope();
        using var g1 = new Generator(21);
        using var g2 = new Generator(21);
        var a = torch.zeros([2000], ScalarType.Int64);
        Assert.AreSame(a, a.random_(3, 10, g1));
        var v = a.ToArray<long>();
        Assert.IsTrue(v.All(x => x >= 3 && x < 10));
        CollectionAssert.AreEquivalent(new long[] { 3, 4, 5, 6, 7, 8, 9 }, v.Distinct().ToArray());
        CollectionAssert.AreEqual(v, torch.zeros([2000], ScalarType.Int64).random_(3, 10, g2).ToArray<long>());
        var f = torch.zeros(1000).random_(5, g1).ToArray<float>();
        Assert.IsTrue(f.All(x => x >= 0 && x < 5 && x == Math.Floor(x)));
        Assert.AreEqual(5, f.Distinct().Count());
        Assert.ThrowsException<TorchException>(() => torch.zeros(3).random_(5, 5));
    }
}
