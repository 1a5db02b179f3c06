using Hypercore.Informers;
using Hypercore.MicroVms;

namespace Hypercore.Consoles;

/// <summary>
/// Issue 15 (idle4): the once-a-second pass measures only the consoles that can be growing. Walking every VM directory
/// each second cost ~50 ms of CPU per second with 15,000 stopped VMs (each keeps its directory and console.log), for
/// files nobody writes. Only a live hypervisor writes a console log, and the records say which VMs may have one; every
/// <see cref="ConsoleLogOptions.FullScanInterval"/> the whole directory is walked as before, which also caps a process
/// no record accounts for. Paths are still derived from the uid and the run directory, never from stored status.
/// </summary>
public sealed partial class ConsoleLogRotator
{
    /// <summary>Rotates the console logs of the VMs <paramref name="uids"/> only (in every provider's directory); returns how many.</summary>
    public int RotateOnly(IReadOnlyCollection<string> uids)
    {
        if (uids.Count == 0)
        {
            return 0;
        }

        var o = options.Value;
        var rotated = 0;
        foreach (var provider in RealDirectories(o.RunDirectory))
        {
            foreach (var uid in uids)
            {
                if (!MicroVm.IsSafeUid(uid))
                {
                    continue; // the drivers make no directory for any other uid
                }

                var vm = new DirectoryInfo(Path.Combine(provider, uid));
                if (vm.Exists && IsRealDirectory(vm))
                {
                    rotated += RotateOne(Path.Combine(vm.FullName, "console.log"), o.MaxBytes);
                }
            }
        }

        return rotated;
    }

    /// <summary>One tick: a full walk when due (or while the records are not known yet), else the active VMs only. Returns when the next walk is due.</summary>
    private DateTimeOffset Pass(ActiveConsoles? active, DateTimeOffset fullScanDue)
    {
        var now = time.GetUtcNow();
        if (active is null || informer is null || !informer.Synced.IsCompleted || now >= fullScanDue)
        {
            RotateAll();
            return now + options.Value.FullScanInterval;
        }

        RotateOnly(active.Snapshot());
        return fullScanDue;
    }

    /// <summary>Whether the VM may have a hypervisor writing its console: all but a Stopped or Failed VM with no process.</summary>
    public static bool MayWriteConsole(MicroVm vm) =>
        vm.Status.Pid is not null || vm.Status.Phase is not (Phase.Stopped or Phase.Failed);

    /// <summary>Uids of the VMs that <see cref="MayWriteConsole"/>, kept from the informer's events.</summary>
    private sealed class ActiveConsoles : IDisposable
    {
        private readonly object _gate = new();
        private readonly HashSet<string> _uids = new(StringComparer.Ordinal);
        private readonly IDisposable _registration;

        public ActiveConsoles(MicroVmInformer informer) => _registration = informer.AddHandler(OnEvent);

        public string[] Snapshot()
        {
            lock (_gate)
            {
                return _uids.Count == 0 ? [] : [.. _uids];
            }
        }

        public void Dispose() => _registration.Dispose();

        // On the informer's loop, under its lock: a set update only.
        private void OnEvent(InformerEvent ev)
        {
            if (ev.Type == InformerEventType.Modified && ev.Previous is { } same && same.Uid == ev.MicroVm.Uid &&
                MayWriteConsole(same) == MayWriteConsole(ev.MicroVm))
            {
                // Issue 15 (twelfth pass): the set already says what it should for this uid (it follows every event since
                // the handler was added); most writes of a running VM's status change neither its pid nor its phase class.
                return;
            }

            lock (_gate)
            {
                if (ev.Previous is { } before && before.Uid != ev.MicroVm.Uid)
                {
                    _uids.Remove(before.Uid);
                }

                if (ev.Type != InformerEventType.Deleted && MayWriteConsole(ev.MicroVm))
                {
                    _uids.Add(ev.MicroVm.Uid);
                }
                else
                {
                    _uids.Remove(ev.MicroVm.Uid);
                }
            }
        }
    }
}
