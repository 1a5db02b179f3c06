using System.Text;
using Grpc.Core;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Cli.Tests.Commands;

public sealed class LifecycleCommandTests : FakeDaemonTest
{
    [SetUp]
    public void SeedRunningVm() =>
        Service.Seed(new MicroVMSpec { Id = "web1", Namespace = "default", Kernel = new Kernel { Image = "default" } }, phase: "Running");

    [Test]
    public async Task Stop_NoWait_SetsDesiredStateAndReturns()
    {
        var result = await Vis("stop", "web1");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Out.Should().Be("default/web1: stop requested (desired state Stopped)\n");
        Service.ReceivedOf<LifecycleRequest>().Should().ContainSingle().Which.Should().Be(new LifecycleRequest { Id = "web1" });
        Service.Find("default", "web1")!.Spec.State.Should().Be("Stopped");
    }

    [Test]
    public async Task Stop_Wait_IgnoresStaleRunningAndWaitsForStopped()
    {
        var (exit, output, error) = StartVis("stop", "web1", "--wait");
        await Service.WatchStarted.WaitAsync(Patience);
        exit.IsCompleted.Should().BeFalse();

        Service.SetPhase("default", "web1", "Stopped");

        (await Finished(exit)).Should().Be(0, error.ToString());
        output.ToString().Should().Be("default/web1: Stopped\n");
    }

    [Test]
    public async Task Pause_Wait_FallsBackToPollingWhenWatchIsUnimplemented()
    {
        Service.WatchUnimplemented = true;
        var (exit, output, error) = StartVis("pause", "web1", "--wait", "-o", "json");
        await Eventually(() => Service.ReceivedOf<WatchMicroVMsRequest>().Count == 1, "the watch attempt");
        Service.SetPhase("default", "web1", "Paused");
        var getsBefore = Service.ReceivedOf<GetMicroVMRequest>().Count;

        // The poll interval runs on the fake clock: step it until the CLI has polled and seen Paused.
        for (var step = 0; step < 1000 && !exit.IsCompleted; step++)
        {
            Time.Advance(TimeSpan.FromSeconds(1));
            await Task.WhenAny(exit, Task.Delay(50));
        }

        (await Finished(exit)).Should().Be(0, error.ToString());
        Service.ReceivedOf<GetMicroVMRequest>().Count.Should().BeGreaterThan(getsBefore);
        Google.Protobuf.JsonParser.Default.Parse<MicroVM>(output.ToString()).Status.Phase.Should().Be("Paused");
    }

    [Test]
    public async Task Pause_DaemonRefuses_ExitsFailedPrecondition()
    {
        Service.FailNextLifecycle = new Status(StatusCode.FailedPrecondition, "provider unikernel cannot pause");

        var result = await Vis("pause", "web1");

        result.ExitCode.Should().Be(ExitCodes.FailedPrecondition, result.ToString());
        result.Err.Should().Be("vis: provider unikernel cannot pause\n");
    }

    [Test]
    public async Task Start_Missing_ExitsNotFound()
    {
        var result = await Vis("start", "ghost", "--wait");

        result.ExitCode.Should().Be(ExitCodes.NotFound, result.ToString());
    }

    [Test]
    public async Task Delete_Wait_ReturnsOnceRecordIsGone()
    {
        var (exit, output, error) = StartVis("delete", "web1", "-n", "default", "--wait");
        await Service.WatchStarted.WaitAsync(Patience);
        await Eventually(() => error.ToString().Contains("default/web1: Deleting"), "the state read after subscribing");
        exit.IsCompleted.Should().BeFalse("the record is still there");

        Service.Remove("default", "web1");

        (await Finished(exit)).Should().Be(0, error.ToString());
        output.ToString().Should().Be("default/web1 deleted\n");
        error.ToString().Should().Contain("default/web1: Deleting").And.Contain("default/web1: deleted");
        Service.ReceivedOf<DeleteMicroVMRequest>().Should().ContainSingle().Which.Should().Be(new DeleteMicroVMRequest { Id = "web1", Namespace = "default" });
    }

    [Test]
    public async Task Delete_Wait_DeletionFinishesBeforeTheWatchSubscribes_ReturnsAtOnce()
    {
        // The reconciler removes the record after vis sent Delete but before its Watch is subscribed: no DELETED
        // event will ever come, so only a read of the current state after subscribing can end the wait.
        Service.BeforeWatchSubscribes = () => Service.Remove("default", "web1");

        var result = await Vis("delete", "web1", "--wait", "--timeout", "30s");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Out.Should().Be("web1 deleted\n");
        Time.GetUtcNow().Should().Be(new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero), "nothing waited for a poll or a timeout");
    }

    [Test]
    public async Task Stop_Wait_ReachedStoppedBeforeTheWatchSubscribes_ReturnsAtOnce()
    {
        Service.BeforeWatchSubscribes = () => Service.SetPhase("default", "web1", "Stopped");

        var result = await Vis("stop", "web1", "-n", "default", "--wait", "--timeout", "30s");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Out.Should().Be("default/web1: Stopped\n");
    }

    [Test]
    public async Task Logs_Tail_DecodesUtf8SplitAcrossChunks()
    {
        var bytes = Encoding.UTF8.GetBytes("boot ✓\nHYPERCORE-GUEST-READY\n");
        var split = Array.IndexOf(bytes, (byte)0x9C); // inside the three bytes of ✓
        Service.LogChunks = [bytes[..split], bytes[split..]];

        var result = await Vis("logs", "web1", "--tail", "20");

        result.ExitCode.Should().Be(0, result.ToString());
        result.Out.Should().Be("boot ✓\nHYPERCORE-GUEST-READY\n");
        Service.ReceivedOf<LogsRequest>().Should().ContainSingle().Which.Should().Be(new LogsRequest { Id = "web1", TailLines = 20 });
    }

    [Test]
    public async Task Logs_NegativeTail_ExitsUsage()
    {
        var result = await Vis("logs", "web1", "--tail", "-1");

        result.ExitCode.Should().Be(ExitCodes.Usage, result.ToString());
        Service.ReceivedOf<LogsRequest>().Should().BeEmpty();
    }
}
