using System.Net;
using Hypercore.Core.Tests.Fakes;
using Hypercore.GuestHealth;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.GuestHealth;

/// <summary>The prober on a fake clock, with real console files and a scripted network.</summary>
public sealed class GuestHealthMonitorTests() : MonitorTestBase("hypercore-probes-")
{
    protected override GuestHealthMonitor CreateMonitor() => NewMonitor(allowHostTargets: false);

    private GuestHealthMonitor NewMonitor(bool allowHostTargets, string allowedCidrs = "", IGuestAddressSource? leases = null) =>
        NewMonitor(new GuestHealthOptions { AllowHostTargets = allowHostTargets, AllowedCidrs = allowedCidrs }, leases, () => [IPAddress.Parse("192.168.50.1")]);

    /// <summary>Uses a monitor whose settings allow the 10.0.0.0/8 test addresses on purpose (probe-allowed-cidrs).</summary>
    private void AllowTestNetwork(IGuestAddressSource? leases = null)
    {
        Prober.Dispose();
        Prober = NewMonitor(allowHostTargets: false, allowedCidrs: "10.0.0.0/8", leases);
    }

    private MicroVm Seed(ProbeSpec? readiness = null, ProbeSpec? liveness = null, long? consoleOffset = null, string? address = null,
        DateTimeOffset? created = null)
    {
        var spec = new MicroVmSpec
        {
            Id = "vm1",
            Kernel = new KernelSpec { Image = "/k" },
            ReadinessProbe = readiness,
            LivenessProbe = liveness,
            Interfaces = address is null ? [] : [new NetworkInterfaceSpec { DeviceId = "eth0", Address = address }],
        };
        return Store.Seed(new MicroVm
        {
            Uid = "uid-1",
            Spec = spec,
            ResourceVersion = "0",
            CreatedAt = created ?? Start - TimeSpan.FromSeconds(2),
            Claimed = true,
            Status = new MicroVmStatus
            {
                Phase = Phase.Running, Node = "node-a", Pid = 100, BootTime = Start, ConsoleLogPath = ConsoleLog, ConsoleBootOffset = consoleOffset,
            },
        });
    }

    private void Print(string line) => File.AppendAllText(ConsoleLog, line + "\r\n");

    private static ProbeSpec Console(string regex, int period = 10, int failures = 3, int delay = 0) =>
        new() { Console = new ConsoleProbe(regex), PeriodSeconds = period, FailureThreshold = failures, InitialDelaySeconds = delay };

    [Test]
    public async Task Tick_NoVmsAndNoneTracked_AllocatesNothing()
    {
        // An idle node ticks four times a second; what a pass allocates stays resident until the next collection.
        MicroVm[] none = [];
        Prober.TickAsync(none, CancellationToken.None).IsCompletedSuccessfully.Should().BeTrue();
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 100; i++)
        {
            _ = Prober.TickAsync(none, CancellationToken.None);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        await Task.CompletedTask;
        allocated.Should().Be(0);
    }

    [Test]
    public async Task Tick_LastProbedVmGone_StopsTrackingIt()
    {
        Seed(readiness: Console("READY", period: 1));
        await Tick();
        Prober.Tracked.Should().Be(1);

        await Prober.TickAsync([], CancellationToken.None);

        Prober.Tracked.Should().Be(0);
    }

    [Test]
    public async Task ConsoleReadiness_ReadyLinePrinted_GuestReadyTrueAtOnceWithTheLineAndCreateToReadyTime()
    {
        Seed(readiness: Console("HYPERCORE-GUEST-READY"));
        Print("Linux version 6.1");

        var before = await Tick();
        before.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.False);
        before.Status.FindCondition(Conditions.GuestReady)!.Message.Should().Contain("no console line matched /HYPERCORE-GUEST-READY/");

        Print("HYPERCORE-GUEST-READY");
        var after = await Advance(0.25); // well inside the 10 s period: a console line counts when it is printed

        var condition = after.Status.FindCondition(Conditions.GuestReady)!;
        condition.Status.Should().Be(ConditionStatus.True);
        condition.Reason.Should().Be(GuestHealthMonitor.ReasonProbeSucceeded);
        condition.Message.Should().Contain("HYPERCORE-GUEST-READY");
        after.Status.GuestReadyTime.Should().Be(Start + TimeSpan.FromSeconds(0.25));
        after.Status.GuestReadySeconds.Should().Be(2.25, "created 2 s before boot, ready 0.25 s after");
    }

    [Test]
    public async Task ConsoleReadiness_LineNeverPrinted_StaysFalseWithTheProbesMessage()
    {
        Seed(readiness: Console("NEVER-PRINTED", period: 1));
        Print("HYPERCORE-GUEST-READY");

        MicroVm vm = await Tick();
        for (var i = 0; i < 10; i++)
        {
            vm = await Advance(1);
        }

        var condition = vm.Status.FindCondition(Conditions.GuestReady)!;
        condition.Status.Should().Be(ConditionStatus.False);
        condition.Reason.Should().Be(GuestHealthMonitor.ReasonProbeFailed);
        condition.Message.Should().Be("readiness probe console /NEVER-PRINTED/: no console line matched /NEVER-PRINTED/ on this boot yet");
        vm.Status.GuestReadySeconds.Should().BeNull();
    }

    [Test]
    public async Task ConsoleReadiness_ReadyLineFromAnEarlierBoot_DoesNotCount()
    {
        Print("HYPERCORE-GUEST-READY"); // the previous boot's line: QEMU appends across restarts
        Seed(readiness: Console("HYPERCORE-GUEST-READY", period: 1), consoleOffset: new FileInfo(ConsoleLog).Length);

        var vm = await Advance(3);
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.False);

        Print("HYPERCORE-GUEST-READY");
        vm = await Advance(0.25);
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True);
    }

    [Test]
    public async Task ConsoleReadiness_NoNewVerdict_WritesNoStatus()
    {
        Seed(readiness: Console("READY", period: 1));
        Print("READY");
        await Tick();
        var writes = Store.StatusWrites;

        for (var i = 0; i < 5; i++)
        {
            await Advance(1);
        }

        Store.StatusWrites.Should().Be(writes, "an unchanged verdict is not written again");
    }

    [Test]
    public async Task ConsoleLiveness_HeartbeatStops_ReportedAfterFailureThresholdPeriods()
    {
        Seed(liveness: Console("heartbeat", period: 1, failures: 3, delay: 2));

        // Beats every second for 5 s: every probe sees a fresh line.
        await Tick();
        for (var i = 0; i < 5; i++)
        {
            Print($"hypercore: heartbeat {i}");
            await Advance(1);
        }

        Signals.Pending(new VmKey("default", "vm1")).Should().BeFalse();

        await Advance(1); // first probe with no new line
        await Advance(1); // second
        Signals.Pending(new VmKey("default", "vm1")).Should().BeFalse("two failures are below the threshold of 3");
        var failed = new List<VmKey>();
        Prober.LivenessFailed += failed.Add;

        var vm = await Advance(1); // third

        failed.Should().Equal(new VmKey("default", "vm1"));
        var failure = Signals.TryTake(vm)!;
        failure.Message.Should().Be("liveness probe console /heartbeat/ failed 3 times in a row: no console line matched /heartbeat/ within 1 s");
        failure.Probe.Should().Be("console /heartbeat/");
    }

    [Test]
    public async Task ConsoleLiveness_InitialDelay_NoFailureCountedBeforeIt()
    {
        Seed(liveness: Console("heartbeat", period: 1, failures: 1, delay: 5));

        await Tick();
        for (var i = 0; i < 4; i++)
        {
            await Advance(1);
        }

        Signals.Pending(new VmKey("default", "vm1")).Should().BeFalse("nothing is probed within the initial delay");
        await Advance(1);
        Signals.Pending(new VmKey("default", "vm1")).Should().BeTrue();
    }

    [Test]
    public async Task LivenessVerdict_FromAnEarlierBoot_IsNotTaken()
    {
        var vm = Seed(liveness: Console("x", period: 1, failures: 1));
        await Tick();
        await Advance(1);
        var restarted = vm with { Status = vm.Status with { BootTime = Start + TimeSpan.FromMinutes(1) } };

        Signals.TryTake(restarted).Should().BeNull();
    }

    [Test]
    public async Task TcpReadiness_ReadyThenFailing_TurnsFalseOnlyAtTheFailureThreshold()
    {
        AllowTestNetwork();
        Seed(readiness: new ProbeSpec { TcpSocket = new TcpSocketProbe(22), PeriodSeconds = 2, FailureThreshold = 2 }, address: "10.20.0.2/24");
        Network.Script.Enqueue(ProbeResult.Ok("tcp connect to 10.20.0.2:22 succeeded"));
        Network.Script.Enqueue(ProbeResult.Fail("tcp connect to 10.20.0.2:22 failed: Connection refused"));

        var vm = await Tick();
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True);
        Network.Calls.Should().Equal("tcp 10.20.0.2:22 timeout 1");

        vm = await Advance(2);
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True, "one failure is below the threshold");

        vm = await Advance(2);
        var condition = vm.Status.FindCondition(Conditions.GuestReady)!;
        condition.Status.Should().Be(ConditionStatus.False);
        condition.Message.Should().Be("readiness probe tcp :22 failed 2 times: tcp connect to 10.20.0.2:22 failed: Connection refused");
    }

    [Test]
    public async Task HttpReadiness_StatusAddressComesBeforeTheStaticOne()
    {
        AllowTestNetwork();
        var vm = Seed(readiness: new ProbeSpec { HttpGet = new HttpGetProbe(8080, "/healthz") }, address: "10.20.0.2/24");
        Store.Seed(vm with { Status = vm.Status with { Addresses = ["10.30.0.9"] } });

        await Tick();

        Network.Calls.Should().Equal("http 10.30.0.9:8080/healthz timeout 1");
    }

    [Test]
    public async Task TcpReadiness_LoopbackGuestAddress_RefusedWithoutTouchingTheNetwork()
    {
        Seed(readiness: new ProbeSpec { TcpSocket = new TcpSocketProbe(22) }, address: "127.0.0.1/8");

        var vm = await Tick();

        Network.Calls.Should().BeEmpty();
        vm.Status.FindCondition(Conditions.GuestReady)!.Message.Should().Contain("is the host itself").And.Contain("probe-host-targets");
    }

    [Test]
    public async Task VmStopsRunning_ReadyGuest_GuestReadyTurnsFalse()
    {
        Seed(readiness: Console("READY"));
        Print("READY");
        var vm = await Tick();
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True);

        Store.Seed(vm with { Status = vm.Status with { Phase = Phase.Stopped, Pid = null } });
        vm = await Tick();

        var condition = vm.Status.FindCondition(Conditions.GuestReady)!;
        condition.Status.Should().Be(ConditionStatus.False);
        condition.Message.Should().Be("the VM is Stopped");
        Prober.Tracked.Should().Be(0);
    }

    [Test]
    public async Task DaemonRestart_ReadyRecordedForThisBoot_StaysTrueThoughTheLineWasRotatedAway()
    {
        Seed(readiness: Console("READY", period: 1));
        Print("READY");
        var vm = await Tick();
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True);
        File.WriteAllText(ConsoleLog, ""); // the ready line is gone (rotated away)

        Prober.Dispose();
        Prober = NewMonitor(allowHostTargets: false); // a new daemon process
        for (var i = 0; i < 5; i++)
        {
            vm = await Advance(1);
        }

        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True);
    }

    [Test]
    public async Task NewBoot_ReadyFromThePreviousBoot_IsNotCarriedOver()
    {
        Seed(readiness: Console("READY", period: 1));
        Print("READY");
        var vm = await Tick();
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True);

        Clock.Advance(TimeSpan.FromSeconds(5));
        vm = Store.Seed(vm with
        {
            Status = vm.Status with { BootTime = Clock.GetUtcNow(), Pid = 101, ConsoleBootOffset = new FileInfo(ConsoleLog).Length },
        });
        vm = await Tick();

        var condition = vm.Status.FindCondition(Conditions.GuestReady)!;
        condition.Status.Should().Be(ConditionStatus.False);
        condition.Reason.Should().Be(GuestHealthMonitor.ReasonProbeFailed);
        vm.Status.GuestReadySeconds.Should().Be(2, "Create -> first ready is kept; the new boot is not the first");
    }

    [Test]
    public async Task OtherNodesVm_IsNotProbed()
    {
        var vm = Seed(readiness: Console("READY"));
        Store.Seed(vm with { Status = vm.Status with { Node = "node-b" } });
        Print("READY");

        vm = await Tick();

        vm.Status.FindCondition(Conditions.GuestReady).Should().BeNull();
        Prober.Tracked.Should().Be(0);
    }

    [Test]
    public async Task TcpReadiness_StaticAddressTheNodeDidNotGive_RefusedWithoutTouchingTheNetworkSayingHowToAllowIt()
    {
        Seed(readiness: new ProbeSpec { TcpSocket = new TcpSocketProbe(22) }, address: "10.20.0.2/24");

        var vm = await Tick();

        Network.Calls.Should().BeEmpty("a caller's static address must not steer the root daemon's connections");
        var condition = vm.Status.FindCondition(Conditions.GuestReady)!;
        condition.Status.Should().Be(ConditionStatus.False);
        condition.Message.Should().StartWith("readiness probe tcp :22: the guest address 10.20.0.2 was not given to the VM by this node")
            .And.Contain("add a CIDR holding 10.20.0.2 to probe-allowed-cidrs (Health:AllowedCidrs) to allow it on purpose");
    }

    [Test]
    public async Task HttpLiveness_StatusAddressOnly_NotLeasedByTheNode_RefusedAndCountsAsAFailure()
    {
        var vm = Seed(liveness: new ProbeSpec { HttpGet = new HttpGetProbe(80, "/"), FailureThreshold = 1 }, address: null);
        Store.Seed(vm with { Status = vm.Status with { Addresses = ["172.16.9.9"] } });

        vm = await Tick();

        Network.Calls.Should().BeEmpty("a status address is no proof the node gave it (a Kubernetes user may write status)");
        Signals.TryTake(vm)!.Message.Should().Contain("the guest address 172.16.9.9 was not given to the VM by this node");
    }

    [Test]
    public async Task TcpReadiness_AddressLeasedByTheNode_ProbedThereWithNoAllowedCidrs()
    {
        Prober.Dispose();
        Prober = NewMonitor(allowHostTargets: false, leases: new FakeLeases { ["uid-1"] = ["10.200.0.7"] });
        var vm = Seed(readiness: new ProbeSpec { TcpSocket = new TcpSocketProbe(22) }, address: "192.0.2.50/24");
        Store.Seed(vm with { Status = vm.Status with { Addresses = ["192.0.2.50"] } });

        vm = await Tick();

        Network.Calls.Should().Equal("tcp 10.200.0.7:22 timeout 1");
        vm.Status.FindCondition(Conditions.GuestReady)!.Status.Should().Be(ConditionStatus.True);
    }

    [Test]
    public async Task TcpReadiness_StaticAddressInsideProbeAllowedCidrs_Probed()
    {
        Prober.Dispose();
        Prober = NewMonitor(allowHostTargets: false, allowedCidrs: "192.0.2.0/24, 2001:db8::/32");
        Seed(readiness: new ProbeSpec { TcpSocket = new TcpSocketProbe(22) }, address: "192.0.2.50/24");

        await Tick();

        Network.Calls.Should().Equal("tcp 192.0.2.50:22 timeout 1");
    }

    [Test]
    public async Task HostTargets_On_LoopbackAndHostAddressProbed_ButAnotherHostStillNeedsAllowedCidrs()
    {
        Prober.Dispose();
        Prober = NewMonitor(allowHostTargets: true);
        var vm = Seed(readiness: new ProbeSpec { TcpSocket = new TcpSocketProbe(22), PeriodSeconds = 1, FailureThreshold = 1 }, address: "127.0.0.1/8");

        await Tick();
        Store.Seed(vm with { Spec = vm.Spec with { Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = "192.168.50.1/24" }] } });
        await Advance(1);
        Store.Seed(vm with { Spec = vm.Spec with { Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = "192.168.60.1/24" }] } });
        vm = await Advance(1);

        Network.Calls.Should().Equal("tcp 127.0.0.1:22 timeout 1", "tcp 192.168.50.1:22 timeout 1");
        vm.Status.FindCondition(Conditions.GuestReady)!.Message.Should().Contain("192.168.60.1 was not given to the VM by this node");
    }

    private sealed class FakeLeases : Dictionary<string, string[]>, IGuestAddressSource
    {
        public IReadOnlyCollection<IPAddress> Assigned(MicroVm vm) =>
            TryGetValue(vm.Uid, out var addresses) ? addresses.Select(IPAddress.Parse).ToList() : [];

        public bool WillAssign(NetworkInterfaceSpec nic) => false;
    }
}
