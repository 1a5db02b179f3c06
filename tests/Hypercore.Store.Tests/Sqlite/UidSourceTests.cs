using Hypercore.Store.Sqlite;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// Record uids (issue 15, req13): Guid.CreateVersion7's layout, from random bytes drawn a pool at a time instead of one
/// read of the kernel's source per uid.
/// </summary>
public class UidSourceTests
{
    private static readonly DateTimeOffset Now = new(2026, 12, 1, 17, 0, 0, 123, TimeSpan.Zero);

    [Test]
    public void NewVersion7_HasCreateVersion7sLayout()
    {
        var source = UidSource.ForThisThread;
        for (var i = 0; i < 300; i++)
        {
            var uid = source.NewVersion7(Now);
            var reference = Guid.CreateVersion7(Now).ToString("N");

            uid.Should().MatchRegex("^[0-9a-f]{32}$");
            var parsed = Guid.ParseExact(uid, "N");
            parsed.Version.Should().Be(7);
            parsed.Variant.Should().BeInRange(8, 11, "the RFC 9562 variant: 10xx");
            uid[..12].Should().Be(reference[..12], "the first 48 bits are the Unix milliseconds, as CreateVersion7 writes them");
            uid[12].Should().Be('7');
        }
    }

    [Test]
    public void NewVersion7_KeepsEveryRandomBitCreateVersion7Keeps()
    {
        // All ones from the source: every bit CreateVersion7 leaves random is 1, the version and variant bits are forced.
        var ones = new UidSource(data => data.Fill(0xFF));
        ones.NewVersion7(Now).Should().Be(Uid(Now, "7fffbfffffffffffffff"));

        var zeros = new UidSource(data => data.Clear());
        zeros.NewVersion7(Now).Should().Be(Uid(Now, "70008000000000000000"));
    }

    [Test]
    public void NewVersion7_DrawsFromTheRandomSourceOncePerPool()
    {
        var fills = 0;
        var source = new UidSource(data =>
        {
            fills++;
            data.Length.Should().Be(UidSource.PoolBytes);
            UidSource.SecureRandom(data);
        });

        var uids = Enumerable.Range(0, 1000).Select(_ => source.NewVersion7(Now)).ToList();

        uids.Should().OnlyHaveUniqueItems();
        fills.Should().Be(8, "128 uids per 2 KB pool: 1000 uids take 8 pools, not 1000 reads of the random source");
    }

    [Test]
    public void SecureRandom_FillsEveryByteOfAPool()
    {
        // Whether it loads OpenSSL cannot be seen here (a Store.Tests process maps libcrypto already); checked on the
        // published node's /proc/PID/maps instead (bench/NOTES.md, req13).
        var a = new byte[UidSource.PoolBytes];
        var b = new byte[UidSource.PoolBytes];
        UidSource.SecureRandom(a);
        UidSource.SecureRandom(b);

        a.Should().NotEqual(b);
        a.Count(x => x == 0).Should().BeLessThan(64, "2 KB of random bytes hold ~8 zeros, not a part left unfilled");
        a.AsSpan(UidSource.PoolBytes - 32).ToArray().Should().NotEqual(new byte[32], "the end is filled too");
    }

    [Test]
    public void NewVersion7_BeforeTheEpoch_IsRefusedAsCreateVersion7Refuses()
    {
        var source = UidSource.ForThisThread;
        var before = DateTimeOffset.UnixEpoch.AddMilliseconds(-1);

        FluentActions.Invoking(() => Guid.CreateVersion7(before)).Should().Throw<ArgumentOutOfRangeException>();
        FluentActions.Invoking(() => source.NewVersion7(before)).Should().Throw<ArgumentOutOfRangeException>();
    }

    private static string Uid(DateTimeOffset time, string rest) =>
        time.ToUnixTimeMilliseconds().ToString("x12", System.Globalization.CultureInfo.InvariantCulture) + rest;
}
