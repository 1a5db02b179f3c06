using System.Buffers.Binary;
using System.Text;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// Safe by default (issue 8): the format a VMM opens a disk with. A qcow2 file names its backing file (and, in v3, an
/// external data file) in its header, and QEMU opens those host paths itself, as root; a caller who may place a file
/// under a volume root could otherwise make the guest read /etc/shadow or /dev/sda. So a disk is raw unless its name
/// says qcow2, and a qcow2 the daemon did not make itself is accepted only when its header names no other file.
/// </summary>
public static class DiskFormats
{
    public const string Raw = "raw";
    public const string Qcow2 = "qcow2";

    /// <summary>The reason of the condition a refused disk gives.</summary>
    public const string RefusedReason = "VolumeRefused";

    private const uint Qcow2Magic = 0x514649fb; // "QFI\xfb"
    private const ulong ExternalDataFileBit = 1UL << 2;

    /// <summary>What a qcow2 header says about other files; <see cref="IsQcow2"/> false for anything else.</summary>
    public sealed record Header(bool IsQcow2, string? BackingFile, bool ExternalDataFile);

    /// <summary>Reads the header of <paramref name="path"/> (the bytes QEMU reads to find other files).</summary>
    public static Header Read(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        return Read(file);
    }

    public static Header Read(Stream file)
    {
        Span<byte> head = stackalloc byte[104];
        var length = ReadAt(file, 0, head);
        if (length < 72 || BinaryPrimitives.ReadUInt32BigEndian(head) != Qcow2Magic)
        {
            return new Header(false, null, false);
        }

        var version = BinaryPrimitives.ReadUInt32BigEndian(head[4..]);
        var backingOffset = BinaryPrimitives.ReadUInt64BigEndian(head[8..]);
        var backingSize = BinaryPrimitives.ReadUInt32BigEndian(head[16..]);
        // Version 3 headers carry incompatible feature bits; bit 2 is "external data file" (named in a header extension).
        var dataFile = version >= 3 && length >= 80 && (BinaryPrimitives.ReadUInt64BigEndian(head[72..]) & ExternalDataFileBit) != 0;
        string? backing = null;
        if (backingOffset != 0)
        {
            // QEMU caps the name at 1023 bytes; anything else still names a backing file, shown truncated.
            var name = new byte[Math.Min(backingSize, 1023u)];
            var read = backingOffset < (ulong)file.Length ? ReadAt(file, (long)backingOffset, name) : 0;
            backing = read > 0 ? Encoding.UTF8.GetString(name, 0, read) : "(unreadable name)";
        }

        return new Header(true, backing, dataFile);
    }

    /// <summary>How a VMM may open a disk: its format, and whether it may open the backing file the header names.</summary>
    public readonly record struct Checked(string Format, bool UsesBacking);

    /// <summary>
    /// The format to open a disk the daemon did not make (a caller's host path, a disk from an image, a restored copy
    /// of either) with: raw unless the name ends in .qcow2; a *.qcow2 must be a qcow2 that names no backing or data file
    /// (<paramref name="allowedBacking"/>: the one backing file a daemon-made overlay may name). Else DriverException.
    /// </summary>
    public static Checked ForUntrusted(string path, string field, string? allowedBacking = null)
    {
        if (!path.EndsWith(".qcow2", StringComparison.OrdinalIgnoreCase))
        {
            // Never probed: a raw disk whose guest wrote a qcow2 header into it stays raw.
            return new Checked(Raw, UsesBacking: false);
        }

        var header = Read(path);
        if (!header.IsQcow2)
        {
            throw new DriverException(RefusedReason, $"{field}: {path} is named *.qcow2 but is not a qcow2 image; rename it (it is then attached raw) or convert it: qemu-img convert -O qcow2 <file> <new>.qcow2");
        }

        if (header.BackingFile is { } backing && !string.Equals(backing, allowedBacking, StringComparison.Ordinal))
        {
            throw new DriverException(RefusedReason,
                $"{field}: {path} is a qcow2 image with backing file \"{backing}\"; the daemon never lets a VMM open a backing file named by a disk it did not make. " +
                $"Flatten it into a standalone image: qemu-img convert -O qcow2 {path} <new>.qcow2 (or attach a raw image)");
        }

        if (header.ExternalDataFile)
        {
            throw new DriverException(RefusedReason,
                $"{field}: {path} is a qcow2 image with an external data file; the daemon never lets a VMM open a data file named by a disk it did not make. " +
                $"Flatten it into a standalone image: qemu-img convert -O qcow2 {path} <new>.qcow2 (or attach a raw image)");
        }

        return new Checked(Qcow2, UsesBacking: header.BackingFile is not null);
    }

    private static int ReadAt(Stream file, long offset, Span<byte> buffer)
    {
        file.Seek(offset, SeekOrigin.Begin);
        var total = 0;
        while (total < buffer.Length)
        {
            var n = file.Read(buffer[total..]);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }
}
