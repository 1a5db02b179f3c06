using System.Text.Json;
using System.Text.Json.Serialization;
using Hypercore.MicroVms;

namespace Hypercore.Snapshots;

/// <summary>
/// manifest.json of one snapshot: where it came from (the source VM's spec, hypervisor and version), and every file
/// with its size (and sha256 for the state files), so a restore can refuse a snapshot that would not load before
/// anything is started.
/// </summary>
public sealed record SnapshotManifest
{
    public const int CurrentFormat = 1;

    public int Format { get; init; } = CurrentFormat;

    public required string Name { get; init; }

    /// <summary>The source VM's namespace; only VMs in this namespace may be restored from it.</summary>
    public required string Namespace { get; init; }

    public required string SourceId { get; init; }

    public required string SourceUid { get; init; }

    public required string Provider { get; init; }

    public required string HypervisorVersion { get; init; }

    public string Machine { get; init; } = "";

    /// <summary>The source VM's spec: a restored VM runs this hardware (kernel, initrd, vcpus, memory, volumes, interfaces).</summary>
    public required MicroVmSpec Spec { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>Whether the source was running (not paused) when the snapshot was taken.</summary>
    public bool WasRunning { get; init; }

    public double DurationSeconds { get; init; }

    public IReadOnlyList<SnapshotFile> Files { get; init; } = [];

    public IReadOnlyList<SnapshotDisk> Disks { get; init; } = [];

    /// <summary>Bytes the snapshot's files take on disk (sparse disk copies count what they really use).</summary>
    public long SizeBytes { get; init; }

    /// <summary>
    /// What owns the snapshot besides this node: the uid of the Kubernetes MicroVMSnapshot it was taken for, whose
    /// deletion deletes it; null for a snapshot taken through the API (vis, gRPC, HTTP).
    /// </summary>
    public string? Owner { get; init; }
}

/// <summary>One file of a snapshot. <see cref="Sha256"/> is set for state files, which are checked before a restore.</summary>
public sealed record SnapshotFile(string Name, long Size, string? Sha256);

/// <summary>The copy of one writable volume, as a file name inside the snapshot directory.</summary>
public sealed record SnapshotDisk(string VolumeId, string File);

/// <summary>What a driver restores from: the snapshot's directory and its verified manifest.</summary>
public sealed record SnapshotRestore(string Directory, SnapshotManifest Manifest)
{
    /// <summary>The key in <see cref="Reconciliation.StartContext.Items"/>.</summary>
    public const string ItemKey = "snapshots.restore";

    public string PathOf(string file) => System.IO.Path.Combine(Directory, file);
}

[JsonSourceGenerationOptions(
    JsonSerializerDefaults.Web,
    WriteIndented = true,
    UseStringEnumConverter = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(SnapshotManifest))]
internal sealed partial class SnapshotJsonContext : JsonSerializerContext;
