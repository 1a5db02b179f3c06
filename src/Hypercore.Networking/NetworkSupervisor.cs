using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Hypercore.Networking;

/// <summary>
/// With managed networking on: makes the bridge, brings the hosts file and nftables table in line with the leases
/// (which a daemon killed mid-change may have left behind), then keeps dnsmasq running: one that is already ours is
/// adopted (it served DHCP while the daemon was down), one that died is started again.
/// dnsmasq is left running when the daemon stops, like the VMs it serves.
/// </summary>
public sealed partial class NetworkSupervisor(NodeNetwork network, TimeProvider time, ILogger<NetworkSupervisor> log) : BackgroundService
{
    /// <summary>How often dnsmasq is checked.</summary>
    public static readonly TimeSpan CheckInterval = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var failures = 0;
        var started = false;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                if (!started || network.DnsmasqPid is null)
                {
                    // First round, or dnsmasq died: the bridge may have gone with it; bring everything in line.
                    await network.EnsureBridgeAsync(stoppingToken);
                    await network.SyncAsync(stoppingToken);
                    var pid = await network.EnsureDnsmasqAsync(stoppingToken);
                    if (started)
                    {
                        LogDnsmasqRestarted(pid);
                    }

                    started = true;
                }

                failures = 0;
                await Task.Delay(CheckInterval, time, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Never let the host stop over the node network (a missing dnsmasq, a bridge that cannot be made):
                // VMs without managed interfaces run on, and the VMs that need it fail their start with the reason.
                failures++;
                var wait = TimeSpan.FromSeconds(Math.Min(30, 1 << Math.Min(failures, 5)));
                LogNetworkFailed(ex.Message, wait.TotalSeconds);
                try
                {
                    await Task.Delay(wait, time, stoppingToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    [LoggerMessage(EventId = 3652, Level = LogLevel.Warning, Message = "dnsmasq for the managed bridge had exited; started it again (pid {Pid})")]
    private partial void LogDnsmasqRestarted(int pid);

    [LoggerMessage(EventId = 3653, Level = LogLevel.Error, Message = "Managed network setup failed: {Message}; trying again in {Seconds} s")]
    private partial void LogNetworkFailed(string message, double seconds);
}
