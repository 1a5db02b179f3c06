using Hypercore.MicroVms;
using Hypercore.Store;

namespace Hypercore.Informers;

/// <summary>
/// The informer cache's key comparer: ordinal, like <see cref="VmKey"/>'s own equality, and able to look a key up by
/// the characters of a <see cref="ListedVersion"/> (issue 15, seventh pass: the relist compares 100,000 listed rows with
/// the cache without making a key, and so a string, for any of them).
/// </summary>
internal sealed class CacheKeyComparer : IEqualityComparer<VmKey>, IAlternateEqualityComparer<ListedVersion, VmKey>
{
    public static readonly CacheKeyComparer Instance = new();

    private CacheKeyComparer()
    {
    }

    public bool Equals(VmKey x, VmKey y) => string.Equals(x.Namespace, y.Namespace, StringComparison.Ordinal) && string.Equals(x.Id, y.Id, StringComparison.Ordinal);

    // Both hashes from the characters, through the same function, so a key and its listed characters hash alike.
    public int GetHashCode(VmKey key) => Hash(key.Namespace, key.Id);

    public int GetHashCode(ListedVersion alternate) => Hash(alternate.Namespace, alternate.Id);

    public bool Equals(ListedVersion alternate, VmKey other) => alternate.Is(other);

    public VmKey Create(ListedVersion alternate) => new(alternate.Namespace.ToString(), alternate.Id.ToString());

    private static int Hash(ReadOnlySpan<char> @namespace, ReadOnlySpan<char> id) =>
        HashCode.Combine(string.GetHashCode(@namespace), string.GetHashCode(id));
}
