using Hypercore.Images.Cache;
using Hypercore.Images.References;
using Hypercore.Images.Registry;
using Hypercore.Images.Tests.Fixtures;

namespace Hypercore.Images.Tests;

/// <summary>
/// <c>scripts/push-image.sh</c> (docs/images.md, "Making an image") against a real docker-registry, read back by the
/// node's own puller: what a user pushes with it is what a VM gets. Needs skopeo (scripts/setup.sh installs it).
/// </summary>
[TestFixture]
[NonParallelizable]
public sealed class PushImageScriptTests() : PlainRegistryTest("pushscript")
{
    private static string Script
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "HypercoreController.sln")))
                    return Path.Combine(dir.FullName, "scripts", "push-image.sh");
            }

            throw new InvalidOperationException("the repository root (HypercoreController.sln) was not found above " + AppContext.BaseDirectory);
        }
    }

    private string KernelFolder()
    {
        var dir = Path.Combine(Dir, "src-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(dir, "boot"));
        Directory.CreateDirectory(Path.Combine(dir, "etc", "hypercore"));
        File.WriteAllBytes(Path.Combine(dir, "boot", "vmlinuz-6.1"), Enumerable.Range(0, 300_000).Select(i => (byte)(i * 7)).ToArray());
        File.WriteAllText(Path.Combine(dir, "boot", "initrd.img"), "initrd bytes");
        File.CreateSymbolicLink(Path.Combine(dir, "boot", "vmlinuz"), "vmlinuz-6.1");
        File.WriteAllText(Path.Combine(dir, "etc", "hypercore", "run.sh"), "#!/bin/sh\necho hi\n");
        File.SetUnixFileMode(Path.Combine(dir, "etc", "hypercore", "run.sh"), (UnixFileMode)Convert.ToInt32("755", 8));
        return dir;
    }

    private ImageCache NewCache()
    {
        var options = new RegistryOptions();
        options.InsecureRegistries.Add(Registry.Host);
        var client = new RegistryClient(options);
        var cache = new ImageCache(new ImageCacheOptions { Root = Path.Combine(Dir, "cache-" + Guid.NewGuid().ToString("N")[..8]) }, client, TimeProvider.System);
        Disposables.Add(client);
        Disposables.Add(cache);
        return cache;
    }

    [Test]
    public async Task Push_AFolder_TheNodePullsExactlyItsFilesAndFindsTheKernel()
    {
        var source = KernelFolder();
        var reference = $"{Registry.Host}/hypercore/pushed:1";

        var (code, stdout, stderr) = await Tools.RunAsync("bash", Script, "--insecure", source, reference);

        code.Should().Be(0, stderr);
        var digest = stdout.Trim();
        digest.Should().MatchRegex("^sha256:[0-9a-f]{64}$");
        stderr.Should().Contain($"pushed {reference} ({digest}");

        var cache = NewCache();
        var pulled = await cache.PullAsync(ImageReference.Parse(reference), null, CancellationToken.None);
        pulled.Digest.Should().Be(digest);
        var tree = await cache.GetTreeAsync(pulled, CancellationToken.None);

        File.ReadAllBytes(ImageLayout.FindKernel(tree, null)).Should().Equal(File.ReadAllBytes(Path.Combine(source, "boot", "vmlinuz-6.1")));
        File.ReadAllText(ImageLayout.FindInitrd(tree, null)).Should().Be("initrd bytes");
        new FileInfo(Path.Combine(tree, "boot", "vmlinuz")).LinkTarget.Should().Be("vmlinuz-6.1");
        File.GetUnixFileMode(Path.Combine(tree, "etc", "hypercore", "run.sh")).Should().HaveFlag(UnixFileMode.UserExecute);
        Directory.EnumerateFileSystemEntries(tree, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(tree, p)).Order(StringComparer.Ordinal)
            .Should().Equal("boot", "boot/initrd.img", "boot/vmlinuz", "boot/vmlinuz-6.1", "etc", "etc/hypercore", "etc/hypercore/run.sh");
    }

    [Test]
    public async Task Push_TheSameFolderTwice_GivesTheSameDigest()
    {
        var source = KernelFolder();
        var first = await Tools.RunAsync("bash", Script, "--insecure", source, $"{Registry.Host}/hypercore/again:1");
        File.SetLastWriteTimeUtc(Path.Combine(source, "boot", "initrd.img"), DateTime.UnixEpoch.AddYears(40)); // mtimes are not part of the image

        var second = await Tools.RunAsync("bash", Script, "--insecure", source, $"{Registry.Host}/hypercore/again:2");

        first.Code.Should().Be(0, first.Err);
        second.Code.Should().Be(0, second.Err);
        second.Out.Trim().Should().Be(first.Out.Trim());
    }

    [TestCase("missing-dir", "localhost:5000/x:1", "is not a directory")]
    [TestCase("empty-dir", "localhost:5000/x:1", "is empty")]
    [TestCase("ok-dir", "just-a-name:1", "is not a registry reference; write HOST[:PORT]/REPOSITORY:TAG")]
    public async Task Push_BadInput_Exit2WithTheReasonAndNothingPushed(string what, string reference, string message)
    {
        var source = Path.Combine(Dir, what + "-" + Guid.NewGuid().ToString("N")[..8]);
        if (what != "missing-dir") Directory.CreateDirectory(source);
        if (what == "ok-dir") File.WriteAllText(Path.Combine(source, "f"), "x");
        var reference2 = reference.Replace("localhost:5000", Registry.Host, StringComparison.Ordinal);
        using var http = new HttpClient();
        var before = await http.GetStringAsync($"http://{Registry.Host}/v2/_catalog");

        var (code, _, stderr) = await Tools.RunAsync("bash", Script, "--insecure", source, reference2);

        code.Should().Be(2);
        stderr.Should().Contain(message);
        (await http.GetStringAsync($"http://{Registry.Host}/v2/_catalog")).Should().Be(before);
    }
}
