using MLNetMedSeg.Core;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Attacks.Networks;

/// <summary>
/// The critic f_disc of paper 002 (§3.2, Eq. 3): per level a stride-2 3×3 conv + LeakyReLU 0.2, then global average
/// pooling and a linear layer to one unbounded score per image (WGAN: no sigmoid). It has no BatchNorm although the
/// paper puts BatchNorm after every convolution: the gradient penalty of WGAN-GP is a per-sample quantity that batch
/// statistics would couple across the batch (Gulrajani et al. 2017, §4), so the critic is left unnormalised.
/// State-dict keys: levels.*, score.*.
/// </summary>
public sealed class DeformationCritic : MedSegModule<Tensor, Tensor>
{
    private readonly ModuleList<Sequential> _levels = new();
    private readonly nn.Module<Tensor, Tensor> _score;

    /// <param name="inChannels">Image channels.</param>
    /// <param name="widths">Widths of the levels (at least one).</param>
    /// <param name="generator">Draws the initial weights when given (see <see cref="SeededInit"/>).</param>
    public DeformationCritic(long inChannels, IReadOnlyList<long> widths, Generator? generator = null) : base(nameof(DeformationCritic))
    {
        ArgumentNullException.ThrowIfNull(widths);
        if (widths.Count == 0) throw new ArgumentException("the critic needs at least one level", nameof(widths));
        using var initScope = NewDisposeScope();   // temporaries of TorchSharp's layer initialisation are released now
        long prev = inChannels;
        foreach (var w in widths)
        {
            _levels.append(nn.Sequential(nn.Conv2d(prev, w, 3, stride: 2, padding: 1), LeakyReLUModule(0.2)));
            prev = w;
        }
        RegisterModule("levels", _levels);
        _score = RegisterModule("score", nn.Linear(prev, 1));
        if (generator is not null) SeededInit.Apply(this, generator);
    }

    /// <summary>Scores [N] of images [N, C, H, W] (higher = more like a real image).</summary>
    public override Tensor forward(Tensor images)
    {
        using var scope = NewDisposeScope();
        var x = images;
        foreach (var level in _levels) x = level.call(x);
        return _score.call(x.mean([2, 3])).squeeze(1).MoveToOuterDisposeScope();
    }
}
