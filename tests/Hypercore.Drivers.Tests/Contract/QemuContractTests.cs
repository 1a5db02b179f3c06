using Hypercore.Drivers.Qemu;
using Hypercore.Drivers.Tests.Support;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Contract;

/// <summary>
/// The QEMU driver against real QEMU (TCG: nested KVM hangs guests here) booting the default guest image (Debian
/// cloud kernel + busybox initramfs). The hypervisor's view is QEMU's own command line.
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class QemuContractTests : DriverContractTests
{
#pragma warning disable NUnit1032 // disposed in DisposeBedAsync, which the base class's [TearDown] calls
    private Scratch Bed { get; set; } = null!;
#pragma warning restore NUnit1032
    private readonly List<QemuDriver> _drivers = [];

    protected override async Task SetUpBedAsync()
    {
        Bed = new Scratch();
        GuestDirectory = await Hypercore.Testing.GuestImage.EnsureAsync();
    }

    private string GuestDirectory { get; set; } = "";

    protected override async Task DisposeBedAsync()
    {
        foreach (var driver in _drivers)
        {
            driver.Dispose();
        }

        _drivers.Clear();
        foreach (var pid in ProcessesMentioning(Bed.RuntimeDirectory))
        {
            await Hypercore.Drivers.Vmm.HostProcess.KillAsync(pid, TimeProvider.System, CancellationToken.None);
        }

        await Bed.DisposeAsync();
    }

    protected override IHypervisorDriver CreateDriver()
    {
        var driver = new QemuDriver(
            Options.Create(new QemuOptions { RuntimeDirectory = Bed.RuntimeDirectory, Accelerator = "tcg", StartTimeout = TimeSpan.FromSeconds(120) }),
            TimeProvider.System,
            NullLogger<QemuDriver>.Instance);
        _drivers.Add(driver);
        return driver;
    }

    protected override MicroVm NewVm(string id, Func<MicroVmSpec, MicroVmSpec>? change = null) =>
        Bed.Vm(id, s =>
        {
            var spec = s with
            {
                Vcpu = 1,
                MemoryInMb = 256,
                Kernel = new KernelSpec { Image = Path.Combine(GuestDirectory, "vmlinuz") },
                Initrd = new InitrdSpec { Image = Path.Combine(GuestDirectory, "initrd.img") },
                RootVolume = null,
            };
            return change is null ? spec : change(spec);
        });

    protected override string VmDirectory(MicroVm vm) => Bed.VmDirectory(vm);

    protected override (string Directory, string FileName) KernelInDirectory()
    {
        var directory = Directory.CreateDirectory(Path.Combine(Bed.Images, "named")).FullName;
        File.Copy(Path.Combine(GuestDirectory, "vmlinuz"), Path.Combine(directory, "vmlinuz-6.1-cloud"));
        return (directory, "vmlinuz-6.1-cloud");
    }

    protected override string NewDiskFile(string name)
    {
        var path = Path.Combine(Bed.Images, name);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        file.SetLength(1024 * 1024);
        return path;
    }

    /// <summary>The image's /init prints its ready line once it listens for the ACPI power button.</summary>
    protected override Task WaitForGuestAsync(MicroVm vm) =>
        Eventually.TrueAsync(
            () => Eventually.Read(Driver.ConsoleLogPath(vm)).Contains(Hypercore.Testing.GuestImage.ReadyLine, StringComparison.Ordinal),
            Patience,
            "the guest's ready line");

    /// <summary>
    /// Not part of the contract (only QEMU runs a real guest here): a guest whose init exits panics ("Attempted to
    /// kill init!"); with panic=-1 and -no-reboot that ends the VM like a power-off, and only the console tells.
    /// </summary>
    [Test]
    public async Task Inspect_GuestKernelPanics_ReportsCrashedWithThePanicLineFromTheConsole()
    {
        // busybox run as itself with no applet prints its usage and exits: PID 1 exits, the kernel panics.
        var vm = NewVm("panic", s => s with { Kernel = s.Kernel with { Cmdline = new Dictionary<string, string> { ["rdinit"] = "/bin/busybox" } } });
        await Driver.StartAsync(vm);

        var info = await WaitForStateAsync(vm, LiveState.Exited);

        info.Exit.Should().Be(ExitKind.Crashed, info.Detail);
        info.Detail.Should().Contain("guest kernel panic: Kernel panic - not syncing: Attempted to kill init!");
        Eventually.Read(Driver.ConsoleLogPath(vm)).Should().Contain("Kernel panic - not syncing: Attempted to kill init!");
    }

    /// <summary>
    /// The image's /init loads the guest's pvpanic driver; a panic then reaches QEMU through the pvpanic device
    /// (status guest-panicked, not the shutdown a panic reboot becomes), and the panic line still comes from the console.
    /// </summary>
    [Test]
    public async Task Inspect_GuestPanicsWithPvpanicLoaded_QemuSaysGuestPanicked_AndTheVmIsCrashed()
    {
        var vm = NewVm("pvpanic", s => s with { Kernel = s.Kernel with { Cmdline = new Dictionary<string, string> { ["hypercore.panic"] = "" } } });
        await Driver.StartAsync(vm);

        var info = await WaitForStateAsync(vm, LiveState.Exited);

        info.Exit.Should().Be(ExitKind.Crashed, info.Detail);
        info.Detail.Should().Contain("guest kernel panic: Kernel panic - not syncing: sysrq triggered crash");
        (await QmpStatusAsync(Path.Combine(VmDirectory(vm), "qmp.sock"))).Should().Be("guest-panicked", "QEMU heard of the panic through pvpanic");
    }

    [Test]
    public async Task Inspect_GuestPowersOff_ReportsGuestShutdownNotACrash()
    {
        var vm = NewVm("poweroff", s => s with { Kernel = s.Kernel with { Cmdline = new Dictionary<string, string> { ["hypercore.poweroff"] = "0" } } });
        await Driver.StartAsync(vm);

        var info = await WaitForStateAsync(vm, LiveState.Exited);

        info.Exit.Should().Be(ExitKind.GuestShutdown, info.Detail);
        info.Detail.Should().NotContain("panic");
    }

    /// <summary>QEMU's own query-status over the VM's QMP socket (skipping any event lines).</summary>
    private static async Task<string> QmpStatusAsync(string socketPath)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath), cts.Token);
        await using var stream = new System.Net.Sockets.NetworkStream(socket);
        using var reader = new StreamReader(stream);
        await using var writer = new StreamWriter(stream) { AutoFlush = true };
        await writer.WriteLineAsync("{\"execute\":\"qmp_capabilities\"}");
        await writer.WriteLineAsync("{\"execute\":\"query-status\"}");
        while (await reader.ReadLineAsync(cts.Token) is { } line)
        {
            if (System.Text.Json.Nodes.JsonNode.Parse(line)?["return"]?["status"] is { } status)
            {
                return status.GetValue<string>();
            }
        }

        throw new AssertionException("QMP closed before answering query-status");
    }

    protected override Task<VmmView> ReadVmmAsync(MicroVm vm, VmRuntimeInfo info) =>
        Task.FromResult(ReadQemuCommandLine(info.Pid!.Value, _ => false));
}
