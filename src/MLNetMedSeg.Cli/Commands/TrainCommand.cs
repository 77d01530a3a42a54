using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Augmentation.Classic;
using MLNetMedSeg.Core;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Cdal;
using MLNetMedSeg.Segmentation.Networks;
using LoadMaskTransformer = MLNetMedSeg.Data.Transforms.LoadMaskTransformer;
using LoadMaskEstimator = MLNetMedSeg.Data.Transforms.LoadMaskEstimator;
using ConsoleProgressBar = MLNetMedSeg.Pipeline.ConsoleProgressBar;
using Microsoft.ML.Transforms.Image;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg train --data DIR [--val DIR] --backbone B [--encoder E] [--encoder-weights imagenet|none] --size N --epochs N [--batch N] [--augment A] [--seed N] --out MODEL.zip</c>:
/// trains a segmenter on DIR/images + DIR/masks (matched by file stem) with the ML.NET pipeline
/// <c>LoadImageMaskPairs → LoadImages → ResizeImages → LoadMasks → Trainers.Segmentation</c> and saves an ML.NET model
/// file (<c>ml.Model.Load</c> reads it) holding the chain <c>LoadImages → ResizeImages → segmenter</c>: an application
/// predicts from an ImagePath column (Probability and Predicted, float [1,N,N]). Without --val, a --val-fraction of DIR
/// is held out (seeded: the same rows for the same seed and folder) for the per-epoch validation Dice that picks the
/// best epoch. <c>--backbone cdal [--timesteps 2] [--samples 5] [--attention-scale 16] [--latent-dim 100]</c> trains the
/// cDAL diffusion segmenter instead (<c>Trainers.Cdal</c>, CPU-sized network; paper 003), saved the same way
/// (<c>LoadImages → ResizeImages → CdalTransformer</c>, the same Probability/Predicted columns).
/// </summary>
internal static class TrainCommand
{
    internal static readonly string[] Backbones = ["unet", "unetpp", "linknet", "deeplabv3plus"];

    /// <summary>What <c>medseg train --backbone</c> accepts: the segmentation networks and cDAL.</summary>
    internal static readonly string[] TrainBackbones = [.. Backbones, "cdal"];

    internal static readonly string[] Encoders = ["plain", "resnet18", "resnet34"];
    internal static readonly string[] EncoderWeightChoices = ["none", "imagenet"];

    /// <summary>
    /// The network options of --backbone, --encoder (null: the backbone's own — plain for unet/unetpp, resnet18 for
    /// linknet/deeplabv3plus — or resnet18 with ImageNet weights), --encoder-weights and --imagenet-model.
    /// </summary>
    internal static SegmentationNetworkOptions NetworkOptions(string backbone, string? encoder, string encoderWeights, string? imagenetModel)
    {
        var weights = encoderWeights.Trim().ToLowerInvariant() switch
        {
            "none" => EncoderWeights.None,
            "imagenet" => EncoderWeights.ImageNet,
            _ => throw new ArgumentException($"--encoder-weights '{encoderWeights}' is not one of: {string.Join(", ", EncoderWeightChoices)}"),
        };
        var o = new SegmentationNetworkOptions { Architecture = ParseBackbone(backbone), InChannels = 3, Classes = 1, EncoderWeights = weights };
        switch (encoder)
        {
            case null: break;
            case "plain":
                if (weights == EncoderWeights.ImageNet) throw new ArgumentException("--encoder-weights imagenet needs --encoder resnet18");
                o.Encoder = EncoderKind.Plain;
                break;
            case "resnet18" or "resnet34": o.EncoderName = encoder; break;
            default: throw new ArgumentException($"--encoder '{encoder}' is not one of: {string.Join(", ", Encoders)}");
        }
        if (imagenetModel is not null)
        {
            if (weights != EncoderWeights.ImageNet) throw new ArgumentException("--imagenet-model is given but --encoder-weights is none");
            o.ImageNetModelPath = imagenetModel;
        }
        o.Validate();
        return o;
    }

    internal static SegmentationArchitecture ParseBackbone(string s) => s switch
    {
        "unet" => SegmentationArchitecture.UNet,
        "unetpp" => SegmentationArchitecture.UNetPlusPlus,
        "linknet" => SegmentationArchitecture.LinkNet,
        "deeplabv3plus" => SegmentationArchitecture.DeepLabV3Plus,
        _ => throw new ArgumentException($"unknown backbone '{s}'; choose one of: {string.Join(", ", Backbones)}"),
    };

    public static Command Create(CliConsole console)
    {
        var data = new Option<string>("--data") { Description = "training folder with images/ and masks/ (matched by file stem)", Required = true };
        var val = new Option<string?>("--val") { Description = "validation folder with images/ and masks/ (default: hold out --val-fraction of --data)" };
        var valFraction = new Option<double>("--val-fraction") { Description = "fraction of --data held out for validation when --val is not given (0 = none)", DefaultValueFactory = _ => 0.1 };
        var backbone = new Option<string>("--backbone") { Description = "network: unet, unetpp, linknet, deeplabv3plus, or cdal (the conditional diffusion segmenter of paper 003)", DefaultValueFactory = _ => "unet" };
        backbone.AcceptOnlyFromAmong(TrainBackbones);
        var encoder = new Option<string?>("--encoder") { Description = "encoder (smp's encoder_name): plain (U-Net's own; unet/unetpp), resnet18 or resnet34; default: the backbone's own (plain for unet/unetpp, resnet18 for linknet/deeplabv3plus), resnet18 with ImageNet weights" };
        encoder.AcceptOnlyFromAmong(Encoders);
        var encoderWeights = new Option<string>("--encoder-weights") { Description = "initial encoder weights (smp's encoder_weights): none (from scratch) or imagenet (ResNet-18 from the NuGet package Microsoft.ML.DnnImageFeaturizer.ResNet18, which medseg ships next to itself)", DefaultValueFactory = _ => "none" };
        encoderWeights.AcceptOnlyFromAmong(EncoderWeightChoices);
        var imagenetModel = new Option<string?>("--imagenet-model") { Description = "the package's DnnImageModels folder (or its ResNet18Onnx/ResNet18.onnx), when not next to medseg or in the NuGet cache" };
        var size = new Option<int>("--size") { Description = "images and masks are resized to size×size pixels", DefaultValueFactory = _ => 128 };
        var epochs = new Option<int>("--epochs") { Description = "training epochs", DefaultValueFactory = _ => 20 };
        var batch = new Option<int>("--batch") { Description = "batch size (DASP: 16)", DefaultValueFactory = _ => 16 };
        var augment = new Option<string>("--augment") { Description = "classic augmentation: " + string.Join(", ", ClassicAugmentations.Choices), DefaultValueFactory = _ => "none" };
        augment.AcceptOnlyFromAmong([.. ClassicAugmentations.Choices]);
        var lr = new Option<double?>("--lr") { Description = "Adam learning rate (default 1e-3; cdal: the generator's, default 2e-4 as the paper's code)" };
        var timesteps = new Option<int>("--timesteps") { Description = "cdal: diffusion steps T (paper: 2 for chest X-rays, 4 for MoNuSeg)", DefaultValueFactory = _ => 2 };
        var samples = new Option<int>("--samples") { Description = "cdal: samples averaged per image at prediction (paper: 5)", DefaultValueFactory = _ => 5 };
        var attentionScale = new Option<int>("--attention-scale") { Description = "cdal: side of the discriminator feature maps that give the attention map (paper: 16, 32 or 64; must be size/2^k)", DefaultValueFactory = _ => 16 };
        var latentDim = new Option<int>("--latent-dim") { Description = "cdal: dimension of the random latent z (paper: 100)", DefaultValueFactory = _ => 100 };
        var noLatent = new Option<bool>("--no-latent") { Description = "cdal ablation (paper 003, Table 1 \"w/o latent\"): no random latent z (fed as zeros)" };
        var noAttention = new Option<bool>("--no-attention") { Description = "cdal ablation (paper 003, Table 1 \"w/o attention\"): the generator learns from x_t = q(x0, t), not from q(x0 ⊙ A_D, t)" };
        var seed = new Option<int>("--seed") { Description = "seed of every random choice (split, initial weights, shuffling, augmentation)", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var checkpoints = new Option<string?>("--checkpoints") { Description = "folder for per-epoch checkpoints; re-running with it resumes an interrupted run" };
        var precision = new Option<string>("--precision") { Description = "training arithmetic: float32, bfloat16 (mixed: bf16 compute, fp32 master weights) or float16 (CUDA, with loss scaling)", DefaultValueFactory = _ => "float32" };
        var output = new Option<string>("--out") { Description = "the model file to write (.zip)", Required = true };
        var cmd = new Command("train", "train a segmentation network on a folder of images and masks")
        {
            data, val, valFraction, backbone, encoder, encoderWeights, imagenetModel, size, epochs, batch, augment, lr, seed, device, precision, checkpoints,
            timesteps, samples, attentionScale, latentDim, noLatent, noAttention, output,
        };
        cmd.SetAction((parse, ct) => console.Invoke(() =>
        {
            int n = parse.GetValue(size);
            if (n < 8) throw new ArgumentOutOfRangeException("--size", n, "--size must be at least 8");
            bool cdal = parse.GetValue(backbone) == "cdal";
            CdalOptions? cdalModel = null;
            SegmentationNetworkOptions? network = null;
            if (cdal)
            {
                if (parse.GetValue(encoder) is not null || parse.GetValue(encoderWeights) != "none" || parse.GetValue(imagenetModel) is not null)
                    throw new ArgumentException("--encoder, --encoder-weights and --imagenet-model are options of the segmentation networks, not of --backbone cdal");
                if (parse.GetValue(augment) != "none") throw new ArgumentException("--augment is not supported with --backbone cdal");
                if (ParsePrecision(parse.GetValue(precision)!) != TrainingPrecision.Float32) throw new ArgumentException("--backbone cdal trains in float32 only");
                cdalModel = CdalModel(parse.GetValue(timesteps), parse.GetValue(samples), parse.GetValue(attentionScale), parse.GetValue(latentDim), parse.GetValue(lr), n,
                    useLatent: !parse.GetValue(noLatent), useAttention: !parse.GetValue(noAttention));
            }
            else
            {
                if (parse.GetValue(noLatent) || parse.GetValue(noAttention))
                    throw new ArgumentException("--no-latent and --no-attention are ablations of --backbone cdal");
                network = NetworkOptions(parse.GetValue(backbone)!, parse.GetValue(encoder), parse.GetValue(encoderWeights)!, parse.GetValue(imagenetModel));
            }
            int seedValue = parse.GetValue(seed);
            var ml = MLNetRun.CreateContext(console, seedValue, parse.GetValue(device)!, ct);
            var bar = MLNetRun.AttachProgressBar(ml, console);

            var all = MLNetRun.LoadPairs(ml, parse.GetRequiredValue(data));
            IDataView train, validation;
            long trainCount, validationCount;
            if (parse.GetValue(val) is { } valDir)
            {
                (train, validation) = (all, MLNetRun.LoadPairs(ml, valDir, "validation"));
                (trainCount, validationCount) = (MLNetRun.CountRows(train), MLNetRun.CountRows(validation));
            }
            else
            {
                double f = parse.GetValue(valFraction);
                if (f is < 0 or >= 1) throw new ArgumentOutOfRangeException("--val-fraction", f, "--val-fraction must be in [0, 1)");
                var split = MLNetRun.Split(ml, all, 1 - f, f, seedValue);
                (train, validation, trainCount, validationCount) = (split.Train, split.Validation, split.TrainCount, split.ValidationCount);
            }

            // ImagePath → Image (MLImage, n×n), MaskPath → Mask (float [1,n,n] in {0,1}), then the trainer.
            var images = MLNetRun.LoadImages(ml, all, n, n);
            var masks = MLNetRun.LoadMasks(ml, n, n);
            using var valData = validationCount > 0 ? MLNetRun.Cache(images.Append(masks).Fit(validation).Transform(validation), ct) : null;
            if (cdalModel is not null)
                return TrainCdal(console, ml, bar, images, masks, train, trainCount, validationCount, valData, cdalModel, n,
                    parse.GetValue(epochs), parse.GetValue(batch), parse.GetValue(checkpoints), parse.GetRequiredValue(output), ct);
            var options = new SegmentationTrainerOptions
            {
                Network = network!,
                ImageColumn = MLNetRun.Image,
                MaskColumn = MLNetRun.Mask,
                Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr) ?? 1e-3,
                Precision = ParsePrecision(parse.GetValue(precision)!),
                Augmentation = ClassicAugmentations.Parse(parse.GetValue(augment)!),
                ValidationData = valData,
                CheckpointFolder = parse.GetValue(checkpoints),
                EpochCompleted = r => console.Err.WriteLine(
                    $"epoch {r.Epoch}: loss {r.TrainLoss:F4}" + (r.ValidationDice is double d ? $", validation mDice {d:F4}" : "") + $" ({r.Seconds:F1} s)"),
            };
            var pipeline = images.Append(masks).Append(ml.MedSeg().Trainers.Segmentation(options));
            string encoderText = network!.ResolvedEncoder == EncoderKind.Plain ? "plain encoder"
                : $"ResNet encoder (blocks {string.Join("/", network.ResolvedResNetBlocks)}, {(network.EncoderWeights == EncoderWeights.ImageNet ? "ImageNet weights" : "from scratch")})";
            console.Err.WriteLine($"training {parse.GetValue(backbone)} with a {encoderText} at {n}x{n} on {trainCount} pairs, validating on {validationCount}");
            ct.ThrowIfCancellationRequested();
            var clock = Stopwatch.StartNew();
            using var fitted = pipeline.Fit(train);
            bar.Complete();

            // The saved model loads and resizes the image from ImagePath and segments it: masks are not needed to predict.
            var segmenter = fitted.LastTransformer;
            var model = new TransformerChain<SegmentationTransformer>(fitted.Where(t => t is not LoadMaskTransformer).ToArray());
            string outPath = parse.GetRequiredValue(output);
            ml.MedSeg().SaveModel(model, MLNetRun.ImagePathSchema(), outPath);
            var best = segmenter.BestEpoch;
            console.Out.WriteLine($"trained {segmenter.History.Count} epochs in {clock.Elapsed.TotalSeconds:F0} s" +
                (best is null ? "" : $"; best validation mDice {best.ValidationDice:F4} at epoch {best.Epoch}") + $"; model written to {outPath}");
            return 0;
        }, ct));
        return cmd;
    }

    /// <summary>
    /// The cDAL model of <c>--backbone cdal</c>: <see cref="CdalTrainerOptions.CpuSizedModel"/> with the paper's options
    /// given on the command line; checked against the image size now (an attention scale the size does not have is an error naming it).
    /// </summary>
    internal static CdalOptions CdalModel(int timesteps, int samples, int attentionScale, int latentDim, double? lr, int size,
        bool useLatent = true, bool useAttention = true)
    {
        var m = CdalTrainerOptions.CpuSizedModel();
        m.UseLatent = useLatent;
        m.UseAttention = useAttention;
        m.Timesteps = timesteps;
        m.Samples = samples;
        m.AttentionScale = attentionScale;
        m.LatentDim = latentDim;
        if (lr is double g) m.GeneratorLearningRate = g;
        m.ImageSize = size;
        try { m.Validate(); }
        catch (ArgumentException e)
        {
            string option = e.ParamName switch
            {
                nameof(CdalOptions.Timesteps) => "--timesteps", nameof(CdalOptions.Samples) => "--samples",
                nameof(CdalOptions.AttentionScale) => "--attention-scale", nameof(CdalOptions.LatentDim) => "--latent-dim",
                nameof(CdalOptions.GeneratorLearningRate) => "--lr", _ => "--size",
            };
            throw new ArgumentException($"{option}: {e.Message}", e);
        }
        return m;
    }

    /// <summary>Fits <c>LoadImages → ResizeImages → LoadMasks → Trainers.Cdal</c> and saves <c>LoadImages → ResizeImages → CdalTransformer</c>.</summary>
    private static int TrainCdal(CliConsole console, MLContext ml, ConsoleProgressBar bar, EstimatorChain<ITransformer> images, LoadMaskEstimator masks,
        IDataView train, long trainCount, long validationCount, MLNetMedSeg.Data.IDataView? validation, CdalOptions model, int size,
        int epochs, int batch, string? checkpoints, string outPath, CancellationToken ct)
    {
        var options = new CdalTrainerOptions
        {
            Cdal = model,
            ImageColumn = MLNetRun.Image,
            MaskColumn = MLNetRun.Mask,
            Epochs = epochs,
            BatchSize = batch,
            ValidationData = validation,
            CheckpointFolder = checkpoints,
            EpochCompleted = r => console.Err.WriteLine(
                $"epoch {r.Epoch}: generator loss {r.GeneratorLoss:F4}, discriminator loss {r.DiscriminatorLoss:F4}" +
                (r.ValidationDice is double d ? $", validation mDice {d:F4}" : "") + $" ({r.Seconds:F1} s)"),
        };
        var pipeline = images.Append(masks).Append(ml.MedSeg().Trainers.Cdal(options));
        console.Err.WriteLine($"training cdal (T = {model.Timesteps}, {model.Samples} samples, attention {model.AttentionScale}², latent {model.LatentDim}) " +
            $"at {size}x{size} on {trainCount} pairs, validating on {validationCount}");
        ct.ThrowIfCancellationRequested();
        var clock = Stopwatch.StartNew();
        using var fitted = pipeline.Fit(train);
        bar.Complete();
        var segmenter = fitted.LastTransformer;
        var saved = new TransformerChain<CdalTransformer>(fitted.Where(t => t is not LoadMaskTransformer).ToArray());
        ml.MedSeg().SaveModel(saved, MLNetRun.ImagePathSchema(), outPath);
        var best = segmenter.BestEpoch;
        console.Out.WriteLine($"trained {segmenter.History.Count} epochs in {clock.Elapsed.TotalSeconds:F0} s" +
            (best is null ? "" : $"; best validation mDice {best.ValidationDice:F4} at epoch {best.Epoch}") + $"; model written to {outPath}");
        return 0;
    }

    internal static TrainingPrecision ParsePrecision(string s) => s.Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" => TrainingPrecision.Float32,
        "bfloat16" or "bf16" => TrainingPrecision.BFloat16,
        "float16" or "fp16" => TrainingPrecision.Float16,
        _ => throw new ArgumentException($"--precision '{s}' is not one of float32, bfloat16, float16"),
    };
}
