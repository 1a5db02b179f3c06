using System.Diagnostics;
using Hypercore.Client;
using Hypercore.Testing;

namespace Hypercore.EndToEnd.Tests.Security;

/// <summary>
/// Both endpoints as Unix sockets (<c>unix:///path</c>), given to a group with <c>--socket-group</c>: mode 0660 and that
/// group before the daemon accepts anything, served to vis and curl, removed when the daemon stops.
/// </summary>
[NonParallelizable]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class UnixSocketTests
{
    private const UnixFileMode Mode0660 = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite;

    [Test]
    public async Task UnixEndpoints_WithSocketGroup_ServeVisAndCurl_AndAreRemovedAtStop()
    {
        var dir = Directory.CreateTempSubdirectory("hc-sec-uds-");
        try
        {
            var grpc = Path.Combine(dir.FullName, "grpc.sock");
            var http = Path.Combine(dir.FullName, "http.sock");
            await using var daemon = DaemonProcess.Start(BuiltPrograms.VistaradDll,
                "run", "--state-dir", Path.Combine(dir.FullName, "state"), "--qemu-accel", "tcg", "--socket", "none",
                "--grpc-endpoint", "unix://" + grpc, "--http-endpoint", "unix://" + http, "--socket-group", "daemon");
            var (grpcUrl, httpUrl) = await daemon.WaitReadyAsync(Node.Patience);

            grpcUrl.Should().Be("unix://" + grpc);
            httpUrl.Should().Be("unix://" + http);
            File.GetUnixFileMode(grpc).Should().Be(Mode0660);
            File.GetUnixFileMode(http).Should().Be(Mode0660);
            (await RunAsync("stat", "-c", "%G", grpc)).Stdout.Trim().Should().Be("daemon");
            File.Exists(Path.Combine(dir.FullName, "state", "vistarad.sock")).Should().BeFalse("--socket none");

            using (var client = HypercoreClient.Connect("unix://" + grpc))
            {
                (await client.Service.ListAsync(new Hypercore.Contracts.VmApi.ListMicroVMsRequest())).Microvm.Should().BeEmpty();
            }

            var curl = await RunAsync("curl", "-s", "--unix-socket", http, "-w", "\n%{http_code}", "http://localhost/v1/microvms");
            curl.Stdout.Should().EndWith("\n200", curl.Stderr);

            daemon.Signal("TERM");
            (await daemon.WaitForExitAsync(Node.Patience)).Should().Be(0, daemon.Stderr);
            File.Exists(grpc).Should().BeFalse();
            File.Exists(http).Should().BeFalse();
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    private static async Task<(string Stdout, string Stderr)> RunAsync(string program, params string[] args)
    {
        using var process = Process.Start(new ProcessStartInfo(program, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(1));
        return (await stdout, await stderr);
    }
}
