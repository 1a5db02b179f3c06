namespace Hypercore.Daemon.Hosting;

/// <summary>This process's resident memory from /proc/self/status, for the daemon's own log lines (zero where there is no procfs).</summary>
internal readonly record struct ProcessMemory(long RssKb, long AnonKb)
{
    public double RssMb => RssKb / 1024.0;

    public double AnonMb => AnonKb / 1024.0;

    public static ProcessMemory Read()
    {
        long rss = 0, anon = 0;
        try
        {
            foreach (var line in File.ReadLines("/proc/self/status"))
            {
                if (line.StartsWith("VmRSS:", StringComparison.Ordinal)) rss = Kb(line);
                else if (line.StartsWith("RssAnon:", StringComparison.Ordinal)) anon = Kb(line);
            }
        }
        catch (IOException)
        {
            // not Linux procfs: zero
        }

        return new ProcessMemory(rss, anon);

        static long Kb(string line) => long.TryParse(line.AsSpan(line.IndexOf(':') + 1).Trim().TrimEnd("kB").Trim(), out var kb) ? kb : 0;
    }
}
