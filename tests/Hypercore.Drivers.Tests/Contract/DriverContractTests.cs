using Hypercore.Testing;
using System.Diagnostics;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Tests.Contract;

/// <summary>What the hypervisor itself was told, read back from it (its command line or its API), not from the driver.</summary>
public sealed record VmmView(string Kernel, IReadOnlyList<VmmDisk> Disks, IReadOnlyList<string> Taps);

public sealed record VmmDisk(string Path, bool ReadOnly);

/// <summary>
/// What every <see cref="IHypervisorDriver"/> must do, whatever the hypervisor: start, inspect, pause, resume, stop
/// and clean up (each idempotent), adoption by a fresh driver instance, crash detection, scratch disks, extra and
/// read-only volumes, <c>kernel.filename</c>, a missing kernel as a clear <see cref="DriverException"/>, and
/// capabilities declared = capabilities that work. Uses only the port; what the hypervisor was really told is read
/// back from it by the subclass (<see cref="ReadVmmAsync"/>).
/// </summary>
/// <remarks>
/// A subclass supplies a bootable VM (<see cref="NewVm"/>), a way to make a fresh driver over the same runtime
/// directory (<see cref="CreateDriver"/>), and its own cleanup in <see cref="DisposeBedAsync"/>, which must kill
/// every process it may have left even when a test failed halfway. A case that fails for a driver is a gap in that
/// driver, never a reason to weaken the case.
/// </remarks>
public abstract class DriverContractTests
{
    /// <summary>Real QEMU under TCG on a shared machine: generous, and never an assertion about speed.</summary>
    protected static readonly TimeSpan Patience = TimeSpan.FromSeconds(180);

    protected IHypervisorDriver Driver { get; private set; } = null!;

    /// <summary>A new driver instance over the same runtime directory (as after a daemon restart).</summary>
    protected abstract IHypervisorDriver CreateDriver();

    protected abstract Task SetUpBedAsync();

    protected abstract Task DisposeBedAsync();

    /// <summary>A VM with a fresh uid that boots on this driver as it is.</summary>
    protected abstract MicroVm NewVm(string id, Func<MicroVmSpec, MicroVmSpec>? change = null);

    /// <summary>RuntimeDirectory/&lt;uid&gt;.</summary>
    protected abstract string VmDirectory(MicroVm vm);

    /// <summary>Kernel (or boot image) and disks as the hypervisor reports them.</summary>
    protected abstract Task<VmmView> ReadVmmAsync(MicroVm vm, VmRuntimeInfo info);

    /// <summary>
    /// The VM's bootable kernel (the unikernel's boot image) copied into a new directory under another file name,
    /// returned as (directory, file name) for <c>kernel.image</c> + <c>kernel.filename</c>.
    /// </summary>
    protected abstract (string Directory, string FileName) KernelInDirectory();

    /// <summary>A file to attach as a volume.</summary>
    protected abstract string NewDiskFile(string name);

    /// <summary>The condition reason of a missing kernel.</summary>
    protected virtual string MissingKernelReason => "KernelNotFound";

    /// <summary>File name of the missing kernel (the unikernel's kernel is a disk image: "*.img").</summary>
    protected virtual string MissingKernelFileName => "vmlinux";

    /// <summary>
    /// Whether the test guest powers off when asked (the unikernel test image is a boot sector without ACPI: there
    /// the graceful-stop case checks the stop still ends everything within the grace period plus the kill).
    /// </summary>
    protected virtual bool GuestPowersOffOnRequest => true;

    /// <summary>Waits until the guest can react to a power-off request (QEMU: the guest's init is up).</summary>
    protected virtual Task WaitForGuestAsync(MicroVm vm) => Task.CompletedTask;

    [SetUp]
    public async Task SetUpDriverAsync()
    {
        await SetUpBedAsync();
        Driver = CreateDriver();
    }

    [TearDown]
    public async Task TearDownDriverAsync() => await DisposeBedAsync();

    // ------------------------------------------------------------------ start, inspect

    [Test]
    public async Task Start_NewVm_RunsAProcessThatInspectReports()
    {
        var vm = NewVm("start");

        var started = await Driver.StartAsync(vm);

        started.Uid.Should().Be(vm.Uid);
        started.State.Should().BeOneOf(LiveState.Running, LiveState.Created);
        started.Pid.Should().BePositive();
        HostProcess.IsAlive(started.Pid!.Value).Should().BeTrue();
        var inspected = await WaitForStateAsync(vm, LiveState.Running);
        inspected.Pid.Should().Be(started.Pid);
    }

    [Test]
    public async Task Inspect_NeverStarted_ReportsNotFound()
    {
        var info = await Driver.InspectAsync(NewVm("never"));

        info.State.Should().Be(LiveState.NotFound);
    }

    [Test]
    public async Task Start_Twice_ReturnsTheSameProcess()
    {
        var vm = NewVm("start-twice");
        var first = await Driver.StartAsync(vm);
        await WaitForStateAsync(vm, LiveState.Running);

        var second = await Driver.StartAsync(vm);

        second.Pid.Should().Be(first.Pid);
        ProcessesMentioning(vm.Uid).Should().ContainSingle("one start is one hypervisor process");
    }

    [Test]
    public async Task ConsoleLogPath_IsInTheVmDirectory_AndIgnoresStoredStatus()
    {
        var vm = NewVm("console");
        var poisoned = vm with { Status = vm.Status with { ConsoleLogPath = "/etc/shadow" } };

        Driver.ConsoleLogPath(vm).Should().Be(Path.Combine(VmDirectory(vm), "console.log"));
        Driver.ConsoleLogPath(poisoned).Should().Be(Driver.ConsoleLogPath(vm));
        CreateDriver().ConsoleLogPath(vm).Should().Be(Driver.ConsoleLogPath(vm), "a restarted daemon finds the same file");
    }

    [Test]
    public async Task Start_ConsoleLogPathReported_IsTheDriversConsoleLogPath()
    {
        var vm = NewVm("console-reported");

        var started = await Driver.StartAsync(vm);

        started.ConsoleLogPath.Should().Be(Driver.ConsoleLogPath(vm));
        await Eventually.TrueAsync(() => File.Exists(Driver.ConsoleLogPath(vm)), Patience, "the hypervisor to open the console log");
    }

    // ------------------------------------------------------------------ pause, resume

    [Test]
    public async Task PauseResume_DeclaredOrRefused()
    {
        var vm = NewVm("pause");
        await Driver.StartAsync(vm);
        await WaitForStateAsync(vm, LiveState.Running);

        if (!Driver.Capabilities.HasFlag(DriverCapabilities.Pause))
        {
            var refused = async () => await Driver.PauseAsync(vm);
            (await refused.Should().ThrowAsync<DriverException>()).Which.Message.Should().Contain("pause");
            return;
        }

        await Driver.PauseAsync(vm);
        (await Driver.InspectAsync(vm)).State.Should().Be(LiveState.Paused);

        await Driver.ResumeAsync(vm);
        (await Driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
    }

    [Test]
    public async Task Pause_Twice_StaysPaused_AndResumeTwice_StaysRunning()
    {
        var vm = NewVm("pause-twice");
        await Driver.StartAsync(vm);
        await WaitForStateAsync(vm, LiveState.Running);
        if (!Driver.Capabilities.HasFlag(DriverCapabilities.Pause))
        {
            var refused = async () => await Driver.ResumeAsync(vm);
            await refused.Should().ThrowAsync<DriverException>();
            return;
        }

        await Driver.PauseAsync(vm);
        await Driver.PauseAsync(vm);
        (await Driver.InspectAsync(vm)).State.Should().Be(LiveState.Paused);

        await Driver.ResumeAsync(vm);
        await Driver.ResumeAsync(vm);
        (await Driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
    }

    [Test]
    public async Task Pause_NotRunning_ThrowsDriverException()
    {
        var act = async () => await Driver.PauseAsync(NewVm("pause-none"));

        await act.Should().ThrowAsync<DriverException>();
    }

    // ------------------------------------------------------------------ stop, cleanup

    [Test]
    public async Task Stop_WithGrace_EndsTheProcess_GracefullyWhenDeclared()
    {
        var vm = NewVm("stop");
        var started = await Driver.StartAsync(vm);
        await WaitForStateAsync(vm, LiveState.Running);
        await WaitForGuestAsync(vm);
        var graceful = Driver.Capabilities.HasFlag(DriverCapabilities.GracefulStop) && GuestPowersOffOnRequest;
        var grace = graceful ? TimeSpan.FromSeconds(150) : TimeSpan.FromSeconds(3);

        var clock = Stopwatch.StartNew();
        await Driver.StopAsync(vm, grace);

        HostProcess.IsAlive(started.Pid!.Value).Should().BeFalse();
        ProcessesMentioning(vm.Uid).Should().BeEmpty();
        (await Driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        if (graceful)
        {
            clock.Elapsed.Should().BeLessThan(grace, "GracefulStop is declared: the guest powers off on request instead of being killed after the grace period");
        }
    }

    [Test]
    public async Task Stop_Twice_AndStopOfANeverStartedVm_AreNoOps()
    {
        var vm = NewVm("stop-twice");
        await Driver.StartAsync(vm);
        await WaitForStateAsync(vm, LiveState.Running);

        await Driver.StopAsync(vm, TimeSpan.Zero);
        await Driver.StopAsync(vm, TimeSpan.Zero);
        await Driver.StopAsync(NewVm("stop-never"), TimeSpan.FromSeconds(1));

        ProcessesMentioning(vm.Uid).Should().BeEmpty();
        (await Driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
    }

    [Test]
    public async Task Start_AfterStop_BootsANewProcess()
    {
        var vm = NewVm("restart");
        var first = await Driver.StartAsync(vm);
        await Driver.StopAsync(vm, TimeSpan.Zero);

        var second = await Driver.StartAsync(vm);

        second.Pid.Should().NotBe(first.Pid);
        await WaitForStateAsync(vm, LiveState.Running);
    }

    [Test]
    public async Task Cleanup_RemovesProcessAndVmDirectory_AndIsIdempotent()
    {
        var vm = NewVm("cleanup");
        var started = await Driver.StartAsync(vm);
        await WaitForStateAsync(vm, LiveState.Running);

        await Driver.CleanupAsync(vm);
        await Driver.CleanupAsync(vm);

        HostProcess.IsAlive(started.Pid!.Value).Should().BeFalse();
        ProcessesMentioning(vm.Uid).Should().BeEmpty();
        Directory.Exists(VmDirectory(vm)).Should().BeFalse("cleanup leaves no socket, record, disk or log");
        (await Driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
    }

    [Test]
    public async Task Cleanup_NeverStarted_IsANoOp()
    {
        var vm = NewVm("cleanup-never");

        await Driver.CleanupAsync(vm);

        Directory.Exists(VmDirectory(vm)).Should().BeFalse();
    }

    // ------------------------------------------------------------------ adoption, crash

    [Test]
    public async Task FreshDriver_ListsAndInspectsTheRunningVm_WithTheSamePid()
    {
        var vm = NewVm("adopt");
        var started = await Driver.StartAsync(vm);
        await WaitForStateAsync(vm, LiveState.Running);

        var fresh = CreateDriver();
        var listed = await fresh.ListAsync();
        var inspected = await fresh.InspectAsync(vm);

        listed.Should().ContainSingle(i => i.Uid == vm.Uid).Which.Pid.Should().Be(started.Pid);
        inspected.State.Should().Be(LiveState.Running);
        inspected.Pid.Should().Be(started.Pid);

        await fresh.StopAsync(vm, TimeSpan.Zero);
        HostProcess.IsAlive(started.Pid!.Value).Should().BeFalse("the adopting driver can stop what the first one started");
    }

    [Test]
    public async Task Inspect_AfterSigkill_ReportsExitedCrashed()
    {
        var vm = NewVm("crash");
        var started = await Driver.StartAsync(vm);
        await WaitForStateAsync(vm, LiveState.Running);

        Process.GetProcessById(started.Pid!.Value).Kill();
        await Eventually.TrueAsync(() => !HostProcess.IsAlive(started.Pid.Value), Patience, "the killed hypervisor to be gone");

        var info = await Driver.InspectAsync(vm);
        info.State.Should().Be(LiveState.Exited);
        info.Exit.Should().Be(ExitKind.Crashed);
        (await CreateDriver().ListAsync()).Should().NotContain(i => i.Uid == vm.Uid, "a dead process is not adopted");

        var again = await Driver.StartAsync(vm);
        again.Pid.Should().NotBe(started.Pid, "a crashed VM starts again as a new process");
    }

    // ------------------------------------------------------------------ kernel, disks

    [Test]
    public async Task Start_KernelFilename_BootsThatFileInTheImageDirectory()
    {
        var (directory, fileName) = KernelInDirectory();
        var vm = NewVm("kernel-filename", s => s with { Kernel = s.Kernel with { Image = directory, Filename = fileName } });

        var started = await Driver.StartAsync(vm);

        (await ReadVmmAsync(vm, started)).Kernel.Should().Be(Path.Combine(directory, fileName));
    }

    [Test]
    public async Task Start_MissingKernel_ThrowsDriverExceptionNamingThePath_AndLeavesNothingRunning()
    {
        var missing = Path.Combine(Path.GetTempPath(), "hypercore-contract-missing-" + Guid.NewGuid().ToString("N")[..8], MissingKernelFileName);
        var vm = NewVm("no-kernel", s => s with { Kernel = s.Kernel with { Image = missing, Filename = null } });

        var act = async () => await Driver.StartAsync(vm);

        var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
        ex.Reason.Should().Be(MissingKernelReason);
        ex.Message.Should().Contain(missing);
        ProcessesMentioning(vm.Uid).Should().BeEmpty();
        (await Driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
    }

    [Test]
    public async Task Start_ScratchDisk_IsMadeInTheVmDirectoryAtItsSizeAndAttached_AndCleanupRemovesIt()
    {
        var vm = NewVm("scratch", s => s with { AdditionalVolumes = [.. s.AdditionalVolumes, new VolumeSpec { Id = "scratch", SizeInMb = 8 }] });

        var started = await Driver.StartAsync(vm);

        var disks = (await ReadVmmAsync(vm, started)).Disks;
        var scratch = disks.Where(d => d.Path.StartsWith(VmDirectory(vm) + "/", StringComparison.Ordinal)).ToList();
        scratch.Should().ContainSingle("the scratch disk is a file in the VM's directory, attached: {0}", string.Join(", ", disks));
        new FileInfo(scratch[0].Path).Length.Should().Be(8L * 1024 * 1024);
        scratch[0].ReadOnly.Should().BeFalse();

        await Driver.CleanupAsync(vm);
        File.Exists(scratch[0].Path).Should().BeFalse();
    }

    [Test]
    public async Task Start_ExtraVolumes_AreAttachedWritableOrReadOnlyAsAsked()
    {
        var data = NewDiskFile("data.img");
        var reference = NewDiskFile("reference.img");
        var vm = NewVm("volumes", s => s with
        {
            AdditionalVolumes =
            [
                .. s.AdditionalVolumes,
                new VolumeSpec { Id = "data", HostPath = data },
                new VolumeSpec { Id = "reference", HostPath = reference, IsReadOnly = true },
            ],
        });

        var started = await Driver.StartAsync(vm);

        var disks = (await ReadVmmAsync(vm, started)).Disks;
        disks.Should().ContainSingle(d => d.Path == data).Which.ReadOnly.Should().BeFalse();
        disks.Should().ContainSingle(d => d.Path == reference).Which.ReadOnly.Should().BeTrue("is_read_only must reach the hypervisor");
    }

    [Test]
    public async Task Start_MissingVolume_ThrowsDriverExceptionNamingIt_AndLeavesNothingRunning()
    {
        var missing = Path.Combine(Path.GetTempPath(), "hypercore-contract-missing-" + Guid.NewGuid().ToString("N")[..8], "data.img");
        var vm = NewVm("no-volume", s => s with { AdditionalVolumes = [.. s.AdditionalVolumes, new VolumeSpec { Id = "data", HostPath = missing }] });

        var act = async () => await Driver.StartAsync(vm);

        (await act.Should().ThrowAsync<DriverException>()).Which.Message.Should().Contain(missing);
        ProcessesMentioning(vm.Uid).Should().BeEmpty();
    }

    // ------------------------------------------------------------------ capabilities

    [Test]
    public async Task Initrd_DeclaredOrRefused()
    {
        var initrd = NewDiskFile("initrd-probe.img");
        var vm = NewVm("initrd", s => s.Initrd is null ? s with { Initrd = new InitrdSpec { Image = initrd } } : s);

        if (Driver.Capabilities.HasFlag(DriverCapabilities.Initrd))
        {
            var started = await Driver.StartAsync(vm);
            started.Pid.Should().BePositive();
            return;
        }

        var act = async () => await Driver.StartAsync(vm);
        (await act.Should().ThrowAsync<DriverException>("Initrd is not declared, so a spec with one must be refused, not silently booted without it"))
            .Which.Message.Should().Contain("initrd");
        ProcessesMentioning(vm.Uid).Should().BeEmpty();
    }

    [Test]
    public async Task Tap_DeclaredOrRefused()
    {
        Privileges.RequireRoot("creating tap devices");

        var vm = NewVm("tap", s => s with { Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0" }] });

        if (!Driver.Capabilities.HasFlag(DriverCapabilities.Tap))
        {
            var act = async () => await Driver.StartAsync(vm);
            await act.Should().ThrowAsync<DriverException>("Tap is not declared, so an interface must be refused");
            return;
        }

        var started = await Driver.StartAsync(vm);

        var taps = (await ReadVmmAsync(vm, started)).Taps;
        taps.Should().ContainSingle("one interface, one tap handed to the hypervisor");
        Directory.Exists(Path.Combine("/sys/class/net", taps[0])).Should().BeTrue("the driver made the tap {0} before the hypervisor opened it", taps[0]);

        await Driver.CleanupAsync(vm);
        Directory.Exists(Path.Combine("/sys/class/net", taps[0])).Should().BeFalse("cleanup removes the tap");
    }

    // ------------------------------------------------------------------ helpers

    protected async Task<VmRuntimeInfo> WaitForStateAsync(MicroVm vm, LiveState state)
    {
        var info = VmRuntimeInfo.NotFound(vm.Uid);
        var until = DateTime.UtcNow + Patience;
        while ((info = await Driver.InspectAsync(vm)).State != state)
        {
            if (DateTime.UtcNow > until)
            {
                Assert.Fail($"timed out waiting for {state}; last {info}");
            }

            await Task.Delay(100);
        }

        return info;
    }

    /// <summary>Live processes whose command line mentions <paramref name="text"/> (every driver puts the uid in it).</summary>
    protected static IReadOnlyList<int> ProcessesMentioning(string text)
    {
        var found = new List<int>();
        foreach (var entry in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out var pid) || pid == Environment.ProcessId || !HostProcess.IsAlive(pid))
            {
                continue;
            }

            if (HostProcess.CommandLine(pid).Any(a => a.Contains(text, StringComparison.Ordinal)))
            {
                found.Add(pid);
            }
        }

        return found;
    }

    /// <summary>QEMU's -drive/-kernel values from a live QEMU's command line (",," is a literal comma).</summary>
    protected static VmmView ReadQemuCommandLine(int pid, Func<IReadOnlyDictionary<string, string>, bool> isKernelDrive)
    {
        var argv = HostProcess.CommandLine(pid);
        var kernel = "";
        var disks = new List<VmmDisk>();
        var taps = new List<string>();
        for (var i = 0; i + 1 < argv.Count; i++)
        {
            if (argv[i] == "-kernel")
            {
                kernel = argv[i + 1];
            }
            else if (argv[i] == "-netdev" && ParseQemuOptions(argv[i + 1]).GetValueOrDefault("ifname") is { } tap)
            {
                taps.Add(tap);
            }
            else if (argv[i] == "-drive")
            {
                var options = ParseQemuOptions(argv[i + 1]);
                var path = options.GetValueOrDefault("file", "");
                if (isKernelDrive(options))
                {
                    kernel = path;
                }
                else
                {
                    disks.Add(new VmmDisk(path, options.GetValueOrDefault("readonly") is "on" or "true"));
                }
            }
        }

        return new VmmView(kernel, disks, taps);
    }

    private static Dictionary<string, string> ParseQemuOptions(string value)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        var parts = new List<string>();
        var current = new System.Text.StringBuilder();
        for (var i = 0; i < value.Length; i++)
        {
            if (value[i] == ',' && i + 1 < value.Length && value[i + 1] == ',')
            {
                current.Append(',');
                i++;
            }
            else if (value[i] == ',')
            {
                parts.Add(current.ToString());
                current.Clear();
            }
            else
            {
                current.Append(value[i]);
            }
        }

        parts.Add(current.ToString());
        foreach (var part in parts)
        {
            var eq = part.IndexOf('=', StringComparison.Ordinal);
            result[eq < 0 ? part : part[..eq]] = eq < 0 ? "" : part[(eq + 1)..];
        }

        return result;
    }
}
