using System.Diagnostics;
using System.Text.RegularExpressions;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests.Docs;

/// <summary>
/// The README's examples as written. Its curl lines run with the real curl against a real vistarad (only the address
/// changes: the test daemon picks a free port), in order, and each must get a 2xx. grpcurl is not packaged for
/// Debian 12, so each grpcurl line's JSON goes through the same protobuf JSON parser grpcurl and the daemon's
/// transcoding use, into the request type of the method it names.
/// </summary>
[NonParallelizable]
public sealed partial class ReadmeExamplesTests
{
    private static string Readme => File.ReadAllText(Path.Combine(GuestImage.RepoRoot(), "README.md"));

    [GeneratedRegex(@"```sh\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex ShellBlock();

    [GeneratedRegex(@"-d '(?<json>.*?)'\s+\S+\s+(?<method>[\w.]+)\s*$", RegexOptions.Singleline)]
    private static partial Regex GrpcurlCall();

    /// <summary>
    /// Shell commands of the README's sh blocks: continuation lines and newlines inside single quotes joined (as the
    /// shell reads them), trailing comments dropped.
    /// </summary>
    private static List<string> Commands(string program)
    {
        var commands = new List<string>();
        foreach (Match block in ShellBlock().Matches(Readme))
        {
            var current = "";
            foreach (var line in Regex.Replace(block.Groups[1].Value, @"\\\n\s*", " ").Split('\n'))
            {
                current = current.Length == 0 ? line : current + "\n" + line;
                if (current.Count(c => c == '\'') % 2 == 0)
                {
                    commands.Add(Regex.Replace(current, @"\s+#\s[^']*$", "").Trim());
                    current = "";
                }
            }
        }

        return commands.Where(c => c.StartsWith(program + " ", StringComparison.Ordinal)).ToList();
    }

    [Test]
    public async Task CurlExamples_RunAsWritten_AgainstARealDaemon()
    {
        var curls = Commands("curl");
        curls.Should().HaveCountGreaterThanOrEqualTo(5);
        curls.Should().NotContain(c => c.Contains(" -d ", StringComparison.Ordinal), "form-encoded bodies are refused (415): use --json");

        await using var node = await Node.StartAsync();
        var http = node.Http.BaseAddress!.Authority;
        try
        {
            foreach (var command in curls)
            {
                var line = command.Replace("localhost:9091", http, StringComparison.Ordinal) + " -o /dev/stderr -w '%{http_code}'";
                var (code, stdout, stderr) = await BashAsync(line);

                code.Should().Be(0, $"{command}\n{stderr}");
                stdout.Trim().Should().MatchRegex("^2\\d\\d$", $"{command} answered {stdout}: {stderr}");
            }
        }
        finally
        {
            await node.ForceDeleteAsync("default", "web2");
        }
    }

    [Test]
    public void GrpcurlExamples_ParseIntoTheRequestOfTheMethodTheyCall()
    {
        var calls = Commands("grpcurl");
        calls.Should().HaveCountGreaterThanOrEqualTo(5);
        var services = new[]
        {
            Hypercore.Contracts.VmApi.VMService.Descriptor, Hypercore.Contracts.Vistara.Vistara.Descriptor, Hypercore.Contracts.Flintlock.MicroVM.Descriptor,
        };

        foreach (var call in calls)
        {
            var match = GrpcurlCall().Match(call);
            match.Success.Should().BeTrue($"{call} is grpcurl -d '<json>' <address> <service>.<method>");
            var name = match.Groups["method"].Value;
            var dot = name.LastIndexOf('.');
            var service = services.SingleOrDefault(s => s.FullName == name[..dot]);
            service.Should().NotBeNull($"{call} names a service the daemon serves");
            var method = service!.FindMethodByName(name[(dot + 1)..]);
            method.Should().NotBeNull($"{call} names a method of {service.FullName}");

            var parse = () => JsonParser.Default.Parse(match.Groups["json"].Value, method!.InputType);

            parse.Should().NotThrow($"{call}'s JSON is a {method!.InputType.FullName}");
        }
    }

    private static async Task<(int Code, string Stdout, string Stderr)> BashAsync(string command)
    {
        var info = new ProcessStartInfo("bash", ["-c", command]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        return (process.ExitCode, await stdout, await stderr);
    }
}
