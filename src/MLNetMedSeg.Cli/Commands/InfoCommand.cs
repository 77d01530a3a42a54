using System.CommandLine;
using MLNetMedSeg.Pipeline;

namespace MLNetMedSeg.Cli.Commands;

/// <summary><c>medseg info --model MODEL.zip</c>: versions, input schema, stages and their options.</summary>
internal static class InfoCommand
{
    public static Command Create(CliConsole console)
    {
        var model = new Option<string>("--model") { Description = "the model file (.zip) to describe", Required = true };
        var cmd = new Command("info", "describe a saved model: versions, input schema, stages and their options") { model };
        cmd.SetAction(parse => console.Guard(() =>
        {
            string path = parse.GetRequiredValue(model);
            if (!File.Exists(path)) throw new FileNotFoundException($"model file '{path}' does not exist");
            var ctx = new MedSegContext(seed: 0);
            console.Out.Write(ctx.Model.Describe(path).ToText());
            return 0;
        }));
        return cmd;
    }
}
