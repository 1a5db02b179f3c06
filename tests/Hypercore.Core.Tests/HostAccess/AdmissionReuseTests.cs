using Hypercore.HostAccess;
using Hypercore.MicroVms;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Core.Tests.HostAccess;

/// <summary>
/// Issue 15 (twentieth pass): the API's admission check may reuse a pass of the same kernel or initrd from the last
/// second (<see cref="RecentKernelPasses"/>); the drivers' check never does, refusals are never reused, and volumes are
/// always looked up. Against a real file system, with the policy's clock in the test's hand.
/// </summary>
public sealed class AdmissionReuseTests
{
    private string _root = null!;
    private string _images = null!;
    private string _volumes = null!;
    private string _outside = null!;
    private string _kernel = null!;
    private FakeTimeProvider _time = null!;
    private HostPathPolicy _policy = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Directory.CreateTempSubdirectory("hc-admission-").FullName;
        _images = Directory.CreateDirectory(Path.Combine(_root, "images")).FullName;
        _volumes = Directory.CreateDirectory(Path.Combine(_root, "volumes")).FullName;
        _outside = Directory.CreateDirectory(Path.Combine(_root, "outside")).FullName;
        Directory.CreateDirectory(Path.Combine(_images, "default"));
        _kernel = Path.Combine(_images, "default", "vmlinuz");
        File.WriteAllText(_kernel, "kernel");
        File.WriteAllText(Path.Combine(_volumes, "data.img"), "data");
        File.WriteAllText(Path.Combine(_outside, "secret"), "secret");
        _time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 12, 0, 0, TimeSpan.Zero));
        _policy = new HostPathPolicy(new HostAccessOptions { ImageDirectories = [_images], VolumeRoots = [_volumes] }, _ => long.MaxValue, _time);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_root, recursive: true);

    private static MicroVmSpec Spec(string kernel, string? filename = null, params VolumeSpec[] volumes) => new()
    {
        Id = "vm",
        Kernel = new KernelSpec { Image = kernel, Filename = filename },
        AdditionalVolumes = volumes,
    };

    private long Lookups(Action check)
    {
        HostFiles.PathLookups = 0;
        check();
        return HostFiles.PathLookups;
    }

    [Test]
    public void TheSameKernelWithinTheLifetime_IsNotLookedUpAgain_AndIsAfterIt()
    {
        var spec = Spec(_kernel);

        Lookups(() => _policy.AdmissionViolations(spec).Should().BeEmpty()).Should().Be(1, "the first check resolves the path");
        _time.Advance(RecentKernelPasses.Lifetime - TimeSpan.FromMilliseconds(1));
        Lookups(() => _policy.AdmissionViolations(spec with { Id = "other" }).Should().BeEmpty()).Should().Be(0, "a pass of the last second stands");
        _time.Advance(TimeSpan.FromMilliseconds(1));
        Lookups(() => _policy.AdmissionViolations(spec).Should().BeEmpty()).Should().Be(1, "a pass is reused for less than its lifetime");
    }

    [Test]
    public void TheDriversCheck_NeverReusesAPass()
    {
        var spec = Spec(_kernel);
        _policy.AdmissionViolations(spec).Should().BeEmpty();

        Lookups(() => _policy.Violations(spec).Should().BeEmpty()).Should().Be(1);
        Lookups(() => _policy.Check(spec)).Should().Be(1);
    }

    /// <summary>The bounded window the reuse allows, and the check that closes it: no host file is reached.</summary>
    [Test]
    public void ALinkSwappedInWithinTheLifetime_PassesAdmission_ButTheDriversCheckRefusesIt_AndAdmissionAfterTheLifetime()
    {
        var spec = Spec(_kernel);
        _policy.AdmissionViolations(spec).Should().BeEmpty();
        File.Delete(_kernel);
        File.CreateSymbolicLink(_kernel, Path.Combine(_outside, "secret"));

        _policy.AdmissionViolations(spec).Should().BeEmpty("the pass of a moment ago is reused");
        _policy.Violations(spec).Should().ContainSingle().Which.Should().Contain("resolves to " + Path.Combine(_outside, "secret"));
        _policy.Invoking(p => p.Check(spec)).Should().Throw<HostPathNotAllowedException>();

        _time.Advance(RecentKernelPasses.Lifetime);
        _policy.AdmissionViolations(spec).Should().ContainSingle().Which.Should().Contain("is outside the image directories");
    }

    [Test]
    public void ARefusal_IsNeverReused()
    {
        var spec = Spec(_kernel);
        File.Delete(_kernel);
        Directory.CreateDirectory(_kernel);
        _policy.AdmissionViolations(spec).Should().ContainSingle().Which.Should().Contain("is a directory");

        Directory.Delete(_kernel);
        File.WriteAllText(_kernel, "kernel");
        _policy.AdmissionViolations(spec).Should().BeEmpty("the operator's fix counts at once");
    }

    [Test]
    public void APassIsKeptForThatFieldImageAndFilenameOnly_AndVolumesAreAlwaysLookedUp()
    {
        var volume = new VolumeSpec { Id = "data", HostPath = Path.Combine(_volumes, "data.img") };
        _policy.AdmissionViolations(Spec(_kernel, null, volume)).Should().BeEmpty();

        Lookups(() => _policy.AdmissionViolations(Spec(_kernel, null, volume)).Should().BeEmpty()).Should().Be(1, "the volume, not the kernel");
        var asInitrd = Spec(_kernel) with { Initrd = new InitrdSpec { Image = _kernel } };
        Lookups(() => _policy.AdmissionViolations(asInitrd).Should().BeEmpty()).Should().Be(1, "the kernel's pass is not the initrd's");
        Lookups(() => _policy.AdmissionViolations(asInitrd).Should().BeEmpty()).Should().Be(0, "a spec's kernel and initrd are both kept");
        Lookups(() => _policy.AdmissionViolations(Spec(Path.Combine(_images, "default"), "vmlinuz")).Should().BeEmpty())
            .Should().BeGreaterThan(0, "another image and filename naming the same file is another check");
    }
}
