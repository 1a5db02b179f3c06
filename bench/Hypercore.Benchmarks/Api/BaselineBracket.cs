using System.Globalization;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;

namespace Hypercore.Benchmarks.Api;

/// <summary>
/// Issue 15 goal 2 (sixteenth pass): the empty-call baseline taken twice, so that the Creates' window is bracketed. The
/// first is as before: the server that then takes the Creates, fresh, on an empty store, just before them. The second
/// comes after them on a fresh server of the same binary and settings with an empty state directory of its own, i.e. in
/// the same conditions as the first; only the time differs. The ratio is taken against the mean of the two.
/// </summary>
/// <remarks>
/// Why: on a shared VM the empty-call rate of one binary moved between 10,600 and 19,300 calls/s in runs minutes apart
/// (fifteenth pass), and one window before the Creates read that drift as part of the ratio. A drift that is linear in
/// time over the ~30 s of a run cancels in the mean of a window before and one after. The second baseline does not run on
/// the first server, which then holds the run's records: their background (the node polls each Running VM) would make
/// the empty call dearer and flatter the ratio (abab14, fourteenth pass). The ratio to the first baseline alone is
/// reported beside it (<c>ratio_before</c>), and both baselines are in the row's text.
/// </remarks>
public static class BaselineBracket
{
    /// <summary>The keys of the second baseline: those of <see cref="LoadGenerator.AddBaseline"/> with this prefix.</summary>
    public const string AfterPrefix = "base_after_";

    /// <summary>
    /// The second window: the empty calls against the fresh server at <paramref name="grpcAddress"/> (its CPU read from
    /// <paramref name="serverPid"/>, this process when null), added to <paramref name="result"/> with <see cref="AfterPrefix"/>,
    /// then <see cref="Report"/>.
    /// </summary>
    public static async Task MeasureAfterAsync(Dictionary<string, double> result, BenchOptions options, string grpcAddress, int clients, int? serverPid = null)
    {
        var (health, cpu, window) = await LoadGenerator.DriveAsync(
            grpcAddress, LoadGenerator.CallHealth, clients, options.ApiDuration, kernel: null, "health", TimeSpan.FromMinutes(5) + 4 * options.ApiDuration, serverPid: serverPid);
        LoadGenerator.AddBaseline(result, health, cpu, window, AfterPrefix);
        Report(result);
    }

    /// <summary>The baseline a ratio is taken against: the mean of the two windows, or the first alone when there is no second.</summary>
    public static double Rate(IReadOnlyDictionary<string, double> r) =>
        r.TryGetValue(AfterPrefix + "rate", out var after) && after > 0 ? (r["base_rate"] + after) / 2 : r["base_rate"];

    /// <summary>Creates/s ÷ <see cref="Rate"/>; NaN without a baseline.</summary>
    public static double Ratio(IReadOnlyDictionary<string, double> r) => Rate(r) is > 0 and var rate ? r["rate"] / rate : double.NaN;

    /// <summary>Creates/s ÷ the first baseline alone (the method until the fifteenth pass).</summary>
    public static double RatioBefore(IReadOnlyDictionary<string, double> r) => r["base_rate"] > 0 ? r["rate"] / r["base_rate"] : double.NaN;

    /// <summary>Adds <c>base_mean_rate</c>, <c>ratio</c> and <c>ratio_before</c> to a child's result.</summary>
    public static void Report(Dictionary<string, double> r)
    {
        r["base_mean_rate"] = Rate(r);
        r["ratio"] = Ratio(r);
        r["ratio_before"] = RatioBefore(r);
    }

    /// <summary>A ratio row's reference column: the baseline's mean and its two windows ("before … after …").</summary>
    public static string Reference(IReadOnlyDictionary<string, double> r) =>
        r.TryGetValue(AfterPrefix + "rate", out var after)
            ? $"baseline {Fmt.Number(Rate(r))} /s: before {Fmt.Number(r["base_rate"])}, after {Fmt.Number(after)}"
            : $"baseline {Fmt.Number(r["base_rate"])} /s";

    /// <summary>What a row's method text says of the baseline: both windows, their mean, and the ratio to the first alone.</summary>
    public static string Text(IReadOnlyDictionary<string, double> r, string server) =>
        !r.TryGetValue(AfterPrefix + "rate", out var after)
            ? $"baseline {Fmt.Number(r["base_rate"])} empty calls/s on the same server (p99 {Fmt.Number(r["base_p99_ms"])} ms)"
            : string.Create(CultureInfo.InvariantCulture,
                $"baseline {Fmt.Number(Rate(r))} empty calls/s, the mean of {Fmt.Number(r["base_rate"])} on {server} before the Creates (p99 {Fmt.Number(r["base_p99_ms"])} ms, " +
                $"{Fmt.Number(r.GetValueOrDefault("base_cpu_us_per"))} µs per call) and {Fmt.Number(after)} on a fresh one after them (p99 {Fmt.Number(r.GetValueOrDefault(AfterPrefix + "p99_ms"))} ms, " +
                $"{Fmt.Number(r.GetValueOrDefault(AfterPrefix + "cpu_us_per"))} µs per call); {Fmt.Number(RatioBefore(r))} × the one before alone");
}
