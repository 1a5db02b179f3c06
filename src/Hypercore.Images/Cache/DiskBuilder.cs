using System.Diagnostics;

namespace Hypercore.Images.Cache;

/// <summary>Turns an unpacked tree into an ext4 image with <c>mkfs.ext4 -d</c> (no mount, no root needed).</summary>
internal static class DiskBuilder
{
    private const long MiB = 1024 * 1024;

    /// <summary>Size = blocks the tree needs plus 20% and 16 MiB for metadata and the journal; inodes = entries plus margin.</summary>
    public static (long Bytes, long Inodes) SizeFor(string tree)
    {
        long bytes = 0, entries = 0;
        foreach (var info in new DirectoryInfo(tree).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, IgnoreInaccessible = false }))
        {
            entries++;
            bytes += info is FileInfo { LinkTarget: null } f ? (f.Length + 4095) / 4096 * 4096 : 4096;
        }
        var size = bytes + bytes / 5 + 16 * MiB;
        size = (size + MiB - 1) / MiB * MiB;
        return (size, entries + 1024 + entries / 5);
    }

    public static async Task BuildAsync(string mkfs, string tree, string output, CancellationToken ct)
    {
        var (bytes, inodes) = SizeFor(tree);
        using var process = new Process
        {
            StartInfo =
            {
                FileName = mkfs,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            },
        };
        foreach (var arg in new[] { "-q", "-F", "-t", "ext4", "-N", inodes.ToString(), "-d", tree, output, $"{bytes / 1024}k" })
            process.StartInfo.ArgumentList.Add(arg);
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new ImagePullException(ImagePullErrorKind.DiskBuildFailed, null,
                $"cannot run {mkfs} ({e.Message}); install e2fsprogs (scripts/setup.sh does)", null, e);
        }
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        try
        {
            await process.WaitForExitAsync(ct);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        if (process.ExitCode != 0)
            throw new ImagePullException(ImagePullErrorKind.DiskBuildFailed, null,
                $"{mkfs} -d {tree} exited {process.ExitCode}: {(await stderr).Trim()} {(await stdout).Trim()}");
    }

    public static string FindMkfs(string? configured)
    {
        if (!string.IsNullOrEmpty(configured)) return configured;
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        foreach (var dir in path.Split(':').Concat(["/usr/sbin", "/sbin"]))
        {
            if (dir.Length == 0) continue;
            var candidate = Path.Combine(dir, "mkfs.ext4");
            if (File.Exists(candidate)) return candidate;
        }
        return "mkfs.ext4";
    }
}
