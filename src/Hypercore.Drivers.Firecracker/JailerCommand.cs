using System.Globalization;

namespace Hypercore.Drivers.Firecracker;

/// <summary>
/// The jailer's command line and chroot layout. The jailer creates &lt;base&gt;/&lt;exec-file name&gt;/&lt;id&gt;/root,
/// drops to uid/gid, applies cgroups and execs firecracker inside; firecracker then sees only files inside that
/// root, so kernel, initrd and drives are linked in and named by chroot-relative paths in the API calls.
/// </summary>
internal static class JailerCommand
{
    /// <summary>firecracker's API socket path inside the jail.</summary>
    public const string SocketInJail = "/run/firecracker.socket";

    public static string JailRoot(JailerOptions o, string firecrackerBinary, string id) =>
        Path.Combine(o.ChrootBaseDir, Path.GetFileName(firecrackerBinary), id, "root");

    /// <summary>The directory the jailer owns for this VM (removed on cleanup).</summary>
    public static string JailDirectory(JailerOptions o, string firecrackerBinary, string id) =>
        Path.Combine(o.ChrootBaseDir, Path.GetFileName(firecrackerBinary), id);

    public static IReadOnlyList<string> Arguments(JailerOptions o, string firecrackerBinary, string id)
    {
        var args = new List<string>
        {
            "--id", id,
            "--exec-file", firecrackerBinary,
            "--uid", o.Uid.ToString(CultureInfo.InvariantCulture),
            "--gid", o.Gid.ToString(CultureInfo.InvariantCulture),
            "--chroot-base-dir", o.ChrootBaseDir,
            "--cgroup-version", o.CgroupVersion.ToString(CultureInfo.InvariantCulture),
        };
        if (o.ParentCgroup.Length > 0)
        {
            args.AddRange(["--parent-cgroup", o.ParentCgroup]);
        }

        foreach (var c in o.Cgroups)
        {
            args.AddRange(["--cgroup", c]);
        }

        if (o.NetNs.Length > 0)
        {
            args.AddRange(["--netns", o.NetNs]);
        }

        // Everything after "--" goes to firecracker itself.
        args.AddRange(["--", "--api-sock", SocketInJail]);
        return args;
    }
}
