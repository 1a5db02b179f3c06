using System.Net.Sockets;
using System.Text;
using Hypercore.Drivers.Vmm.Qmp;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>The QMP client against a scripted server on a real Unix socket (protocol edge cases QEMU rarely shows).</summary>
public sealed partial class QmpClientTests
{
    private const string Greeting = """{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}""";

    private string _dir = null!;
    private string _socket = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine("/tmp", "hcqmp-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_dir);
        _socket = Path.Combine(_dir, "qmp.sock");
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task Execute_EventsBetweenReplies_AreSkipped()
    {
        var server = Serve(async (reader, writer) =>
        {
            await writer("""{"event": "RESUME", "timestamp": {"seconds": 1, "microseconds": 2}}""");
            var request = await reader();
            request.Should().Contain("\"execute\":\"query-status\"");
            await writer("""{"timestamp": {"seconds": 1, "microseconds": 3}, "event": "STOP"}""");
            await writer("""{"return": {"status": "paused", "singlestep": false, "running": false}, "id": "hc-2"}""");
        });

        await using var qmp = await QmpClient.ConnectAsync(_socket, TimeProvider.System, TimeSpan.FromSeconds(10), CancellationToken.None);
        var status = await qmp.QueryStatusAsync(CancellationToken.None);

        qmp.Version.Should().Be("7.2.22");
        status.Should().Be("paused");
        await server;
    }

    [Test]
    public async Task Execute_ErrorReply_ThrowsWithClassAndDescription()
    {
        var server = Serve(async (reader, writer) =>
        {
            await reader();
            await writer("""{"id": "hc-2", "error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}}""");
        });

        await using var qmp = await QmpClient.ConnectAsync(_socket, TimeProvider.System, TimeSpan.FromSeconds(10), CancellationToken.None);
        var act = () => qmp.ExecuteAsync("nope", null, CancellationToken.None);

        var error = (await act.Should().ThrowAsync<QmpException>()).Which;
        error.ErrorClass.Should().Be("CommandNotFound");
        error.Message.Should().Be("nope: The command nope has not been found");
        await server;
    }

    [Test]
    public async Task Execute_NoReply_TimesOut()
    {
        var server = Serve(async (reader, _) =>
        {
            await reader();
            await Task.Delay(2000); // never answers
        });

        await using var qmp = await QmpClient.ConnectAsync(_socket, TimeProvider.System, TimeSpan.FromMilliseconds(300), CancellationToken.None);
        var act = () => qmp.QueryStatusAsync(CancellationToken.None);

        (await act.Should().ThrowAsync<QmpException>()).Which.ErrorClass.Should().Be("Timeout");
        await server;
    }

    [Test]
    public async Task Connector_NoSocket_RetriesThenReportsUnreachable()
    {
        var connector = new QmpConnector(TimeProvider.System, TimeSpan.FromMilliseconds(200), maxRetries: 2);

        var act = () => connector.ConnectAsync(_socket, CancellationToken.None);

        (await act.Should().ThrowAsync<QmpException>()).Which.ErrorClass.Should().Be("Unreachable");
    }

    [Test]
    public async Task WaitUntilAnswers_SocketCreatedLate_AnswersOnTheNextPollWithoutBackoff()
    {
        // Fake clock: only the poll interval passes after the socket appears, far less than any retry backoff.
        var time = new FakeTimeProvider();
        var control = new QmpControl(time, TimeSpan.FromSeconds(5));
        var wait = control.WaitUntilAnswersAsync(_socket, Environment.ProcessId, "qemu", Path.Combine(_dir, "qemu.log"), TimeSpan.FromMinutes(1), CancellationToken.None);
        for (var i = 0; i < 5; i++)
        {
            time.Advance(QmpControl.SocketPollInterval); // QEMU still starting: no socket yet
            await Task.Delay(20);
        }

        wait.IsCompleted.Should().BeFalse("there is no socket to answer yet");
        var server = Serve(async (reader, writer) =>
        {
            (await reader()).Should().Contain("query-status");
            await writer("""{"return": {"status": "running", "singlestep": false, "running": true}, "id": "hc-2"}""");
        });

        // The waiter may be between two checks: a few poll intervals, never a backoff step (100 ms and up).
        for (var i = 0; i < 3 && !wait.IsCompleted; i++)
        {
            time.Advance(QmpControl.SocketPollInterval);
            await Task.WhenAny(wait, Task.Delay(1000));
        }

        wait.IsCompleted.Should().BeTrue("QMP answered right after the socket appeared");
        await wait;
        await server;
    }

    [Test]
    public async Task WaitUntilAnswers_GreetingSlowerThanTheCommandTimeout_WaitsOnTheSameConnection()
    {
        var accepted = 0;
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(_socket));
        listener.Listen(8);
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var server = Task.Run(async () =>
        {
            using (listener)
            {
                while (true)
                {
                    var conn = await listener.AcceptAsync(stop.Token);
                    if (Interlocked.Increment(ref accepted) > 1)
                    {
                        conn.Dispose();
                        continue;
                    }

                    _ = Task.Run(async () =>
                    {
                        using (conn)
                        using (var stream = new NetworkStream(conn, ownsSocket: false))
                        using (var reader = new StreamReader(stream))
                        {
                            await Task.Delay(800, stop.Token); // a busy QEMU's main loop: the greeting comes late
                            await stream.WriteAsync(Encoding.UTF8.GetBytes(Greeting + "\r\n"), stop.Token);
                            while (await reader.ReadLineAsync(stop.Token) is { } line)
                            {
                                var reply = line.Contains("query-status", StringComparison.Ordinal)
                                    ? """{"return": {"status": "running", "singlestep": false, "running": true}}"""
                                    : """{"return": {}}""";
                                await stream.WriteAsync(Encoding.UTF8.GetBytes(reply + "\r\n"), stop.Token);
                            }
                        }
                    });
                }
            }
        });
        var control = new QmpControl(TimeProvider.System, TimeSpan.FromMilliseconds(200));

        var status = await control.WaitUntilAnswersAsync(_socket, Environment.ProcessId, "qemu", Path.Combine(_dir, "qemu.log"), TimeSpan.FromMinutes(1), CancellationToken.None);

        status.Should().Be("running");
        Volatile.Read(ref accepted).Should().Be(1, "the first connection waits for the greeting; giving up and connecting again would leave QEMU a dead client to greet first");
        await stop.CancelAsync();
        await server.ContinueWith(_ => { }, TaskScheduler.Default);
    }

    [Test]
    public async Task WaitUntilAnswers_ProcessGone_FailsWithItsOutput()
    {
        var log = Path.Combine(_dir, "qemu.log");
        await File.WriteAllTextAsync(log, "qemu-system-x86_64: -kernel /nope: could not open kernel file\n");
        using var exited = System.Diagnostics.Process.Start("true")!;
        await exited.WaitForExitAsync();
        var control = new QmpControl(TimeProvider.System, TimeSpan.FromSeconds(5));

        var act = () => control.WaitUntilAnswersAsync(_socket, exited.Id, "qemu", log, TimeSpan.FromMinutes(1), CancellationToken.None);

        var error = (await act.Should().ThrowAsync<DriverException>()).Which;
        error.Reason.Should().Be("HypervisorError");
        error.Message.Should().Contain("qemu exited during start").And.Contain("could not open kernel file");
    }

    [Test]
    public async Task WaitUntilAnswers_NoSocketUntilTheDeadline_ReportsStartTimeout()
    {
        var control = new QmpControl(TimeProvider.System, TimeSpan.FromSeconds(5));

        var act = () => control.WaitUntilAnswersAsync(_socket, Environment.ProcessId, "qemu", Path.Combine(_dir, "qemu.log"), TimeSpan.FromMilliseconds(200), CancellationToken.None);

        var error = (await act.Should().ThrowAsync<DriverException>()).Which;
        error.Reason.Should().Be("StartTimeout");
        error.Message.Should().Contain("did not answer within").And.Contain("the socket was never created");
    }

    /// <summary>
    /// With qemu-user, QMP's socket directory (vmm/) is QEMU's to write: a QEMU its guest took over could swap qmp.sock
    /// for a link to any socket on the host, which the daemon (root) would then connect to and talk QMP with.
    /// </summary>
    [Test]
    public async Task Connector_SocketPathIsALinkToAnotherQmpServer_RefusedAtOnce_ThatServerSeesNoClient()
    {
        var elsewhere = Path.Combine(_dir, "host.sock");
        using var listener = Listen(elsewhere);
        File.CreateSymbolicLink(_socket, elsewhere);
        var connector = new QmpConnector(TimeProvider.System, TimeSpan.FromSeconds(5), maxRetries: 4);
        var watch = System.Diagnostics.Stopwatch.StartNew();

        var act = () => connector.ConnectAsync(_socket, CancellationToken.None);

        var error = (await act.Should().ThrowAsync<QmpException>()).Which;
        error.ErrorClass.Should().Be("Refused");
        error.Message.Should().Contain($"{_socket} is a symbolic link");
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(4), "refused before any wait for a greeting (5 s per attempt, four retries)");
        listener.Poll(200_000, SelectMode.SelectRead).Should().BeFalse("the link's target never saw a connection");
    }

    [Test]
    public async Task WaitUntilAnswers_SocketHardLinkedToAnotherVmsQmp_FailsAtOnceWithHypervisorError_NotAStartTimeout()
    {
        var otherVm = Path.Combine(_dir, "other-qmp.sock");
        using var listener = Listen(otherVm);
        using (var ln = System.Diagnostics.Process.Start("ln", [otherVm, _socket]))
        {
            await ln.WaitForExitAsync();
            ln.ExitCode.Should().Be(0);
        }

        var control = new QmpControl(TimeProvider.System, TimeSpan.FromSeconds(5));

        var watch = System.Diagnostics.Stopwatch.StartNew();

        var act = () => control.WaitUntilAnswersAsync(_socket, Environment.ProcessId, "qemu", Path.Combine(_dir, "qemu.log"), TimeSpan.FromSeconds(15), CancellationToken.None);

        var error = (await act.Should().ThrowAsync<DriverException>()).Which;
        watch.Elapsed.Should().BeLessThan(TimeSpan.FromSeconds(5), "waiting for the start timeout does not undo a planted link");
        error.Reason.Should().Be("HypervisorError");
        error.Message.Should().Contain("qemu: ").And.Contain("is a socket with 2 hard links");
        listener.Poll(200_000, SelectMode.SelectRead).Should().BeFalse("the other VM's QEMU never saw a connection");
    }

    /// <summary>A socket nobody answers on: whether anyone connected shows as a pending accept (Poll).</summary>
    private static Socket Listen(string path)
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(4);
        return listener;
    }

    /// <summary>Accepts one client, sends the greeting, answers qmp_capabilities, then runs the script.</summary>
    private Task Serve(Func<Func<Task<string>>, Func<string, Task>, Task> script)
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(_socket));
        listener.Listen(1);
        return Task.Run(async () =>
        {
            using (listener)
            using (var conn = await listener.AcceptAsync())
            using (var stream = new NetworkStream(conn, ownsSocket: false))
            using (var reader = new StreamReader(stream))
            {
                async Task Write(string line) => await stream.WriteAsync(Encoding.UTF8.GetBytes(line + "\r\n"));
                async Task<string> Read() => await reader.ReadLineAsync() ?? "";
                await Write(Greeting);
                (await Read()).Should().Contain("qmp_capabilities");
                await Write("""{"return": {}, "id": "hc-1"}""");
                await script(Read, Write);
            }
        });
    }
}
