using System.Reflection;
using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Tests.Support;

/// <summary>Where the stand-in executables were built (paths baked in by the test project).</summary>
internal static class StandIns
{
    public static string Firecracker => Get("FirecrackerStandIn");

    public static string CloudHypervisor => Get("CloudHypervisorStandIn");

    public static string Ops => Get("OpsStandIn");

    private static string Get(string key)
    {
        var value = typeof(StandIns).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;
        var path = Path.GetFullPath(value);
        File.Exists(path).Should().BeTrue($"the stand-in {key} should have been built at {path}");
        return path;
    }
}

/// <summary>
/// One test's scratch area: a short path under /tmp (Unix socket paths must stay under 108 bytes), image files,
/// and a cleanup that kills every process recorded or tracked, removes taps and deletes the files, even when the
/// test failed halfway.
/// </summary>
internal sealed class Scratch : IAsyncDisposable
{
    private readonly List<int> _pids = [];
    private readonly List<string> _uids = [];

    public Scratch()
    {
        Root = Path.Combine("/tmp", "hcd-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(RuntimeDirectory);
        Directory.CreateDirectory(Images);
    }

    public string Root { get; }

    public string RuntimeDirectory => Path.Combine(Root, "run");

    public string Images => Path.Combine(Root, "img");

    public string Kernel => File("vmlinux", "not a real kernel: the stand-ins only check that it exists\n");

    public string Initrd => File("initrd.img", "initrd\n");

    public string RootDisk => File("rootfs.img", "rootfs\n");

    public string File(string name, string content)
    {
        var path = Path.Combine(Images, name);
        if (!System.IO.File.Exists(path))
        {
            System.IO.File.WriteAllText(path, content);
        }

        return path;
    }

    /// <summary>A MicroVM record with a fresh uid whose kernel, initrd and root disk exist.</summary>
    public MicroVm Vm(string id, Func<MicroVmSpec, MicroVmSpec>? change = null)
    {
        var spec = new MicroVmSpec
        {
            Id = id,
            Vcpu = 2,
            MemoryInMb = 256,
            Kernel = new KernelSpec { Image = Kernel, Cmdline = new Dictionary<string, string> { ["console"] = "ttyS0", ["reboot"] = "k", ["panic"] = "1" } },
            Initrd = new InitrdSpec { Image = Initrd },
            RootVolume = new VolumeSpec { Id = "root", HostPath = RootDisk },
        };
        var uid = Guid.NewGuid().ToString();
        _uids.Add(uid);
        return new MicroVm { Uid = uid, Spec = change is null ? spec : change(spec), ResourceVersion = "1" };
    }

    public void Track(int pid) => _pids.Add(pid);

    public string VmDirectory(MicroVm vm) => Path.Combine(RuntimeDirectory, vm.Uid);

    public async ValueTask DisposeAsync()
    {
        var pids = new List<int>(_pids);
        var taps = new List<string>();
        foreach (var (_, record) in Hypercore.Drivers.Vmm.VmDirectory.Scan(RuntimeDirectory))
        {
            pids.Add(record.Pid);
            taps.AddRange(record.Taps);
        }

        foreach (var pid in pids.Where(p => p > 1 && HostProcess.IsAlive(p)))
        {
            var argv = HostProcess.CommandLine(pid);
            if (argv.Any(a => a.Contains(Root, StringComparison.Ordinal)) || _pids.Contains(pid))
            {
                await HostProcess.KillAsync(pid, TimeProvider.System, CancellationToken.None);
            }
        }

        taps.AddRange(_uids.SelectMany(u => Enumerable.Range(0, 4).Select(i => TapDevices.TapName(u, i))));
        foreach (var tap in taps.Distinct())
        {
            await TapDevices.DeleteAsync(tap, CancellationToken.None);
        }

        if (Directory.Exists(Root))
        {
            Directory.Delete(Root, recursive: true);
        }
    }
}

internal static class Eventually
{
    /// <summary>Polls <paramref name="condition"/> until true; fails with <paramref name="what"/> after <paramref name="timeout"/>.</summary>
    public static async Task TrueAsync(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"timed out after {timeout.TotalSeconds:0} s waiting for: {what}");
            }

            await Task.Delay(100);
        }
    }

    public static string Read(string path) => System.IO.File.Exists(path) ? System.IO.File.ReadAllText(path) : "";
}
