using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests.Hostile;

/// <summary>
/// One daemon per node: a second vistarad on the same state directory, while the first runs a real QEMU guest, must
/// stop at start (exit 2, naming the first one's pid) without touching anything of the first's: the QEMU process,
/// its pid file, QMP socket and console log, the daemon's Unix socket, and the first daemon keeps serving.
/// </summary>
[NonParallelizable]
public sealed class LockHostileTests
{
    [Test]
    public async Task SecondDaemon_OnTheSameStateDir_Exits2NamingTheHolder_AndTouchesNothingOfTheFirst()
    {
        await using var node = await Node.StartAsync();
        try
        {
            var run = await node.VisAsync("run", "--name", "lock-vm", "-o", "json", "--timeout", "2m");
            run.ExitCode.Should().Be(0, run.ToString());
            var vm = VmView.Parse(run.Stdout);
            await Node.WaitForGuestReadyAsync(vm.ConsoleLogPath, Node.Patience);
            var vmDir = Path.Combine(node.RuntimeDir, vm.Uid);
            var pidFile = File.ReadAllText(Path.Combine(vmDir, "vmm.pid"));
            var started = ProcFs.StartTime(vm.Pid);
            var socket = Path.Combine(node.StateDir, "vistarad.sock");
            var socketInode = new FileInfo(socket).LastWriteTimeUtc;
            var consoleLength = new FileInfo(vm.ConsoleLogPath).Length;

            var (code, stdout, stderr) = await DaemonProcess.RunAsync(BuiltPrograms.VistaradDll, Node.Patience,
                "run", "--state-dir", node.StateDir, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
                "--qemu-accel", "tcg", "--node-name", "e2e-node");

            code.Should().Be(2, stderr);
            stderr.Should().Contain($"another vistarad (pid {node.Daemon.Pid})").And.Contain("state-dir");
            stdout.Should().NotContain("vistarad ready");
            ProcFs.IsAlive(vm.Pid).Should().BeTrue("the first daemon's QEMU keeps running");
            ProcFs.StartTime(vm.Pid).Should().Be(started, "it is the same process, not a restarted one");
            File.ReadAllText(Path.Combine(vmDir, "vmm.pid")).Should().Be(pidFile);
            File.Exists(Path.Combine(vmDir, "qmp.sock")).Should().BeTrue("the QMP socket is not removed");
            new FileInfo(vm.ConsoleLogPath).Length.Should().BeGreaterThanOrEqualTo(consoleLength);
            ProcFs.FindByCommandLine(vm.Uid).Should().Equal([vm.Pid], "no second QEMU on the same disks");
            new FileInfo(socket).LastWriteTimeUtc.Should().Be(socketInode, "the first daemon's socket is left alone");
            var after = await node.GetAsync("lock-vm");
            after.Phase.Should().Be("Running");
            after.Pid.Should().Be(vm.Pid);
            using var socketClient = Hypercore.Client.HypercoreClient.Connect("unix://" + socket);
            (await socketClient.Service.GetAsync(new Hypercore.Contracts.VmApi.GetMicroVMRequest { Id = "lock-vm" })).Microvm.Status.Pid.Should().Be(vm.Pid);
        }
        finally
        {
            await node.ForceDeleteAsync("default", "lock-vm");
        }
    }

    [Test]
    public async Task Daemon_AfterTheHolderStops_TakesTheLock()
    {
        var dir = Directory.CreateTempSubdirectory("hc-sec-lock-");
        try
        {
            string[] args = ["run", "--state-dir", dir.FullName, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--qemu-accel", "tcg"];
            await using (var first = DaemonProcess.Start(BuiltPrograms.VistaradDll, args))
            {
                await first.WaitReadyAsync(Node.Patience);
                (await LockHolderAsync(dir.FullName)).Should().Be(first.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
                ProcFs.Kill(first.Pid); // kill -9: the kernel drops the flock with the process
                await first.WaitForExitAsync(Node.Patience);
            }

            await using var second = DaemonProcess.Start(BuiltPrograms.VistaradDll, args);
            await second.WaitReadyAsync(Node.Patience);
            (await LockHolderAsync(dir.FullName)).Should().Be(second.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>The pid written in the lock file, read with cat: .NET's file APIs take a shared flock, which the holder refuses.</summary>
    private static async Task<string> LockHolderAsync(string stateDir)
    {
        using var cat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("cat", Path.Combine(stateDir, "vistarad.lock")) { RedirectStandardOutput = true })!;
        var text = await cat.StandardOutput.ReadToEndAsync();
        await cat.WaitForExitAsync();
        return text.Trim();
    }
}
