using System.Diagnostics;
using Hypercore.Benchmarks.Boot;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;
using Hypercore.Drivers.Vmm;
using Hypercore.Images.Cache;
using Hypercore.Images.Integration;
using Hypercore.Images.References;
using Hypercore.Images.Registry;
using Hypercore.Images.Tests.Fixtures;
using Hypercore.MicroVms;
using Hypercore.Reconciliation;

namespace Hypercore.Benchmarks.Images;

/// <summary>
/// Images (issue 11): a ~100 MB image (two incompressible layers) pushed to a real docker-registry on loopback, then
/// pulled into an empty cache, unpacked and turned into an ext4 disk (the images library, in-process: the same code
/// the daemon runs). Then the cached second start: what a new VM of the same image costs before its hypervisor
/// starts (the images start step: the tag's digest remembered for ImageCacheOptions.TagTtl, the cached disk found)
/// plus its qcow2 overlay written in-process (Qcow2Overlay, what QemuDriver does), against a local-file VM, which
/// costs neither; and the same with the tag asked of the registry every time (TagTtl 0: one manifest GET).
/// </summary>
public static class ImagePullBenchmark
{
    public const string Name = "OCI images";
    private const int LayerBytes = 50 * 1024 * 1024;
    private static readonly string[] Tools = ["docker-registry", "mkfs.ext4"];

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        var cachedGoal = Goal.AtMost(20, "ms");
        string[] metrics = ["pull a 100 MiB image (2 layers) from a loopback registry", "unpack the layers", "mkfs.ext4 -d (disk build)",
            "cached second start: images step + qcow2 overlay", "cached second start, tag asked every time (TagTtl 0)"];
        var missing = Tools.Where(t => !OnPath(t)).ToList();
        if (missing.Count > 0)
        {
            return metrics.Select(m => ResultRow.Skipped(Name, m, $"{string.Join(", ", missing)} not installed (scripts/setup.sh)", m.StartsWith("cached", StringComparison.Ordinal) ? cachedGoal : null)).ToList();
        }

        var layerBytes = ctx.Options.Mode == BenchMode.Smoke ? LayerBytes / 16 : LayerBytes; // smoke: ~6 MB, only that it works
        var dir = ctx.NewDirectory("images");
        await using var registry = await RegistryProcess.StartAsync(dir);
        using (var pusher = new Pusher($"http://{registry.Host}"))
        {
            await pusher.PushAsync("bench/rootfs", "1", TestImages.Image("amd64",
                TestImages.RandomLayer(layerBytes, "data/a.bin"), TestImages.RandomLayer(layerBytes, "data/b.bin")));
        }

        var options = new RegistryOptions();
        options.InsecureRegistries.Add(registry.Host);
        using var client = new RegistryClient(options);
        using var cache = new ImageCache(new ImageCacheOptions { Root = Path.Combine(dir, "cache") }, client, TimeProvider.System);
        var reference = ImageReference.Parse($"{registry.Host}/bench/rootfs:1");

        var stopwatch = Stopwatch.StartNew();
        var pulled = await cache.PullAsync(reference, null, CancellationToken.None);
        var pull = stopwatch.Elapsed;
        stopwatch.Restart();
        await cache.GetTreeAsync(pulled, CancellationToken.None);
        var unpack = stopwatch.Elapsed;
        stopwatch.Restart();
        var disk = await cache.GetDiskAsync(pulled, CancellationToken.None);
        var mkfs = stopwatch.Elapsed;
        var bytes = pulled.Manifest.Layers.Sum(l => l.Size);
        BenchContext.Log($"images: pulled {bytes / 1048576} MiB in {Fmt.Ms(pull)}, unpacked in {Fmt.Ms(unpack)}, disk ({new FileInfo(disk).Length / 1048576} MiB) in {Fmt.Ms(mkfs)}");

        var runs = ctx.Options.Mode == BenchMode.Full ? 10 : 5;
        var (cached, steps) = await CachedStartsAsync(cache, reference, dir, "memo", runs);
        var median = BootOverhead.MedianOf(cached);
        BenchContext.Log($"images: cached second start {Fmt.Ms(median)} (median of {runs}): images step {Fmt.Ms(BootOverhead.MedianOf(steps))}, the rest the in-process overlay");

        // The same with the registry asked on every start (as after the tag's TTL ran out): one manifest GET more.
        using var askingCache = new ImageCache(new ImageCacheOptions { Root = Path.Combine(dir, "cache"), TagTtl = TimeSpan.Zero }, client, TimeProvider.System);
        var (asking, askingSteps) = await CachedStartsAsync(askingCache, reference, dir, "ask", runs);
        var askingMedian = BootOverhead.MedianOf(asking);
        BenchContext.Log($"images: cached second start asking the registry {Fmt.Ms(askingMedian)} (median of {runs}): images step {Fmt.Ms(BootOverhead.MedianOf(askingSteps))}");
        return
        [
            new ResultRow(Name, metrics[0], pull.TotalMilliseconds, "ms", $"{bytes / 1048576} MiB in 2 uncompressed layers of random data, docker-registry 2.8 on 127.0.0.1, every blob SHA-256 verified while written; one run"),
            new ResultRow(Name, metrics[1], unpack.TotalMilliseconds, "ms", "layers unpacked in order with whiteouts applied into trees/<digest>; one run"),
            new ResultRow(Name, metrics[2], mkfs.TotalMilliseconds, "ms", $"mkfs.ext4 -d of the tree, {new FileInfo(disk).Length / 1048576} MiB disk, no mount; one run"),
            new ResultRow(Name, metrics[3], median.TotalMilliseconds, "ms",
                $"median of {runs} new VMs of the cached image (min {Fmt.Ms(cached.Min())}, max {Fmt.Ms(cached.Max())}): ImagesStartStep.PrepareAsync " +
                $"(tag's digest remembered for 10 s, no request; cached disk found; index written once for the new user; median {Fmt.Ms(BootOverhead.MedianOf(steps))}) " +
                "+ the VM's qcow2 overlay written in-process, as QemuDriver does (the rest); a local-file VM does neither")
            {
                Goal = cachedGoal,
            },
            new ResultRow(Name, metrics[4], askingMedian.TotalMilliseconds, "ms",
                $"median of {runs} (min {Fmt.Ms(asking.Min())}, max {Fmt.Ms(asking.Max())}): as above with one manifest GET to the loopback registry per start " +
                $"(the first start after the tag's 10 s; images step median {Fmt.Ms(BootOverhead.MedianOf(askingSteps))})"),
        ];
    }

    /// <summary>New VMs of the cached image, one after another: the images step, then the overlay QEMU would be given.</summary>
    private static async Task<(List<TimeSpan> Total, List<TimeSpan> Steps)> CachedStartsAsync(ImageCache cache, ImageReference reference, string dir, string series, int runs)
    {
        using var step = new ImagesStartStep(cache, TimeProvider.System);
        var cached = new List<TimeSpan>();
        var steps = new List<TimeSpan>();
        var stopwatch = new Stopwatch();
        for (var i = 0; i < runs + 1; i++)
        {
            var vm = new MicroVm
            {
                Uid = $"bench-{series}-{i}",
                ResourceVersion = "1",
                Spec = new MicroVmSpec
                {
                    Id = $"bench-{series}-{i}",
                    Kernel = new KernelSpec { Image = "/var/lib/hypercore/images/default/vmlinuz" },
                    AdditionalVolumes = [new VolumeSpec { Id = "root", ContainerSource = reference.ToString() }],
                },
            };
            stopwatch.Restart();
            var context = new StartContext(vm);
            var result = await step.PrepareAsync(context, CancellationToken.None);
            if (result.Outcome != StartStepOutcome.Proceed)
            {
                throw new InvalidOperationException($"images step did not proceed for a cached image: {result.Reason} {result.Message}");
            }

            var stepTime = stopwatch.Elapsed;
            var backing = context.Vm.Spec.AdditionalVolumes[0].HostPath;
            var overlay = Path.Combine(dir, $"overlay-{series}-{i}.qcow2");
            File.Delete(overlay); // a --work-dir reused from an earlier run
            Qcow2Overlay.Create(overlay, backing, DiskFormats.Raw, new FileInfo(backing).Length, flushToDisk: false); // as QemuDriver
            if (i > 0)
            {
                cached.Add(stopwatch.Elapsed); // the first is the warm-up of this process's code paths
                steps.Add(stepTime);
            }
        }

        return (cached, steps);
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/sbin").Append("/sbin")
            .Any(d => d.Length > 0 && File.Exists(Path.Combine(d, tool)));
}
