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

    [Test]
    public void ListenEndpoint_UnixPathOfSockaddrUnLimit_ParsesOneByteMoreRefused()
    {
        var fits = "/" + new string('s', 106); // 107 bytes and the NUL fill sun_path
        var tooLong = fits + "s";

        ListenEndpoint.TryParse(ListenEndpoint.UnixScheme + fits, out var endpoint, out var error).Should().BeTrue(error);
        endpoint!.UnixPath.Should().Be(fits);
        ListenEndpoint.TryParse(ListenEndpoint.UnixScheme + tooLong, out _, out error).Should().BeFalse();
        error.Should().Contain("longer than 107 bytes (sockaddr_un)");
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
    [TestCase("state-dir = \"/a\"\nstate-dir = \"/b\"", "not valid TOML")] // TOML forbids it; last-wins would hide a slip
    [TestCase("state-dir = \"/a\"\nstate-dir = \"/b\"", "already defined")]
    public void Toml_Problems_NameTheKey(string toml, string expected)
    {
        var act = () => TomlSettingsFile.Parse(toml, "test.toml");

        act.Should().Throw<SettingsException>().WithMessage($"*test.toml*{expected}*");
    }

    [Test]
    public void Toml_NotToml_GivesTheParsersLineAndColumn()
    {
        var act = () => TomlSettingsFile.Parse("log-level = \"Warning\"\nstate-dir = \"/srv\n", "test.toml");

        // Through the source-generated context Tomlyn wraps the parser's error at (1,1); the daemon shows the parser's own.
        act.Should().Throw<SettingsException>().Which.Message.Should().StartWith("config test.toml: not valid TOML: (2,")
            .And.NotContain("Exception while trying to convert");
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

    [TestCase("--reconcile-workers", "abc", "reconcile-workers: expected a whole number from 1 to 1024, got 'abc'")]
    [TestCase("--reconcile-workers", "0", "reconcile-workers: expected a whole number from 1 to 1024, got '0'")]
    [TestCase("--reconcile-workers", "2.5", "reconcile-workers: expected a whole number from 1 to 1024, got '2.5'")]
    [TestCase("--inspect-timeout", "soon", "inspect-timeout: expected a duration such as 30s, 2m or 1h30m, got 'soon'")]
    [TestCase("--inspect-timeout", "0s", "inspect-timeout: expected a duration such as 30s, 2m or 1h30m, got '0s'")]
    [TestCase("--unresponsive-after", "-5", "unresponsive-after: expected a duration such as 30s, 2m or 1h30m, got '-5'")]
    [TestCase("--qemu-accel", "hvf", "qemu-accel: \"hvf\" is not one of auto, kvm, tcg")]
    [TestCase("--log-format", "xml", "log-format: \"xml\" is not one of text, json")]
    [TestCase("--log-level", "Loud", "log-level: \"Loud\" is not one of Trace, Debug, Information, Warning, Error, Critical, None")]
    [TestCase("--store", "etcd", "store: ")]
    [TestCase("--jailer-uid", "root", "jailer-uid: ")]
    [TestCase("--cpu-overcommit-ratio", "lots", "cpu-overcommit-ratio: expected a number greater than 0 and at most 1000, such as 1.5, got 'lots'")]
    [TestCase("--cpu-overcommit-ratio", "0", "cpu-overcommit-ratio: expected a number greater than 0")]
    [TestCase("--reserved-memory-mb", "-1", "reserved-memory-mb: expected a whole number from 0")]
    [TestCase("--admission-retry", "soon", "admission-retry: expected a duration")]
    public async Task Cli_BadTypedValue_NamesTheSettingAndWhatWasExpected_NeverADotNetType(string flag, string value, string expected)
    {
        var dir = Directory.CreateTempSubdirectory("hypercore-settings-");
        try
        {
            var stderr = new StringWriter();
            string[] extra = flag == "--jailer-uid" ? ["--jailer-bin", "/usr/bin/jailer", "--jailer-gid", "1"] : [];

            var code = await DaemonCli.RunAsync(["run", "--state-dir", dir.FullName, flag, value, .. extra], new StringWriter(), stderr);

            code.Should().Be(2, stderr.ToString());
            stderr.ToString().Should().Contain(expected).And.NotContain("System.").And.NotContain("Int32").And.NotContain("TimeSpan").And.NotContain("Double");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Test]
    public async Task Toml_BadWorkerCount_IsReportedLikeTheFlag()
    {
        var dir = Directory.CreateTempSubdirectory("hypercore-settings-");
        try
        {
            var config = Path.Combine(dir.FullName, "vistarad.toml");
            await File.WriteAllTextAsync(config, "reconcile-workers = \"many\"\n");
            var stderr = new StringWriter();

            var code = await DaemonCli.RunAsync(["run", "--state-dir", dir.FullName, "--config", config], new StringWriter(), stderr);

            code.Should().Be(2);
            stderr.ToString().Should().Contain("reconcile-workers: expected a whole number from 1 to 1024, got 'many'");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [TestCase("90s", "00:01:30")]
    [TestCase("2m", "00:02:00")]
    [TestCase("1h30m", "01:30:00")]
    [TestCase("500ms", "00:00:00.5000000")]
    [TestCase("10", "00:00:10")]
    public void Normalize_Durations_BecomeWhatTheBinderReads(string text, string expected) =>
        SettingValues.Normalize(new Dictionary<string, string?> { ["Reconciler:UnresponsiveAfter"] = text })["Reconciler:UnresponsiveAfter"]
            .Should().Be(expected);
}
