using MLNetMedSeg.Pipeline;
using Microsoft.ML;
using MLNetMedSeg.Cli.Commands;
using MLNetMedSeg.Data;
using MLNetMedSeg.Imaging;
using static MLNetMedSeg.Core.Scalars;
using MedSegContext = MLNetMedSeg.Pipeline.MedSegContext;

namespace MLNetMedSeg.Cli.Tests;

/// <summary>
/// What the verbs share on ML.NET (<see cref="MLNetRun"/>): the seeded split keeps the rows the CLI has always put in
/// each part (the library's TrainValidationTestSplit on the same folder and seed: build/precision-table.sh and README's
/// tables rely on it); images and masks loaded at one size stay aligned on non-square images.
/// </summary>
[TestClass]
public sealed class MLNetRunTests : CliTestBase
{
    private static string[] Ids(Microsoft.ML.IDataView view) =>
        new MLContext().Data.CreateEnumerable<ImageMaskPathRow>(view, reuseRowObject: false).Select(r => r.Id).ToArray();

    private static string[] Ids(MLNetMedSeg.Data.IDataView view)
    {
        var ids = new List<string>();
        using var cursor = view.GetRowCursor("Id");
        while (cursor.MoveNext()) ids.Add(cursor.GetText("Id"));
        return ids.ToArray();
    }

    [TestMethod]
    [DataRow(0.9, 0.1, 0)]
    [DataRow(0.8, 0.0, 1)]
    [DataRow(0.7, 0.2, 7)]
    public void Split_KeepsTheLibrarySplitsRows(double train, double validation, int seed)
    {
        string data = Path.Combine(_dir, "data");
        MakeData(data, 13, seed: 2);
        var ml = new MLContext(seed: 99); // the split's seed is the one given, not the context's
        var split = MLNetRun.Split(ml, ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(data, "images"), Path.Combine(data, "masks")), train, validation, seed);

        var ctx = new MedSegContext(seed: 5);
        var library = DataViews.TrainValidationTestSplit(ctx, DataViews.LoadImagesAndMasks(ctx, Path.Combine(data, "images"), Path.Combine(data, "masks")), train, validation, seed);
        CollectionAssert.AreEqual(Ids(library.Train), Ids(split.Train));
        CollectionAssert.AreEqual(Ids(library.Validation), Ids(split.Validation));
        CollectionAssert.AreEqual(Ids(library.Test), Ids(split.Test));
        Assert.AreEqual(13, split.TrainCount + split.ValidationCount + split.TestCount);
        Assert.AreEqual(Ids(split.Train).Length, split.TrainCount);

        var other = MLNetRun.Split(ml, ml.MedSeg().Data.LoadImageMaskPairs(Path.Combine(data, "images"), Path.Combine(data, "masks")), train, validation, seed + 1);
        CollectionAssert.AreNotEqual(Ids(split.Train), Ids(other.Train), "another seed draws other rows");
    }

    [TestMethod]
    public void LoadImagesAndLoadMasks_StayAligned_OnNonSquareImages()
    {
        // 24×20 images whose two leftmost columns are bright, as is their mask: stretched to 16×16 both keep the stripe
        // at the left edge (a centre crop to the aspect ratio, ML.NET's default, would cut the stripe from the image only).
        string data = Path.Combine(_dir, "stripe");
        Directory.CreateDirectory(Path.Combine(data, "images"));
        Directory.CreateDirectory(Path.Combine(data, "masks"));
        const int w = 24, h = 20;
        var image = new byte[w * h * 3];
        var mask = new byte[w * h];
        for (int y = 0; y < h; y++)
            for (int x = 0; x < 2; x++)
            {
                image[(y * w + x) * 3] = image[(y * w + x) * 3 + 1] = image[(y * w + x) * 3 + 2] = 255;
                mask[y * w + x] = 255;
            }
        ImageIO.WritePng(Path.Combine(data, "images", "a.png"), image, w, h, 3);
        ImageIO.WritePng(Path.Combine(data, "masks", "a.png"), mask, w, h, 1);

        var ml = new MLContext(seed: 1);
        var pairs = MLNetRun.LoadPairs(ml, data);
        var loaded = MLNetRun.LoadImages(ml, 16, 16).Append(MLNetRun.LoadMasks(ml, 16, 16)).Append(MLNetRun.SelectIdImageMask(ml)).Fit(pairs).Transform(pairs);
        using var view = MLNetRun.Cache(loaded, CancellationToken.None);
        using var cursor = view.GetRowCursor("Image", "Mask");
        Assert.IsTrue(cursor.MoveNext());
        using var scope = TorchSharp.torch.NewDisposeScope();
        var brightness = cursor.GetTensor("Image").mean([0]); // [16,16]
        var m = cursor.GetTensor("Mask")[0];           // [16,16] in {0,1}
        Assert.AreEqual(32.0, m.sum().item<float>(), "the mask's stripe: 2 of 16 columns (nearest)");
        double inside = brightness.masked_select(m.gt(S(0.5))).mean().item<float>();
        double outside = brightness.masked_select(m.lt(S(0.5))).mean().item<float>();
        Assert.IsTrue(inside > 0.4 && outside < 0.1, $"image brightness under the mask {inside:F3}, elsewhere {outside:F3}: image and mask are aligned");
    }
}
