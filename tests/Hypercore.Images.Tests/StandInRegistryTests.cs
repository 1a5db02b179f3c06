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
}
