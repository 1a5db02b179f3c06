using Hypercore.Core.Tests.Fakes;
using Hypercore.Drivers;
using Hypercore.GuestHealth;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.GuestHealth;

/// <summary>
/// The startup probe (Kubernetes semantics): readiness and liveness are held off until it succeeds; failing
/// FailureThreshold times in a row ends the VM like a liveness failure, with its own reason.
/// </summary>
public sealed class StartupProbeTests
{
    private static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);
    private static readonly VmKey Key = new("default", "vm1");

    private InMemoryStore _store = null!;
    private FakeTimeProvider _time = null!;
    private FakeNetworkProbes _network = null!;
    private LivenessSignals _signals = null!;
    private GuestHealthMonitor _monitor = null!;
    private string _dir = null!;
    private string _console = null!;

    [SetUp]
    public void SetUp()
    {
        _store = new InMemoryStore();
        _time = new FakeTimeProvider(Start);
        _network = new FakeNetworkProbes();
        _signals = new LivenessSignals();
        _monitor = NewMonitor();
        _dir = Directory.CreateTempSubdirectory("hypercore-startup-").FullName;
        _console = Path.Combine(_dir, "console.log");
    }

    [TearDown]
    public void TearDown()
    {
        _monitor.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private GuestHealthMonitor NewMonitor()
    {
        var options = new GuestHealthOptions { AllowedCidrs = "10.0.0.0/8" };
        return new(_store, _network, _signals, _time, Options.Create(options), Options.Create(new ReconcilerOptions { NodeName = "node-a" }),
            NullLogger<GuestHealthMonitor>.Instance, targets: ProbeTargetPolicy.For(options, "node-a", hostAddresses: () => []));
    }

    private MicroVm Seed(ProbeSpec startup, ProbeSpec? readiness = null, ProbeSpec? liveness = null) => _store.Seed(new MicroVm
    {
        Uid = "uid-1",
        Spec = new MicroVmSpec
        {
            Id = "vm1", Kernel = new KernelSpec { Image = "/k" }, StartupProbe = startup, ReadinessProbe = readiness, LivenessProbe = liveness,
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.20.0.2/24" }],
        },
        ResourceVersion = "0",
        CreatedAt = Start - TimeSpan.FromSeconds(2),
        Claimed = true,
        Status = new MicroVmStatus { Phase = Phase.Running, Node = "node-a", Pid = 100, BootTime = Start, ConsoleLogPath = _console },
    });

    private async Task<MicroVm> Advance(double seconds)
    {
        _time.Advance(TimeSpan.FromSeconds(seconds));
        await _monitor.TickAsync(await _store.ListAsync(), CancellationToken.None);
        return (await _store.GetAsync(Key))!;
    }

    private void Print(string line) => File.AppendAllText(_console, line + "\n");

    [Test]
    public async Task ConsoleStartup_HoldsOffReadinessAndLivenessUntilItSucceeds_ThenTheyRun()
    {
        Seed(
            startup: new ProbeSpec { Console = new ConsoleProbe("BOOTED"), PeriodSeconds = 1, FailureThreshold = 60 },
            readiness: new ProbeSpec { TcpSocket = new TcpSocketProbe(22), PeriodSeconds = 1 },
            liveness: new ProbeSpec { Console = new ConsoleProbe("beat"), PeriodSeconds = 1, FailureThreshold = 1 });

        MicroVm vm = null!;
        for (var i = 0; i < 10; i++)
        {
            vm = await Advance(1);
        }

        _network.Calls.Should().BeEmpty("readiness waits for the startup probe");
        _signals.Pending(Key).Should().BeFalse("a liveness probe with threshold 1 would have fired by now, had it run");
        vm.Status.FindCondition(Conditions.GuestReady)!.Should().Match<Condition>(c =>
            c.Status == ConditionStatus.False && c.Reason == GuestHealthMonitor.ReasonProbing &&
            c.Message == "waiting for startup probe console /BOOTED/ (readiness probe tcp :22 runs once it succeeds)");
        var started = vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted)!;
        started.Status.Should().Be(ConditionStatus.False);
        started.Message.Should().Be("startup probe console /BOOTED/ has not succeeded yet: no console line matched /BOOTED/ on this boot yet");

        Print("BOOTED");
        Print("beat");
        vm = await Advance(0.25);

        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted)!.Should().Match<Condition>(c =>
            c.Status == ConditionStatus.True && c.Reason == GuestHealthMonitor.ReasonProbeSucceeded && c.Message == "console line matched /BOOTED/: BOOTED");
        _network.Calls.Should().Equal("tcp 10.20.0.2:22 timeout 1");
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True);
        _signals.Pending(Key).Should().BeFalse("the heartbeat printed since boot counts for the first liveness probe");
    }

    [Test]
    public async Task TcpStartup_FailsThresholdTimes_VmEndedWithStartupProbeFailedNotBefore()
    {
        Seed(startup: new ProbeSpec { TcpSocket = new TcpSocketProbe(8080), PeriodSeconds = 2, FailureThreshold = 3 },
            liveness: new ProbeSpec { TcpSocket = new TcpSocketProbe(8080), PeriodSeconds = 1, FailureThreshold = 1 });
        _network.Default = ProbeResult.Fail("tcp connect to 10.20.0.2:8080 failed: Connection refused");
        var failed = new List<VmKey>();
        _monitor.LivenessFailed += failed.Add;

        await Advance(0); // first probe at boot
        await Advance(2); // second
        _signals.Pending(Key).Should().BeFalse("two failures are below the threshold of 3");
        var vm = await Advance(2); // third

        failed.Should().Equal(Key);
        _network.Calls.Should().HaveCount(3, "only the startup probe ran; liveness waits for it");
        var verdict = _signals.TryTake(vm)!;
        verdict.Reason.Should().Be(GuestHealthMonitor.ReasonStartupProbeFailed);
        verdict.Message.Should().Be("startup probe tcp :8080 failed 3 times in a row: tcp connect to 10.20.0.2:8080 failed: Connection refused");
        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted)!.Should().Match<Condition>(c =>
            c.Status == ConditionStatus.False && c.Reason == GuestHealthMonitor.ReasonProbeFailed && c.Message == verdict.Message);
    }

    [Test]
    public async Task DaemonRestart_StartedRecordedForThisBoot_NotHeldOffAgain()
    {
        Seed(startup: new ProbeSpec { Console = new ConsoleProbe("BOOTED"), PeriodSeconds = 1 },
            readiness: new ProbeSpec { TcpSocket = new TcpSocketProbe(22), PeriodSeconds = 1 });
        Print("BOOTED");
        var vm = await Advance(0.25);
        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted)!.Status.Should().Be(ConditionStatus.True);
        File.WriteAllText(_console, ""); // the line is gone (rotated away)

        _monitor.Dispose();
        _monitor = NewMonitor(); // a new daemon process
        _network.Calls.Clear();
        vm = await Advance(1);

        _network.Calls.Should().NotBeEmpty("readiness runs: the guest started on this boot already");
        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted)!.Status.Should().Be(ConditionStatus.True);
    }

    [Test]
    public async Task StartupProbeRemovedFromTheSpec_GuestStartedConditionGoes()
    {
        var vm = Seed(startup: new ProbeSpec { Console = new ConsoleProbe("BOOTED"), PeriodSeconds = 1 });
        await Advance(1);
        vm = (await _store.GetAsync(Key))!;
        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted).Should().NotBeNull();

        _store.Seed(vm with { Spec = vm.Spec with { StartupProbe = null } });
        vm = await Advance(1);

        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted).Should().BeNull();
    }

    [Test]
    public void Validate_BadStartupProbe_NamesItsField()
    {
        var spec = new MicroVmSpec
        {
            Id = "vm1", Kernel = new KernelSpec { Image = "/k" },
            StartupProbe = new ProbeSpec { Console = new ConsoleProbe("x"), PeriodSeconds = 0 },
        };

        MicroVmSpecValidator.Validate(spec).Should().Contain("startup_probe.period_seconds must be between 1 and 3600, got 0");
    }

    [Test]
    public async Task Reconciler_StartupFailed_RestartNever_FailedWithStartupProbeFailed()
    {
        var driver = new FakeDriver();
        var reconciler = new Reconciler(
            _store, new DriverRegistry([driver], "fake"), _time, Options.Create(new ReconcilerOptions { NodeName = "node-a" }),
            NullLogger<Reconciler>.Instance, [new GuestHealthStartStep(_time)], _signals);
        var vm = await _store.CreateAsync(new MicroVmSpec
        {
            Id = "a", Kernel = new KernelSpec { Image = "/k" }, RestartPolicy = RestartPolicy.Never,
            StartupProbe = new ProbeSpec { Console = new ConsoleProbe("BOOTED"), PeriodSeconds = 1 },
        });
        await reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        vm = (await _store.GetAsync(vm.Key))!;
        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted)!.Reason.Should().Be(GuestHealthMonitor.ReasonProbing, "reset before every start");
        _signals.Report(vm.Key, new LivenessFailure(vm.Uid, vm.Status.BootTime, "console /BOOTED/", "startup probe console /BOOTED/ failed 3 times in a row: no line",
            GuestHealthMonitor.ReasonStartupProbeFailed));

        await reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        var after = (await _store.GetAsync(vm.Key))!;
        after.Status.Phase.Should().Be(Phase.Failed);
        after.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be(GuestHealthMonitor.ReasonStartupProbeFailed);
        driver.Calls.Clear();
        await reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        driver.CallCount("start").Should().Be(0, "restartPolicy Never keeps it down");
    }
}
