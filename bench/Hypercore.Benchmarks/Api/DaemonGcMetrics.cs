using System.Globalization;

namespace Hypercore.Benchmarks.Api;

/// <summary>
/// The shipped daemon's own GC figures (issue 15, survivors): its Prometheus endpoint exports the runtime's
/// <c>System.Runtime</c> meter, so collections per generation, the total pause and the bytes allocated can be read
/// from outside the Native AOT process, where no EventListener of the benchmark runs. Counters only: the caller
/// takes two readings and divides the difference by the Creates between them.
/// </summary>
internal static class DaemonGcMetrics
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    /// <summary>gen0/gen1/gen2 collections, pause seconds and allocated bytes so far; null when the endpoint does not answer.</summary>
    public static async Task<Dictionary<string, double>?> ReadAsync(string httpAddress)
    {
        string text;
        try
        {
            text = await Http.GetStringAsync(httpAddress + "/metrics");
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            await Console.Error.WriteLineAsync($"api-daemon: no GC metrics from {httpAddress}/metrics ({ex.Message})");
            return null;
        }

        return Parse(text);
    }

    /// <summary>The figures <see cref="ReadAsync"/> returns, from the text of a Prometheus scrape.</summary>
    internal static Dictionary<string, double> Parse(string text)
    {
        var values = new Dictionary<string, double>();
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith('#'))
            {
                continue;
            }

            var key = line switch
            {
                _ when line.StartsWith("dotnet_gc_collections_total{", StringComparison.Ordinal) && line.Contains("gc_heap_generation=\"gen0\"", StringComparison.Ordinal) => "gen0",
                _ when line.StartsWith("dotnet_gc_collections_total{", StringComparison.Ordinal) && line.Contains("gc_heap_generation=\"gen1\"", StringComparison.Ordinal) => "gen1",
                _ when line.StartsWith("dotnet_gc_collections_total{", StringComparison.Ordinal) && line.Contains("gc_heap_generation=\"gen2\"", StringComparison.Ordinal) => "gen2",
                _ when line.StartsWith("dotnet_gc_pause_time_seconds_total", StringComparison.Ordinal) => "pause_s",
                _ when line.StartsWith("dotnet_gc_heap_total_allocated_bytes_total", StringComparison.Ordinal) => "allocated",
                _ when line.StartsWith("dotnet_gc_last_collection_heap_size_bytes{", StringComparison.Ordinal) && GenerationLabel(line) is { } gen => "heap_" + gen,
                // Reconcile passes so far, every series (result labels) summed: passes per Create include the polls.
                _ when line.StartsWith("hypercore_reconcile_duration_seconds_count", StringComparison.Ordinal) => Passes,
                // The records by observed phase (hypercore.microvms): the benchmark node's Running load counts them until all are Running.
                _ when line.StartsWith("hypercore_microvms{", StringComparison.Ordinal) && PhaseLabel(line) is { } phase => PhaseKey(phase),
                _ => null,
            };
            if (key is null)
            {
                continue;
            }

            // "name{labels} value [timestamp]": the value follows the closing brace (or the name).
            var rest = line[(line.LastIndexOf('}') is var brace and >= 0 ? brace + 1 : line.IndexOf(' ', StringComparison.Ordinal))..].Trim();
            var value = rest.Split(' ')[0];
            if (double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
            {
                values[key] = key == Passes ? values.GetValueOrDefault(key) + v : v;
            }
        }

        return values;
    }

    /// <summary>The key of the reconcile passes so far (hypercore.reconcile.duration's count, all series).</summary>
    public const string Passes = "passes";

    /// <summary>The key <see cref="Parse"/> gives the number of records in a phase ("Running": "phase_Running").</summary>
    public static string PhaseKey(string phase) => "phase_" + phase;

    /// <summary>
    /// The heap after the last collection, all generations (bytes; 0 before the first): what the records keep alive plus
    /// the older garbage no collection has reached yet, an upper bound of the live bytes seen from outside the process.
    /// </summary>
    public static double HeapAfterLastCollection(IReadOnlyDictionary<string, double> values) =>
        values.Where(kv => kv.Key.StartsWith("heap_", StringComparison.Ordinal)).Sum(kv => kv.Value);

    private static string? GenerationLabel(string line) => Label(line, "gc_heap_generation=\"");

    private static string? PhaseLabel(string line) => Label(line, "phase=\"");

    private static string? Label(string line, string label)
    {
        var start = line.IndexOf(label, StringComparison.Ordinal);
        if (start < 0)
        {
            return null;
        }

        start += label.Length;
        var end = line.IndexOf('"', start);
        return end < 0 ? null : line[start..end];
    }

    /// <summary>
    /// Adds daemon_window_* keys: gen0/gen1/gen2 collections and their pause in the measured window, and the mean pause
    /// per collection (issue 15, gctail: one blocking gen2 stops every in-flight Create at once, ~64 calls per
    /// collection, so a few of them in the window are enough to set the p99).
    /// </summary>
    public static void ReportWindow(Dictionary<string, double> result, Dictionary<string, double>? start, Dictionary<string, double>? end)
    {
        if (start is null || end is null)
        {
            return;
        }

        double Delta(string key) => end.GetValueOrDefault(key) - start.GetValueOrDefault(key);
        // The meter counts each collection once, under the generation it collected (not GC.CollectionCount's sums).
        var collections = Delta("gen0") + Delta("gen1") + Delta("gen2");
        result["daemon_window_gen0"] = Delta("gen0");
        result["daemon_window_gen1"] = Delta("gen1");
        result["daemon_window_gen2"] = Delta("gen2");
        result["daemon_window_pause_ms"] = Delta("pause_s") * 1000;
        result["daemon_window_pause_ms_per_gc"] = collections == 0 ? 0 : Delta("pause_s") * 1000 / collections;
    }

    /// <summary>"; daemon GC in the window: …" for a row's method text, or "" when the keys are missing.</summary>
    public static string WindowText(IReadOnlyDictionary<string, double> r) =>
        r.TryGetValue("daemon_window_gen2", out var gen2) && r.TryGetValue("daemon_window_gen1", out var gen1) &&
        r.TryGetValue("daemon_window_gen0", out var gen0) && r.TryGetValue("daemon_window_pause_ms", out var pause) &&
        r.TryGetValue("daemon_window_pause_ms_per_gc", out var per)
            ? string.Create(CultureInfo.InvariantCulture,
                $"; daemon GC in the window: {gen0:0} gen0, {gen1:0} gen1, {gen2:0} gen2 collections, {pause:0} ms paused ({per:0.0} ms each)")
            : ApiThroughput.WindowText(r); // the in-process node: its JIT and passes in the window

    /// <summary>Adds daemon_gc* keys: collections, pause and allocation between the two readings, per Create where it says so.</summary>
    public static void Report(Dictionary<string, double> result, Dictionary<string, double>? before, Dictionary<string, double>? after, double creates)
    {
        if (before is null || after is null)
        {
            return;
        }

        double Delta(string key) => after.GetValueOrDefault(key) - before.GetValueOrDefault(key);
        result["daemon_gen0"] = Delta("gen0");
        result["daemon_gen1"] = Delta("gen1");
        result["daemon_gen2"] = Delta("gen2");
        result["daemon_gc_pause_ms"] = Delta("pause_s") * 1000;
        result["daemon_gc_pause_us_per"] = creates == 0 ? 0 : Delta("pause_s") * 1e6 / creates;
        result["daemon_alloc_kb_per"] = creates == 0 ? 0 : Delta("allocated") / 1024 / creates;
        result["passes_per_create"] = creates == 0 ? 0 : Delta(Passes) / creates;
    }
}
