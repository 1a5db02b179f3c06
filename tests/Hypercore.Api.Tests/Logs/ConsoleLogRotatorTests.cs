using Hypercore.Consoles;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Logs;

/// <summary>The rotator over a run directory laid out as the drivers lay it out: run/&lt;provider&gt;/&lt;uid&gt;/console.log.</summary>
public sealed class ConsoleLogRotatorTests
{
    private string _run = null!;

    [SetUp]
    public void SetUp() => _run = Directory.CreateTempSubdirectory("hypercore-rotator-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_run, recursive: true);

    [Test]
    public void RotateAll_LogsOverTheCapOfEveryProvider_AreRotated_AndOnesUnderItAreLeftAlone()
    {
        var big = Console("qemu", "uid-big", new string('b', 5000));
        var other = Console("firecracker", "uid-fc", new string('f', 4097));
        var small = Console("qemu", "uid-small", new string('s', 100));

        Rotator(4096).RotateAll().Should().Be(2);

        new FileInfo(big).Length.Should().Be(0);
        File.ReadAllText(big + ".1").Should().Be(new string('b', 5000));
        File.ReadAllText(other + ".1").Should().HaveLength(4097);
        new FileInfo(small).Length.Should().Be(100);
        File.Exists(small + ".1").Should().BeFalse();
    }

    [Test]
    public void RotateAll_SymlinkedVmDirectory_IsNotFollowed()
    {
        var outside = Directory.CreateTempSubdirectory("hypercore-rotator-outside-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(outside, "console.log"), new string('x', 9000));
            Directory.CreateDirectory(Path.Combine(_run, "qemu"));
            Directory.CreateSymbolicLink(Path.Combine(_run, "qemu", "planted"), outside);

            Rotator(4096).RotateAll().Should().Be(0);

            new FileInfo(Path.Combine(outside, "console.log")).Length.Should().Be(9000);
        }
        finally
        {
            Directory.Delete(outside, recursive: true);
        }
    }

    [Test]
    public void RotateAll_NoRunDirectoryYet_RotatesNothing() =>
        new ConsoleLogRotator(Options.Create(new ConsoleLogOptions { RunDirectory = Path.Combine(_run, "missing") }), TimeProvider.System, NullLogger<ConsoleLogRotator>.Instance)
            .RotateAll().Should().Be(0);

    [TestCase(100, "/run", "*Consoles:MaxBytes must be at least 4096, got 100*")]
    [TestCase(4096, "run", "*Consoles:RunDirectory must be an absolute path, got \"run\"*")]
    public void Options_Invalid_FailValidation(long max, string run, string message)
    {
        using var provider = new ServiceCollection().AddConsoleLogRotation(o => (o.MaxBytes, o.RunDirectory) = (max, run)).BuildServiceProvider();

        var act = () => provider.GetRequiredService<IOptions<ConsoleLogOptions>>().Value;

        act.Should().Throw<OptionsValidationException>().WithMessage(message);
    }

    private ConsoleLogRotator Rotator(long max) =>
        new(Options.Create(new ConsoleLogOptions { RunDirectory = _run, MaxBytes = max }), TimeProvider.System, NullLogger<ConsoleLogRotator>.Instance);

    private string Console(string provider, string uid, string content)
    {
        var dir = Directory.CreateDirectory(Path.Combine(_run, provider, uid)).FullName;
        var path = Path.Combine(dir, "console.log");
        File.WriteAllText(path, content);
        return path;
    }
}
