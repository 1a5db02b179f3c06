using Hypercore.Drivers;

namespace Hypercore.HostAccess;

/// <summary>A spec names a host file the node does not hand out; the message names the path and the setting that would allow it.</summary>
public sealed class HostPathNotAllowedException(string message) : DriverException(ReasonHostPathNotAllowed, message)
{
    public const string ReasonHostPathNotAllowed = "HostPathNotAllowed";
}

/// <summary>A scratch disk would exceed the per-VM limit or fill the state directory; nothing was created.</summary>
public sealed class ScratchDiskRefusedException(string message) : DriverException(ReasonScratchDiskRefused, message)
{
    public const string ReasonScratchDiskRefused = "ScratchDiskRefused";
}
