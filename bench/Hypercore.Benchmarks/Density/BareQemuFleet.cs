using System.Diagnostics;
using Hypercore.Benchmarks.Processes;

namespace Hypercore.Benchmarks.Density;

/// <summary>
/// The density baseline: N copies of the argument vector the daemon's QEMU driver built for a warm-up VM (read from
/// /proc/&lt;pid&gt;/cmdline, so it is exactly the driver's), each with its own directory and uid, started by the
/// benchmark itself all at once, each in its own session (as the driver does), with nothing else between the launch and
/// QEMU. Disposing SIGKILLs every one.
/// </summary>
public sealed class BareQemuFleet : IAsyncDisposable
{
    private readonly List<Process> _processes = [];

    public sealed record Vm(int Index, string Directory, string QmpSocket, TimeSpan Spawned, TimeSpan SocketSeen, TimeSpan Answered);

    /// <summary>
    /// The warm-up VM's argv with its directory, uid and name replaced for copy <paramref name="index"/>.
    /// Everything else (kernel, initrd, memory, accelerator, devices, sandbox) stays as the driver wrote it.
    /// </summary>
    public static string[] ArgvFor(string[] template, string templateDir, string templateUid, string templateName, string dir, int index)
    {
        var uid = $"bare{index:D4}".PadRight(templateUid.Length, '0')[..templateUid.Length];
        return template.Select(a => a
            .Replace(templateDir, dir, StringComparison.Ordinal)
            .Replace(templateUid, uid, StringComparison.Ordinal)
            .Replace(templateName, $"b{index:D3}", StringComparison.Ordinal)).ToArray();
    }

    /// <summary>
    /// Starts <paramref name="n"/> QEMUs at once (one task each) and waits until each QMP answered query-status.
    /// Times are from <paramref name="t0"/>.
    /// </summary>
    public async Task<List<Vm>> LaunchAsync(
        string[] template, string templateDir, string templateUid, string templateName, string root, int n, long t0, TimeSpan timeout)
    {
        var dirs = Enumerable.Range(0, n).Select(i => Path.Combine(root, $"b{i:D3}")).ToList();
        foreach (var dir in dirs)
        {
            Directory.CreateDirectory(dir);
        }

        var vms = await Task.WhenAll(Enumerable.Range(0, n).Select(i => Task.Run(async () =>
        {
            var argv = ArgvFor(template, templateDir, templateUid, templateName, dirs[i], i);

            // In a session of its own, as the driver starts it (HostProcess.StartDetachedAsync): with the kernel's
            // sched_autogroup every session is a scheduling group, so a QEMU in the benchmark's session would share
            // one group's CPU with all the others while the daemon's each get a group's share; on a loaded machine
            // that alone made the bare side 2-3x slower. setsid(1) execs in place (the child leads no group).
            var start = new ProcessStartInfo("setsid")
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                WorkingDirectory = dirs[i],
            };
            foreach (var arg in argv)
            {
                start.ArgumentList.Add(arg);
            }

            var qemu = Process.Start(start)!;
            var spawned = Stopwatch.GetElapsedTime(t0);
            lock (_processes)
            {
                _processes.Add(qemu);
            }

            qemu.StandardInput.Close();
            qemu.BeginOutputReadLine();
            qemu.BeginErrorReadLine();
            var socket = Path.Combine(dirs[i], "qmp.sock");
            var (seen, answered) = await QmpProbe.WaitAsync(socket, () => !qemu.HasExited, t0, timeout, CancellationToken.None);
            return new Vm(i, dirs[i], socket, spawned, seen, answered);
        })));
        return [.. vms];
    }

    public async ValueTask DisposeAsync()
    {
        List<int> pids;
        lock (_processes)
        {
            pids = [.. _processes.Where(p => !p.HasExited).Select(p => p.Id)];
        }

        await ProcFs.KillAllAsync(pids, TimeSpan.FromSeconds(30));
        lock (_processes)
        {
            foreach (var p in _processes)
            {
                p.Dispose();
            }
        }
    }
}
