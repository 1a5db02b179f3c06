using System.Text;

namespace Hypercore.Drivers.Vmm.Bootstrap;

/// <summary>
/// A cloud-init NoCloud seed disk: a FAT image labelled "cidata" (cloud-init looks for that label, as cloud-localds
/// makes it) holding one file per cloud-init key. Made with dosfstools' mkfs.vfat and mtools' mcopy, so no mount
/// and no loop device are needed; written beside and renamed over, so a guest never sees half a disk.
/// </summary>
public static class SeedDisk
{
    public const string Label = "cidata";
    public const string FileName = "cidata.img";

    private static readonly TimeSpan ToolTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Builds (or rebuilds) the image at <paramref name="path"/> from name-to-content <paramref name="files"/>.</summary>
    public static async Task BuildAsync(string path, IReadOnlyDictionary<string, string> files, CancellationToken ct)
    {
        var mkfs = Tool("mkfs.vfat", "dosfstools");
        var mcopy = Tool("mcopy", "mtools");
        var staging = path + ".files";
        var image = path + ".tmp";
        try
        {
            DeleteTree(staging);
            Directory.CreateDirectory(staging);
            File.Delete(image);
            long bytes = 0;
            var sources = new List<string>();
            foreach (var (name, content) in files)
            {
                var file = Path.Combine(staging, name);
                var data = Encoding.UTF8.GetBytes(content);
                await File.WriteAllBytesAsync(file, data, ct);
                bytes += data.Length;
                sources.Add(file);
            }

            // FAT12 with room for the content plus a cluster per file and the directory; at least a floppy's worth.
            var kib = Math.Max(1440, ((bytes + 1023) / 1024 * 2) + (files.Count * 4) + 256);
            await RunAsync(mkfs, ["-n", Label, "-C", image, kib.ToString(System.Globalization.CultureInfo.InvariantCulture)], ct);
            await RunAsync(mcopy, ["-i", image, "-o", "-Q", .. sources, "::"], ct);
            File.Move(image, path, overwrite: true);
        }
        finally
        {
            DeleteTree(staging);
            if (File.Exists(image))
            {
                File.Delete(image);
            }
        }
    }

    private static string Tool(string name, string package)
    {
        // Root's PATH has the sbin directories; a daemon started with a narrow PATH still finds Debian's tools.
        var (found, tried) = BinaryLocator.Resolve(name);
        found ??= new[] { "/usr/sbin/" + name, "/sbin/" + name, "/usr/bin/" + name }.FirstOrDefault(BinaryLocator.IsExecutable);
        return found ?? throw new DriverException("SeedDiskError",
            $"{name} not found (tried {string.Join(", ", tried)}): the cloud-init seed disk for spec.metadata needs it; install the Debian package {package} (scripts/setup.sh does)");
    }

    private static async Task RunAsync(string tool, IReadOnlyList<string> args, CancellationToken ct)
    {
        var result = await HostProcess.RunAsync(tool, args, ToolTimeout, ct);
        if (!result.Succeeded)
        {
            throw new DriverException("SeedDiskError", $"building the cloud-init seed disk: {Path.GetFileName(tool)} failed: {result.Diagnostic}");
        }
    }

    private static void DeleteTree(string path)
    {
        if (Directory.Exists(path))
        {
            Directory.Delete(path, recursive: true);
        }
    }
}
