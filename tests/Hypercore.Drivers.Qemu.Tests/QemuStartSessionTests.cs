using System.Net.Sockets;
using System.Text;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// Issue 15 (density): a start talks to QEMU in one QMP session. QEMU serves one client at a time and, while its TCG
/// guest boots, takes seconds to accept the next, so a second session per start slowed 100 starts at once. The
/// "QEMU" here is a shell loop carrying QEMU's argv (so the driver's pid and argv checks hold) and the QMP socket is
/// served by the test, which counts the sessions.
/// </summary>
public sealed class QemuStartSessionTests
{
    private const string Greeting = """{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": ""}, "capabilities": []}}""";

    [Test]
    public async Task Start_ReportsTheStatusOfTheFirstQmpAnswer_WithoutASecondSession()
    {
        using var bed = new QemuTestBed();
        var fake = Path.Combine(bed.RuntimeDirectory, "fake-qemu");
        await File.WriteAllTextAsync(fake, "#!/bin/sh\nwhile :; do sleep 1; done\n");
        File.SetUnixFileMode(fake, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var driver = bed.Driver(o => o.BinaryPath = fake);
        var vm = QemuTestBed.Vm("one-session");
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var sessions = 0;
        var server = Task.Run(async () =>
        {
            // Bound once the driver has launched: it removes a stale socket before the launch and writes vm.json after.
            while (!File.Exists(Path.Combine(bed.VmDir(vm), "vm.json")))
            {
                await Task.Delay(10, stop.Token);
            }

            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(bed.VmDir(vm), "qmp.sock")));
            listener.Listen(8);
            while (true)
            {
                using var conn = await listener.AcceptAsync(stop.Token);
                Interlocked.Increment(ref sessions);
                using var stream = new NetworkStream(conn, ownsSocket: false);
                using var reader = new StreamReader(stream);
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

        try
        {
            var info = await driver.StartAsync(vm, stop.Token);

            info.State.Should().Be(LiveState.Running);
            info.Pid.Should().BeGreaterThan(0);
            Volatile.Read(ref sessions).Should().Be(1, "the status of the answer the start waited for is the start's result");
        }
        finally
        {
            await driver.CleanupAsync(vm, CancellationToken.None);
            await stop.CancelAsync();
            await server.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        Directory.Exists(bed.VmDir(vm)).Should().BeFalse("cleanup removes the VM directory");
    }
}
