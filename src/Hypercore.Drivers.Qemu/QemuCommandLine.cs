using Hypercore.Drivers.Vmm;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Qemu;

/// <summary>Builds the qemu-system-x86_64 argument list for one VM. Pure: no file system, no processes.</summary>
internal static class QemuCommandLine
{
    /// <summary>microvm exposes at most 8 virtio-mmio transports.</summary>
    public const int MaxVirtioDevices = 8;

    public static IReadOnlyList<VolumeSpec> Volumes(MicroVmSpec spec) =>
        (spec.RootVolume is null ? [] : new[] { spec.RootVolume }).Concat(spec.AdditionalVolumes).ToList();

    /// <summary>Null when the spec fits microvm's device limit, else the refusal.</summary>
    public static string? CheckDeviceCount(MicroVmSpec spec)
    {
        var seed = Bootstrap.CloudInitSeed.IsNeeded(spec) ? 1 : 0; // guest bootstrap: the cloud-init seed disk
        var count = Volumes(spec).Count + spec.Interfaces.Count + seed;
        return count > MaxVirtioDevices
            ? $"QEMU microvm supports at most {MaxVirtioDevices} virtio devices; the spec asks for {count} ({Volumes(spec).Count} volumes, {spec.Interfaces.Count} interfaces" +
                (seed > 0 ? ", 1 cloud-init seed disk for spec.metadata / add_network_config)" : ")")
            : null;
    }

    /// <summary>
    /// The guest kernel command line: the spec's, plus what a microvm guest needs when the spec does not say:
    /// a serial console (the only console there is), <c>reboot=t panic=-1</c> (a reboot or panic ends the VM,
    /// because -no-reboot turns it into a shutdown), a root device when a root volume is given, and under TCG
    /// the host TSC rate (see <see cref="HostTsc"/>).
    /// </summary>
    public static string KernelCmdline(MicroVmSpec spec, bool tcg, int? tscKhz)
    {
        var parts = new List<string>();
        var cmd = spec.Kernel.Cmdline;
        if (!cmd.ContainsKey("console"))
        {
            parts.Add("console=ttyS0");
        }

        if (!cmd.ContainsKey("reboot"))
        {
            parts.Add("reboot=t");
        }

        if (!cmd.ContainsKey("panic"))
        {
            parts.Add("panic=-1");
        }

        if (spec.RootVolume is not null && !cmd.ContainsKey("root"))
        {
            parts.Add(spec.RootVolume.PartitionId is { } partition ? $"root=PARTUUID={partition}" : "root=/dev/vda");
            if (!cmd.ContainsKey("ro") && !cmd.ContainsKey("rw"))
            {
                parts.Add(spec.RootVolume.IsReadOnly ? "ro" : "rw");
            }
        }

        if (tcg && tscKhz is > 0 && !cmd.ContainsKey("tsc_early_khz"))
        {
            parts.Add($"tsc_early_khz={tscKhz}");
        }

        var rendered = spec.Kernel.RenderCmdline();
        if (rendered.Length > 0)
        {
            parts.Add(rendered);
        }

        return string.Join(' ', parts);
    }

    /// <summary>QEMU's seccomp sandbox: verified on Debian 12's QEMU 7.2, which accepts every one of these options.</summary>
    public const string Sandbox = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

    public sealed record Inputs(PreparedSpec Prepared, VmDirectory Dir, AcceleratorChoice Accelerator, int? TscKhz, string QmpSocket, string? StatusSocket = null);

    public static IReadOnlyList<string> Build(Inputs input)
    {
        var prepared = input.Prepared;
        var spec = prepared.Spec;
        var kvm = input.Accelerator.IsKvm;
        var args = new List<string>
        {
            "-M", "microvm",
            "-accel", input.Accelerator.Accel,
            "-cpu", kvm ? "host" : "max",
            "-smp", spec.Vcpu.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-m", $"{spec.MemoryInMb}M",
            "-nodefaults", "-no-user-config", "-nographic",
            // -no-reboot: a guest reboot ends the VM (the reconciler decides about restarts).
            // -no-shutdown: a guest power-off leaves QEMU alive in status "shutdown", so Inspect can tell a guest
            // power-off from a killed process; StopAsync reaps it.
            "-no-reboot", "-no-shutdown",
            "-sandbox", Sandbox,
            "-kernel", prepared.KernelPath!,
        };
        if (prepared.InitrdPath is not null)
        {
            args.AddRange(["-initrd", prepared.InitrdPath]);
        }

        var cmdline = prepared.KernelCmdline;
        if (!kvm && input.TscKhz is > 0 && !spec.Kernel.Cmdline.ContainsKey("tsc_early_khz"))
        {
            cmdline += $" tsc_early_khz={input.TscKhz}";
        }

        args.AddRange(["-append", cmdline]);
        args.AddRange(["-chardev", $"file,id=console0,path={Escape(input.Dir.ConsoleLog)},append=on", "-serial", "chardev:console0"]);

        // pvpanic (ISA; microvm has the ISA bus and lists it in ACPI as QEMU0001): a guest with its pvpanic driver
        // loaded tells QEMU it panicked, and panic=pause leaves QEMU in status "guest-panicked" instead of the
        // "shutdown" a panic reboot turns into under -no-reboot. Guests without the driver are told apart by the console.
        args.AddRange(["-device", "pvpanic", "-action", "panic=pause"]);

        for (var i = 0; i < prepared.Volumes.Count; i++)
        {
            var v = prepared.Volumes[i];
            // backing= (empty; -drive cannot say null, QEMU warns it is deprecated but still honours it) opens a qcow2
            // without its backing file: a header rewritten between the daemon's check and QEMU's open names no host file.
            var noBacking = v.Format == DiskFormats.Qcow2 && !v.UsesBacking ? ",backing=" : "";
            args.AddRange([
                "-drive", $"id=vol{i},file={Escape(v.HostPath)},format={v.Format}{noBacking},if=none,readonly={(v.IsReadOnly ? "on" : "off")}",
                "-device", $"virtio-blk-device,drive=vol{i},serial={Escape(Serial(v.Id))}",
            ]);
        }

        var inheritedFd = 3; // macvtaps: the launcher opens each /dev/tapN as fd 3, 4, ... (InheritedFiles, in order)
        for (var i = 0; i < prepared.Nics.Count; i++)
        {
            var nic = prepared.Nics[i];
            args.AddRange([
                "-netdev", nic.CharDevice is null
                    ? $"tap,id=net{i},ifname={nic.Tap},script=no,downscript=no"
                    : $"tap,id=net{i},fd={inheritedFd++}",
                "-device", $"virtio-net-device,netdev=net{i},mac={nic.Mac}",
            ]);
        }

        args.AddRange([
            "-qmp", $"unix:{Escape(input.QmpSocket)},server=on,wait=off",
            // The uid in -name puts it in /proc/<pid>/cmdline; process= names the thread.
            "-name", $"{Escape(spec.Namespace + "/" + spec.Id)},process=hc-{prepared.Vm.Uid}",
        ]);
        if (input.StatusSocket is { } status)
        {
            // Issue 15: a second monitor for the daemon's kept status session (QmpStatusSessions).
            args.AddRange(["-qmp", $"unix:{Escape(status)},server=on,wait=off"]);
        }

        return args;
    }

    /// <summary>virtio-blk serials hold 20 bytes; the guest sees it in /sys/block/vdX/serial.</summary>
    private static string Serial(string id) => id.Length <= 20 ? id : id[..20];

    /// <summary>QEMU option values separate with ','; a literal comma is written twice.</summary>
    private static string Escape(string value) => value.Replace(",", ",,", StringComparison.Ordinal);
}
