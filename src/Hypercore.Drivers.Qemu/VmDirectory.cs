using System.Text.Json;
using System.Text.Json.Serialization;

namespace Hypercore.Drivers.Qemu;

/// <summary>
/// One VM's runtime directory, RuntimeDirectory/&lt;uid&gt;/: qmp.sock, qemu.pid (QEMU's own, removed by QEMU on a
/// clean exit), console.log (appended across restarts) and vm.json (who this is, which pid, whether we stopped
/// it). vm.json outlives the daemon, so a restarted daemon can find and adopt what is still running.
/// </summary>
internal sealed class VmDirectory
{
    public VmDirectory(string runtimeDirectory, string uid)
    {
        Uid = uid;
        Path = System.IO.Path.Combine(runtimeDirectory, uid);
    }

    public string Uid { get; }

    public string Path { get; }

    public string QmpSocket => System.IO.Path.Combine(Path, "qmp.sock");

    public string PidFile => System.IO.Path.Combine(Path, "qemu.pid");

    public string ConsoleLog => System.IO.Path.Combine(Path, "console.log");

    public string RecordFile => System.IO.Path.Combine(Path, "vm.json");

    public bool Exists => Directory.Exists(Path);

    /// <summary>A uid becomes a directory name: refuse anything that could step outside the runtime directory.</summary>
    public static bool IsSafeUid(string uid) =>
        uid.Length is > 0 and <= 64 && uid.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.') && uid is not "." and not "..";

    public VmRecord? ReadRecord()
    {
        try
        {
            using var stream = File.OpenRead(RecordFile);
            return JsonSerializer.Deserialize(stream, VmRecordJson.Default.VmRecord);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            return null;
        }
        catch (JsonException)
        {
            return null; // half-written by a crash mid-write; treated like no record
        }
    }

    /// <summary>Writes atomically (temp file + rename) so a crash never leaves half a record.</summary>
    public void WriteRecord(VmRecord record)
    {
        Directory.CreateDirectory(Path);
        var temp = RecordFile + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(record, VmRecordJson.Default.VmRecord));
        File.Move(temp, RecordFile, overwrite: true);
    }

    /// <summary>The pid QEMU wrote, or null.</summary>
    public int? ReadPidFile()
    {
        try
        {
            return int.TryParse(File.ReadAllText(PidFile).Trim(), out var pid) ? pid : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    public void DeleteRuntimeFiles()
    {
        File.Delete(QmpSocket);
        File.Delete(PidFile);
    }
}

/// <summary>vm.json: what the driver knows of one VM across daemon restarts.</summary>
internal sealed record VmRecord
{
    public required string Uid { get; init; }

    public required string Namespace { get; init; }

    public required string Id { get; init; }

    /// <summary>The daemonized QEMU's pid; null before it is known.</summary>
    public int? Pid { get; init; }

    public DateTimeOffset? StartedAt { get; init; }

    /// <summary>VmRuntimeInfo.Detail of this instance, e.g. "accel=tcg (kvm probe: ...)".</summary>
    public string? Detail { get; init; }

    /// <summary>Tap devices made for this VM (removed by cleanup even if the spec has changed since).</summary>
    public IReadOnlyList<string> Taps { get; init; } = [];

    /// <summary>True once StopAsync ended the process on purpose, so a missing process is not a crash.</summary>
    public bool Stopped { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(VmRecord))]
internal sealed partial class VmRecordJson : JsonSerializerContext;
