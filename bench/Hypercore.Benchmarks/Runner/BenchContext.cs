using System.Collections.Concurrent;
using System.Diagnostics;
using Hypercore.Benchmarks.Processes;

namespace Hypercore.Benchmarks.Runner;

/// <summary>
/// What every benchmark shares: options, one scratch directory for the whole run, and cleanup. Every daemon and
/// every QEMU this run starts has the scratch directory in its command line (state dir, pid file, console log),
/// so disposing kills exactly those processes by pid and removes the directory, whatever failed before.
/// </summary>
public sealed class BenchContext : IAsyncDisposable
{
    private readonly ConcurrentBag<DaemonProcess> _daemons = [];
    private readonly bool _ownsWorkDirectory;
    private int _counter;

    public BenchContext(BenchOptions options)
    {
        Options = options;
        _ownsWorkDirectory = options.WorkDirectory is null;
        WorkDirectory = options.WorkDirectory ?? Directory.CreateTempSubdirectory("hypercore-bench-").FullName;
        Directory.CreateDirectory(WorkDirectory);
    }

    public BenchOptions Options { get; }

    public string WorkDirectory { get; }

    public static void Log(string message) =>
        Console.Error.WriteLine($"[{DateTime.UtcNow:HH:mm:ss}] {message}");

    /// <summary>A fresh directory under the scratch directory.</summary>
    public string NewDirectory(string name)
    {
        var path = Path.Combine(WorkDirectory, $"{name}-{Interlocked.Increment(ref _counter)}");
        Directory.CreateDirectory(path);
        return path;
    }

    /// <summary>Why the daemon benchmarks cannot run, or null.</summary>
    public string? DaemonUnavailable() =>
        Options.DaemonPath is null ? "no --daemon given (bench/run.sh passes the published vistarad)" :
        !File.Exists(Options.DaemonPath) ? $"daemon {Options.DaemonPath} not found" : null;

    /// <summary>Why real VMs cannot boot here, or null.</summary>
    public string? QemuUnavailable()
    {
        var kernel = Path.Combine(Options.ImageDirectory, "vmlinuz");
        var initrd = Path.Combine(Options.ImageDirectory, "initrd.img");
        if (!File.Exists(kernel) || !File.Exists(initrd))
        {
            return $"no guest image at {Options.ImageDirectory} (run scripts/build-image.sh)";
        }

        try
        {
            using var p = Process.Start(new ProcessStartInfo(Options.QemuBinary, "--version") { RedirectStandardOutput = true, RedirectStandardError = true })!;
            p.WaitForExit(30_000);
            return p.ExitCode == 0 ? null : $"{Options.QemuBinary} --version failed";
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return $"{Options.QemuBinary} not runnable: {ex.Message}";
        }
    }

    /// <summary>
    /// A daemon state directory whose images/default holds the guest image: hard links (a copy across file systems),
    /// not symlinks, since vistarad refuses a kernel whose real path leaves its image directory.
    /// </summary>
    public string NewStateDirectory(string name)
    {
        var state = NewDirectory(name);
        var image = Directory.CreateDirectory(Path.Combine(state, "images", "default")).FullName;
        foreach (var file in new[] { "vmlinuz", "initrd.img" })
        {
            var source = Path.Combine(Options.ImageDirectory, file);
            if (File.Exists(source))
            {
                var target = Path.Combine(image, file);
                using var ln = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("ln", [source, target]) { RedirectStandardError = true })!;
                ln.WaitForExit();
                if (ln.ExitCode != 0)
                {
                    File.Copy(source, target);
                }
            }
        }

        return state;
    }

    /// <summary>Starts a daemon that is stopped (and whose VMs are reaped) when the run ends.</summary>
    public DaemonProcess StartDaemon(string stateDirectory, params string[] extraArgs) => StartDaemon(stateDirectory, environment: null, extraArgs);

    /// <summary>As <see cref="StartDaemon(string, string[])"/>, with <paramref name="environment"/> added to the daemon's.</summary>
    public DaemonProcess StartDaemon(string stateDirectory, IReadOnlyDictionary<string, string>? environment, params string[] extraArgs)
    {
        var daemon = DaemonProcess.Start(Options.DaemonPath!, stateDirectory, Options.QemuBinary, environment, extraArgs);
        _daemons.Add(daemon);
        return daemon;
    }

    /// <summary>
    /// Kills what the run left whose command line mentions <paramref name="directory"/>: daemons and hypervisors, and
    /// this process's own descendants, never another process that only names the directory. Returns how many.
    /// </summary>
    public static async Task<int> ReapAsync(string directory)
    {
        var left = ProcFs.RunProcessesMentioning(directory);
        if (left.Count > 0)
        {
            await ProcFs.KillAllAsync(left, TimeSpan.FromSeconds(15));
        }

        return left.Count;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var daemon in _daemons)
        {
            await daemon.DisposeAsync();
        }

        var reaped = await ReapAsync(WorkDirectory);
        if (reaped > 0)
        {
            Log($"cleanup: killed {reaped} leftover process(es) of this run");
        }

        if (_ownsWorkDirectory)
        {
            try
            {
                Directory.Delete(WorkDirectory, recursive: true);
            }
            catch (IOException ex)
            {
                Log($"cleanup: could not remove {WorkDirectory}: {ex.Message}");
            }
        }
    }
}
