using Hypercore.Informers;
using Hypercore.MicroVms;
using Hypercore.Store;

namespace Hypercore.Core.Tests.Informers;

/// <summary>
/// Issue 15, seventh pass: the informer's cache finds a listed row's record by the row's characters, so a key and the
/// same characters from a listing must hash and compare alike, and different ones must not be found.
/// </summary>
public class CacheKeyComparerTests
{
    private static ListedVersion Listed(string ns, string id) => new(ns.AsSpan(), id.AsSpan(), "uid".AsSpan(), "7".AsSpan());

    [TestCase("default", "vm-1")]
    [TestCase("team-ä", "vm-\u6F22\u5B57")]
    [TestCase("a", "vm-\uD83D\uDE80")]
    [TestCase("", "")]
    public void ListedCharacters_FindTheCachedKey(string ns, string id)
    {
        var cache = new Dictionary<VmKey, int>(CacheKeyComparer.Instance) { [new VmKey(ns, id)] = 1, [new VmKey(ns + "x", id)] = 2 };
        var lookup = cache.GetAlternateLookup<ListedVersion>();

        // The characters copied into a buffer of their own, as a listing decodes them: not the key's strings.
        var chars = (ns + id).ToCharArray();
        var listed = new ListedVersion(chars.AsSpan(0, ns.Length), chars.AsSpan(ns.Length), "uid".AsSpan(), "7".AsSpan());

        CacheKeyComparer.Instance.GetHashCode(listed).Should().Be(CacheKeyComparer.Instance.GetHashCode(new VmKey(ns, id)));
        lookup.TryGetValue(listed, out var value).Should().BeTrue();
        value.Should().Be(1);
        lookup.TryGetValue(Listed(ns, id + "y"), out _).Should().BeFalse();
        lookup.TryGetValue(Listed(id, ns), out _).Should().Be(ns == id, "namespace and id are not interchangeable");
    }

    [Test]
    public void Keys_CompareOrdinally_AsVmKeyItself()
    {
        var comparer = CacheKeyComparer.Instance;
        comparer.Equals(new VmKey("a", "b"), new VmKey("a", "b")).Should().BeTrue();
        comparer.Equals(new VmKey("a", "b"), new VmKey("A", "b")).Should().BeFalse();
        comparer.Equals(new VmKey("ab", ""), new VmKey("a", "b")).Should().BeFalse();
        comparer.GetHashCode(new VmKey("a", "b")).Should().Be(comparer.GetHashCode(new VmKey(new string('a', 1), new string('b', 1))));
    }
}
