using System.Runtime.InteropServices;

namespace Hypercore.Store.Sqlite;

/// <summary>Fills a span with random bytes (<see cref="UidSource.SecureRandom"/>, or a test's source).</summary>
internal delegate void RandomFill(Span<byte> data);

/// <summary>
/// The record uids: version 7 UUIDs as 32 hex digits, exactly the layout of <see cref="Guid.CreateVersion7(DateTimeOffset)"/>
/// (48 bits of Unix milliseconds, the version, 12 + 62 random bits, the RFC 9562 variant), from cryptographically secure
/// bytes drawn <see cref="PoolBytes"/> at a time. Issue 15 (req13): <see cref="Guid.NewGuid"/>, under CreateVersion7, reads
/// the kernel's random source once per uid (a read(2) of /dev/urandom on this runtime, ~1 µs of a Create's CPU under load);
/// one read per 128 uids instead. The uids are names, not secrets (a caller still needs a namespace grant for the VM
/// they name); the bytes come from the kernel's generator as before (getrandom(2), see <see cref="SecureRandom"/>), only
/// taken in larger pieces.
/// </summary>
internal sealed partial class UidSource
{
    /// <summary>Bytes per refill: 128 uids' worth.</summary>
    public const int PoolBytes = 2048;

    private const int BytesPerUid = 16;

    [ThreadStatic]
    private static UidSource? t_source;

    private readonly RandomFill _fill;
    private readonly byte[] _pool = new byte[PoolBytes];
    private int _next = PoolBytes;

    public UidSource(RandomFill fill)
    {
        _fill = fill;
    }

    /// <summary>The calling thread's source (no lock: each writer of Creates draws from its own pool).</summary>
    public static UidSource ForThisThread => t_source ??= new UidSource(SecureRandom);

    /// <summary>
    /// The kernel's secure random bytes: getrandom(2) (Linux 3.17), the source <see cref="Guid.NewGuid"/> reads too;
    /// where it is missing or fails, <see cref="Guid.NewGuid"/> 16 bytes at a time, as before. Not
    /// <c>RandomNumberGenerator.Fill</c>: on Linux that loads OpenSSL's libcrypto into the daemon for this alone.
    /// </summary>
    public static void SecureRandom(Span<byte> data)
    {
        while (data.Length > 0)
        {
            var got = OperatingSystem.IsLinux() ? GetRandom(data, (nuint)data.Length, 0) : -1;
            if (got <= 0)
            {
                break; // EINTR, ENOSYS or any other failure: the fallback below
            }

            data = data[(int)got..];
        }

        Span<byte> guid = stackalloc byte[16];
        for (; data.Length > 0; data = data[Math.Min(16, data.Length)..])
        {
            Guid.NewGuid().TryWriteBytes(guid);
            guid[..Math.Min(16, data.Length)].CopyTo(data);
        }
    }

    /// <summary>A version 7 uid for <paramref name="now"/>, as <c>Guid.CreateVersion7(now).ToString("N")</c> would give.</summary>
    /// <exception cref="ArgumentOutOfRangeException">before the Unix epoch (as CreateVersion7).</exception>
    public string NewVersion7(DateTimeOffset now)
    {
        var ms = now.ToUnixTimeMilliseconds();
        ArgumentOutOfRangeException.ThrowIfNegative(ms, nameof(now));
        if (_next > PoolBytes - BytesPerUid)
        {
            _fill(_pool);
            _next = 0;
        }

        var r = _pool.AsSpan(_next, BytesPerUid);
        _next += BytesPerUid;

        // As CreateVersion7: the time in the first 48 bits, version 7 in the top nibble of the third group, the 10xx
        // variant in the top bits of the fourth; every other bit random.
        var version = (short)((((r[7] << 8) | r[6]) & 0x0FFF) | 0x7000);
        var variant = (byte)((r[8] & 0x3F) | 0x80);
        var uid = new Guid((int)(ms >> 16), (short)ms, version, variant, r[9], r[10], r[11], r[12], r[13], r[14], r[15]);
        r.Clear(); // a drawn uid's bytes do not stay in the pool
        return uid.ToString("N");
    }

    [LibraryImport("libc", EntryPoint = "getrandom")]
    private static partial nint GetRandom(Span<byte> buffer, nuint length, uint flags);
}
