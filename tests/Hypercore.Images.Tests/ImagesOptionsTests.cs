using Hypercore.Images.Cache;
using Hypercore.Images.Registry;
using Hypercore.Images.Tests.Fixtures;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Hypercore.Images.Tests;

public sealed class ImagesOptionsTests
{
    [Test]
    public void Validate_DefaultsAndAbsoluteRoot_Succeed()
    {
        new RegistryOptionsValidator().Validate(null, new RegistryOptions()).Succeeded.Should().BeTrue();
        new ImageCacheOptionsValidator().Validate(null, new ImageCacheOptions { Root = "/var/lib/hypercore/images" }).Succeeded.Should().BeTrue();
    }

    [Test]
    public void Validate_BadCacheSettings_FailNamingEachSetting()
    {
        var result = new ImageCacheOptionsValidator().Validate(null, new ImageCacheOptions
        {
            Root = "images", SizeLimitBytes = -1, MkfsPath = "/nonexistent/mkfs.ext4", TagTtl = TimeSpan.FromSeconds(-1),
        });

        result.Failed.Should().BeTrue();
        result.Failures.Should().HaveCount(4);
        result.FailureMessage.Should().Contain("Images:Cache:Root").And.Contain("Images:Cache:SizeLimitBytes").And.Contain("Images:Cache:MkfsPath")
            .And.Contain("Images:Cache:TagTtl");
    }

    [Test]
    public void Validate_BadRegistrySettings_FailNamingEachSetting()
    {
        var dir = Tools.TempDir("options");
        try
        {
            var notPem = Path.Combine(dir, "ca.pem");
            File.WriteAllText(notPem, "not a certificate");
            var badCreds = Path.Combine(dir, "config.json");
            File.WriteAllText(badCreds, """{"auths":{"r.example.com":{"auth":"bm9jb2xvbg=="}}}""");

            var result = new RegistryOptionsValidator().Validate(null, new RegistryOptions
            {
                CaFile = notPem, CredentialsFile = badCreds, InsecureRegistries = { "http://localhost:5000" }, RequestTimeout = TimeSpan.Zero,
            });

            result.Failures.Should().HaveCount(4);
            result.FailureMessage.Should().Contain("CaFile").And.Contain("CredentialsFile").And.Contain("InsecureRegistries").And.Contain("RequestTimeout");
            new RegistryOptionsValidator().Validate(null, new RegistryOptions { CaFile = Path.Combine(dir, "missing.pem") })
                .FailureMessage.Should().Contain("does not exist");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void AddImages_BindsTheImagesSectionsAndBuildsTheCache()
    {
        var dir = Tools.TempDir("di");
        try
        {
            var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Images:Cache:Root"] = Path.Combine(dir, "images"),
                ["Images:Cache:SizeLimitBytes"] = "1048576",
                ["Images:Registry:InsecureRegistries:0"] = "localhost:5000",
            }).Build();
            using var provider = new ServiceCollection().AddSingleton<IConfiguration>(configuration).AddImages().BuildServiceProvider();

            var cache = provider.GetRequiredService<ImageCache>();

            cache.Root.Should().Be(Path.Combine(dir, "images"));
            Directory.Exists(Path.Combine(dir, "images", "blobs", "sha256")).Should().BeTrue();
            provider.GetRequiredService<IOptions<ImageCacheOptions>>().Value.SizeLimitBytes.Should().Be(1048576);
            provider.GetRequiredService<IOptions<RegistryOptions>>().Value.InsecureRegistries.Should().Equal("localhost:5000");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void AddImages_InvalidSection_FailsWhenResolved()
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["Images:Cache:Root"] = "relative" }).Build();
        using var provider = new ServiceCollection().AddSingleton<IConfiguration>(configuration).AddImages().BuildServiceProvider();

        var act = () => provider.GetRequiredService<ImageCache>();

        act.Should().Throw<OptionsValidationException>().WithMessage("*Images:Cache:Root*");
    }
}
