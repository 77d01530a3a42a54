using MLNetMedSeg.Core;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Bench;

/// <summary>
/// The diffusion cases of build/bench.sh, as diffusion_* / ddim50_sample in build/bench/bench_torch.py: the image
/// diffusion stage's default network (DiffusionUNetOptions defaults with 3 image channels in and out and 1 mask
/// channel, 64 px) and its Gaussian process (linear schedule, T = 1000).
/// </summary>
internal static class DiffusionCases
{
    /// <summary>The image diffusion stage's default network at 64 px, untrained, weights from <paramref name="g"/>.</summary>
    internal static DiffusionUNet DefaultNetwork(Generator g)
        => new(new ImageDiffusionOptions().ResolvedNetwork(64), g);

    /// <summary>Draws the zero-initialised output convs N(0, 0.02) so that ε̂ is not all zeros (a trained-like network).</summary>
    internal static void TrainedLike(DiffusionUNet net, Generator g)
    {
        using (no_grad())
            foreach (var (name, p) in net.named_parameters())
                if (name.EndsWith("out_conv.weight") || name.EndsWith("proj.weight")) p.normal_(0, 0.02, g);
    }

    /// <summary>One training step: t ~ U{0..999}, ε ~ N(0, I), x_t = q_sample, MSE(ε̂, ε), backward, Adam (lr 1e-4).</summary>
    public static (double ms, long parameters) TrainStep(int size, int batch, Func<Action, double> medianMs)
    {
        using var g = new Generator(0);
        using var net = DefaultNetwork(g);
        using var opt = optim.Adam(net.parameters(), lr: 1e-4);
        var diffusion = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 1000));
        using var x0 = rand([batch, 3, size, size], generator: g) * S(2) - S(1);
        using var cond = (rand([batch, 1, size, size], generator: g) > S(0.5)).to(ScalarType.Float32) * S(2) - S(1);
        void Step()
        {
            using var scope = NewDisposeScope();
            opt.zero_grad();
            var loss = diffusion.TrainingLoss(net.forward, x0, cond, 0, g);
            loss.backward();
            opt.step();
        }
        return (medianMs(Step), net.ParameterCount());
    }

    /// <summary>50-step DDIM (η = 0) sampling of a batch from x_T ~ N(0, I), conditioned on masks; eval, no grad.</summary>
    public static (double ms, long parameters) Ddim50(int size, int batch, Func<Action, double> medianMs)
    {
        using var g = new Generator(0);
        using var net = DefaultNetwork(g);
        TrainedLike(net, g);  // trained-like, not all-zero ε̂
        net.eval();
        var diffusion = new GaussianDiffusion(NoiseSchedule.Create(BetaScheduleKind.Linear, 1000));
        using var cond = (rand([batch, 1, size, size], generator: g) > S(0.5)).to(ScalarType.Float32) * S(2) - S(1);
        var options = new GaussianSamplingOptions { Sampler = GaussianSamplerKind.Ddim, Steps = 50, Eta = 0 };
        void Sample()
        {
            using var scope = NewDisposeScope();
            diffusion.Sample(net.forward, [batch, 3, size, size], cond, options, [g]);
        }
        return (medianMs(Sample), net.ParameterCount());
    }
}
