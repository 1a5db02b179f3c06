using Hypercore.MicroVms;
using Hypercore.Store.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>
/// The child side of the crash test. Several writers create records (and set the status of every fifth, claim and
/// set the status of every other third in one write, and claim every seventh) as fast as they can, printing one line
/// per acknowledged write, until the parent kills the process with SIGKILL.
/// </summary>
internal static class CrashWriter
{
    public const string Mode = "crash-writer";

    /// <summary>Stops on its own after this long, so an orphan never outlives a crashed test run for long.</summary>
    private static readonly TimeSpan Lifetime = TimeSpan.FromSeconds(120);

    /// <param name="checkpointFrames">When set, the background checkpointer's threshold (the writer's is 4 times it), and a
    /// line "checkpoints N" each time the background checkpointer has run once more.</param>
    public static async Task<int> RunAsync(string path, int writers, int? checkpointFrames = null)
    {
        var options = new SqliteStoreOptions { DatabasePath = path, NodeName = "crash" };
        if (checkpointFrames is { } frames)
        {
            options.CheckpointBackgroundFrames = frames;
            options.CheckpointWriterFrames = 4 * frames;
        }

        var store = new SqliteMicroVmStore(Options.Create(options), TimeProvider.System, NullLogger<SqliteMicroVmStore>.Instance);
        var output = TextWriter.Synchronized(Console.Out); // Console.Out flushes every line
        output.WriteLine("ready");

        using var stop = new CancellationTokenSource(Lifetime);
        if (checkpointFrames is not null)
        {
            _ = Task.Run(async () =>
            {
                long reported = 0;
                while (!stop.IsCancellationRequested)
                {
                    var now = store.BackgroundCheckpoints;
                    if (now != reported)
                    {
                        output.WriteLine($"checkpoints {now}");
                        reported = now;
                    }

                    await Task.Delay(5);
                }
            });
        }

        var next = -1;
        var tasks = Enumerable.Range(0, writers).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var i = Interlocked.Increment(ref next);
                var spec = new MicroVmSpec { Id = $"vm-{i:D6}", Kernel = new KernelSpec { Image = "/images/vmlinuz" } };
                var created = await store.CreateAsync(spec);
                output.WriteLine($"acked {spec.Id}");
                if (i % 5 == 0)
                {
                    await store.UpdateStatusAsync(created.Key, new MicroVmStatus { Phase = Phase.Running, Pid = i }, created.ResourceVersion);
                    output.WriteLine($"acked-status {spec.Id}");
                }
                else if (i % 3 == 0)
                {
                    await store.ClaimWithStatusAsync(created.Key, new MicroVmStatus { Phase = Phase.Provisioning, Pid = i }, created.ResourceVersion);
                    output.WriteLine($"acked-claim-status {spec.Id}");
                }

                if (i % 7 == 0)
                {
                    await store.ClaimAsync(created.Key);
                    output.WriteLine($"acked-claim {spec.Id}");
                }
            }
        }));
        await Task.WhenAll(tasks);
        await store.DisposeAsync();
        return 0;
    }
}
