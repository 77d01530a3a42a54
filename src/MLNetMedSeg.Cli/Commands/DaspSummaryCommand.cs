using System.CommandLine;
using MLNetMedSeg.Dasp;

namespace MLNetMedSeg.Cli.Commands;

/// <summary>
/// <c>medseg dasp-summary RUNDIR… --out DIR</c>: joins the <c>runs.json</c> of several <c>medseg dasp</c> runs made on
/// the same split (one process per seed, or the methods split over processes: e.g. run in parallel on one GPU) into the
/// report one run over all seeds and methods would give: DIR/seeds.md and DIR/seeds.json (per method mean ± sd over the
/// seeds, each method against the baseline with a paired bootstrap interval, the FGSM robustness table) and
/// DIR/runs.json (the joined rows). A method scored twice for one seed, or a missing or foreign runs.json, is an error
/// naming the folder.
/// </summary>
internal static class DaspSummaryCommand
{
    public static Command Create(CliConsole console)
    {
        var runs = new Argument<string[]>("runs") { Description = "run folders of 'medseg dasp' (each with runs.json), or runs.json files", Arity = ArgumentArity.OneOrMore };
        var baseline = new Option<string>("--baseline") { Description = "the method the others are compared with", DefaultValueFactory = _ => "noaug" };
        var output = new Option<string>("--out") { Description = "folder for seeds.md, seeds.json and the joined runs.json", Required = true };
        var cmd = new Command("dasp-summary", "join the runs.json of several 'medseg dasp' runs on one split into one seeds report") { runs, baseline, output };
        cmd.SetAction(parse => console.Guard(() =>
        {
            var parts = new List<(int Seed, IReadOnlyList<DaspComparisonRow> Rows)>();
            foreach (var given in parse.GetValue(runs)!)
            {
                string file = Directory.Exists(given) ? Path.Combine(given, "runs.json") : given;
                if (!File.Exists(file))
                    throw new FileNotFoundException($"'{given}': no runs.json there (a 'medseg dasp' run folder holds one once a method has been scored)", file);
                parts.AddRange(DaspSeedSummary.RunsFromJson(File.ReadAllText(file), file));
            }
            var joined = DaspSeedSummary.Merge(parts);
            var summary = new DaspSeedSummary(joined, parse.GetValue(baseline)!);
            string dir = parse.GetValue(output)!;
            Directory.CreateDirectory(dir);
            EvaluateCommand.WriteAtomic(Path.Combine(dir, "runs.json"), DaspSeedSummary.RunsToJson(joined));
            EvaluateCommand.WriteAtomic(Path.Combine(dir, "seeds.json"), summary.ToJson());
            EvaluateCommand.WriteAtomic(Path.Combine(dir, "seeds.md"), summary.ToMarkdown());
            console.Out.Write(summary.ToMarkdown());
            return 0;
        }));
        return cmd;
    }
}
