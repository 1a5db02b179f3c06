using System.Text;
using Hypercore.Cli;

Console.OutputEncoding = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
return await Cli.RunAsync(args, Console.Out, Console.Error, CliEnvironment.FromProcess());
