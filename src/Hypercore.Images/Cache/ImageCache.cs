using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Hypercore.Images.References;
using Hypercore.Images.Registry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypercore.Images.Cache;

/// <summary>
/// Content-addressed image cache:
/// <code>
/// root/blobs/sha256/&lt;hex&gt;            verified blobs (manifests, configs, layers); renamed in only after the digest matched
/// root/blobs/sha256/&lt;hex&gt;.partial    an interrupted download, resumed with a Range request
/// root/trees/&lt;manifest-hex&gt;/         layers unpacked in order, whiteouts applied
/// root/disks/&lt;manifest-hex&gt;.ext4     mkfs.ext4 -d of the tree
/// root/index.json                     images: references, layers, VM users, last use (written atomically)
/// </code>
/// One download per digest and one unpack/disk build per manifest at a time, however many callers ask.
/// </summary>
public sealed partial class ImageCache : IDisposable
{
    private readonly ImageCacheOptions _options;
    private readonly RegistryClient _registry;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly SingleFlight _flights = new();
    private readonly SemaphoreSlim _indexLock = new(1, 1);
    private readonly CancellationTokenSource _lifetime = new();
    private readonly string _mkfs;
    private Dictionary<string, IndexEntry> _index;
    // Blobs of pulls still running: verified but not yet in the index, so prune must not take them.
    private readonly Dictionary<string, int> _pinned = new(StringComparer.Ordinal);

    public ImageCache(ImageCacheOptions options, RegistryClient registry, TimeProvider time, ILogger<ImageCache>? logger = null)
    {
        _options = options;
        _registry = registry;
        _time = time;
        _logger = (ILogger?)logger ?? NullLogger.Instance;
        _mkfs = DiskBuilder.FindMkfs(options.MkfsPath);
        Directory.CreateDirectory(BlobDir);
        Directory.CreateDirectory(TreeDir);
        Directory.CreateDirectory(DiskDir);
        _index = LoadIndex();
        RemoveStaleBuilds();
    }

    public string Root => _options.Root;
    private string BlobDir => Path.Combine(_options.Root, "blobs", "sha256");
    private string TreeDir => Path.Combine(_options.Root, "trees");
    private string DiskDir => Path.Combine(_options.Root, "disks");
    private string IndexPath => Path.Combine(_options.Root, "index.json");

    /// <summary>Path of a verified blob (it exists only once verified).</summary>
    public string BlobPath(string digest) => Path.Combine(BlobDir, Hex(digest));

    public void Dispose()
    {
        _lifetime.Cancel();
        _lifetime.Dispose();
        _indexLock.Dispose();
    }

    /// <summary>
    /// Resolves the reference, downloads every blob not yet cached with its digest verified, records the image in the
    /// index, then evicts to the size limit. A reference by digest whose image is complete in the cache needs no
    /// request (content never changes). A tag is asked of the registry (tags move), except within
    /// <see cref="ImageCacheOptions.TagTtl"/> of the last answer while that image is still complete here; and when
    /// the registry cannot be reached (or answers 5xx), the tag's last known digest is used if its image is complete
    /// here, with <see cref="PulledImage.Note"/> saying so (a VM from an image can restart while its registry is down).
    /// </summary>
    public async Task<PulledImage> PullAsync(ImageReference reference, IProgress<ImagePullProgress>? progress, CancellationToken cancellationToken)
    {
        var name = reference.ToString();
        if (Known(reference) is { } known)
        {
            return known;
        }

        ImageManifest manifest;
        try
        {
            manifest = await _registry.GetManifestAsync(reference, cancellationToken);
        }
        catch (ImagePullException e) when (e.Kind is ImagePullErrorKind.RegistryUnreachable or ImagePullErrorKind.RegistryError && LastKnown(reference) is { } last)
        {
            var why = e.RegistryMessage is { Length: > 0 } registry ? registry : e.Message;
            LogLastKnown(_logger, name, last.Digest, why);
            return new PulledImage(name, last,
                $"registry not reachable ({why}); using the last known digest {last.Digest} of this tag from the node's cache");
        }

        if (reference.Digest is null)
        {
            _tags[name] = (manifest, _time.GetUtcNow());
        }

        var blobs = new[] { manifest.Config }.Concat(manifest.Layers).DistinctBy(d => d.Digest).ToList();
        var pins = blobs.Select(b => b.Digest).Append(manifest.Digest).ToList();
        Pin(pins, +1);
        try
        {
            await StoreBytesAsync(manifest.Digest, manifest.Raw, cancellationToken);
            return await PullBlobsAsync(reference, manifest, blobs, progress, cancellationToken);
        }
        finally
        {
            Pin(pins, -1);
        }
    }

    // Tag -> its manifest as the registry last gave it, and when.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, (ImageManifest Manifest, DateTimeOffset At)> _tags = new(StringComparer.Ordinal);

    /// <summary>The image without a request: a digest reference complete in the cache, or a tag asked within the TTL.</summary>
    private PulledImage? Known(ImageReference reference)
    {
        var name = reference.ToString();
        if (reference.Digest is { } digest)
        {
            return Complete(digest) is { } byDigest ? new PulledImage(name, byDigest) : null;
        }

        if (_options.TagTtl > TimeSpan.Zero && _tags.TryGetValue(name, out var memo) && _time.GetUtcNow() - memo.At < _options.TagTtl &&
            Complete(memo.Manifest.Digest) is not null)
        {
            return new PulledImage(name, memo.Manifest);
        }

        return null;
    }

    /// <summary>The image a tag last named in the index, when it is complete in the cache.</summary>
    private ImageManifest? LastKnown(ImageReference reference)
    {
        if (reference.Digest is not null)
        {
            return null;
        }

        var name = reference.ToString();
        string? digest;
        _indexLock.Wait();
        try { digest = _index.Values.FirstOrDefault(e => e.References.Contains(name))?.Digest; }
        finally { _indexLock.Release(); }

        return digest is null ? null : Complete(digest);
    }

    /// <summary>The manifest of an image in the index whose manifest, config and layers are all verified blobs here; else null.</summary>
    private ImageManifest? Complete(string digest)
    {
        IndexEntry? entry;
        _indexLock.Wait();
        try { entry = _index.GetValueOrDefault(digest)?.Clone(); }
        finally { _indexLock.Release(); }

        if (entry?.Config is null || !File.Exists(BlobPath(digest)) || !File.Exists(BlobPath(entry.Config)) || entry.Layers.Any(l => !File.Exists(BlobPath(l))))
        {
            return null;
        }

        try
        {
            var raw = File.ReadAllBytes(BlobPath(digest));
            using var doc = JsonDocument.Parse(raw);
            var mediaType = doc.RootElement.TryGetProperty("mediaType", out var m) && m.GetString() is { } t ? t : MediaTypes.OciManifest;
            return RegistryClient.ParseManifest(ImageReference.Parse("localhost/cache@" + digest), mediaType, raw, digest);
        }
        catch (Exception e) when (e is IOException or JsonException or ImagePullException)
        {
            return null; // a blob removed meanwhile, or unreadable: ask the registry
        }
    }

    private void Pin(IEnumerable<string> digests, int delta)
    {
        lock (_pinned)
            foreach (var d in digests)
            {
                var n = _pinned.GetValueOrDefault(d) + delta;
                if (n > 0) _pinned[d] = n; else _pinned.Remove(d);
            }
    }

    private async Task<PulledImage> PullBlobsAsync(ImageReference reference, ImageManifest manifest, List<Descriptor> blobs,
        IProgress<ImagePullProgress>? progress, CancellationToken cancellationToken)
    {
        var name = reference.ToString();
        var total = blobs.Sum(b => b.Size);
        long done = 0;
        progress?.Report(new ImagePullProgress(name, 0, total));
        foreach (var blob in blobs)
        {
            var before = done;
            await _flights.RunAsync("blob:" + blob.Digest, () => DownloadBlobAsync(reference, blob,
                bytes => progress?.Report(new ImagePullProgress(name, before + bytes, total)), _lifetime.Token), cancellationToken);
            done += blob.Size;
            progress?.Report(new ImagePullProgress(name, done, total));
        }

        await UpdateIndexAsync(index =>
        {
            if (!index.TryGetValue(manifest.Digest, out var entry))
                index[manifest.Digest] = entry = new IndexEntry { Digest = manifest.Digest };
            entry.Config = manifest.Config.Digest;
            entry.Layers = manifest.Layers.Select(l => l.Digest).ToList();
            var shown = reference.Digest is null ? name : reference.WithDigest(manifest.Digest).ToString();
            if (!entry.References.Contains(shown)) entry.References.Add(shown);
            // A tag names one image at a time: when it moved, the older image keeps only its digest.
            foreach (var other in index.Values)
                if (other != entry) other.References.Remove(shown);
            entry.LastUsed = _time.GetUtcNow();
        }, cancellationToken);
        LogPulled(_logger, name, manifest.Digest, total);
        await EnforceSizeLimitAsync(manifest.Digest, cancellationToken);
        return new PulledImage(name, manifest);
    }

    /// <summary>The unpacked tree of a pulled image (built once, then reused).</summary>
    public Task<string> GetTreeAsync(PulledImage image, CancellationToken cancellationToken) =>
        _flights.RunAsync("tree:" + image.Digest, () => BuildTreeAsync(image.Manifest, _lifetime.Token), cancellationToken);

    /// <summary>The ext4 disk of a pulled image (built once from its tree, then reused). Callers give each VM a copy-on-write view.</summary>
    public Task<string> GetDiskAsync(PulledImage image, CancellationToken cancellationToken) =>
        _flights.RunAsync("disk:" + image.Digest, async () =>
        {
            var disk = Path.Combine(DiskDir, Hex(image.Digest) + ".ext4");
            if (File.Exists(disk)) return disk;
            var tree = await GetTreeAsync(image, _lifetime.Token);
            var temp = disk + ".tmp";
            File.Delete(temp);
            await DiskBuilder.BuildAsync(_mkfs, tree, temp, _lifetime.Token);
            using (var f = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite)) f.Flush(flushToDisk: true);
            File.Move(temp, disk, overwrite: true);
            Native.FsyncDirectory(DiskDir);
            return disk;
        }, cancellationToken);

    /// <summary>Records that VM <paramref name="vmUid"/> uses the image, so prune and eviction keep it.</summary>
    public async Task AddUserAsync(string digest, string vmUid, CancellationToken cancellationToken)
    {
        await _indexLock.WaitAsync(cancellationToken);
        try
        {
            if (!_index.TryGetValue(digest, out var entry))
                throw new InvalidOperationException($"image {digest} is not in the cache; pull it first");
            entry.LastUsed = _time.GetUtcNow();
            // Written (fsync'd) only when the user is new: a VM already counted costs no disk write; the last-use time
            // rides along with the next write (it only orders eviction).
            if (!entry.Users.Contains(vmUid))
            {
                entry.Users.Add(vmUid);
                SaveIndex();
            }
        }
        finally { _indexLock.Release(); }
    }

    /// <summary>Drops VM <paramref name="vmUid"/> from every image it used (on VM delete).</summary>
    public Task RemoveUserAsync(string vmUid, CancellationToken cancellationToken) =>
        UpdateIndexAsync(index =>
        {
            foreach (var entry in index.Values) entry.Users.Remove(vmUid);
        }, cancellationToken);

    public IReadOnlyList<CachedImage> List()
    {
        Dictionary<string, IndexEntry> snapshot;
        _indexLock.Wait();
        try { snapshot = _index.ToDictionary(kv => kv.Key, kv => kv.Value.Clone()); }
        finally { _indexLock.Release(); }
        return snapshot.Values.OrderBy(e => e.Digest, StringComparer.Ordinal).Select(ToCached).ToList();
    }

    /// <summary>Total bytes of everything under blobs/, trees/ and disks/.</summary>
    public long SizeBytes() => DirectorySize(Path.Combine(_options.Root, "blobs")) + DirectorySize(TreeDir) + DirectorySize(DiskDir);

    /// <summary>Removes every image no VM uses, blobs no image needs and stale partial downloads. Returns what was removed.</summary>
    public async Task<IReadOnlyList<CachedImage>> PruneAsync(CancellationToken cancellationToken)
    {
        var removed = new List<CachedImage>();
        await _indexLock.WaitAsync(cancellationToken);
        try
        {
            foreach (var entry in _index.Values.Where(e => e.Users.Count == 0 && !IsPinned(e.Digest)).ToList())
            {
                removed.Add(ToCached(entry));
                _index.Remove(entry.Digest);
                DeleteImageFiles(entry);
            }
            SaveIndex();
            DeleteOrphanBlobs();
        }
        finally { _indexLock.Release(); }
        foreach (var r in removed) LogRemoved(_logger, r.Digest, "prune");
        return removed;
    }

    /// <summary>
    /// Removes one image by reference (as listed) or digest. Refuses with <see cref="ImageInUseException"/>
    /// while a VM uses it, and with <see cref="KeyNotFoundException"/> when nothing matches.
    /// </summary>
    public async Task RemoveAsync(string referenceOrDigest, CancellationToken cancellationToken)
    {
        var wanted = ImageReference.TryParse(referenceOrDigest, out var parsed, out _) ? parsed.ToString() : referenceOrDigest;
        await _indexLock.WaitAsync(cancellationToken);
        try
        {
            var matches = _index.Values.Where(e => e.Digest == referenceOrDigest || e.References.Contains(wanted)).ToList();
            if (matches.Count == 0) throw new KeyNotFoundException($"no cached image matches '{referenceOrDigest}' (see the image list)");
            foreach (var entry in matches)
                if (entry.Users.Count > 0)
                    throw new ImageInUseException(entry.Digest, entry.References.ToList(), entry.Users.ToList());
            foreach (var entry in matches)
            {
                _index.Remove(entry.Digest);
                DeleteImageFiles(entry);
            }
            SaveIndex();
            DeleteOrphanBlobs();
        }
        finally { _indexLock.Release(); }
    }

    /// <summary>Evicts unused images, least recently used first, until the cache fits <see cref="ImageCacheOptions.SizeLimitBytes"/>.</summary>
    public Task<IReadOnlyList<CachedImage>> EnforceSizeLimitAsync(CancellationToken cancellationToken) =>
        EnforceSizeLimitAsync(null, cancellationToken);

    // The image just pulled is kept even when it alone exceeds the limit: its caller is about to use it.
    private async Task<IReadOnlyList<CachedImage>> EnforceSizeLimitAsync(string? keep, CancellationToken cancellationToken)
    {
        var removed = new List<CachedImage>();
        if (_options.SizeLimitBytes <= 0) return removed;
        await _indexLock.WaitAsync(cancellationToken);
        try
        {
            foreach (var entry in _index.Values.Where(e => e.Users.Count == 0 && e.Digest != keep && !IsPinned(e.Digest)).OrderBy(e => e.LastUsed).ToList())
            {
                if (SizeBytes() <= _options.SizeLimitBytes) break;
                if (_flights.IsRunning("tree:" + entry.Digest) || _flights.IsRunning("disk:" + entry.Digest)) continue;
                removed.Add(ToCached(entry));
                _index.Remove(entry.Digest);
                DeleteImageFiles(entry);
                SaveIndex();
                DeleteOrphanBlobs();
            }
        }
        finally { _indexLock.Release(); }
        foreach (var r in removed) LogRemoved(_logger, r.Digest, "size limit");
        return removed;
    }

    private async Task<bool> DownloadBlobAsync(ImageReference reference, Descriptor blob, Action<long> onBytes, CancellationToken ct)
    {
        var final = BlobPath(blob.Digest);
        if (File.Exists(final)) return true;
        var partial = final + ".partial";
        // A resumed download whose bytes do not verify is restarted once from zero: the partial may be from a
        // different attempt the registry no longer serves identically.
        for (var attempt = 0; ; attempt++)
        {
            var offset = File.Exists(partial) ? new FileInfo(partial).Length : 0;
            if (offset > blob.Size) { File.Delete(partial); offset = 0; }
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var output = new FileStream(partial, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                // A crash between the last write and the rename leaves a complete .partial: verify it without a request.
                if (offset > 0 && offset == blob.Size)
                {
                    await HashExistingAsync(output, hash, ct);
                }
                else
                {
                    using var body = await _registry.OpenBlobAsync(reference, blob.Digest, offset, ct);
                    if (offset > 0 && body.Resumed)
                    {
                        await HashExistingAsync(output, hash, ct);
                        LogResumed(_logger, blob.Digest, offset);
                    }
                    else
                    {
                        output.SetLength(0);
                        offset = 0;
                    }
                    output.Position = offset;
                    var chunk = new byte[1 << 16];
                    long written = offset;
                    int read;
                    try
                    {
                        while ((read = await body.Content.ReadAsync(chunk, ct)) > 0)
                        {
                            hash.AppendData(chunk, 0, read);
                            await output.WriteAsync(chunk.AsMemory(0, read), ct);
                            written += read;
                            if (written > blob.Size) break;
                            onBytes(written);
                        }
                    }
                    catch (Exception e) when (e is IOException or HttpRequestException)
                    {
                        // What arrived stays in the .partial (flushed when the stream closes) for the next pull to resume.
                        throw new ImagePullException(ImagePullErrorKind.RegistryUnreachable, reference.ToString(),
                            $"{reference}: the connection broke after {written} of {blob.Size} bytes of blob {blob.Digest} ({e.Message}); the next pull resumes it",
                            null, e);
                    }
                }
                output.Flush(flushToDisk: true);
            }
            var actual = "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
            var size = new FileInfo(partial).Length;
            if (actual == blob.Digest && size == blob.Size)
            {
                File.Move(partial, final, overwrite: true);
                Native.FsyncDirectory(BlobDir);
                return true;
            }
            File.Delete(partial);
            if (offset > 0 && attempt == 0) continue;
            throw new ImagePullException(ImagePullErrorKind.DigestMismatch, reference.ToString(),
                $"{reference}: blob {blob.Digest} arrived as {actual} ({size} bytes, manifest says {blob.Size}); nothing was kept");
        }
    }

    private static async Task HashExistingAsync(FileStream file, IncrementalHash hash, CancellationToken ct)
    {
        file.Position = 0;
        var buffer = new byte[1 << 16];
        int n;
        while ((n = await file.ReadAsync(buffer, ct)) > 0) hash.AppendData(buffer, 0, n);
    }

    private async Task StoreBytesAsync(string digest, byte[] bytes, CancellationToken ct)
    {
        var final = BlobPath(digest);
        if (File.Exists(final)) return;
        var temp = final + ".tmp-" + Guid.NewGuid().ToString("N");
        await using (var f = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
        {
            await f.WriteAsync(bytes, ct);
            f.Flush(flushToDisk: true);
        }
        File.Move(temp, final, overwrite: true);
        Native.FsyncDirectory(BlobDir);
    }

    private async Task<string> BuildTreeAsync(ImageManifest manifest, CancellationToken ct)
    {
        var tree = Path.Combine(TreeDir, Hex(manifest.Digest));
        if (Directory.Exists(tree)) return tree;
        // Unpacked into a temp dir and renamed in whole: a crash mid-unpack leaves nothing that looks finished.
        var temp = tree + ".tmp-" + Guid.NewGuid().ToString("N")[..8];
        Directory.CreateDirectory(temp);
        try
        {
            foreach (var layer in manifest.Layers)
            {
                var path = BlobPath(layer.Digest);
                if (!File.Exists(path)) throw new ImagePullException(ImagePullErrorKind.InvalidLayer, null, $"layer {layer.Digest} of {manifest.Digest} is not in the cache; pull the image again");
                await LayerUnpacker.ApplyAsync(temp, path, layer.Digest, ct);
            }
            try
            {
                Directory.Move(temp, tree);
            }
            catch (IOException) when (Directory.Exists(tree))
            {
                // Someone else finished the same tree first; theirs is identical.
                Directory.Delete(temp, recursive: true);
                return tree;
            }
            Native.FsyncDirectory(TreeDir);
            return tree;
        }
        catch
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, recursive: true);
            throw;
        }
    }

    private async Task UpdateIndexAsync(Action<Dictionary<string, IndexEntry>> change, CancellationToken ct)
    {
        await _indexLock.WaitAsync(ct);
        try
        {
            change(_index);
            SaveIndex();
        }
        finally { _indexLock.Release(); }
    }

    private Dictionary<string, IndexEntry> LoadIndex()
    {
        if (!File.Exists(IndexPath)) return new(StringComparer.Ordinal);
        IndexFile? file;
        try
        {
            file = JsonSerializer.Deserialize(File.ReadAllText(IndexPath), IndexJson.Default.IndexFile);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"image cache index {IndexPath} is unreadable ({e.Message}); move it away to start with an empty index (blobs are re-verified on the next pull)", e);
        }
        if (file is null) throw new InvalidDataException($"image cache index {IndexPath} is empty; move it away to start with an empty index");
        return file.Images.ToDictionary(e => e.Digest, StringComparer.Ordinal);
    }

    private void SaveIndex()
    {
        var temp = IndexPath + ".tmp";
        using (var f = new FileStream(temp, FileMode.Create, FileAccess.Write))
        {
            JsonSerializer.Serialize(f, new IndexFile { Images = _index.Values.OrderBy(e => e.Digest, StringComparer.Ordinal).ToList() }, IndexJson.Default.IndexFile);
            f.Flush(flushToDisk: true);
        }
        File.Move(temp, IndexPath, overwrite: true);
        Native.FsyncDirectory(_options.Root);
    }

    private void RemoveStaleBuilds()
    {
        foreach (var dir in Directory.EnumerateDirectories(TreeDir, "*.tmp-*")) Directory.Delete(dir, recursive: true);
        foreach (var file in Directory.EnumerateFiles(DiskDir, "*.tmp")) File.Delete(file);
        foreach (var file in Directory.EnumerateFiles(BlobDir, "*.tmp-*")) File.Delete(file);
    }

    private void DeleteImageFiles(IndexEntry entry)
    {
        var tree = Path.Combine(TreeDir, Hex(entry.Digest));
        if (Directory.Exists(tree)) Directory.Delete(tree, recursive: true);
        File.Delete(Path.Combine(DiskDir, Hex(entry.Digest) + ".ext4"));
    }

    // Called with the index lock held. Blobs being downloaded right now are kept (their flight is running).
    private void DeleteOrphanBlobs()
    {
        var needed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in _index.Values)
        {
            needed.Add(Hex(e.Digest));
            if (e.Config is not null) needed.Add(Hex(e.Config));
            foreach (var l in e.Layers) needed.Add(Hex(l));
        }
        foreach (var file in Directory.EnumerateFiles(BlobDir))
        {
            var name = Path.GetFileName(file);
            var hex = name.Split('.')[0];
            if (needed.Contains(hex) && !name.Contains('.', StringComparison.Ordinal)) continue;
            if (_flights.IsRunning("blob:sha256:" + hex) || IsPinned("sha256:" + hex)) continue;
            File.Delete(file);
        }
    }

    private bool IsPinned(string digest)
    {
        lock (_pinned) return _pinned.ContainsKey(digest);
    }

    private CachedImage ToCached(IndexEntry e)
    {
        var tree = Path.Combine(TreeDir, Hex(e.Digest));
        var disk = Path.Combine(DiskDir, Hex(e.Digest) + ".ext4");
        var size = new[] { e.Digest, e.Config }.Concat(e.Layers).OfType<string>().Distinct()
            .Select(d => new FileInfo(BlobPath(d))).Where(f => f.Exists).Sum(f => f.Length);
        var hasTree = Directory.Exists(tree);
        var hasDisk = File.Exists(disk);
        if (hasTree) size += DirectorySize(tree);
        if (hasDisk) size += new FileInfo(disk).Length;
        return new CachedImage(e.Digest, e.References.ToList(), e.Users.ToList(), e.LastUsed, size, hasTree, hasDisk);
    }

    private static long DirectorySize(string dir) =>
        !Directory.Exists(dir) ? 0 :
        new DirectoryInfo(dir).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Where(f => f.LinkTarget is null).Sum(f => f.Length);

    private static string Hex(string digest) =>
        digest.StartsWith("sha256:", StringComparison.Ordinal) ? digest[7..] : throw new ArgumentException($"unsupported digest '{digest}'", nameof(digest));

    [LoggerMessage(EventId = 5010, Level = LogLevel.Warning, Message = "image {Reference}: registry not reachable ({Error}); using the last known digest {Digest} from the cache")]
    private static partial void LogLastKnown(ILogger log, string reference, string digest, string error);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Pulled image {Reference} ({Digest}, {Bytes} bytes)")]
    private static partial void LogPulled(ILogger logger, string reference, string digest, long bytes);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Information, Message = "Resumed blob {Digest} at byte {Offset}")]
    private static partial void LogResumed(ILogger logger, string digest, long offset);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Information, Message = "Removed image {Digest} ({Why})")]
    private static partial void LogRemoved(ILogger logger, string digest, string why);

    // Source-generated (Native AOT cannot use the reflection serializer): the same file as the reflection serializer
    // wrote with WriteIndented and default names, so index files of earlier versions still read.
    [JsonSourceGenerationOptions(WriteIndented = true)]
    [JsonSerializable(typeof(IndexFile))]
    private sealed partial class IndexJson : JsonSerializerContext;

    private sealed class IndexFile
    {
        public List<IndexEntry> Images { get; set; } = new();
    }

    private sealed class IndexEntry
    {
        public string Digest { get; set; } = "";
        public string? Config { get; set; }
        public List<string> Layers { get; set; } = new();
        public List<string> References { get; set; } = new();
        public List<string> Users { get; set; } = new();
        public DateTimeOffset LastUsed { get; set; }

        public IndexEntry Clone() => new()
        {
            Digest = Digest, Config = Config, Layers = Layers.ToList(), References = References.ToList(), Users = Users.ToList(), LastUsed = LastUsed,
        };
    }
}
