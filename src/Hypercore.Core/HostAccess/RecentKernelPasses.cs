namespace Hypercore.HostAccess;

/// <summary>
/// The kernel and initrd paths the API's admission check found allowed in the last <see cref="Lifetime"/> (issue 15,
/// twentieth pass). Nearly every Create names the same kernel as the one before it, and resolving it again is three
/// syscalls (openat2, fstat, close: ~8 µs on the benchmark host, 4.7 % of a Running Create's CPU on the benchmark
/// node) for the same answer.
/// </summary>
/// <remarks>
/// What a reuse can and cannot change, so that it needs no security exception:
/// <list type="bullet">
/// <item>Only the API's early refusal reuses a pass (<see cref="HostPathPolicy.AdmissionViolations"/>). The drivers'
/// prepared-spec check right before a hypervisor starts resolves every path afresh, always; it is what stands between
/// a spec and the hypervisor, and no file reaches a VM without it.</item>
/// <item>Only passes are kept. A refusal is made afresh each time, so a path an operator has just allowed is accepted
/// at once, and no refusal is ever reused.</item>
/// <item>The answer depends only on the path and the file system: the roots are fixed when the daemon starts.</item>
/// <item>So the most a reuse does: for at most <see cref="Lifetime"/> after a kernel path stopped being allowed (say a
/// link swapped in under it), a Create naming it is accepted instead of refused with InvalidArgument; the driver's check
/// then refuses its start, which shows in the VM's status conditions. No host file is reached.</item>
/// </list>
/// A handful of slots picked by the path's hash, each holding one immutable entry: memory is bounded whatever callers
/// send, and a miss only costs the lookup it would have cost anyway.
/// </remarks>
internal sealed class RecentKernelPasses(TimeProvider time)
{
    /// <summary>How long a pass is reused.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(1);

    private const int Slots = 8; // a power of two
    private readonly Entry?[] _entries = new Entry?[Slots];

    /// <summary>Whether this exact check (field, image and filename, compared ordinally) passed less than <see cref="Lifetime"/> ago.</summary>
    public bool Passed(string what, string image, string? filename)
    {
        var entry = Volatile.Read(ref _entries[Slot(what, image, filename)]);
        return entry is not null && entry.What == what && entry.Image == image && entry.Filename == filename &&
            time.GetTimestamp() - entry.PassedAt < Ticks(Lifetime);
    }

    /// <summary>Records a pass of this check, now.</summary>
    public void Add(string what, string image, string? filename) =>
        Volatile.Write(ref _entries[Slot(what, image, filename)], new Entry(what, image, filename, time.GetTimestamp()));

    private long Ticks(TimeSpan span) => (long)(span.TotalSeconds * time.TimestampFrequency);

    /// <summary>Kernels in one half of the slots, initrds in the other: a spec's two never push each other out.</summary>
    private static int Slot(string what, string image, string? filename) =>
        (what == "kernel" ? 0 : Slots / 2) +
        ((image.GetHashCode(StringComparison.Ordinal) ^ (filename?.GetHashCode(StringComparison.Ordinal) ?? 0)) & (Slots / 2 - 1));

    private sealed record Entry(string What, string Image, string? Filename, long PassedAt);
}
