using MLNetMedSeg.Cli.Commands;
using MLNetMedSeg.Segmentation.Networks;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>How `medseg train --backbone B --encoder E --encoder-weights W [--imagenet-model P]` becomes network options.</summary>
[TestClass]
public sealed class EncoderOptionsCliTests
{
    [TestMethod]
    public void BackboneEncoderAndWeightsMapToSmpsVocabulary()
    {
        // Without --encoder every backbone keeps its own encoder (existing behaviour).
        var unet = TrainCommand.NetworkOptions("unet", null, "none", null);
        Assert.AreEqual(EncoderKind.Plain, unet.ResolvedEncoder);
        var link = TrainCommand.NetworkOptions("linknet", null, "none", null);
        Assert.AreEqual(EncoderKind.ResNet, link.ResolvedEncoder);
        CollectionAssert.AreEqual(new[] { 2, 2, 2, 2 }, link.ResolvedResNetBlocks);

        foreach (var b in TrainCommand.Backbones)
        {
            var o = TrainCommand.NetworkOptions(b, "resnet18", "imagenet", null);
            Assert.AreEqual(TrainCommand.ParseBackbone(b), o.Architecture);
            Assert.AreEqual("resnet18", o.EncoderName);
            Assert.AreEqual(EncoderWeights.ImageNet, o.EncoderWeights);
            Assert.AreEqual(EncoderKind.ResNet, o.ResolvedEncoder);
            CollectionAssert.AreEqual(new[] { 2, 2, 2, 3 }, o.ResolvedResNetBlocks, $"{b}: the package's ImageNet layout");
        }
        var r34 = TrainCommand.NetworkOptions("unetpp", "resnet34", "none", null);
        CollectionAssert.AreEqual(new[] { 3, 4, 6, 3 }, r34.ResolvedResNetBlocks);
        Assert.AreEqual("/x/DnnImageModels", TrainCommand.NetworkOptions("unet", null, "imagenet", "/x/DnnImageModels").ImageNetModelPath);
        Assert.AreEqual(EncoderKind.ResNet, TrainCommand.NetworkOptions("unet", null, "imagenet", null).ResolvedEncoder);

        var e = Assert.ThrowsException<ArgumentException>(() => TrainCommand.NetworkOptions("unet", "resnet34", "imagenet", null));
        StringAssert.Contains(e.Message, "only for resnet18");
        e = Assert.ThrowsException<ArgumentException>(() => TrainCommand.NetworkOptions("unet", "plain", "imagenet", null));
        StringAssert.Contains(e.Message, "--encoder resnet18");
        e = Assert.ThrowsException<ArgumentException>(() => TrainCommand.NetworkOptions("linknet", "plain", "none", null));
        StringAssert.Contains(e.Message, "ResNet encoder");
        e = Assert.ThrowsException<ArgumentException>(() => TrainCommand.NetworkOptions("unet", null, "none", "/x"));
        StringAssert.Contains(e.Message, "--imagenet-model");
    }
}
