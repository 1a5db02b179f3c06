using System.Net;
using System.Net.Sockets;
using Google.Protobuf;
using Hypercore.Contracts.VmApi;
using YamlDotNet.Serialization;

namespace Hypercore.Cli.Tests.Commands;

public sealed class QueryCommandTests : FakeDaemonTest
{
    private MicroVM SeedWeb1() => Service.Seed(
        new MicroVMSpec { Id = "web1", Namespace = "default", Vcpu = 2, MemoryInMb = 256, Provider = "qemu", Kernel = new Kernel { Image = "default" } },
        phase: "Running", createdAt: Time.GetUtcNow() - TimeSpan.FromMinutes(5), pid: 4242);

    [Test]
    public async Task Get_OutputJson_IsProtobufJsonOfTheMicroVm()
    {
        var stored = SeedWeb1();

        var result = await Vis("get", "web1", "-o", "json");

        result.ExitCode.Should().Be(0, result.ToString());
        JsonParser.Default.Parse<MicroVM>(result.Out).Should().Be(stored);
        result.Out.Should().Contain("\"memoryInMb\": 256");
        Service.ReceivedOf<GetMicroVMRequest>().Should().ContainSingle().Which.Should().Be(new GetMicroVMRequest { Id = "web1" });
    }

    [Test]
    public async Task Get_OutputYaml_HasTheSameFieldsAsJson()
    {
        SeedWeb1();

        var result = await Vis("get", "web1", "--output", "yaml", "-n", "default");

        result.ExitCode.Should().Be(0, result.ToString());
        var doc = new DeserializerBuilder().Build().Deserialize<Dictionary<string, object>>(result.Out);
        var spec = (Dictionary<object, object>)doc["spec"];
        var status = (Dictionary<object, object>)doc["status"];
        spec["id"].Should().Be("web1");
        spec["memoryInMb"].Should().Be("256");
        spec["generation"].Should().Be("1", "int64 fields stay strings, as in protobuf JSON");
        status["phase"].Should().Be("Running");
        status["pid"].Should().Be("4242");
        result.Out.Should().Contain("generation: \"1\"", "a string that looks like a number is quoted");
    }

    [Test]
    public async Task Get_Table_ShowsOneRowWithAllColumns()
    {
        SeedWeb1();

        var result = await Vis("get", "web1");

        result.ExitCode.Should().Be(0, result.ToString());
        var lines = result.Out.TrimEnd('\n').Split('\n');
        lines.Should().HaveCount(2);
        lines[0].Should().MatchRegex(@"^ID\s+NAMESPACE\s+PROVIDER\s+STATE\s+PHASE\s+VCPU\s+MEM\s+PID\s+AGE\s+READY$");
        lines[1].Should().MatchRegex(@"^web1\s+default\s+qemu\s+Running\s+Running\s+2\s+256Mi\s+4242\s+5m\s+-$");
    }

    [Test]
    public async Task Get_Missing_ExitsNotFound()
    {
        var result = await Vis("get", "nope");

        result.ExitCode.Should().Be(ExitCodes.NotFound, result.ToString());
        result.Err.Should().Be("vis: microvm nope not found\n");
        result.Out.Should().BeEmpty();
    }

    [Test]
    public async Task Get_UnreachableHost_ExitsUnavailable()
    {
        // A port that was just free: nothing listens there, so the connection is refused.
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();

        var result = await Harness.RunAsync("--host", $"127.0.0.1:{port}", "get", "web1");

        result.ExitCode.Should().Be(ExitCodes.Unavailable, result.ToString());
        result.Err.Should().StartWith($"vis: cannot reach vistarad at http://127.0.0.1:{port}");
    }

    [Test]
    public async Task Get_BadHost_ExitsUsage()
    {
        var result = await Harness.RunAsync("--host", "ftp://example", "get", "web1");

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        result.Err.Should().StartWith("vis: --host:");
    }

    [Test]
    public async Task List_Table_ListsEveryNamespaceSorted()
    {
        SeedWeb1();
        Service.Seed(new MicroVMSpec { Id = "db", Namespace = "prod", Vcpu = 4, MemoryInMb = 1024, Kernel = new Kernel { Image = "default" } },
            phase: "Stopped", createdAt: Time.GetUtcNow() - TimeSpan.FromDays(3));

        var result = await Vis("ls");

        result.ExitCode.Should().Be(0, result.ToString());
        var lines = result.Out.TrimEnd('\n').Split('\n');
        lines.Should().HaveCount(3);
        lines[1].Should().MatchRegex(@"^web1\s+default\s+qemu\s+Running\s+Running\s+2\s+256Mi\s+4242\s+5m\s+-$");
        lines[2].Should().MatchRegex(@"^db\s+prod\s+-\s+Running\s+Stopped\s+4\s+1024Mi\s+-\s+3d\s+-$");
        lines[0].IndexOf("NAMESPACE", StringComparison.Ordinal).Should().Be(lines[1].IndexOf("default", StringComparison.Ordinal), "columns line up");
        Service.ReceivedOf<ListMicroVMsRequest>().Single().Namespace.Should().BeEmpty();
    }

    [Test]
    public async Task List_NamespaceAndJson_FiltersAndPrintsListResponse()
    {
        var web1 = SeedWeb1();
        Service.Seed(new MicroVMSpec { Id = "db", Namespace = "prod", Kernel = new Kernel { Image = "default" } });

        var result = await Vis("list", "-n", "default", "-o", "json");

        result.ExitCode.Should().Be(0, result.ToString());
        JsonParser.Default.Parse<ListMicroVMsResponse>(result.Out).Microvm.Should().Equal(web1);
    }

    [Test]
    public async Task List_Empty_SaysSo()
    {
        var result = await Vis("list");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Out.Should().Be("No microvms found.\n");
    }

    [Test]
    public async Task GetWatch_StreamsChangesUntilDeleted()
    {
        SeedWeb1();
        var (exit, output, error) = StartVis("get", "-w", "web1");
        await Service.WatchStarted.WaitAsync(Patience);

        Service.SetPhase("default", "web1", "Stopping");
        Service.Remove("default", "web1");

        (await Finished(exit)).Should().Be(0, error.ToString());
        var lines = output.ToString().TrimEnd('\n').Split('\n');
        lines[0].Should().MatchRegex(@"^EVENT\s+ID\s+NAMESPACE");
        lines.Skip(1).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0] + " " + l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[5])
            .Should().Equal("ADDED Running", "MODIFIED Stopping", "DELETED Stopping");
    }

    [Test]
    public async Task Watch_Json_PrintsOneEventPerLineUntilStreamEnds()
    {
        SeedWeb1();
        var (exit, output, error) = StartVis("watch", "-o", "json");
        await Service.WatchStarted.WaitAsync(Patience);

        Service.SetPhase("default", "web1", "Paused");
        await Eventually(() => output.ToString().Contains("Paused"), "the MODIFIED event");
        Service.EndWatches();

        (await Finished(exit)).Should().Be(0, error.ToString());
        var events = output.ToString().TrimEnd('\n').Split('\n').Select(JsonParser.Default.Parse<WatchMicroVMsResponse>).ToList();
        events.Select(e => (e.Type, e.Microvm.Status.Phase)).Should().Equal(("ADDED", "Running"), ("MODIFIED", "Paused"));
        Service.ReceivedOf<WatchMicroVMsRequest>().Single().Should().Be(new WatchMicroVMsRequest());
    }
}
