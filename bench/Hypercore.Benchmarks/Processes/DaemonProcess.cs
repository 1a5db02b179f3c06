using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Hypercore.Benchmarks.Processes;

/// <summary>
/// One real vistarad process with its own state directory. Disposing sends SIGTERM, then SIGKILL after 20 s; the
/// VMs it started are not its children (QEMU daemonizes), so callers delete them or reap by state directory.
/// </summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly List<string> _stdout = [];
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private DaemonProcess(Process process, string stateDirectory, int grpcPort, int httpPort)
    {
        _process = process;
        StateDirectory = stateDirectory;
        GrpcPort = grpcPort;
        HttpPort = httpPort;
    }

    public int Pid => _process.Id;

    public string StateDirectory { get; }

    public int GrpcPort { get; }

    public int HttpPort { get; }

    public string GrpcAddress => $"http://127.0.0.1:{GrpcPort}";

    public string HttpAddress => $"http://127.0.0.1:{HttpPort}";

    /// <summary>Completes with the ready line ("vistarad ready grpc=… http=…").</summary>
    public Task<string> Ready => _ready.Task;

    /// <summary>What it printed on stdout so far (vistarad: the ready line; the benchmark node: its banner and runtime first).</summary>
    public IReadOnlyList<string> StdoutLines
    {
        get
        {
            lock (_stdout)
            {
                return [.. _stdout];
            }
        }
    }

    /// <summary>The last lines the daemon logged (for error messages).</summary>
    public string StderrTail
    {
        get
        {
            lock (_stderr)
            {
                var text = _stderr.ToString();
                return text.Length > 4000 ? text[^4000..] : text;
            }
        }
    }

    public long? RssBytes => ProcFs.RssBytes(Pid);

    /// <summary>
    /// Starts vistarad on two free loopback ports with <paramref name="stateDirectory"/>, QEMU under TCG (nested KVM
    /// hangs guests here). Returns at once; await <see cref="Ready"/> or poll the gRPC port.
    /// </summary>
    public static DaemonProcess Start(string daemonPath, string stateDirectory, string qemuBinary, params string[] extraArgs) =>
        Start(daemonPath, stateDirectory, qemuBinary, environment: null, extraArgs);

    /// <summary>As <see cref="Start(string, string, string, string[])"/>, with <paramref name="environment"/> added to the daemon's.</summary>
    public static DaemonProcess Start(string daemonPath, string stateDirectory, string qemuBinary, IReadOnlyDictionary<string, string>? environment, params string[] extraArgs)
    {
        Directory.CreateDirectory(stateDirectory);
        var (grpc, http) = (FreePort(), FreePort());
        // In a session of its own, as a service manager starts a daemon (systemd: one session per service): the
        // daemon's scheduling autogroup is then its own, not the benchmark's (density: bench/NOTES.md). setsid(1) of
        // a child that is no process-group leader execs in place, so the pid stays the daemon's.
        var start = new ProcessStartInfo("setsid");
        if (daemonPath.EndsWith(".dll", StringComparison.Ordinal))
        {
            start.ArgumentList.Add("dotnet");
        }

        start.ArgumentList.Add(daemonPath);
        foreach (var arg in (string[])[
            "run", "--state-dir", stateDirectory, "--grpc-endpoint", $"127.0.0.1:{grpc}", "--http-endpoint", $"127.0.0.1:{http}",
            "--qemu-accel", "tcg", "--qemu-bin", qemuBinary, "--log-level", "Warning", .. extraArgs])
        {
            start.ArgumentList.Add(arg);
        }

        if (environment is not null)
        {
            foreach (var (name, value) in environment)
            {
                start.Environment[name] = value;
            }
        }

        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        var process = new Process { StartInfo = start, EnableRaisingEvents = true };
        var daemon = new DaemonProcess(process, stateDirectory, grpc, http);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } printed)
            {
                lock (daemon._stdout)
                {
                    daemon._stdout.Add(printed);
                }
            }

            if (e.Data is { } line && line.StartsWith("vistarad ready", StringComparison.Ordinal))
            {
                daemon._ready.TrySetResult(line);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is { } line)
            {
                lock (daemon._stderr)
                {
                    daemon._stderr.AppendLine(line);
                }
            }
        };
        process.Exited += (_, _) => daemon._ready.TrySetException(new InvalidOperationException(
            $"vistarad exited with code {SafeExitCode(process)} before it was ready: {daemon.StderrTail}"));
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return daemon;
    }

    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        try
        {
            await Ready.WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"vistarad was not ready within {timeout.TotalSeconds:0} s: {StderrTail}");
        }
    }

    /// <summary>SIGTERM, wait for a graceful stop, SIGKILL if it does not come.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                ProcFs.Signal(_process.Id, ProcFs.SigTerm);
                using var graceful = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                try
                {
                    await _process.WaitForExitAsync(graceful.Token);
                }
                catch (OperationCanceledException)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync();
                }
            }
        }
        catch (InvalidOperationException)
        {
            // never started or already reaped
        }
        finally
        {
            _process.Dispose();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string SafeExitCode(Process p)
    {
        try
        {
            return p.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }
}
