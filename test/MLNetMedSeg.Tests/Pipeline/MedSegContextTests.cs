using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Tests.Pipeline;

[TestClass]
public class MedSegContextTests
{
    [TestMethod]
    public void DeriveSeed_IsAPinnedHashOfSeedNameAndIndex()
    {
        // SHA-256("42|Augmenter|0") and ("42|Augmenter|1"), first 8 bytes little-endian (computed with Python's hashlib).
        var ctx = new MedSegContext(seed: 42);
        Assert.AreEqual(6118098681415278745UL, ctx.DeriveSeed("Augmenter"));
        Assert.AreEqual(10366530802930345207UL, ctx.DeriveSeed("Augmenter"));
        Assert.AreEqual(6118098681415278745UL, MedSegContext.MixSeed(42, "Augmenter", 0));
    }

    [TestMethod]
    public void DeriveSeed_IsDeterministic_AndIndependentPerComponent()
    {
        var a = new MedSegContext(seed: 7);
        var b = new MedSegContext(seed: 7);
        var seqA = new[] { a.DeriveSeed("Trainer"), a.DeriveSeed("Trainer"), a.DeriveSeed("Trainer") };
        // b creates other components in between: Trainer's seeds do not move.
        b.DeriveSeed("Diffusion");
        var seqB0 = b.DeriveSeed("Trainer");
        b.DeriveSeed("Augmenter");
        b.DeriveSeed("Diffusion");
        var seqB = new[] { seqB0, b.DeriveSeed("Trainer"), b.DeriveSeed("Trainer") };
        CollectionAssert.AreEqual(seqA, seqB);
        Assert.AreEqual(3, seqA.Distinct().Count(), "successive components of one name get different seeds");
        Assert.AreNotEqual(new MedSegContext(seed: 7).DeriveSeed("Diffusion"), new MedSegContext(seed: 7).DeriveSeed("Trainer"));
        Assert.AreNotEqual(new MedSegContext(seed: 8).DeriveSeed("Trainer"), seqA[0]);
    }

    [TestMethod]
    public void Fork_SeedsFromTheNameOnly_NotFromWhatRanBefore_AndForwardsTheLog()
    {
        var a = new MedSegContext(seed: 7);
        var b = new MedSegContext(seed: 7);
        b.DeriveSeed("Trainer");
        b.Fork("method:noaug").DeriveSeed("Trainer");   // another part ran first in b
        var fa = a.Fork("method:dasp");
        var fb = b.Fork("method:dasp");
        Assert.AreEqual(fa.Seed, fb.Seed);
        Assert.AreEqual(fa.DeriveSeed("Trainer"), fb.DeriveSeed("Trainer"));
        Assert.AreNotEqual(a.Fork("method:noaug").Seed, fa.Seed, "parts with other names get other seeds");
        Assert.AreNotEqual(new MedSegContext(seed: 8).Fork("method:dasp").Seed, fa.Seed, "and other runs' seeds too");
        var seen = new List<string>();
        a.Log += (_, e) => seen.Add(e.Message);
        a.Fork("x").WriteLog(LogLevel.Info, "t", "from the part");
        CollectionAssert.AreEqual(new[] { "from the part" }, seen);
    }

    [TestMethod]
    public void Generators_AreReproducible_AndLeaveTheGlobalGeneratorAlone()
    {
        using var scope = torch.NewDisposeScope();
        var globalBefore = torch.Generator.Default.get_state();
        using var g1 = new MedSegContext(seed: 5).CreateGenerator("Noise");
        using var g2 = new MedSegContext(seed: 5).CreateGenerator("Noise");
        using var g3 = new MedSegContext(seed: 6).CreateGenerator("Noise");
        var x1 = torch.rand([16], generator: g1);
        var x2 = torch.rand([16], generator: g2);
        var x3 = torch.rand([16], generator: g3);
        Assert.IsTrue(x1.IsEqual(x2));
        Assert.IsFalse(x1.IsEqual(x3));
        Assert.IsTrue(globalBefore.IsEqual(torch.Generator.Default.get_state()), "the global generator must not be touched");

        var r1 = new MedSegContext(seed: 5).CreateRandom("Split");
        var r2 = new MedSegContext(seed: 5).CreateRandom("Split");
        CollectionAssert.AreEqual(Enumerable.Range(0, 8).Select(_ => r1.Next()).ToArray(), Enumerable.Range(0, 8).Select(_ => r2.Next()).ToArray());
    }
}
