using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Hypercore.Images.Tests.Fixtures;

internal static class Tools
{
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static string TempDir(string what)
    {
        var dir = Path.Combine(Path.GetTempPath(), $"hypercore-images-{what}-{Guid.NewGuid():N}"[..48]);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Runs a tool to completion and returns (exit code, stdout, stderr).</summary>
    public static async Task<(int Code, string Out, string Err)> RunAsync(string file, params string[] args)
    {
        using var p = new Process { StartInfo = { FileName = file, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false } };
        foreach (var a in args) p.StartInfo.ArgumentList.Add(a);
        p.Start();
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await p.WaitForExitAsync(cts.Token);
        return (p.ExitCode, await o, await e);
    }
}
