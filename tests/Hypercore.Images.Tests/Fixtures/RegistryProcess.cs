using System.Diagnostics;
using System.Text;

namespace Hypercore.Images.Tests.Fixtures;

/// <summary>
/// Debian's docker-registry (distribution 2.8) on a free loopback port, storage in a temp dir, config written
/// here. Killed (whole process tree) on dispose and, as a backstop, when the test process exits.
/// </summary>
internal sealed class RegistryProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _log = new();
    private readonly EventHandler _onExit;

    public int Port { get; }
    public string Host => $"127.0.0.1:{Port}";
    public string Dir { get; }
    public string Log { get { lock (_log) return _log.ToString(); } }

    private RegistryProcess(Process process, int port, string dir)
    {
        _process = process;
        Port = port;
        Dir = dir;
        _onExit = (_, _) => Kill();
        AppDomain.CurrentDomain.ProcessExit += _onExit;
    }

    /// <param name="extraConfig">YAML appended at top level (auth sections); http.tls is added when <paramref name="pki"/> is given.</param>
    public static async Task<RegistryProcess> StartAsync(string dir, TestPki? pki = null, string extraConfig = "")
    {
        var port = Tools.FreePort();
        var storage = Path.Combine(dir, "storage");
        Directory.CreateDirectory(storage);
        var config = new StringBuilder()
            .AppendLine("version: 0.1")
            .AppendLine("log:\n  level: warn\n  accesslog:\n    disabled: true")
            .AppendLine($"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true")
            .AppendLine($"http:\n  addr: 127.0.0.1:{port}\n  secret: hypercore-images-test");
        if (pki is not null) config.AppendLine($"  tls:\n    certificate: {pki.ServerCertPath}\n    key: {pki.ServerKeyPath}");
        config.AppendLine(extraConfig);
        var configPath = Path.Combine(dir, "config.yml");
        await File.WriteAllTextAsync(configPath, config.ToString());

        var process = new Process { StartInfo = { FileName = "docker-registry", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false } };
        process.StartInfo.ArgumentList.Add("serve");
        process.StartInfo.ArgumentList.Add(configPath);
        process.StartInfo.Environment["OTEL_TRACES_EXPORTER"] = "none";
        process.Start();
        var registry = new RegistryProcess(process, port, dir);
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lock (registry._log) registry._log.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lock (registry._log) registry._log.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await registry.WaitReadyAsync();
        }
        catch
        {
            await registry.DisposeAsync();
            throw;
        }
        return registry;
    }

    private async Task WaitReadyAsync()
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited) throw new InvalidOperationException($"docker-registry exited {_process.ExitCode}: {Log}");
            try
            {
                using var tcp = new System.Net.Sockets.TcpClient();
                await tcp.ConnectAsync(System.Net.IPAddress.Loopback, Port);
                return;
            }
            catch (System.Net.Sockets.SocketException)
            {
                await Task.Delay(50);
            }
        }
        throw new TimeoutException($"docker-registry did not listen on {Port}: {Log}");
    }

    private void Kill()
    {
        try
        {
            if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException) { }
    }

    public async ValueTask DisposeAsync()
    {
        AppDomain.CurrentDomain.ProcessExit -= _onExit;
        Kill();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try { await _process.WaitForExitAsync(cts.Token); } catch (OperationCanceledException) { }
        _process.Dispose();
    }
}
