using Hypercore.Images.Cache;
using Hypercore.Images.Registry;
using Hypercore.Images.Tests.Fixtures;

namespace Hypercore.Images.Tests;

public sealed class CacheIndexTests
{
    [Test]
    public void Open_UnreadableIndex_FailsNamingTheFileAndTheWayOut()
    {
        var dir = Tools.TempDir("index");
        try
        {
            File.WriteAllText(Path.Combine(dir, "index.json"), "{ not json");
            using var client = new RegistryClient(new RegistryOptions());

            var act = () => new ImageCache(new ImageCacheOptions { Root = dir }, client, TimeProvider.System);

            act.Should().Throw<InvalidDataException>().WithMessage($"*{Path.Combine(dir, "index.json")}*move it away*");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public async Task AddUser_ImageNotInTheCache_IsRefused()
    {
        var dir = Tools.TempDir("index");
        try
        {
            using var client = new RegistryClient(new RegistryOptions());
            using var cache = new ImageCache(new ImageCacheOptions { Root = dir }, client, TimeProvider.System);

            var act = () => cache.AddUserAsync("sha256:" + new string('a', 64), "vm-1", CancellationToken.None);

            await act.Should().ThrowAsync<InvalidOperationException>().WithMessage("*pull it first*");
            var remove = () => cache.RemoveAsync("localhost:5000/none:1", CancellationToken.None);
            await remove.Should().ThrowAsync<KeyNotFoundException>();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
