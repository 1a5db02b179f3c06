using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Commands;

public sealed class SnapshotCommandTests : FakeDaemonTest
{
    private static MicroVMSpec Source() => new()
    {
        Id = "counter", Namespace = "team-a", Vcpu = 2, MemoryInMb = 256, Provider = "qemu",
        Kernel = new Kernel { Image = "/images/vmlinuz", Cmdline = { ["hypercore.count"] = "" } },
        Initrd = new Initrd { Image = "/images/initrd.img" },
        AdditionalVolumes = { new Volume { Id = "data", SizeInMb = 64 } },
    };

    [Test]
    public async Task Create_SendsVmAndNameAndPrintsTheSnapshot()
    {
        var result = await Vis("snapshot", "create", "web1", "s1", "-n", "prod");

        result.ExitCode.Should().Be(0, result.ToString());
        Daemon.Snapshots.Received.Should().ContainSingle().Which.Should().Be(new SnapshotRequest { Id = "web1", Namespace = "prod", Name = "s1" });
        result.Out.Should().Be("NAME  NAMESPACE  SOURCE  PROVIDER  SIZE    TOOK  AGE\ns1    prod       web1    qemu      87.7Mi  1.3s  3m\n");
    }

    [Test]
    public async Task Create_Duplicate_ExitsAlreadyExists()
    {
        Daemon.Snapshots.Seed("s1", Source());

        var result = await Vis("snapshot", "create", "counter", "s1");

        result.ExitCode.Should().Be(ExitCodes.AlreadyExists);
        result.Err.Should().Contain("snapshot \"s1\" already exists");
    }

    [Test]
    public async Task Ls_TableAndJson()
    {
        Daemon.Snapshots.Seed("b", Source());
        Daemon.Snapshots.Seed("a", Source(), size: 2048);

        var table = await Vis("snapshot", "ls");
        var json = await Vis("snapshot", "ls", "-o", "json");
        var empty = await Vis("snapshot", "ls", "-n", "nobody");

        table.Out.Split('\n')[1].Should().StartWith("a ").And.Contain("2.0Ki");
        table.Out.Split('\n')[2].Should().StartWith("b ");
        json.Out.Should().Contain("\"name\": \"a\"").And.Contain("\"sourceSpec\"");
        empty.Out.Should().Be("No snapshots found.\n");
    }

    [Test]
    public async Task Rm_DeletesAndUnknownExitsNotFound()
    {
        Daemon.Snapshots.Seed("s1", Source());

        var first = await Vis("snapshot", "rm", "s1");
        var second = await Vis("snapshot", "rm", "s1");

        first.ExitCode.Should().Be(0, first.ToString());
        first.Out.Should().Be("snapshot s1 deleted\n");
        second.ExitCode.Should().Be(ExitCodes.NotFound);
    }

    [Test]
    public async Task RunFromSnapshot_SpecTakesTheSnapshotsHardwareAndNamespace()
    {
        Daemon.Snapshots.Seed("s1", Source());

        var result = await Vis("run", "--from-snapshot", "s1", "--name", "clone", "--no-wait");

        result.ExitCode.Should().Be(0, result.ToString());
        var sent = Service.ReceivedOf<CreateMicroVMRequest>().Should().ContainSingle().Subject.Microvm;
        sent.Id.Should().Be("clone");
        sent.RestoreFrom.Should().Be("s1");
        sent.Namespace.Should().Be("team-a");
        sent.Vcpu.Should().Be(2);
        sent.MemoryInMb.Should().Be(256);
        sent.Provider.Should().Be("qemu");
        sent.Kernel.Should().Be(Source().Kernel);
        sent.AdditionalVolumes.Should().Equal(Source().AdditionalVolumes);
    }

    [Test]
    public async Task RunFromSnapshot_WithHardwareFlags_IsAUsageErrorAndSendsNothing()
    {
        Daemon.Snapshots.Seed("s1", Source());

        var result = await Vis("run", "--from-snapshot", "s1", "--name", "clone", "--memory", "512", "--no-wait");

        result.ExitCode.Should().Be(ExitCodes.Usage);
        result.Err.Should().Contain("drop --memory");
        Service.ReceivedOf<CreateMicroVMRequest>().Should().BeEmpty();
    }

    [Test]
    public async Task RunFromSnapshot_Unknown_ExitsNotFoundAndSendsNoCreate()
    {
        var result = await Vis("run", "--from-snapshot", "nope", "--name", "clone", "--no-wait");

        result.ExitCode.Should().Be(ExitCodes.NotFound);
        result.Err.Should().Contain("snapshot \"nope\" not found");
        Service.ReceivedOf<CreateMicroVMRequest>().Should().BeEmpty();
    }
}
