namespace Hypercore.Api.MicroVms;

/// <summary>
/// One instance of the strings that nearly every spec repeats (namespace, kernel and initrd image, provider, node name)
/// instead of the copy each request's parser made (issue 15 goal 2, survivors). The informer and the store's caches keep
/// every record for the VM's life, so each Create's copies (a kernel path alone is ~150 bytes) were copied again by
/// the next gen0 collection, and the Create p99 is those pauses. The request's own copy becomes garbage that dies young.
/// </summary>
/// <remarks>
/// A fixed 256 slots in sets of four picked by the text's hash, each set holding the last four strings that missed there: memory stays bounded
/// whatever clients send (a flood of distinct values only replaces slots), and a miss costs nothing but keeping the
/// request's copy, as before. Equal text is all that is shared; strings are immutable, so which instance a spec holds
/// is not observable except by reference. Long strings are not pooled (they are rarely repeated and each hit would
/// compare them in full).
/// </remarks>
internal static class SharedSpecStrings
{
    private const int Slots = 256; // a power of two
    private const int Ways = 4; // slots per set: the strings of one spec that hash to one set do not push each other out
    private const int Sets = Slots / Ways;
    private const int MaxLength = 512;
    private static readonly string?[] Entries = new string?[Slots];
    private static readonly int[] NextVictim = new int[Sets];

    /// <summary>An earlier string equal to <paramref name="value"/> if one is in its set, else <paramref name="value"/> (now in the set).</summary>
    public static string Share(string value)
    {
        if (value.Length is 0 or > MaxLength)
        {
            return value.Length == 0 ? string.Empty : value;
        }

        var set = string.GetHashCode(value.AsSpan(), StringComparison.Ordinal) & (Sets - 1);
        var first = set * Ways;
        for (var i = first; i < first + Ways; i++)
        {
            var known = Volatile.Read(ref Entries[i]);
            if (known is not null && string.Equals(known, value, StringComparison.Ordinal))
            {
                return known;
            }
        }

        // Round robin within the set: a string is replaced only after Ways later misses in its set, so the few strings
        // of one spec (seven at most) are all still there for the next spec unless five of them share one of 64 sets.
        // Two requests writing at once: either string stays, both are right.
        var victim = first + (Interlocked.Increment(ref NextVictim[set]) & (Ways - 1));
        Volatile.Write(ref Entries[victim], value);
        return value;
    }
}
