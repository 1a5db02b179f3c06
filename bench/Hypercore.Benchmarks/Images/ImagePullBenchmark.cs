using System.Diagnostics;
using Hypercore.Benchmarks.Boot;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;
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
/// starts (the images start step: one manifest request, the cached disk found) plus its qcow2 overlay, against a
/// local-file VM, which costs neither.
/// </summary>
public static class ImagePullBenchmark
{
    public const string Name = "OCI images";
    private const int LayerBytes = 50 * 1024 * 1024;
    private static readonly string[] Tools = ["docker-registry", "qemu-img", "mkfs.ext4"];

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        var cachedGoal = Goal.AtMost(20, "ms");
        string[] metrics = ["pull a 100 MiB image (2 layers) from a loopback registry", "unpack the layers", "mkfs.ext4 -d (disk build)", "cached second start: images step + qcow2 overlay"];
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

        using var step = new ImagesStartStep(cache, TimeProvider.System);
        var cached = new List<TimeSpan>();
        var steps = new List<TimeSpan>();
        var runs = ctx.Options.Mode == BenchMode.Full ? 10 : 5;
        for (var i = 0; i < runs + 1; i++)
        {
            var vm = new MicroVm
            {
                Uid = $"bench-{i}",
                ResourceVersion = "1",
                Spec = new MicroVmSpec
                {
                    Id = $"bench-{i}",
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
            var overlay = Path.Combine(dir, $"overlay-{i}.qcow2");
            var made = await Process.Start(new ProcessStartInfo("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", context.Vm.Spec.AdditionalVolumes[0].HostPath, overlay]))!
                .WaitForExitAsync().ContinueWith(_ => File.Exists(overlay), TaskScheduler.Default);
            if (!made)
            {
                throw new InvalidOperationException("qemu-img create failed");
            }

            if (i > 0)
            {
                cached.Add(stopwatch.Elapsed); // the first is the warm-up of this process's code paths
                steps.Add(stepTime);
            }
        }

        var median = BootOverhead.MedianOf(cached);
        BenchContext.Log($"images: cached second start {Fmt.Ms(median)} (median of {runs}): images step {Fmt.Ms(BootOverhead.MedianOf(steps))}, the rest qemu-img create");
        return
        [
            new ResultRow(Name, metrics[0], pull.TotalMilliseconds, "ms", $"{bytes / 1048576} MiB in 2 uncompressed layers of random data, docker-registry 2.8 on 127.0.0.1, every blob SHA-256 verified while written; one run"),
            new ResultRow(Name, metrics[1], unpack.TotalMilliseconds, "ms", "layers unpacked in order with whiteouts applied into trees/<digest>; one run"),
            new ResultRow(Name, metrics[2], mkfs.TotalMilliseconds, "ms", $"mkfs.ext4 -d of the tree, {new FileInfo(disk).Length / 1048576} MiB disk, no mount; one run"),
            new ResultRow(Name, metrics[3], median.TotalMilliseconds, "ms",
                $"median of {runs} new VMs of the cached image (min {Fmt.Ms(cached.Min())}, max {Fmt.Ms(cached.Max())}): ImagesStartStep.PrepareAsync " +
                $"(one manifest GET, cached disk found; median {Fmt.Ms(BootOverhead.MedianOf(steps))}) + qemu-img create of its overlay (the rest); a local-file VM does neither")
            {
                Goal = cachedGoal,
            },
        ];
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Append("/usr/sbin").Append("/sbin")
            .Any(d => d.Length > 0 && File.Exists(Path.Combine(d, tool)));
}
