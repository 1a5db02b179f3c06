using System.Buffers.Binary;
using System.Text;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// Images (issue 11): writes an empty qcow2 (version 3) overlay of a backing file in-process, what
/// <c>qemu-img create -f qcow2 -F raw -b BACKING FILE SIZE</c> makes, without starting a process (that start was most
/// of an image VM's cached second start). Layout, 64 KiB clusters, 16-bit refcounts: cluster 0 the header with a
/// backing-format extension and the backing file's name, cluster 1 the refcount table (one entry), cluster 2 its one
/// refcount block (every metadata cluster counted once), then the L1 table, all zero (nothing allocated: every read
/// goes to the backing file until the guest writes). The file is sparse; it is fsync'd only when asked (see
/// <see cref="Create"/>).
/// </summary>
public static class Qcow2Overlay
{
    private const uint Magic = 0x514649fb; // "QFI\xfb"
    private const int ClusterBits = 16;
    private const int ClusterSize = 1 << ClusterBits;
    private const int HeaderLength = 104; // version 3 without the compression-type field (zlib, the default)
    private const uint BackingFormatExtension = 0xE2792ACA;
    private const int RefcountOrder = 4; // 16-bit refcounts, QEMU's default

    /// <summary>The largest virtual size written here (QEMU's own limit is far above; 64 TiB keeps the L1 table small).</summary>
    public const long MaxVirtualSize = 64L << 40;

    /// <summary>
    /// Writes the overlay to <paramref name="path"/> (created new; an existing file is an error).
    /// <paramref name="virtualSize"/> is rounded up to 512 bytes; a size above the backing file's reads zeros there.
    /// <paramref name="flushToDisk"/> false skips the fsync (milliseconds on a busy disk) for a caller that checks the
    /// header before reusing the file and makes it again when a power loss left it without one.
    /// </summary>
    public static void Create(string path, string backingFile, string backingFormat, long virtualSize, bool flushToDisk = true)
    {
        if (!Path.IsPathFullyQualified(backingFile))
        {
            throw new ArgumentException($"the backing file must be an absolute path (QEMU resolves a relative one against the overlay), got \"{backingFile}\"", nameof(backingFile));
        }

        if (backingFormat is not (DiskFormats.Raw or DiskFormats.Qcow2))
        {
            throw new ArgumentException($"backing format must be raw or qcow2, got \"{backingFormat}\"", nameof(backingFormat));
        }

        if (virtualSize is <= 0 or > MaxVirtualSize)
        {
            throw new ArgumentOutOfRangeException(nameof(virtualSize), virtualSize, $"must be 1 byte to {MaxVirtualSize} bytes");
        }

        var name = Encoding.UTF8.GetBytes(backingFile);
        var format = Encoding.ASCII.GetBytes(backingFormat);
        if (name.Length > 1023)
        {
            throw new ArgumentException("QEMU reads at most 1023 bytes of a backing file name", nameof(backingFile));
        }

        var size = (virtualSize + 511) / 512 * 512;
        const long bytesPerL1Entry = (long)ClusterSize * (ClusterSize / 8);
        var l1Entries = (int)((size + bytesPerL1Entry - 1) / bytesPerL1Entry);
        var l1Clusters = Math.Max(1, (l1Entries * 8 + ClusterSize - 1) / ClusterSize);
        const long refcountTable = 1L * ClusterSize;
        const long refcountBlock = 2L * ClusterSize;
        const long l1Table = 3L * ClusterSize;
        var clusters = 3 + l1Clusters; // at most 19 (64 TiB): one refcount block counts 32768 clusters

        var header = new byte[ClusterSize];
        var h = header.AsSpan();
        BinaryPrimitives.WriteUInt32BigEndian(h[0..], Magic);
        BinaryPrimitives.WriteUInt32BigEndian(h[4..], 3);
        // 8: backing file offset, 16: its length (set below, after the extensions)
        BinaryPrimitives.WriteUInt32BigEndian(h[20..], ClusterBits);
        BinaryPrimitives.WriteUInt64BigEndian(h[24..], (ulong)size);
        BinaryPrimitives.WriteUInt32BigEndian(h[32..], 0); // no encryption
        BinaryPrimitives.WriteUInt32BigEndian(h[36..], (uint)l1Entries);
        BinaryPrimitives.WriteUInt64BigEndian(h[40..], l1Table);
        BinaryPrimitives.WriteUInt64BigEndian(h[48..], refcountTable);
        BinaryPrimitives.WriteUInt32BigEndian(h[56..], 1); // refcount table clusters
        // 60: no snapshots, 64: snapshots offset 0, 72/80/88: no incompatible, compatible or autoclear features
        BinaryPrimitives.WriteUInt32BigEndian(h[96..], RefcountOrder);
        BinaryPrimitives.WriteUInt32BigEndian(h[100..], HeaderLength);

        // Header extensions: the backing file's format (so QEMU never probes it: a raw disk whose guest wrote a qcow2
        // header stays raw), then the end marker; each extension's data padded to 8 bytes.
        var at = HeaderLength;
        BinaryPrimitives.WriteUInt32BigEndian(h[at..], BackingFormatExtension);
        BinaryPrimitives.WriteUInt32BigEndian(h[(at + 4)..], (uint)format.Length);
        format.CopyTo(h[(at + 8)..]);
        at += 8 + ((format.Length + 7) / 8 * 8);
        at += 8; // end of extensions: type 0, length 0 (already zero)

        BinaryPrimitives.WriteUInt64BigEndian(h[8..], (ulong)at);
        BinaryPrimitives.WriteUInt32BigEndian(h[16..], (uint)name.Length);
        name.CopyTo(h[at..]);
        var headerBytes = at + name.Length;

        Span<byte> table = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(table, refcountBlock);
        var block = new byte[clusters * 2];
        for (var i = 0; i < clusters; i++)
        {
            BinaryPrimitives.WriteUInt16BigEndian(block.AsSpan(i * 2), 1);
        }

        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        file.Write(header, 0, headerBytes);
        file.Seek(refcountTable, SeekOrigin.Begin);
        file.Write(table);
        file.Seek(refcountBlock, SeekOrigin.Begin);
        file.Write(block);
        file.SetLength(l1Table + ((long)l1Clusters * ClusterSize)); // the L1 table: zeros, left sparse
        file.Flush(flushToDisk);
    }
}
