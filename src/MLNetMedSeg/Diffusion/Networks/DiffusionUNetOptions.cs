using System.Text.Json.Serialization;

namespace MLNetMedSeg.Diffusion.Networks;

/// <summary>
/// Shape of a <see cref="DiffusionUNet"/> (the ADM U-Net of Dhariwal &amp; Nichol 2021, guided-diffusion's
/// <c>UNetModel</c>). A plain, JSON-serialisable class (saved in model zips). The defaults are a small network that
/// trains in minutes on 64×64 CPU data (1.19 M parameters with 3 + 1 input channels); the papers' 128–256 px configurations are e.g.
/// <c>BaseChannels = 128, ChannelMultipliers = [1, 1, 2, 3, 4], BlocksPerLevel = 2, AttentionResolutions = [32, 16, 8],
/// HeadChannels = 64, GroupNormGroups = 32, ImageSize = 256</c>.
/// </summary>
public sealed class DiffusionUNetOptions
{
    /// <summary>Channels of the diffused input x_t (1 for a binary mask, 3 for an RGB image). Default 1.</summary>
    public int InChannels { get; set; } = 1;

    /// <summary>Channels of the output (the predicted noise ε or logits). Default 1.</summary>
    public int OutChannels { get; set; } = 1;

    /// <summary>
    /// Channels of the condition concatenated to x_t on the channel axis (e.g. 1 for a mask conditioning an image,
    /// DASP Eq. 7); 0 (the default) for an unconditional network.
    /// </summary>
    public int ConditionChannels { get; set; }

    /// <summary>
    /// Width of the first level (guided-diffusion's <c>model_channels</c>); also the dimension of the sinusoidal
    /// timestep embedding, which the MLP lifts to 4·BaseChannels. Default 32.
    /// </summary>
    public int BaseChannels { get; set; } = 32;

    /// <summary>Width multiplier of each resolution level (level i has BaseChannels·m_i channels). Default [1, 2, 2].</summary>
    public int[] ChannelMultipliers { get; set; } = [1, 2, 2];

    /// <summary>Residual blocks per level on the way down (the way up has one more, as guided-diffusion). Default 1.</summary>
    public int BlocksPerLevel { get; set; } = 1;

    /// <summary>
    /// Feature-map sizes (px, for an input of <see cref="ImageSize"/>) whose levels get self-attention after each
    /// residual block, as guided-diffusion's <c>--attention_resolutions</c> (converted there to down-sampling rates
    /// ImageSize / r). The middle block always has one attention layer. Default [16] (the third level at 64 px).
    /// </summary>
    public int[] AttentionResolutions { get; set; } = [16];

    /// <summary>Channels per attention head (heads = channels / HeadChannels; must divide the attended widths). Default 32.</summary>
    public int HeadChannels { get; set; } = 32;

    /// <summary>Groups of every GroupNorm (must divide every width, BaseChannels included). Default 8.</summary>
    public int GroupNormGroups { get; set; } = 8;

    /// <summary>Dropout probability inside the residual blocks (before their last conv). Default 0.</summary>
    public double Dropout { get; set; }

    /// <summary>
    /// The input size the <see cref="AttentionResolutions"/> refer to (fixes which levels have attention; the network
    /// itself runs on any H, W divisible by 2^(levels − 1)). Default 64.
    /// </summary>
    public int ImageSize { get; set; } = 64;

    /// <summary>Number of resolution levels (= ChannelMultipliers.Length).</summary>
    [JsonIgnore]
    public int Levels => ChannelMultipliers.Length;

    /// <summary>A deep copy.</summary>
    public DiffusionUNetOptions Clone()
    {
        var c = (DiffusionUNetOptions)MemberwiseClone();
        c.ChannelMultipliers = ChannelMultipliers.ToArray();
        c.AttentionResolutions = AttentionResolutions.ToArray();
        return c;
    }

    /// <summary>True when level <paramref name="level"/> (0 = full resolution) gets self-attention.</summary>
    public bool HasAttention(int level) => AttentionResolutions.Contains(ImageSize >> level);

    /// <summary>Checks every option; the message names the offending one.</summary>
    /// <exception cref="ArgumentException">An option is invalid.</exception>
    public void Validate()
    {
        if (InChannels < 1) throw new ArgumentException($"InChannels must be ≥ 1, got {InChannels}", nameof(InChannels));
        if (OutChannels < 1) throw new ArgumentException($"OutChannels must be ≥ 1, got {OutChannels}", nameof(OutChannels));
        if (ConditionChannels < 0) throw new ArgumentException($"ConditionChannels must be ≥ 0, got {ConditionChannels}", nameof(ConditionChannels));
        if (BaseChannels < 2 || BaseChannels % 2 != 0)
            throw new ArgumentException($"BaseChannels must be even and ≥ 2 (it is the sinusoidal embedding size), got {BaseChannels}", nameof(BaseChannels));
        if (ChannelMultipliers is null || ChannelMultipliers.Length == 0 || ChannelMultipliers.Any(m => m < 1))
            throw new ArgumentException("ChannelMultipliers must be a non-empty list of integers ≥ 1", nameof(ChannelMultipliers));
        if (BlocksPerLevel < 1) throw new ArgumentException($"BlocksPerLevel must be ≥ 1, got {BlocksPerLevel}", nameof(BlocksPerLevel));
        if (AttentionResolutions is null || AttentionResolutions.Any(r => r < 1))
            throw new ArgumentException("AttentionResolutions must be a list of feature-map sizes ≥ 1 (may be empty)", nameof(AttentionResolutions));
        if (HeadChannels < 1) throw new ArgumentException($"HeadChannels must be ≥ 1, got {HeadChannels}", nameof(HeadChannels));
        if (GroupNormGroups < 1) throw new ArgumentException($"GroupNormGroups must be ≥ 1, got {GroupNormGroups}", nameof(GroupNormGroups));
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentException($"Dropout must be in [0, 1), got {Dropout}", nameof(Dropout));
        if (ImageSize < 1) throw new ArgumentException($"ImageSize must be ≥ 1, got {ImageSize}", nameof(ImageSize));
        if (ImageSize % (1 << (Levels - 1)) != 0)
            throw new ArgumentException($"ImageSize {ImageSize} must be divisible by 2^(levels − 1) = {1 << (Levels - 1)} ({Levels} levels)", nameof(ImageSize));
        foreach (var w in ChannelMultipliers.Select(m => m * BaseChannels).Prepend(BaseChannels))
            if (w % GroupNormGroups != 0)
                throw new ArgumentException($"GroupNormGroups {GroupNormGroups} must divide every width; {w} is not divisible", nameof(GroupNormGroups));
        for (int l = 0; l < Levels; l++)
        {
            int w = BaseChannels * ChannelMultipliers[l];
            if ((HasAttention(l) || l == Levels - 1) && w % HeadChannels != 0)
                throw new ArgumentException($"HeadChannels {HeadChannels} must divide the attended width {w} (level {l})", nameof(HeadChannels));
        }
        var reachable = Enumerable.Range(0, Levels).Select(l => ImageSize >> l).ToHashSet();
        foreach (var r in AttentionResolutions)
            if (!reachable.Contains(r))
                throw new ArgumentException(
                    $"AttentionResolutions contains {r} px, which is no level's feature-map size for ImageSize {ImageSize} " +
                    $"(levels: {string.Join(", ", reachable)})", nameof(AttentionResolutions));
    }
}
