using Hypercore.Images.Cache;
using Hypercore.Images.References;
using Hypercore.Images.Registry;
using Hypercore.Images.Tests.Fixtures;
using Microsoft.Extensions.Time.Testing;

namespace Hypercore.Images.Tests;

/// <summary>Pulls from a real docker-registry over plain HTTP (listed as insecure).</summary>
[TestFixture]
[NonParallelizable]
public sealed class PlainRegistryTests() : PlainRegistryTest("plain")
{
    private (ImageCache Cache, CountingHandler Counter, string Root) NewCache(long sizeLimit = 0, TimeProvider? time = null, string? root = null, bool insecure = true,
        TimeSpan? tagTtl = null)
    {
        root ??= Path.Combine(Dir, "cache-" + Guid.NewGuid().ToString("N")[..8]);
        var counter = new CountingHandler();
        var options = new RegistryOptions();
        if (insecure) options.InsecureRegistries.Add(Registry.Host);
        var client = new RegistryClient(options, counter);
        var cacheOptions = new ImageCacheOptions { Root = root, SizeLimitBytes = sizeLimit };
        if (tagTtl is { } ttl) cacheOptions.TagTtl = ttl;
        var cache = new ImageCache(cacheOptions, client, time ?? TimeProvider.System);
        Disposables.Add(client);
        Disposables.Add(cache);
        return (cache, counter, root);
    }

    private async Task<(TestImage Image, ImageReference Ref)> PushAsync(string repo, string tag, params Blob[] layers)
    {
        var image = TestImages.Image("amd64", layers.Length > 0 ? layers : [TestImages.Layer(new FileEntry("marker", repo + ":" + tag))]);
        await Pusher.PushAsync(repo, tag, image);
        return (image, ImageReference.Parse($"{Registry.Host}/{repo}:{tag}"));
    }

    [Test]
    public async Task Pull_ByTag_StoresEveryBlobVerifiedAndListsTheImage()
    {
        var (image, reference) = await PushAsync("test/bytag", "1");
        var (cache, _, root) = NewCache();

        var pulled = await cache.PullAsync(reference, null, CancellationToken.None);

        pulled.Digest.Should().Be(image.Digest);
        foreach (var blob in image.Layers.Append(image.Config).Append(image.Manifest))
            File.ReadAllBytes(cache.BlobPath(blob.Digest)).Should().Equal(blob.Bytes);
        Directory.EnumerateFiles(Path.Combine(root, "blobs", "sha256"), "*.partial").Should().BeEmpty();
        cache.List().Should().ContainSingle().Which.References.Should().Equal($"{Registry.Host}/test/bytag:1");
    }

    [Test]
    public async Task Pull_ByDigest_GetsTheSameImageAndRecordsThePinnedReference()
    {
        var (image, _) = await PushAsync("test/bydigest", "1");
        var (cache, counter, _) = NewCache();
        var reference = ImageReference.Parse($"{Registry.Host}/test/bydigest@{image.Digest}");

        var pulled = await cache.PullAsync(reference, null, CancellationToken.None);

        pulled.Digest.Should().Be(image.Digest);
        counter.Requests.Should().Contain(r => r.Path == $"/v2/test/bydigest/manifests/{image.Digest}");
        cache.List().Single().References.Should().Equal($"{Registry.Host}/test/bydigest@{image.Digest}");
    }

    [Test]
    public async Task Pull_TagMovedToANewImage_TheOldImageLosesTheTagAndRemoveByTagTakesTheNewOne()
    {
        var (first, reference) = await PushAsync("test/moving", "1", TestImages.Layer(new FileEntry("v", "1")));
        var (cache, _, _) = NewCache(tagTtl: TimeSpan.Zero); // ask the registry every time
        await cache.PullAsync(reference, null, CancellationToken.None);
        var (second, _) = await PushAsync("test/moving", "1", TestImages.Layer(new FileEntry("v", "2")));

        var pulled = await cache.PullAsync(reference, null, CancellationToken.None);

        pulled.Digest.Should().Be(second.Digest);
        var listed = cache.List().ToDictionary(i => i.Digest);
        listed[first.Digest].References.Should().BeEmpty();
        listed[second.Digest].References.Should().Equal(reference.ToString());
        await cache.RemoveAsync(reference.ToString(), CancellationToken.None);
        cache.List().Select(i => i.Digest).Should().Equal(first.Digest);
    }

    [Test]
    public async Task Pull_SameTagWithinTheTtl_NeedsNoRequest_AfterItTheRegistryIsAskedAndAMovedTagSeen()
    {
        var (first, reference) = await PushAsync("test/memo", "1", TestImages.Layer(new FileEntry("v", "1")));
        var time = new FakeTimeProvider(DateTimeOffset.UnixEpoch);
        var (cache, counter, _) = NewCache(time: time, tagTtl: TimeSpan.FromSeconds(10));
        (await cache.PullAsync(reference, null, CancellationToken.None)).Digest.Should().Be(first.Digest);
        var afterFirst = counter.Requests.Count;
        var (second, _) = await PushAsync("test/memo", "1", TestImages.Layer(new FileEntry("v", "2")));

        time.Advance(TimeSpan.FromSeconds(9));
        var memo = await cache.PullAsync(reference, null, CancellationToken.None);

        memo.Digest.Should().Be(first.Digest, "within the TTL the tag's last answer is used");
        memo.Note.Should().BeNull();
        counter.Requests.Count.Should().Be(afterFirst, "no request within the TTL");

        time.Advance(TimeSpan.FromSeconds(2));
        var asked = await cache.PullAsync(reference, null, CancellationToken.None);

        asked.Digest.Should().Be(second.Digest, "after the TTL the registry is asked again and the moved tag is seen");
        counter.Requests.Count.Should().BeGreaterThan(afterFirst);
    }

    [Test]
    public async Task Pull_ByDigestCompleteInTheCache_NeedsNoRequest()
    {
        var (image, _) = await PushAsync("test/digestcached", "1");
        var (cache, counter, _) = NewCache();
        var reference = ImageReference.Parse($"{Registry.Host}/test/digestcached@{image.Digest}");
        await cache.PullAsync(reference, null, CancellationToken.None);
        var before = counter.Requests.Count;

        var again = await cache.PullAsync(reference, null, CancellationToken.None);

        again.Digest.Should().Be(image.Digest);
        counter.Requests.Count.Should().Be(before, "content by digest never changes: the cache answers alone");
    }

    [Test]
    public async Task Pull_RegistryDownAfterARestart_UsesTheTagsLastKnownDigestAndSaysSo()
    {
        // Its own registry, so it can be stopped; a new cache on the same root is the daemon after a restart.
        var dir = Tools.TempDir("lastknown");
        var root = Path.Combine(dir, "cache");
        ImageReference reference;
        TestImage image;
        await using (var registry = await RegistryProcess.StartAsync(dir))
        {
            using (var pusher = new Pusher($"http://{registry.Host}"))
            {
                image = TestImages.Image("amd64", TestImages.Layer(new FileEntry("marker", "last-known")));
                await pusher.PushAsync("test/lastknown", "1", image);
            }

            reference = ImageReference.Parse($"{registry.Host}/test/lastknown:1");
            using var client = new RegistryClient(new RegistryOptions { InsecureRegistries = { registry.Host } });
            using var first = new ImageCache(new ImageCacheOptions { Root = root }, client, TimeProvider.System);
            await first.PullAsync(reference, null, CancellationToken.None);
        }

        try
        {
            using var client = new RegistryClient(new RegistryOptions { InsecureRegistries = { reference.Registry } });
            using var cache = new ImageCache(new ImageCacheOptions { Root = root }, client, TimeProvider.System);

            var pulled = await cache.PullAsync(reference, null, CancellationToken.None);

            pulled.Digest.Should().Be(image.Digest);
            pulled.Note.Should().Contain("registry not reachable").And.Contain(reference.Registry).And.Contain($"last known digest {image.Digest}");
            File.ReadAllText(Path.Combine(await cache.GetTreeAsync(pulled, CancellationToken.None), "marker")).Should().Be("last-known");

            var unknown = () => cache.PullAsync(ImageReference.Parse($"{reference.Registry}/test/lastknown:2"), null, CancellationToken.None);
            (await unknown.Should().ThrowAsync<ImagePullException>()).Which.Kind.Should().Be(ImagePullErrorKind.RegistryUnreachable, "a tag never pulled has no last known digest");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public async Task Pull_ManifestList_PicksLinuxAmd64()
    {
        var arm = TestImages.Image("arm64", TestImages.Layer(new FileEntry("arch", "arm64")));
        var amd = TestImages.Image("amd64", TestImages.Layer(new FileEntry("arch", "amd64")));
        await Pusher.PushAsync("test/multi", arm.Digest, arm);
        await Pusher.PushAsync("test/multi", amd.Digest, amd);
        await Pusher.PushManifestAsync("test/multi", "1", TestImages.Index((arm, "arm64"), (amd, "amd64")));
        var (cache, counter, _) = NewCache();

        var pulled = await cache.PullAsync(ImageReference.Parse($"{Registry.Host}/test/multi:1"), null, CancellationToken.None);

        pulled.Digest.Should().Be(amd.Digest);
        counter.BlobGets(arm.Layers[0].Digest).Should().Be(0);
        var tree = await cache.GetTreeAsync(pulled, CancellationToken.None);
        File.ReadAllText(Path.Combine(tree, "arch")).Should().Be("amd64");
    }

    [Test]
    public async Task Pull_DockerManifestList_PicksLinuxAmd64()
    {
        var arm = TestImages.Image("arm64", docker: true, TestImages.Layer(new FileEntry("arch", "arm64")));
        var amd = TestImages.Image("amd64", docker: true, TestImages.Layer(new FileEntry("arch", "amd64-docker")));
        await Pusher.PushAsync("test/docker-multi", arm.Digest, arm);
        await Pusher.PushAsync("test/docker-multi", amd.Digest, amd);
        await Pusher.PushManifestAsync("test/docker-multi", "1", TestImages.Index(docker: true, (arm, "arm64"), (amd, "amd64")));
        var (cache, _, _) = NewCache();

        var pulled = await cache.PullAsync(ImageReference.Parse($"{Registry.Host}/test/docker-multi:1"), null, CancellationToken.None);

        pulled.Digest.Should().Be(amd.Digest);
        pulled.Manifest.MediaType.Should().Be(MediaTypes.DockerManifest);
        File.ReadAllText(Path.Combine(await cache.GetTreeAsync(pulled, CancellationToken.None), "arch")).Should().Be("amd64-docker");
    }

    [Test]
    public async Task Pull_IndexWithoutLinuxAmd64_SaysWhichPlatformsItHas()
    {
        var arm = TestImages.Image("arm64", TestImages.Layer(new FileEntry("arch", "arm64-only")));
        await Pusher.PushAsync("test/arm-only", arm.Digest, arm);
        await Pusher.PushManifestAsync("test/arm-only", "1", TestImages.Index((arm, "arm64")));
        var (cache, _, _) = NewCache();

        var act = () => cache.PullAsync(ImageReference.Parse($"{Registry.Host}/test/arm-only:1"), null, CancellationToken.None);

        var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
        error.Kind.Should().Be(ImagePullErrorKind.Unsupported);
        error.Message.Should().Contain("linux/amd64").And.Contain("linux/arm64");
    }

    [Test]
    public async Task Pull_UnknownTag_ThrowsManifestUnknownWithTheRegistrysText()
    {
        await PushAsync("test/known", "1");
        var (cache, _, _) = NewCache();

        var act = () => cache.PullAsync(ImageReference.Parse($"{Registry.Host}/test/known:nope"), null, CancellationToken.None);

        var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
        error.Kind.Should().Be(ImagePullErrorKind.ManifestUnknown);
        error.RegistryMessage.Should().Contain("MANIFEST_UNKNOWN").And.Contain("manifest unknown");
        error.Message.Should().Contain("test/known:nope");
        cache.List().Should().BeEmpty();
    }

    [Test]
    public async Task Pull_PlainHttpRegistryNotListedAsInsecure_IsRefusedWithHowToAllowIt()
    {
        var (_, reference) = await PushAsync("test/insecure", "1");
        var (cache, _, root) = NewCache(insecure: false);

        var act = () => cache.PullAsync(reference, null, CancellationToken.None);

        var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
        error.Kind.Should().Be(ImagePullErrorKind.TlsFailure);
        error.Message.Should().Contain("insecure registries").And.Contain(Registry.Host);
        Directory.EnumerateFiles(Path.Combine(root, "blobs", "sha256")).Should().BeEmpty();
    }

    [Test]
    public async Task Pull_RegistryDown_ThrowsRegistryUnreachable()
    {
        var port = Tools.FreePort();
        var counter = new CountingHandler();
        using var client = new RegistryClient(new RegistryOptions { InsecureRegistries = { $"127.0.0.1:{port}" } }, counter);
        using var cache = new ImageCache(new ImageCacheOptions { Root = Path.Combine(Dir, "down") }, client, TimeProvider.System);

        var act = () => cache.PullAsync(ImageReference.Parse($"127.0.0.1:{port}/test/x:1"), null, CancellationToken.None);

        var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
        error.Kind.Should().Be(ImagePullErrorKind.RegistryUnreachable);
        error.Message.Should().Contain($"127.0.0.1:{port}").And.Contain("refused");
    }

    [Test]
    public async Task Pull_TwoConcurrentPullsOfOneImage_DownloadEachBlobOnce()
    {
        var (image, reference) = await PushAsync("test/concurrent", "1", TestImages.RandomLayer(4 << 20), TestImages.RandomLayer(1 << 20));
        var (cache, counter, _) = NewCache();

        var pulls = await Task.WhenAll(
            cache.PullAsync(reference, null, CancellationToken.None),
            cache.PullAsync(reference, null, CancellationToken.None));

        pulls.Select(p => p.Digest).Should().AllBe(image.Digest);
        foreach (var layer in image.Layers) counter.BlobGets(layer.Digest).Should().Be(1);
        counter.BlobGets(image.Config.Digest).Should().Be(1);
    }

    [Test]
    public async Task Pull_ReportsProgressUpToTheImagesTotalSize()
    {
        var (image, reference) = await PushAsync("test/progress", "1", TestImages.RandomLayer(2 << 20));
        var (cache, _, _) = NewCache();
        var reports = new List<ImagePullProgress>();

        await cache.PullAsync(reference, new SyncProgress(reports), CancellationToken.None);

        var total = image.Config.Bytes.Length + image.Layers.Sum(l => l.Bytes.Length);
        reports.Should().NotBeEmpty();
        reports.Should().OnlyContain(r => r.BytesTotal == total && r.BytesDone <= total);
        reports.Select(r => r.BytesDone).Should().BeInAscendingOrder();
        reports.Count(r => r.BytesDone > 0 && r.BytesDone < total).Should().BePositive("progress is reported while the 2 MiB layer streams");
        reports[^1].BytesDone.Should().Be(total);
    }

    [Test]
    public async Task Pull_PartialBlobLeftByAnInterruptedDownload_ResumesWithRangeAndVerifies()
    {
        var layer = TestImages.RandomLayer(1 << 20);
        var (image, reference) = await PushAsync("test/resume", "1", layer);
        var (cache, counter, _) = NewCache();
        var half = layer.Bytes.Length / 2;
        await File.WriteAllBytesAsync(cache.BlobPath(layer.Digest) + ".partial", layer.Bytes[..half]);

        await cache.PullAsync(reference, null, CancellationToken.None);

        counter.Requests.Should().Contain(r => r.Path.EndsWith(layer.Digest) && r.Range == $"bytes={half}-");
        File.ReadAllBytes(cache.BlobPath(layer.Digest)).Should().Equal(layer.Bytes);
        File.Exists(cache.BlobPath(layer.Digest) + ".partial").Should().BeFalse();
        image.Digest.Should().Be(cache.List().Single().Digest);
    }

    [Test]
    public async Task Pull_CompletePartialLeftByACrashBeforeTheRename_IsVerifiedWithoutDownloading()
    {
        var layer = TestImages.RandomLayer(256 << 10);
        var (_, reference) = await PushAsync("test/complete-partial", "1", layer);
        var (cache, counter, _) = NewCache();
        await File.WriteAllBytesAsync(cache.BlobPath(layer.Digest) + ".partial", layer.Bytes);

        await cache.PullAsync(reference, null, CancellationToken.None);

        counter.BlobGets(layer.Digest).Should().Be(0);
        File.ReadAllBytes(cache.BlobPath(layer.Digest)).Should().Equal(layer.Bytes);
    }

    [Test]
    public async Task Pull_PartialBlobWithWrongBytes_RestartsFromZeroAndVerifies()
    {
        var layer = TestImages.RandomLayer(256 << 10);
        var (_, reference) = await PushAsync("test/restart", "1", layer);
        var (cache, counter, _) = NewCache();
        await File.WriteAllBytesAsync(cache.BlobPath(layer.Digest) + ".partial", new byte[1000]);

        await cache.PullAsync(reference, null, CancellationToken.None);

        counter.BlobGets(layer.Digest).Should().Be(2, "the resumed attempt fails verification and the restart fetches everything");
        counter.Requests.Where(r => r.Path.EndsWith(layer.Digest)).Select(r => r.Range).Should().Equal("bytes=1000-", null);
        File.ReadAllBytes(cache.BlobPath(layer.Digest)).Should().Equal(layer.Bytes);
    }

    [Test]
    public async Task GetTree_TwoLayersWithWhiteoutAndOpaqueDir_AppliesThemInOrder()
    {
        var lower = TestImages.Layer(
            new DirEntry("etc"), new FileEntry("etc/keep", "kept"), new FileEntry("etc/gone", "whited out"),
            new DirEntry("opt/old"), new FileEntry("opt/old/a", "a"), new FileEntry("opt/old/sub/b", "b"),
            new FileEntry("bin/tool", "v1", (UnixFileMode)0x1ED));
        var upper = TestImages.Layer(
            new FileEntry("etc/.wh.gone", ""),
            new FileEntry("opt/old/new", "new"), new FileEntry("opt/old/.wh..wh..opq", ""),
            new FileEntry("bin/tool", "v2", (UnixFileMode)0x1ED));
        var (_, reference) = await PushAsync("test/whiteout", "1", lower, upper);
        var (cache, _, _) = NewCache();

        var tree = await cache.GetTreeAsync(await cache.PullAsync(reference, null, CancellationToken.None), CancellationToken.None);

        File.ReadAllText(Path.Combine(tree, "etc/keep")).Should().Be("kept");
        File.Exists(Path.Combine(tree, "etc/gone")).Should().BeFalse();
        Directory.EnumerateFileSystemEntries(Path.Combine(tree, "opt/old")).Select(Path.GetFileName).Should().Equal("new");
        File.ReadAllText(Path.Combine(tree, "bin/tool")).Should().Be("v2");
        File.GetUnixFileMode(Path.Combine(tree, "bin/tool")).Should().HaveFlag(UnixFileMode.UserExecute);
        Directory.EnumerateFiles(tree, ".wh.*", SearchOption.AllDirectories).Should().BeEmpty();
    }

    [Test]
    public async Task GetDisk_BuildsAnExt4ImageWhoseFilesDebugfsReads()
    {
        var (_, reference) = await PushAsync("test/disk", "1",
            TestImages.Layer(new FileEntry("marker", "hello from the image\n"), new FileEntry("etc/gone", "x")),
            TestImages.Layer(new FileEntry("etc/.wh.gone", "")));
        var (cache, _, root) = NewCache();
        var pulled = await cache.PullAsync(reference, null, CancellationToken.None);

        var disk = await cache.GetDiskAsync(pulled, CancellationToken.None);
        var again = await cache.GetDiskAsync(pulled, CancellationToken.None);

        again.Should().Be(disk);
        disk.Should().Be(Path.Combine(root, "disks", pulled.Digest[7..] + ".ext4"));
        var cat = await Tools.RunAsync("debugfs", "-R", "cat /marker", disk);
        cat.Out.Should().Be("hello from the image\n");
        var ls = await Tools.RunAsync("debugfs", "-R", "ls -l /etc", disk);
        ls.Code.Should().Be(0);
        ls.Out.Should().NotContain("gone");
        var fsck = await Tools.RunAsync("/usr/sbin/e2fsck", "-fn", disk);
        fsck.Code.Should().Be(0, fsck.Out + fsck.Err);
        cache.List().Single().HasDisk.Should().BeTrue();
    }

    [Test]
    public async Task GetTreeAndGetDisk_CalledTogetherManyTimes_UnpackOnceAndBuildOnce()
    {
        var (_, reference) = await PushAsync("test/together", "1", TestImages.Layer(new FileEntry("marker", "once")));
        var (cache, _, root) = NewCache();
        var pulled = await cache.PullAsync(reference, null, CancellationToken.None);

        var trees = Enumerable.Range(0, 4).Select(_ => cache.GetTreeAsync(pulled, CancellationToken.None));
        var disks = Enumerable.Range(0, 4).Select(_ => cache.GetDiskAsync(pulled, CancellationToken.None));
        var results = await Task.WhenAll(trees.Concat(disks));

        results.Take(4).Distinct().Should().ContainSingle();
        results.Skip(4).Distinct().Should().ContainSingle();
        Directory.EnumerateFileSystemEntries(Path.Combine(root, "trees")).Should().ContainSingle();
        Directory.EnumerateFileSystemEntries(Path.Combine(root, "disks")).Should().ContainSingle();
    }

    [Test]
    public async Task Prune_RemovesOnlyImagesNoVmUses()
    {
        var (used, usedRef) = await PushAsync("test/prune-used", "1");
        var (unused, unusedRef) = await PushAsync("test/prune-unused", "1");
        var (cache, _, root) = NewCache();
        var a = await cache.PullAsync(usedRef, null, CancellationToken.None);
        var b = await cache.PullAsync(unusedRef, null, CancellationToken.None);
        await cache.GetTreeAsync(a, CancellationToken.None);
        await cache.GetDiskAsync(b, CancellationToken.None);
        await cache.AddUserAsync(used.Digest, "vm-1", CancellationToken.None);

        var removed = await cache.PruneAsync(CancellationToken.None);

        removed.Select(r => r.Digest).Should().Equal(unused.Digest);
        cache.List().Select(i => i.Digest).Should().Equal(used.Digest);
        File.Exists(cache.BlobPath(unused.Layers[0].Digest)).Should().BeFalse();
        File.Exists(cache.BlobPath(used.Layers[0].Digest)).Should().BeTrue();
        Directory.EnumerateFileSystemEntries(Path.Combine(root, "disks")).Should().BeEmpty();

        await cache.RemoveUserAsync("vm-1", CancellationToken.None);
        await cache.PruneAsync(CancellationToken.None);
        cache.List().Should().BeEmpty();
        Directory.EnumerateFileSystemEntries(Path.Combine(root, "blobs", "sha256")).Should().BeEmpty();
        Directory.EnumerateFileSystemEntries(Path.Combine(root, "trees")).Should().BeEmpty();
    }

    [Test]
    public async Task Remove_ImageAVmUses_IsRefusedAndKeepsIt()
    {
        var (image, reference) = await PushAsync("test/remove", "1");
        var (cache, _, _) = NewCache();
        await cache.PullAsync(reference, null, CancellationToken.None);
        await cache.AddUserAsync(image.Digest, "vm-7", CancellationToken.None);

        var act = () => cache.RemoveAsync(reference.ToString(), CancellationToken.None);

        (await act.Should().ThrowAsync<InvalidOperationException>()).WithMessage("*vm-7*");
        cache.List().Should().ContainSingle();
        await cache.RemoveUserAsync("vm-7", CancellationToken.None);
        await cache.RemoveAsync(reference.ToString(), CancellationToken.None);
        cache.List().Should().BeEmpty();
        File.Exists(cache.BlobPath(image.Layers[0].Digest)).Should().BeFalse();
    }

    [Test]
    public async Task SizeLimit_EvictsTheLeastRecentlyUsedUnusedImageFirst()
    {
        var (oldest, oldestRef) = await PushAsync("test/lru-a", "1", TestImages.RandomLayer(1 << 20));
        var (inUse, inUseRef) = await PushAsync("test/lru-b", "1", TestImages.RandomLayer(1 << 20));
        var (newer, newerRef) = await PushAsync("test/lru-c", "1", TestImages.RandomLayer(1 << 20));
        var (latest, latestRef) = await PushAsync("test/lru-d", "1", TestImages.RandomLayer(1 << 20));
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        // Room for three 1 MiB images, not four.
        var (cache, _, _) = NewCache(sizeLimit: (3 << 20) + (512 << 10), time: time);
        await cache.PullAsync(oldestRef, null, CancellationToken.None);
        time.Advance(TimeSpan.FromMinutes(1));
        await cache.PullAsync(inUseRef, null, CancellationToken.None);
        await cache.AddUserAsync(inUse.Digest, "vm-1", CancellationToken.None);
        time.Advance(TimeSpan.FromMinutes(1));
        await cache.PullAsync(newerRef, null, CancellationToken.None);
        time.Advance(TimeSpan.FromMinutes(1));
        // The in-use image is older than "newer" but must survive; "oldest" goes.
        time.Advance(TimeSpan.FromMinutes(1));

        await cache.PullAsync(latestRef, null, CancellationToken.None);

        cache.List().Select(i => i.Digest).Should().BeEquivalentTo([inUse.Digest, newer.Digest, latest.Digest]);
        File.Exists(cache.BlobPath(oldest.Layers[0].Digest)).Should().BeFalse();
        cache.SizeBytes().Should().BeLessThanOrEqualTo((3 << 20) + (512 << 10));
    }

    [Test]
    public async Task SizeLimit_ImageJustPulledIsKeptEvenWhenItAloneExceedsTheLimit()
    {
        var (image, reference) = await PushAsync("test/lru-big", "1", TestImages.RandomLayer(1 << 20));
        var (cache, _, _) = NewCache(sizeLimit: 64 << 10);

        var pulled = await cache.PullAsync(reference, null, CancellationToken.None);

        cache.List().Select(i => i.Digest).Should().Equal(image.Digest);
        (await cache.GetTreeAsync(pulled, CancellationToken.None)).Should().NotBeNull();
        (await cache.EnforceSizeLimitAsync(CancellationToken.None)).Select(i => i.Digest).Should().Equal([image.Digest], "once pulled and unused it is evictable");
        cache.List().Should().BeEmpty();
    }

    [Test]
    public async Task Index_SurvivesARestartWithUsersAndReferences()
    {
        var (image, reference) = await PushAsync("test/restart-index", "1");
        var (cache, _, root) = NewCache();
        await cache.PullAsync(reference, null, CancellationToken.None);
        await cache.AddUserAsync(image.Digest, "vm-9", CancellationToken.None);
        Directory.CreateDirectory(Path.Combine(root, "trees", "deadbeef.tmp-12345678"));

        var (reopened, _, _) = NewCache(root: root);

        var listed = reopened.List().Should().ContainSingle().Subject;
        listed.Users.Should().Equal("vm-9");
        listed.References.Should().Equal(reference.ToString());
        Directory.EnumerateDirectories(Path.Combine(root, "trees")).Should().BeEmpty("a half-unpacked tree from a crash is removed at start");
    }

    [Test]
    public async Task PullUnpackAndDisk_Of64MiBImage_WorkAndTheCachedSecondUseIsCheap()
    {
        var (image, reference) = await PushAsync("test/big", "1", TestImages.RandomLayer(48 << 20, "data/a.bin"), TestImages.RandomLayer(16 << 20, "data/b.bin"));
        var (cache, counter, _) = NewCache();

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var pulled = await cache.PullAsync(reference, null, CancellationToken.None);
        var pull = clock.Elapsed;
        var tree = await cache.GetTreeAsync(pulled, CancellationToken.None);
        var unpack = clock.Elapsed - pull;
        var disk = await cache.GetDiskAsync(pulled, CancellationToken.None);
        var build = clock.Elapsed - pull - unpack;
        clock.Restart();
        var again = await cache.PullAsync(reference, null, CancellationToken.None);
        var cachedDisk = await cache.GetDiskAsync(again, CancellationToken.None);
        var cached = clock.Elapsed;

        cachedDisk.Should().Be(disk);
        foreach (var layer in image.Layers) counter.BlobGets(layer.Digest).Should().Be(1, "the second use is served from the cache");
        (new FileInfo(Path.Combine(tree, "data/a.bin")).Length + new FileInfo(Path.Combine(tree, "data/b.bin")).Length).Should().Be(64L << 20);
        (await Tools.RunAsync("/usr/sbin/e2fsck", "-fn", disk)).Code.Should().Be(0);
        await TestContext.Out.WriteLineAsync(
            $"64 MiB image: pull {pull.TotalMilliseconds:0} ms, unpack {unpack.TotalMilliseconds:0} ms, mkfs.ext4 -d {build.TotalMilliseconds:0} ms, " +
            $"cached pull+disk {cached.TotalMilliseconds:0} ms (manifest GET only), disk {new FileInfo(disk).Length >> 20} MiB");
    }

    private sealed class SyncProgress(List<ImagePullProgress> reports) : IProgress<ImagePullProgress>
    {
        public void Report(ImagePullProgress value)
        {
            lock (reports) reports.Add(value);
        }
    }
}
