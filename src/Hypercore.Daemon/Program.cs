using System.Runtime.Versioning;
using Hypercore.Daemon.Cli;

// The drivers need Linux (KVM, taps, Unix sockets, /proc); so does the daemon that composes them.
[assembly: SupportedOSPlatform("linux")]

return await DaemonCli.RunAsync(args, Console.Out, Console.Error);
