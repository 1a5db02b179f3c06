using Hypercore.Testing;
using System.Text.Json.Nodes;
using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// What the <see cref="VmmDriver"/> skeleton gives every hypervisor, checked through Firecracker and Cloud
/// Hypervisor (stand-ins) by what each VMM was actually told over its API: scratch disks made and attached,
/// kernel.filename resolved, add_network_config's ip= argument, read-only volumes, the host-path policy refusing
/// before any process starts, and scratch-disk limits.
/// </summary>
[TestFixture("firecracker")]
[TestFixture("cloud-hypervisor")]
[NonParallelizable]
public sealed class SkeletonTests(string provider)
{
    private Scratch _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = new Scratch();

    [TearDown]
    public async Task TearDown() => await _scratch.DisposeAsync();

    private IHypervisorDriver Driver(HostPathPolicy? policy = null) => provider switch
    {
        "firecracker" => new FirecrackerDriver(
            Options.Create(new FirecrackerOptions { BinaryPath = StandIns.Firecracker, RuntimeDirectory = _scratch.RuntimeDirectory, RequireKvm = false, StartTimeout = TimeSpan.FromSeconds(60) }),
            TimeProvider.System, NullLogger<FirecrackerDriver>.Instance, policy),
        _ => new CloudHypervisorDriver(
            Options.Create(new CloudHypervisorOptions { BinaryPath = StandIns.CloudHypervisor, RuntimeDirectory = _scratch.RuntimeDirectory, RequireKvm = false, StartTimeout = TimeSpan.FromSeconds(60) }),
            TimeProvider.System, NullLogger<CloudHypervisorDriver>.Instance, policy),
    };

    /// <summary>The VMM's own view: kernel, cmdline, and each disk's (id, path, read-only).</summary>
    private async Task<(string Kernel, string Cmdline, IReadOnlyList<(string Id, string Path, bool ReadOnly)> Disks)> ConfigAsync(MicroVm vm)
    {
        using var api = new UnixSocketApi(Path.Combine(_scratch.VmDirectory(vm), "api.sock"),
            new ApiPolicy(TimeSpan.FromSeconds(10), 3, TimeSpan.FromMilliseconds(100), TimeSpan.FromSeconds(1)), TimeProvider.System);
        if (provider == "firecracker")
        {
            var fc = (await api.GetAsync("/vm/config", default)).Json!;
            return (fc["boot-source"]!["kernel_image_path"]!.GetValue<string>(), fc["boot-source"]!["boot_args"]!.GetValue<string>(),
                fc["drives"]!.AsArray().Select(d => (d!["drive_id"]!.GetValue<string>(), d["path_on_host"]!.GetValue<string>(), d["is_read_only"]!.GetValue<bool>())).ToList());
        }

        var ch = (await api.GetAsync("/api/v1/vm.info", default)).Json!["config"]!;
        return (ch["payload"]!["kernel"]!.GetValue<string>(), ch["payload"]!["cmdline"]!.GetValue<string>(),
            (ch["disks"] as JsonArray ?? []).Select(d => (d!["id"]!.GetValue<string>(), d["path"]!.GetValue<string>(), d["readonly"]!.GetValue<bool>())).ToList());
    }

    [Test]
    public async Task Start_ScratchDisk_IsMadeSparseInTheVmDirectoryAndAttached()
    {
        var driver = Driver();
        var vm = _scratch.Vm("sk-scratch", s => s with { AdditionalVolumes = [new VolumeSpec { Id = "tmp", SizeInMb = 64 }] });

        await driver.StartAsync(vm);

        var scratch = Path.Combine(_scratch.VmDirectory(vm), "scratch-tmp.img");
        new FileInfo(scratch).Length.Should().Be(64L * 1024 * 1024);
        (await ConfigAsync(vm)).Disks.Should().Contain(("tmp", scratch, false), "the VMM gets the file the skeleton made, not an empty path");
        await driver.CleanupAsync(vm);
        File.Exists(scratch).Should().BeFalse("cleanup removes the VM directory with its scratch disks");
    }

    [Test]
    public async Task Start_KernelFilename_IsResolvedInsideTheImage()
    {
        var driver = Driver();
        var vm = _scratch.Vm("sk-filename", s => s with { Kernel = s.Kernel with { Image = _scratch.Images, Filename = "vmlinux" } });

        await driver.StartAsync(vm);

        (await ConfigAsync(vm)).Kernel.Should().Be(_scratch.Kernel);
    }

    [Test]
    public async Task Start_AddNetworkConfig_AppendsTheIpKernelArgument()
    {
        Privileges.RequireRoot("creating tap devices");

        var driver = Driver();
        var vm = _scratch.Vm("sk-ipconf", s => s with
        {
            Kernel = s.Kernel with { AddNetworkConfig = true },
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.9.8.7/24", Gateway = "10.9.8.1" }],
        });

        await driver.StartAsync(vm);

        // The ip= argument for guests without cloud-init; Firecracker then points cloud-init at MMDS (the others use a seed disk).
        (await ConfigAsync(vm)).Cmdline.Should().Contain("ip=10.9.8.7::10.9.8.1:255.255.255.0::eth0:off" +
            (provider == "firecracker" ? " ds=nocloud-net;s=http://169.254.169.254/latest/ network-config=" : ""));
        await driver.CleanupAsync(vm);
        TapDevices.Exists(TapDevices.TapName(vm.Uid, 0)).Should().BeFalse();
    }

    [Test]
    public async Task Start_ReadOnlyVolume_IsReadOnlyForTheVmm()
    {
        var driver = Driver();
        var data = _scratch.File("ro.img", "ro");
        var vm = _scratch.Vm("sk-ro", s => s with { AdditionalVolumes = [new VolumeSpec { Id = "ro", HostPath = data, IsReadOnly = true }] });

        await driver.StartAsync(vm);

        var disks = (await ConfigAsync(vm)).Disks;
        disks.Should().Contain(("ro", data, true)).And.Contain(("root", _scratch.RootDisk, false));
    }

    [Test]
    public async Task Start_VolumeOutsideTheRoots_RefusedWithHostPathNotAllowedAndNothingStarted()
    {
        var policy = new HostPathPolicy(new HostAccessOptions { ImageDirectories = [_scratch.Images], VolumeRoots = [_scratch.Images] });
        var driver = Driver(policy);
        var vm = _scratch.Vm("sk-shadow", s => s with { AdditionalVolumes = [new VolumeSpec { Id = "x", HostPath = "/etc/shadow" }] });

        var act = () => driver.StartAsync(vm);

        var ex = (await act.Should().ThrowAsync<HostPathNotAllowedException>()).Which;
        ex.Reason.Should().Be("HostPathNotAllowed");
        ex.Message.Should().Contain("/etc/shadow").And.Contain("--volume-roots");
        File.Exists(Path.Combine(_scratch.VmDirectory(vm), "vm.json")).Should().BeFalse("no process was launched");
        (await driver.InspectAsync(vm)).State.Should().Be(LiveState.NotFound);
    }

    // Images (issue 11): files the images start step made are trusted only for the fields that held a reference.
    private (HostPathPolicy Policy, string CacheKernel, string CacheDisk) ImageCacheOutsideTheRoots()
    {
        var cache = Path.Combine(_scratch.Root, "image-cache");
        Directory.CreateDirectory(cache);
        var kernel = Path.Combine(cache, "vmlinux");
        var disk = Path.Combine(cache, "disk.ext4");
        System.IO.File.WriteAllText(kernel, "cached kernel");
        System.IO.File.WriteAllText(disk, "cached disk, never written by a VM");
        return (new HostPathPolicy(new HostAccessOptions { ImageDirectories = [_scratch.Images], VolumeRoots = [_scratch.Images] }), kernel, disk);
    }

    [Test]
    public async Task Start_ImageStepView_CachedKernelTrustedAndWritableDiskGetsItsOwnCopy()
    {
        var (policy, kernel, disk) = ImageCacheOutsideTheRoots();
        var driver = Driver(policy);
        var stored = _scratch.Vm("sk-image", s => s with
        {
            Kernel = s.Kernel with { Image = "localhost:5000/hypercore/default:1" },
            AdditionalVolumes = [new VolumeSpec { Id = "data", ContainerSource = "localhost:5000/rootfs:1" },
                new VolumeSpec { Id = "shared", ContainerSource = "localhost:5000/rootfs:1", IsReadOnly = true }],
        });
        var context = new Reconciliation.StartContext(stored);
        context.Vm = stored with
        {
            Spec = stored.Spec with
            {
                Kernel = stored.Spec.Kernel with { Image = kernel },
                AdditionalVolumes = stored.Spec.AdditionalVolumes.Select(v => v with { HostPath = disk, ContainerSource = null }).ToList(),
            },
        };
        context.TrustedPaths.Add(kernel);
        context.TrustedPaths.Add(disk);
        context.Items[Images.ImageSources.CopyOnWriteVolumesItem] = new HashSet<string> { "data" };

        await driver.StartAsync(context);

        var config = await ConfigAsync(stored);
        config.Kernel.Should().Be(kernel);
        var copy = Path.Combine(_scratch.VmDirectory(stored), "image-data.raw");
        config.Disks.Should().Contain(("data", copy, false)).And.Contain(("shared", disk, true));
        System.IO.File.ReadAllText(copy).Should().Be("cached disk, never written by a VM");
        await driver.CleanupAsync(stored);
        System.IO.File.Exists(copy).Should().BeFalse("the VM's copy goes with its directory");
        System.IO.File.Exists(disk).Should().BeTrue("the cached disk is the cache's");
    }

    [Test]
    public async Task Start_ImageVolumeWithSizeInMb_ItsOwnCopyIsGrownToThatSizeSparse()
    {
        var (policy, kernel, disk) = ImageCacheOutsideTheRoots();
        var driver = Driver(policy);
        var stored = _scratch.Vm("sk-sized", s => s with
        {
            Kernel = s.Kernel with { Image = "localhost:5000/hypercore/default:1" },
            AdditionalVolumes = [new VolumeSpec { Id = "data", ContainerSource = "localhost:5000/rootfs:1", SizeInMb = 64 }],
        });
        var context = new Reconciliation.StartContext(stored);
        context.Vm = stored with
        {
            Spec = stored.Spec with
            {
                Kernel = stored.Spec.Kernel with { Image = kernel },
                AdditionalVolumes = [stored.Spec.AdditionalVolumes[0] with { HostPath = disk, ContainerSource = null }],
            },
        };
        context.TrustedPaths.Add(kernel);
        context.TrustedPaths.Add(disk);

        await driver.StartAsync(context);

        var copy = Path.Combine(_scratch.VmDirectory(stored), "image-data.raw");
        new FileInfo(copy).Length.Should().Be(64L * 1024 * 1024, "size_in_mb is the size of the VM's own view");
        System.IO.File.ReadAllText(copy).Should().StartWith("cached disk, never written by a VM");
        new FileInfo(disk).Length.Should().BeLessThan(1024, "the cached disk is not grown");
        await driver.CleanupAsync(stored);
    }

    [Test]
    public async Task Start_CallerNamesACachePathAsHostPath_RefusedEvenWhenAStepTrustsThatPath()
    {
        var (policy, kernel, disk) = ImageCacheOutsideTheRoots();
        var driver = Driver(policy);
        var vm = _scratch.Vm("sk-sneak", s => s with
        {
            Kernel = s.Kernel with { Image = "localhost:5000/hypercore/default:1" },
            AdditionalVolumes = [new VolumeSpec { Id = "img", ContainerSource = "localhost:5000/rootfs:1", IsReadOnly = true },
                new VolumeSpec { Id = "sneak", HostPath = disk }],
        });
        var context = new Reconciliation.StartContext(vm);
        context.Vm = vm with
        {
            Spec = vm.Spec with
            {
                Kernel = vm.Spec.Kernel with { Image = kernel },
                AdditionalVolumes = [vm.Spec.AdditionalVolumes[0] with { HostPath = disk, ContainerSource = null }, vm.Spec.AdditionalVolumes[1]],
            },
        };
        context.TrustedPaths.Add(kernel);
        context.TrustedPaths.Add(disk);

        var act = () => driver.StartAsync(context);

        var ex = (await act.Should().ThrowAsync<HostPathNotAllowedException>()).Which;
        ex.Message.Should().Contain("volume \"sneak\"").And.Contain(disk).And.Contain("--volume-roots");
        File.Exists(Path.Combine(_scratch.VmDirectory(vm), "vm.json")).Should().BeFalse("no process was launched");
    }

    [Test]
    public async Task Start_CallerNamesACachedKernelPath_RefusedWithoutAReferenceInTheStoredSpec()
    {
        var (policy, kernel, _) = ImageCacheOutsideTheRoots();
        var driver = Driver(policy);
        var vm = _scratch.Vm("sk-kernel", s => s with { Kernel = s.Kernel with { Image = kernel } });
        var context = new Reconciliation.StartContext(vm);
        context.TrustedPaths.Add(kernel);

        var act = () => driver.StartAsync(context);

        (await act.Should().ThrowAsync<HostPathNotAllowedException>()).Which.Message.Should().Contain(kernel).And.Contain("--kernel-roots");
    }

    [Test]
    public async Task Start_ScratchDiskOverTheLimit_RefusedBeforeAnyFileIsMade()
    {
        var policy = new HostPathPolicy(new HostAccessOptions { ImageDirectories = [_scratch.Images], VolumeRoots = [_scratch.Images], MaxScratchDiskMiBPerVm = 100 });
        var driver = Driver(policy);
        var vm = _scratch.Vm("sk-big", s => s with { AdditionalVolumes = [new VolumeSpec { Id = "big", SizeInMb = 200 }] });

        var act = () => driver.StartAsync(vm);

        (await act.Should().ThrowAsync<ScratchDiskRefusedException>()).Which.Message.Should().Contain("200 MiB exceed the per-VM limit of 100 MiB");
        File.Exists(Path.Combine(_scratch.VmDirectory(vm), "scratch-big.img")).Should().BeFalse();
    }

    [Test]
    public async Task List_FreshDriverInstance_AdoptsFromTheOneRecordFormat()
    {
        var vm = _scratch.Vm("sk-adopt");
        var started = await Driver().StartAsync(vm);

        var record = File.ReadAllText(Path.Combine(_scratch.VmDirectory(vm), "vm.json"));
        var adopted = (await Driver().ListAsync()).Should().ContainSingle(i => i.Uid == vm.Uid).Which;

        record.Should().Contain($"\"provider\": \"{provider}\"").And.Contain("\"pid_start_ticks\"");
        adopted.Pid.Should().Be(started.Pid);
        adopted.State.Should().Be(LiveState.Running);
    }
}
