using System.Globalization;

namespace Hypercore.Benchmarks.Machine;

/// <summary>The 1, 5 and 15 minute load averages of /proc/loadavg.</summary>
public sealed record LoadAverage(double One, double Five, double Fifteen)
{
    /// <summary>Parses "0.52 0.58 0.59 1/467 12345"; null when the text is not that.</summary>
    public static LoadAverage? Parse(string loadavg)
    {
        var parts = loadavg.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return parts.Length >= 3
            && double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var one)
            && double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var five)
            && double.TryParse(parts[2], NumberStyles.Float, CultureInfo.InvariantCulture, out var fifteen)
            ? new LoadAverage(one, five, fifteen)
            : null;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{One:0.00} {Five:0.00} {Fifteen:0.00}");
}

/// <summary>
/// Whether a run's numbers may be quoted: not when the machine was already busier than its CPUs at the start (the
/// 1-minute load average above the core count), because every wall-clock figure then measures the other work too.
/// The numbers are still printed; the verdict travels with them.
/// </summary>
public sealed record RunValidity(bool Valid, string Reason)
{
    public static RunValidity Decide(LoadAverage? atStart, int cores)
    {
        if (atStart is null)
        {
            return new RunValidity(false, "NOT VALID: the load average could not be read (/proc/loadavg), so nothing says the machine was quiet");
        }

        return atStart.One > cores
            ? new RunValidity(false, string.Create(CultureInfo.InvariantCulture,
                $"NOT VALID: 1-minute load average {atStart.One:0.00} at the start is above the {cores} cores; other work was competing for the CPU, re-run on a quiet machine"))
            : new RunValidity(true, string.Create(CultureInfo.InvariantCulture,
                $"valid: 1-minute load average {atStart.One:0.00} at the start, not above the {cores} cores"));
    }
}
