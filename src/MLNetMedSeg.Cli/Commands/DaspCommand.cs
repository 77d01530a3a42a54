using System.CommandLine;
using System.Globalization;
using Microsoft.ML;
using MLNetMedSeg.Augmentation.Adversarial;
using MLNetMedSeg.Augmentation.Classic;
using MLNetMedSeg.Core.MLNet;
using MLNetMedSeg.Dasp;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Diffusion.Networks;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Cdal;
using MLNetMedSeg.Segmentation.Losses;
using MLNetMedSeg.Segmentation.Networks;
using LogEventArgs = MLNetMedSeg.Pipeline.LogEventArgs;
using LogLevel = MLNetMedSeg.Pipeline.LogLevel;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg dasp --data DIR [--size N] [--backbone B] [--epochs N] --out RUNDIR</c>: the whole DASP flow (mask diffusion →
/// image diffusion → Diff-PGD with W → segmenter on real + attacked generated pairs) on a seeded train/test split of
/// DIR, compared with the methods of <c>--methods</c> on the same split. Writes RUNDIR/metrics.json (DASP's held-out
/// mIoU/mDice and every method's row), RUNDIR/comparison.md, RUNDIR/dasp_evaluation.json (per-image rows),
/// RUNDIR/figures/ (the DASP sample grid and the diffusion models' grids) and RUNDIR/model.zip (an ML.NET model:
/// LoadImages → ResizeImages → the fitted flow, which segments with its U-Net). The data are loaded with ML.NET
/// (LoadImageMaskPairs, LoadImages, ResizeImages, LoadMasks) and handed to the flow as the library's in-memory views.
/// <c>--backbone cdal [--cdal-timesteps 2] [--samples 5] [--attention-scale 16] [--latent-dim 100]</c> makes every
/// method's segmenter the cDAL diffusion segmenter (CPU-sized network, as <c>medseg train --backbone cdal</c>; the
/// attack differentiates its K-sample Algorithm-2 prediction); its comparison defaults to noaug,dasp (no classic
/// augmentation for cDAL).
/// </summary>
internal static class DaspCommand
{
    public static Command Create(CliConsole console)
    {
        var data = new Option<string>("--data") { Description = "folder with images/ and masks/ (matched by file stem)", Required = true };
        var size = new Option<int>("--size") { Description = "images and masks are resized to size×size pixels", DefaultValueFactory = _ => 64 };
        var backbone = new Option<string>("--backbone") { Description = "segmenter: unet, unetpp, linknet, deeplabv3plus, or cdal (the conditional diffusion segmenter of paper 003, attacked through its Algorithm-2 prediction)", DefaultValueFactory = _ => "unet" };
        backbone.AcceptOnlyFromAmong(TrainCommand.TrainBackbones);
        var cdalTimesteps = new Option<int>("--cdal-timesteps") { Description = "cdal: the segmenter's diffusion steps T (paper: 2 for chest X-rays, 4 for MoNuSeg)", DefaultValueFactory = _ => 2 };
        var samples = new Option<int>("--samples") { Description = "cdal: samples averaged per image at prediction and in the attack (paper: 5)", DefaultValueFactory = _ => 5 };
        var attentionScale = new Option<int>("--attention-scale") { Description = "cdal: side of the discriminator feature maps that give the attention map (must be size/2^k)", DefaultValueFactory = _ => 16 };
        var latentDim = new Option<int>("--latent-dim") { Description = "cdal: dimension of the random latent z (paper: 100)", DefaultValueFactory = _ => 100 };
        var widths = new Option<string?>("--widths") { Description = "segmenter encoder widths, shallow to deep, e.g. 16,32,64,128 (default: the backbone's 5 levels)" };
        var epochs = new Option<int>("--epochs") { Description = "segmenter training epochs (DASP: 200)", DefaultValueFactory = _ => 20 };
        var batch = new Option<int>("--batch") { Description = "segmenter batch size (DASP: 16)", DefaultValueFactory = _ => 16 };
        var lr = new Option<double>("--lr") { Description = "segmenter Adam learning rate (DASP on Kvasir-SEG: 4e-3)", DefaultValueFactory = _ => 1e-3 };
        var augment = new Option<string>("--augment") { Description = "classic augmentation used by every method: " + string.Join(", ", ClassicAugmentations.Choices), DefaultValueFactory = _ => "none" };
        augment.AcceptOnlyFromAmong([.. ClassicAugmentations.Choices]);
        var diffusionEpochs = new Option<int>("--diffusion-epochs") { Description = "training epochs of both diffusion models", DefaultValueFactory = _ => 40 };
        var diffusionLr = new Option<double>("--diffusion-lr") { Description = "Adam learning rate of both diffusion models (higher than the papers' 1e-4 so that CPU-length runs learn)", DefaultValueFactory = _ => 1e-3 };
        var diffusionWidth = new Option<int>("--diffusion-width") { Description = "base channel width of the diffusion U-Nets (the papers' 128–256 px models use 128)", DefaultValueFactory = _ => 32 };
        var timesteps = new Option<int>("--timesteps") { Description = "diffusion steps T of both models", DefaultValueFactory = _ => 1000 };
        var sampleSteps = new Option<int>("--sample-steps") { Description = "respaced sampling steps (strided Bernoulli sampler, DDIM)", DefaultValueFactory = _ => 25 };
        var synthetic = new Option<int>("--synthetic") { Description = "generated pairs per real image (DASP: 2, N′ = 2N)", DefaultValueFactory = _ => 2 };
        var steps = new Option<int>("--attack-steps") { Description = "PGD steps K (DASP: 10)", DefaultValueFactory = _ => 10 };
        var stepSize = new Option<string>("--step-size") { Description = "PGD step γ in [0,1] units (DASP's γ = 1 of 255)", DefaultValueFactory = _ => "1/255" };
        var depth = new Option<int>("--sdedit-depth") { Description = "SDEdit depth T^s (DASP: 3)", DefaultValueFactory = _ => 3 };
        var respacing = new Option<int>("--sdedit-steps") { Description = "steps the schedule is respaced to for SDEdit", DefaultValueFactory = _ => 50 };
        var gradient = new Option<string>("--diffpgd-gradient")
        {
            Description = "Diff-PGD's gradient: full (through SDEdit, DASP Eq. 9) or detached (Diff-PGD v2, the tables in docs/results.md before 2026-12-03)",
            DefaultValueFactory = _ => "full",
        };
        var loss = new Option<string>("--loss")
        {
            Description = "segmenter loss l of L_sup: generalized-dice (DASP's [30], Sudre et al.) or dice (per-image soft Dice, before 2026-12-03)",
            DefaultValueFactory = _ => "generalized-dice",
        };
        var every = new Option<int>("--attack-every") { Description = "re-attack the generated images against the current segmenter every n epochs (0: once, offline)", DefaultValueFactory = _ => 2 };
        var methods = new Option<string>("--methods") { Description = "comma-separated methods to compare: " + string.Join(", ", DaspExperiment.Methods.Keys), DefaultValueFactory = _ => "noaug,basic,dasp" };
        var gridEvery = new Option<int>("--grid-every") { Description = "also write the diffusion models' sample grids every n epochs (figures/mask-diffusion, figures/image-diffusion; 0: after training only)", DefaultValueFactory = _ => 0 };
        var robustness = new Option<bool>("--robustness") { Description = "also score every method under FGSM ε ∈ {0, 0.05, 0.1, 0.15, 0.2} (paper 001, Table 2)", DefaultValueFactory = _ => true };
        var testFraction = new Option<double>("--test-fraction") { Description = "fraction of the data held out for the comparison", DefaultValueFactory = _ => 0.2 };
        var testData = new Option<string?>("--test") { Description = "a folder of held-out pairs (images/, masks/) to score on; then every pair of --data trains (e.g. to keep the test images out of the generators' training data)" };
        var seed = new Option<int>("--seed") { Description = "seed of every random choice (the split; training too unless --seeds)", DefaultValueFactory = _ => 0 };
        var seeds = new Option<string?>("--seeds") { Description = "comma-separated training seeds, e.g. 1,2,3: every method is trained once per seed on the same split (--seed's); the report gives mean ± sd and each method against No-Aug with a paired bootstrap interval" };
        var generators = new Option<string?>("--generators") { Description = "a model file with trained mask and image diffusion models (written by 'medseg generate --save-model' or 'medseg dasp', e.g. data/models/kvasir-64-generators.zip): the generative methods use it instead of training the diffusion models" };
        var encoder = new Option<string?>("--encoder") { Description = "segmenter encoder: plain, resnet18 or resnet34 (default: the backbone's own); see 'medseg train --help'" };
        encoder.AcceptOnlyFromAmong(TrainCommand.Encoders);
        var encoderWeights = new Option<string>("--encoder-weights") { Description = "segmenter encoder weights: none or imagenet (ResNet-18 from Microsoft.ML.DnnImageFeaturizer.ResNet18)", DefaultValueFactory = _ => "none" };
        encoderWeights.AcceptOnlyFromAmong(TrainCommand.EncoderWeightChoices);
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var output = new Option<string>("--out") { Description = "run folder for metrics.json, comparison.md, figures/ and model.zip", Required = true };
        var cmd = new Command("dasp", "run the whole DASP flow (mask diffusion → image diffusion → Diff-PGD with uncertainty → segmenter) and compare it with baselines")
        {
            data, size, backbone, widths, epochs, batch, lr, augment, diffusionEpochs, diffusionLr, diffusionWidth, timesteps, sampleSteps, synthetic, steps, stepSize, depth,
            respacing, gradient, loss, every, methods, gridEvery, robustness, testFraction, testData, seed, seeds, generators, encoder, encoderWeights, device, output,
            cdalTimesteps, samples, attentionScale, latentDim,
        };
        cmd.SetAction((parse, ct) => console.Invoke(() =>
        {
            int seedValue = parse.GetValue(seed);
            var ml = MLNetRun.CreateContext(console, seedValue, parse.GetValue(device)!, ct);
            var bar = MLNetRun.AttachProgressBar(ml, console);
            // The flow runs on the library's views (DaspExperiment); its context takes seed, device, log and progress
            // from the MLContext. Warnings reach stderr through ml.Log; the flow's own progress lines are shown too.
            var ctx = MLContextBridge.ContextFor(ml, "Dasp");
            EventHandler<LogEventArgs> showSteps = (_, e) =>
            {
                if (e.Level < LogLevel.Warning && e.Source is "DASP" or "DASP comparison") console.Err.WriteLine($"[{e.Source}] {e.Message}");
            };
            ctx.Log += showSteps;
            int n = parse.GetValue(size);
            if (n < 16 || n % 8 != 0) throw new ArgumentOutOfRangeException("--size", n, "--size must be a multiple of 8, at least 16");
            double tf = parse.GetValue(testFraction);
            if (tf is <= 0 or >= 1) throw new ArgumentOutOfRangeException("--test-fraction", tf, "--test-fraction must be in (0, 1)");
            bool cdal = parse.GetValue(backbone) == "cdal";
            // cDAL has no classic augmentation: its default comparison leaves 'basic' out.
            string methodText = cdal && parse.GetResult(methods) is not { Implicit: false } ? "noaug,dasp" : parse.GetValue(methods)!;
            var methodList = methodText.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (var m in methodList)
                if (!DaspExperiment.Methods.ContainsKey(m))
                    throw new ArgumentException($"--methods: unknown method '{m}'; choose from: {string.Join(", ", DaspExperiment.Methods.Keys)}");
            string run = parse.GetRequiredValue(output);
            Directory.CreateDirectory(run);
            string figures = Path.Combine(run, "figures");

            if (cdal)
            {
                if (parse.GetValue(encoder) is not null || parse.GetValue(encoderWeights) != "none" || parse.GetValue(widths) is not null)
                    throw new ArgumentException("--encoder, --encoder-weights and --widths are options of the segmentation networks, not of --backbone cdal");
                if (parse.GetValue(augment) != "none") throw new ArgumentException("--augment is not supported with --backbone cdal");
                if (methodList.Contains("basic")) throw new ArgumentException("--methods: 'basic' (classic augmentation) is not supported with --backbone cdal");
            }
            var flow = Flow(cdal ? "unet" : parse.GetValue(backbone)!, parse.GetValue(epochs), parse.GetValue(batch), parse.GetValue(lr), parse.GetValue(augment)!,
                parse.GetValue(diffusionEpochs), parse.GetValue(diffusionLr), parse.GetValue(diffusionWidth), parse.GetValue(timesteps), parse.GetValue(sampleSteps), n);
            if (parse.GetValue(encoder) is not null || parse.GetValue(encoderWeights) != "none")
            {
                if (parse.GetValue(widths) is not null) throw new ArgumentException("--widths sets the plain encoder's widths; it cannot be combined with --encoder/--encoder-weights");
                flow.Segmentation.Network = TrainCommand.NetworkOptions(parse.GetValue(backbone)!, parse.GetValue(encoder), parse.GetValue(encoderWeights)!, null);
            }
            if (parse.GetValue(widths) is { } ws)
            {
                var list = ws.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(v => long.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var c) && c > 0 ? c
                        : throw new ArgumentException($"--widths: '{v}' is not a positive channel count")).ToArray();
                if (list.Length < 2) throw new ArgumentException("--widths needs at least two levels");
                flow.Segmentation.Network.EncoderDepth = list.Length;
                flow.Segmentation.Network.EncoderWidths = list;
            }
            if (cdal)
            {
                // The generator's learning rate: --lr when given, else the paper code's (CdalOptions' default).
                double? generatorLr = parse.GetResult(lr) is { Implicit: false } ? parse.GetValue(lr) : null;
                flow.Segmenter = DaspSegmenter.Cdal;
                flow.Cdal = new CdalTrainerOptions
                {
                    Cdal = TrainCommand.CdalModel(parse.GetValue(cdalTimesteps), parse.GetValue(samples), parse.GetValue(attentionScale), parse.GetValue(latentDim), generatorLr, n),
                    Epochs = parse.GetValue(epochs),
                    BatchSize = parse.GetValue(batch),
                };
            }
            flow.SyntheticPerImage = parse.GetValue(synthetic);
            flow.AttackEveryEpochs = parse.GetValue(every);
            flow.FigureFolder = figures;
            int ge = parse.GetValue(gridEvery);
            if (ge < 0) throw new ArgumentOutOfRangeException("--grid-every", ge, "--grid-every must be ≥ 0");
            flow.MaskDiffusion.SampleGridEvery = ge;
            flow.ImageDiffusion.SampleGridEvery = ge;
            flow.Attack = AdversarialAttackOptions.Dasp();
            flow.Attack.Steps = parse.GetValue(steps);
            flow.Attack.StepSize = AttackCommand.ParseAmount(parse.GetValue(stepSize)!, "--step-size");
            flow.Attack.SdEditDepth = parse.GetValue(depth);
            flow.Attack.SdEditRespacing = parse.GetValue(respacing);
            flow.Attack.Gradient = AttackCommand.ParseGradient(parse.GetValue(gradient)!);
            flow.Segmentation.Loss.Kind = parse.GetValue(loss)!.Trim().ToLowerInvariant() switch
            {
                "generalized-dice" => SegmentationLossKind.GeneralizedDice,
                "dice" => SegmentationLossKind.Dice,
                var other => throw new ArgumentException($"--loss: '{other}' is not one of: generalized-dice, dice"),
            };

            // The seeded split of the pairs (the same rows as before for the same seed), loaded at n×n.
            var all = MLNetRun.LoadPairs(ml, parse.GetRequiredValue(data));
            IDataView trainPairs, testPairs;
            long nTrain, nTest;
            if (parse.GetValue(testData) is { } testDir)
            {
                trainPairs = all;
                testPairs = MLNetRun.LoadPairs(ml, testDir, "--test");
                (nTrain, nTest) = (MLNetRun.CountRows(trainPairs), MLNetRun.CountRows(testPairs));
            }
            else
            {
                var split = MLNetRun.Split(ml, all, 1 - tf, 0, seedValue);
                (trainPairs, testPairs, nTrain, nTest) = (split.Train, split.Test, split.TrainCount, split.TestCount);
            }
            var images = MLNetRun.LoadImages(ml, all, n, n);
            var load = images.Append(MLNetRun.LoadMasks(ml, n, n)).Append(MLNetRun.SelectIdImageMask(ml)).Fit(trainPairs);
            using var train = MLNetRun.Cache(load.Transform(trainPairs), ct);
            using var test = MLNetRun.Cache(load.Transform(testPairs), ct);
            console.Err.WriteLine($"DASP at {n}x{n}: {nTrain} training pairs, {nTest} held out; methods: {string.Join(", ", methodList)}");

            var seedList = parse.GetValue(seeds) is { } sv ? ParseSeeds(sv) : [seedValue];
            ITransformer? generatorModel = null;
            IDisposable? ownedGenerator = null;
            (MaskDiffusionTransformer? Masks, ImageDiffusionTransformer Images)? pretrained = null;
            if (parse.GetValue(generators) is { } generatorPath)
            {
                generatorModel = MLNetRun.LoadModel(ml, generatorPath, out _);
                var (gm, gi) = GenerateCommand.Stages(generatorModel, generatorPath, out ownedGenerator);
                if (gm.Network.Options.ImageSize != n || gi.Network.Options.ImageSize != n)
                    throw new ArgumentException($"--generators '{generatorPath}' draws {gi.Network.Options.ImageSize}x{gi.Network.Options.ImageSize} pairs; run with --size {gi.Network.Options.ImageSize} (or train generators at {n} px)");
                pretrained = (gm, gi);
                console.Err.WriteLine($"using the generators of '{generatorPath}' (not training diffusion models)");
            }
            // With given generators every seed's generative methods train on the same drawn pairs: draw them once.
            using var drawnPairs = pretrained is null ? null : new GeneratedPairsCache();
            try
            {
                var runs = new List<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)>();
                foreach (int trainingSeed in seedList)
                {
                    // Each seed trains every method anew on the same split, from its own MLContext seed; the first seed's
                    // figures and DASP model are kept.
                    // (With --seeds, even one seed: the training seed's own context, so that runs split over processes
                    // — one seed each — train exactly as one run over all the seeds does; 'medseg dasp-summary' joins them.)
                    var seedMl = parse.GetValue(seeds) is null ? ml : MLNetRun.CreateContext(console, trainingSeed, parse.GetValue(device)!, ct);
                    if (!ReferenceEquals(seedMl, ml)) seedMl.MedSeg().Progress = ml.MedSeg().Progress;
                    var seedCtx = ReferenceEquals(seedMl, ml) ? ctx : MLContextBridge.ContextFor(seedMl, "Dasp");
                    if (!ReferenceEquals(seedCtx, ctx)) seedCtx.Log += showSteps;
                    var seedFlow = flow.Clone();
                    if (runs.Count > 0)
                    {
                        seedFlow.FigureFolder = null;
                        seedFlow.MaskDiffusion.SampleGridFolder = null;
                        seedFlow.ImageDiffusion.SampleGridFolder = null;
                    }
                    if (seedList.Count > 1) console.Err.WriteLine($"training seed {trainingSeed} ({runs.Count + 1} of {seedList.Count})");
                    // runs.json grows with every finished row, so a run cut off mid-way keeps what it scored
                    // ('medseg dasp-summary' merges such files).
                    var done = new List<DaspComparisonRow>();
                    using var result = DaspExperiment.Run(seedCtx, train, test, seedFlow, methodList,
                        robustnessEpsilons: parse.GetValue(robustness) ? AdversarialRobustness.PaperEpsilons : null, rowDone: r =>
                        {
                            console.Err.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Method}: mIoU {r.MeanIoU:F4} mDice {r.MeanDice:F4} ({r.Seconds:F0} s)"));
                            done.Add(r);
                            EvaluateCommand.WriteAtomic(Path.Combine(run, "runs.json"), DaspSeedSummary.RunsToJson([.. runs, (trainingSeed, done.ToList())]));
                        }, cancellationToken: ct, generators: pretrained, drawnPairs: drawnPairs);
                    runs.Add((trainingSeed, result.Rows));   // (runs.json already holds them: written with the seed's last row)
                    if (runs.Count > 1) continue;
                    EvaluateCommand.WriteAtomic(Path.Combine(run, "metrics.json"), result.ToJson());
                    EvaluateCommand.WriteAtomic(Path.Combine(run, "comparison.md"), result.ToMarkdown());
                    if (result.DaspEvaluation is { } ev) EvaluateCommand.WriteAtomic(Path.Combine(run, "dasp_evaluation.json"), ev.ToJson());
                    if (result.TakeModel() is { } model)
                    {
                        // An ML.NET model: LoadImages → ResizeImages → the fitted flow (which segments with its U-Net or cDAL model).
                        using var owned = model;
                        var chain = images.Fit(trainPairs).Append(owned);
                        ml.MedSeg().SaveModel(chain, MLNetRun.ImagePathSchema(), Path.Combine(run, "model.zip"));
                    }
                    if (seedList.Count == 1) console.Out.Write(result.ToMarkdown());
                }
                bar.Complete();
                var summary = new DaspSeedSummary(runs);
                EvaluateCommand.WriteAtomic(Path.Combine(run, "seeds.json"), summary.ToJson());
                EvaluateCommand.WriteAtomic(Path.Combine(run, "seeds.md"), summary.ToMarkdown());
                if (seedList.Count > 1) console.Out.Write(summary.ToMarkdown());
                else foreach (var d in summary.Differences) console.Out.WriteLine("- " + d);
                console.Out.WriteLine($"written to {run}: metrics.json, comparison.md, seeds.md, seeds.json, runs.json, figures/" + (methodList.Contains("dasp") ? ", dasp_evaluation.json, model.zip" : ""));
            }
            finally
            {
                ownedGenerator?.Dispose();
                (generatorModel as IDisposable)?.Dispose();
            }
            return 0;
        }, ct));
        return cmd;
    }

    /// <summary>"1,2,3" → [1, 2, 3]: distinct integers, at least one.</summary>
    internal static List<int> ParseSeeds(string text)
    {
        var list = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(v => int.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var x) ? x
                : throw new ArgumentException($"--seeds: '{v}' is not an integer")).ToList();
        if (list.Count == 0) throw new ArgumentException("--seeds: give at least one seed");
        if (list.Distinct().Count() != list.Count) throw new ArgumentException($"--seeds: '{text}' repeats a seed");
        return list;
    }

    /// <summary>The flow's options for the command's settings: both diffusion models get the same U-Net.</summary>
    internal static DaspOptions Flow(string backbone, int epochs, int batch, double lr, string augment, int diffusionEpochs, double diffusionLr, int diffusionWidth,
        int timesteps, int sampleSteps, int size)
    {
        var unet = new DiffusionUNetOptions
        {
            BaseChannels = diffusionWidth, ChannelMultipliers = [1, 2, 2], AttentionResolutions = [size / 4], ImageSize = size, HeadChannels = diffusionWidth,
            GroupNormGroups = Math.Min(8, diffusionWidth),
        };
        return new DaspOptions
        {
            MaskDiffusion = new MaskDiffusionOptions { Network = unet.Clone(), Steps = timesteps, Epochs = diffusionEpochs, SampleSteps = sampleSteps, LearningRate = diffusionLr },
            ImageDiffusion = new ImageDiffusionOptions { Network = unet.Clone(), TimeSteps = timesteps, Epochs = diffusionEpochs, SampleSteps = sampleSteps, LearningRate = diffusionLr },
            Segmentation = new SegmentationTrainerOptions
            {
                Network = new SegmentationNetworkOptions { Architecture = TrainCommand.ParseBackbone(backbone), InChannels = 3, Classes = 1 },
                Epochs = epochs, BatchSize = batch, LearningRate = lr, Augmentation = ClassicAugmentations.Parse(augment),
                Loss = DaspOptions.PaperSegmentation().Loss,   // DASP's L_sup: the generalised Dice
            },
        };
    }
}
