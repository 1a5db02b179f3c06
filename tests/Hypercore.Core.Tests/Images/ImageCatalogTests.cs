using Hypercore.Images;
using Hypercore.MicroVms;
using Hypercore.Operations;
using Microsoft.Extensions.Options;

namespace Hypercore.Core.Tests.Images;

public sealed class ImageCatalogTests
{
    private string _dir = null!;
    private ImageCatalog _catalog = null!;

    [SetUp]
    public void SetUp()
    {
        _dir = Directory.CreateTempSubdirectory("hypercore-images-").FullName;
        _catalog = new ImageCatalog(new StaticOptions(new MicroVmOperationsOptions { ImageDirectory = _dir }));
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private void Add(string name, params string[] files)
    {
        var d = Directory.CreateDirectory(Path.Combine(_dir, name));
        foreach (var f in files)
        {
            File.WriteAllText(Path.Combine(d.FullName, f), f);
        }
    }

    [Test]
    public void List_OnlyDirectoriesWithAKernel_Sorted()
    {
        Add("zeta", "vmlinuz");
        Add("alpha", "vmlinuz", "initrd.img");
        Add("broken", "initrd.img");

        _catalog.List().Should().Equal("alpha", "zeta");
    }

    [Test]
    public void List_MissingDirectory_IsEmpty()
    {
        var catalog = new ImageCatalog(new StaticOptions(new MicroVmOperationsOptions { ImageDirectory = Path.Combine(_dir, "nope") }));

        catalog.List().Should().BeEmpty();
    }

    [TestCase("..")]
    [TestCase(".")]
    [TestCase("../etc")]
    [TestCase("a/b")]
    public void Find_NameThatIsAPath_IsNotFound(string name)
    {
        Add("a", "vmlinuz");
        Directory.CreateDirectory(Path.Combine(_dir, "a", "b"));
        File.WriteAllText(Path.Combine(_dir, "a", "b", "vmlinuz"), "k");

        _catalog.Find(name).Should().BeNull();
    }

    [Test]
    public void Resolve_OciReference_IsLeftForTheImagesStep()
    {
        var catalog = new ImageCatalog(new StaticOptions(new MicroVmOperationsOptions { ImageDirectory = _dir }));
        var spec = new MicroVmSpec { Id = "a", Kernel = new KernelSpec { Image = "localhost:5000/hypercore/default:1" } };
        var errors = new List<string>();

        catalog.Resolve(spec, errors).Should().Be(spec);
        errors.Should().BeEmpty();
    }

    [Test]
    public void Resolve_AbsoluteKernelPath_IsLeftAlone()
    {
        var spec = new MicroVmSpec { Id = "a", Kernel = new KernelSpec { Image = "/boot/vmlinuz-6.1" } };
        var errors = new List<string>();

        var resolved = _catalog.Resolve(spec, errors);

        resolved.Should().BeSameAs(spec);
        errors.Should().BeEmpty();
    }

    [Test]
    public void Resolve_ExplicitInitrdAndLabel_AreKept()
    {
        Add("default", "vmlinuz", "initrd.img");
        var spec = new MicroVmSpec
        {
            Id = "a",
            Kernel = new KernelSpec { Image = "default" },
            Initrd = new InitrdSpec { Image = "/srv/my-initrd" },
            Labels = new Dictionary<string, string> { [ImageCatalog.ImageLabel] = "custom" },
        };

        var resolved = _catalog.Resolve(spec, [])!;

        resolved.Kernel.Image.Should().Be(Path.Combine(_dir, "default", "vmlinuz"));
        resolved.Initrd!.Image.Should().Be("/srv/my-initrd");
        resolved.Labels[ImageCatalog.ImageLabel].Should().Be("custom");
    }

    [Test]
    public void Resolve_UnknownImageWithEmptyDirectory_SaysNone()
    {
        var errors = new List<string>();

        var resolved = _catalog.Resolve(new MicroVmSpec { Id = "a", Kernel = new KernelSpec { Image = "default" } }, errors);

        resolved.Should().BeNull();
        errors.Should().ContainSingle().Which.Should().Contain("images found: none");
    }

    private sealed class StaticOptions(MicroVmOperationsOptions value) : IOptionsMonitor<MicroVmOperationsOptions>
    {
        public MicroVmOperationsOptions CurrentValue => value;

        public MicroVmOperationsOptions Get(string? name) => value;

        public IDisposable? OnChange(Action<MicroVmOperationsOptions, string?> listener) => null;
    }
}
