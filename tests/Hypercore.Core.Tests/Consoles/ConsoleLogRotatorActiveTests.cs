using Hypercore.Consoles;
using Hypercore.Core.Tests.Fakes;
using Hypercore.Informers;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.Consoles;

/// <summary>
/// Issue 15 (idle4): each second only the consoles of VMs that may have a hypervisor are measured; every
/// FullScanInterval the whole run directory is walked as before.
/// </summary>
public sealed class ConsoleLogRotatorActiveTests
{
    private const long Cap = 4096;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private string _run = null!;

    [SetUp]
    public void SetUp() => _run = Directory.CreateTempSubdirectory("hypercore-rotator-active-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_run, recursive: true);

    private string Console(string provider, string uid, int bytes)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_run, provider, uid)).FullName;
        var path = Path.Combine(dir, "console.log");
        File.WriteAllText(path, new string('x', bytes));
        return path;
    }

    private ConsoleLogRotator Rotator(TimeProvider time, MicroVmInformer? informer = null) =>
        new(Options.Create(new ConsoleLogOptions
        {
            RunDirectory = _run, MaxBytes = Cap, CheckInterval = TimeSpan.FromSeconds(1), FullScanInterval = TimeSpan.FromSeconds(60),
        }), time, NullLogger<ConsoleLogRotator>.Instance, informer);

    private static MicroVm Vm(string id, string uid, Phase phase, int? pid) => new()
    {
        Uid = uid,
        Spec = new MicroVmSpec { Id = id, Kernel = new KernelSpec { Image = "/k" } },
        ResourceVersion = "0",
        Status = new MicroVmStatus { Phase = phase, Pid = pid },
    };

    [Test]
    public void RotateOnly_TheGivenVmsLogsInEveryProvider_OthersAndOddNamesLeftAlone()
    {
        var mine = Console("qemu", "uid-a", 5000);
        var mineElsewhere = Console("firecracker", "uid-b", 5000);
        var other = Console("qemu", "uid-c", 5000);
        File.WriteAllText(Path.Combine(_run, "console.log"), new string('y', 5000));

        Rotator(TimeProvider.System).RotateOnly(["uid-a", "uid-b", "uid-missing", "..", "a/../uid-c"]).Should().Be(2);

        new FileInfo(mine).Length.Should().Be(0);
        new FileInfo(mineElsewhere).Length.Should().Be(0);
        new FileInfo(other).Length.Should().Be(5000);
        new FileInfo(Path.Combine(_run, "console.log")).Length.Should().Be(5000, "\"..\" is no VM directory");
    }

    [Test]
    public void RotateOnly_SymlinkedVmDirectory_IsNotFollowed()
    {
        var elsewhere = Directory.CreateTempSubdirectory("hypercore-rotator-outside-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(elsewhere, "console.log"), new string('x', 9000));
            Directory.CreateDirectory(Path.Combine(_run, "qemu"));
            Directory.CreateSymbolicLink(Path.Combine(_run, "qemu", "uid-planted"), elsewhere);

            Rotator(TimeProvider.System).RotateOnly(["uid-planted"]).Should().Be(0);

            new FileInfo(Path.Combine(elsewhere, "console.log")).Length.Should().Be(9000);
        }
        finally
        {
            Directory.Delete(elsewhere, recursive: true);
        }
    }

    [TestCase(Phase.Running, 100, true)]
    [TestCase(Phase.Provisioning, null, true)]
    [TestCase(Phase.Pending, null, true)]
    [TestCase(Phase.Stopping, 100, true)]
    [TestCase(Phase.Deleting, null, true)]
    [TestCase(Phase.CrashLoopBackOff, null, true)]
    [TestCase(Phase.Stopped, 100, true)]
    [TestCase(Phase.Stopped, null, false)]
    [TestCase(Phase.Failed, null, false)]
    public void MayWriteConsole_OnlyStoppedOrFailedWithoutAProcessIsLeftToTheFullScan(Phase phase, int? pid, bool expected) =>
        ConsoleLogRotator.MayWriteConsole(Vm("a", "uid-a", phase, pid)).Should().Be(expected);

    [Test]
    public async Task Host_EachTickRotatesRunningVmsLogs_StoppedOnesAtTheFullScan()
    {
        var store = new InMemoryStore();
        var clock = new FakeTimeProvider(new DateTimeOffset(2026, 11, 30, 12, 0, 0, TimeSpan.Zero));
        store.Seed(Vm("running", "uid-run", Phase.Running, 100));
        store.Seed(Vm("stopped", "uid-stop", Phase.Stopped, null));
        var running = Console("qemu", "uid-run", 5000);
        var stopped = Console("qemu", "uid-stop", 5000);
        var orphan = Console("qemu", "uid-orphan", 5000); // a process no record accounts for
        using var informer = new MicroVmInformer(store, clock, Options.Create(new InformerOptions { ResyncInterval = TimeSpan.FromHours(1) }),
            NullLogger<MicroVmInformer>.Instance);
        await informer.StartAsync(CancellationToken.None);
        await informer.Synced.WaitAsync(Patience);
        using var rotator = Rotator(clock, informer);
        await rotator.StartAsync(CancellationToken.None);
        try
        {
            // The first pass walks everything.
            await Until(() => new[] { running, stopped, orphan }.All(p => new FileInfo(p).Length == 0));

            foreach (var path in new[] { running, stopped, orphan })
            {
                File.WriteAllText(path, new string('z', 5000));
            }

            clock.Advance(TimeSpan.FromSeconds(1));
            await Until(() => new FileInfo(running).Length == 0);
            for (var i = 0; i < 5; i++)
            {
                clock.Advance(TimeSpan.FromSeconds(1));
                await Task.Delay(20);
            }

            new FileInfo(stopped).Length.Should().Be(5000, "a stopped VM's console is measured at the full scan only");
            new FileInfo(orphan).Length.Should().Be(5000);

            clock.Advance(TimeSpan.FromSeconds(60));
            await Until(() => new FileInfo(stopped).Length == 0 && new FileInfo(orphan).Length == 0);
            File.Exists(stopped + ".1").Should().BeTrue();
        }
        finally
        {
            await rotator.StopAsync(CancellationToken.None);
            await informer.StopAsync(CancellationToken.None);
        }
    }

    [Test]
    public void Options_FullScanIntervalNotPositive_FailsValidation()
    {
        var result = new ConsoleLogOptionsValidator().Validate(null, new ConsoleLogOptions { RunDirectory = "/run", FullScanInterval = TimeSpan.Zero });

        result.Failed.Should().BeTrue();
        result.FailureMessage.Should().Contain("Consoles:FullScanInterval must be positive");
    }

    private static async Task Until(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }
}
