using System.Net;
using Hypercore.Images.Cache;
using Hypercore.Images.References;
using Hypercore.Images.Registry;
using Hypercore.Images.Tests.Fixtures;

namespace Hypercore.Images.Tests;

/// <summary>
/// Misbehaving registries the real one cannot be made to imitate: a registry serving bytes that do not match the
/// digest it was asked for.
/// </summary>
[TestFixture]
public sealed class StandInRegistryTests
{
    [Test]
    public async Task Pull_RegistryServesWrongBytesForALayer_ThrowsDigestMismatchAndKeepsNothing()
    {
        var dir = Tools.TempDir("corrupt");
        try
        {
            var layer = TestImages.Layer(new FileEntry("marker", "real bytes"));
            var image = TestImages.Image("amd64", layer);
            var blobs = new[] { image.Config, layer, image.Manifest }.ToDictionary(b => b.Digest);
            await using var server = new LoopbackHttpServer(async context =>
            {
                var path = context.Request.Url!.AbsolutePath;
                if (path == "/v2/bad/app/manifests/1")
                {
                    context.Response.ContentType = MediaTypes.OciManifest;
                    await context.Response.OutputStream.WriteAsync(image.Manifest.Bytes);
                    return;
                }
                var digest = path[(path.LastIndexOf('/') + 1)..];
                if (!blobs.TryGetValue(digest, out var blob)) { context.Response.StatusCode = 404; return; }
                var bytes = blob == layer ? blob.Bytes.Select(b => (byte)(b ^ 0x5a)).ToArray() : blob.Bytes;
                context.Response.StatusCode = (int)HttpStatusCode.OK;
                await context.Response.OutputStream.WriteAsync(bytes);
            });
            using var client = new RegistryClient(new RegistryOptions { InsecureRegistries = { server.Host } });
            var root = Path.Combine(dir, "cache");
            using var cache = new ImageCache(new ImageCacheOptions { Root = root }, client, TimeProvider.System);

            var act = () => cache.PullAsync(ImageReference.Parse($"{server.Host}/bad/app:1"), null, CancellationToken.None);

            var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
            error.Kind.Should().Be(ImagePullErrorKind.DigestMismatch);
            error.Message.Should().Contain(layer.Digest);
            File.Exists(cache.BlobPath(layer.Digest)).Should().BeFalse();
            File.Exists(cache.BlobPath(layer.Digest) + ".partial").Should().BeFalse();
            cache.List().Should().BeEmpty();
            (await cache.PruneAsync(CancellationToken.None)).Should().BeEmpty();
            Directory.EnumerateFiles(Path.Combine(root, "blobs", "sha256")).Should().BeEmpty("prune drops the verified config and manifest no image owns");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
    [Test]
    public async Task Pull_ConnectionCutMidBlob_FailsAsUnreachableThenTheNextPullResumesAndVerifies()
    {
        var dir = Tools.TempDir("cut");
        try
        {
            var layer = TestImages.RandomLayer(2 << 20);
            var image = TestImages.Image("amd64", layer);
            var blobs = new[] { image.Config, layer }.ToDictionary(b => b.Digest);
            var layerGets = 0;
            var ranges = new System.Collections.Concurrent.ConcurrentQueue<string?>();
            await using var server = new LoopbackHttpServer(async context =>
            {
                var path = context.Request.Url!.AbsolutePath;
                if (path == "/v2/cut/app/manifests/1")
                {
                    context.Response.ContentType = MediaTypes.OciManifest;
                    await context.Response.OutputStream.WriteAsync(image.Manifest.Bytes);
                    return;
                }
                var blob = blobs[path[(path.LastIndexOf('/') + 1)..]];
                if (blob != layer)
                {
                    await context.Response.OutputStream.WriteAsync(blob.Bytes);
                    return;
                }
                var range = context.Request.Headers["Range"];
                ranges.Enqueue(range);
                if (Interlocked.Increment(ref layerGets) == 1)
                {
                    // Like a kill -9 of either side: the body stops halfway.
                    context.Response.ContentLength64 = blob.Bytes.Length;
                    await context.Response.OutputStream.WriteAsync(blob.Bytes.AsMemory(0, blob.Bytes.Length / 2));
                    await context.Response.OutputStream.FlushAsync();
                    context.Response.Abort();
                    return;
                }
                var from = range is null ? 0 : int.Parse(range["bytes=".Length..].TrimEnd('-'));
                if (from > 0)
                {
                    context.Response.StatusCode = 206;
                    context.Response.Headers["Content-Range"] = $"bytes {from}-{blob.Bytes.Length - 1}/{blob.Bytes.Length}";
                }
                context.Response.ContentLength64 = blob.Bytes.Length - from;
                await context.Response.OutputStream.WriteAsync(blob.Bytes.AsMemory(from));
            });
            using var client = new RegistryClient(new RegistryOptions { InsecureRegistries = { server.Host } });
            using var cache = new ImageCache(new ImageCacheOptions { Root = Path.Combine(dir, "cache") }, client, TimeProvider.System);
            var reference = ImageReference.Parse($"{server.Host}/cut/app:1");

            var first = () => cache.PullAsync(reference, null, CancellationToken.None);
            (await first.Should().ThrowAsync<ImagePullException>()).Which.Kind.Should().Be(ImagePullErrorKind.RegistryUnreachable);
            File.Exists(cache.BlobPath(layer.Digest)).Should().BeFalse();
            var kept = new FileInfo(cache.BlobPath(layer.Digest) + ".partial").Length;
            kept.Should().BePositive();

            var pulled = await cache.PullAsync(reference, null, CancellationToken.None);

            pulled.Digest.Should().Be(image.Digest);
            ranges.Should().Equal(null, $"bytes={kept}-");
            File.ReadAllBytes(cache.BlobPath(layer.Digest)).Should().Equal(layer.Bytes);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
    [Test]
    public async Task Pull_ByDigestRegistryAnswersAnotherManifest_ThrowsDigestMismatch()
    {
        var dir = Tools.TempDir("wrong-manifest");
        try
        {
            var served = TestImages.Image("amd64", TestImages.Layer(new FileEntry("m", "served")));
            var asked = TestImages.Image("amd64", TestImages.Layer(new FileEntry("m", "asked")));
            await using var server = new LoopbackHttpServer(async context =>
            {
                context.Response.ContentType = MediaTypes.OciManifest;
                await context.Response.OutputStream.WriteAsync(served.Manifest.Bytes);
            });
            using var client = new RegistryClient(new RegistryOptions { InsecureRegistries = { server.Host } });
            using var cache = new ImageCache(new ImageCacheOptions { Root = Path.Combine(dir, "cache") }, client, TimeProvider.System);

            var act = () => cache.PullAsync(ImageReference.Parse($"{server.Host}/x/app@{asked.Digest}"), null, CancellationToken.None);

            var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
            error.Kind.Should().Be(ImagePullErrorKind.DigestMismatch);
            error.Message.Should().Contain(asked.Digest).And.Contain(served.Digest);
            cache.List().Should().BeEmpty();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
