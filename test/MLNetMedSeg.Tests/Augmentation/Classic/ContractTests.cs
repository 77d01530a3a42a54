using MLNetMedSeg.Core;
using MLNetMedSeg.Augmentation.Classic;
using static MLNetMedSeg.Tests.Augmentation.Classic.AugBatch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Tests.Augmentation.Classic;

[TestClass]
public sealed class ContractTests
{
    [TestMethod]
    public void SameSeedGivesIdenticalOutputAndAnotherSeedADifferentOne()
    {
        foreach (var kind in AllKinds)
        {
            using var scope = torch.NewDisposeScope();
            var aug = ClassicAugmentations.Create(kind);
            var (images, masks) = Binary(8, 24, 24);
            (Tensor, Tensor) Run(ulong seed) { using var g = new Generator(seed); return aug.Apply(images, masks, g); }
            var (a1, m1) = Run(100);
            var (a2, m2) = Run(100);
            Assert.IsTrue(a1.IsEqual(a2) && m1.IsEqual(m2), $"{kind}: same seed, same output");
            var (b1, _) = Run(101);
            if (kind == ClassicAugmentationKind.None) Assert.IsTrue(b1.IsEqual(images), "none is the identity");
            else Assert.IsFalse(a1.IsEqual(b1), $"{kind}: another seed must give another draw");
        }
    }

    [TestMethod]
    public void ConsecutiveCallsOnOneGeneratorDrawAfresh()
    {
        using var scope = torch.NewDisposeScope();
        var (images, masks) = Binary(8, 16, 16);
        using var g = new Generator(5);
        var aug = new ElasticTransform();
        var (a, _) = aug.Apply(images, masks, g);
        var (b, _) = aug.Apply(images, masks, g);
        Assert.IsFalse(a.IsEqual(b), "every batch gets a new random draw");
    }

    [TestMethod]
    public void ShapesDtypesAndDevicesArePreservedAndInputsUntouched()
    {
        var devices = new List<Device> { torch.CPU };
        if (torch.cuda.is_available()) devices.Add(new Device(DeviceType.CUDA, 0));
        foreach (var device in devices)
        foreach (var kind in AllKinds)
        foreach (bool classes in new[] { false, true })
        {
            using var scope = torch.NewDisposeScope();
            var (hi, hm) = classes ? Classes(5, 18, 22) : Binary(5, 18, 22);
            var images = hi.to(device);
            var masks = hm.to(device);
            var keepI = images.clone();
            var keepM = masks.clone();
            using var g = new Generator(9);
            var (oi, om) = ClassicAugmentations.Create(kind).Apply(images, masks, g);
            string what = $"{kind} {(classes ? "class" : "binary")} on {device}";
            CollectionAssert.AreEqual(images.shape, oi.shape, what);
            CollectionAssert.AreEqual(masks.shape, om.shape, what);
            Assert.AreEqual(images.dtype, oi.dtype, what);
            Assert.AreEqual(masks.dtype, om.dtype, what);
            Assert.AreEqual(device.ToString(), oi.device.ToString(), what);
            Assert.AreEqual(device.ToString(), om.device.ToString(), what);
            Assert.IsFalse(ReferenceEquals(oi, images) || ReferenceEquals(om, masks), $"{what}: new tensors");
            Assert.IsTrue(images.IsEqual(keepI) && masks.IsEqual(keepM), $"{what}: inputs untouched");
            if (classes) Assert.IsTrue((om.ge(S(0L)) & om.le(S(3L))).all().ToBoolean(), $"{what}: classes kept");
            else Assert.IsTrue((om.eq(S(0.0)) | om.eq(S(1.0))).all().ToBoolean(), $"{what}: binary kept");
        }
    }

    [TestMethod]
    public void ResultsJoinTheCallersScopeAndNothingLeaks()
    {
        long baseline = LiveTensors.Settled();
        using (var scope = torch.NewDisposeScope())
        {
            var (images, masks) = Binary(6, 20, 20);
            var (ci, cm) = Classes(6, 20, 20);
            var augs = AllKinds.Select(ClassicAugmentations.Create).Append(new Compose(new FlipAugmentation(), new CutMix(), new GaussianNoise())).ToList();
            using var g = new Generator(3);
            foreach (var aug in augs)
            {
                int before = scope.DisposablesCount;
                long live = LiveTensors.Settled();
                var (oi, om) = aug.Apply(images, masks, g);
                Assert.AreEqual(before + 2, scope.DisposablesCount, $"{aug.Name}: exactly the two results join the caller's scope");
                Assert.AreEqual(live + 2, LiveTensors.Settled(), $"{aug.Name}: no temporaries survive the call");
                var (oi2, om2) = aug.Apply(ci, cm, g);
                Assert.AreEqual(live + 4, LiveTensors.Settled(), $"{aug.Name} (class masks): no temporaries survive");
            }
        }
        Assert.AreEqual(baseline, LiveTensors.Settled(), "everything is freed with the scope");
    }

    [TestMethod]
    public void ComposeAppliesStepsInOrderAndKeepsAlignment()
    {
        using var scope = torch.NewDisposeScope();
        var (images, masks) = Binary(10, 24, 24);
        var flip = new FlipAugmentation();
        var cutmix = new CutMix(new CutMixOptions { Probability = 1 });
        var compose = new Compose(flip, cutmix);
        Assert.AreEqual("basic+cutmix", compose.Name);
        using var g1 = new Generator(77);
        var (ci, cm) = compose.Apply(images, masks, g1);
        using var g2 = new Generator(77);
        var (fi, fm) = flip.Apply(images, masks, g2);
        var (si, sm) = cutmix.Apply(fi, fm, g2);
        Assert.IsTrue(ci.IsEqual(si) && cm.IsEqual(sm), "compose = the steps one after the other on one generator");
        Assert.IsTrue(DecodeBinary(ci).IsEqual(cm));
        Assert.AreEqual("none", new Compose().Name);
        Assert.ThrowsException<ArgumentNullException>(() => new Compose(flip, null!));
    }

    [TestMethod]
    public void ParseAcceptsTheCliNamesAndEnumNamesAndListsTheChoicesOnError()
    {
        var expected = new Dictionary<string, ClassicAugmentationKind>
        {
            ["none"] = ClassicAugmentationKind.None, ["basic"] = ClassicAugmentationKind.Basic,
            ["cutmix"] = ClassicAugmentationKind.CutMix, ["cutout"] = ClassicAugmentationKind.CutOut,
            ["erase"] = ClassicAugmentationKind.RandomErase, ["elastic"] = ClassicAugmentationKind.Elastic,
            ["noise"] = ClassicAugmentationKind.GaussianNoise,
        };
        foreach (var (name, kind) in expected)
        {
            Assert.AreEqual(kind, ClassicAugmentations.Parse(name));
            Assert.AreEqual(kind, ClassicAugmentations.Parse(" " + name.ToUpperInvariant() + " "));
            Assert.AreEqual(kind, ClassicAugmentations.Parse(kind.ToString()));
            Assert.AreEqual(name, ClassicAugmentations.ToName(kind));
            Assert.AreEqual(name, ClassicAugmentations.Create(kind).Name);
        }
        CollectionAssert.AreEqual(expected.Keys.ToArray(), ClassicAugmentations.Choices.ToArray());
        foreach (var bad in new[] { "flip", "", "cut mix", "random-erase" })
        {
            var ex = Assert.ThrowsException<ArgumentException>(() => ClassicAugmentations.Parse(bad));
            StringAssert.Contains(ex.Message, $"'{bad}'");
            StringAssert.Contains(ex.Message, "none, basic, cutmix, cutout, erase, elastic, noise");
        }
        Assert.IsFalse(ClassicAugmentations.TryParse(null, out _));
        Assert.ThrowsException<ArgumentOutOfRangeException>(() => ClassicAugmentations.Create((ClassicAugmentationKind)99));
    }

    [TestMethod]
    public void BadInputsAndOptionsAreRejectedWithTheirNames()
    {
        using var scope = torch.NewDisposeScope();
        using var g = new Generator(1);
        var aug = new FlipAugmentation();
        var ex = Assert.ThrowsException<ArgumentException>(() => aug.Apply(torch.zeros([2, 3, 8, 8]), torch.zeros([2, 1, 8, 9]), g));
        Assert.AreEqual("masks", ex.ParamName);
        StringAssert.Contains(ex.Message, "FlipAugmentation");
        ex = Assert.ThrowsException<ArgumentException>(() => aug.Apply(torch.zeros([3, 8, 8]), torch.zeros([1, 8, 8]), g));
        Assert.AreEqual("images", ex.ParamName);
        ex = Assert.ThrowsException<ArgumentException>(() => aug.Apply(torch.zeros([2, 3, 8, 8]), torch.zeros([2, 8, 8]), g));
        Assert.AreEqual("masks", ex.ParamName, "float masks must be [N,1,H,W]");
        ex = Assert.ThrowsException<ArgumentException>(() => aug.Apply(torch.zeros([2, 3, 8, 8], ScalarType.Float64), torch.zeros([2, 1, 8, 8]), g));
        Assert.AreEqual("images", ex.ParamName);

        var o = Assert.ThrowsException<ArgumentOutOfRangeException>(() => new CutMix(new CutMixOptions { Alpha = 0 }));
        Assert.AreEqual("Alpha", o.ParamName);
        o = Assert.ThrowsException<ArgumentOutOfRangeException>(() => new FlipAugmentation(new FlipOptions { VerticalProbability = 1.5 }));
        Assert.AreEqual("VerticalProbability", o.ParamName);
        o = Assert.ThrowsException<ArgumentOutOfRangeException>(() => new RandomErasing(new RandomErasingOptions { MinArea = 0.5, MaxArea = 0.2 }));
        Assert.AreEqual("MinArea", o.ParamName);
        o = Assert.ThrowsException<ArgumentOutOfRangeException>(() => new CutOut(new CutOutOptions { Holes = 0 }));
        Assert.AreEqual("Holes", o.ParamName);
        o = Assert.ThrowsException<ArgumentOutOfRangeException>(() => new ElasticTransform(new ElasticTransformOptions { Sigma = -1 }));
        Assert.AreEqual("Sigma", o.ParamName);
        Assert.ThrowsException<ArgumentException>(() => new GaussianNoise(new GaussianNoiseOptions { SigmaChoices = [] }));
    }
}
