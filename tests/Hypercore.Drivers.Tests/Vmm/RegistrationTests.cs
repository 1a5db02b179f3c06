using Hypercore.Drivers.CloudHypervisor;
using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Unikernel;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>All three drivers plug in by name through one registration each, with options validated at start.</summary>
public sealed class RegistrationTests
{
    [Test]
    public void AddAllDrivers_RegistryResolvesEachProviderName()
    {
        var services = new ServiceCollection().AddLogging()
            .AddFirecrackerDriver(o => o.RuntimeDirectory = "/tmp/hcd-reg/fc")
            .AddCloudHypervisorDriver(o => o.RuntimeDirectory = "/tmp/hcd-reg/ch")
            .AddUnikernelDriver(o => o.RuntimeDirectory = "/tmp/hcd-reg/uk")
            .AddFirecrackerDriver(); // a second call adds nothing
        using var provider = services.BuildServiceProvider();

        var registry = new DriverRegistry(provider.GetServices<IHypervisorDriver>(), "firecracker");

        registry.Names.Should().BeEquivalentTo(["firecracker", "cloud-hypervisor", "unikernel"]);
        registry.TryGet("", out var byDefault).Should().BeTrue();
        byDefault.Name.Should().Be("firecracker");
    }

    [Test]
    public async Task AddUnikernelDriver_BadAccelerator_FailsTheHostAtStart()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddUnikernelDriver(o => o.Accelerator = "hvf");
        using var host = builder.Build();

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Contain("Unikernel:Accelerator must be auto, kvm or tcg");
    }

    [Test]
    public async Task AddCloudHypervisorDriver_RelativeRuntimeDirectory_FailsTheHostAtStart()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddCloudHypervisorDriver(o => o.RuntimeDirectory = "run");
        using var host = builder.Build();

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Contain("CloudHypervisor:RuntimeDirectory must be an absolute path");
    }
}
