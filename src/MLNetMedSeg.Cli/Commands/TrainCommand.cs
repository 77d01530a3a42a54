using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Data;
using MLNetMedSeg.Augmentation.Classic;
using MLNetMedSeg.Core;
using MLNetMedSeg.Segmentation;
using MLNetMedSeg.Segmentation.Networks;
using LoadMaskTransformer = MLNetMedSeg.Data.Transforms.LoadMaskTransformer;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg train --data DIR [--val DIR] --backbone B [--encoder E] [--encoder-weights imagenet|none] --size N --epochs N [--batch N] [--augment A] [--seed N] --out MODEL.zip</c>:
/// trains a segmenter on DIR/images + DIR/masks (matched by file stem) with the ML.NET pipeline
/// <c>LoadImageMaskPairs → LoadImages → ResizeImages → LoadMasks → Trainers.Segmentation</c> and saves an ML.NET model
/// file (<c>ml.Model.Load</c> reads it) holding the chain <c>LoadImages → ResizeImages → segmenter</c>: an application
/// predicts from an ImagePath column (Probability and Predicted, float [1,N,N]). Without --val, a --val-fraction of DIR
/// is held out (seeded: the same rows for the same seed and folder) for the per-epoch validation Dice that picks the
/// best epoch.
/// </summary>
internal static class TrainCommand
{
    internal static readonly string[] Backbones = ["unet", "unetpp", "linknet", "deeplabv3plus"];

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
        var backbone = new Option<string>("--backbone") { Description = "network: unet, unetpp, linknet or deeplabv3plus", DefaultValueFactory = _ => "unet" };
        backbone.AcceptOnlyFromAmong(Backbones);
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
        var lr = new Option<double>("--lr") { Description = "Adam learning rate", DefaultValueFactory = _ => 1e-3 };
        var seed = new Option<int>("--seed") { Description = "seed of every random choice (split, initial weights, shuffling, augmentation)", DefaultValueFactory = _ => 0 };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
        var checkpoints = new Option<string?>("--checkpoints") { Description = "folder for per-epoch checkpoints; re-running with it resumes an interrupted run" };
        var precision = new Option<string>("--precision") { Description = "training arithmetic: float32, bfloat16 (mixed: bf16 compute, fp32 master weights) or float16 (CUDA, with loss scaling)", DefaultValueFactory = _ => "float32" };
        var output = new Option<string>("--out") { Description = "the model file to write (.zip)", Required = true };
        var cmd = new Command("train", "train a segmentation network on a folder of images and masks")
        {
            data, val, valFraction, backbone, encoder, encoderWeights, imagenetModel, size, epochs, batch, augment, lr, seed, device, precision, checkpoints, output,
        };
        cmd.SetAction((parse, ct) => Task.FromResult(console.Guard(() =>
        {
            int n = parse.GetValue(size);
            if (n < 8) throw new ArgumentOutOfRangeException("--size", n, "--size must be at least 8");
            var network = NetworkOptions(parse.GetValue(backbone)!, parse.GetValue(encoder), parse.GetValue(encoderWeights)!, parse.GetValue(imagenetModel));
            int seedValue = parse.GetValue(seed);
            var ml = MLNetRun.CreateContext(console, seedValue, parse.GetValue(device)!);
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
            var options = new SegmentationTrainerOptions
            {
                Network = network,
                ImageColumn = MLNetRun.Image,
                MaskColumn = MLNetRun.Mask,
                Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batch),
                LearningRate = parse.GetValue(lr),
                Precision = ParsePrecision(parse.GetValue(precision)!),
                Augmentation = ClassicAugmentations.Parse(parse.GetValue(augment)!),
                ValidationData = valData,
                CheckpointFolder = parse.GetValue(checkpoints),
                EpochCompleted = r => console.Err.WriteLine(
                    $"epoch {r.Epoch}: loss {r.TrainLoss:F4}" + (r.ValidationDice is double d ? $", validation mDice {d:F4}" : "") + $" ({r.Seconds:F1} s)"),
            };
            var pipeline = images.Append(masks).Append(ml.MedSeg().Trainers.Segmentation(options));
            string encoderText = network.ResolvedEncoder == EncoderKind.Plain ? "plain encoder"
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
        }, ct)));
        return cmd;
    }

    internal static TrainingPrecision ParsePrecision(string s) => s.Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" => TrainingPrecision.Float32,
        "bfloat16" or "bf16" => TrainingPrecision.BFloat16,
        "float16" or "fp16" => TrainingPrecision.Float16,
        _ => throw new ArgumentException($"--precision '{s}' is not one of float32, bfloat16, float16"),
    };
}
