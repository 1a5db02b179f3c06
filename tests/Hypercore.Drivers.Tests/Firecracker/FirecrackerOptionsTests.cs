using Hypercore.Drivers.Firecracker;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Firecracker;

public sealed class FirecrackerOptionsTests
{
    [Test]
    public void Validate_Defaults_Succeeds() =>
        new FirecrackerOptionsValidator().Validate(null, new FirecrackerOptions()).Succeeded.Should().BeTrue();

    [Test]
    public void Validate_JailerWithoutUid_FailsNamingTheKeys()
    {
        var options = new FirecrackerOptions { Jailer = { Enabled = true } };

        var result = new FirecrackerOptionsValidator().Validate(null, options);

        result.Failed.Should().BeTrue();
        result.FailureMessage.Should().Contain("Firecracker:Jailer:Uid");
    }

    [Test]
    public void Validate_JailerIdsWithoutTheJailer_FailRatherThanBeIgnored()
    {
        var result = new FirecrackerOptionsValidator().Validate(null, new FirecrackerOptions { Jailer = { Uid = 1000 } });

        result.FailureMessage.Should().Contain("Firecracker:Jailer:Uid only applies with Firecracker:Jailer:BinaryPath");
    }

    [Test]
    public void AddFirecrackerDriver_BindsItsOwnSection_ThenTheCallersConfigureRuns()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Firecracker:BinaryPath"] = "/opt/fc/firecracker",
            ["Firecracker:ApiConnectRetries"] = "7",
            ["Firecracker:RuntimeDirectory"] = "/from/config",
        });
        builder.Services.AddFirecrackerDriver(o => o.RuntimeDirectory = "/from/code");
        using var host = builder.Build();

        var options = host.Services.GetRequiredService<IOptions<FirecrackerOptions>>().Value;

        (options.BinaryPath, options.ApiConnectRetries, options.RuntimeDirectory).Should().Be(("/opt/fc/firecracker", 7, "/from/code"));
    }

    [Test]
    public void Validate_RelativeRuntimeDirectory_Fails() =>
        new FirecrackerOptionsValidator().Validate(null, new FirecrackerOptions { RuntimeDirectory = "run/fc" })
            .FailureMessage.Should().Contain("Firecracker:RuntimeDirectory must be an absolute path");

    [Test]
    public void AddFirecrackerDriver_RegistersTheDriverByName()
    {
        var services = new ServiceCollection().AddLogging().AddFirecrackerDriver(o => o.RuntimeDirectory = "/tmp/hcd-di");
        using var provider = services.BuildServiceProvider();

        provider.GetServices<IHypervisorDriver>().Should().ContainSingle(d => d.Name == "firecracker");
    }

    [Test]
    public async Task AddFirecrackerDriver_InvalidOptions_FailTheHostAtStart()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddFirecrackerDriver(o => o.ApiTimeout = TimeSpan.Zero);
        using var host = builder.Build();

        var act = () => host.StartAsync();

        (await act.Should().ThrowAsync<OptionsValidationException>()).Which.Message.Should().Contain("Firecracker:ApiTimeout must be positive");
    }

    [Test]
    public void JailerArguments_CarryIdUidGidChrootCgroupsAndTheApiSocket()
    {
        var jailer = new JailerOptions { Enabled = true, Uid = 123, Gid = 456, ChrootBaseDir = "/srv/jail", Cgroups = ["cpu.max=50000 100000"], NetNs = "/var/run/netns/vms" };

        var args = JailerCommand.Arguments(jailer, "/usr/bin/firecracker", "vm-1");

        args.Should().Equal(
            "--id", "vm-1", "--exec-file", "/usr/bin/firecracker", "--uid", "123", "--gid", "456",
            "--chroot-base-dir", "/srv/jail", "--cgroup-version", "2", "--cgroup", "cpu.max=50000 100000",
            "--netns", "/var/run/netns/vms", "--", "--api-sock", "/run/firecracker.socket");
        JailerCommand.JailRoot(jailer, "/usr/bin/firecracker", "vm-1").Should().Be("/srv/jail/firecracker/vm-1/root");
    }
}
