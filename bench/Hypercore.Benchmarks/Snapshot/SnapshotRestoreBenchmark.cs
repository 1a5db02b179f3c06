using System.Diagnostics;
using Hypercore.Benchmarks.Boot;
using Hypercore.Benchmarks.Report;
using Hypercore.Benchmarks.Runner;
using Hypercore.Client;
using Hypercore.Contracts.VmApi;

namespace Hypercore.Benchmarks.Snapshot;

/// <summary>
/// Restore from a snapshot versus a cold boot, through the real daemon (QEMU driver, TCG), same image and kernel
/// command line, interleaved in one run. Guest ready: a cold boot's HYPERCORE-GUEST-READY; for a restored guest,
/// which never prints it again, the first line it writes to its own (new) console after the restore, the next
/// "count N" of the default image's hypercore.count hook.
/// </summary>
public static class SnapshotRestoreBenchmark
{
    public const string Name = "Snapshot restore";
    private const string Namespace = "bench";
    private const string SnapshotName = "bench-snap";
    private static readonly TimeSpan Timeout = TimeSpan.FromMinutes(3);

    public static async Task<List<ResultRow>> RunAsync(BenchContext ctx)
    {
        var goal = Goal.AtLeast(2, "×");
        if ((ctx.DaemonUnavailable() ?? ctx.QemuUnavailable() ?? CountHookMissing(ctx.Options.ImageDirectory)) is { } why)
        {
            return [ResultRow.Skipped(Name, "cold boot / restore time ratio", why, goal)];
        }

        var state = ctx.NewStateDirectory("snap");
        await using var daemon = ctx.StartDaemon(state);
        await daemon.WaitReadyAsync(TimeSpan.FromMinutes(2));
        using var client = HypercoreClient.Connect(daemon.GrpcAddress);

        BenchContext.Log("snapshot: booting the source and taking the snapshot");
        await CreateAsync(client, Spec("source"));
        await new ConsoleWatch(ConsoleOf(state, await UidAsync(client, "source"))).WaitAsync(Timeout);
        var take = Stopwatch.StartNew();
        var info = await client.Snapshots.SnapshotAsync(new SnapshotRequest { Id = "source", Namespace = Namespace, Name = SnapshotName });
        var took = take.Elapsed;
        await DeleteAsync(client, "source");

        var cold = new List<TimeSpan>();
        var restored = new List<TimeSpan>();
        for (var i = 0; i < ctx.Options.BootRuns; i++)
        {
            async Task Cold() => cold.Add(await TimeAsync(client, state, Spec($"cold{i}"), restore: false));
            async Task Restore() => restored.Add(await TimeAsync(client, state, Spec($"restore{i}", SnapshotName), restore: true));
            if (i % 2 == 0)
            {
                await Cold();
                await Restore();
            }
            else
            {
                await Restore();
                await Cold();
            }

            BenchContext.Log($"snapshot {i + 1}/{ctx.Options.BootRuns}: cold boot {Fmt.Ms(cold[^1])}, restore {Fmt.Ms(restored[^1])}");
        }

        await client.Snapshots.DeleteSnapshotAsync(new DeleteSnapshotRequest { Name = SnapshotName });
        var coldMedian = BootOverhead.MedianOf(cold);
        var restoreMedian = BootOverhead.MedianOf(restored);
        var runs = ctx.Options.BootRuns;
        return
        [
            new ResultRow(Name, "cold boot / restore time ratio", coldMedian / restoreMedian, "×",
                $"median gRPC Create → guest ready of {runs} cold boots ÷ median gRPC Create (restore_from) → first console line of {runs} restores, alternating, same image, 1 vCPU, 128 MiB, TCG")
            {
                Goal = goal,
                Reference = $"cold {Fmt.Ms(coldMedian)}",
            },
            new ResultRow(Name, "gRPC Create (restore_from) → first console line", restoreMedian.TotalMilliseconds, "ms",
                $"median of {runs}; min {Fmt.Ms(restored.Min())}, max {Fmt.Ms(restored.Max())}; includes the sha256 check of the state file and streaming it into QEMU")
            {
                Reference = $"cold {Fmt.Ms(coldMedian)}",
            },
            new ResultRow(Name, "gRPC Create → guest ready line (cold boot)", coldMedian.TotalMilliseconds, "ms",
                $"median of {runs}; min {Fmt.Ms(cold.Min())}, max {Fmt.Ms(cold.Max())}"),
            new ResultRow(Name, "time to snapshot a running 128 MiB guest", took.TotalMilliseconds, "ms",
                $"Snapshot rpc round trip: pause, QMP migrate to the state file, manifest with sha256, resume; daemon says {info.DurationSeconds:0.###} s"),
            new ResultRow(Name, "snapshot size on disk", info.SizeBytes / 1048576.0, "MiB",
                "memory + device state of a 128 MiB guest (QEMU skips zero pages); no writable disks"),
        ];
    }

    /// <summary>
    /// A restored guest prints nothing on its own; the image's hypercore.count hook makes it. An image built before the
    /// hook existed would leave the restore side waiting for a line that never comes: say so instead.
    /// </summary>
    private static string? CountHookMissing(string imageDirectory)
    {
        var initrd = Path.Combine(imageDirectory, "initrd.img");
        try
        {
            using var file = File.OpenRead(initrd);
            using var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionMode.Decompress);
            using var content = new MemoryStream();
            gzip.CopyTo(content);
            return content.GetBuffer().AsSpan(0, (int)content.Length).IndexOf("50-count.sh"u8) >= 0
                ? null
                : $"the guest image {imageDirectory} has no hypercore.count hook (scripts/image/hooks/post-ready.d/50-count.sh): rebuild it with scripts/build-image.sh";
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException)
        {
            return $"cannot read {initrd} as a gzip initramfs: {ex.Message}";
        }
    }

    private static MicroVMSpec Spec(string id, string? restoreFrom = null)
    {
        var spec = new MicroVmTemplate { Name = id, Namespace = Namespace }.ToSpec();
        spec.Kernel.Cmdline["hypercore.count"] = "";
        if (restoreFrom is not null)
        {
            spec.RestoreFrom = restoreFrom;
        }

        return spec;
    }

    private static async Task<TimeSpan> TimeAsync(HypercoreClient client, string state, MicroVMSpec spec, bool restore)
    {
        await Task.Delay(TimeSpan.FromSeconds(1)); // settle, as the boot benchmark does
        var t0 = Stopwatch.GetTimestamp();
        var vm = await CreateAsync(client, spec);
        var console = ConsoleOf(state, vm.Spec.Uid);
        if (restore)
        {
            await FirstLineAsync(console);
        }
        else
        {
            await new ConsoleWatch(console).WaitAsync(Timeout);
        }

        var elapsed = Stopwatch.GetElapsedTime(t0);
        await DeleteAsync(client, spec.Id);
        return elapsed;
    }

    private static async Task<MicroVM> CreateAsync(HypercoreClient client, MicroVMSpec spec) => await client.CreateMicroVmAsync(spec);

    private static async Task<string> UidAsync(HypercoreClient client, string id) => (await client.GetMicroVmAsync(id, Namespace)).Spec.Uid;

    private static async Task DeleteAsync(HypercoreClient client, string id)
    {
        await client.DeleteMicroVmAsync(id, Namespace);
        await client.WaitForDeletionAsync(id, TimeSpan.FromMinutes(2), @namespace: Namespace);
    }

    private static string ConsoleOf(string state, string uid) => Path.Combine(state, "run", "qemu", uid, "console.log");

    /// <summary>Polls (every 10 ms, like <see cref="ConsoleWatch"/>) until the console holds one complete line.</summary>
    private static async Task FirstLineAsync(string path)
    {
        var deadline = DateTime.UtcNow + Timeout;
        while (true)
        {
            try
            {
                if (File.Exists(path) && (await File.ReadAllTextAsync(path)).Contains('\n', StringComparison.Ordinal))
                {
                    return;
                }
            }
            catch (IOException)
            {
                // being written
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"no console line in {path} within {Timeout.TotalSeconds:0} s");
            }

            await Task.Delay(ConsoleWatch.PollInterval);
        }
    }
}
