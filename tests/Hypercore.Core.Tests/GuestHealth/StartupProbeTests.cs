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
public sealed class StartupProbeTests() : MonitorTestBase("hypercore-startup-")
{
    protected override GuestHealthMonitor CreateMonitor() => NewMonitor(new GuestHealthOptions { AllowedCidrs = "10.0.0.0/8" }, leases: null, hostAddresses: () => []);

    private MicroVm Seed(ProbeSpec startup, ProbeSpec? readiness = null, ProbeSpec? liveness = null) => Store.Seed(new MicroVm
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
        Status = new MicroVmStatus { Phase = Phase.Running, Node = "node-a", Pid = 100, BootTime = Start, ConsoleLogPath = ConsoleLog },
    });

    private void Print(string line) => File.AppendAllText(ConsoleLog, line + "\n");

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

        Network.Calls.Should().BeEmpty("readiness waits for the startup probe");
        Signals.Pending(Key).Should().BeFalse("a liveness probe with threshold 1 would have fired by now, had it run");
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
        Network.Calls.Should().Equal("tcp 10.20.0.2:22 timeout 1");
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True);
        Signals.Pending(Key).Should().BeFalse("the heartbeat printed since boot counts for the first liveness probe");
    }

    [Test]
    public async Task TcpStartup_FailsThresholdTimes_VmEndedWithStartupProbeFailedNotBefore()
    {
        Seed(startup: new ProbeSpec { TcpSocket = new TcpSocketProbe(8080), PeriodSeconds = 2, FailureThreshold = 3 },
            liveness: new ProbeSpec { TcpSocket = new TcpSocketProbe(8080), PeriodSeconds = 1, FailureThreshold = 1 });
        Network.Default = ProbeResult.Fail("tcp connect to 10.20.0.2:8080 failed: Connection refused");
        var failed = new List<VmKey>();
        Prober.LivenessFailed += failed.Add;

        await Advance(0); // first probe at boot
        await Advance(2); // second
        Signals.Pending(Key).Should().BeFalse("two failures are below the threshold of 3");
        var vm = await Advance(2); // third

        failed.Should().Equal(Key);
        Network.Calls.Should().HaveCount(3, "only the startup probe ran; liveness waits for it");
        var verdict = Signals.TryTake(vm)!;
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
        File.WriteAllText(ConsoleLog, ""); // the line is gone (rotated away)

        Prober.Dispose();
        Prober = CreateMonitor(); // a new daemon process
        Network.Calls.Clear();
        vm = await Advance(1);

        Network.Calls.Should().NotBeEmpty("readiness runs: the guest started on this boot already");
        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted)!.Status.Should().Be(ConditionStatus.True);
    }

    [Test]
    public async Task StartupProbeRemovedFromTheSpec_GuestStartedConditionGoes()
    {
        var vm = Seed(startup: new ProbeSpec { Console = new ConsoleProbe("BOOTED"), PeriodSeconds = 1 });
        await Advance(1);
        vm = (await Store.GetAsync(Key))!;
        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted).Should().NotBeNull();

        Store.Seed(vm with { Spec = vm.Spec with { StartupProbe = null } });
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
            Store, new DriverRegistry([driver], "fake"), Clock, Options.Create(new ReconcilerOptions { NodeName = "node-a" }),
            NullLogger<Reconciler>.Instance, [new GuestHealthStartStep(Clock)], Signals);
        var vm = await Store.CreateAsync(new MicroVmSpec
        {
            Id = "a", Kernel = new KernelSpec { Image = "/k" }, RestartPolicy = RestartPolicy.Never,
            StartupProbe = new ProbeSpec { Console = new ConsoleProbe("BOOTED"), PeriodSeconds = 1 },
        });
        await reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        vm = (await Store.GetAsync(vm.Key))!;
        vm.Status.FindCondition(GuestHealthMonitor.ConditionGuestStarted)!.Reason.Should().Be(GuestHealthMonitor.ReasonProbing, "reset before every start");
        Signals.Report(vm.Key, new LivenessFailure(vm.Uid, vm.Status.BootTime, "console /BOOTED/", "startup probe console /BOOTED/ failed 3 times in a row: no line",
            GuestHealthMonitor.ReasonStartupProbeFailed));

        await reconciler.ReconcileAsync(vm.Key, CancellationToken.None);

        var after = (await Store.GetAsync(vm.Key))!;
        after.Status.Phase.Should().Be(Phase.Failed);
        after.Status.FindCondition(Conditions.Ready)!.Reason.Should().Be(GuestHealthMonitor.ReasonStartupProbeFailed);
        driver.Calls.Clear();
        await reconciler.ReconcileAsync(vm.Key, CancellationToken.None);
        driver.CallCount("start").Should().Be(0, "restartPolicy Never keeps it down");
    }
}
