using Hypercore.Drivers.Firecracker;
using Hypercore.Drivers.Tests.Support;
using Hypercore.Drivers.Vmm;
using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// Issue 15 (cpu10): a driver keeps the hypervisor binary it found on PATH (<see cref="DriverBinary"/>): the reconciler's
/// availability check on every pass stats that one file instead of walking PATH, and a binary removed, PATH changed or a
/// binary installed earlier on PATH is still seen (at once; at once; within <see cref="DriverBinary.RewalkAfter"/>).
/// </summary>
[NonParallelizable] // changes the process's PATH
public sealed class DriverBinaryTests
{
    private const string Name = "hc-cpu10-firecracker";
    private string _dir = null!;
    private string? _savedPath;
    private Scratch _scratch = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("cpu10-binary-").FullName;
        Directory.CreateDirectory(Path.Combine(_dir, "a"));
        Directory.CreateDirectory(Path.Combine(_dir, "b"));
        _savedPath = Environment.GetEnvironmentVariable("PATH");
        Environment.SetEnvironmentVariable("PATH", $"{Path.Combine(_dir, "a")}:{Path.Combine(_dir, "b")}");
        _scratch = new Scratch();
    }

    [TearDown]
    public async Task TearDown()
    {
        Environment.SetEnvironmentVariable("PATH", _savedPath);
        await _scratch.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private string Install(string directory)
    {
        var link = Path.Combine(_dir, directory, Name);
        File.CreateSymbolicLink(link, StandIns.Firecracker);
        return link;
    }

    private FirecrackerDriver Driver(TimeProvider? time = null) => new(Options.Create(new FirecrackerOptions
    {
        BinaryPath = Name,
        RuntimeDirectory = _scratch.RuntimeDirectory,
        RequireKvm = false,
        StartTimeout = TimeSpan.FromSeconds(60),
    }), time ?? TimeProvider.System, NullLogger<FirecrackerDriver>.Instance);

    /// <summary>A script outside PATH that prints <paramref name="version"/>, linked from PATH directory "b".</summary>
    private (string Link, string Script) InstallScript(string version)
    {
        var script = Path.Combine(_dir, "script-" + Name);
        File.WriteAllText(script, $"#!/bin/sh\necho '{version}'\n");
        File.SetUnixFileMode(script, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var link = Path.Combine(_dir, "b", Name);
        File.CreateSymbolicLink(link, script);
        return (link, script);
    }

    [Test]
    public async Task CheckAvailability_KeptBinaryRewrittenInPlace_ReadsItsVersionAgainAtTheNextCheck()
    {
        // Issue 15 (vcache16): the version cache is keyed on the modification time from the stat that checks the kept
        // binary (through the link, so the target's), not on a second stat of its own.
        var (link, script) = InstallScript("firecracker v1.0.0");
        var clock = new ManualClock(); // never advances: every check after the first uses the kept answer
        using var driver = Driver(clock);
        (await driver.CheckAvailabilityAsync()).Detail.Should().Be($"firecracker v1.0.0 ({link})");
        (await driver.CheckAvailabilityAsync()).Detail.Should().Be($"firecracker v1.0.0 ({link})");

        var before = File.GetLastWriteTimeUtc(script);
        File.WriteAllText(script, "#!/bin/sh\necho 'firecracker v2.0.0'\n"); // the same inode, new content
        File.SetLastWriteTimeUtc(script, before.AddMinutes(1));
        var walks = BinaryLocator.CountWalks();

        (await driver.CheckAvailabilityAsync()).Detail.Should().Be($"firecracker v2.0.0 ({link})");
        walks.Value.Should().Be(0, "the kept answer's own stat gave the new time");
        (await driver.CheckAvailabilityAsync()).Detail.Should().Be($"firecracker v2.0.0 ({link})");
    }

    [Test]
    public void Resolve_KeptWalkAndConfiguredPath_GiveTheModificationTimeOfTheFileFound()
    {
        var (link, script) = InstallScript("firecracker v1.0.0");
        var modified = new DateTime(2031, 5, 6, 7, 8, 9, DateTimeKind.Utc).AddTicks(1_234_567);
        File.SetLastWriteTimeUtc(script, modified);
        var expected = new HostFileTime(new DateTimeOffset(modified).ToUnixTimeSeconds(), 123_456_700);
        var binary = new DriverBinary(new ManualClock());

        var (path, tried, walked) = binary.Resolve(Name);
        (path, walked).Should().Be((link, expected), "the walk");
        tried.Should().Equal(Path.Combine(_dir, "a", Name), link);
        binary.Resolve(Name).Modified.Should().Be(expected, "the kept answer");
        binary.Resolve(link).Modified.Should().Be(expected, "a configured path");

        File.Delete(script);
        binary.Resolve(link).Modified.Should().Be(default(HostFileTime), "nothing found");
        binary.Resolve(Name).Modified.Should().Be(default(HostFileTime), "nothing found");
    }

    [Test]
    public async Task CheckAvailability_BareNameFound_DoesNotWalkPathAgainOnEveryCheck()
    {
        var installed = Install("b");
        using var driver = Driver();
        (await driver.CheckAvailabilityAsync()).Detail.Should().Contain(installed); // walks, runs --version

        var walks = BinaryLocator.CountWalks();
        for (var i = 0; i < 20; i++)
        {
            var availability = await driver.CheckAvailabilityAsync();
            availability.Available.Should().BeTrue(availability.Detail);
        }

        walks.Value.Should().BeLessThanOrEqualTo(1, "20 checks within a second stat the binary found, they do not walk PATH 20 times");
    }

    [Test]
    public async Task CheckAvailabilityAndStart_BinaryRemovedAfterAFirstResolve_ReportNotFoundAtOnce()
    {
        var installed = Install("b");
        using var driver = Driver();
        (await driver.CheckAvailabilityAsync()).Available.Should().BeTrue();

        File.Delete(installed);

        var message = $"firecracker binary not found: tried {Path.Combine(_dir, "a", Name)}, {Path.Combine(_dir, "b", Name)}";
        var availability = await driver.CheckAvailabilityAsync();
        availability.Available.Should().BeFalse();
        availability.Detail.Should().Be(message, "the reconciler writes this as the VM's ProviderUnavailable condition");
        var start = () => driver.StartAsync(_scratch.Vm("removed"));
        (await start.Should().ThrowAsync<DriverException>()).Which.Should()
            .Match<DriverException>(e => e.Reason == Conditions.ReasonProviderUnavailable && e.Message == message);

        Install("a");
        (await driver.CheckAvailabilityAsync()).Available.Should().BeTrue("a missing binary is looked for again on every call");
    }

    [Test]
    public async Task CheckAvailability_PathChanged_UsesTheNewPathAtOnce()
    {
        Install("b");
        using var driver = Driver();
        (await driver.CheckAvailabilityAsync()).Available.Should().BeTrue();

        Environment.SetEnvironmentVariable("PATH", Path.Combine(_dir, "a"));

        (await driver.CheckAvailabilityAsync()).Detail.Should().Be($"firecracker binary not found: tried {Path.Combine(_dir, "a", Name)}");
    }

    [Test]
    public void Resolve_BinaryInstalledEarlierOnPath_IsUsedOnceRewalkAfterHasPassed()
    {
        var later = Install("b");
        var clock = new ManualClock();
        var binary = new DriverBinary(clock);
        binary.Resolve(Name).Path.Should().Be(later);

        var earlier = Install("a");
        clock.Advance(DriverBinary.RewalkAfter);

        binary.Resolve(Name).Path.Should().Be(earlier);
    }

    [Test]
    public void Resolve_ConfiguredPath_IsLookedAtOnEveryCall()
    {
        var installed = Install("b");
        var binary = new DriverBinary(new ManualClock());
        binary.Resolve(installed).Path.Should().Be(installed);

        File.Delete(installed);

        var (path, tried, _) = binary.Resolve(installed);
        path.Should().BeNull("a configured path is one stat on every call and is not kept");
        tried.Should().Equal(installed);
    }

    private sealed class ManualClock : TimeProvider
    {
        private long _ticks = 1;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }
}
