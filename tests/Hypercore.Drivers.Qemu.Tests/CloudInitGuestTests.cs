using System.Diagnostics;
using Hypercore.MicroVms;
using Hypercore.Testing;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// Compatibility with the cloud-init real images carry: a Debian 12 guest with cloud-init
/// (scripts/build-cloudinit-image.sh, cached) boots under QEMU (TCG) with the driver's seed disk, and cloud-init
/// applies the hostname, the generated static network-config and a user-data script.
/// </summary>
[NonParallelizable]
public sealed class CloudInitGuestTests
{
    private QemuTestBed _bed = null!;

    [SetUp]
    public void SetUp() => _bed = new QemuTestBed();

    [TearDown]
    public void TearDown() => _bed.Dispose();

    [Test]
    public async Task Start_DebianWithCloudInit_AppliesHostnameStaticNetworkConfigAndUserData()
    {
        var image = await CloudInitImage.EnsureAsync();
        var root = Path.Combine(_bed.RuntimeDirectory, "rootfs.ext4");
        using (var cp = Process.Start("cp", ["--sparse=always", "--reflink=auto", Path.Combine(image, "rootfs.ext4"), root]))
        {
            await cp.WaitForExitAsync();
            cp.ExitCode.Should().Be(0);
        }

        var driver = _bed.Driver();
        var vm = new MicroVm
        {
            Uid = Guid.NewGuid().ToString(),
            ResourceVersion = "1",
            Spec = new MicroVmSpec
            {
                Id = "ci-guest",
                MemoryInMb = 512,
                Kernel = new KernelSpec { Image = Path.Combine(image, "vmlinuz"), AddNetworkConfig = true },
                Initrd = new InitrdSpec { Image = Path.Combine(image, "initrd.img") },
                RootVolume = new VolumeSpec { Id = "root", HostPath = root },
                Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.81.0.2/24", Gateway = "10.81.0.1", Nameservers = ["10.81.0.53"] }],
                Metadata = new Dictionary<string, string>
                {
                    ["user-data"] = "#!/bin/sh\n" +
                        "echo \"CLOUDINIT-USERDATA host=$(hostname) addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}') " +
                        "route=$(ip -4 route show default | awk '{print $3}') iid=$(cat /var/lib/cloud/data/instance-id)\"\n",
                },
            },
        };

        var sw = Stopwatch.StartNew();
        await driver.StartAsync(vm);
        await _bed.WaitUntilAsync(() => _bed.Console(vm).Contains("CLOUDINIT-USERDATA host="), "cloud-init's user-data output", TimeSpan.FromMinutes(10));
        TestContext.Progress.WriteLine($"cloud-init guest: image build {CloudInitImage.LastBuild.TotalSeconds:0} s, boot to user-data output {sw.Elapsed.TotalSeconds:0} s");

        var console = _bed.Console(vm);
        console.Should().Contain($"CLOUDINIT-USERDATA host=ci-guest addr=10.81.0.2/24 route=10.81.0.1 iid={vm.Uid}",
            "cloud-init found the seed disk (NoCloud), took local-hostname and instance-id from meta-data, applied the v2 network-config and ran the script");

        await driver.CleanupAsync(vm);
        Directory.Exists(_bed.VmDir(vm)).Should().BeFalse();
    }
}
