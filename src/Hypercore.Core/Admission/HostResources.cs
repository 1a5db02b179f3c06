using System.Globalization;

namespace Hypercore.Admission;

/// <summary>The host's memory and CPUs as the node sees them; tests inject their own.</summary>
public interface IHostResources
{
    /// <summary>Total memory in MiB.</summary>
    long MemoryMb { get; }

    int Cpus { get; }
}

/// <summary>
/// MemTotal of /proc/meminfo (in a pod this is still the host's memory: the hypervisors are meant to run outside the
/// pod's memory limit) and <see cref="Environment.ProcessorCount"/>.
/// </summary>
public sealed class ProcHostResources : IHostResources
{
    private readonly Lazy<long> _memory;

    public ProcHostResources(string meminfoPath = "/proc/meminfo")
    {
        _memory = new Lazy<long>(() => ReadMemTotalMb(meminfoPath));
    }

    public long MemoryMb => _memory.Value;

    public int Cpus => Environment.ProcessorCount;

    /// <summary>MemTotal in MiB, or 0 when the file cannot be read (then nothing is admitted and the reason says why).</summary>
    public static long ReadMemTotalMb(string path)
    {
        try
        {
            foreach (var line in File.ReadLines(path))
            {
                if (!line.StartsWith("MemTotal:", StringComparison.Ordinal))
                {
                    continue;
                }

                var parts = line["MemTotal:".Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length > 0 && long.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var kb))
                {
                    return kb / 1024;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }

        return 0;
    }
}
