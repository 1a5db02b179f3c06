using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Hypercore.Testing;

/// <summary>
/// A real <c>vistarad</c> process (a built vistarad.dll under <c>dotnet</c>) with its stdout and stderr captured.
/// Dispose kills it if it is still running; VMs it started are not its children (QEMU daemonizes) and stay.
/// </summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource<string> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private DaemonProcess(Process process) => _process = process;

    public string Stdout
    {
        get
        {
            lock (_stdout)
            {
                return _stdout.ToString();
            }
        }
    }

    public string Stderr
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>Starts <c>dotnet <paramref name="daemonDll"/> <paramref name="args"/></c>, or the executable itself when it is not a .dll.</summary>
    public static DaemonProcess Start(string daemonDll, params string[] args) => Start([], daemonDll, args);

    /// <summary>
    /// Starts the daemon inside network namespace <paramref name="netns"/> (<c>ip netns exec</c>, which execs in place,
    /// so <see cref="Pid"/> is the daemon's): everything it makes (taps, bridge, dnsmasq, nft rules, QEMU) stays there.
    /// </summary>
    public static DaemonProcess StartInNetns(string netns, string daemonDll, params string[] args) =>
        Start(["ip", "netns", "exec", netns], daemonDll, args);

    /// <summary>
    /// Starts the daemon with <paramref name="environment"/> added to its environment (<c>env</c>, which execs in place,
    /// so <see cref="Pid"/> is the daemon's).
    /// </summary>
    public static DaemonProcess StartWithEnvironment(IReadOnlyDictionary<string, string> environment, string daemonDll, params string[] args) =>
        Start(["env", .. environment.Select(e => $"{e.Key}={e.Value}")], daemonDll, args);

    private static DaemonProcess Start(string[] launcher, string daemonDll, string[] args)
    {
        if (!File.Exists(daemonDll))
        {
            throw new AssertionException($"the daemon is not built at {daemonDll}");
        }

        // A .dll runs on dotnet; anything else is the published executable (Native AOT), run as it is.
        string[] command = [.. launcher, .. daemonDll.EndsWith(".dll", StringComparison.Ordinal) ? ["dotnet"] : Array.Empty<string>(), daemonDll, .. args];
        var info = new ProcessStartInfo(command[0]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in command.Skip(1))
        {
            info.ArgumentList.Add(a);
        }

        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var daemon = new DaemonProcess(process);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }

            lock (daemon._stdout)
            {
                daemon._stdout.AppendLine(e.Data);
            }

            if (e.Data.StartsWith("vistarad ready ", StringComparison.Ordinal))
            {
                daemon._ready.TrySetResult(e.Data);
            }
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                lock (daemon._stderr)
                {
                    daemon._stderr.AppendLine(e.Data);
                }
            }
        };
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return daemon;
    }

    /// <summary>Runs to completion and returns the exit code and output.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string daemonDll, TimeSpan timeout, params string[] args)
    {
        await using var daemon = Start(daemonDll, args);
        var code = await daemon.WaitForExitAsync(timeout);
        return (code, daemon.Stdout, daemon.Stderr);
    }

    /// <summary>Waits for "vistarad ready grpc=… http=…" and returns the two URLs.</summary>
    public async Task<(string Grpc, string Http)> WaitReadyAsync(TimeSpan timeout)
    {
        var exited = _process.WaitForExitAsync();
        var first = await Task.WhenAny(_ready.Task, exited, Task.Delay(timeout));
        if (first != _ready.Task)
        {
            throw new AssertionException($"vistarad did not become ready (exited: {_process.HasExited}).\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        }

        var parts = (await _ready.Task).Split(' ');
        return (parts.Single(p => p.StartsWith("grpc=", StringComparison.Ordinal))[5..], parts.Single(p => p.StartsWith("http=", StringComparison.Ordinal))[5..]);
    }

    /// <summary>Waits until stderr (the daemon's log) contains <paramref name="text"/>.</summary>
    public async Task WaitForLogAsync(string text, TimeSpan timeout)
    {
        var stopwatch = Stopwatch.StartNew();
        while (!Stderr.Contains(text, StringComparison.Ordinal))
        {
            if (stopwatch.Elapsed > timeout || _process.HasExited)
            {
                throw new AssertionException($"vistarad did not log \"{text}\" within {timeout} (exited: {_process.HasExited}).\nstderr:\n{Stderr}");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Sends a signal with kill(1), as an init system would.</summary>
    public void Signal(string signal)
    {
        using var kill = Process.Start("kill", ["-s", signal, _process.Id.ToString(CultureInfo.InvariantCulture)]);
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -s {signal} {_process.Id} failed with {kill.ExitCode}");
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new AssertionException($"vistarad did not exit within {timeout}.\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        }

        _process.WaitForExit(); // flush the redirected streams
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
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
}
