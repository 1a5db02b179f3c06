using System.Runtime.CompilerServices;
using Hypercore.MicroVms;
using Proto = Hypercore.Contracts.VmApi;

namespace Hypercore.Api.MicroVms;

/// <summary>
/// Converts a record to its wire message once for all Watch streams instead of once per stream: one change fans out
/// to every stream at about the same moment, so a few recent conversions serve nearly all of them (issue 15: one
/// change to 1,000 streams was 1,000 identical conversions). A fixed handful of slots, so memory stays bounded
/// however many records change; a miss only costs the conversion. The message is shared and only ever serialized,
/// never changed, after it leaves here.
/// </summary>
internal static class SharedProtoCache
{
    private const int Slots = 64; // a power of two
    private static readonly Entry?[] Entries = new Entry?[Slots];

    public static Proto.MicroVM ToProto(MicroVm vm)
    {
        var slot = RuntimeHelpers.GetHashCode(vm) & (Slots - 1);
        var entry = Volatile.Read(ref Entries[slot]);
        if (entry is not null && ReferenceEquals(entry.Vm, vm))
        {
            return entry.Proto;
        }

        // Two streams converting the same record at once both convert; either result is right.
        var proto = Mapping.ToProto(vm);
        Volatile.Write(ref Entries[slot], new Entry(vm, proto));
        return proto;
    }

    private sealed record Entry(MicroVm Vm, Proto.MicroVM Proto);
}
