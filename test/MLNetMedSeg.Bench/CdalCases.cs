using MLNetMedSeg.Core;
using MLNetMedSeg.Segmentation.Cdal;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Bench;

/// <summary>
/// The cDAL cases of build/bench.sh (paper 003), as cdal_* in build/bench/bench_torch.py (twins CdalGenerator and
/// CdalDiscriminator in build/bench/networks.py): the network the CLI and the simple catalog overload train
/// (<see cref="CdalTrainerOptions.CpuSizedModel"/>: generator base 32, multipliers 1,2,2,2, self-attention at 8²,
/// discriminator width 32) at 64 px with the paper's T = 2, attention at 16², L = 100, 5 samples; float32, CPU.
/// </summary>
internal static class CdalCases
{
    /// <summary>CpuSizedModel() at <paramref name="size"/> px with T = 2 (the other options: CdalOptions' defaults).</summary>
    internal static CdalOptions Options(int size)
    {
        var o = CdalTrainerOptions.CpuSizedModel();
        o.ImageSize = size;
        o.Timesteps = 2;
        return o;
    }

    /// <summary>Random RGB images in [0, 1] and binary masks, [batch, 3|1, size, size], from <paramref name="g"/>.</summary>
    private static (Tensor Images, Tensor Masks) Batch(int size, int batch, Generator g)
    {
        using var scope = NewDisposeScope();
        var images = rand([batch, 3, size, size], generator: g);
        var masks = (rand([batch, 1, size, size], generator: g) > S(0.5)).to(ScalarType.Float32);
        return (images.MoveToOuterDisposeScope(), masks.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// One Algorithm-1 iteration, <see cref="CdalTrainingStep.Step"/>: the discriminator step (real pair, R1 penalty
    /// with its double backward, generator forward without gradients, posterior draw, fake loss, Adam) then the
    /// generator step (fresh real pair, attention map A_D, x_t^att ~ q(x_t | x₀ ⊙ A_D), Eq. 4's MSE, Adam).
    /// Returns the median and "&lt;generator&gt;+&lt;discriminator&gt;" parameter counts.
    /// </summary>
    public static (double ms, string parameters) TrainStep(int size, int batch, Func<Action, double> medianMs)
    {
        var o = Options(size);
        using var g = new Generator(0);
        using var generator = new CdalGeneratorNetwork(o, g);
        using var discriminator = new CdalDiscriminatorNetwork(o, g);
        using var step = new CdalTrainingStep(o, generator, discriminator);
        var (images, masks) = Batch(size, batch, g);
        using (images)
        using (masks)
        {
            void Step()
            {
                using var scope = NewDisposeScope();
                step.Step(images, masks, g);
            }
            return (medianMs(Step), $"{generator.ParameterCount()}+{discriminator.ParameterCount()}");
        }
    }

    /// <summary>
    /// Algorithm 2 for a batch: <see cref="CdalSampler.PredictProbability(Tensor, long, long)"/> (per-image generators,
    /// K = 5 samples per image, T = 2 generator forwards on the batch × K, posterior draw between them, mean of the
    /// clamped probabilities) and <see cref="CdalSampler.ToMask"/>; eval, no grad. The generator's zero-initialised
    /// output convs are drawn N(0, 0.02) first (a trained-like network, as the DDIM case). Returns the median and the
    /// generator's parameter count.
    /// </summary>
    public static (double ms, long parameters) Predict5(int size, int batch, Func<Action, double> medianMs)
    {
        var o = Options(size);
        using var g = new Generator(0);
        using var generator = new CdalGeneratorNetwork(o, g);
        using (no_grad())
            foreach (var (name, p) in generator.named_parameters())
                if (name.EndsWith("out_conv.weight") || name.EndsWith("proj.weight") || name.EndsWith("conv1.weight")) p.normal_(0, 0.02, g);
        var sampler = new CdalSampler(o, generator);
        var (images, masks) = Batch(size, batch, g);
        using (images)
        using (masks)
        {
            void Predict()
            {
                using var scope = NewDisposeScope();
                sampler.ToMask(sampler.PredictProbability(images, seed: 0));
            }
            return (medianMs(Predict), generator.ParameterCount());
        }
    }
}
