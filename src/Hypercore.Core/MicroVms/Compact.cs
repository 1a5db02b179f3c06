namespace Hypercore.MicroVms;

/// <summary>
/// What the record types keep of a collection they are given (issue 15, survive7): an empty list or map becomes the
/// one shared empty instance, so a record keeps no object of its own for a collection it does not use. The informer,
/// the reconciler and the store's cache keep every record for its life; a JSON reader makes a new empty
/// <see cref="List{T}"/> or <see cref="Dictionary{TKey, TValue}"/> for every <c>[]</c> and <c>{}</c> of a row (four to
/// seven per record read from the store), and the API's mapping made two per Create. Each of those was 32–80 bytes
/// that every gen0 and gen1 collection copied with the record, and the reason records read at start (goal 6) weighed
/// more than those made by Creates. Contents and equality are unchanged: only which object holds "nothing".
/// </summary>
internal static class Compact
{
    /// <summary>Read-only: a shared mutable map could be filled through a cast by one spec's holder for every other spec.</summary>
    public static readonly IReadOnlyDictionary<string, string> EmptyMap = System.Collections.ObjectModel.ReadOnlyDictionary<string, string>.Empty;

    /// <summary>The shared empty list for null or empty, otherwise <paramref name="value"/>.</summary>
    public static IReadOnlyList<T> List<T>(IReadOnlyList<T>? value) => value is null || value.Count == 0 ? [] : value;

    /// <summary>The shared empty map for null or empty, otherwise <paramref name="value"/>.</summary>
    public static IReadOnlyDictionary<string, string> Map(IReadOnlyDictionary<string, string>? value) =>
        value is null || value.Count == 0 ? EmptyMap : value;
}
