using Hypercore.Drivers;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Qemu.Tests;

public sealed class QemuOptionsTests
{
    [Test]
    public void Validate_Defaults_Succeeds()
    {
        new QemuOptionsValidator().Validate(null, new QemuOptions()).Succeeded.Should().BeTrue();
    }

    [Test]
    public void Validate_BadValues_FailsNamingEachSetting()
    {
        var options = new QemuOptions
        {
            BinaryPath = " ",
            Accelerator = "hvf",
            RuntimeDirectory = "relative/run",
            KvmProbeTimeout = TimeSpan.Zero,
            StartTimeout = TimeSpan.FromSeconds(-1),
            TcgTscKhz = -5,
        };

        var result = new QemuOptionsValidator().Validate(null, options);

        result.Failed.Should().BeTrue();
        result.Failures.Should().HaveCount(6);
        result.FailureMessage.Should().Contain("Qemu:BinaryPath").And.Contain("Qemu:Accelerator").And.Contain("\"hvf\"")
            .And.Contain("Qemu:RuntimeDirectory").And.Contain("Qemu:KvmProbeTimeout").And.Contain("Qemu:StartTimeout").And.Contain("Qemu:TcgTscKhz");
    }

    [Test]
    public void Validate_RuntimeDirectoryTooLongForSocketPath_Fails()
    {
        var options = new QemuOptions { RuntimeDirectory = "/" + new string('r', 80) };

        new QemuOptionsValidator().Validate(null, options).FailureMessage.Should().Contain("108-byte");
    }

    [Test]
    public void AddQemuDriver_BindsSectionThenConfigure_AndRegistersTheDriver()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Qemu:Accelerator"] = "tcg",
            ["Qemu:KvmProbeTimeout"] = "00:00:03",
            ["Qemu:RuntimeDirectory"] = "/from/config",
        }).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(config).AddLogging();
        services.AddQemuDriver(o => o.RuntimeDirectory = "/from/code");
        services.AddQemuDriver(); // a second call adds no second driver

        using var sp = services.BuildServiceProvider();
        var options = sp.GetRequiredService<IOptions<QemuOptions>>().Value;

        options.Accelerator.Should().Be("tcg");
        options.KvmProbeTimeout.Should().Be(TimeSpan.FromSeconds(3));
        options.RuntimeDirectory.Should().Be("/from/code");
        sp.GetServices<IHypervisorDriver>().Should().ContainSingle().Which.Name.Should().Be("qemu");
    }

    [Test]
    public void AddQemuDriver_InvalidOptions_FailValidation()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddQemuDriver(o => o.Accelerator = "xen");

        using var sp = services.BuildServiceProvider();
        var act = () => sp.GetRequiredService<IOptions<QemuOptions>>().Value;

        act.Should().Throw<OptionsValidationException>().WithMessage("*Qemu:Accelerator*xen*");
    }
}
