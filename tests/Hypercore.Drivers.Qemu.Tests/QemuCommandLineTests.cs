using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Qemu.Tests;

public sealed class QemuCommandLineTests
{
    private static MicroVmSpec Spec(Dictionary<string, string>? cmdline = null) => new()
    {
        Id = "vm1",
        Kernel = new KernelSpec { Image = "/img/vmlinuz", Cmdline = cmdline ?? [] },
    };

    [Test]
    public void KernelCmdline_NoConsoleGiven_AddsSerialConsoleRebootAndPanic()
    {
        QemuCommandLine.KernelCmdline(Spec(new() { ["quiet"] = "" }), tcg: false, tscKhz: null)
            .Should().Be("console=ttyS0 reboot=t panic=-1 quiet");
    }

    [Test]
    public void KernelCmdline_SpecSetsConsoleAndPanic_KeepsThemOnce()
    {
        var line = QemuCommandLine.KernelCmdline(Spec(new() { ["console"] = "hvc0", ["panic"] = "5" }), tcg: false, tscKhz: null);

        line.Should().Be("reboot=t console=hvc0 panic=5");
    }

    [Test]
    public void KernelCmdline_Tcg_AddsHostTscRateUnlessTheSpecHasOne()
    {
        QemuCommandLine.KernelCmdline(Spec(), tcg: true, tscKhz: 2596146).Should().EndWith("tsc_early_khz=2596146");
        QemuCommandLine.KernelCmdline(Spec(), tcg: false, tscKhz: 2596146).Should().NotContain("tsc_early_khz");
        QemuCommandLine.KernelCmdline(Spec(new() { ["tsc_early_khz"] = "1000" }), tcg: true, tscKhz: 2596146)
            .Should().Contain("tsc_early_khz=1000").And.NotContain("2596146");
    }

    [Test]
    public void KernelCmdline_RootVolume_AddsRootDevice()
    {
        var spec = Spec() with { RootVolume = new VolumeSpec { Id = "root", HostPath = "/r.img", IsReadOnly = true } };

        QemuCommandLine.KernelCmdline(spec, tcg: false, tscKhz: null).Should().Be("console=ttyS0 reboot=t panic=-1 root=/dev/vda ro");
    }

    [Test]
    public void KernelCmdline_RootPartitionIdAndNameservers_BootFromPartuuidWithDnsInIp()
    {
        var spec = Spec() with
        {
            Kernel = Spec().Kernel with { AddNetworkConfig = true },
            RootVolume = new VolumeSpec { Id = "root", HostPath = "/r.img", PartitionId = "6c2a6b1e-01" },
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.0.0.2/24", Gateway = "10.0.0.1", Nameservers = ["10.0.0.53", "10.0.0.54"] }],
        };

        // As VmmDriver composes the prepared spec's command line for QEMU.
        KernelArgs.WithNetworkConfig(QemuCommandLine.KernelCmdline(spec, tcg: false, tscKhz: null), spec).Should().Be(
            "console=ttyS0 reboot=t panic=-1 root=PARTUUID=6c2a6b1e-01 rw ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off:10.0.0.53:10.0.0.54");
    }

    [Test]
    public void Build_FullSpec_WiresDrivesTapsConsoleQmpAndSandbox()
    {
        var spec = Spec() with { Vcpu = 2, MemoryInMb = 256 };
        var vm = new MicroVm { Uid = "u-1", ResourceVersion = "1", Spec = spec };
        var dir = new VmDirectory("/run/hc", "u-1");
        var prepared = new PreparedSpec
        {
            Vm = vm,
            KernelPath = "/img/vmlinuz",
            InitrdPath = "/img/initrd.img",
            KernelCmdline = "console=ttyS0 ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off",
            Volumes =
            [
                new PreparedVolume("root", "/disks/root,1.img", IsReadOnly: false, IsRoot: true, IsScratch: false),
                new PreparedVolume("data", "/disks/data.qcow2", IsReadOnly: true, IsRoot: false, IsScratch: false) { Format = DiskFormats.Qcow2 },
            ],
            Nics = [new PreparedNic("eth0", "hcabcn0", "02:aa:bb:cc:dd:ee", new NetworkInterfaceSpec { DeviceId = "eth0" })],
        };

        var args = QemuCommandLine.Build(new QemuCommandLine.Inputs(prepared, dir, new AcceleratorChoice("tcg", "configured"), 1000, dir.File("qmp.sock")));
        var line = string.Join(' ', args);

        line.Should().StartWith("-M microvm -accel tcg -cpu max -smp 2 -m 256M -nodefaults -no-user-config -nographic -no-reboot -no-shutdown " +
            "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny -kernel /img/vmlinuz -initrd /img/initrd.img");
        line.Should().Contain("-append console=ttyS0 ip=10.0.0.2::10.0.0.1:255.255.255.0::eth0:off tsc_early_khz=1000");
        line.Should().Contain("-chardev file,id=console0,path=/run/hc/u-1/console.log,append=on -serial chardev:console0");
        line.Should().Contain("-device pvpanic -action panic=pause");
        line.Should().Contain("-drive id=vol0,file=/disks/root,,1.img,format=raw,if=none,readonly=off -device virtio-blk-device,drive=vol0,serial=root");
        line.Should().Contain("-drive id=vol1,file=/disks/data.qcow2,format=qcow2,backing=,if=none,readonly=on");
        line.Should().Contain("-netdev tap,id=net0,ifname=hcabcn0,script=no,downscript=no -device virtio-net-device,netdev=net0,mac=02:aa:bb:cc:dd:ee");
        line.Should().EndWith("-qmp unix:/run/hc/u-1/qmp.sock,server=on,wait=off -name default/vm1,process=hc-u-1");
    }

    // Safe by default (issue 8): a file name never picks the format; only the checked Format does, and only the
    // daemon's own overlay may open the backing file its header names.
    [Test]
    public void Build_VolumeNamedQcow2WithoutACheckedFormat_IsOpenedRaw()
    {
        var vm = new MicroVm { Uid = "u", ResourceVersion = "1", Spec = Spec() };
        var dir = new VmDirectory("/run/hc", "u");
        var prepared = new PreparedSpec
        {
            Vm = vm,
            KernelPath = "/img/vmlinuz",
            Volumes = [new PreparedVolume("data", "/disks/evil.qcow2", IsReadOnly: false, IsRoot: false, IsScratch: false)],
        };

        var line = string.Join(' ', QemuCommandLine.Build(new QemuCommandLine.Inputs(prepared, dir, new AcceleratorChoice("tcg", "configured"), null, dir.File("qmp.sock"))));

        line.Should().Contain("-drive id=vol0,file=/disks/evil.qcow2,format=raw,if=none,readonly=off");
    }

    [Test]
    public void Build_DaemonOverlayAllowedItsBacking_KeepsItAndOtherQcow2sDoNot()
    {
        var vm = new MicroVm { Uid = "u", ResourceVersion = "1", Spec = Spec() };
        var dir = new VmDirectory("/run/hc", "u");
        var prepared = new PreparedSpec
        {
            Vm = vm,
            KernelPath = "/img/vmlinuz",
            Volumes =
            [
                new PreparedVolume("root", "/run/hc/u/image-root.qcow2", IsReadOnly: false, IsRoot: true, IsScratch: true) { Format = DiskFormats.Qcow2, UsesBacking = true },
                new PreparedVolume("data", "/disks/plain.qcow2", IsReadOnly: false, IsRoot: false, IsScratch: false) { Format = DiskFormats.Qcow2 },
            ],
        };

        var line = string.Join(' ', QemuCommandLine.Build(new QemuCommandLine.Inputs(prepared, dir, new AcceleratorChoice("tcg", "configured"), null, dir.File("qmp.sock"))));

        line.Should().Contain("-drive id=vol0,file=/run/hc/u/image-root.qcow2,format=qcow2,if=none,readonly=off");
        line.Should().Contain("-drive id=vol1,file=/disks/plain.qcow2,format=qcow2,backing=,if=none,readonly=off");
    }

    [Test]
    public void Build_MacvtapsBetweenTaps_GetInheritedFdsInNicOrder()
    {
        var vm = new MicroVm { Uid = "u", ResourceVersion = "1", Spec = Spec() };
        var dir = new VmDirectory("/run/hc", "u");
        var prepared = new PreparedSpec
        {
            Vm = vm,
            KernelPath = "/k",
            KernelCmdline = "console=ttyS0",
            Nics =
            [
                new PreparedNic("eth0", "hcabcm0", "02:00:00:00:00:01", new NetworkInterfaceSpec { DeviceId = "eth0", Type = InterfaceType.Macvtap }, "/dev/tap7"),
                new PreparedNic("eth1", "hcabcn1", "02:00:00:00:00:02", new NetworkInterfaceSpec { DeviceId = "eth1" }),
                new PreparedNic("eth2", "hcabcm2", "02:00:00:00:00:03", new NetworkInterfaceSpec { DeviceId = "eth2", Type = InterfaceType.Macvtap }, "/dev/tap9"),
            ],
        };

        var line = string.Join(' ', QemuCommandLine.Build(new QemuCommandLine.Inputs(prepared, dir, new AcceleratorChoice("tcg", "configured"), null, dir.File("qmp.sock"))));

        line.Should().Contain("-netdev tap,id=net0,fd=3 -device virtio-net-device,netdev=net0,mac=02:00:00:00:00:01");
        line.Should().Contain("-netdev tap,id=net1,ifname=hcabcn1,script=no,downscript=no");
        line.Should().Contain("-netdev tap,id=net2,fd=4 -device virtio-net-device,netdev=net2,mac=02:00:00:00:00:03");
    }

    [Test]
    public void Build_Kvm_UsesHostCpu()
    {
        var vm = new MicroVm { Uid = "u", ResourceVersion = "1", Spec = Spec() };
        var prepared = new PreparedSpec { Vm = vm, KernelPath = "/k", KernelCmdline = "console=ttyS0" };

        var args = QemuCommandLine.Build(new QemuCommandLine.Inputs(prepared, new VmDirectory("/r", "u"), new AcceleratorChoice("kvm", "configured"), 123, "/r/u/qmp.sock"));

        string.Join(' ', args).Should().Contain("-accel kvm -cpu host").And.NotContain("-initrd").And.NotContain("tsc_early_khz");
    }

    [Test]
    public void CheckDeviceCount_EightDevices_Fits_NineRefused()
    {
        var volumes = Enumerable.Range(0, 7).Select(i => new VolumeSpec { Id = $"v{i}", HostPath = "/d" }).ToList();
        var eight = Spec() with { AdditionalVolumes = volumes, Interfaces = [new NetworkInterfaceSpec { DeviceId = "n" }] };
        var nine = eight with { RootVolume = new VolumeSpec { Id = "root", HostPath = "/r" } };

        QemuCommandLine.CheckDeviceCount(eight).Should().BeNull();
        QemuCommandLine.CheckDeviceCount(nine).Should().Contain("at most 8").And.Contain("asks for 9");
    }

    [Test]
    public void CheckDeviceCount_Metadata_TheSeedDiskCountsAsADevice()
    {
        var volumes = Enumerable.Range(0, 7).Select(i => new VolumeSpec { Id = $"v{i}", HostPath = "/d" }).ToList();
        var seven = Spec() with { AdditionalVolumes = volumes };
        var withMetadata = seven with { Metadata = new Dictionary<string, string> { ["user-data"] = "#!/bin/sh\n" } };
        var withNetworkConfig = seven with
        {
            Kernel = seven.Kernel with { AddNetworkConfig = true },
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "n" }],
        };

        QemuCommandLine.CheckDeviceCount(withMetadata).Should().BeNull("7 volumes + the seed disk = 8");
        QemuCommandLine.CheckDeviceCount(withNetworkConfig).Should().Contain("asks for 9").And.Contain("1 cloud-init seed disk");
    }
}
