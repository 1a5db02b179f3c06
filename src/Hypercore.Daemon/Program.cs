using Hypercore.Daemon.Cli;

return await DaemonCli.RunAsync(args, Console.Out, Console.Error);
