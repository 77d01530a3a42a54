using MLNetMedSeg;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;

namespace Microsoft.ML;

/// <summary>Segmentation trainers (<c>ml.MedSeg().Trainers</c>).</summary>
public static class MedSegTrainersCatalogExtensions
{
    /// <summary>
    /// Trains a segmentation network — U-Net (default), U-Net++, LinkNet or DeepLabv3+ — on image/mask pairs with Adam
    /// and the soft Dice + BCE loss (paper 000 §3.4). <paramref name="imageColumnName"/>: <c>MLImage</c> (from
    /// <c>LoadImages</c>/<c>ResizeImages</c>) or float [C,H,W]; <paramref name="labelColumnName"/>: float [1,H,W] in
    /// {0,1} (from <c>LoadMasks</c>). The fitted model adds <c>Probability</c> and <c>Predicted</c>, float [1,H,W].
    /// </summary>
    public static SegmentationTrainer Segmentation(this MedSegTrainersCatalog catalog,
        SegmentationArchitecture architecture = SegmentationArchitecture.UNet, string labelColumnName = "Mask",
        string imageColumnName = "Image", int epochs = 20, int batchSize = 16, double learningRate = 1e-3)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        var o = new SegmentationTrainerOptions
        {
            MaskColumn = labelColumnName, ImageColumn = imageColumnName, Epochs = epochs, BatchSize = batchSize, LearningRate = learningRate,
        };
        o.Network.Architecture = architecture;
        return catalog.Segmentation(o);
    }

    /// <summary>Trains a segmentation network with every option (network, loss, schedule, validation, checkpoints, precision).</summary>
    public static SegmentationTrainer Segmentation(this MedSegTrainersCatalog catalog, SegmentationTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(options);
        return new SegmentationTrainer(catalog.ContextFor("Segmentation"), options);
    }
}
