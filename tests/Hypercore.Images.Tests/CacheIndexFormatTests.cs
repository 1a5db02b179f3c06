using System.Text.Json;
using Hypercore.Images.Cache;
using Hypercore.Images.Registry;
using Hypercore.Images.Tests.Fixtures;

namespace Hypercore.Images.Tests;

/// <summary>index.json keeps the format the reflection serializer wrote: old files read, new files are the same text.</summary>
public sealed class CacheIndexFormatTests
{
    private static readonly DateTimeOffset Then = new(2026, 11, 29, 22, 15, 30, 123, TimeSpan.Zero);
    private static readonly DateTimeOffset Now = new(2026, 11, 30, 2, 0, 0, TimeSpan.Zero);
    private static readonly string Digest = "sha256:" + new string('a', 64);
    private static readonly string Other = "sha256:" + new string('b', 64);

    // The same shape (names, order) as the cache's private index types, for the reflection serializer.
    private sealed class FileShape
    {
        public List<EntryShape> Images { get; set; } = new();
    }

    private sealed class EntryShape
    {
        public string Digest { get; set; } = "";
        public string? Config { get; set; }
        public List<string> Layers { get; set; } = new();
        public List<string> References { get; set; } = new();
        public List<string> Users { get; set; } = new();
        public DateTimeOffset LastUsed { get; set; }
    }

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    private static string Reflection(FileShape file) =>
#pragma warning disable IL2026, IL3050 // the old reflection path, here only as the reference
        JsonSerializer.Serialize(file, new JsonSerializerOptions { WriteIndented = true });
#pragma warning restore IL2026, IL3050

    private static FileShape Index(params string[] users) => new()
    {
        Images =
        [
            new EntryShape { Digest = Digest, Config = "sha256:" + new string('c', 64), Layers = ["sha256:" + new string('d', 64)], References = ["localhost:5000/app:1"], Users = users.ToList(), LastUsed = Then },
            new EntryShape { Digest = Other, Config = null, Layers = [], References = ["localhost:5000/other:2", "localhost:5000/other@" + Other], Users = [], LastUsed = Then },
        ],
    };

    [Test]
    public async Task Open_IndexWrittenByTheReflectionSerializer_IsReadAndRewrittenAsTheSameText()
    {
        var dir = Tools.TempDir("index-format");
        try
        {
            var path = Path.Combine(dir, "index.json");
            File.WriteAllText(path, Reflection(Index("vm-1")));
            using var client = new RegistryClient(new RegistryOptions());
            using var cache = new ImageCache(new ImageCacheOptions { Root = dir }, client, new FixedTime(Now));

            var images = cache.List();
            images.Select(i => i.Digest).Should().Equal(Digest, Other);
            images[0].References.Should().Equal("localhost:5000/app:1");
            images[0].Users.Should().Equal("vm-1");
            images[0].LastUsed.Should().Be(Then);
            images[1].References.Should().Equal("localhost:5000/other:2", "localhost:5000/other@" + Other);

            await cache.AddUserAsync(Digest, "vm-2", CancellationToken.None);

            var expected = Index("vm-1", "vm-2");
            expected.Images[0].LastUsed = Now;
            File.ReadAllText(path).Should().Be(Reflection(expected));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
