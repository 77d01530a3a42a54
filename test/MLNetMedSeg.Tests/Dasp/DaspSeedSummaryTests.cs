using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Dasp;

namespace MLNetMedSeg.Tests.Dasp;

/// <summary>The main job's summary over training seeds: mean ± sd per method and the paired bootstrap against No-Aug.</summary>
[TestClass]
public sealed class DaspSeedSummaryTests
{
    private static DaspComparisonRow Row(string method, double[] dice) => new(method, method + " rows", dice.Average() * 0.8, dice.Average(), 10,
        ImageDice: dice.Select((d, i) => (Id: $"img{i:D2}", d)).ToDictionary(x => x.Id, x => x.d));

    [TestMethod]
    public void MeanAndSampleSdOverSeeds()
    {
        var runs = new List<(int, IReadOnlyList<DaspComparisonRow>)>
        {
            (1, [Row("noaug", [0.5, 0.7]), Row("dasp", [0.6, 0.8])]),
            (2, [Row("noaug", [0.7, 0.9]), Row("dasp", [0.6, 0.8])]),
            (3, [Row("noaug", [0.6, 0.8]), Row("dasp", [0.6, 0.8])]),
        };
        var s = new DaspSeedSummary(runs);
        var noaug = s.Methods.Single(m => m.Method == "noaug");
        Assert.AreEqual(3, noaug.Seeds);
        Assert.AreEqual(0.7, noaug.MeanDice, 1e-12);                      // per-seed mDice 0.6, 0.8, 0.7
        Assert.AreEqual(0.1, noaug.SdDice, 1e-12);                        // sample sd of {0.6, 0.8, 0.7}
        Assert.AreEqual(0.0, s.Methods.Single(m => m.Method == "dasp").SdDice, 1e-12);
        CollectionAssert.AreEqual(new[] { "noaug", "dasp" }, s.Methods.Select(m => m.Method).ToArray());
        var d = s.Differences.Single();
        Assert.AreEqual(("dasp", "noaug", 2), (d.Method, d.Baseline, d.Images));
        Assert.AreEqual(0.0, d.Difference, 1e-12, "each image's Dice averaged over the seeds is the same for both");
        StringAssert.Contains(s.ToMarkdown(), "| noaug | noaug rows | 56.00 ± 8.00 | 70.00 ± 10.00 | 10 |");
        StringAssert.Contains(s.ToJson(), "\"beyond_noise\": false");
    }

    [TestMethod]
    public void AMethodWithFewerSeeds_IsComparedOnTheSeedsItHas_AndTheTableSaysHowMany()
    {
        // A table still being filled: dasp has run with seed 1 only. Its paired difference is against seed 1's No-Aug
        // (0.5, 0.7 → +0.1 per image), not against No-Aug averaged over all three seeds (0.6, 0.8 → 0.0).
        var runs = new List<(int, IReadOnlyList<DaspComparisonRow>)>
        {
            (1, [Row("noaug", [0.5, 0.7]), Row("dasp", [0.6, 0.8])]),
            (2, [Row("noaug", [0.7, 0.9])]),
            (3, [Row("noaug", [0.6, 0.8])]),
        };
        var s = new DaspSeedSummary(runs);
        var d = s.Differences.Single();
        Assert.AreEqual(0.1, d.Difference, 1e-12, "compared on seed 1, the only seed both ran with");
        Assert.IsTrue(d.BeyondNoise);
        string md = s.ToMarkdown();
        StringAssert.Contains(md, "not every method has run with all of them (see Seeds)");
        StringAssert.Contains(md, "| Method | Trained on | Seeds | mIoU (%) | mDice (%) | Time per seed (s) |");
        StringAssert.Contains(md, "| noaug | noaug rows | 3 | 56.00 ± 8.00 | 70.00 ± 10.00 | 10 |");
        StringAssert.Contains(md, "| dasp | dasp rows | 1 | 56.00 | 70.00 | 10 |");
    }

    [TestMethod]
    public void PairedBootstrap_ConsistentGainIsBeyondTheNoise_ASymmetricOneIsNot()
    {
        var rand = new Random(4);
        var baseline = Enumerable.Range(0, 30).Select(_ => 0.4 + 0.5 * rand.NextDouble()).ToArray();
        var better = baseline.Select(v => v + 0.05).ToArray();
        var noisy = baseline.Select((v, i) => v + (i % 2 == 0 ? 0.2 : -0.2)).ToArray();
        var runs = new List<(int, IReadOnlyList<DaspComparisonRow>)> { (1, [Row("noaug", baseline), Row("better", better), Row("noisy", noisy)]) };
        var s = new DaspSeedSummary(runs, bootstrapSeed: 9);

        var b = s.Differences.Single(x => x.Method == "better");
        Assert.AreEqual(0.05, b.Difference, 1e-12);
        Assert.AreEqual(0.05, b.Low, 1e-12, "every image gains 0.05: every resample's mean is 0.05");
        Assert.AreEqual(0.05, b.High, 1e-12);
        Assert.IsTrue(b.BeyondNoise);
        StringAssert.Contains(b.ToString(), "better − noaug: +5.00 mDice points");
        StringAssert.Contains(b.ToString(), "better, beyond the noise");

        var n = s.Differences.Single(x => x.Method == "noisy");
        Assert.AreEqual(0.0, n.Difference, 1e-12);
        Assert.IsTrue(n.Low < 0 && n.High > 0, $"[{n.Low}, {n.High}] straddles 0");
        // ±0.2 on 30 images: the sd of the mean is 0.2/√30 ≈ 0.0365, so the 95% interval is about ±0.072.
        Assert.AreEqual(-0.072, n.Low, 0.012);
        Assert.AreEqual(0.072, n.High, 0.012);
        Assert.IsFalse(n.BeyondNoise);
        StringAssert.Contains(n.ToString(), "within the noise");
        Assert.AreEqual(double.NaN, s.Methods[0].SdDice, "one seed: no sd");
        StringAssert.Contains(s.ToMarkdown(), "over 1 training seed (1)");
    }

    [TestMethod]
    public void WithoutTheBaseline_NoPairedLine_AndBadInputIsNamed()
    {
        var s = new DaspSeedSummary([(1, [Row("dasp", [0.5])])]);
        Assert.AreEqual(0, s.Differences.Count);
        Assert.ThrowsException<ArgumentException>(() => new DaspSeedSummary([]));
        var noImages = new DaspComparisonRow("noaug", "x", 0.5, 0.5, 1);
        var e = Assert.ThrowsException<ArgumentException>(() => new DaspSeedSummary([(1, [noImages, Row("dasp", [0.5])])]));
        StringAssert.Contains(e.Message, "'noaug' has no per-image Dice");
    }

    [TestMethod]
    public void RunsJson_RoundTrips_PartsMergeIntoTheWhole_AndRobustnessIsAveragedOverSeeds()
    {
        static DaspComparisonRow Robust(string method, double[] dice, double[] underFgsm) => Row(method, dice) with
        {
            Robustness = underFgsm.Select((d, i) => new RobustnessPoint(0.05 * i, d * 0.8, d)).ToList(),
        };
        var whole = new List<(int, IReadOnlyList<DaspComparisonRow>)>
        {
            (1, [Robust("noaug", [0.5, 0.7], [0.6, 0.4]), Robust("dasp", [0.6, 0.8], [0.7, 0.6])]),
            (2, [Robust("noaug", [0.7, 0.9], [0.8, 0.2]), Robust("dasp", [0.6, 0.8], [0.7, 0.4])]),
        };
        // One part per (seed, method), as parallel processes write them, in another order.
        var parts = new List<(int, IReadOnlyList<DaspComparisonRow>)>
        {
            (1, [whole[0].Item2[0]]), (2, [whole[1].Item2[0]]), (1, [whole[0].Item2[1]]), (2, [whole[1].Item2[1]]),
        };
        var read = DaspSeedSummary.RunsFromJson(DaspSeedSummary.RunsToJson(parts));
        var merged = DaspSeedSummary.Merge(read);
        var a = new DaspSeedSummary(whole);
        var b = new DaspSeedSummary(merged);
        Assert.AreEqual(a.ToMarkdown(), b.ToMarkdown());
        Assert.AreEqual(a.ToJson(), b.ToJson());
        Assert.AreEqual(0.7, read[0].Rows[0].ImageDice!["img01"], 1e-12, "image Dice survives the round trip");

        var noaug = b.Robustness.Single(r => r.Method == "noaug").Points;
        Assert.AreEqual(0.7, noaug[0].MeanDice, 1e-12);            // ε = 0: 0.6 and 0.8
        Assert.AreEqual(Math.Sqrt(0.02), noaug[0].SdDice, 1e-12);  // sample sd of {0.6, 0.8}
        Assert.AreEqual(0.3, noaug[1].MeanDice, 1e-12);            // ε = 0.05: 0.4 and 0.2
        StringAssert.Contains(b.ToMarkdown(), "| noaug | 70.00 ± 14.14 | 30.00 ± 14.14 |");
        StringAssert.Contains(b.ToJson(), "\"fgsm_robustness\"");

        var clash = Assert.ThrowsException<ArgumentException>(() => DaspSeedSummary.Merge([.. parts, (2, [whole[1].Item2[1]])]));
        StringAssert.Contains(clash.Message, "seed 2: method 'dasp' appears in more than one run");
        var foreign = Assert.ThrowsException<InvalidDataException>(() => DaspSeedSummary.RunsFromJson("{\"mDice\": 1}", "x/runs.json"));
        StringAssert.Contains(foreign.Message, "x/runs.json");
        var broken = Assert.ThrowsException<InvalidDataException>(() => DaspSeedSummary.RunsFromJson("[{\"seed\": 1, \"rows\": [{\"method\": \"a\"}]}]", "y.json"));
        StringAssert.Contains(broken.Message, "y.json");
        Assert.ThrowsException<InvalidDataException>(() => DaspSeedSummary.RunsFromJson("[{", "z.json"));
    }
}
