using System.Collections.Concurrent;
using Hypercore.Drivers.Vmm.Qmp;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>Issue 15 (idle4): a session that follows events, against the scripted server.</summary>
public sealed partial class QmpClientTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Test]
    public async Task FollowEvents_EventWithNoCommandPending_IsReportedAsItArrives()
    {
        var sendEvent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var server = Serve(async (reader, writer) =>
        {
            await sendEvent.Task;
            await writer("""{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "STOP"}""");
            (await reader()).Should().Contain("\"execute\":\"query-status\"");
            await writer("""{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 4}}""");
            await writer("""{"return": {"status": "running", "singlestep": false, "running": true}, "id": "hc-2"}""");
            await reader(); // until the client closes
        });

        await using var qmp = await QmpClient.ConnectAsync(_socket, TimeProvider.System, Patience, CancellationToken.None);
        var events = new ConcurrentQueue<string>();
        var stopSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        qmp.FollowEvents(name =>
        {
            events.Enqueue(name);
            stopSeen.TrySetResult();
        });
        sendEvent.SetResult();

        await stopSeen.Task.WaitAsync(Patience); // no command was sent: only the reading loop can have seen it
        events.Should().Equal("STOP");
        (await qmp.QueryStatusAsync(CancellationToken.None)).Should().Be("running");
        events.Should().Equal("STOP", "RESUME");
        qmp.IsFollowing.Should().BeTrue();
        await qmp.DisposeAsync();
        qmp.IsFollowing.Should().BeFalse();
        await server;
    }

    [Test]
    public async Task FollowEvents_ReplyToAnAbandonedCommand_IsNotTakenForTheNextOnesReply()
    {
        var server = Serve(async (reader, writer) =>
        {
            await reader(); // hc-2: answered only after the client gave up on it
            (await reader()).Should().Contain("\"id\":\"hc-3\"");
            await writer("""{"return": {"status": "paused", "singlestep": false, "running": false}, "id": "hc-2"}""");
            await writer("""{"return": {"status": "running", "singlestep": false, "running": true}, "id": "hc-3"}""");
            await reader();
        });

        await using var qmp = await QmpClient.ConnectAsync(_socket, TimeProvider.System, TimeSpan.FromMilliseconds(300), CancellationToken.None);
        qmp.FollowEvents(_ => { });
        var late = () => qmp.QueryStatusAsync(CancellationToken.None);
        (await late.Should().ThrowAsync<QmpException>()).Which.ErrorClass.Should().Be("Timeout");

        (await qmp.QueryStatusAsync(CancellationToken.None)).Should().Be("running");
        await qmp.DisposeAsync();
        await server;
    }

    [Test]
    public async Task FollowEvents_ConnectionClosedByQemu_CommandsFailAsDisconnectedNotAfterTheTimeout()
    {
        var server = Serve((_, _) => Task.CompletedTask); // greets, then hangs up

        // A timeout far longer than the test's own: a command that waited for it would report Timeout, not Disconnected.
        await using var qmp = await QmpClient.ConnectAsync(_socket, TimeProvider.System, TimeSpan.FromMinutes(10), CancellationToken.None);
        qmp.FollowEvents(_ => { });
        await server;
        var deadline = DateTime.UtcNow + Patience;
        while (qmp.IsFollowing && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        qmp.IsFollowing.Should().BeFalse("the reading loop saw the end of the connection");
        var act = () => qmp.QueryStatusAsync(CancellationToken.None).WaitAsync(Patience);
        (await act.Should().ThrowAsync<QmpException>()).Which.ErrorClass.Should().Be("Disconnected");
    }

    [Test]
    public async Task FollowEvents_Twice_IsRefused()
    {
        var server = Serve(async (reader, _) => await reader());
        await using var qmp = await QmpClient.ConnectAsync(_socket, TimeProvider.System, Patience, CancellationToken.None);
        qmp.FollowEvents(_ => { });

        var again = () => qmp.FollowEvents(_ => { });

        again.Should().Throw<InvalidOperationException>();
        await qmp.DisposeAsync();
        await server;
    }
}
