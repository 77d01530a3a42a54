using MLNetMedSeg.Augmentation;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Data;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Imaging;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using TorchSharp.Modules;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Dasp;

/// <summary>The DASP sample grid (paper 000, Fig. 3): x̃, ỹ, x̃ᴷ, x̃₀ᴷ, W and the segmenter's prediction on x̃₀ᴷ per generated pair.</summary>
public static class DaspFigures
{
    /// <summary>The column titles of <c>dasp_samples.png</c>, left to right.</summary>
    public static IReadOnlyList<string> Columns { get; } =
        ["x̃ (generated image)", "ỹ (generated mask)", "x̃ᴷ (PGD, no SDEdit)", "x̃₀ᴷ (with SDEdit)", "W (uncertainty)", "prediction on x̃₀ᴷ"];

    /// <summary>
    /// Attacks the first <see cref="DaspOptions.FigureCount"/> generated pairs against <paramref name="segmenter"/> with the
    /// flow's attack (DASP's when it has none) and writes <c>dasp_samples.png</c> into <paramref name="folder"/>; returns its path.
    /// </summary>
    internal static string Write(string folder, IDataView generated, IDifferentiableSegmenter segmenter, ISdEditor sdEditor, DaspOptions options, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(generated);
        ArgumentNullException.ThrowIfNull(segmenter);
        ArgumentNullException.ThrowIfNull(options);
        Directory.CreateDirectory(folder);
        using var scope = torch.NewDisposeScope();
        var xs = new List<Tensor>();
        var ys = new List<Tensor>();
        using (var cursor = generated.GetRowCursor(options.ImageColumn, options.MaskColumn))
            while (xs.Count < options.FigureCount && cursor.MoveNext())
            {
                xs.Add(cursor.GetTensor(options.ImageColumn).clone());
                ys.Add(cursor.GetTensor(options.MaskColumn).clone());
            }
        if (xs.Count == 0) throw new InvalidOperationException("DASP figures: no generated pairs");
        var device = segmenter.Device;
        var x = torch.stack(xs.ToArray(), 0).to(device);
        var y = torch.stack(ys.ToArray(), 0).to(device);
        var attack = (options.Attack ?? AdversarialAttackOptions.Dasp()).Clone();
        attack.UncertaintyColumn ??= "Uncertainty"; // computes W for display even when the attack does not weight by it
        var r = new AdversarialAttack(attack, attack.NeedsSdEditor ? sdEditor : null).Run(segmenter, x, y, seed);
        var predicted = segmenter.PredictProbabilities(r.Attacked).ge(S(0.5)).to(ScalarType.Float32);
        var grid = Compose([x, y, r.Perturbed, r.Attacked, r.Uncertainty ?? torch.zeros_like(y), predicted]);
        string path = Path.Combine(folder, "dasp_samples.png");
        ImageIO.WritePng(path, grid.cpu());
        return path;
    }

    /// <summary>
    /// Tiles panels into one RGB image: column j is <paramref name="columns"/>[j] ([N,C,H,W], C = 1 or 3, values in
    /// [0,1], one-channel panels shown in grey), row i is sample i; 2 px white lines between panels.
    /// </summary>
    public static Tensor Compose(IReadOnlyList<Tensor> columns)
    {
        ArgumentNullException.ThrowIfNull(columns);
        if (columns.Count == 0) throw new ArgumentException("no columns", nameof(columns));
        using var scope = torch.NewDisposeScope();
        long n = columns[0].size(0), h = columns[0].size(2), w = columns[0].size(3);
        var device = columns[0].device;
        var parts = new List<Tensor>();
        for (int j = 0; j < columns.Count; j++)
        {
            var c = columns[j].to(ScalarType.Float32, device).detach().clamp(S(0), S(1));
            if (c.size(0) != n || c.size(2) != h || c.size(3) != w)
                throw new ArgumentException($"column {j} is [{string.Join(",", c.shape)}]; every column must be [{n},C,{h},{w}]", nameof(columns));
            if (c.size(1) == 1) c = c.expand(n, 3, h, w);
            if (j > 0) parts.Add(torch.ones([n, 3, h, 2], ScalarType.Float32, device));
            parts.Add(c);
        }
        var rows = torch.cat(parts.ToArray(), 3);                                              // [N, 3, H, W']
        long wide = rows.size(3);
        var withSep = torch.cat([rows, torch.ones([n, 3, 2, wide], ScalarType.Float32, device)], 2); // [N, 3, H + 2, W']
        var grid = withSep.permute(1, 0, 2, 3).reshape(3, n * (h + 2), wide);
        return grid.narrow(1, 0, n * (h + 2) - 2).contiguous().MoveToOuterDisposeScope();
    }
}
