using MLNetMedSeg.Core;
using TorchSharp;
using static TorchSharp.torch;
using static MLNetMedSeg.Core.Scalars;

namespace MLNetMedSeg.Segmentation.Networks;

/// <summary>
/// The ImageNet-trained ResNet-18 of the NuGet package <c>Microsoft.ML.DnnImageFeaturizer.ResNet18</c> (0.24.0, MIT) as
/// a <see cref="ResNetEncoder"/>. The package ships the network as ONNX (<c>DnnImageModels/ResNet18Onnx/ResNet18.onnx</c>,
/// a CNTK 2.6 export: 22 Conv + 22 BatchNormalization nodes, weights as float initializers) and its input preprocessing
/// (<c>DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx</c>). This class reads both (protobuf, no ONNX runtime) and
/// maps the weights by the graph's structure onto torchvision's names.
/// <para>
/// What the files say (and the mapping relies on): the ResNet-18 has BasicBlocks [2, 2, 2, 3] — layer4 has three blocks,
/// not torchvision's two — so the encoder takes that layout (<see cref="ResNet18Blocks"/>). Each stride-2 block lists its
/// 1×1 downsample convolution before its first 3×3 convolution. CNTK pads asymmetrically (stem conv pads 3 before and
/// 2 after, stride-2 3×3 convs and the max-pool 1 before and 0 after); on the even sizes our networks feed the encoder
/// (multiples of 32) this gives exactly torchvision's symmetric padding. BatchNormalization epsilon is 1e-5 (as torch's).
/// </para>
/// <para>
/// Input normalisation: the preprocessing model takes RGB pixels in [0, 255], reorders them to BGR and subtracts a
/// 224 × 224 per-pixel mean image (channel averages B 103.06, G 115.90, R 123.15); no division. Our encoders take RGB in
/// [0, 1], so the encoder computes x̂ = (x − m / 255) / s with m the mean image in RGB order (resized to the input's
/// size when that is not 224 × 224, see <see cref="ImageNormalization"/>) and s = torchvision's ImageNet standard
/// deviations (0.229, 0.224, 0.225), and conv1's weights are reordered to RGB and multiplied by 255·s per input channel.
/// conv1(x̂) is then exactly the ONNX model's first convolution of its preprocessed input; the factor s only gives conv1
/// torchvision's weight scale, which keeps fine-tuning with Adam from swamping it.
/// </para>
/// </summary>
public static class ImageNetEncoder
{
    /// <summary>The NuGet package that ships the weights.</summary>
    public const string PackageId = "Microsoft.ML.DnnImageFeaturizer.ResNet18";

    /// <summary>The package version the mapping was made and tested against.</summary>
    public const string PackageVersion = "0.24.0";

    /// <summary>The network's path inside the package's <c>DnnImageModels</c> folder.</summary>
    public const string ModelFile = "ResNet18Onnx/ResNet18.onnx";

    /// <summary>The preprocessing model's path inside the package's <c>DnnImageModels</c> folder.</summary>
    public const string PreprocessFile = "ResNetPrepOnnx/ResNetPreprocess.onnx";

    /// <summary>Height and width of the preprocessing's mean image (the network's training crop).</summary>
    public const int MeanImageSize = 224;

    /// <summary>BasicBlocks per layer (layer1..layer4) of the package's ResNet-18.</summary>
    public static IReadOnlyList<int> ResNet18Blocks { get; } = [2, 2, 2, 3];

    /// <summary>torchvision's ImageNet standard deviations (R, G, B), used to scale conv1 (see the class remarks).</summary>
    public static IReadOnlyList<float> InputStd { get; } = [0.229f, 0.224f, 0.225f];

    private static readonly long[] Widths = [64, 64, 128, 256, 512];

    /// <summary>
    /// Finds the package's two ONNX files. <paramref name="path"/>, when given, is the <c>DnnImageModels</c> folder, a
    /// folder holding it (an application's output folder), or the <c>ResNet18.onnx</c> file (the preprocessing model is
    /// then taken from <c>../ResNetPrepOnnx/</c> beside it). Otherwise, in order: <c>DnnImageModels/</c> next to the
    /// application (<see cref="AppContext.BaseDirectory"/>; the package's build props copy it there), then the NuGet
    /// package cache (<c>NUGET_PACKAGES</c>, else <c>~/.nuget/packages</c>), version <see cref="PackageVersion"/> first.
    /// </summary>
    /// <returns>The full paths of ResNet18.onnx and ResNetPreprocess.onnx.</returns>
    /// <exception cref="FileNotFoundException">Not found; the message says where it looked and which package to add.</exception>
    public static (string Model, string Preprocess) Locate(string? path = null)
        => Locate(path, AppContext.BaseDirectory,
            Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env ? env
                : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages"));

    /// <summary>
    /// As <see cref="Locate(string?)"/> with the two default places given: <paramref name="applicationDirectory"/>
    /// (looked in for <c>DnnImageModels/</c>) and <paramref name="nugetPackagesFolder"/> (the NuGet package cache; null:
    /// not searched).
    /// </summary>
    public static (string Model, string Preprocess) Locate(string? path, string applicationDirectory, string? nugetPackagesFolder)
    {
        ArgumentNullException.ThrowIfNull(applicationDirectory);
        if (path is not null)
        {
            var full = System.IO.Path.GetFullPath(path);
            if (File.Exists(full))
            {
                var prep = System.IO.Path.GetFullPath(System.IO.Path.Combine(System.IO.Path.GetDirectoryName(full)!, "..", PreprocessFile));
                if (!File.Exists(prep))
                    throw new FileNotFoundException($"ImageNet weights: '{full}' was given, but the preprocessing model '{prep}' that belongs to it (package {PackageId}) does not exist", prep);
                return (full, prep);
            }
            foreach (var dir in new[] { full, System.IO.Path.Combine(full, "DnnImageModels") })
                if (TryFolder(dir) is { } found) return found;
            throw new FileNotFoundException(
                $"ImageNet weights: '{full}' is neither the {PackageId} package's DnnImageModels folder (with {ModelFile} and {PreprocessFile}), a folder holding it, nor its ResNet18.onnx", full);
        }
        var looked = new List<string>();
        var local = System.IO.Path.Combine(applicationDirectory, "DnnImageModels");
        looked.Add(local);
        if (TryFolder(local) is { } app) return app;
        var pkg = nugetPackagesFolder is null ? null : System.IO.Path.Combine(nugetPackagesFolder, PackageId.ToLowerInvariant());
        if (pkg is null) { }
        else if (Directory.Exists(pkg))
        {
            var versions = Directory.GetDirectories(pkg).Select(System.IO.Path.GetFileName).OfType<string>()
                .OrderByDescending(v => v == PackageVersion).ThenByDescending(v => Version.TryParse(v, out var p) ? p : new Version(0, 0))
                .ToList();
            foreach (var v in versions)
            {
                var dir = System.IO.Path.Combine(pkg, v, "tools", "DnnImageModels");
                looked.Add(dir);
                if (TryFolder(dir) is { } found) return found;
            }
        }
        else looked.Add(pkg);
        throw new FileNotFoundException(
            $"ImageNet encoder weights come from the NuGet package {PackageId} {PackageVersion}, which was not found. Add " +
            $"<PackageReference Include=\"{PackageId}\" Version=\"{PackageVersion}\" /> to your application (it copies DnnImageModels/ into the " +
            $"output folder), or give the path of its DnnImageModels folder (SegmentationNetworkOptions.ImageNetModelPath, medseg --imagenet-model). " +
            $"Looked in: {string.Join("; ", looked)}");
    }

    private static (string, string)? TryFolder(string dir)
    {
        var model = System.IO.Path.Combine(dir, ModelFile);
        var prep = System.IO.Path.Combine(dir, PreprocessFile);
        return File.Exists(model) && File.Exists(prep) ? (System.IO.Path.GetFullPath(model), System.IO.Path.GetFullPath(prep)) : null;
    }

    /// <summary>
    /// Loads the ImageNet weights into <paramref name="encoder"/> (which must have the package's layout: 3 input
    /// channels, widths 64/64/128/256/512 up to its depth, blocks <see cref="ResNet18Blocks"/>, input normalisation on;
    /// layers beyond its depth are skipped; any output stride — DeepLabv3+'s atrous layers take the same weights) and
    /// sets its input normalisation. <paramref name="path"/> as <see cref="Locate(string?)"/>.
    /// </summary>
    /// <exception cref="FileNotFoundException">The package's files are not found.</exception>
    /// <exception cref="InvalidDataException">A file is truncated, not ONNX, or not this ResNet-18, or the encoder's
    /// shapes do not fit it (the message names the file).</exception>
    public static void LoadInto(ResNetEncoder encoder, string? path = null)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        if (encoder.Normalization is null)
            throw new ArgumentException("the encoder has no input normalisation (build it with inputNormalization: true, as EncoderWeights = ImageNet does): ImageNet weights expect normalised inputs", nameof(encoder));
        var (model, prep) = Locate(path);
        using var scope = NewDisposeScope();
        var weights = ReadStateDict(model, prep);
        var own = encoder.state_dict();
        var problems = new List<string>();
        var blocks = encoder.LayerBlocks;
        for (int k = 1; k < encoder.Depth; k++)
            if (blocks[k - 1] != ResNet18Blocks[k - 1])
                problems.Add($"layer{k} has {blocks[k - 1]} blocks, the file {ResNet18Blocks[k - 1]}");
        foreach (var (key, dst) in own)
        {
            if (key.EndsWith(".num_batches_tracked", StringComparison.Ordinal)) continue;
            if (!weights.TryGetValue(key, out var src)) { problems.Add($"no weights for {key}"); continue; }
            if (!src.shape.SequenceEqual(dst.shape))
                problems.Add($"{key}: encoder [{string.Join(", ", dst.shape)}], file [{string.Join(", ", src.shape)}]");
        }
        if (problems.Count > 0)
            throw new InvalidDataException($"ImageNet weights '{model}' do not fit {encoder.Describe()}: {string.Join("; ", problems.Take(12))}{(problems.Count > 12 ? $" (and {problems.Count - 12} more)" : "")}");
        using (no_grad())
            foreach (var (key, dst) in own)
                if (weights.TryGetValue(key, out var src)) dst.copy_(src);
    }

    /// <summary>
    /// The package's ResNet-18 as a state dict with torchvision's key names (conv1.*, bn1.*, layer{1..4}.{b}.conv1/bn1/
    /// conv2/bn2.*, layer{2..4}.0.downsample.{0,1}.*; no num_batches_tracked) plus normalize.mean (1, 3, 224, 224) and
    /// normalize.std (1, 3, 1, 1), with conv1 reordered to RGB and scaled as the class remarks say. Float32, CPU; the
    /// tensors belong to the caller's dispose scope.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is not the expected model (the message names it).</exception>
    public static Dictionary<string, Tensor> ReadStateDict(string modelPath, string preprocessPath)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(preprocessPath);
        var (channelSource, meanImage) = ReadPreprocessing(preprocessPath);
        var onnx = OnnxModel.Read(modelPath);
        string Foreign(string what) => $"'{modelPath}' is not {PackageId}'s ResNet-18 ONNX model: {what}";

        // Conv + BatchNormalization units in graph order.
        var units = new List<(OnnxNode Conv, OnnxNode Bn)>();
        foreach (var conv in onnx.Nodes.Where(n => n.OpType == "Conv"))
        {
            var bn = onnx.Nodes.FirstOrDefault(n => n.OpType == "BatchNormalization" && n.Inputs.Count == 5 && n.Inputs[0] == conv.Outputs[0])
                ?? throw new InvalidDataException(Foreign($"convolution '{conv.Name}' is not followed by a BatchNormalization"));
            if (conv.Inputs.Count != 2) throw new InvalidDataException(Foreign($"convolution '{conv.Name}' has a bias or no weight"));
            if (conv.Int("group", 1) != 1 || (conv.Ints("dilations") ?? [1, 1]).Any(d => d != 1))
                throw new InvalidDataException(Foreign($"convolution '{conv.Name}' is grouped or dilated"));
            float eps = bn.Float("epsilon", 1e-5f);
            if (Math.Abs(eps - 1e-5f) > 1e-7f) throw new InvalidDataException(Foreign($"BatchNormalization '{bn.Name}' has epsilon {eps}, not 1e-5"));
            units.Add((conv, bn));
        }
        if (units.Count != 22) throw new InvalidDataException(Foreign($"it has {units.Count} Conv + BatchNormalization pairs, not 22"));
        if (!onnx.Nodes.Any(n => n.OpType == "MaxPool" && (n.Ints("kernel_shape") ?? []).SequenceEqual([3L, 3L]) && (n.Ints("strides") ?? []).SequenceEqual([2L, 2L])))
            throw new InvalidDataException(Foreign("no 3×3 stride-2 max-pool after the stem"));

        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        void Check(OnnxNode conv, long kernel, long stride, long[] shape, string key)
        {
            var w = onnx.Initializer(conv.Inputs[1]);
            if (!w.Dims.SequenceEqual(shape))
                throw new InvalidDataException(Foreign($"{key} ('{conv.Inputs[1]}') has shape [{string.Join(", ", w.Dims)}], expected [{string.Join(", ", shape)}]"));
            var ks = conv.Ints("kernel_shape") ?? [w.Dims[2], w.Dims[3]];
            var st = conv.Ints("strides") ?? [1, 1];
            var pads = conv.Ints("pads") ?? [0, 0, 0, 0];
            if (!ks.SequenceEqual([kernel, kernel]) || !st.SequenceEqual([stride, stride]) || pads[0] != kernel / 2 || pads[1] != kernel / 2)
                throw new InvalidDataException(Foreign($"{key} ('{conv.Name}') has kernel [{string.Join(",", ks)}], strides [{string.Join(",", st)}], pads [{string.Join(",", pads)}]; expected {kernel}×{kernel}, stride {stride}, padding {kernel / 2} before"));
        }
        void Bn(OnnxNode bn, string prefix, long c)
        {
            string[] names = ["weight", "bias", "running_mean", "running_var"];
            for (int i = 0; i < 4; i++)
            {
                var t = onnx.Initializer(bn.Inputs[i + 1]);
                if (!t.Dims.SequenceEqual([c])) throw new InvalidDataException(Foreign($"{prefix}.{names[i]} has shape [{string.Join(", ", t.Dims)}], expected [{c}]"));
                result[$"{prefix}.{names[i]}"] = tensor(t.Values, t.Dims);
            }
        }
        Tensor Weight(OnnxNode conv) { var t = onnx.Initializer(conv.Inputs[1]); return tensor(t.Values, t.Dims); }

        // Stem: conv1 / bn1, reordered to RGB and scaled by 255·s per input channel.
        var (stemConv, stemBn) = units[0];
        Check(stemConv, 7, 2, [64, 3, 7, 7], "conv1");
        var w0 = Weight(stemConv);
        var rgb = zeros_like(w0);
        for (int j = 0; j < 3; j++)
        {
            int c = channelSource[j];
            rgb[.., c] = w0[.., j] * S(255.0 * InputStd[c]);
        }
        result["conv1.weight"] = rgb;
        Bn(stemBn, "bn1", 64);

        // Blocks: consecutive pairs of 3×3 units; a 1×1 unit is the downsample of the block whose first conv reads the same input.
        var main = units.Skip(1).Where(u => onnx.Initializer(u.Conv.Inputs[1]).Dims[2] == 3).ToList();
        var down = units.Skip(1).Where(u => onnx.Initializer(u.Conv.Inputs[1]).Dims[2] == 1).ToList();
        if (main.Count % 2 != 0 || main.Count + down.Count != units.Count - 1)
            throw new InvalidDataException(Foreign($"{main.Count} 3×3 and {down.Count} 1×1 convolutions after the stem"));
        int layer = 0, block = 0, usedDown = 0;
        long inplanes = 64;
        var blocksPerLayer = new int[4];
        for (int b = 0; b < main.Count / 2; b++)
        {
            var (c1, n1) = main[2 * b];
            var (c2, n2) = main[2 * b + 1];
            long planes = onnx.Initializer(c1.Inputs[1]).Dims[0];
            if (layer == 0 || planes != Widths[layer])
            {
                layer++;
                block = 0;
                if (layer > 4 || planes != Widths[layer]) throw new InvalidDataException(Foreign($"block {b} has {planes} channels where layer{Math.Min(layer, 4)} has {Widths[Math.Min(layer, 4)]}"));
            }
            string p = $"layer{layer}.{block}";
            long stride = block == 0 && layer > 1 ? 2 : 1;
            Check(c1, 3, stride, [planes, inplanes, 3, 3], $"{p}.conv1");
            Bn(n1, $"{p}.bn1", planes);
            Check(c2, 3, 1, [planes, planes, 3, 3], $"{p}.conv2");
            Bn(n2, $"{p}.bn2", planes);
            if (c2.Inputs[0] != onnx.Nodes.First(n => n.OpType == "Relu" && n.Inputs[0] == n1.Outputs[0]).Outputs[0])
                throw new InvalidDataException(Foreign($"{p}.conv2 does not read relu(bn1(conv1))"));
            var ds = down.Where(u => u.Conv.Inputs[0] == c1.Inputs[0]).ToList();
            if (ds.Count > 1) throw new InvalidDataException(Foreign($"{p} has {ds.Count} downsample convolutions"));
            bool needsDown = stride != 1 || inplanes != planes;
            if (ds.Count == 1 != needsDown)
                throw new InvalidDataException(Foreign($"{p} {(needsDown ? "lacks" : "has")} a downsample convolution"));
            if (ds.Count == 1)
            {
                Check(ds[0].Conv, 1, stride, [planes, inplanes, 1, 1], $"{p}.downsample.0");
                result[$"{p}.downsample.0.weight"] = Weight(ds[0].Conv);
                Bn(ds[0].Bn, $"{p}.downsample.1", planes);
                usedDown++;
            }
            result[$"{p}.conv1.weight"] = Weight(c1);
            result[$"{p}.conv2.weight"] = Weight(c2);
            blocksPerLayer[layer - 1]++;
            block++;
            inplanes = planes;
        }
        if (usedDown != down.Count) throw new InvalidDataException(Foreign($"{down.Count - usedDown} 1×1 convolution(s) belong to no block"));
        if (!blocksPerLayer.SequenceEqual(ResNet18Blocks))
            throw new InvalidDataException(Foreign($"blocks per layer [{string.Join(", ", blocksPerLayer)}], expected [{string.Join(", ", ResNet18Blocks)}]"));

        // Normalisation: mean image in RGB order and [0, 1] units; std s.
        var mean = zeros(1, 3, MeanImageSize, MeanImageSize);
        for (int j = 0; j < 3; j++) mean[0, channelSource[j]] = meanImage[0, j] / S(255.0);
        result["normalize.mean"] = mean;
        result["normalize.std"] = tensor(InputStd.ToArray(), [1, 3, 1, 1]);
        return result;
    }

    /// <summary>
    /// Reads the preprocessing model: Split(RGB) → Concat in some channel order → Sub(mean image). Returns, for each model
    /// channel j, the RGB input channel it takes, and the mean image (1, 3, 224, 224) in model channel order.
    /// </summary>
    private static (int[] ChannelSource, Tensor MeanImage) ReadPreprocessing(string path)
    {
        var onnx = OnnxModel.Read(path);
        string Foreign(string what) => $"'{path}' is not {PackageId}'s ResNet preprocessing model: {what}";
        var split = onnx.Nodes.FirstOrDefault(n => n.OpType == "Split")
            ?? throw new InvalidDataException(Foreign("no Split node"));
        if (split.Outputs.Count != 3 || split.Int("axis", 0) != 1) throw new InvalidDataException(Foreign("the Split does not split 3 channels"));
        var concat = onnx.Nodes.FirstOrDefault(n => n.OpType == "Concat")
            ?? throw new InvalidDataException(Foreign("no Concat node"));
        if (concat.Inputs.Count != 3 || concat.Int("axis", 0) != 1) throw new InvalidDataException(Foreign("the Concat does not join 3 channels"));
        var source = concat.Inputs.Select(i => split.Outputs.ToList().IndexOf(i)).ToArray();
        if (source.Any(s => s < 0) || source.Distinct().Count() != 3) throw new InvalidDataException(Foreign("the Concat does not reorder the Split's channels"));
        var sub = onnx.Nodes.FirstOrDefault(n => n.OpType == "Sub" && n.Inputs.Count == 2 && n.Inputs[0] == concat.Outputs[0])
            ?? throw new InvalidDataException(Foreign("no Sub of a mean after the Concat"));
        if (onnx.Nodes.Any(n => n.OpType is "Div" or "Mul")) throw new InvalidDataException(Foreign("it scales its input (Div/Mul), which this reader does not expect"));
        var m = onnx.Initializer(sub.Inputs[1]);
        if (!m.Dims.SequenceEqual([1L, 3, MeanImageSize, MeanImageSize]))
            throw new InvalidDataException(Foreign($"the mean '{m.Name}' has shape [{string.Join(", ", m.Dims)}], expected [1, 3, {MeanImageSize}, {MeanImageSize}]"));
        return (source, tensor(m.Values, m.Dims));
    }
}
