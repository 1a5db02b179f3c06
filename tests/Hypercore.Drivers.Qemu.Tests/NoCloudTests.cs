using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;
using Hypercore.Testing;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// Guest bootstrap end to end: real QEMU (TCG), the default image's NoCloud reader (scripts/image/hooks/pre-ready.d/
/// 20-nocloud.sh) finds the cidata seed disk the driver made, sets the hostname and runs a shell user-data.
/// </summary>
[NonParallelizable]
public sealed class NoCloudTests
{
    private QemuTestBed _bed = null!;

    [SetUp]
    public void SetUp() => _bed = new QemuTestBed();

    [TearDown]
    public void TearDown() => _bed.Dispose();

    [Test]
    public async Task Start_Metadata_GuestSetsTheHostnameRunsTheUserDataAndDeleteLeavesNoSeed()
    {
        var driver = _bed.Driver();
        var vm = QemuTestBed.Vm("nocloud-1", change: s => s with
        {
            Metadata = new Dictionary<string, string>
            {
                ["user-data"] = "#!/bin/sh\necho \"user-data says: host=$(hostname) seed=$(ls /run/nocloud-seed | tr '\\n' ' ')\"\n",
            },
        });

        var info = await driver.StartAsync(vm);
        await _bed.WaitUntilAsync(() => _bed.Console(vm).Contains("user-data exited with status 0"), "the user-data script to finish");

        var console = _bed.Console(vm);
        console.Should().Contain($"hypercore-nocloud: instance-id={vm.Uid} hostname=nocloud-1 user-data=script network-config=no (from /dev/vd");
        console.Should().Contain("user-data says: host=nocloud-1 seed=meta-data user-data");
        var seed = Path.Combine(_bed.VmDir(vm), "cidata.img");
        string.Join(' ', File.ReadAllText($"/proc/{info.Pid}/cmdline").Split('\0'))
            .Should().Contain($"file={seed},format=raw,if=none,readonly=on", "the guest gets the seed read-only");
        CidataDisk.Read(seed).Files["meta-data"].Should().Be($"instance-id: {vm.Uid}\nlocal-hostname: nocloud-1\n");

        await driver.CleanupAsync(vm);

        File.Exists(seed).Should().BeFalse();
        Directory.Exists(_bed.VmDir(vm)).Should().BeFalse();
    }

    [Test]
    public async Task Start_AddNetworkConfigAndCallersHostname_GuestSeesBothAndTheSeedHoldsTheGeneratedConfig()
    {
        var driver = _bed.Driver();
        var vm = QemuTestBed.Vm("nocloud-2", change: s => s with
        {
            Kernel = s.Kernel with { AddNetworkConfig = true },
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.79.0.2/24", Gateway = "10.79.0.1", Nameservers = ["10.79.0.53"] }],
            Metadata = new Dictionary<string, string> { ["meta-data"] = "local-hostname: chosen-name\n" },
        });

        await driver.StartAsync(vm);
        await _bed.WaitForReadyAsync(vm);

        _bed.Console(vm).Should().Contain($"hypercore-nocloud: instance-id={vm.Uid} hostname=chosen-name user-data=empty network-config=yes");
        var files = CidataDisk.Read(Path.Combine(_bed.VmDir(vm), "cidata.img")).Files;
        var mac = TapDevices.GuestMac(vm.Uid, vm.Spec.Interfaces[0], 0);
        files["network-config"].Should().Contain($"macaddress: {mac}").And.Contain("- 10.79.0.2/24").And.Contain("gateway4: 10.79.0.1");

        await driver.CleanupAsync(vm);

        Directory.Exists(_bed.VmDir(vm)).Should().BeFalse();
        TapDevices.Exists(TapDevices.TapName(vm.Uid, 0)).Should().BeFalse();
    }

    [Test]
    public async Task Start_NoMetadata_NoSeedDiskAndTheReaderStaysQuiet()
    {
        var driver = _bed.Driver();
        var vm = QemuTestBed.Vm("nocloud-none");

        await driver.StartAsync(vm);
        await _bed.WaitForReadyAsync(vm);

        _bed.Console(vm).Should().NotContain("hypercore-nocloud").And.Contain("disks: none");
        File.Exists(Path.Combine(_bed.VmDir(vm), "cidata.img")).Should().BeFalse();
    }
}
