using System.Collections.Concurrent;
using System.Globalization;
using Hypercore.Images.Cache;
using Hypercore.Images.References;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Hypercore.Images.Integration;

/// <summary>
/// The reconciler's images step (order 200): resolves kernel.image, initrd.image and container_source volumes that
/// are OCI references into the node's image cache before the driver starts the VM. Pulls run in the background
/// (one per reference and product, however many VMs ask; the cache itself fetches each blob once), so a reconcile
/// never blocks on a registry: the VM waits with ImageReady=False and the bytes done/total, and is looked at again
/// every second. A failure is ImagePullBackOff with the registry's own words and a capped exponential backoff.
/// When every image is ready, the driver is given a view of the VM whose kernel, initrd and volume paths name
/// cached files, and those paths are vouched for in <see cref="StartContext.TrustedPaths"/>.
/// </summary>
public sealed partial class ImagesStartStep : IStartStep, IDisposable
{
    public const string ConditionType = "ImageReady";
    public const string ReasonPulling = "Pulling";
    public const string ReasonPullBackOff = "ImagePullBackOff";
    public const string ReasonInvalidReference = "InvalidImageReference";
    public const string ReasonReady = "ImagesReady";
    public const string ReasonRegistryNotAllowed = "RegistryNotAllowed";
    public const string ReasonVolumeTooSmall = "VolumeTooSmall";

    private readonly ImageCache _cache;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly ImagesStartStepOptions _options;
    private readonly CancellationTokenSource _lifetime = new();
    private readonly RegistryAllowList? _registries;

    // Background work by "<product>|<reference>", product "tree" (kernel/initrd) or "disk" (volumes).
    private readonly ConcurrentDictionary<string, Job> _jobs = new(StringComparer.Ordinal);

    // What each VM was given, so a restart boots the same images even if a tag moved meanwhile.
    private readonly ConcurrentDictionary<string, ConcurrentDictionary<string, Ready>> _resolved = new(StringComparer.Ordinal);

    /// <param name="registries">The registries references may name (the daemon always gives one); null checks none.</param>
    public ImagesStartStep(ImageCache cache, TimeProvider time, ImagesStartStepOptions? options = null, ILogger<ImagesStartStep>? log = null,
        RegistryAllowList? registries = null)
    {
        _registries = registries;
        _cache = cache;
        _time = time;
        _options = options ?? new ImagesStartStepOptions();
        _log = log ?? (ILogger)NullLogger.Instance;
    }

    public string Name => "images";

    public int Order => 200;

    public Task<StartStepResult> PrepareAsync(StartContext context, CancellationToken cancellationToken) =>
        // Issue 15 (cpu10): most starts name no image reference (host paths only): one cached answer, no list, iterator or
        // state machine (0.3 % of the AOT benchmark node's samples under Running Creates).
        NamesAnImage(context.Vm.Spec) ? PrepareImagesAsync(context, cancellationToken) : NothingToPull;

    private static readonly Task<StartStepResult> NothingToPull = Task.FromResult(StartStepResult.Proceed());

    /// <summary>Whether the spec names an image reference: <see cref="Wanted"/>'s walk, answered at the first one.</summary>
    internal static bool NamesAnImage(MicroVmSpec spec) => Walk(spec, null);

    private async Task<StartStepResult> PrepareImagesAsync(StartContext context, CancellationToken cancellationToken)
    {
        var vm = context.Vm;
        var wanted = Wanted(vm.Spec);
        if (wanted.Count == 0)
        {
            return StartStepResult.Proceed();
        }

        foreach (var w in wanted)
        {
            if (!ImageReference.TryParse(w.Text, out _, out var error))
            {
                var message = $"{w.Field}: {error ?? $"\"{w.Text}\" is not an OCI image reference"}";
                return StartStepResult.Fail(ReasonInvalidReference, message, Condition(context, ConditionStatus.False, ReasonInvalidReference, message));
            }

            // Checked again here, not only at Create: the settings may have changed since, and a record may come
            // from a store no Create guarded (a MicroVM resource applied with kubectl). Nothing is requested.
            if (_registries?.Refusal(w.Field, w.Text) is { } refusal)
            {
                LogRegistryRefused(_log, vm.Key.ToString(), refusal);
                return StartStepResult.Fail(ReasonRegistryNotAllowed, refusal, Condition(context, ConditionStatus.False, ReasonRegistryNotAllowed, refusal));
            }
        }

        var given = _resolved.GetOrAdd(vm.Uid, _ => new ConcurrentDictionary<string, Ready>(StringComparer.Ordinal));

        // A cached image needs one manifest request: give the jobs a moment, so such a VM starts in this reconcile
        // instead of a poll interval later.
        var jobs = wanted.Select(w => Key(w.Product, w.Text)).Distinct(StringComparer.Ordinal)
            .Where(k => !given.ContainsKey(k)).ToDictionary(k => k, k => JobFor(k, vm.Uid, _time.GetUtcNow()), StringComparer.Ordinal);
        if (_options.FastPath > TimeSpan.Zero && jobs.Values.Any(j => !j.Task.IsCompleted))
        {
            await Task.WhenAny(Task.WhenAll(jobs.Values.Select(j => j.Task)), Task.Delay(_options.FastPath, _time, cancellationToken));
        }

        var now = _time.GetUtcNow();
        var pulling = new List<string>();
        var failed = new List<(string Text, TimeSpan RetryIn)>();
        var ready = new Dictionary<string, Ready>(StringComparer.Ordinal);
        var images = new List<ImageStatus>(); // MicroVmStatus.Images: one entry per reference, in spec order
        void Show(ImageStatus image)
        {
            if (!images.Any(i => i.Reference == image.Reference))
            {
                images.Add(image);
            }
        }

        foreach (var key in wanted.Select(w => Key(w.Product, w.Text)).Distinct(StringComparer.Ordinal))
        {
            if (given.TryGetValue(key, out var kept))
            {
                ready[key] = kept;
                Show(kept.Status());
                continue;
            }

            var job = jobs[key];
            if (!job.Task.IsCompleted)
            {
                pulling.Add(job.Describe());
                Show(job.Status());
                continue;
            }

            if (job.Task.IsCompletedSuccessfully)
            {
                // Kept for this VM at once: a job is forgotten once used, and the VM may still wait for its other images.
                ready[key] = given[key] = job.Task.Result;
                Show(job.Task.Result.Status());
                continue;
            }

            failed.Add((job.Failure(), job.RetryAt - now));
            Show(job.Status());
        }

        if (failed.Count > 0)
        {
            var retry = failed.Min(f => f.RetryIn);
            retry = retry < TimeSpan.FromMilliseconds(200) ? TimeSpan.FromMilliseconds(200) : retry;
            var message = string.Join("; ", failed.Select(f => f.Text)) + $"; retrying in {retry.TotalSeconds:0.#} s" +
                (pulling.Count > 0 ? "; still pulling: " + string.Join("; ", pulling) : "");
            LogBackOff(_log, vm.Key.ToString(), message);
            return StartStepResult.Wait(ReasonPullBackOff, message, retry, Condition(context, ConditionStatus.False, ReasonPullBackOff, message, images));
        }

        if (pulling.Count > 0)
        {
            var message = string.Join("; ", pulling);
            return StartStepResult.Wait(ReasonPulling, message, _options.PollInterval, Condition(context, ConditionStatus.False, ReasonPulling, message, images));
        }

        // Every image is in the cache: count this VM as a user (prune and eviction keep them), then resolve the files.
        foreach (var (key, r) in ready)
        {
            await _cache.AddUserAsync(r.Digest, vm.Uid, cancellationToken);
            given[key] = r;
        }

        // size_in_mb grows a volume's own view; it can never shrink the image's file system. The image's size is
        // known only now (Create cannot know it), so a size below it is a condition, not an InvalidArgument.
        foreach (var (volume, field) in HostAccess.HostPathPolicy.Volumes(vm.Spec))
        {
            if (volume.ContainerSource is { } source && volume.SizeInMb is { } mb && mb > 0 &&
                ready.TryGetValue(Key(Disk, source), out var disk) && new FileInfo(disk.Path).Length is var length && mb * 1048576L < length)
            {
                var needed = (length + 1048575) / 1048576;
                var message = $"{field} size_in_mb {mb} is smaller than its image {source} ({disk.Digest}), whose disk is {needed} MiB; " +
                    $"give size_in_mb {needed} or more, or leave it out to get the image's size";
                return StartStepResult.Fail(ReasonVolumeTooSmall, message, Condition(context, ConditionStatus.False, ReasonVolumeTooSmall, message, images));
            }
        }

        StartStepResult? problem = null;
        var view = vm.Spec;
        try
        {
            view = View(vm.Spec, ready, context);
        }
        catch (ImagePullException ex)
        {
            var message = ex.Reference is null ? ex.Message : $"{ex.Reference}: {ex.Message}";
            problem = StartStepResult.Wait(ReasonPullBackOff, message, _options.BackoffCap,
                Condition(context, ConditionStatus.False, ReasonPullBackOff, message));
        }

        if (problem is not null)
        {
            // A kernel missing from the image will not appear by waiting; the tag may be pushed again, so forget
            // this VM's resolution and look again after the backoff cap.
            _resolved.TryRemove(vm.Uid, out _);
            LogBackOff(_log, vm.Key.ToString(), problem.Message);
            return problem;
        }

        context.Vm = vm with { Spec = view };
        var summary = string.Join("; ", ready.Values.DistinctBy(r => r.Reference).Select(r => $"{r.Reference} ({r.Digest})" + (r.Note is { } note ? $": {note}" : "")));
        return StartStepResult.Proceed(Condition(context, ConditionStatus.True, ReasonReady, summary, images));
    }

    public async Task ReleaseAsync(MicroVm vm, CancellationToken cancellationToken)
    {
        _resolved.TryRemove(vm.Uid, out _);
        foreach (var job in _jobs.Values)
        {
            job.Users.TryRemove(vm.Uid, out _);
        }

        await _cache.RemoveUserAsync(vm.Uid, cancellationToken);
    }

    public void Dispose()
    {
        // Registered as itself and as an IStartStep: the container disposes it once per registration.
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _lifetime.Cancel();
            _lifetime.Dispose();
        }
    }

    private int _disposed;

    /// <summary>The references a spec asks for, with the field each came from and what is needed of it.</summary>
    internal static List<(string Field, string Text, string Product)> Wanted(MicroVmSpec spec)
    {
        var wanted = new List<(string, string, string)>();
        Walk(spec, wanted);
        return wanted;
    }

    /// <summary>
    /// The one walk over a spec's image references, for both <see cref="Wanted"/> and <see cref="NamesAnImage"/>: each
    /// reference is added to <paramref name="into"/>; with no list the walk answers true at the first one (no list, no
    /// field text, no iterator: the fast path of a start that names none).
    /// </summary>
    private static bool Walk(MicroVmSpec spec, List<(string Field, string Text, string Product)>? into)
    {
        if (ImageSources.IsReference(spec.Kernel.Image) && Take(into, "kernel.image", spec.Kernel.Image, Tree))
        {
            return true;
        }

        if (spec.Initrd is { } initrd && ImageSources.IsReference(initrd.Image) && Take(into, "initrd.image", initrd.Image, Tree))
        {
            return true;
        }

        if (spec.RootVolume?.ContainerSource is { } root && Take(into, HostAccess.HostPathPolicy.RootVolumeField + ContainerSource, root, Disk))
        {
            return true;
        }

        foreach (var volume in spec.AdditionalVolumes)
        {
            if (volume.ContainerSource is { } source && (into is null || Take(into, HostAccess.HostPathPolicy.VolumeField(volume) + ContainerSource, source, Disk)))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True (stop: a reference was found) when there is no list; else adds the reference and goes on.</summary>
    private static bool Take(List<(string Field, string Text, string Product)>? into, string field, string text, string product)
    {
        if (into is null)
        {
            return true;
        }

        into.Add((field, text, product));
        return false;
    }

    private const string ContainerSource = " source.container_source";
    private const string Tree = "tree";
    private const string Disk = "disk";

    private static string Key(string product, string text) => product + "|" + text;

    private MicroVmSpec View(MicroVmSpec spec, Dictionary<string, Ready> ready, StartContext context)
    {
        var view = spec;
        if (ImageSources.IsReference(spec.Kernel.Image))
        {
            var r = ready[Key(Tree, spec.Kernel.Image)];
            var kernel = Found(r, () => ImageLayout.FindKernel(r.Path, spec.Kernel.Filename));
            context.TrustedPaths.Add(kernel);
            view = view with { Kernel = view.Kernel with { Image = kernel, Filename = null } };
        }

        if (spec.Initrd is null && ImageSources.IsReference(spec.Kernel.Image) &&
            ImageLayoutTryFindInitrd(ready[Key(Tree, spec.Kernel.Image)].Path) is { } bundled)
        {
            // Like a named image folder: a kernel image that carries boot/initrd.img boots with it unless the spec names one.
            context.TrustedPaths.Add(bundled);
            view = view with { Initrd = new InitrdSpec { Image = bundled } };
        }
        else if (spec.Initrd is { } initrd && ImageSources.IsReference(initrd.Image))
        {
            var r = ready[Key(Tree, initrd.Image)];
            var path = Found(r, () => ImageLayout.FindInitrd(r.Path, initrd.Filename));
            context.TrustedPaths.Add(path);
            view = view with { Initrd = initrd with { Image = path, Filename = null } };
        }

        var copyOnWrite = new HashSet<string>(StringComparer.Ordinal);
        VolumeSpec Resolve(VolumeSpec v)
        {
            if (v.ContainerSource is not { } source)
            {
                return v;
            }

            var disk = ready[Key(Disk, source)].Path;
            context.TrustedPaths.Add(disk);
            if (!v.IsReadOnly)
            {
                copyOnWrite.Add(v.Id); // two VMs never write the same file: the driver makes this VM its own view
            }

            return v with { HostPath = disk, ContainerSource = null };
        }

        view = view with
        {
            RootVolume = view.RootVolume is null ? null : Resolve(view.RootVolume),
            AdditionalVolumes = view.AdditionalVolumes.Select(Resolve).ToList(),
        };
        if (copyOnWrite.Count > 0)
        {
            context.Items[ImageSources.CopyOnWriteVolumesItem] = copyOnWrite;
        }

        return view;
    }

    private static string? ImageLayoutTryFindInitrd(string tree)
    {
        try
        {
            return ImageLayout.FindInitrd(tree, null);
        }
        catch (ImagePullException)
        {
            return null;
        }
    }

    private static string Found(Ready r, Func<string> find)
    {
        try
        {
            return find();
        }
        catch (ImagePullException ex)
        {
            throw new ImagePullException(ex.Kind, r.Reference, ex.Message);
        }
    }

    private Job JobFor(string key, string uid, DateTimeOffset now)
    {
        lock (_jobs)
        {
            if (!_jobs.TryGetValue(key, out var job))
            {
                job = _jobs[key] = Start(key, 0);
            }
            else if (job.Task.IsCompletedSuccessfully)
            {
                // Used by whoever asks next, then forgotten, so a later VM sees a tag that moved.
                _jobs.TryRemove(key, out _);
            }
            else if (job.Task.IsCompleted && now >= job.RetryAt)
            {
                job = _jobs[key] = Start(key, job.Failures); // the backoff ran out: try again
            }

            job.Users.TryAdd(uid, 0);
            return job;
        }
    }

    private Job Start(string key, int failuresBefore)
    {
        var split = key.IndexOf('|', StringComparison.Ordinal);
        var product = key[..split];
        var text = key[(split + 1)..];
        var job = new Job(text, failuresBefore);
        job.Task = Task.Run(async () =>
        {
            try
            {
                var reference = ImageReference.Parse(text);
                var progress = new Progress(job);
                var pulled = await _cache.PullAsync(reference, progress, _lifetime.Token);

                // Users before building: an image no VM uses may be evicted by a later pull.
                foreach (var uid in job.Users.Keys)
                {
                    await _cache.AddUserAsync(pulled.Digest, uid, _lifetime.Token);
                }

                job.Digest = pulled.Digest;
                job.Stage = product == Disk ? "building disk" : "unpacking";
                var path = product == Disk
                    ? await _cache.GetDiskAsync(pulled, _lifetime.Token)
                    : await _cache.GetTreeAsync(pulled, _lifetime.Token);
                LogReady(_log, text, pulled.Digest, product, path);
                return new Ready(text, pulled.Digest, path, pulled.Note, pulled.Manifest.TotalSize);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !_lifetime.IsCancellationRequested)
            {
                job.Fail(ex, _time.GetUtcNow() + Backoff(failuresBefore + 1));
                LogPullFailed(_log, text, job.Error ?? ex.Message);
                throw;
            }
        });
        return job;
    }

    private TimeSpan Backoff(int failures)
    {
        var ticks = _options.BackoffBase.Ticks * Math.Pow(2, Math.Min(failures - 1, 30));
        return ticks >= _options.BackoffCap.Ticks ? _options.BackoffCap : TimeSpan.FromTicks((long)ticks);
    }

    private Func<MicroVmStatus, MicroVmStatus> Condition(StartContext context, ConditionStatus status, string reason, string message,
        IReadOnlyList<ImageStatus>? images = null)
    {
        var generation = context.Stored.Generation;
        var now = _time.GetUtcNow();
        return s => s with
        {
            Conditions = Conditions.Set(s.Conditions, ConditionType, status, reason, message, generation, now),
            Images = images ?? s.Images,
        };
    }

    /// <summary>What a pull error says to the user: the registry's own words when it sent any, else ours.</summary>
    internal static string Explain(Exception ex) => ex switch
    {
        ImagePullException p when p.RegistryMessage is { Length: > 0 } registry && !p.Message.Contains(registry, StringComparison.Ordinal) =>
            $"{p.Message} (registry: {registry})",
        ImagePullException p => p.Message,
        _ => ex.Message,
    };

    private sealed record Ready(string Reference, string Digest, string Path, string? Note = null, long Bytes = 0)
    {
        public ImageStatus Status() => new(Reference, "Ready", Digest, Bytes, Bytes, Note);
    }

    private sealed class Job(string reference, int failuresBefore)
    {
        public Task<Ready> Task { get; set; } = null!;

        public ConcurrentDictionary<string, byte> Users { get; } = new(StringComparer.Ordinal);

        public long Done;

        public long Total = -1;

        public volatile string? Stage;

        public volatile string? Digest;

        public string? Error { get; private set; }

        public int Failures { get; private set; } = failuresBefore;

        public DateTimeOffset RetryAt { get; private set; } = DateTimeOffset.MinValue;

        public void Fail(Exception ex, DateTimeOffset retryAt)
        {
            Error = Explain(ex);
            Failures++;
            RetryAt = retryAt;
        }

        public string Describe()
        {
            var total = Interlocked.Read(ref Total);
            var done = Interlocked.Read(ref Done);
            if (Stage is { } stage)
            {
                return $"{reference}: {stage}";
            }

            return total < 0
                ? $"{reference}: resolving"
                : string.Create(CultureInfo.InvariantCulture, $"{reference}: {Mib(done)}/{Mib(total)} MiB ({done}/{total} bytes)");
        }

        public ImageStatus Status()
        {
            var total = Interlocked.Read(ref Total);
            var done = Interlocked.Read(ref Done);
            if (Task.IsCompleted && !Task.IsCompletedSuccessfully)
            {
                return new ImageStatus(reference, "BackOff", null, done, total, Error);
            }

            var state = Stage switch
            {
                "unpacking" => "Unpacking",
                "building disk" => "BuildingDisk",
                _ => total < 0 ? "Resolving" : "Pulling",
            };
            return new ImageStatus(reference, state, Digest, done, total);
        }

        public string Failure() =>
            (Error is { } e && e.StartsWith(reference, StringComparison.Ordinal) ? e : $"{reference}: {Error}") +
            (Failures > 1 ? $" (attempt {Failures})" : "");

        private static string Mib(long bytes) => (bytes / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture);
    }

    private sealed class Progress(Job job) : IProgress<ImagePullProgress>
    {
        public void Report(ImagePullProgress value)
        {
            Interlocked.Exchange(ref job.Total, value.BytesTotal);
            Interlocked.Exchange(ref job.Done, value.BytesDone);
        }
    }

    [LoggerMessage(EventId = 5100, Level = LogLevel.Information, Message = "image {Reference} ready for VMs ({Digest}, {Product} {Path})")]
    private static partial void LogReady(ILogger log, string reference, string digest, string product, string path);

    [LoggerMessage(EventId = 5101, Level = LogLevel.Warning, Message = "image {Reference} could not be pulled: {Error}")]
    private static partial void LogPullFailed(ILogger log, string reference, string error);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Warning, Message = "{Vm} names a registry this node does not pull from: {Message}")]
    private static partial void LogRegistryRefused(ILogger log, string vm, string message);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Information, Message = "{Vm} waits for its images: {Message}")]
    private static partial void LogBackOff(ILogger log, string vm, string message);
}

/// <summary>How often a waiting VM is looked at again, and the backoff after failed pulls.</summary>
public sealed class ImagesStartStepOptions
{
    public TimeSpan PollInterval { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan BackoffBase { get; set; } = TimeSpan.FromSeconds(2);

    public TimeSpan BackoffCap { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How long a reconcile waits for pulls it just started before answering Wait (a cached image is done by then).</summary>
    public TimeSpan FastPath { get; set; } = TimeSpan.FromMilliseconds(300);
}
