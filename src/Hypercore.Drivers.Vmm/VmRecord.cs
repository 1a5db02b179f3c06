using System.Text.Json;
using System.Text.Json.Serialization;
using Hypercore.MicroVms;

namespace Hypercore.Drivers.Vmm;

/// <summary>
/// What a driver writes next to a VMM it started (RuntimeDirectory/&lt;uid&gt;/vm.json) so that a later daemon can
/// find and adopt it: the uid is the identity, the pid plus its start time prove the process is still the same one.
/// </summary>
public sealed record VmRecord
{
    public required string Uid { get; init; }

    public required string Provider { get; init; }

    /// <summary>namespace/id of the MicroVM, for people reading the directory.</summary>
    public string Key { get; init; } = "";

    public int Pid { get; init; }

    /// <summary>Start time of <see cref="Pid"/> in clock ticks since boot (/proc/pid/stat field 22).</summary>
    public long PidStartTicks { get; init; }

    /// <summary>The executable that was started, as resolved (its file name must appear in /proc/pid/cmdline).</summary>
    public string Binary { get; init; } = "";

    /// <summary>Control socket (API socket or QMP) as seen from the host.</summary>
    public string ControlSocket { get; init; } = "";

    /// <summary>A string that must appear in the process command line (the socket path, or the jailer id).</summary>
    public string ArgvMarker { get; init; } = "";

    public string ConsoleLog { get; init; } = "";

    public DateTimeOffset StartedAt { get; init; }

    public IReadOnlyList<string> Taps { get; init; } = [];

    /// <summary>VmRuntimeInfo.Detail of this instance (e.g. the accelerator QEMU runs with).</summary>
    public string? Detail { get; init; }

    /// <summary>Provider-specific extras (jail directory, ops instance name, accelerator...).</summary>
    public IReadOnlyDictionary<string, string> Extra { get; init; } = new Dictionary<string, string>();
}

/// <summary>The per-VM directory RuntimeDirectory/&lt;uid&gt;/ and the files in it.</summary>
public sealed class VmDirectory
{
    public VmDirectory(string runtimeDirectory, string uid)
    {
        if (!MicroVm.IsSafeUid(uid))
        {
            throw new DriverException("InvalidUid", $"uid \"{uid}\" cannot name a runtime directory");
        }

        Uid = uid;
        Path = System.IO.Path.Combine(runtimeDirectory, uid);
    }

    public string Uid { get; }

    public string Path { get; }

    public string RecordFile => File("vm.json");

    public string PidFile => File("vmm.pid");

    public string ConsoleLog => File("console.log");

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Create() => Directory.CreateDirectory(Path);

    public VmRecord? ReadRecord()
    {
        // Issue 15 goal 2 (creates3): a VM that was never started, or is stopped, has no vm.json, and the reconciler
        // inspects it on every pass (before each start, and each resync of a stopped VM). Not found was an exception
        // caught below: in the Native AOT daemon ~2 % of its CPU under Creates went to unwinding it. The catch still
        // covers the file vanishing between the check and the read.
        if (!System.IO.File.Exists(RecordFile))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize(System.IO.File.ReadAllText(RecordFile), VmRecordJsonContext.Default.VmRecord);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException)
        {
            return null;
        }
    }

    /// <summary>Writes vm.json and the pid file atomically (write to a temp file, then rename).</summary>
    public void WriteRecord(VmRecord record)
    {
        Create();
        WriteAtomic(RecordFile, JsonSerializer.Serialize(record, VmRecordJsonContext.Default.VmRecord));
        WriteAtomic(PidFile, record.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
    }

    /// <summary>Forgets the running instance (vm.json and pid file) but keeps logs for people to read.</summary>
    public void DeleteRecord()
    {
        DeleteFile(RecordFile);
        DeleteFile(PidFile);
    }

    /// <summary>Removes the whole directory. Safe to call twice.</summary>
    public void Delete()
    {
        if (Directory.Exists(Path))
        {
            Directory.Delete(Path, recursive: true);
        }
    }

    public static void DeleteFile(string path)
    {
        try
        {
            System.IO.File.Delete(path);
        }
        catch (DirectoryNotFoundException)
        {
            // nothing to delete
        }
    }

    /// <summary>Every per-VM directory with a readable vm.json under <paramref name="runtimeDirectory"/>.</summary>
    public static IEnumerable<(VmDirectory Directory, VmRecord Record)> Scan(string runtimeDirectory)
    {
        if (!Directory.Exists(runtimeDirectory))
        {
            yield break;
        }

        foreach (var dir in Directory.EnumerateDirectories(runtimeDirectory).Where(d => MicroVm.IsSafeUid(System.IO.Path.GetFileName(d))))
        {
            var vmDir = new VmDirectory(runtimeDirectory, System.IO.Path.GetFileName(dir));
            var record = vmDir.ReadRecord();
            if (record is not null && record.Uid == vmDir.Uid)
            {
                yield return (vmDir, record);
            }
        }
    }

    /// <summary>
    /// True when the recorded process still runs and is the VMM we started: same pid start time, and its command
    /// line names the binary and the recorded marker (rules out an unrelated process that got the pid).
    /// </summary>
    public static bool IsRecordedProcessAlive(VmRecord record)
    {
        if (record.Pid <= 1 || !HostProcess.IsSameProcess(record.Pid, record.PidStartTicks))
        {
            return false;
        }

        var argv = HostProcess.CommandLine(record.Pid);
        var binaryName = System.IO.Path.GetFileName(record.Binary);
        var namesBinary = binaryName.Length == 0 || argv.Any(a => System.IO.Path.GetFileName(a) == binaryName);
        var namesMarker = record.ArgvMarker.Length == 0 || argv.Any(a => a.Contains(record.ArgvMarker, StringComparison.Ordinal));
        return namesBinary && namesMarker;
    }

    /// <summary>
    /// Writes a new temporary file (removed first and created with O_EXCL, so a link planted in its place is replaced,
    /// never written through), then renames it over <paramref name="path"/>.
    /// </summary>
    private static void WriteAtomic(string path, string content)
    {
        var tmp = path + ".tmp";
        System.IO.File.Delete(tmp);
        using (var file = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write))
        {
            file.Write(System.Text.Encoding.UTF8.GetBytes(content));
        }

        System.IO.File.Move(tmp, path, overwrite: true);
    }
}

/// <summary>vm.json's shape, source-generated (no reflection: the daemon's path stays trimmable and Native-AOT-safe).</summary>
[JsonSourceGenerationOptions(
    WriteIndented = true,
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(VmRecord))]
internal sealed partial class VmRecordJsonContext : JsonSerializerContext;
