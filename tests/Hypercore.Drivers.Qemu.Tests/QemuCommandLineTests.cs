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
    public void Build_FullSpec_WiresDrivesTapsConsoleQmpAndDaemonize()
    {
        var spec = Spec() with
        {
            Vcpu = 2,
            MemoryInMb = 256,
            RootVolume = new VolumeSpec { Id = "root", HostPath = "/disks/root,1.img" },
            AdditionalVolumes = [new VolumeSpec { Id = "data", HostPath = "/disks/data.qcow2", IsReadOnly = true }],
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", GuestMac = "02:AA:BB:CC:DD:EE" }],
        };
        var vm = new MicroVm { Uid = "u-1", ResourceVersion = "1", Spec = spec };
        var dir = new VmDirectory("/run/hc", "u-1");

        var args = QemuCommandLine.Build(new QemuCommandLine.Inputs(vm, dir, new AcceleratorChoice("tcg", "configured"), "/img/vmlinuz", "/img/initrd.img", ["hcabcn0"], null));
        var line = string.Join(' ', args);

        line.Should().StartWith("-M microvm -accel tcg -cpu max -smp 2 -m 256M -nodefaults -no-user-config -nographic -no-reboot -no-shutdown -kernel /img/vmlinuz -initrd /img/initrd.img");
        line.Should().Contain("-chardev file,id=console0,path=/run/hc/u-1/console.log,append=on -serial chardev:console0");
        line.Should().Contain("-device pvpanic -action panic=pause");
        line.Should().Contain("-drive id=vol0,file=/disks/root,,1.img,format=raw,if=none,readonly=off -device virtio-blk-device,drive=vol0,serial=root");
        line.Should().Contain("-drive id=vol1,file=/disks/data.qcow2,format=qcow2,if=none,readonly=on");
        line.Should().Contain("-netdev tap,id=net0,ifname=hcabcn0,script=no,downscript=no -device virtio-net-device,netdev=net0,mac=02:aa:bb:cc:dd:ee");
        line.Should().Contain("-qmp unix:/run/hc/u-1/qmp.sock,server=on,wait=off -daemonize -pidfile /run/hc/u-1/qemu.pid -name default/vm1,process=hc-u-1");
    }

    [Test]
    public void Build_Kvm_UsesHostCpu()
    {
        var vm = new MicroVm { Uid = "u", ResourceVersion = "1", Spec = Spec() };

        var args = QemuCommandLine.Build(new QemuCommandLine.Inputs(vm, new VmDirectory("/r", "u"), new AcceleratorChoice("kvm", "configured"), "/k", null, [], 123));

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
    public void ResolvePath_WithFilename_JoinsImageDirectoryAndFile()
    {
        QemuCommandLine.ResolvePath("/images/default", "vmlinuz").Should().Be("/images/default/vmlinuz");
        QemuCommandLine.ResolvePath("/images/default/vmlinuz", null).Should().Be("/images/default/vmlinuz");
    }

    [Test]
    public void TapName_IsStableShortAndDistinctPerUidAndIndex()
    {
        var a0 = TapDevices.Name("0f8fad5b-d9cb-469f-a165-70867728950e", 0);

        a0.Should().Be(TapDevices.Name("0f8fad5b-d9cb-469f-a165-70867728950e", 0));
        a0.Length.Should().BeLessThanOrEqualTo(15);
        a0.Should().MatchRegex("^hc[0-9a-f]{10}n0$");
        TapDevices.Name("0f8fad5b-d9cb-469f-a165-70867728950e", 1).Should().NotBe(a0);
        TapDevices.Name("7c9e6679-7425-40de-944b-e07fc1f90ae7", 0).Should().NotBe(a0);
    }

    [Test]
    public void Mac_NoGuestMac_IsLocallyAdministeredAndStable()
    {
        var nic = new NetworkInterfaceSpec { DeviceId = "eth0" };

        var mac = TapDevices.Mac("uid-1", 3, nic);

        mac.Should().Be(TapDevices.Mac("uid-1", 3, nic)).And.MatchRegex("^52:54:[0-9a-f]{2}:[0-9a-f]{2}:[0-9a-f]{2}:03$");
    }
}
