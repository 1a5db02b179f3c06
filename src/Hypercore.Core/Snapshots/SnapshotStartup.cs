using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Hypercore.Snapshots;

/// <summary>At start, removes what a daemon that died while writing or deleting a snapshot left behind.</summary>
public sealed partial class SnapshotStartup(SnapshotStore store, ILogger<SnapshotStartup> log) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var removed = store.CollectGarbage();
        if (removed > 0)
        {
            LogCollected(removed, store.Root);
        }

        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(1162, LogLevel.Information, "removed {Count} half-written or half-deleted snapshot directories under {Root}")]
    private partial void LogCollected(int count, string root);
}
