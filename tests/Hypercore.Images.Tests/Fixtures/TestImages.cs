using System.Formats.Tar;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Hypercore.Images.Registry;

namespace Hypercore.Images.Tests.Fixtures;

/// <summary>A layer entry the test puts in a tar.</summary>
internal abstract record LayerEntry(string Name);
internal sealed record FileEntry(string Name, string Content, UnixFileMode Mode = (UnixFileMode)0x1A4) : LayerEntry(Name);
internal sealed record DirEntry(string Name) : LayerEntry(Name);
internal sealed record SymlinkEntry(string Name, string Target) : LayerEntry(Name);
internal sealed record HardLinkEntry(string Name, string Target) : LayerEntry(Name);

/// <summary>A built blob: bytes plus digest.</summary>
internal sealed record Blob(byte[] Bytes, string MediaType)
{
    public string Digest { get; } = "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Bytes));
    public Descriptor Descriptor => new(MediaType, Digest, Bytes.Length);
}

/// <summary>An image the test pushes: config, layers, manifest.</summary>
internal sealed record TestImage(Blob Config, IReadOnlyList<Blob> Layers, Blob Manifest)
{
    public string Digest => Manifest.Digest;
}

internal static class TestImages
{
    public static Blob Layer(params LayerEntry[] entries) => Layer(gzip: true, entries);

    public static Blob Layer(bool gzip, params LayerEntry[] entries)
    {
        using var tar = new MemoryStream();
        using (var writer = new TarWriter(tar, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var e in entries)
            {
                PaxTarEntry entry = e switch
                {
                    FileEntry f => new PaxTarEntry(TarEntryType.RegularFile, f.Name) { DataStream = new MemoryStream(Encoding.UTF8.GetBytes(f.Content)), Mode = f.Mode },
                    DirEntry d => new PaxTarEntry(TarEntryType.Directory, d.Name) { Mode = (UnixFileMode)0x1ED },
                    SymlinkEntry s => new PaxTarEntry(TarEntryType.SymbolicLink, s.Name) { LinkName = s.Target },
                    HardLinkEntry h => new PaxTarEntry(TarEntryType.HardLink, h.Name) { LinkName = h.Target },
                    _ => throw new ArgumentOutOfRangeException(nameof(entries)),
                };
                writer.WriteEntry(entry);
            }
        }
        if (!gzip) return new Blob(tar.ToArray(), "application/vnd.oci.image.layer.v1.tar");
        using var gz = new MemoryStream();
        using (var z = new GZipStream(gz, CompressionLevel.Fastest, leaveOpen: true)) z.Write(tar.ToArray());
        return new Blob(gz.ToArray(), "application/vnd.oci.image.layer.v1.tar+gzip");
    }

    /// <summary>A random, incompressible layer of about <paramref name="bytes"/> bytes (for size and progress tests).</summary>
    public static Blob RandomLayer(int bytes, string name = "data/random.bin") =>
        Layer(gzip: false, new FileEntry(name, Convert.ToBase64String(RandomNumberGenerator.GetBytes(bytes * 3 / 4))));

    public static TestImage Image(string architecture = "amd64", params Blob[] layers) => Image(architecture, docker: false, layers);

    /// <param name="docker">Docker schema 2 media types instead of OCI ones.</param>
    public static TestImage Image(string architecture, bool docker, params Blob[] layers)
    {
        var config = new Blob(JsonSerializer.SerializeToUtf8Bytes(new
        {
            architecture,
            os = "linux",
            rootfs = new { type = "layers", diff_ids = layers.Select(l => l.Digest).ToArray() },
        }), docker ? "application/vnd.docker.container.image.v1+json" : "application/vnd.oci.image.config.v1+json");
        var mediaType = docker ? MediaTypes.DockerManifest : MediaTypes.OciManifest;
        var manifest = new Blob(JsonSerializer.SerializeToUtf8Bytes(new
        {
            schemaVersion = 2,
            mediaType,
            config = Desc(config.Descriptor),
            layers = layers.Select(l => Desc(docker ? l.Descriptor with { MediaType = "application/vnd.docker.image.rootfs.diff.tar.gzip" } : l.Descriptor)).ToArray(),
        }), mediaType);
        return new TestImage(config, layers, manifest);
    }

    public static Blob Index(params (TestImage Image, string Arch)[] entries) => Index(docker: false, entries);

    public static Blob Index(bool docker, params (TestImage Image, string Arch)[] entries) =>
        new(JsonSerializer.SerializeToUtf8Bytes(new
        {
            schemaVersion = 2,
            mediaType = docker ? MediaTypes.DockerManifestList : MediaTypes.OciIndex,
            manifests = entries.Select(e => new
            {
                mediaType = e.Image.Manifest.MediaType,
                digest = e.Image.Digest,
                size = e.Image.Manifest.Bytes.Length,
                platform = new { architecture = e.Arch, os = "linux" },
            }).ToArray(),
        }), docker ? MediaTypes.DockerManifestList : MediaTypes.OciIndex);

    private static object Desc(Descriptor d) => new { mediaType = d.MediaType, digest = d.Digest, size = d.Size };
}

/// <summary>Pushes images through the distribution API (monolithic blob uploads, manifest PUT).</summary>
internal sealed class Pusher : IDisposable
{
    private readonly HttpClient _http;
    private readonly string _base;
    private readonly Func<string, Task<AuthenticationHeaderValue?>> _auth;

    public Pusher(string baseUrl, TestPki? pki = null, Func<string, Task<AuthenticationHeaderValue?>>? auth = null)
    {
        var handler = new HttpClientHandler();
        if (pki is not null) handler.ServerCertificateCustomValidationCallback = (_, cert, _, _) => cert is not null && pki.Validate(cert);
        _http = new HttpClient(handler);
        _base = baseUrl.TrimEnd('/');
        _auth = auth ?? (_ => Task.FromResult<AuthenticationHeaderValue?>(null));
    }

    public static Func<string, Task<AuthenticationHeaderValue?>> Basic(string user, string password) =>
        _ => Task.FromResult<AuthenticationHeaderValue?>(new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}"))));

    public async Task PushAsync(string repository, string tag, TestImage image)
    {
        foreach (var blob in new[] { image.Config }.Concat(image.Layers)) await PushBlobAsync(repository, blob);
        await PushManifestAsync(repository, tag, image.Manifest);
    }

    public async Task PushBlobAsync(string repository, Blob blob)
    {
        using var start = new HttpRequestMessage(HttpMethod.Post, $"{_base}/v2/{repository}/blobs/uploads/");
        start.Headers.Authorization = await _auth(repository);
        using var started = await _http.SendAsync(start);
        if (started.StatusCode != HttpStatusCode.Accepted) throw new InvalidOperationException($"upload start {started.StatusCode}: {await started.Content.ReadAsStringAsync()}");
        var location = started.Headers.Location!;
        if (!location.IsAbsoluteUri) location = new Uri(new Uri(_base), location);
        var url = location + (location.Query.Length > 0 ? "&" : "?") + "digest=" + Uri.EscapeDataString(blob.Digest);
        using var put = new HttpRequestMessage(HttpMethod.Put, url) { Content = new ByteArrayContent(blob.Bytes) };
        put.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        put.Headers.Authorization = await _auth(repository);
        using var done = await _http.SendAsync(put);
        if (done.StatusCode != HttpStatusCode.Created) throw new InvalidOperationException($"upload {blob.Digest} {done.StatusCode}: {await done.Content.ReadAsStringAsync()}");
    }

    public async Task PushManifestAsync(string repository, string reference, Blob manifest)
    {
        using var put = new HttpRequestMessage(HttpMethod.Put, $"{_base}/v2/{repository}/manifests/{reference}") { Content = new ByteArrayContent(manifest.Bytes) };
        put.Content.Headers.ContentType = new MediaTypeHeaderValue(manifest.MediaType);
        put.Headers.Authorization = await _auth(repository);
        using var done = await _http.SendAsync(put);
        if (done.StatusCode != HttpStatusCode.Created) throw new InvalidOperationException($"manifest {reference} {done.StatusCode}: {await done.Content.ReadAsStringAsync()}");
    }

    public void Dispose() => _http.Dispose();
}

/// <summary>Counts requests per path and records Range headers, in front of the client's transport.</summary>
internal sealed class CountingHandler : DelegatingHandler
{
    private readonly Lock _lock = new();
    private readonly List<(string Path, string? Range)> _requests = new();

    public IReadOnlyList<(string Path, string? Range)> Requests { get { lock (_lock) return _requests.ToList(); } }

    public int BlobGets(string digest) => Requests.Count(r => r.Path.EndsWith("/blobs/" + digest, StringComparison.Ordinal));

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        lock (_lock) _requests.Add((request.RequestUri!.AbsolutePath, request.Headers.Range?.ToString()));
        return base.SendAsync(request, cancellationToken);
    }
}
