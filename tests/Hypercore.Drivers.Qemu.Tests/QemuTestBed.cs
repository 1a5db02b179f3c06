using Hypercore.Drivers.Vmm;
using System.Diagnostics;
using Hypercore.MicroVms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Qemu.Tests;

/// <summary>
/// A private runtime directory plus helpers for real-QEMU tests. <see cref="Dispose"/> SIGKILLs every process whose
/// command line mentions the directory, removes taps the VMs recorded, and deletes the directory, even when the
/// test failed halfway.
/// </summary>
internal sealed class QemuTestBed : IDisposable
{
    /// <summary>TCG on a shared 2-core machine: be generous.</summary>
    public static readonly TimeSpan GuestTimeout = TimeSpan.FromSeconds(120);

    private readonly List<QemuDriver> _drivers = [];

    public QemuTestBed()
    {
        // Short: the QMP socket path must stay under 108 bytes.
        RuntimeDirectory = Path.Combine("/tmp", "hcq-" + Guid.NewGuid().ToString("N")[..10]);
        System.IO.Directory.CreateDirectory(RuntimeDirectory);
    }

    public string RuntimeDirectory { get; }

    /// <param name="pidfd">False: the exit watch uses no pidfd, as on a host without pidfd_open.</param>
    public QemuDriver Driver(Action<QemuOptions>? configure = null, bool pidfd = true)
    {
        var options = new QemuOptions { RuntimeDirectory = RuntimeDirectory, Accelerator = "tcg" };
        configure?.Invoke(options);
        var driver = pidfd
            ? new QemuDriver(Options.Create(options), TimeProvider.System, NullLogger<QemuDriver>.Instance)
            : new QemuDriver(Options.Create(options), TimeProvider.System, NullLogger<QemuDriver>.Instance) { ExitWatch = new ProcessExitWatch(pidfd: false) };
        _drivers.Add(driver);
        return driver;
    }

    public static MicroVm Vm(string id, Action<Dictionary<string, string>>? cmdline = null, Func<MicroVmSpec, MicroVmSpec>? change = null)
    {
        var args = new Dictionary<string, string>();
        cmdline?.Invoke(args);
        var spec = new MicroVmSpec
        {
            Id = id,
            Kernel = new KernelSpec { Image = GuestImage.Kernel, Cmdline = args },
            Initrd = new InitrdSpec { Image = GuestImage.Initrd },
        };
        return new MicroVm { Uid = Guid.NewGuid().ToString(), ResourceVersion = "1", Spec = change is null ? spec : change(spec) };
    }

    public string VmDir(MicroVm vm) => Path.Combine(RuntimeDirectory, vm.Uid);

    public string ConsoleLog(MicroVm vm) => Path.Combine(VmDir(vm), "console.log");

    public string Console(MicroVm vm) => File.Exists(ConsoleLog(vm)) ? File.ReadAllText(ConsoleLog(vm)) : "";

    public static int CountOf(string text, string line) => text.Split('\n').Count(l => l.TrimEnd('\r') == line);

    /// <summary>Waits until the console holds <paramref name="count"/> ready lines; returns the wait.</summary>
    public async Task<TimeSpan> WaitForReadyAsync(MicroVm vm, int count = 1)
    {
        var sw = Stopwatch.StartNew();
        await WaitUntilAsync(() => CountOf(Console(vm), "HYPERCORE-GUEST-READY") >= count, $"guest ready line #{count} of {vm.Spec.Id}");
        return sw.Elapsed;
    }

    public async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var until = DateTime.UtcNow + (timeout ?? GuestTimeout);
        while (!condition())
        {
            if (DateTime.UtcNow > until)
            {
                Assert.Fail($"timed out waiting for {what}; console so far:\n{ConsoleTail()}");
            }

            await Task.Delay(100);
        }
    }

    public async Task<VmRuntimeInfo> WaitForStateAsync(QemuDriver driver, MicroVm vm, LiveState state)
    {
        VmRuntimeInfo info = VmRuntimeInfo.NotFound(vm.Uid);
        var until = DateTime.UtcNow + GuestTimeout;
        while ((info = await driver.InspectAsync(vm)).State != state)
        {
            if (DateTime.UtcNow > until)
            {
                Assert.Fail($"timed out waiting for {state}; last {info}");
            }

            await Task.Delay(200);
        }

        return info;
    }

    public static bool ProcessGone(int pid) => !HostProcess.IsAlive(pid);

    public void Dispose()
    {
        foreach (var driver in _drivers)
        {
            driver.Dispose();
        }

        foreach (var pid in PidsMentioning(RuntimeDirectory))
        {
            try
            {
                Process.GetProcessById(pid).Kill();
            }
            catch (ArgumentException)
            {
            }
        }

        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (PidsMentioning(RuntimeDirectory).Any() && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(50);
        }

        foreach (var dir in System.IO.Directory.EnumerateDirectories(RuntimeDirectory))
        {
            var record = new VmDirectory(RuntimeDirectory, Path.GetFileName(dir)).ReadRecord();
            foreach (var tap in record?.Taps ?? [])
            {
                if (TapDevices.Exists(tap))
                {
                    using var ip = Process.Start("ip", ["link", "delete", "dev", tap]);
                    ip.WaitForExit();
                }
            }
        }

        System.IO.Directory.Delete(RuntimeDirectory, recursive: true);
    }

    /// <summary>Live processes whose command line contains <paramref name="text"/>.</summary>
    public static IEnumerable<int> PidsMentioning(string text)
    {
        foreach (var entry in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(entry), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            string cmdline;
            try
            {
                cmdline = File.ReadAllText(Path.Combine(entry, "cmdline"));
            }
            catch (IOException)
            {
                continue;
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }

            if (cmdline.Contains(text, StringComparison.Ordinal) && !!HostProcess.IsAlive(pid))
            {
                yield return pid;
            }
        }
    }

    private string ConsoleTail()
    {
        var logs = System.IO.Directory.EnumerateFiles(RuntimeDirectory, "console.log", SearchOption.AllDirectories)
            .Select(File.ReadAllText).Select(t => t.Length > 3000 ? t[^3000..] : t);
        return string.Join("\n---\n", logs);
    }
}
