using Google.Protobuf.Collections;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Proto = Hypercore.Contracts.VmApi;

namespace Hypercore.Api.MicroVms;

/// <summary>
/// Reads a CreateMicroVMRequest (both services' have the same shape: a spec and an Any metadata map) into a core
/// spec plus the shape problems found, and refuses up front what the chosen provider cannot serve at all.
/// </summary>
public static class CreateRequest
{
    /// <param name="base64Metadata">flintlock's convention: metadata text values are base64 (see <see cref="GuestMetadata"/>).</param>
    public static (MicroVmSpec Spec, List<string> Errors) Read(
        Proto.MicroVMSpec? microvm, MapField<string, Any> metadata, bool base64Metadata)
    {
        if (microvm is null)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, "microvm is required"));
        }

        var errors = new List<string>();
        var spec = Mapping.ToCore(microvm, errors);
        var merged = GuestMetadata.Merge(metadata, spec.Metadata, base64Metadata, errors);
        // issue 15 (alloc7): no copy of the spec when the merge changed nothing (no metadata: nearly every Create).
        return (ReferenceEquals(merged, spec.Metadata) ? spec : spec with { Metadata = merged }, errors);
    }

    /// <summary>
    /// Guest metadata on a provider without a metadata service would be stored and then refused by the reconciler;
    /// a client that sent it (CAPMVM always does) is better told now, before anything is written.
    /// </summary>
    public static void RefuseUnservableMetadata(MicroVmSpec spec, DriverRegistry drivers)
    {
        if (spec.Metadata.Count == 0 || !drivers.TryGet(spec.Provider, out var driver) ||
            driver.Capabilities.HasFlag(DriverCapabilities.MetadataService))
        {
            return;
        }

        var able = drivers.All.Where(d => d.Capabilities.HasFlag(DriverCapabilities.MetadataService)).Select(d => d.Name).Order(StringComparer.Ordinal).ToList();
        throw new RpcException(new Status(
            StatusCode.FailedPrecondition,
            $"provider \"{driver.Name}\" has no metadata service for the guest metadata ({string.Join(", ", spec.Metadata.Keys.Order(StringComparer.Ordinal))}); " +
            (able.Count == 0
                ? "no provider on this node has one: create the microvm without metadata"
                : $"set provider to one that has ({string.Join(", ", able)}), or create the microvm without metadata")));
    }
}
