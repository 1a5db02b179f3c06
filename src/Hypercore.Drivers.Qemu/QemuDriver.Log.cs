using Microsoft.Extensions.Logging;

namespace Hypercore.Drivers.Qemu;

public sealed partial class QemuDriver
{
    [LoggerMessage(3100, LogLevel.Information, "qemu VM {Uid} started: pid {Pid}, {Detail}, {Elapsed} to QMP running")]
    private partial void LogStarted(string uid, int pid, string detail, TimeSpan elapsed);

    [LoggerMessage(3101, LogLevel.Information, "qemu VM {Uid} (pid {Pid}) stopped: {How}")]
    private partial void LogStopped(string uid, int pid, string how);

    [LoggerMessage(3102, LogLevel.Information, "qemu VM {Uid}: {Command} done")]
    private partial void LogControl(string uid, string command);

    [LoggerMessage(3103, LogLevel.Information, "qemu VM {Uid}: runtime directory and taps removed")]
    private partial void LogCleanedUp(string uid);

    [LoggerMessage(3104, LogLevel.Warning, "qemu VM {Uid} (pid {Pid}) is alive but QMP is unreachable: {Reason}")]
    private partial void LogQmpUnreachable(string uid, int pid, string reason);

    [LoggerMessage(3105, LogLevel.Information, "KVM is usable: {Reason}")]
    private partial void LogKvmUsable(string reason);

    [LoggerMessage(3106, LogLevel.Warning, "KVM is not usable, using TCG: {Reason}")]
    private partial void LogKvmUnusable(string reason);

    [LoggerMessage(3107, LogLevel.Debug, "found {Count} live qemu VMs under {Directory}")]
    private partial void LogListed(int count, string directory);
}
