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

    /// <summary>
    /// An equal kernel a recent spec already holds, else <paramref name="value"/> (issue 15, gc10). A node's VMs boot a
    /// handful of kernels, and every Create and every record read from the store made its own <see cref="KernelSpec"/>:
    /// 48 bytes and one object per record, kept for the VM's life and copied by gen0 and gen1 with it. The last
    /// <see cref="RecentKernels"/> distinct kernels are remembered; a spec given an equal one keeps that one instead
    /// (equality as <see cref="KernelSpec.Equals(KernelSpec?)"/>: image, file name, network flag, command line). A
    /// remembered kernel's command line is a read-only copy, so no holder can change another spec's kernel through a cast.
    /// </summary>
    public static KernelSpec Kernel(KernelSpec value)
    {
        if (value is null)
        {
            return value!; // a JSON reader's missing kernel: validation reports it
        }

        var recent = s_kernels;
        for (var i = 0; i < recent.Length; i++)
        {
            if (Volatile.Read(ref recent[i]) is { } seen && (ReferenceEquals(seen, value) || seen.Equals(value)))
            {
                return seen;
            }
        }

        var kept = value.Cmdline == EmptyMap || value.Cmdline is System.Collections.ObjectModel.ReadOnlyDictionary<string, string>
            ? value
            : value with { Cmdline = new Dictionary<string, string>(value.Cmdline, StringComparer.Ordinal).AsReadOnly() };
        Volatile.Write(ref recent[(int)((uint)Interlocked.Increment(ref s_nextKernel) % (uint)recent.Length)], kept);
        return kept;
    }

    /// <summary>How many distinct kernels <see cref="Kernel"/> remembers (most nodes boot one to a few).</summary>
    public const int RecentKernels = 4;

    private static readonly KernelSpec?[] s_kernels = new KernelSpec?[RecentKernels];
    private static int s_nextKernel;
}
