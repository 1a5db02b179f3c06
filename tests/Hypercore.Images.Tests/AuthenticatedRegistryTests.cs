using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Hypercore.Images.Cache;
using Hypercore.Images.References;
using Hypercore.Images.Registry;
using Hypercore.Images.Tests.Fixtures;

namespace Hypercore.Images.Tests;

/// <summary>A real docker-registry over TLS (CA made by the test) with htpasswd basic auth.</summary>
[TestFixture]
[NonParallelizable]
public sealed class TlsBasicAuthRegistryTests
{
    private string _dir = null!;
    private TestPki _pki = null!;
    private RegistryProcess _registry = null!;
    private TestImage _image = null!;
    private ImageReference _reference = null!;

    [OneTimeSetUp]
    public async Task StartRegistry()
    {
        _dir = Tools.TempDir("tls");
        _pki = new TestPki(_dir);
        var htpasswd = await Tools.RunAsync("htpasswd", "-Bbn", "puller", "s3cret");
        htpasswd.Code.Should().Be(0, htpasswd.Err);
        var htpasswdPath = Path.Combine(_dir, "htpasswd");
        await File.WriteAllTextAsync(htpasswdPath, htpasswd.Out);
        _registry = await RegistryProcess.StartAsync(_dir, _pki, $"auth:\n  htpasswd:\n    realm: hypercore-test\n    path: {htpasswdPath}\n");
        using var pusher = new Pusher($"https://{_registry.Host}", _pki, Pusher.Basic("puller", "s3cret"));
        _image = TestImages.Image("amd64", TestImages.Layer(new FileEntry("marker", "tls")));
        await pusher.PushAsync("private/app", "1", _image);
        _reference = ImageReference.Parse($"{_registry.Host}/private/app:1");
    }

    [OneTimeTearDown]
    public async Task StopRegistry()
    {
        if (_registry is not null) await _registry.DisposeAsync();
        _pki?.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string CredentialsFile(string user, string password)
    {
        var path = Path.Combine(_dir, $"config-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["auths"] = new Dictionary<string, object> { [_registry.Host] = new { auth = Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")) } },
        }));
        return path;
    }

    private async Task<PulledImage> PullAsync(RegistryOptions options)
    {
        using var client = new RegistryClient(options);
        using var cache = new ImageCache(new ImageCacheOptions { Root = Path.Combine(_dir, "cache-" + Guid.NewGuid().ToString("N")[..8]) }, client, TimeProvider.System);
        return await cache.PullAsync(_reference, null, CancellationToken.None);
    }

    [Test]
    public async Task Pull_WithConfiguredCaAndCredentialsFile_Succeeds()
    {
        var pulled = await PullAsync(new RegistryOptions { CaFile = _pki.CaPemPath, CredentialsFile = CredentialsFile("puller", "s3cret") });

        pulled.Digest.Should().Be(_image.Digest);
    }

    [Test]
    public async Task Pull_WithoutTheCa_FailsTlsAndSaysHowToTrustIt()
    {
        var act = () => PullAsync(new RegistryOptions { CredentialsFile = CredentialsFile("puller", "s3cret") });

        var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
        error.Kind.Should().Be(ImagePullErrorKind.TlsFailure);
        error.Message.Should().Contain("CA file");
    }

    [Test]
    public async Task Pull_WrongPassword_ThrowsUnauthorizedWithTheRegistrysText()
    {
        var act = () => PullAsync(new RegistryOptions { CaFile = _pki.CaPemPath, CredentialsFile = CredentialsFile("puller", "wrong") });

        var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
        error.Kind.Should().Be(ImagePullErrorKind.Unauthorized);
        error.RegistryMessage.Should().Contain("UNAUTHORIZED");
        error.Message.Should().Contain("credentials");
    }

    [Test]
    public async Task Pull_NoCredentials_ThrowsUnauthorized()
    {
        var act = () => PullAsync(new RegistryOptions { CaFile = _pki.CaPemPath });

        (await act.Should().ThrowAsync<ImagePullException>()).Which.Kind.Should().Be(ImagePullErrorKind.Unauthorized);
    }
}

/// <summary>A real docker-registry behind a bearer-token realm served by the test (JWTs signed with a test cert).</summary>
[TestFixture]
[NonParallelizable]
public sealed class BearerTokenRegistryTests
{
    private string _dir = null!;
    private TokenServer _tokens = null!;
    private RegistryProcess _registry = null!;
    private TestImage _image = null!;

    [OneTimeSetUp]
    public async Task StartRegistry()
    {
        _dir = Tools.TempDir("bearer");
        _tokens = new TokenServer(_dir);
        _registry = await RegistryProcess.StartAsync(_dir, extraConfig: _tokens.RegistryConfig);
        using var pusher = new Pusher($"http://{_registry.Host}", auth: repo => Task.FromResult<AuthenticationHeaderValue?>(new AuthenticationHeaderValue("Bearer", _tokens.MintFor(repo))));
        _image = TestImages.Image("amd64", TestImages.Layer(new FileEntry("marker", "bearer")));
        await pusher.PushAsync("team/app", "1", _image);
    }

    [OneTimeTearDown]
    public async Task StopRegistry()
    {
        if (_registry is not null) await _registry.DisposeAsync();
        if (_tokens is not null) await _tokens.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [TearDown]
    public void Reset()
    {
        _tokens.RequiredUser = null;
        _tokens.Requests.Clear();
    }

    private async Task<PulledImage> PullAsync(string? credentialsFile = null)
    {
        using var client = new RegistryClient(new RegistryOptions { InsecureRegistries = { _registry.Host }, CredentialsFile = credentialsFile });
        using var cache = new ImageCache(new ImageCacheOptions { Root = Path.Combine(_dir, "cache-" + Guid.NewGuid().ToString("N")[..8]) }, client, TimeProvider.System);
        return await cache.PullAsync(ImageReference.Parse($"{_registry.Host}/team/app:1"), null, CancellationToken.None);
    }

    [Test]
    public async Task Pull_AnonymousBehindBearerChallenge_FetchesATokenForThePullScopeOnce()
    {
        var pulled = await PullAsync();

        pulled.Digest.Should().Be(_image.Digest);
        _tokens.Requests.Should().ContainSingle().Which.Should().Be((TokenServer.Service, "repository:team/app:pull", false));
    }

    [Test]
    public async Task Pull_RealmNeedsCredentials_SendsThemFromTheCredentialsFile()
    {
        _tokens.RequiredUser = ("robot", "t0ken");
        var path = Path.Combine(_dir, "config.json");
        var auth = Convert.ToBase64String(Encoding.UTF8.GetBytes("robot:t0ken"));
        await File.WriteAllTextAsync(path, JsonSerializer.Serialize(new { auths = new Dictionary<string, object> { [_registry.Host] = new { auth } } }));

        var pulled = await PullAsync(path);

        pulled.Digest.Should().Be(_image.Digest);
        _tokens.Requests.Should().OnlyContain(r => r.HadCredentials);
    }

    [Test]
    public async Task Pull_RealmRefusesAnonymous_ThrowsUnauthorizedWithTheRealmsText()
    {
        _tokens.RequiredUser = ("robot", "t0ken");

        var act = () => PullAsync();

        var error = (await act.Should().ThrowAsync<ImagePullException>()).Which;
        error.Kind.Should().Be(ImagePullErrorKind.Unauthorized);
        error.Message.Should().Contain("incorrect username or password");
    }
}
