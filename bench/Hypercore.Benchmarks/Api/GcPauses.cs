using System.Diagnostics.Tracing;
using System.Globalization;

namespace Hypercore.Benchmarks.Api;

/// <summary>
/// Each GC's pause (suspension begin → restart end) and generation, from the runtime's own events in this process
/// (issue 15 goal 2: which collections make the Create tail).
/// </summary>
public sealed class GcPauses : EventListener
{
    private readonly List<(int Gen, double PauseMs)> _pauses = [];
    private DateTime _suspendAt;
    private DateTime _startAt;
    private readonly List<double> _suspendMs = [];
    private int _gen = -1;
    private int _reason = -1;
    private readonly List<string> _reasons = [];
    private volatile bool _on;
    private readonly Dictionary<string, int> _types = [];

    // HYPERCORE_BENCH_GC_DETAIL=1 (issue 15, creates3): per collection, the mark phases' times and bytes, the bytes
    // promoted, and the thread that ran it, printed to stderr, to tell copying, card marking and root marking apart.
    private static readonly bool Detail = Environment.GetEnvironmentVariable("HYPERCORE_BENCH_GC_DETAIL") == "1";
    private readonly List<string> _detail = [];
    private readonly System.Text.StringBuilder _current = new();
    private DateTime _phaseAt;

    public void Start() => _on = true;

    public void Stop() => _on = false;

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == "Microsoft-Windows-DotNETRuntime")
        {
            EnableEvents(eventSource, Environment.GetEnvironmentVariable("HYPERCORE_BENCH_ALLOC_TYPES") == "1" ? EventLevel.Verbose : EventLevel.Informational, (EventKeywords)0x1); // GC (Verbose: allocation ticks)
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        switch (eventData.EventName)
        {
            case "GCAllocationTick_V4" when _on:
                lock (_types)
                {
                    var type = (Convert.ToInt32(eventData.Payload![1], CultureInfo.InvariantCulture) == 1 ? "LOH " : "") + (eventData.Payload![5] as string ?? "?");
                    _types[type] = _types.GetValueOrDefault(type) + 1;
                }

                break;
            case "GCSuspendEEBegin_V1":
                _suspendAt = eventData.TimeStamp;
                _gen = -1;
                _current.Clear();
                break;
            case "GCMarkWithType" when Detail:
                // Type: 0 stack roots, 1 finalization queue, 2 handles, 3 older generations (cards), 4 sized refs, 5 overflow.
                _current.Append(CultureInfo.InvariantCulture, $" mark{eventData.Payload![2]}={(eventData.TimeStamp - _phaseAt).TotalMilliseconds:0.0}ms/{Convert.ToInt64(eventData.Payload![3], CultureInfo.InvariantCulture) / 1024}KB");
                _phaseAt = eventData.TimeStamp;
                break;
            case "GCEnd_V1" when Detail:
                _current.Append(CultureInfo.InvariantCulture, $" after-mark={(eventData.TimeStamp - _phaseAt).TotalMilliseconds:0.0}ms end={(eventData.TimeStamp - _startAt).TotalMilliseconds:0.0}ms");
                break;
            case "GCHeapStats_V2" when Detail:
                var p = eventData.Payload!;
                _current.Append(CultureInfo.InvariantCulture, $" promoted0={Convert.ToInt64(p[1], CultureInfo.InvariantCulture) / 1024}KB promoted1={Convert.ToInt64(p[3], CultureInfo.InvariantCulture) / 1024}KB gen1size={Convert.ToInt64(p[2], CultureInfo.InvariantCulture) / 1048576}MB gen2size={Convert.ToInt64(p[4], CultureInfo.InvariantCulture) / 1048576}MB pinned={p[9]} handles={p[11]}");
                break;
            case "GCStart_V2":
                _gen = Convert.ToInt32(eventData.Payload![1], CultureInfo.InvariantCulture); // Depth
                _startAt = eventData.TimeStamp;
                _reason = Convert.ToInt32(eventData.Payload![2], CultureInfo.InvariantCulture); // 0 small alloc, 4 large (LOH) alloc, 5/6 out of space
                _phaseAt = eventData.TimeStamp;
                if (Detail)
                {
                    _current.Append(CultureInfo.InvariantCulture, $" gen{_gen} tid={eventData.OSThreadId} suspend={(_startAt - _suspendAt).TotalMilliseconds:0.0}ms");
                }

                break;
            case "GCRestartEEEnd_V1" when _suspendAt != default:
                if (_on)
                {
                    lock (_pauses)
                    {
                        _pauses.Add((_gen, (eventData.TimeStamp - _suspendAt).TotalMilliseconds));
                        _reasons.Add($"gen{_gen}:reason{_reason}");
                        _suspendMs.Add(_startAt == default ? 0 : (_startAt - _suspendAt).TotalMilliseconds);
                        if (Detail)
                        {
                            _detail.Add($"{_suspendAt:HH:mm:ss.fff} {(eventData.TimeStamp - _suspendAt).TotalMilliseconds:0.0}ms{_current}");
                        }
                    }
                }

                _suspendAt = default;
                _startAt = default;
                break;
        }
    }

    public void Report(Dictionary<string, double> result)
    {
        lock (_pauses)
        {
            for (var gen = 0; gen <= 2; gen++)
            {
                var mine = _pauses.Where(p => p.Gen == gen).Select(p => p.PauseMs).ToArray();
                result[$"gc{gen}_n"] = mine.Length;
                result[$"gc{gen}_pause_ms_total"] = mine.Sum();
                result[$"gc{gen}_pause_ms_max"] = mine.Length == 0 ? 0 : mine.Max();
            }
        }

        lock (_pauses)
        {
            result["gc_suspend_ms_total"] = _suspendMs.Sum();
            Console.Error.WriteLine("gc reasons: " + string.Join(' ', _reasons));
            foreach (var line in _detail)
            {
                Console.Error.WriteLine("gc detail: " + line);
            }
        }

        lock (_types)
        {
            foreach (var (type, ticks) in _types.OrderByDescending(t => t.Value).Where((t, i) => i < 25 || t.Key.StartsWith("LOH ", StringComparison.Ordinal)))
            {
                Console.Error.WriteLine($"alloc ticks (~100 KB each) {ticks,6} {type}");
            }
        }

        var eph = GC.GetGCMemoryInfo(GCKind.Ephemeral);
        result["gc_last_ephemeral_promoted_mb"] = eph.PromotedBytes / 1048576.0;
        result["gc_last_ephemeral_gen"] = eph.Generation;
        var info = GC.GetGCMemoryInfo();
        result["gc_heap_mb"] = info.HeapSizeBytes / 1048576.0;
    }
}
