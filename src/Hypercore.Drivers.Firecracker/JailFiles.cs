using Hypercore.HostAccess;
using Hypercore.Drivers.Vmm;

namespace Hypercore.Drivers.Firecracker;

/// <summary>
/// Puts a VM's files into its jail without touching the originals' owner or mode. Kernel, initrd and read-only
/// drives are copied (cp --reflink=auto: a reflink where the file system can, a plain copy otherwise) and the copy
/// is handed to the jailer uid/gid. A writable drive cannot be copied (the guest's writes would land in the copy),
/// so it is hard-linked: same inode, owner and mode unchanged; it must already be writable by the jailer uid and
/// live on the same file system as the chroot base directory, else the start is refused saying so.
/// </summary>
internal static class JailFiles
{
    public sealed record Jail(string Directory, string Root);

    public static async Task<Jail> PrepareAsync(JailerOptions o, string binary, PreparedSpec prepared, CancellationToken ct)
    {
        var uid = prepared.Vm.Uid;
        var root = JailerCommand.JailRoot(o, binary, uid);
        System.IO.Directory.CreateDirectory(Path.Combine(root, "run"));
        var files = new List<(string Name, string Host, bool Writable)> { ("kernel", prepared.KernelPath!, false) };
        if (prepared.InitrdPath is not null)
        {
            files.Add(("initrd", prepared.InitrdPath, false));
        }

        files.AddRange(prepared.Volumes.Select(v => ("drive-" + v.Id, v.HostPath, !v.IsReadOnly)));
        foreach (var (name, host, writable) in files)
        {
            var target = Path.Combine(root, name);
            VmDirectory.DeleteFile(target);
            if (writable)
            {
                var link = await HostProcess.RunAsync("ln", [host, target], TimeSpan.FromSeconds(10), ct);
                if (!link.Succeeded)
                {
                    throw new DriverException("HypervisorError",
                        $"cannot hand the writable volume {host} to the jail: {link.Diagnostic}; put it on the file system of {o.ChrootBaseDir} (a hard link keeps owner and mode unchanged)");
                }

                continue;
            }

            var copy = await HostProcess.RunAsync("cp", ["--reflink=auto", "--", host, target], TimeSpan.FromMinutes(5), ct);
            if (!copy.Succeeded)
            {
                throw new DriverException("HypervisorError", $"cannot copy {host} into the jail: {copy.Diagnostic}");
            }

            try
            {
                HostOwner.Set(o.Uid, o.Gid, target); // the copy itself: cp made a file, and nothing else writes the jail
            }
            catch (IOException ex)
            {
                throw new DriverException("HypervisorError", $"the jail's copy: {ex.Message}");
            }
        }

        return new Jail(JailerCommand.JailDirectory(o, binary, uid), root);
    }

    public static Task RemoveAsync(string jailDir, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        if (System.IO.Directory.Exists(jailDir))
        {
            System.IO.Directory.Delete(jailDir, recursive: true); // unlinks the hard links, never the originals' data
        }

        return Task.CompletedTask;
    }
}
