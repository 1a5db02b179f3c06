using System.Runtime.Versioning;
using Hypercore.BenchNode;

// As vistarad: the daemon's drivers and host need Linux.
[assembly: SupportedOSPlatform("linux")]

return await BenchNodeHost.RunAsync(args, Console.Out, Console.Error);
