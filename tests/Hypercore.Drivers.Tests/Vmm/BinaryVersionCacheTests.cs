using Hypercore.Drivers.Vmm;
using Hypercore.HostAccess;

namespace Hypercore.Drivers.Tests.Vmm;

/// <summary>
/// Issue 15 (vcache16): <see cref="BinaryVersionCache"/> is keyed on the modification time its caller read in the stat
/// that checked the binary, and makes no stat of its own (it was a second path lookup of the same file on every
/// availability check). A new time from the check means the version is read again.
/// </summary>
public sealed class BinaryVersionCacheTests
{
    private string _dir = null!;
    private string _binary = null!;
    private string _versionFile = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("vcache16-").FullName;
        _versionFile = Path.Combine(_dir, "version");
        File.WriteAllText(_versionFile, "stand-in v1\n");
        _binary = Path.Combine(_dir, "hypervisor");
        File.WriteAllText(_binary, $"#!/bin/sh\ncat '{_versionFile}'\n"); // prints what the version file says, on every run
        File.SetUnixFileMode(_binary, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private HostFileTime Checked()
    {
        HostExecutable.Is(_binary, out var modified).Should().BeTrue();
        return modified;
    }

    [Test]
    public async Task GetAsync_SameModifiedTime_RunsVersionOnce()
    {
        var cache = new BinaryVersionCache("fallback");
        var stamp = Checked();
        (await cache.GetAsync(_binary, stamp, CancellationToken.None)).Should().Be("stand-in v1");

        File.WriteAllText(_versionFile, "stand-in v2\n"); // would show if --version ran again

        (await cache.GetAsync(_binary, stamp, CancellationToken.None)).Should().Be("stand-in v1");
        cache.Cached(_binary, stamp).Should().Be("stand-in v1");
    }

    [Test]
    public async Task Cached_TheTimeGivenByTheCheck_IsTheKeyWithNoStatOfItsOwn()
    {
        var cache = new BinaryVersionCache("fallback");
        var stamp = Checked();
        (await cache.GetAsync(_binary, stamp, CancellationToken.None)).Should().Be("stand-in v1");

        // The file changes after the check: the answer for that check's time is still the one read for it (a cache that
        // stat'd the file again would miss here); the next check's new time is a miss, and its version is read again.
        File.WriteAllText(_versionFile, "stand-in v2\n");
        File.SetLastWriteTimeUtc(_binary, File.GetLastWriteTimeUtc(_binary).AddMinutes(1));
        var next = Checked();

        next.Should().NotBe(stamp);
        cache.Cached(_binary, stamp).Should().Be("stand-in v1", "the key is the time the caller's stat gave");
        cache.Cached(_binary, next).Should().BeNull("a new modification time from the check is a new binary");
        (await cache.GetAsync(_binary, next, CancellationToken.None)).Should().Be("stand-in v2");
        cache.Cached(_binary, next).Should().Be("stand-in v2");
        cache.Cached(_binary, stamp).Should().BeNull("one binary is kept: the one read last");
    }

    [Test]
    public async Task Cached_OtherPathSameTime_IsAMiss()
    {
        var cache = new BinaryVersionCache("fallback");
        var stamp = Checked();
        await cache.GetAsync(_binary, stamp, CancellationToken.None);

        cache.Cached(_binary + "-other", stamp).Should().BeNull();
    }

    [Test]
    public async Task GetAsync_BinaryThatFails_IsNullAndNotCached()
    {
        File.WriteAllText(_binary, "#!/bin/sh\nexit 3\n");
        var cache = new BinaryVersionCache("fallback");
        var stamp = Checked();

        (await cache.GetAsync(_binary, stamp, CancellationToken.None)).Should().BeNull();
        cache.Cached(_binary, stamp).Should().BeNull();
    }

    /// <summary>
    /// Issue 15 (prefault17): two drivers' caches asking for the same binary at once (qemu and unikernel's QEMU backend,
    /// right after ready) share one --version run; each still answers with its own result.
    /// </summary>
    [Test]
    public async Task GetAsync_TwoCachesAtOnce_ShareOneRun()
    {
        var runs = Path.Combine(_dir, "runs");
        File.WriteAllText(_binary, $"#!/bin/sh\necho run >> '{runs}'\nsleep 0.3\ncat '{_versionFile}'\n");
        var stamp = Checked();
        var first = new BinaryVersionCache("first");
        var second = new BinaryVersionCache("second");

        var answers = await Task.WhenAll(first.GetAsync(_binary, stamp, CancellationToken.None), second.GetAsync(_binary, stamp, CancellationToken.None));

        answers.Should().Equal("stand-in v1", "stand-in v1");
        File.ReadAllLines(runs).Should().HaveCount(1, "the second cache waits for the run the first one started");
        first.Cached(_binary, stamp).Should().Be("stand-in v1");
        second.Cached(_binary, stamp).Should().Be("stand-in v1");

        // Once it has ended, a cache that has no answer yet runs it again (a run is shared only while in flight).
        File.WriteAllText(_versionFile, "stand-in v2\n");
        (await new BinaryVersionCache("third").GetAsync(_binary, stamp, CancellationToken.None)).Should().Be("stand-in v2");
        File.ReadAllLines(runs).Should().HaveCount(2);
    }

    /// <summary>A caller that gives up does not cancel the run another caller waits for.</summary>
    [Test]
    public async Task GetAsync_OneCallerCancels_TheOtherStillGetsTheVersion()
    {
        File.WriteAllText(_binary, $"#!/bin/sh\nsleep 0.5\ncat '{_versionFile}'\n");
        var stamp = Checked();
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        var giving = new BinaryVersionCache("first").GetAsync(_binary, stamp, cancel.Token);
        var waiting = new BinaryVersionCache("second").GetAsync(_binary, stamp, CancellationToken.None);

        await FluentActions.Awaiting(() => giving).Should().ThrowAsync<OperationCanceledException>();
        (await waiting).Should().Be("stand-in v1");
    }
}
