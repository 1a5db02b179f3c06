using Microsoft.Extensions.Logging;

namespace Hypercore.Drivers.Qemu;

public sealed partial class QemuDriver
{
    [LoggerMessage(3150, LogLevel.Information, "KVM is usable: {Reason}")]
    private static partial void LogKvmUsable(ILogger log, string reason);

    [LoggerMessage(3151, LogLevel.Warning, "KVM is not usable, using TCG: {Reason}")]
    private static partial void LogKvmUnusable(ILogger log, string reason);
}
