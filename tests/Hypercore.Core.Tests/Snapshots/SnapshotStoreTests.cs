using Hypercore.MicroVms;
using Hypercore.Snapshots;

namespace Hypercore.Core.Tests.Snapshots;

public sealed class SnapshotStoreTests
{
    private DirectoryInfo _root = null!;
    private SnapshotStore _store = null!;

    [SetUp]
    public void SetUp()
    {
        _root = Directory.CreateTempSubdirectory("hypercore-snapstore-");
        _store = new SnapshotStore(Path.Combine(_root.FullName, "snapshots"));
    }

    [TearDown]
    public void TearDown() => _root.Delete(recursive: true);

    private SnapshotManifest Commit(string name, string state = "memory bytes", string ns = "default")
    {
        var staging = _store.BeginWrite(name);
        File.WriteAllText(Path.Combine(staging, "memory.state"), state);
        File.WriteAllText(Path.Combine(staging, "disk-data.img"), "disk");
        var (files, allocated) = SnapshotStore.Describe(staging, ["memory.state"]);
        var manifest = new SnapshotManifest
        {
            Name = name, Namespace = ns, SourceId = "web1", SourceUid = "u1", Provider = "qemu", HypervisorVersion = "7.2.22",
            Spec = new MicroVmSpec { Id = "web1", Kernel = new KernelSpec { Image = "/k" } },
            CreatedAt = DateTimeOffset.UnixEpoch, Files = files, Disks = [new SnapshotDisk("data", "disk-data.img")], SizeBytes = allocated,
        };
        _store.Commit(staging, manifest).Should().BeTrue();
        return manifest;
    }

    [TestCase("a", true)]
    [TestCase("before-upgrade-2", true)]
    [TestCase("", false)]
    [TestCase("Upper", false)]
    [TestCase("-x", false)]
    [TestCase("x-", false)]
    [TestCase("../x", false)]
    [TestCase("a.b", false)]
    public void NameProblem_AcceptsDnsLabelsOnly(string name, bool valid) =>
        (SnapshotStore.NameProblem(name) is null).Should().Be(valid);

    [Test]
    public void Commit_WritesManifestWithSha256OfStateFilesOnly_AndReadsItBack()
    {
        var manifest = Commit("s1");

        var read = _store.Read("s1")!;
        read.Name.Should().Be("s1");
        read.Spec.Kernel.Image.Should().Be("/k");
        read.Files.Should().BeEquivalentTo([
            new SnapshotFile("disk-data.img", 4, null),
            new SnapshotFile("memory.state", 12, SnapshotStore.Sha256(Path.Combine(_store.PathOf("s1"), "memory.state"))),
        ]);
        _store.Verify(manifest).Should().BeNull();
    }

    [Test]
    public void Commit_ExistingName_ReturnsFalseAndKeepsTheFirst()
    {
        Commit("s1", state: "first");
        var staging = _store.BeginWrite("s1");

        _store.Commit(staging, _store.Read("s1")! with { SourceId = "other" }).Should().BeFalse();

        _store.Read("s1")!.SourceId.Should().Be("web1");
    }

    [Test]
    public void Verify_DamagedMissingOrResized_SaysWhichFile()
    {
        var manifest = Commit("s1");
        var state = Path.Combine(_store.PathOf("s1"), "memory.state");

        File.WriteAllText(state, "memory bytez");
        _store.Verify(manifest).Should().Contain("memory.state has sha256").And.Contain("damaged");

        File.WriteAllText(state, "short");
        _store.Verify(manifest).Should().Contain("memory.state is 5 bytes, the manifest says 12");

        File.Delete(Path.Combine(_store.PathOf("s1"), "disk-data.img"));
        File.WriteAllText(state, "memory bytes");
        _store.Verify(manifest).Should().Contain("disk-data.img is missing");
    }

    [Test]
    public void List_SkipsStagingAndUnreadable_DeleteRemovesEverything()
    {
        Commit("b");
        Commit("a");
        _store.BeginWrite("c"); // a snapshot being written
        Directory.CreateDirectory(_store.PathOf("broken"));
        File.WriteAllText(Path.Combine(_store.PathOf("broken"), SnapshotStore.ManifestFile), "{not json");

        _store.List().Select(m => m.Name).Should().Equal("a", "b");

        _store.Delete("a").Should().BeTrue();
        _store.Delete("a").Should().BeFalse();
        Directory.Exists(_store.PathOf("a")).Should().BeFalse();
        _store.CollectGarbage().Should().Be(1, "the staging directory of c");
        Directory.EnumerateDirectories(_store.Root).Select(Path.GetFileName).Should().BeEquivalentTo(["b", "broken"]);
    }

    [Test]
    public void RestoreFrom_IsPartOfSpecEquality_AndValidated()
    {
        var spec = new MicroVmSpec { Id = "r", Kernel = new KernelSpec { Image = "/k" } };

        (spec with { RestoreFrom = "s1" }).Should().NotBe(spec);
        MicroVmSpecValidator.Validate(spec with { RestoreFrom = "Bad_Name" }).Should().ContainSingle().Which.Should().StartWith("restore_from: ");
        MicroVmSpecValidator.Validate(spec with { RestoreFrom = "good" }).Should().BeEmpty();
    }
}
