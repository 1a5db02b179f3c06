using System.Collections.Concurrent;
using System.Globalization;
using System.Text.Json.Nodes;
using Hypercore.MicroVms;
using Hypercore.Store.Kubernetes.Client;
using Microsoft.Extensions.Logging;

namespace Hypercore.Store.Kubernetes;

/// <summary>
/// Writes core/v1 Events about MicroVMs (what <c>kubectl describe mvm</c> and <c>kubectl get events</c> show). A
/// repeat of the same reason and message for the same object bumps the count of the earlier Event with a merge
/// patch, as client-go's recorder does, instead of piling up new objects. Recording is best effort: a failure is
/// logged and never fails the status write that caused it.
/// </summary>
internal sealed partial class MicroVmEventRecorder
{
    private const int MaxRemembered = 1024;

    private readonly MicroVmApi _api;
    private readonly KubernetesStoreOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly ConcurrentDictionary<(string Uid, string Reason, string Message), (string Name, int Count)> _recent = new();
    private long _sequence;

    public MicroVmEventRecorder(MicroVmApi api, KubernetesStoreOptions options, TimeProvider time, ILogger log)
    {
        _api = api;
        _options = options;
        _time = time;
        _log = log;
    }

    /// <summary>The Event for a phase change, or null when the change is not worth one.</summary>
    internal static (string Type, string Reason, string Message)? ForPhaseChange(Phase from, MicroVmStatus to)
    {
        var ready = to.FindCondition(Conditions.Ready);
        var detail = ready is { Message.Length: > 0 } ? ready.Message : "";
        return to.Phase switch
        {
            Phase.Running when from == Phase.Paused => ("Normal", "Resumed", "the VM is running again"),
            Phase.Running => ("Normal", "Started", to.Pid is { } pid
                ? $"the VM is running (pid {pid}{(to.Runtime is { } rt ? ", " + rt : "")})"
                : "the VM is running"),
            Phase.Paused => ("Normal", "Paused", "the VM is paused"),
            Phase.Stopped => ("Normal", "Stopped", detail.Length > 0 ? detail : "the VM is stopped"),
            Phase.CrashLoopBackOff => ("Warning", "Crashed", detail),
            Phase.Failed when ready?.Reason is "Crashed" => ("Warning", "Crashed", detail),
            Phase.Failed => ("Warning", "Failed", ready is null ? "the VM failed" : $"{ready.Reason}: {detail}"),
            _ => null,
        };
    }

    public async Task RecordAsync(MicroVm vm, string type, string reason, string message, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        var key = (vm.Uid, reason, message);
        try
        {
            if (_recent.TryGetValue(key, out var earlier))
            {
                try
                {
                    var patch = new JsonObject
                    {
                        ["count"] = earlier.Count + 1,
                        ["lastTimestamp"] = now.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
                    };
                    await _api.PatchEventAsync(vm.Spec.Namespace, earlier.Name, patch, ct);
                    _recent[key] = (earlier.Name, earlier.Count + 1);
                    return;
                }
                catch (NotFoundException)
                {
                    // The earlier Event expired (events have a TTL); write a new one.
                }
            }

            // client-go names events <object>.<unix nanos in hex>; a per-process sequence in the sub-millisecond
            // digits keeps two events of one object within the same millisecond apart.
            var sequence = Interlocked.Increment(ref _sequence) % 1_000_000;
            var name = $"{vm.Spec.Id}.{(now.ToUnixTimeMilliseconds() * 1_000_000) + sequence:x}";
            var ev = new JsonObject
            {
                ["apiVersion"] = "v1",
                ["kind"] = "Event",
                ["metadata"] = new JsonObject { ["name"] = name, ["namespace"] = vm.Spec.Namespace },
                ["involvedObject"] = new JsonObject
                {
                    ["apiVersion"] = MicroVmResource.ApiVersion,
                    ["kind"] = MicroVmResource.Kind,
                    ["name"] = vm.Spec.Id,
                    ["namespace"] = vm.Spec.Namespace,
                    ["uid"] = vm.Uid,
                    ["resourceVersion"] = vm.ResourceVersion,
                },
                ["reason"] = reason,
                ["message"] = message,
                ["type"] = type,
                ["count"] = 1,
                ["firstTimestamp"] = KubernetesApiClient.FormatTime(now),
                ["lastTimestamp"] = KubernetesApiClient.FormatTime(now),
                ["source"] = new JsonObject { ["component"] = _options.EventComponent, ["host"] = _options.NodeName },
                ["reportingComponent"] = MicroVmResource.Group + "/" + _options.EventComponent,
                ["reportingInstance"] = _options.NodeName,
            };
            await _api.CreateEventAsync(vm.Spec.Namespace, ev, ct);
            if (_recent.Count >= MaxRemembered)
            {
                _recent.Clear();
            }

            _recent[key] = (name, 1);
        }
        catch (StoreException ex)
        {
            LogEventFailed(vm.Key, reason, ex.Message);
        }
    }

    [LoggerMessage(1302, LogLevel.Warning, "{Key}: could not record Kubernetes event {Reason}: {Message}")]
    private partial void LogEventFailed(VmKey key, string reason, string message);
}
