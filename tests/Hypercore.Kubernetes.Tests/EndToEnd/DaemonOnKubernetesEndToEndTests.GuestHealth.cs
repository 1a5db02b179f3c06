using Hypercore.Store.Kubernetes;

namespace Hypercore.Kubernetes.Tests.EndToEnd;

/// <summary>Guest health on Kubernetes: the sample's console readiness probe turns GuestReady True, shown by kubectl.</summary>
public sealed partial class DaemonOnKubernetesEndToEndTests
{
    [Test]
    public async Task Kubectl_SampleWithReadinessProbe_GuestReadyColumnTurnsTrueAfterTheReadyLine()
    {
        var daemon = StartDaemon();
        await daemon.WaitReadyAsync(Patience);

        await Run("apply", "-f", WriteSample("ready"));
        System.Text.Json.Nodes.JsonObject? last = null;
        await UntilAsync(
            () => (last = Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, "ready")) is { } o &&
                o["status"]?["conditions"]?.AsArray().Any(c => (string?)c!["type"] == "GuestReady" && (string?)c["status"] == "True") == true,
            () => $"GuestReady True; last status: {last?["status"]?.ToJsonString() ?? "(none)"}",
            daemon);

        var console = (string)last!["status"]!["consoleLogPath"]!;
        File.ReadAllText(console).Should().Contain("HYPERCORE-GUEST-READY");
        ((double)last["status"]!["guestReadySeconds"]!).Should().BePositive();
        var table = await GetTableAsync();
        table.Header.Should().EndWith("GUESTREADY");
        table.Row("ready")[^1].Should().Be("True");

        await Run("delete", "mvm", "ready", "--wait=false");
        await UntilAsync(() => Cluster.Server.Get(MicroVmResource.Group, MicroVmResource.Plural, Namespace, "ready") is null,
            "the daemon to delete the VM", daemon);
    }
}
