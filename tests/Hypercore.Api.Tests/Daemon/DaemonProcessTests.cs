using Grpc.Health.V1;
using Grpc.Net.Client;
using Hypercore.Contracts.VmApi;
using Hypercore.Testing;

namespace Hypercore.Api.Tests.Daemon;

/// <summary>The real vistarad executable: start-up failures exit 2 naming the setting; a good start serves and stops on SIGTERM.</summary>
[NonParallelizable]
public sealed class DaemonProcessTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(120);

    private DirectoryInfo _dir = null!;

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hypercore-daemon-");

    [TearDown]
    public void TearDown() => _dir.Delete(recursive: true);

    private string StateDir => Path.Combine(_dir.FullName, "state");

    /// <summary>The daemon as built into this test project's output (it references Hypercore.Daemon).</summary>
    internal static string Vistarad => Path.Combine(AppContext.BaseDirectory, "vistarad.dll");

    [Test]
    public async Task Run_UnknownTomlKey_ExitsWith2NamingTheKey()
    {
        var config = Path.Combine(_dir.FullName, "vistarad.toml");
        await File.WriteAllTextAsync(config, "grpc-endpoint = \"127.0.0.1:0\"\ngrpc-port = 9090\n");

        var (code, stdout, stderr) = await DaemonProcess.RunAsync(Vistarad, Patience, "run", "--config", config, "--state-dir", StateDir);

        code.Should().Be(2);
        stderr.Should().Contain("unknown key \"grpc-port\"").And.Contain(config);
        stdout.Should().NotContain("vistarad ready");
        File.Exists(Path.Combine(StateDir, "hypercore.db")).Should().BeFalse("nothing starts on a bad setting");
    }

    [Test]
    public async Task Run_UnknownFlag_ExitsWith2NamingTheFlag()
    {
        var (code, _, stderr) = await DaemonProcess.RunAsync(Vistarad, Patience, "run", "--grpc-port", "9090");

        code.Should().Be(2);
        stderr.Should().Contain("--grpc-port");
    }

    [Test]
    public async Task Run_BadAccelerator_ExitsWith2NamingTheSettingBeforeOpeningTheStore()
    {
        var (code, stdout, stderr) = await DaemonProcess.RunAsync(Vistarad, Patience,
            "run", "--state-dir", StateDir, "--qemu-accel", "hvf", "--grpc-endpoint", "127.0.0.1:0", "--http-endpoint", "127.0.0.1:0");

        code.Should().Be(2);
        stderr.Should().Contain("qemu-accel: \"hvf\" is not one of auto, kvm, tcg");
        stdout.Should().NotContain("vistarad ready");
        File.Exists(Path.Combine(StateDir, "hypercore.db")).Should().BeFalse();
    }

    [Test]
    public async Task Run_GoodSettings_ServesUntilSigtermThenExitsCleanly()
    {
        var config = Path.Combine(_dir.FullName, "vistarad.toml");
        await File.WriteAllTextAsync(config, $"""
            # flags override the file: this endpoint is replaced on the command line
            grpc-endpoint = "127.0.0.1:1"
            http-endpoint = "127.0.0.1:0"
            state-dir = "{StateDir}"
            qemu-accel = "tcg"
            node-name = "test-node"
            log-format = "json"
            """);
        await using var daemon = DaemonProcess.Start(Vistarad, "run", "--config", config, "--grpc-endpoint", "localhost:0");

        var (grpc, http) = await daemon.WaitReadyAsync(Patience);
        using var channel = GrpcChannel.ForAddress(grpc);
        var health = await new Grpc.Health.V1.Health.HealthClient(channel).CheckAsync(new HealthCheckRequest());
        var list = await new VMService.VMServiceClient(channel).ListAsync(new ListMicroVMsRequest());
        using var httpClient = new HttpClient { BaseAddress = new Uri(http) };
        var json = await httpClient.GetStringAsync("/v1/microvms");
        daemon.Signal("TERM");
        var code = await daemon.WaitForExitAsync(Patience);

        grpc.Should().MatchRegex(@"^http://127\.0\.0\.1:\d+$").And.NotEndWith(":1");
        health.Status.Should().Be(HealthCheckResponse.Types.ServingStatus.Serving);
        list.Microvm.Should().BeEmpty();
        json.Should().StartWith("{");
        code.Should().Be(0, daemon.Stderr);
        File.Exists(Path.Combine(StateDir, "hypercore.db")).Should().BeTrue();
        daemon.Stderr.Should().Contain("\"Category\":\"Hypercore.Reconciliation.ReconcilerHost\"", "the reconciler logs which providers are usable, as JSON");
        daemon.Stderr.Should().Contain("provider qemu");
        daemon.Stdout.Trim().Should().StartWith("vistarad ready").And.NotContain("info:", "logs go to stderr, stdout only has the ready line");
    }
}
