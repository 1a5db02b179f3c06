using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// The real KVM check stays on in production (RequireKvm, /dev/kvm by default); its device path is a setting, so a
/// missing device is reported naming the path, and a file standing in for it lets the stand-ins run anywhere.
/// </summary>
[NonParallelizable]
public sealed class KvmDeviceTests
{
    private Scratch _scratch = null!;

    [SetUp]
    public void SetUp() => _scratch = new Scratch();

    [TearDown]
    public async Task TearDown() => await _scratch.DisposeAsync();

    [Test]
    public void Defaults_RequireKvmAtDevKvm()
    {
        new FirecrackerOptions().RequireKvm.Should().BeTrue();
        new FirecrackerOptions().KvmDevicePath.Should().Be("/dev/kvm");
        new CloudHypervisorOptions().RequireKvm.Should().BeTrue();
        new CloudHypervisorOptions().KvmDevicePath.Should().Be("/dev/kvm");
    }

    [Test]
    public async Task CheckAvailability_KvmDeviceMissing_UnavailableNamingThePath()
    {
        var missing = Path.Combine(_scratch.Root, "no-kvm");

        var fc = await Firecracker(missing).CheckAvailabilityAsync();
        var ch = await CloudHypervisor(missing).CheckAvailabilityAsync();

        fc.Available.Should().BeFalse();
        fc.Detail.Should().Be($"{missing} not found: firecracker needs KVM on this node (the configured KVM device; default /dev/kvm)");
        ch.Available.Should().BeFalse();
        ch.Detail.Should().Be($"{missing} not found: cloud-hypervisor needs KVM on this node (the configured KVM device; default /dev/kvm)");
    }

    [Test]
    public async Task CheckAvailability_KvmDevicePresent_Available()
    {
        var device = _scratch.File("fake-kvm", "stands in for /dev/kvm\n");

        (await Firecracker(device).CheckAvailabilityAsync()).Available.Should().BeTrue();
        (await CloudHypervisor(device).CheckAvailabilityAsync()).Available.Should().BeTrue();
    }

    [Test]
    public void Problem_DefaultPathMissing_SaysSoWithoutTheConfiguredNote() =>
        Hypercore.Drivers.Vmm.KvmDevice.Problem("/dev/kvm", "firecracker")
            .Should().Be(File.Exists("/dev/kvm") ? null : "/dev/kvm not found: firecracker needs KVM on this node");

    private FirecrackerDriver Firecracker(string kvm) => new(
        Options.Create(new FirecrackerOptions { BinaryPath = StandIns.Firecracker, RuntimeDirectory = _scratch.RuntimeDirectory, KvmDevicePath = kvm }),
        TimeProvider.System,
        NullLogger<FirecrackerDriver>.Instance);

    private CloudHypervisorDriver CloudHypervisor(string kvm) => new(
        Options.Create(new CloudHypervisorOptions { BinaryPath = StandIns.CloudHypervisor, RuntimeDirectory = _scratch.RuntimeDirectory, KvmDevicePath = kvm }),
        TimeProvider.System,
        NullLogger<CloudHypervisorDriver>.Instance);
}
