using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;

namespace Hypercore.Images.Tests.Fixtures;

/// <summary>
/// A bearer-token realm for docker-registry's <c>auth: token:</c>: issues RS256 JWTs signed with a certificate the
/// test made (sent in the x5c header; the registry trusts it through rootcertbundle). Optionally demands basic
/// credentials, like a real realm for private repositories.
/// </summary>
internal sealed class TokenServer : IAsyncDisposable
{
    public const string Service = "hypercore-test-registry";
    public const string Issuer = "hypercore-test-issuer";

    private readonly RSA _key = RSA.Create(2048);
    private readonly X509Certificate2 _cert;
    private readonly LoopbackHttpServer _server;

    public string RootCertBundlePath { get; }
    public string Realm => $"http://{_server.Host}/token";
    public (string User, string Password)? RequiredUser { get; set; }
    public ConcurrentQueue<(string? Service, string? Scope, bool HadCredentials)> Requests { get; } = new();

    public TokenServer(string dir)
    {
        var request = new CertificateRequest("CN=hypercore-test-token-signer", _key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        _cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(7));
        RootCertBundlePath = Path.Combine(dir, "token-signer.pem");
        File.WriteAllText(RootCertBundlePath, _cert.ExportCertificatePem());
        _server = new LoopbackHttpServer(HandleAsync);
    }

    public string RegistryConfig =>
        $"auth:\n  token:\n    realm: {Realm}\n    service: {Service}\n    issuer: {Issuer}\n    rootcertbundle: {RootCertBundlePath}\n";

    private async Task HandleAsync(HttpListenerContext context)
    {
        var service = context.Request.QueryString["service"];
        var scope = context.Request.QueryString["scope"];
        var authorization = context.Request.Headers["Authorization"];
        Requests.Enqueue((service, scope, authorization is not null));
        if (RequiredUser is { } required)
        {
            var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{required.User}:{required.Password}"));
            if (authorization != expected)
            {
                context.Response.StatusCode = 401;
                await LoopbackHttpServer.Write(context.Response, """{"details":"incorrect username or password"}""");
                return;
            }
        }
        var access = new List<object>();
        if (scope is not null)
        {
            var parts = scope.Split(':');
            access.Add(new { type = parts[0], name = parts[1], actions = parts[2].Split(',') });
        }
        await LoopbackHttpServer.Write(context.Response, JsonSerializer.Serialize(new { token = Mint(access) }));
    }

    /// <summary>A token for <paramref name="repository"/> with pull and push, for the test's own pushes.</summary>
    public string MintFor(string repository) => Mint([new { type = "repository", name = repository, actions = new[] { "pull", "push" } }]);

    private string Mint(IEnumerable<object> access)
    {
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var header = JsonSerializer.SerializeToUtf8Bytes(new { alg = "RS256", typ = "JWT", x5c = new[] { Convert.ToBase64String(_cert.RawData) } });
        var claims = JsonSerializer.SerializeToUtf8Bytes(new
        {
            iss = Issuer, sub = "test", aud = Service, exp = now + 600, nbf = now - 60, iat = now - 60,
            jti = Guid.NewGuid().ToString("N"), access,
        });
        var signingInput = $"{B64(header)}.{B64(claims)}";
        var signature = _key.SignData(Encoding.ASCII.GetBytes(signingInput), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        return $"{signingInput}.{B64(signature)}";
    }

    private static string B64(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public async ValueTask DisposeAsync()
    {
        await _server.DisposeAsync();
        _cert.Dispose();
        _key.Dispose();
    }
}
