using System.Diagnostics;
using System.Reflection;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Networking.Tests;

/// <summary>
/// Network namespaces a test makes and always removes: every bridge, veth, rule and process of the network tests lives
/// in them, so nothing reaches the host's own network or leaves the machine. Deleting a namespace removes its links;
/// processes started in it are killed by <see cref="KillAllIn"/> first.
/// </summary>
public sealed class Netns : IAsyncDisposable
{
    private static int _counter;

    private Netns(string name) => Name = name;

    public string Name { get; }

    /// <summary>The built vistarad.dll the daemon tests start in a namespace (the project's VistaradDll metadata).</summary>
    public static string VistaradDll =>
        typeof(Netns).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == "VistaradDll").Value!;

    public static async Task<Netns> CreateAsync(string role)
    {
        var name = $"hc-netw-{Environment.ProcessId % 100000}-{Interlocked.Increment(ref _counter)}{role}";
        var ns = new Netns(name);
        await Ip("netns", "add", name);
        await ns.RunAsync("ip", "link", "set", "lo", "up");
        return ns;
    }

    public static async Task<string> Ip(params string[] args)
    {
        var r = await HostProcess.RunAsync("ip", args, TimeSpan.FromSeconds(15), CancellationToken.None);
        return r.Succeeded ? r.StandardOutput : throw new InvalidOperationException($"ip {string.Join(' ', args)}: {r.Diagnostic}");
    }

    public Task<CommandResult> TryAsync(params string[] args) =>
        HostProcess.RunAsync("ip", ["netns", "exec", Name, .. args], TimeSpan.FromSeconds(30), CancellationToken.None);

    public async Task<string> RunAsync(params string[] args)
    {
        var r = await TryAsync(args);
        return r.Succeeded ? r.StandardOutput : throw new InvalidOperationException($"[{Name}] {string.Join(' ', args)}: {r.Diagnostic}");
    }

    /// <summary>A veth pair: <paramref name="here"/> in this namespace, <paramref name="there"/> in <paramref name="other"/>; both up.</summary>
    public async Task VethAsync(string here, Netns other, string there)
    {
        await RunAsync("ip", "link", "add", here, "type", "veth", "peer", "name", there, "netns", other.Name);
        await RunAsync("ip", "link", "set", here, "up");
        await other.RunAsync("ip", "link", "set", there, "up");
    }

    public IReadOnlyList<int> Pids()
    {
        var r = HostProcess.RunAsync("ip", ["netns", "pids", Name], TimeSpan.FromSeconds(10), CancellationToken.None).GetAwaiter().GetResult();
        return r.StandardOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
    }

    /// <summary>Starts a long-running process in the namespace (killed on dispose).</summary>
    public Process Start(params string[] args)
    {
        var psi = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in (string[])["netns", "exec", Name, .. args])
        {
            psi.ArgumentList.Add(a);
        }

        return Process.Start(psi)!;
    }

    public void KillAllIn()
    {
        foreach (var pid in Pids())
        {
            try
            {
                HostProcess.Signal(pid, HostProcess.SigKill);
            }
            catch (System.ComponentModel.Win32Exception)
            {
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        KillAllIn();
        await HostProcess.RunAsync("ip", ["netns", "del", Name], TimeSpan.FromSeconds(15), CancellationToken.None);
    }
}
