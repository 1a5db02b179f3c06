using System.Diagnostics;
using System.Text;
using Grpc.Net.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Kubernetes.Tests.EndToEnd;

public sealed partial class DaemonOnKubernetesEndToEndTests
{
    /// <summary>
    /// On Kubernetes anyone allowed to write the status subresource can set <c>status.consoleLogPath</c>. Logs must
    /// stream the VM's own console (derived from its uid and the run directory), never the file status names: here
    /// /etc/shadow (the daemon runs as root, so reading it would have worked). The poisoned value is proven to be what
    /// the daemon itself reported just before and just after the Logs call.
    /// </summary>
    [Test]
    public async Task Logs_StatusConsoleLogPathPoisonedToEtcShadow_StreamsTheGuestConsoleNotTheFile()
    {
        var poison = "/etc/shadow";
        string secretLine;
        try
        {
            secretLine = File.ReadLines(poison).First(l => l.Length > 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException)
        {
            // Not root here: a file of the test's own stands in for it, with the same shape.
            poison = Path.Combine(_dir!.FullName, "shadow");
            secretLine = "root:$6$HYPERCORE-SECRET-HASH$abcdef:19700:0:99999:7:::";
            await File.WriteAllTextAsync(poison, secretLine + "\n");
        }

        var daemon = StartDaemon();
        var (grpc, _) = await daemon.WaitReadyAsync(Patience);
        await Run("apply", "-f", WriteSample("hello"));
        var running = await WaitForPhaseAsync(daemon, "hello", "Running");
        var console = Path.Combine(StateDir, "run", "qemu", (string)running["metadata"]!["uid"]!, "console.log");
        await UntilAsync(() => File.Exists(console) && File.ReadAllText(console).Contains("HYPERCORE-GUEST-READY", StringComparison.Ordinal),
            "the guest's ready line", daemon);

        using var channel = GrpcChannel.ForAddress(grpc);
        var client = new VMService.VMServiceClient(channel);
        async Task<string> StatusPathAsync() =>
            (await client.GetAsync(new GetMicroVMRequest { Id = "hello", Namespace = Namespace })).Microvm.Status.ConsoleLogPath;

        var patch = new System.Text.Json.Nodes.JsonObject
        {
            ["status"] = new System.Text.Json.Nodes.JsonObject { ["consoleLogPath"] = poison },
        }.ToJsonString();
        var clock = Stopwatch.StartNew();
        string? streamed = null;
        while (streamed is null)
        {
            if (clock.Elapsed > Patience)
            {
                Assert.Fail($"the daemon never reported the poisoned status.consoleLogPath around a Logs call (it reports {await StatusPathAsync()})");
            }

            if (await StatusPathAsync() != poison)
            {
                // The reconciler may write the real path back; poison it again, as an attacker would.
                await Run("patch", "mvm", "hello", "--subresource=status", "--type=merge", "-p", patch);
                await Task.Delay(100);
                continue;
            }

            var output = await ReadLogsAsync(client);
            if (await StatusPathAsync() == poison)
            {
                streamed = output;
            }
        }

        streamed.Should().Contain("HYPERCORE-GUEST-READY", "Logs streams the guest's own console");
        streamed.Should().NotContain(secretLine, "Logs never opens the file status names");
    }

    private static async Task<string> ReadLogsAsync(VMService.VMServiceClient client)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var call = client.Logs(new LogsRequest { Id = "hello", Namespace = Namespace }, cancellationToken: cts.Token);
        var text = new StringBuilder();
        while (await call.ResponseStream.MoveNext(cts.Token))
        {
            text.Append(Encoding.UTF8.GetString(call.ResponseStream.Current.Data.Span));
        }

        return text.ToString();
    }
}
