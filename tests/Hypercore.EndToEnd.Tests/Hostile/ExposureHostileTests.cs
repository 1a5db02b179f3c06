using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests.Hostile;

/// <summary>
/// A daemon that would be reachable from other machines without TLS and credentials refuses to start (exit 2,
/// naming the setting), unless --insecure says so on purpose, which is then logged as a warning at every start.
/// </summary>
[NonParallelizable]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ExposureHostileTests
{
    private DirectoryInfo _dir = null!;

    private string StateDir => Path.Combine(_dir.FullName, "state");

    [SetUp]
    public void MakeDir() => _dir = Directory.CreateTempSubdirectory("hc-sec-exp-");

    [TearDown]
    public void RemoveDir()
    {
        ProcFs.KillAll(_dir.FullName);
        _dir.Delete(recursive: true);
    }

    private Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(params string[] flags) =>
        DaemonProcess.RunAsync(BuiltPrograms.VistaradDll, Node.Patience, ["run", "--state-dir", StateDir, "--qemu-accel", "tcg", .. flags]);

    [TestCase("0.0.0.0:0", "127.0.0.1:0", "grpc-endpoint")]
    [TestCase("127.0.0.1:0", "*:0", "http-endpoint")]
    public async Task NonLoopbackBind_WithoutTls_Exits2NamingTheSetting(string grpc, string http, string setting)
    {
        var (code, stdout, stderr) = await RunAsync("--grpc-endpoint", grpc, "--http-endpoint", http);

        code.Should().Be(2, stderr);
        stderr.Should().Contain($"{setting}: ").And.Contain("tls-cert is not set").And.Contain("--insecure");
        stdout.Should().NotContain("vistarad ready");
        File.Exists(Path.Combine(StateDir, "hypercore.db")).Should().BeFalse("the daemon stops before opening its store");
    }

    [Test]
    public async Task NonLoopbackBind_WithTlsButNoCredentials_Exits2()
    {
        var pki = TestPki.Create(Path.Combine(_dir.FullName, "pki"));
        var (cert, key) = pki.Server();

        var (code, _, stderr) = await RunAsync("--grpc-endpoint", "0.0.0.0:0", "--http-endpoint", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key);

        code.Should().Be(2, stderr);
        stderr.Should().Contain("grpc-endpoint: ").And.Contain("no credentials are configured");
    }

    [Test]
    public async Task TokenFile_ReadableByEveryone_Exits2()
    {
        var tokens = Path.Combine(_dir.FullName, "tokens");
        File.WriteAllText(tokens, "a-token-that-is-long-enough admin\n");
        File.SetUnixFileMode(tokens, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        var (code, _, stderr) = await RunAsync("--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0", "--token-file", tokens);

        code.Should().Be(2, stderr);
        stderr.Should().Contain("token-file: ").And.Contain("readable by every user");
    }

    [Test]
    public async Task Insecure_NonLoopbackBind_Serves_AndWarnsAtEveryStart()
    {
        string[] args = ["run", "--state-dir", StateDir, "--qemu-accel", "tcg", "--grpc-endpoint", "0.0.0.0:0", "--http-endpoint", "127.0.0.1:0", "--insecure"];
        for (var start = 1; start <= 2; start++)
        {
            await using var daemon = DaemonProcess.Start(BuiltPrograms.VistaradDll, args);
            await daemon.WaitReadyAsync(Node.Patience);
            await daemon.WaitForLogAsync("--insecure: grpc-endpoint", Node.Patience);
            daemon.Stderr.Should().Contain("without TLS and without credentials");
            daemon.Signal("TERM");
            (await daemon.WaitForExitAsync(Node.Patience)).Should().Be(0, daemon.Stderr);
        }
    }
}
