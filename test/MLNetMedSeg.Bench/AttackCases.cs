using MLNetMedSeg.Augmentation;
using MLNetMedSeg.Core;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Pipeline;
using MLNetMedSeg.Segmentation.Networks;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Bench;

/// <summary>
/// The adversarial case of build/bench.sh, as diffpgd_batch in build/bench/bench_torch.py: one DASP attack
/// (<see cref="AdversarialAttackOptions.Dasp"/>: Diff-PGD, K = 10, γ = 1/255, no ε-ball, W = exp(−z²/8) on the clean
/// logits, Eq. 10 loss) of a batch in the configuration bench_torch.py times: the detached gradient form (Diff-PGD's v2)
/// and 3 DDIM calls per SDEdit (η = 0, respaced indices 2, 1, 0 of the 1000-step linear schedule respaced to 50) —
/// since 2026-12-03 <c>Dasp()</c> takes Eq. 9's gradient through SDEdit and T^s = 3 means 4 calls, so the case pins
/// <c>Gradient = Detached</c> and <c>SdEditDepth = 2</c> to keep timing the same work as its PyTorch twin) of a batch of RGB images with random masks, against the default U-Net segmenter (as seg_step_unet) in eval
/// mode, with SDEdit by an <see cref="ImageDiffusionTransformer"/> around the image diffusion stage's default network
/// (untrained, output convs drawn as in ddim50_sample). The timed call is the library's
/// <see cref="AdversarialAttack.Run(System.Func{Tensor, Tensor}, Tensor, Tensor, ulong, System.Collections.Generic.IReadOnlyList{long}?, System.Threading.CancellationToken)"/>.
/// </summary>
internal static class AttackCases
{
    /// <summary>
    /// Returns the median time of one attack, the parameter counts "segmenter+diffusion" and the network calls of one
    /// attack "diffusion forwards+segmenter forwards". With <paramref name="paperReading"/> the attack is
    /// <see cref="AdversarialAttackOptions.Dasp"/> as it is (Eq. 9's gradient through SDEdit, T^s = 3 as 4 DDIM calls):
    /// no PyTorch twin, for the cost of DASP's reading.
    /// </summary>
    public static (double ms, string parameters, string calls) DiffPgdBatch(int size, int batch, Func<Action, double> medianMs, bool paperReading = false)
    {
        using var g = new Generator(0);
        using var seg = SegmentationNetworks.Create(new SegmentationNetworkOptions { Architecture = SegmentationArchitecture.UNet }, g);
        var net = DiffusionCases.DefaultNetwork(g);
        DiffusionCases.TrainedLike(net, g);
        long diffusionParams = net.ParameterCount();
        using var editor = new ImageDiffusionTransformer(new MedSegContext(seed: 0), new ImageDiffusionOptions { SamplingSeed = 0 }, net);
        var counting = new CountingSdEditor(editor);
        var options = AdversarialAttackOptions.Dasp();
        if (!paperReading)
        {
            options.Gradient = DiffPgdGradient.Detached;   // the PyTorch twin's form (see the class remarks)
            options.SdEditDepth = 2;                        // noise to respaced index 2, 3 DDIM calls, as the twin
        }
        var attack = new AdversarialAttack(options, counting);
        using var x = rand([batch, 3, size, size], generator: g);
        using var y = (rand([batch, 1, size, size], generator: g) > S(0.5)).to(ScalarType.Float32);
        int segCalls = 0;
        Tensor Logits(Tensor t)
        {
            segCalls++;
            return seg.call(t);
        }
        using var eval = ModuleModeScope.Eval(seg);  // what Run(SegmentationTransformer, ...) does around the same call
        string? calls = null;
        void Attack()
        {
            using var scope = NewDisposeScope();
            counting.NetworkCalls = 0;
            segCalls = 0;
            attack.Run(Logits, x, y, seed: 0);
            string c = $"{counting.NetworkCalls}+{segCalls}";
            if (calls is not null && calls != c) throw new InvalidOperationException($"network calls changed between runs: {calls} then {c}");
            calls = c;
        }
        double ms = medianMs(Attack);
        return (ms, $"{seg.ParameterCount()}+{diffusionParams}", calls!);
    }

    /// <summary>
    /// Passes every SDEdit to the image diffusion transformer and counts its network forwards: GaussianDiffusion.SdEdit
    /// runs <c>depth</c> + 1 DDIM steps (GaussianDiffusion.Denoise from respaced index depth to 0, DASP Eq. 1), each one
    /// forward of the network (PredictNoise: one call, over the batch, or over the doubled batch with classifier-free guidance).
    /// </summary>
    private sealed class CountingSdEditor(ImageDiffusionTransformer inner) : ISdEditor
    {
        public int NetworkCalls { get; set; }

        public int ImageChannels => inner.ImageChannels;

        public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, Generator? generator = null)
        {
            NetworkCalls += depth + 1;
            return inner.SdEdit(images, masks, respacedSteps, depth, differentiable, generator);
        }

        /// <summary>Per-row noise, one batched call (what the attack uses): also depth + 1 forwards.</summary>
        public Tensor SdEdit(Tensor images, Tensor masks, int respacedSteps, int depth, bool differentiable, IReadOnlyList<Generator> generators)
        {
            NetworkCalls += depth + 1;
            return inner.SdEdit(images, masks, respacedSteps, depth, differentiable, generators);
        }
    }
}
