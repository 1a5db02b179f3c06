using Hypercore.Api.Tests.Hosting;
using Hypercore.Consoles;
using Hypercore.Contracts.VmApi;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Logs;

/// <summary>The rotator over a real store and the drivers' console paths (never status).</summary>
public sealed class ConsoleLogRotatorTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync();

    [TearDown]
    public async Task TearDown() => await _server.DisposeAsync();

    [Test]
    public async Task RotateAll_LogOverTheCap_IsRotated_AndOneUnderItAndTheStatusPathAreLeftAlone()
    {
        var big = await CreateWithConsoleAsync("big", new string('b', 5000));
        var small = await CreateWithConsoleAsync("small", new string('s', 100));
        var decoy = Path.Combine(_server.Root.FullName, "decoy.log");
        await File.WriteAllTextAsync(decoy, new string('d', 9000));
        await _server.Store.Inner.UpdateStatusAsync(small.Key, small.Status with { ConsoleLogPath = decoy }, small.ResourceVersion);
        var rotator = new ConsoleLogRotator(
            _server.Store.Inner,
            _server.Services.GetRequiredService<DriverRegistry>(),
            Options.Create(new ConsoleLogOptions { MaxBytes = 4096 }),
            TimeProvider.System,
            NullLogger<ConsoleLogRotator>.Instance);

        var rotated = await rotator.RotateAllAsync(CancellationToken.None);

        rotated.Should().Be(1);
        new FileInfo(ConsoleOf(big)).Length.Should().Be(0);
        (await File.ReadAllTextAsync(ConsoleOf(big) + ".1")).Should().Be(new string('b', 5000));
        new FileInfo(ConsoleOf(small)).Length.Should().Be(100);
        File.Exists(ConsoleOf(small) + ".1").Should().BeFalse();
        new FileInfo(decoy).Length.Should().Be(9000, "a path in status is never touched");
        File.Exists(decoy + ".1").Should().BeFalse();
    }

    [Test]
    public void Options_CapBelow4096_FailsValidation()
    {
        using var provider = new ServiceCollection().AddConsoleLogRotation(o => o.MaxBytes = 100).BuildServiceProvider();

        var act = () => provider.GetRequiredService<IOptions<ConsoleLogOptions>>().Value;

        act.Should().Throw<OptionsValidationException>().WithMessage("*Consoles:MaxBytes must be at least 4096, got 100*");
    }

    private string ConsoleOf(MicroVm vm) => _server.Drivers.Single(d => d.Name == "qemu").ConsoleLogPath(vm);

    private async Task<MicroVm> CreateWithConsoleAsync(string id, string content)
    {
        await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec { Id = id, Namespace = "demo", Vcpu = 1, MemoryInMb = 128, Kernel = new Kernel { Image = "/boot/vmlinuz" } },
        });
        var vm = (await _server.Store.Inner.GetAsync(new VmKey("demo", id)))!;
        var path = ConsoleOf(vm);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await File.WriteAllTextAsync(path, content);
        return vm;
    }
}
