using System.CommandLine;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML;
using MLNetMedSeg.Attacks;
using MLNetMedSeg.Diffusion;
using MLNetMedSeg.Segmentation;
using TorchSharp;
using LibTransformer = MLNetMedSeg.Pipeline.ITransformer;
using ModelSaveContext = MLNetMedSeg.Pipeline.ModelSaveContext;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg info MODEL.zip</c> (or <c>--model MODEL.zip</c>): loads an ML.NET model file with <c>ml.Model.Load</c> and
/// prints its input schema and its stages in order: each stage's type and assembly and the columns it adds (with their
/// types); for this library's stages also the entry's signature and version, the options saved with it (JSON), the
/// trainable parameters of its network and the weight files it holds, and its child stages. A missing, truncated or
/// foreign file is an error naming the file.
/// </summary>
internal static class InfoCommand
{
    public static Command Create(CliConsole console)
    {
        var file = new Argument<string?>("model") { Description = "the model file (.zip) to describe", Arity = ArgumentArity.ZeroOrOne };
        var model = new Option<string?>("--model") { Description = "the model file (.zip) to describe (instead of the argument)" };
        var cmd = new Command("info", "describe a saved ML.NET model: input schema, stages, their options, networks and output columns") { file, model };
        cmd.SetAction(parse => console.Guard(() =>
        {
            string? argument = parse.GetValue(file), option = parse.GetValue(model);
            if (argument is not null && option is not null) throw new ArgumentException("give the model file once: as the argument or with --model");
            string path = argument ?? option ?? throw new ArgumentException("give the model file: medseg info MODEL.zip");
            console.Out.Write(Describe(new MLContext(seed: 0), path));
            return 0;
        }));
        return cmd;
    }

    /// <summary>The text <c>medseg info</c> prints for the model file at <paramref name="path"/>.</summary>
    internal static string Describe(MLContext ml, string path)
    {
        var model = MLNetRun.LoadModel(ml, path, out var input);
        try
        {
            var sb = new StringBuilder();
            sb.AppendLine($"model file   {Path.GetFullPath(path)} ({new FileInfo(path).Length:N0} bytes, ML.NET model)");
            sb.AppendLine($"input schema {Columns(input)}");
            sb.AppendLine("stages");
            var schema = input;
            var stages = MLNetRun.Stages(model);
            for (int i = 0; i < stages.Count; i++)
            {
                var stage = stages[i];
                sb.AppendLine($"  {i + 1}. {stage.GetType().Name} ({stage.GetType().Assembly.GetName().Name})");
                const string indent = "       ";
                try
                {
                    var next = stage.GetOutputSchema(schema);
                    var added = next.Where(c => !c.IsHidden && (schema.GetColumnOrNull(c.Name) is not { } before || !before.Type.Equals(c.Type))).ToList();
                    sb.AppendLine($"{indent}adds   {(added.Count == 0 ? "(no columns)" : string.Join(", ", added.Select(c => $"{c.Name}: {c.Type}")))}");
                    schema = next;
                }
                catch (Exception e) when (e is not OutOfMemoryException)
                {
                    sb.AppendLine($"{indent}adds   ? (its output schema over the saved input schema: {e.Message})");
                }
                if (stage is LibTransformer ours) DescribeStage(sb, ours, indent);
            }
            return sb.ToString();
        }
        finally
        {
            (model as IDisposable)?.Dispose();
        }
    }

    private static string Columns(DataViewSchema schema) =>
        schema.Count == 0 ? "(no columns)" : string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"{c.Name}: {c.Type}"));

    /// <summary>One of this library's stages: what it saves (header, options, weights, children) and its network's size.</summary>
    private static void DescribeStage(StringBuilder sb, LibTransformer stage, string indent)
    {
        var saved = new SavedEntry();
        using (torch.NewDisposeScope()) stage.Save(saved);
        sb.AppendLine($"{indent}entry  {saved.Signature} v{saved.Version} (readable from v{saved.OldestReadable})");
        if (saved.OptionsJson is { } json) sb.AppendLine($"{indent}options {json}");
        if (NetworkOf(stage) is { } network)
        {
            long parameters = network.parameters().Sum(p => p.numel());
            sb.AppendLine($"{indent}network {network.GetType().Name}: {parameters:N0} trainable parameters");
        }
        foreach (var (name, count, values) in saved.Tensors)
            sb.AppendLine($"{indent}weights {name}.safetensors: {count:N0} tensors, {values:N0} values");
        foreach (var (name, chars) in saved.Texts)
            sb.AppendLine($"{indent}text   {name} ({chars:N0} characters)");
        foreach (var (name, child) in saved.Children)
        {
            sb.AppendLine($"{indent}child  {name}: {child.GetType().Name}");
            DescribeStage(sb, child, indent + "  ");
        }
    }

    /// <summary>The network a stage runs, for its parameter count (null for stages without one).</summary>
    private static torch.nn.Module? NetworkOf(LibTransformer stage) => stage switch
    {
        SegmentationTransformer s => s.Network,
        MLNetMedSeg.Segmentation.Cdal.CdalTransformer c => c.Network,
        MaskDiffusionTransformer m => m.Network,
        ImageDiffusionTransformer i => i.Network,
        DeformationAttackTransformer d => d.Generator,
        _ => null,
    };

    /// <summary>Records what a stage writes when saved, without writing anything.</summary>
    private sealed class SavedEntry : ModelSaveContext
    {
        private static readonly JsonSerializerOptions Json = new()
        {
            PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
            Converters = { new JsonStringEnumConverter() },
        };

        public string? Signature { get; private set; }
        public int Version { get; private set; }
        public int OldestReadable { get; private set; }
        public string? OptionsJson { get; private set; }
        public List<(string Name, int Count, long Values)> Tensors { get; } = [];
        public List<(string Name, int Characters)> Texts { get; } = [];
        public List<(string Name, LibTransformer Child)> Children { get; } = [];

        public override void WriteHeader(string signature, int version, int oldestReadableVersion) =>
            (Signature, Version, OldestReadable) = (signature, version, oldestReadableVersion);

        public override void WriteOptions<T>(T options) => OptionsJson = JsonSerializer.Serialize(options, Json);

        public override void WriteTensors(string name, IReadOnlyDictionary<string, Tensor> tensors) =>
            Tensors.Add((name, tensors.Count, tensors.Values.Sum(t => t.numel())));

        public override void WriteText(string name, string text) => Texts.Add((name, text.Length));

        public override void WriteChild(string name, LibTransformer child) => Children.Add((name, child));
    }
}
