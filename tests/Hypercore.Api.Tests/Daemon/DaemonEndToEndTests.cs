using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Testing;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>
/// The whole node with a real QEMU (TCG): create over gRPC by image name, the guest boots and its console streams;
/// SIGTERM leaves the VM running and the next daemon adopts it (same pid); delete removes process and files.
/// </summary>
[NonParallelizable]
public sealed class DaemonEndToEndTests : GuestStateDirTest
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    private DaemonProcess StartDaemon() => DaemonProcess.Start(
        DaemonProcessTests.Vistarad,
        "run", "--state-dir", StateDir, "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0",
        "--qemu-accel", "tcg", "--node-name", "e2e-node");

    private static async Task<MicroVM> WaitForAsync(VMService.VMServiceClient client, Func<MicroVM, bool> condition, string what)
    {
        using var cts = new CancellationTokenSource(Patience);
        MicroVM? last = null;
        while (!cts.IsCancellationRequested)
        {
            last = (await client.GetAsync(new GetMicroVMRequest { Id = "web1", Namespace = "demo" })).Microvm;
            if (condition(last))
            {
                return last;
            }

            await Task.Delay(250);
        }

        throw new AssertionException($"timed out waiting for {what}; last status: {last?.Status}");
    }

    [Test]
    public async Task Daemon_BootsAdoptsAcrossRestartAndDeletes()
    {
        int pid;
        string uid;
        string vmDir;
        await using (var daemon = StartDaemon())
        {
            var (grpc, _) = await daemon.WaitReadyAsync(Patience);
            using var channel = GrpcChannel.ForAddress(grpc);
            var client = new VMService.VMServiceClient(channel);

            var created = await client.CreateAsync(new CreateMicroVMRequest
            {
                Microvm = new MicroVMSpec { Id = "web1", Namespace = "demo", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "default" } },
            });
            uid = created.Microvm.Spec.Uid;
            var running = await WaitForAsync(client, v => v.Status.Phase == "Running" && v.Status.Pid > 0, "phase Running");
            pid = running.Status.Pid;
            GuestPids.Add(pid);
            vmDir = Path.Combine(StateDir, "run", "qemu", uid);

            using var logs = new CancellationTokenSource(Patience);
            using var call = client.Logs(new LogsRequest { Id = "web1", Namespace = "demo", Follow = true }, cancellationToken: logs.Token);
            var console = new StringBuilder();
            while (!console.ToString().Contains("HYPERCORE-GUEST-READY", StringComparison.Ordinal))
            {
                (await call.ResponseStream.MoveNext(logs.Token)).Should().BeTrue();
                console.Append(Encoding.UTF8.GetString(call.ResponseStream.Current.Data.Span));
            }

            await logs.CancelAsync();
            daemon.Signal("TERM");
            (await daemon.WaitForExitAsync(Patience)).Should().Be(0, daemon.Stderr);
        }

        ProcFs.IsAlive(pid).Should().BeTrue("stopping the daemon leaves VMs running");

        await using (var daemon = StartDaemon())
        {
            var (grpc, http) = await daemon.WaitReadyAsync(Patience);
            using var channel = GrpcChannel.ForAddress(grpc);
            var client = new VMService.VMServiceClient(channel);

            // The record still says Running from the first run, so wait for the new reconciler's own word.
            using (var adoption = new CancellationTokenSource(Patience))
            {
                while (!daemon.Stderr.Contains("demo/web1: adopted running qemu instance", StringComparison.Ordinal))
                {
                    await Task.Delay(100, adoption.Token);
                }
            }

            var adopted = await WaitForAsync(client, v => v.Status.Phase == "Running", "phase Running after restart");
            adopted.Status.Pid.Should().Be(pid, "the running QEMU is adopted, not restarted");
            adopted.Spec.Uid.Should().Be(uid);
            ProcFs.IsAlive(pid).Should().BeTrue();

            using var httpClient = new HttpClient { BaseAddress = new Uri(http) };
            (await httpClient.DeleteAsync("/v1/microvms/web1?namespace=demo")).EnsureSuccessStatusCode();
            await WaitUntilGoneAsync(client, uid, Patience);

            daemon.Signal("TERM");
            (await daemon.WaitForExitAsync(Patience)).Should().Be(0, daemon.Stderr);
        }

        ProcFs.IsAlive(pid).Should().BeFalse("delete stops the VM");
        Directory.Exists(vmDir).Should().BeFalse("delete removes the VM's runtime files");
    }

    [Test]
    public async Task Daemon_VistaraDisk_BootsWithASparseScratchDiskThatDeleteRemoves()
    {
        await using var daemon = StartDaemon();
        var (grpc, _) = await daemon.WaitReadyAsync(Patience);
        using var channel = GrpcChannel.ForAddress(grpc);
        var vistara = new Contracts.Vistara.Vistara.VistaraClient(channel);
        var client = new VMService.VMServiceClient(channel);

        var created = await vistara.CreateMicroVMAsync(new Contracts.Vistara.CreateMicroVMRequest { Name = "web1", Image = "default", Disk = 16 });
        using var cts = new CancellationTokenSource(Patience);
        MicroVM vm;
        do
        {
            await Task.Delay(250, cts.Token);
            vm = (await client.GetAsync(new GetMicroVMRequest { Uid = created.Id })).Microvm;
        }
        while (vm.Status.Phase != "Running");

        GuestPids.Add(vm.Status.Pid);
        var vmDir = Path.Combine(StateDir, "run", "qemu", created.Id);
        Directory.EnumerateFiles(vmDir).Select(f => new FileInfo(f).Length).Should().Contain(16L * 1024 * 1024, "the scratch disk is a file in the VM's directory");
        (await vistara.GetMicroVMAsync(new Contracts.Vistara.GetMicroVMRequest { Id = created.Id })).Disk.Should().Be(16);

        await vistara.DeleteMicroVMAsync(new Contracts.Vistara.DeleteMicroVMRequest { Id = created.Id });
        while (Directory.Exists(vmDir))
        {
            await Task.Delay(250, cts.Token);
        }

        ProcFs.IsAlive(vm.Status.Pid).Should().BeFalse();
    }
}
