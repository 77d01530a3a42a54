using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Core;

/// <summary>A module that initialises its own parameters from a generator (instead of <see cref="SeededInit"/>'s defaults).</summary>
public interface ISeededInit
{
    /// <summary>
    /// Called after every module of the network got the default initialisation: re-initialises what this module
    /// initialises its own way (its parameters, or a descendant's, such as a zero-initialised output layer), drawing
    /// any randomness from <paramref name="generator"/>.
    /// </summary>
    void ResetParameters(Generator generator);
}

/// <summary>
/// Seeded initialisation, which TorchSharp lacks (its <c>nn.init</c> ignores generators and its module constructors
/// take none). <see cref="Apply"/> re-initialises every parameter of a network from one generator, with PyTorch's
/// default rules, in the network's state-dict order: the same seed gives the same initial weights, whatever other
/// components drew before. Networks derive their generator from (run seed, component name), so components are
/// independent of one another.
/// <list type="bullet">
/// <item>Convolutions, transposed convolutions and linear layers (weight of rank ≥ 2): weight ~ U(−b, b) with
///   b = 1/√fan_in (kaiming_uniform with a = √5), bias ~ U(−1/√fan_in, 1/√fan_in) — PyTorch's reset_parameters.</item>
/// <item>Embeddings: weight ~ N(0, 1).</item>
/// <item>Normalisation layers (weight of rank 1): weight 1, bias 0.</item>
/// <item>Then every module implementing <see cref="ISeededInit"/> applies its own rule (zero-initialised output
///   layers, He-normal convolutions, ...), in the same order.</item>
/// </list>
/// </summary>
public static class SeededInit
{
    /// <summary>Re-initialises every parameter of <paramref name="module"/> from <paramref name="generator"/>.</summary>
    public static void Apply(nn.Module module, Generator generator)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(generator);
        using var noGrad = torch.no_grad();
        foreach (var (_, m) in module.PreOrder())
        {
            var own = m.named_parameters(recurse: false).ToDictionary(e => e.name, e => e.parameter);
            own.TryGetValue("weight", out var w);
            own.TryGetValue("bias", out var b);
            if (m is Embedding && w is not null) { Normal(w, 0, 1, generator); continue; }
            if (w is not null && w.dim() >= 2)
            {
                double bound = 1.0 / Math.Sqrt(FanIn(w));
                Uniform(w, bound, generator);
                if (b is not null) Uniform(b, bound, generator);
            }
            else if (w is not null && w.dim() == 1)
            {
                w.fill_(S(1.0));
                b?.fill_(S(0));
            }
            else if (w is null && b is not null) b.fill_(S(0));
        }
        foreach (var (_, m) in module.PreOrder())
            if (m is ISeededInit custom) custom.ResetParameters(generator);
    }

    /// <summary>PyTorch's fan-in of a weight: size(1) × the receptive field (the product of dims 2..).</summary>
    public static long FanIn(Tensor weight)
    {
        if (weight.dim() < 2) throw new ArgumentException("fan-in needs a weight of rank ≥ 2", nameof(weight));
        long receptive = 1;
        for (int d = 2; d < weight.dim(); d++) receptive *= weight.size(d);
        return weight.size(1) * receptive;
    }

    /// <summary>PyTorch's fan-out of a weight: size(0) × the receptive field.</summary>
    public static long FanOut(Tensor weight)
    {
        if (weight.dim() < 2) throw new ArgumentException("fan-out needs a weight of rank ≥ 2", nameof(weight));
        long receptive = 1;
        for (int d = 2; d < weight.dim(); d++) receptive *= weight.size(d);
        return weight.size(0) * receptive;
    }

    /// <summary>Fills <paramref name="t"/> in place with U(−bound, bound) draws from <paramref name="generator"/>.</summary>
    public static void Uniform(Tensor t, double bound, Generator? generator)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var r = SeededRandom.Rand(t.shape, ScalarType.Float32, torch.CPU, generator);
        t.copy_(r.mul_(S(2 * bound)).sub_(S(bound)));
    }

    /// <summary>Fills <paramref name="t"/> in place with N(mean, std²) draws from <paramref name="generator"/>.</summary>
    public static void Normal(Tensor t, double mean, double std, Generator? generator)
    {
        using var scope = torch.NewDisposeScope();
        using var noGrad = torch.no_grad();
        var r = SeededRandom.Randn(t.shape, ScalarType.Float32, torch.CPU, generator);
        t.copy_(r.mul_(S(std)).add_(S(mean), S(1)));
    }

    /// <summary>He (kaiming) normal initialisation for ReLU: N(0, 2/fan), fan = fan-out (or fan-in).</summary>
    public static void KaimingNormal(Tensor t, Generator? generator, bool fanOut = true)
        => Normal(t, 0, Math.Sqrt(2.0 / (fanOut ? FanOut(t) : FanIn(t))), generator);
}
