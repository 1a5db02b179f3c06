using System.Runtime.Versioning;
using Hypercore.Daemon.Cli;
using Hypercore.Daemon.Configuration;

namespace Hypercore.Api.Tests.Daemon;

[SupportedOSPlatform("linux")]
public sealed class DaemonSettingsTests
{
    [TestCase("localhost:9090", "localhost", 9090)]
    [TestCase("http://127.0.0.1:80/", "127.0.0.1", 80)]
    [TestCase("[::1]:9090", "::1", 9090)]
    [TestCase("*:9091", "*", 9091)]
    [TestCase("0.0.0.0:0", "0.0.0.0", 0)]
    [TestCase("https://127.0.0.1:9443", "127.0.0.1", 9443)]
    public void ListenEndpoint_ValidForms_Parse(string text, string host, int port)
    {
        ListenEndpoint.TryParse(text, out var endpoint, out var error).Should().BeTrue(error);

        endpoint!.Host.Should().Be(host);
        endpoint.Port.Should().Be(port);
    }

    [TestCase("9090", "host:port")]
    [TestCase("localhost:65536", "port")]
    [TestCase("localhost:-1", "port")]
    [TestCase("example.com:9090", "must be localhost")]
    [TestCase("unix://relative/path.sock", "unix:///absolute/path")]
    [TestCase("", "host:port")]
    public void ListenEndpoint_InvalidForms_SayWhy(string text, string expected)
    {
        ListenEndpoint.TryParse(text, out _, out var error).Should().BeFalse();

        error.Should().Contain(expected);
    }

    [TestCase("localhost:9090", "127.0.0.1:9090", true)]
    [TestCase("*:9090", "127.0.0.1:9090", true)]
    [TestCase("127.0.0.1:9090", "127.0.0.2:9090", false)]
    [TestCase("localhost:0", "localhost:0", false)]
    [TestCase("localhost:9090", "localhost:9091", false)]
    public void ListenEndpoint_Overlaps_WhenTheyWouldBindTheSameSocket(string a, string b, bool overlaps)
    {
        var x = ListenEndpoint.Parse(a, out _)!;
        var y = ListenEndpoint.Parse(b, out _)!;

        x.Overlaps(y).Should().Be(overlaps);
        y.Overlaps(x).Should().Be(overlaps);
    }

    [Test]
    public void Toml_KnownKeys_MapToConfigurationKeys()
    {
        var values = TomlSettingsFile.Parse("""
            grpc-endpoint = "localhost:7000"
            state-dir = "/srv/hc"
            qemu-accel = "tcg"
            """, "test.toml");

        values.Should().BeEquivalentTo(new Dictionary<string, string?>
        {
            ["Daemon:GrpcEndpoint"] = "localhost:7000",
            ["Daemon:StateDirectory"] = "/srv/hc",
            ["Daemon:QemuAccelerator"] = "tcg",
        });
    }

    [TestCase("grpc_endpoint = \"x\"", "unknown key \"grpc_endpoint\"")]
    [TestCase("[qemu]\naccel = \"tcg\"", "unknown key \"qemu\"")]
    [TestCase("state-dir = [\"/a\"]", "\"state-dir\" must be a string")]
    [TestCase("state-dir = ", "not valid TOML")]
    public void Toml_Problems_NameTheKey(string toml, string expected)
    {
        var act = () => TomlSettingsFile.Parse(toml, "test.toml");

        act.Should().Throw<SettingsException>().WithMessage($"*test.toml*{expected}*");
    }

    [Test]
    public async Task Cli_EveryBadSetting_IsReportedAtOnceWithExit2()
    {
        var dir = Directory.CreateTempSubdirectory("hypercore-settings-");
        try
        {
            var notADirectory = Path.Combine(dir.FullName, "file");
            await File.WriteAllTextAsync(notADirectory, "");
            var stdout = new StringWriter();
            var stderr = new StringWriter();

            var code = await DaemonCli.RunAsync(
            [
                "run", "--state-dir", notADirectory, "--grpc-endpoint", "localhost:70000", "--http-endpoint", "example.com:1",
                "--default-provider", "vmware", "--qemu-accel", "hvf", "--log-level", "Loud", "--log-format", "xml",
            ], stdout, stderr);

            code.Should().Be(2);
            var errors = stderr.ToString();
            errors.Should().Contain("state-dir: ").And.Contain("not writable");
            errors.Should().Contain("grpc-endpoint: ").And.Contain("http-endpoint: ");
            errors.Should().Contain("default-provider: \"vmware\" is not a provider on this node; known providers: cloud-hypervisor, firecracker, qemu, unikernel");
            errors.Should().Contain("qemu-accel: ").And.Contain("log-level: ").And.Contain("log-format: ");
            stdout.ToString().Should().BeEmpty();
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Test]
    public async Task Cli_SameCleartextPortForBoth_IsRefused()
    {
        var dir = Directory.CreateTempSubdirectory("hypercore-settings-");
        try
        {
            var stderr = new StringWriter();

            var code = await DaemonCli.RunAsync(
                ["run", "--state-dir", dir.FullName, "--grpc-endpoint", "localhost:9555", "--http-endpoint", "127.0.0.1:9555"],
                new StringWriter(), stderr);

            code.Should().Be(2);
            stderr.ToString().Should().Contain("cannot share a cleartext port");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
