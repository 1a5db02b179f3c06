using Grpc.Core;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Client;

public sealed class HypercoreClientTests : FakeDaemonTest
{
    private HypercoreClient _client = null!;

    [SetUp]
    public void Connect() => _client = HypercoreClient.Connect(Daemon.Host, new HypercoreClientOptions { TimeProvider = Time });

    [TearDown]
    public void Disconnect() => _client.Dispose();

    [Test]
    public async Task CreateWaitDelete_InAFewLines_DrivesTheVmThroughItsLife()
    {
        var vm = await _client.CreateMicroVmAsync(new MicroVmTemplate { Name = "web1", MemoryInMb = 256 });
        vm.Spec.Uid.Should().NotBeNullOrEmpty();

        var progress = new List<string>();
        var gets = Service.ReceivedOf<GetMicroVMRequest>().Count;
        var running = _client.WaitForPhaseAsync("web1", MicroVmPhases.Running, TimeSpan.FromMinutes(1), new SyncProgress(progress));
        await Service.WatchStarted.WaitAsync(Patience);
        // Running after the client's reads (namespace, then after the watch's headers), so it comes through the stream.
        await Eventually(() => Service.ReceivedOf<GetMicroVMRequest>().Count >= gets + 2);
        Service.SetPhase("default", "web1", "Running");
        (await running.WaitAsync(Patience)).Status.Phase.Should().Be("Running");

        (await _client.ListMicroVmsAsync("default")).Select(v => v.Spec.Id).Should().Equal("web1");
        await _client.DeleteMicroVmAsync("web1");
        Service.ResetWatchStarted();
        var gone = _client.WaitForDeletionAsync("web1", TimeSpan.FromMinutes(1));
        await Service.WatchStarted.WaitAsync(Patience);
        Service.Remove("default", "web1");
        await gone.WaitAsync(Patience);

        (await _client.TryGetMicroVmAsync("web1")).Should().BeNull();
        progress.Should().Equal("default/web1: Pending", "default/web1: Running");
    }

    [Test]
    public async Task CreateThenWait_DaemonClaimsAtCreate_ReportsProvisioningThenRunning()
    {
        // vistarad on SQLite (issue 15, claim14): the Create's write is already the reconciler's claim, so a new VM's
        // first phase is Provisioning, observed at generation 1.
        Service.CreatedStatus = _ => new MicroVMStatus { Phase = "Provisioning", ObservedGeneration = 1, Node = "fake-node" };
        var vm = await _client.CreateMicroVmAsync(new MicroVmTemplate { Name = "web1", MemoryInMb = 256 });
        vm.Status.Phase.Should().Be("Provisioning");

        var progress = new List<string>();
        var gets = Service.ReceivedOf<GetMicroVMRequest>().Count;
        var running = _client.WaitForPhaseAsync("web1", MicroVmPhases.Running, TimeSpan.FromMinutes(1), new SyncProgress(progress));
        await Service.WatchStarted.WaitAsync(Patience);
        await Eventually(() => Service.ReceivedOf<GetMicroVMRequest>().Count >= gets + 2);
        running.IsCompleted.Should().BeFalse("Provisioning is not Running, though it is observed");
        Service.SetPhase("default", "web1", "Running");
        (await running.WaitAsync(Patience)).Status.Phase.Should().Be("Running");

        progress.Should().Equal("default/web1: Provisioning", "default/web1: Running");
    }

    [Test]
    public async Task CreateStoppedThenWait_DaemonClaimsAtCreate_EndsAtOnce()
    {
        Service.CreatedStatus = _ => new MicroVMStatus { Phase = "Stopped", ObservedGeneration = 1, Node = "fake-node" };
        await _client.CreateMicroVmAsync(new MicroVmTemplate { Name = "web1", MemoryInMb = 256 });

        var stopped = await _client.WaitForPhaseAsync("web1", MicroVmPhases.Stopped, TimeSpan.FromMinutes(1)).WaitAsync(Patience);

        stopped.Status.Phase.Should().Be("Stopped", "the Create's write said Stopped for generation 1: nothing to wait for");
    }

    [Test]
    public async Task WaitForPhase_WatchStartsBehindGet_ReportedPhaseNeverGoesBack()
    {
        // vis run --from-snapshot once printed Provisioning, Pending, Provisioning, Running: Get (the store) already
        // said Provisioning while the watch (the daemon's informer) still started from Pending.
        Service.Seed(new MicroVMSpec { Id = "web1", Kernel = new Kernel { Image = "default" } });
        var pending = Service.Current("default", "web1");
        Service.SetPhase("default", "web1", "Provisioning");
        Service.LagNextWatch(pending, Service.Current("default", "web1"));

        var progress = new List<string>();
        var running = _client.WaitForPhaseAsync("web1", MicroVmPhases.Running, TimeSpan.FromMinutes(1), new SyncProgress(progress));
        await Service.WatchStarted.WaitAsync(Patience);
        // Running only after the client's read that follows the watch's headers (its first read learns the namespace).
        await Eventually(() => Service.ReceivedOf<GetMicroVMRequest>().Count >= 2);
        Service.SetPhase("default", "web1", "Running");
        await running.WaitAsync(Patience);

        progress.Should().Equal("default/web1: Pending", "default/web1: Provisioning", "default/web1: Running");
    }

    [Test]
    public async Task WaitForPhase_VmDeletedWhileWaiting_ThrowsNotFound()
    {
        Service.Seed(new MicroVMSpec { Id = "web1", Kernel = new Kernel { Image = "default" } });
        var waiting = _client.WaitForPhaseAsync("web1", MicroVmPhases.Running, TimeSpan.FromMinutes(1));
        await Service.WatchStarted.WaitAsync(Patience);

        Service.Remove("default", "web1");

        var wait = () => waiting.WaitAsync(Patience);
        (await wait.Should().ThrowAsync<RpcException>()).Which.StatusCode.Should().Be(StatusCode.NotFound);
    }

    [Test]
    public async Task WaitForPhase_WaitingForFailed_ReturnsInsteadOfThrowing()
    {
        Service.Seed(new MicroVMSpec { Id = "web1", Kernel = new Kernel { Image = "default" } });
        Service.SetPhase("default", "web1", "Failed", "Crashed", "exit 1");

        var vm = await _client.WaitForPhaseAsync("web1", MicroVmPhases.Failed, TimeSpan.FromMinutes(1)).WaitAsync(Patience);

        vm.Status.Phase.Should().Be("Failed");
    }

    [Test]
    public async Task StreamLogs_ReturnsChunksInOrder()
    {
        Service.Seed(new MicroVMSpec { Id = "web1", Kernel = new Kernel { Image = "default" } });
        Service.LogChunks = [[1, 2], [3]];

        var chunks = new List<byte[]>();
        await foreach (var chunk in _client.StreamLogsAsync("web1", follow: false))
        {
            chunks.Add(chunk.ToArray());
        }

        chunks.Should().BeEquivalentTo(new[] { new byte[] { 1, 2 }, [3] }, o => o.WithStrictOrdering());
    }

    private static async Task Eventually(Func<bool> condition)
    {
        using var cts = new CancellationTokenSource(Patience);
        while (!condition())
        {
            await Task.Delay(10, cts.Token);
        }
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; a test wants reports in order, as they happen.</summary>
    private sealed class SyncProgress(List<string> lines) : IProgress<string>
    {
        public void Report(string value)
        {
            lock (lines)
            {
                lines.Add(value);
            }
        }
    }
}
