using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>Qemu:RunAs (qemu-user): real QEMU under TCG dropped to nobody (65534:65534) through setpriv.</summary>
[NonParallelizable]
public sealed class QemuRunAsTests
{
    private const string Nobody = "65534:65534";

    private QemuTestBed _bed = null!;

    [SetUp]
    public void SetUp() => _bed = new QemuTestBed();

    [TearDown]
    public void TearDown() => _bed.Dispose();

    [Test]
    public async Task Start_RunAsNobody_QemuRunsAsNobodyAndPauseResumeStopCleanupWork()
    {
        var shared = Path.Combine(_bed.RuntimeDirectory, "shared.img");
        await using (var f = File.Create(shared))
        {
            f.SetLength(4 * 1024 * 1024);
        }

        File.SetUnixFileMode(shared, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite);
        var driver = _bed.Driver(o => o.RunAs = Nobody);
        var vm = QemuTestBed.Vm("runas", change: s => s with
        {
            AdditionalVolumes = [new VolumeSpec { Id = "scratch", SizeInMb = 16 }, new VolumeSpec { Id = "shared", HostPath = shared }],
        });

        var info = await driver.StartAsync(vm);
        await _bed.WaitForReadyAsync(vm);

        var pid = info.Pid!.Value;
        Ids(File.ReadAllLines($"/proc/{pid}/status"), "Uid:").Should().Equal(65534, 65534, 65534, 65534);
        Ids(File.ReadAllLines($"/proc/{pid}/status"), "Gid:").Should().Equal(65534, 65534, 65534, 65534);
        File.ReadAllText($"/proc/{pid}/status").Should().MatchRegex(@"Groups:\s*\n", "setpriv --clear-groups leaves no supplementary group");
        Path.GetFileName(File.ReadAllText($"/proc/{pid}/cmdline").Split('\0')[0]).Should().Be("qemu-system-x86_64", "setpriv execs QEMU in place: the recorded pid is QEMU's");
        _bed.Console(vm).Should().Contain("disks: vda vdb");
        foreach (var owned in new[] { _bed.ConsoleLog(vm), Path.Combine(_bed.VmDir(vm), "scratch-scratch.img"), Path.Combine(_bed.VmDir(vm), "vmm"), Path.Combine(_bed.VmDir(vm), "vmm", "qmp.sock") })
        {
            Owner(owned).Should().Be("65534:65534", owned);
        }

        Owner(_bed.VmDir(vm)).Should().Be("0:0", "the daemon writes vm.json there as root and trusts what it reads back");
        Owner(Path.Combine(_bed.VmDir(vm), "vm.json")).Should().Be("0:0");

        Owner(shared).Should().Be("0:0", "a caller's file is never chowned");

        await driver.PauseAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Paused);
        await driver.ResumeAsync(vm);
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);

        var restarted = _bed.Driver(o => o.RunAs = Nobody); // a new daemon adopts a QEMU of another uid from /proc
        var listed = await restarted.ListAsync();
        listed.Should().ContainSingle().Which.Should().Match<VmRuntimeInfo>(l => l.Pid == pid && l.State == LiveState.Running);

        await restarted.StopAsync(vm, TimeSpan.FromSeconds(60));
        QemuTestBed.ProcessGone(pid).Should().BeTrue();
        await restarted.CleanupAsync(vm);

        Directory.Exists(_bed.VmDir(vm)).Should().BeFalse();
        QemuTestBed.PidsMentioning(vm.Uid).Should().BeEmpty();
        (await restarted.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
    }

    /// <summary>
    /// s27 review: the VM's directory belonged to the QEMU user, so a QEMU taken over by its guest could plant
    /// <c>vm.json.tmp -&gt; /etc/passwd</c> (the daemon wrote the next record through it, as root), a forged vm.json (a pid,
    /// binary and taps the daemon then kills or deletes), or <c>console.log.1 -&gt; /etc/shadow</c>. Now the user can write
    /// its own console but cannot add, replace or rename anything in the directory; a directory an earlier version
    /// handed over is taken back at the next start, and what was planted in it is not written through.
    /// </summary>
    [Test]
    public async Task Start_RunAsNobody_TheQemuUserCannotPlantOrReplaceFilesInTheVmDirectory_AnEarlierHandOverIsTakenBack()
    {
        var driver = _bed.Driver(o => o.RunAs = Nobody);
        var vm = QemuTestBed.Vm("runas-plant");
        var dir = _bed.VmDir(vm);
        var target = Path.Combine(_bed.RuntimeDirectory, "host-file");
        await File.WriteAllTextAsync(target, "host file\n");
        File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);

        // What an earlier version left: the directory the user's, a record's temp file and the socket directory planted as links.
        Directory.CreateDirectory(dir);
        File.CreateSymbolicLink(Path.Combine(dir, "vm.json.tmp"), target);
        File.CreateSymbolicLink(Path.Combine(dir, "vmm"), _bed.RuntimeDirectory);
        (await HostProcess.RunAsync("chown", ["-h", Nobody, dir, Path.Combine(dir, "vm.json.tmp"), Path.Combine(dir, "vmm")], TimeSpan.FromSeconds(10), default)).Succeeded.Should().BeTrue();

        await driver.StartAsync(vm);
        await _bed.WaitForReadyAsync(vm);

        File.ReadAllText(target).Should().Be("host file\n", "the record was not written through the planted link");
        Owner(dir).Should().Be("0:0");
        new DirectoryInfo(Path.Combine(dir, "vmm")).LinkTarget.Should().BeNull("the planted link was replaced by the user's own directory");
        (await AsNobody($"echo guest-wrote >> '{_bed.ConsoleLog(vm)}'")).Should().Be(0, "QEMU's own console stays writable");
        foreach (var plant in new[]
        {
            $"ln -s '{target}' '{dir}/console.log.1'",
            $"echo {{}} > '{dir}/vm.json.tmp'",
            $"mv '{_bed.ConsoleLog(vm)}' '{dir}/moved.log'",
            $"rm -f '{dir}/vm.json'",
            $"ln -s '{target}' '{dir}/cidata.img'",
        })
        {
            (await AsNobody(plant)).Should().NotBe(0, plant);
        }

        File.Exists(Path.Combine(dir, "vm.json")).Should().BeTrue();
        new FileInfo(Path.Combine(dir, "console.log.1")).Exists.Should().BeFalse();
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.Running);
        await driver.CleanupAsync(vm);
        Directory.Exists(dir).Should().BeFalse();
        File.ReadAllText(target).Should().Be("host file\n");
    }

    private static async Task<int> AsNobody(string script) =>
        (await HostProcess.RunAsync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "sh", "-c", script], TimeSpan.FromSeconds(10), default)).ExitCode;

    // Guest bootstrap: the seed disk the daemon makes as root must be readable by the dropped QEMU.
    [Test]
    public async Task Start_RunAsNobodyWithMetadata_TheSeedDiskIsNobodysAndTheGuestReadsIt()
    {
        var driver = _bed.Driver(o => o.RunAs = Nobody);
        var vm = QemuTestBed.Vm("runas-seed", change: s => s with
        {
            Metadata = new Dictionary<string, string> { ["user-data"] = "#!/bin/sh\necho seeded-as-nobody\n" },
        });

        await driver.StartAsync(vm);
        await _bed.WaitUntilAsync(() => _bed.Console(vm).Contains("seeded-as-nobody"), "the user-data output");

        _bed.Console(vm).Should().Contain($"hypercore-nocloud: instance-id={vm.Uid} hostname=runas-seed user-data=script");
        Owner(Path.Combine(_bed.VmDir(vm), "cidata.img")).Should().Be("65534:65534");
        await driver.CleanupAsync(vm);
        Directory.Exists(_bed.VmDir(vm)).Should().BeFalse();
    }

    [Test]
    public async Task Start_RunAsNobodyWithWritableVolumeOnlyRootCanRead_ThrowsPermissionDeniedNamingFileAndUser()
    {
        var secret = Path.Combine(_bed.RuntimeDirectory, "root-only.img");
        await File.WriteAllBytesAsync(secret, new byte[1024 * 1024]);
        File.SetUnixFileMode(secret, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        var driver = _bed.Driver(o => o.RunAs = Nobody);
        var vm = QemuTestBed.Vm("denied", change: s => s with
        {
            AdditionalVolumes = [new VolumeSpec { Id = "data", HostPath = secret }],
        });

        var act = () => driver.StartAsync(vm);

        var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
        ex.Reason.Should().Be("PermissionDenied");
        ex.Message.Should().Contain(secret).And.Contain(Nobody).And.Contain("not readable and writable");
        QemuTestBed.PidsMentioning(vm.Uid).Should().BeEmpty();
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
        await driver.CleanupAsync(vm);
        Directory.Exists(_bed.VmDir(vm)).Should().BeFalse();
        Owner(secret).Should().Be("0:0");
        File.GetUnixFileMode(secret).Should().Be(UnixFileMode.UserRead | UnixFileMode.UserWrite, "the caller's file is left as it was");
    }

    /// <summary>
    /// QEMU opens /dev/net/tun itself after dropping root: where nobody may open it (Debian's 0666) the tap is made
    /// for nobody and the guest gets its NIC; where only root may (this CI container's 0600) the start is refused
    /// up front naming the device, not by QEMU's "Permission denied" halfway through.
    /// </summary>
    [Test]
    public async Task Start_RunAsNobodyWithTap_TapOwnedByNobodyOrRefusedNamingTheTunDevice()
    {
        var tunOpen = (await HostProcess.RunAsync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--", "test", "-w", "/dev/net/tun"], TimeSpan.FromSeconds(10), default)).Succeeded;
        var driver = _bed.Driver(o => o.RunAs = Nobody);
        var vm = QemuTestBed.Vm("runas-tap", change: s => s with
        {
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", GuestMac = "02:00:00:aa:bb:02" }],
        });
        var tap = TapDevices.TapName(vm.Uid, 0);

        if (tunOpen)
        {
            await driver.StartAsync(vm);
            await _bed.WaitForReadyAsync(vm);
            _bed.Console(vm).Should().Contain("nics: eth0");
            File.ReadAllText($"/sys/class/net/{tap}/owner").Trim().Should().Be("65534");
            File.ReadAllText($"/sys/class/net/{tap}/group").Trim().Should().Be("65534");
            await driver.CleanupAsync(vm);
        }
        else
        {
            var act = () => driver.StartAsync(vm);
            var ex = (await act.Should().ThrowAsync<DriverException>()).Which;
            ex.Reason.Should().Be("PermissionDenied");
            ex.Message.Should().Contain("/dev/net/tun").And.Contain(Nobody);
            await driver.CleanupAsync(vm);
        }

        TapDevices.Exists(tap).Should().BeFalse();
        QemuTestBed.PidsMentioning(vm.Uid).Should().BeEmpty();
        Directory.Exists(_bed.VmDir(vm)).Should().BeFalse();
    }

    [TestCase("65534:65534", 65534, 65534)]
    [TestCase("nobody", 65534, 65534)]
    [TestCase("root", 0, 0)]
    public void Resolve_GoodValue_GivesUidAndGid(string value, int uid, int gid)
    {
        QemuUser.TryResolve(value, out var user).Should().BeNull();
        user.Should().Be(new QemuUser(uid, gid));
    }

    [TestCase("65534:", "two whole numbers")]
    [TestCase("-1:5", "two whole numbers")]
    [TestCase("hc-no-such-user", "not found")]
    [TestCase("a b", "user name")]
    public void Validate_BadRunAs_FailsNamingTheSetting(string value, string expected)
    {
        var result = new QemuOptionsValidator().Validate(null, new QemuOptions { RunAs = value });

        result.Failed.Should().BeTrue();
        result.FailureMessage.Should().Contain("Qemu:RunAs").And.Contain(expected);
    }

    private static int[] Ids(string[] status, string key) =>
        status.Single(l => l.StartsWith(key, StringComparison.Ordinal))[key.Length..]
            .Split('\t', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToArray();

    private static string Owner(string path)
    {
        using var stat = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%u:%g", path]) { RedirectStandardOutput = true })!;
        var text = stat.StandardOutput.ReadToEnd().Trim();
        stat.WaitForExit();
        return text;
    }
}
