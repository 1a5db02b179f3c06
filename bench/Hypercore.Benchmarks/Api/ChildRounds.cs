using System.Globalization;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;

namespace Hypercore.Benchmarks.Api;

/// <summary>
/// Issue 15 goal 2 (twenty-third pass): a separate-process API row (vistarad, the benchmark node) from several runs of
/// its child, each a fresh server with its own baselines, instead of one. On the 2-core machines these run on, one
/// binary's ratio moved between 0.33 and 0.47 in runs minutes apart (bench/NOTES.md, s23), more than most changes it
/// is meant to judge; a single run could pass or miss the goal by luck.
/// </summary>
public static class ChildRounds
{
    /// <summary>
    /// The run whose ratio (<see cref="BaselineBracket.Ratio"/>) is the median of <paramref name="runs"/> (for an even
    /// count the lower of the two middle ones: the row never rounds up), so that every figure of the row comes from one
    /// run and agrees with the others.
    /// </summary>
    public static Dictionary<string, double> Median(IReadOnlyList<Dictionary<string, double>> runs)
    {
        if (runs.Count == 0)
        {
            throw new ArgumentException("no runs", nameof(runs));
        }

        var ordered = runs.OrderBy(r => double.IsNaN(BaselineBracket.Ratio(r)) ? double.NegativeInfinity : BaselineBracket.Ratio(r)).ToList();
        return ordered[(ordered.Count - 1) / 2];
    }

    /// <summary>
    /// What a row's method text adds about the rounds: nothing for one run; otherwise that the figures are the median
    /// run's, and every run's ratio, Create p99 and server CPU per Create, in run order.
    /// </summary>
    public static string Text(IReadOnlyList<Dictionary<string, double>> runs)
    {
        if (runs.Count < 2)
        {
            return "";
        }

        string List(Func<Dictionary<string, double>, double> value) => string.Join(", ", runs.Select(r => Fmt.Number(value(r))));
        return string.Create(CultureInfo.InvariantCulture,
            $"; the figures are those of the run with the median ratio of {runs.Count} (each a fresh server with its own two baselines, one after the other): " +
            $"ratios {List(BaselineBracket.Ratio)}; Create p99 {List(r => r["p99_ms"])} ms; server CPU per Create {List(r => r["cpu_us_per"])} µs");
    }

    /// <summary>
    /// Runs <paramref name="run"/> <paramref name="rounds"/> times, one after the other. With more than one round and a
    /// <paramref name="label"/>, logs each run's ratio, Creates and errors as it ends (a run whose Creates failed is not
    /// a measurement, and the row shows only the median run's count).
    /// </summary>
    public static async Task<List<Dictionary<string, double>>> RunAsync(int rounds, Func<int, Task<Dictionary<string, double>>> run, string? label = null)
    {
        var runs = new List<Dictionary<string, double>>(rounds);
        for (var i = 1; i <= rounds; i++)
        {
            var result = await run(i);
            if (label is not null && rounds > 1)
            {
                BenchContext.Log(string.Create(CultureInfo.InvariantCulture,
                    $"api: {label}, run {i} of {rounds}: {Fmt.Number(BaselineBracket.Ratio(result))} ×, {result.GetValueOrDefault("count"):0} creates, {result.GetValueOrDefault("errors"):0} errors"));
            }

            runs.Add(result);
        }

        return runs;
    }

    /// <summary>
    /// <paramref name="name"/> under <paramref name="parent"/>, or the first of name-2, name-3, … that does not exist yet:
    /// each run of a row gets a server on an empty state directory, never the records of the run before it (which its
    /// reconciler would first resync, and whose ids the load generator's Creates would repeat).
    /// </summary>
    internal static string FreshDirectory(string parent, string name)
    {
        var path = Path.Combine(parent, name);
        for (var i = 2; Directory.Exists(path) || File.Exists(path); i++)
        {
            path = Path.Combine(parent, $"{name}-{i}");
        }

        return path;
    }
}
