using MLNetMedSeg.Cli;

return MedsegCli.Run(args, Console.Out, Console.Error);
