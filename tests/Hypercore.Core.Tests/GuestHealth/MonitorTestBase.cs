using System.Net;
using Hypercore.Core.Tests.Fakes;
using Hypercore.GuestHealth;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.GuestHealth;

/// <summary>
/// The prober of node-a on a fake clock, an in-memory store, a scripted network and a real console file per test;
/// each fixture says how its monitor is configured and how it seeds its VM.
/// </summary>
public abstract class MonitorTestBase(string tempPrefix)
{
    protected static readonly DateTimeOffset Start = new(2026, 11, 25, 12, 0, 0, TimeSpan.Zero);

    protected static readonly VmKey Key = new("default", "vm1");

    private protected InMemoryStore Store { get; private set; } = null!;

    protected FakeTimeProvider Clock { get; private set; } = null!;

    private protected FakeNetworkProbes Network { get; private set; } = null!;

    protected LivenessSignals Signals { get; private set; } = null!;

    /// <summary>The monitor under test; a test may replace it (after disposing the old one) to change its settings.</summary>
    protected GuestHealthMonitor Prober { get; set; } = null!;

    protected string Dir { get; private set; } = null!;

    /// <summary>The VM's console log: console probes read it.</summary>
    protected string ConsoleLog { get; private set; } = null!;

    /// <summary>The monitor each test starts with.</summary>
    protected abstract GuestHealthMonitor CreateMonitor();

    [SetUp]
    public void SetUpMonitor()
    {
        Store = new InMemoryStore();
        Clock = new FakeTimeProvider(Start);
        Network = new FakeNetworkProbes();
        Signals = new LivenessSignals();
        Prober = CreateMonitor();
        Dir = Directory.CreateTempSubdirectory(tempPrefix).FullName;
        ConsoleLog = Path.Combine(Dir, "console.log");
    }

    [TearDown]
    public void TearDownMonitor()
    {
        Prober.Dispose();
        Directory.Delete(Dir, recursive: true);
    }

    /// <summary>A monitor on node-a with these settings, leases and host addresses.</summary>
    protected GuestHealthMonitor NewMonitor(GuestHealthOptions options, IGuestAddressSource? leases, Func<IReadOnlyCollection<IPAddress>> hostAddresses) =>
        new(Store, Network, Signals, Clock, Options.Create(options), Options.Create(new ReconcilerOptions { NodeName = "node-a" }),
            NullLogger<GuestHealthMonitor>.Instance, targets: ProbeTargetPolicy.For(options, "node-a", leases, hostAddresses));

    /// <summary>One prober pass over the store; returns the VM as it is then.</summary>
    protected async Task<MicroVm> Tick()
    {
        var all = await Store.ListAsync();
        await Prober.TickAsync(all, CancellationToken.None);
        return (await Store.GetAsync(Key))!;
    }

    protected async Task<MicroVm> Advance(double seconds)
    {
        Clock.Advance(TimeSpan.FromSeconds(seconds));
        return await Tick();
    }
}
