namespace MLNetMedSeg.Augmentation.Classic;

/// <summary>The classic augmentation baselines of DASP Table 1 (the CLI's <c>--augment</c> choices).</summary>
public enum ClassicAugmentationKind
{
    /// <summary>No augmentation ("No Aug."); CLI <c>none</c>.</summary>
    None,
    /// <summary>Random horizontal and vertical flips ("Basic"); CLI <c>basic</c>.</summary>
    Basic,
    /// <summary>CutMix (Yun et al. 2019); CLI <c>cutmix</c>.</summary>
    CutMix,
    /// <summary>CutOut (DeVries &amp; Taylor 2017); CLI <c>cutout</c>.</summary>
    CutOut,
    /// <summary>Random Erasing (Zhong et al. 2020); CLI <c>erase</c>.</summary>
    RandomErase,
    /// <summary>Elastic transform (Simard et al. 2003); CLI <c>elastic</c>.</summary>
    Elastic,
    /// <summary>Gaussian noise training (Rusak et al. 2020); CLI <c>noise</c>.</summary>
    GaussianNoise,
}

/// <summary>Factory and name parsing for <see cref="ClassicAugmentationKind"/>.</summary>
public static class ClassicAugmentations
{
    private static readonly (ClassicAugmentationKind Kind, string Name)[] Names =
    [
        (ClassicAugmentationKind.None, "none"),
        (ClassicAugmentationKind.Basic, "basic"),
        (ClassicAugmentationKind.CutMix, "cutmix"),
        (ClassicAugmentationKind.CutOut, "cutout"),
        (ClassicAugmentationKind.RandomErase, "erase"),
        (ClassicAugmentationKind.Elastic, "elastic"),
        (ClassicAugmentationKind.GaussianNoise, "noise"),
    ];

    /// <summary>The CLI names in order: none, basic, cutmix, cutout, erase, elastic, noise.</summary>
    public static IReadOnlyList<string> Choices { get; } = Names.Select(n => n.Name).ToArray();

    /// <summary>The augmentation of <paramref name="kind"/> with its documented default options.</summary>
    public static IBatchAugmentation Create(ClassicAugmentationKind kind) => kind switch
    {
        ClassicAugmentationKind.None => NoAugmentation.Instance,
        ClassicAugmentationKind.Basic => new FlipAugmentation(),
        ClassicAugmentationKind.CutMix => new CutMix(),
        ClassicAugmentationKind.CutOut => new CutOut(),
        ClassicAugmentationKind.RandomErase => new RandomErasing(),
        ClassicAugmentationKind.Elastic => new ElasticTransform(),
        ClassicAugmentationKind.GaussianNoise => new GaussianNoise(),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"unknown augmentation kind; choose one of: {string.Join(", ", Choices)}"),
    };

    /// <summary>The CLI name of <paramref name="kind"/> (e.g. <c>erase</c> for <see cref="ClassicAugmentationKind.RandomErase"/>).</summary>
    public static string ToName(ClassicAugmentationKind kind)
    {
        foreach (var (k, n) in Names) if (k == kind) return n;
        throw new ArgumentOutOfRangeException(nameof(kind), kind, "unknown augmentation kind");
    }

    /// <summary>
    /// Parses a CLI name (<c>none|basic|cutmix|cutout|erase|elastic|noise</c>) or an enum member name, ignoring
    /// case and surrounding spaces; anything else throws an <see cref="ArgumentException"/> listing the choices.
    /// </summary>
    public static ClassicAugmentationKind Parse(string value)
    {
        if (TryParse(value, out var kind)) return kind;
        throw new ArgumentException(
            $"unknown augmentation '{value}'; choose one of: {string.Join(", ", Choices)}", nameof(value));
    }

    /// <summary>Like <see cref="Parse"/> without throwing.</summary>
    public static bool TryParse(string? value, out ClassicAugmentationKind kind)
    {
        kind = ClassicAugmentationKind.None;
        if (string.IsNullOrWhiteSpace(value)) return false;
        var v = value.Trim();
        foreach (var (k, n) in Names)
        {
            if (string.Equals(v, n, StringComparison.OrdinalIgnoreCase) || string.Equals(v, k.ToString(), StringComparison.OrdinalIgnoreCase))
            {
                kind = k;
                return true;
            }
        }
        return false;
    }
}
