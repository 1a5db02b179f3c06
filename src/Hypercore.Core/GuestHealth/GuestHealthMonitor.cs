using System.Collections.Concurrent;
using System.Text.RegularExpressions;
using Hypercore.Drivers;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Store;
using Hypercore.Telemetry;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.GuestHealth;

/// <summary>
/// Runs the readiness and liveness probes of this node's running VMs (Kubernetes semantics, successThreshold 1).
/// Each <see cref="TickAsync"/> reads new console lines and starts the probes that are due; a TCP/HTTP probe runs in
/// the background and is collected on a later tick, so a slow guest never holds up the others. Readiness becomes the
/// GuestReady condition (written only when it changes); a liveness probe that fails FailureThreshold times in a row is
/// handed to the reconciler through <see cref="LivenessSignals"/>, which ends the VM and applies its restart policy.
/// Probe state is per boot (uid, boot time, pid): a restart starts afresh, from the console offset of the new boot.
/// </summary>
public sealed partial class GuestHealthMonitor : IDisposable
{
    public const string ReasonProbeSucceeded = "ProbeSucceeded";
    public const string ReasonProbeFailed = "ProbeFailed";
    public const string ReasonProbing = "Probing";
    public const string ReasonNotRunning = "NotRunning";

    /// <summary>Condition kept while a VM has a startup probe: True once it succeeded on this boot.</summary>
    public const string ConditionGuestStarted = "GuestStarted";

    /// <summary>The Ready reason of a VM ended because its startup probe gave up.</summary>
    public const string ReasonStartupProbeFailed = "StartupProbeFailed";

    private readonly IMicroVmStore _store;
    private readonly INetworkProbes _network;
    private readonly LivenessSignals _signals;
    private readonly TimeProvider _time;
    private readonly GuestHealthOptions _options;
    private readonly string _nodeName;
    private readonly DriverRegistry? _drivers;
    private readonly ProbeTargetPolicy _targets;
    private readonly ILogger<GuestHealthMonitor> _log;
    private readonly ConcurrentDictionary<VmKey, VmProbes> _vms = new();
    private readonly CancellationTokenSource _stopping = new();

    public GuestHealthMonitor(
        IMicroVmStore store, INetworkProbes network, LivenessSignals signals, TimeProvider time, IOptions<GuestHealthOptions> options,
        IOptions<ReconcilerOptions> reconciler, ILogger<GuestHealthMonitor> log, DriverRegistry? drivers = null,
        ProbeTargetPolicy? targets = null)
    {
        _store = store;
        _network = network;
        _signals = signals;
        _time = time;
        _options = options.Value;
        _nodeName = reconciler.Value.NodeName;
        _drivers = drivers;
        _targets = targets ?? ProbeTargetPolicy.For(_options, _nodeName);
        _log = log;
    }

    /// <summary>Raised when a liveness verdict was handed over, so the VM can be reconciled at once.</summary>
    public event Action<VmKey>? LivenessFailed;

    /// <summary>VMs being probed now (for tests and metrics).</summary>
    public int Tracked => _vms.Count;

    /// <summary>One pass over <paramref name="vms"/> (the informer's cache): read consoles, run due probes, write changes.</summary>
    public Task TickAsync(IReadOnlyList<MicroVm> vms, CancellationToken ct) =>
        // Four passes a second on a node without VMs: nothing to read or drop, and nothing allocated, so an idle
        // daemon's heap does not creep between collections (issue 15: this pass was most of its idle allocation).
        vms.Count == 0 && _vms.IsEmpty ? Task.CompletedTask : TickVmsAsync(vms, ct);

    private async Task TickVmsAsync(IReadOnlyList<MicroVm> vms, CancellationToken ct)
    {
        var seen = new HashSet<VmKey>();
        foreach (var vm in vms)
        {
            // Nothing to do (another node's record, or one without probes or conditions to clear): not seen, so any
            // state kept for it is dropped below, as a visit that found nothing would have dropped it.
            var work = Plan(vm);
            if (work == TickWork.None)
            {
                continue;
            }

            seen.Add(vm.Key);
            try
            {
                await TickOneAsync(vm, work, ct);
            }
            catch (Exception ex) when (ex is StoreException or IOException or UnauthorizedAccessException)
            {
                LogTickFailed(vm.Key, ex.Message);
            }
        }

        foreach (var key in _vms.Keys.Where(k => !seen.Contains(k)).ToList())
        {
            Drop(key);
        }
    }

    /// <summary>Does for <paramref name="vm"/> the work <see cref="Plan"/> named, and nothing else.</summary>
    private async Task TickOneAsync(MicroVm vm, TickWork work, CancellationToken ct)
    {
        if (work.HasFlag(TickWork.ClearGuestStarted))
        {
            await WriteAsync(vm.Key, v => v.Spec.StartupProbe is null
                ? v.Status with { Conditions = v.Status.Conditions.Where(c => c.Type != ConditionGuestStarted).ToList() }
                : null, ct);
        }

        if (!work.HasFlag(TickWork.Probe))
        {
            Drop(vm.Key);
            if (work.HasFlag(TickWork.ClearGuestReady))
            {
                await WriteAsync(vm.Key, v => v.Spec.ReadinessProbe is null
                    ? v.Status with { Conditions = v.Status.Conditions.Where(c => c.Type != Conditions.GuestReady).ToList() }
                    : null, ct);
            }

            if (work.HasFlag(TickWork.MarkNotReady))
            {
                var phase = vm.IsDeleting ? Phase.Deleting : vm.Status.Phase;
                await SetGuestReadyAsync(vm, null, ConditionStatus.False, ReasonNotRunning, $"the VM is {phase}", ct);
            }

            return;
        }

        var session = new Session(vm.Uid, vm.Status.BootTime, vm.Status.Pid, vm.Spec.ReadinessProbe, vm.Spec.LivenessProbe, vm.Spec.StartupProbe);
        if (!_vms.TryGetValue(vm.Key, out var probes) || probes.Session != session)
        {
            Drop(vm.Key);
            probes = new VmProbes(session, vm, _time.GetUtcNow(), ConsolePath(vm));
            _vms[vm.Key] = probes;
        }

        var now = _time.GetUtcNow();
        probes.ReadConsole(now);

        if (probes.Startup is { } startup && !probes.Started)
        {
            await StartupAsync(vm, probes, startup, now, ct);
            if (!probes.Started)
            {
                // Kubernetes: readiness and liveness are not run at all until the startup probe succeeded.
                if (probes.Readiness is { } waiting)
                {
                    await SetGuestReadyAsync(vm, probes.Session, ConditionStatus.False, ReasonProbing,
                        $"waiting for startup probe {startup.Spec.Describe()} (readiness probe {waiting.Spec.Describe()} runs once it succeeds)", ct);
                }

                return;
            }
        }

        if (probes.Readiness is { } r)
        {
            if (r.Collect(now) is { } result)
            {
                await ReadinessResultAsync(vm, probes, r, result, ct);
            }

            if (r.Regex is not null && r.Matched && r.Ready != true)
            {
                r.DueNow(now); // a console readiness line counts as soon as it is printed, not a period later
            }

            if (r.Due(now))
            {
                r.Start(now, RunAsync(vm, r, _stopping.Token));
                if (r.Collect(now) is { } immediate)
                {
                    await ReadinessResultAsync(vm, probes, r, immediate, ct);
                }
            }

            if (r.Ready is null && (vm.Status.FindCondition(Conditions.GuestReady) is not { } existing || !IsCurrent(existing, vm)))
            {
                // A new boot with no verdict yet: say what is awaited, so `vis get` shows more than a stale answer.
                var delay = r.Spec.InitialDelaySeconds > 0 ? $" (initial delay {r.Spec.InitialDelaySeconds} s)" : "";
                await SetGuestReadyAsync(vm, probes.Session, ConditionStatus.False, ReasonProbing, $"waiting for readiness probe {r.Spec.Describe()}{delay}", ct);
            }
        }

        if (probes.Liveness is { Fired: false } l)
        {
            var result = l.Collect(now);
            if (result is null && l.Due(now))
            {
                l.Start(now, RunAsync(vm, l, _stopping.Token));
                result = l.Collect(now);
            }

            if (result is { } verdict)
            {
                LivenessResult(vm, probes, l, verdict);
            }
        }
    }

    private async Task StartupAsync(MicroVm vm, VmProbes probes, ProbeState s, DateTimeOffset now, CancellationToken ct)
    {
        if (s.Fired)
        {
            return; // the verdict was handed to the reconciler; this boot is ending
        }

        var describe = s.Spec.Describe();
        var result = s.Collect(now);
        if (result is null)
        {
            if (s.Regex is not null && s.Matched)
            {
                s.DueNow(now); // a console line counts as soon as it is printed
            }

            if (s.Due(now))
            {
                s.Start(now, RunAsync(vm, s, _stopping.Token));
                result = s.Collect(now);
            }
        }

        if (result is not { } r)
        {
            if (vm.Status.FindCondition(ConditionGuestStarted) is not { } known || !IsCurrent(known, vm))
            {
                var delay = s.Spec.InitialDelaySeconds > 0 ? $" (initial delay {s.Spec.InitialDelaySeconds} s)" : "";
                await SetConditionAsync(vm, probes.Session, ConditionGuestStarted, ConditionStatus.False, ReasonProbing, $"waiting for startup probe {describe}{delay}", ct);
            }

            return;
        }

        if (r.Success)
        {
            probes.Started = true;
            LogStarted(vm.Key, describe, (now - probes.StartedAt).TotalSeconds, r.Message);
            await SetConditionAsync(vm, probes.Session, ConditionGuestStarted, ConditionStatus.True, ReasonProbeSucceeded, r.Message, ct);
            return;
        }

        s.Failures++;
        if (s.Failures < s.Spec.FailureThreshold)
        {
            await SetConditionAsync(vm, probes.Session, ConditionGuestStarted, ConditionStatus.False, ReasonProbing,
                $"startup probe {describe} has not succeeded yet: {r.Message}", ct);
            return;
        }

        s.Fired = true;
        var message = $"startup probe {describe} failed {s.Failures} times in a row: {r.Message}";
        LogStartupFailed(vm.Key, message, vm.Spec.RestartPolicy);
        await SetConditionAsync(vm, probes.Session, ConditionGuestStarted, ConditionStatus.False, ReasonProbeFailed, message, ct);
        _signals.Report(vm.Key, new LivenessFailure(probes.Session.Uid, probes.Session.BootTime, describe, message, ReasonStartupProbeFailed));
        LivenessFailed?.Invoke(vm.Key);
    }

    /// <summary>Sets a condition of this boot (not GuestReady, which has its times), if the record is still on the same boot.</summary>
    private Task SetConditionAsync(MicroVm seen, Session session, string type, ConditionStatus status, string reason, string message, CancellationToken ct)
    {
        if (seen.Status.FindCondition(type) is { } known && known.Status == status && known.Reason == reason && known.Message == message && IsCurrent(known, seen))
        {
            return Task.CompletedTask;
        }

        return WriteAsync(seen.Key, vm =>
        {
            if (vm.Uid != session.Uid || vm.Status.BootTime != session.BootTime || vm.Status.Phase != Phase.Running)
            {
                return null;
            }

            var now = _time.GetUtcNow();
            var old = vm.Status.FindCondition(type);
            if (old is not null && old.Status == status && old.Reason == reason && old.Message == message && IsCurrent(old, vm))
            {
                return null;
            }

            var conditions = Conditions.Set(vm.Status.Conditions, type, status, reason, message, vm.Generation, now);
            if (old is not null && !IsCurrent(old, vm))
            {
                conditions = conditions.Select(c => c.Type == type ? c with { LastTransitionTime = now } : c).ToList();
            }

            return vm.Status with { Conditions = conditions };
        }, ct);
    }

    /// <summary>Whether a stored GuestReady condition speaks about the current boot.</summary>
    private static bool IsCurrent(Condition c, MicroVm vm) => vm.Status.BootTime is not { } boot || c.LastTransitionTime >= boot;

    private async Task ReadinessResultAsync(MicroVm vm, VmProbes probes, ProbeState r, ProbeResult result, CancellationToken ct)
    {
        var describe = r.Spec.Describe();
        if (result.Success)
        {
            r.Failures = 0;
            var first = r.Ready != true;
            r.Ready = true;
            if (first)
            {
                var since = (_time.GetUtcNow() - probes.StartedAt).TotalSeconds;
                LogReady(vm.Key, describe, since, result.Message);
            }

            await SetGuestReadyAsync(vm, probes.Session, ConditionStatus.True, ReasonProbeSucceeded, result.Message, ct);
            return;
        }

        r.Failures++;
        if (r.Ready == true && r.Failures < r.Spec.FailureThreshold)
        {
            return; // still ready until the threshold is reached
        }

        if (r.Ready == true)
        {
            LogNotReady(vm.Key, describe, r.Failures, result.Message);
        }

        r.Ready = false;
        var message = r.Failures >= r.Spec.FailureThreshold && r.EverReady
            ? $"readiness probe {describe} failed {r.Failures} times: {result.Message}"
            : $"readiness probe {describe}: {result.Message}";
        await SetGuestReadyAsync(vm, probes.Session, ConditionStatus.False, ReasonProbeFailed, message, ct);
    }

    private void LivenessResult(MicroVm vm, VmProbes probes, ProbeState l, ProbeResult result)
    {
        if (result.Success)
        {
            l.Failures = 0;
            return;
        }

        l.Failures++;
        LogLivenessFailure(vm.Key, l.Spec.Describe(), l.Failures, l.Spec.FailureThreshold, result.Message);
        if (l.Failures < l.Spec.FailureThreshold)
        {
            return;
        }

        l.Fired = true;
        var kind = l.Spec.Console is not null ? "console" : l.Spec.TcpSocket is not null ? "tcp" : "http";
        HypercoreTelemetry.LivenessFailures.Add(1, new KeyValuePair<string, object?>("probe", kind));
        var message = $"liveness probe {l.Spec.Describe()} failed {l.Failures} times in a row: {result.Message}";
        LogLivenessFailed(vm.Key, message, vm.Spec.RestartPolicy);
        _signals.Report(vm.Key, new LivenessFailure(probes.Session.Uid, probes.Session.BootTime, l.Spec.Describe(), message));
        LivenessFailed?.Invoke(vm.Key);
    }

    private Task<ProbeResult> RunAsync(MicroVm vm, ProbeState probe, CancellationToken ct)
    {
        var spec = probe.Spec;
        if (spec.Console is { } console)
        {
            return Task.FromResult(probe.ConsoleVerdict(console));
        }

        var (address, problem) = _targets.Resolve(vm);
        if (address is null)
        {
            return Task.FromResult(ProbeResult.Fail(problem!));
        }

        var timeout = TimeSpan.FromSeconds(spec.TimeoutSeconds);
        return spec.HttpGet is { } http
            ? _network.HttpGetAsync(address, http.Port, http.Path, timeout, ct)
            : _network.TcpAsync(address, spec.TcpSocket!.Port, timeout, ct);
    }

    /// <summary>Sets GuestReady, the ready time and (once per VM) Create→ready, if the record is still on the same boot.</summary>
    private Task SetGuestReadyAsync(MicroVm seen, Session? session, ConditionStatus status, string reason, string message, CancellationToken ct)
    {
        // The informer's copy is current enough to tell "nothing to write" without asking the store.
        if (seen.Status.FindCondition(Conditions.GuestReady) is { } known && known.Status == status && known.Reason == reason &&
            known.Message == message && IsCurrent(known, seen))
        {
            return Task.CompletedTask;
        }

        return WriteAsync(seen.Key, vm =>
        {
            if (session is { } s && (vm.Uid != s.Uid || vm.Status.BootTime != s.BootTime || vm.Status.Phase != Phase.Running))
            {
                return null; // restarted or stopped meanwhile: this verdict is about a boot that is gone
            }

            if (session is null && vm.Status.Phase == Phase.Running && !vm.IsDeleting)
            {
                return null; // "not running" seen in a stale copy: it runs again, and its probes will say how it is
            }

            var now = _time.GetUtcNow();
            var old = vm.Status.FindCondition(Conditions.GuestReady);
            if (old is not null && old.Status == status && old.Reason == reason && old.Message == message && IsCurrent(old, vm))
            {
                return null;
            }

            var next = vm.Status with
            {
                Conditions = Conditions.Set(vm.Status.Conditions, Conditions.GuestReady, status, reason, message, vm.Generation, now),
            };
            if (status == ConditionStatus.True && old is not { Status: ConditionStatus.True })
            {
                next = next with { GuestReadyTime = now };
            }

            // A restarted-boot condition must transition even if the old one said the same, so its time is this boot's.
            if (old is not null && !IsCurrent(old, vm))
            {
                next = next with
                {
                    Conditions = next.Conditions.Select(c => c.Type == Conditions.GuestReady ? c with { LastTransitionTime = now } : c).ToList(),
                };
            }

            if (status == ConditionStatus.True && vm.Status.GuestReadySeconds is null)
            {
                var seconds = Math.Max(0, (now - vm.CreatedAt).TotalSeconds);
                next = next with { GuestReadySeconds = Math.Round(seconds, 3) };
                HypercoreTelemetry.GuestReadyTime.Record(seconds, new KeyValuePair<string, object?>("provider", vm.Spec.Provider));
                LogFirstReady(vm.Key, seconds);
            }

            return next;
        }, ct);
    }

    private async Task WriteAsync(VmKey key, Func<MicroVm, MicroVmStatus?> change, CancellationToken ct)
    {
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var vm = await _store.GetAsync(key, ct);
            if (vm is null || change(vm) is not { } next || next == vm.Status)
            {
                return;
            }

            try
            {
                await _store.UpdateStatusAsync(key, next, vm.ResourceVersion, ct);
                return;
            }
            catch (ConflictException)
            {
                // The reconciler wrote meanwhile: read again and re-apply (the change is computed from the new record).
            }
        }
    }

    private string? ConsolePath(MicroVm vm)
    {
        if (vm.Status.ConsoleLogPath is { Length: > 0 } path)
        {
            return path;
        }

        return _drivers is not null && _drivers.TryGet(vm.Spec.Provider, out var driver) ? driver.ConsoleLogPath(vm) : null;
    }

    private void Drop(VmKey key) => _vms.TryRemove(key, out _);

    public void Dispose()
    {
        _stopping.Cancel();
        _stopping.Dispose();
    }

    /// <summary>What identifies one boot's probing: a change to any part starts the probes afresh.</summary>
    private sealed record Session(string Uid, DateTimeOffset? BootTime, int? Pid, ProbeSpec? Readiness, ProbeSpec? Liveness, ProbeSpec? Startup);

    /// <summary>The probes of one boot of one VM, and the console they share.</summary>
    private sealed class VmProbes
    {
        private readonly ConsoleTail? _console;

        public VmProbes(Session session, MicroVm vm, DateTimeOffset now, string? consolePath)
        {
            Session = session;
            StartedAt = vm.Status.BootTime is { } boot && boot <= now ? boot : now;
            Readiness = session.Readiness is { } r ? new ProbeState(r, StartedAt, liveness: false) : null;
            Liveness = session.Liveness is { } l ? new ProbeState(l, StartedAt, liveness: true) : null;
            Startup = session.Startup is { } st ? new ProbeState(st, StartedAt, liveness: false) : null;
            Started = Startup is null ||
                (vm.Status.FindCondition(ConditionGuestStarted) is { Status: ConditionStatus.True } started &&
                 vm.Status.BootTime is { } bootedAt && started.LastTransitionTime >= bootedAt); // recorded before a daemon restart
            if ((Readiness?.Regex ?? Liveness?.Regex ?? Startup?.Regex) is not null && consolePath is not null)
            {
                _console = new ConsoleTail(consolePath, vm.Status.ConsoleBootOffset ?? 0);
            }

            // After a daemon restart the stored verdict on this same boot stands until a probe says otherwise: the
            // ready line it saw may have been rotated away since.
            if (Readiness is { } ready && vm.Status.FindCondition(Conditions.GuestReady) is { Status: ConditionStatus.True } c &&
                vm.Status.BootTime is { } b && c.LastTransitionTime >= b)
            {
                ready.Ready = true;
                ready.EverReady = true;
                ready.Matched = ready.Regex is not null;
                ready.MatchedLine = "(matched before the daemon restarted)";
            }
        }

        public Session Session { get; }

        public DateTimeOffset StartedAt { get; }

        public ProbeState? Readiness { get; }

        public ProbeState? Liveness { get; }

        public ProbeState? Startup { get; }

        /// <summary>No startup probe, or it succeeded on this boot: readiness and liveness run.</summary>
        public bool Started { get; set; }

        public void ReadConsole(DateTimeOffset now)
        {
            if (_console is null)
            {
                return;
            }

            IReadOnlyList<string> lines;
            try
            {
                lines = _console.ReadLines();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                Readiness?.ConsoleError(ex.Message);
                Liveness?.ConsoleError(ex.Message);
                Startup?.ConsoleError(ex.Message);
                return;
            }

            foreach (var line in lines)
            {
                Readiness?.See(line, now);
                Liveness?.See(line, now);
                Startup?.See(line, now);
            }
        }
    }

    /// <summary>One probe's state on one boot.</summary>
    private sealed class ProbeState
    {
        private readonly bool _liveness;
        private DateTimeOffset _nextDue;
        private Task<ProbeResult>? _running;
        private string? _consoleError;
        private DateTimeOffset? _lastMatch;

        public ProbeState(ProbeSpec spec, DateTimeOffset bootedAt, bool liveness)
        {
            Spec = spec;
            _liveness = liveness;
            _nextDue = bootedAt + TimeSpan.FromSeconds(spec.InitialDelaySeconds);
            Regex = spec.Console is { } c ? MicroVmSpecValidator.ProbeRegex(c.Regex) : null;
        }

        public ProbeSpec Spec { get; }

        public Regex? Regex { get; }

        /// <summary>Readiness verdict: null before the first result.</summary>
        public bool? Ready { get; set; }

        public bool EverReady { get; set; }

        public int Failures { get; set; }

        /// <summary>Liveness: the verdict was handed over; nothing more is probed on this boot.</summary>
        public bool Fired { get; set; }

        /// <summary>A console line matched (readiness: this boot; liveness: since the previous probe).</summary>
        public bool Matched { get; set; }

        public string? MatchedLine { get; set; }

        public bool Due(DateTimeOffset now) => _running is null && now >= _nextDue;

        public void DueNow(DateTimeOffset now)
        {
            if (_nextDue > now)
            {
                _nextDue = now;
            }
        }

        public void Start(DateTimeOffset now, Task<ProbeResult> probe)
        {
            // Periods count from the due time, not from when the tick got to it, so probes do not drift.
            _nextDue = _nextDue + TimeSpan.FromSeconds(Spec.PeriodSeconds) > now ? _nextDue + TimeSpan.FromSeconds(Spec.PeriodSeconds) : now + TimeSpan.FromSeconds(Spec.PeriodSeconds);
            _running = probe;
        }

        /// <summary>The finished probe's result, once; null while it runs or when none was started.</summary>
        public ProbeResult? Collect(DateTimeOffset now)
        {
            if (_running is not { IsCompleted: true } done)
            {
                return null;
            }

            _running = null;
            var result = done.IsCompletedSuccessfully ? done.Result : ProbeResult.Fail(done.Exception?.GetBaseException().Message ?? "the probe was cancelled");
            if (result.Success && !_liveness)
            {
                EverReady = true;
            }

            return result;
        }

        public void See(string line, DateTimeOffset now)
        {
            if (Regex is null)
            {
                return;
            }

            try
            {
                if (Regex.IsMatch(line))
                {
                    Matched = true;
                    MatchedLine = line.Length > 200 ? line[..200] + "…" : line;
                    _lastMatch = now;
                    _consoleError = null;
                }
            }
            catch (RegexMatchTimeoutException)
            {
                // A pathological pattern on a long line counts as no match; the probe's timeout is the regex's.
            }
        }

        public void ConsoleError(string message) => _consoleError = message;

        public ProbeResult ConsoleVerdict(ConsoleProbe console)
        {
            if (Matched)
            {
                var result = ProbeResult.Ok($"console line matched /{console.Regex}/: {MatchedLine}");
                if (_liveness)
                {
                    Matched = false; // liveness wants a fresh match in every period
                }

                return result;
            }

            if (_consoleError is { } error)
            {
                return ProbeResult.Fail($"cannot read the console log: {error}");
            }

            return _liveness
                ? ProbeResult.Fail(_lastMatch is null
                    ? $"no console line matched /{console.Regex}/ on this boot"
                    : $"no console line matched /{console.Regex}/ within {Spec.PeriodSeconds} s")
                : ProbeResult.Fail($"no console line matched /{console.Regex}/ on this boot yet");
        }
    }

    [LoggerMessage(1110, LogLevel.Information, "{Key}: guest ready (readiness probe {Probe}, {Seconds:0.0} s after boot): {Message}")]
    private partial void LogReady(VmKey key, string probe, double seconds, string message);

    [LoggerMessage(1111, LogLevel.Warning, "{Key}: guest not ready: readiness probe {Probe} failed {Failures} times: {Message}")]
    private partial void LogNotReady(VmKey key, string probe, int failures, string message);

    [LoggerMessage(1112, LogLevel.Information, "{Key}: liveness probe {Probe} failed ({Failures}/{Threshold}): {Message}")]
    private partial void LogLivenessFailure(VmKey key, string probe, int failures, int threshold, string message);

    [LoggerMessage(1113, LogLevel.Warning, "{Key}: {Message}; ending the VM (restartPolicy {Policy})")]
    private partial void LogLivenessFailed(VmKey key, string message, RestartPolicy policy);

    [LoggerMessage(1114, LogLevel.Information, "{Key}: first GuestReady {Seconds:0.000} s after create")]
    private partial void LogFirstReady(VmKey key, double seconds);

    [LoggerMessage(1117, LogLevel.Information, "{Key}: guest started (startup probe {Probe}, {Seconds:0.0} s after boot): {Message}")]
    private partial void LogStarted(VmKey key, string probe, double seconds, string message);

    [LoggerMessage(1118, LogLevel.Warning, "{Key}: {Message}; ending the VM (restartPolicy {Policy})")]
    private partial void LogStartupFailed(VmKey key, string message, RestartPolicy policy);

    [LoggerMessage(1115, LogLevel.Warning, "{Key}: probing failed: {Message}")]
    private partial void LogTickFailed(VmKey key, string message);
}
