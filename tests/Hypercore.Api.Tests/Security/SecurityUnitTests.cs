using System.Runtime.Versioning;
using Hypercore.Api.Security;
using Hypercore.Daemon.Configuration;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Api.Tests.Security;

[SupportedOSPlatform("linux")]
public sealed class SecurityUnitTests
{
    [TestCase("api.example.com", true)]
    [TestCase("API.Example.COM", true)]
    [TestCase("a.b.example.com", true)]
    [TestCase("example.com", false)]
    [TestCase("evil-example.com", false)]
    [TestCase("example.com.evil", false)]
    public async Task AllowedHosts_Wildcard_AllowsOnlyNamesUnderTheDomain(string host, bool allowed)
    {
        var reached = false;
        var middleware = new ApiSecurityMiddleware(
            _ =>
            {
                reached = true;
                return Task.CompletedTask;
            },
            Options.Create(new ApiSecurityOptions { AllowedHosts = ["*.example.com"] }), TimeProvider.System, NullLogger<ApiSecurityMiddleware>.Instance);
        var context = new DefaultHttpContext();
        context.Request.Host = new HostString(host, 8443);
        context.Request.Path = "/vm.services.api.VMService/Get";
        context.Request.ContentType = "application/grpc";

        await middleware.InvokeAsync(context);

        reached.Should().Be(allowed);
        if (!allowed)
        {
            context.Response.Headers["grpc-status"].ToString().Should().Be("7"); // PermissionDenied
        }
    }

    [Test]
    public void TokenFile_FindsTheIdentityOfEachToken_AndNothingForOthers()
    {
        var tokens = TokenFile.Parse("""
            # comment
            first-token-0123456789abcdef alice

            second-token-0123456789abcdef bob
            """, out var errors);

        errors.Should().BeEmpty();
        tokens.Count.Should().Be(2);
        tokens.Find("first-token-0123456789abcdef").Should().Be("alice");
        tokens.Find("second-token-0123456789abcdef").Should().Be("bob");
        tokens.Find("first-token-0123456789abcde").Should().BeNull("a prefix is not the token");
        tokens.Find("").Should().BeNull();
    }

    [TestCase("short alice", "shorter than 16")]
    [TestCase("only-one-word-0123456789", "two words")]
    [TestCase("a-token-0123456789abcdef alice extra", "two words")]
    [TestCase("a-token-0123456789abcdef alice\na-token-0123456789abcdef bob", "listed twice")]
    public void TokenFile_BadLines_AreNamedWithoutEchoingTheToken(string text, string expected)
    {
        TokenFile.Parse(text, out var errors);

        errors.Should().ContainSingle().Which.Should().Contain(expected).And.NotContain("0123456789");
    }

    [TestCase("Bearer abc", "abc")]
    [TestCase("bearer abc", "abc")]
    [TestCase("basic YWJj", "abc")]
    [TestCase("BASIC YWJj", "abc")]
    public void AuthorizationHeader_BearerAndFlintlockBasic_YieldTheToken(string header, string token)
    {
        ApiSecurityMiddleware.TokenOf(header, out var problem).Should().Be(token, problem);
    }

    [TestCase("basic not-base64!", "base64")]
    [TestCase("Digest abc", "not supported")]
    [TestCase("Bearer", "not supported")]
    public void AuthorizationHeader_Malformed_SaysWhy(string header, string expected)
    {
        ApiSecurityMiddleware.TokenOf(header, out var problem).Should().BeNull();

        problem.Should().Contain(expected);
    }

    [Test]
    public void AccessPolicy_WithoutIdentities_EveryCallerIsAdministrator()
    {
        var policy = new AccessPolicy([]);

        policy.GrantFor(new Caller("anyone", "token"))!.Should().BeEquivalentTo(IdentityGrant.Admin("anyone"));
    }

    [Test]
    public void AccessPolicy_WithIdentities_UnlistedIsNothing_ButTheSocketStaysAdministrator()
    {
        var policy = new AccessPolicy([new IdentityGrant("ci", ["ci"], Write: false)]);

        policy.GrantFor(new Caller("ci", "token"))!.AllowsNamespace("ci").Should().BeTrue();
        policy.GrantFor(new Caller("ci", "token"))!.AllowsNamespace("prod").Should().BeFalse();
        policy.GrantFor(new Caller("stranger", "client-certificate")).Should().BeNull();
        policy.GrantFor(new Caller(Caller.UnixSocketIdentity, "unix-socket"))!.Write.Should().BeTrue();
    }

    [Test]
    public void Toml_Identities_BindToTheirConfigurationKeys()
    {
        var values = TomlSettingsFile.Parse("""
            token-file = "/etc/hypercore/tokens"
            [[identities]]
            name = "ci"
            namespaces = ["ci", "staging"]
            write = true
            [[identities]]
            name = "dashboard"
            namespaces = ["*"]
            """, "node.toml");

        values.Should().Contain("Daemon:TokenFile", "/etc/hypercore/tokens")
            .And.Contain("Daemon:Identities:0:Name", "ci")
            .And.Contain("Daemon:Identities:0:Namespaces:1", "staging")
            .And.Contain("Daemon:Identities:0:Write", "true")
            .And.Contain("Daemon:Identities:1:Namespaces:0", "*");
    }

    [TestCase("[[identities]]\nname = \"ci\"\nrole = \"admin\"", "\"role\" is not one of")]
    [TestCase("identities = \"everyone\"", "must be [[identities]] tables")]
    [TestCase("[[identities]]\nnamespaces = [1, 2]", "\"namespaces\" is not one of")]
    public void Toml_BadIdentities_AreRefusedNamingTheKey(string toml, string expected)
    {
        var parse = () => TomlSettingsFile.Parse(toml, "node.toml");

        parse.Should().Throw<SettingsException>().WithMessage($"*{expected}*");
    }

    [TestCase("unix:///run/hypercore/api.sock", true)]
    [TestCase("localhost:9090", true)]
    [TestCase("127.0.0.1:9090", true)]
    [TestCase("[::1]:9090", true)]
    [TestCase("10.0.0.5:9090", false)]
    [TestCase("0.0.0.0:9090", false)]
    [TestCase("*:9090", false)]
    public void ListenEndpoint_IsLoopback_OnlyForThisMachine(string text, bool loopback)
    {
        ListenEndpoint.Parse(text, out var error)!.IsLoopback.Should().Be(loopback, error);
    }

    [Test]
    public void ListenEndpoint_UnixSocket_ParsesAndDoesNotOverlapTcp()
    {
        var socket = ListenEndpoint.Parse("unix:///run/hypercore/api.sock", out _)!;

        socket.UnixPath.Should().Be("/run/hypercore/api.sock");
        socket.Url(0).Should().Be("unix:///run/hypercore/api.sock");
        socket.Overlaps(ListenEndpoint.Parse("localhost:9090", out _)!).Should().BeFalse();
        socket.Overlaps(ListenEndpoint.Parse("unix:///run/hypercore/api.sock", out _)!).Should().BeTrue();
    }
}

/// <summary>Every daemon setting is documented: in the README's configuration table, or in docs/security.md for the transport ones.</summary>
[SupportedOSPlatform("linux")]
public sealed class SettingsDocumentationTests
{
    [Test]
    public void EverySetting_IsDocumented()
    {
        var readme = File.ReadAllText(Path.Combine(Hypercore.Testing.GuestImage.RepoRoot(), "README.md"));
        var security = File.ReadAllText(Path.Combine(Hypercore.Testing.GuestImage.RepoRoot(), "docs", "security.md"));

        var missing = DaemonSettings.All.Where(s => !readme.Contains($"`{s.Name}`", StringComparison.Ordinal)).Select(s => s.Name).ToList();
        var missingSecurity = SecuritySettings.All.Where(s => !security.Contains($"`{s.Name}`", StringComparison.Ordinal)).Select(s => s.Name).ToList();

        missing.Should().BeEmpty("the README's configuration table lists every setting");
        missingSecurity.Should().BeEmpty("docs/security.md describes every transport and identity setting");
    }
}
