using System.Globalization;

namespace Hypercore.Benchmarks.Report;

public enum Verdict
{
    /// <summary>No goal for this figure: shown for context.</summary>
    Info,
    Pass,
    Miss,

    /// <summary>Could not be measured (e.g. no QEMU); the reason is in the method column.</summary>
    Skipped,
}

/// <summary>A goal: "≤ 1.05×" style text and the test applied to the measured value.</summary>
public sealed record Goal(string Text, Func<double, bool> IsMet)
{
    public static Goal AtMost(double limit, string unit) => new($"≤ {Fmt.Number(limit)} {unit}".TrimEnd(), v => v <= limit);

    public static Goal AtLeast(double limit, string unit) => new($"≥ {Fmt.Number(limit)} {unit}".TrimEnd(), v => v >= limit);
}

/// <summary>One line of the results table.</summary>
public sealed record ResultRow(string Benchmark, string Metric, double Value, string Unit, string Method)
{
    public Goal? Goal { get; init; }

    /// <summary>The bare-hypervisor (or other reference) figure beside it, already formatted with its unit.</summary>
    public string Reference { get; init; } = "";

    /// <summary>Set for a row that could not be measured.</summary>
    public string? SkipReason { get; init; }

    public Verdict Verdict =>
        SkipReason is not null ? Verdict.Skipped :
        Goal is null ? Verdict.Info :
        Goal.IsMet(Value) ? Verdict.Pass : Verdict.Miss;

    public string Measured => SkipReason is not null ? "—" : $"{Fmt.Number(Value)} {Unit}".TrimEnd();

    public static ResultRow Skipped(string benchmark, string metric, string reason, Goal? goal = null) =>
        new(benchmark, metric, double.NaN, "", reason) { SkipReason = reason, Goal = goal };
}

public static class Fmt
{
    /// <summary>Three significant digits, no exponent: 1.05, 12.3, 5,120.</summary>
    public static string Number(double v)
    {
        if (double.IsNaN(v))
        {
            return "—";
        }

        var abs = Math.Abs(v);
        if (v == Math.Floor(v) && abs < 1e15)
        {
            return v.ToString("#,0", CultureInfo.InvariantCulture);
        }

        var format = abs >= 1000 ? "#,0" : abs >= 100 ? "0" : abs >= 10 ? "0.#" : abs >= 1 ? "0.0#" : "0.0##";
        return v.ToString(format, CultureInfo.InvariantCulture);
    }

    public static string Ms(TimeSpan t) => $"{Number(t.TotalMilliseconds)} ms";

    public static string Seconds(TimeSpan t) => $"{Number(t.TotalSeconds)} s";
}
