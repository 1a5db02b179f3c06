namespace Hypercore.Drivers.Vmm.Qmp;

/// <summary>A QMP error reply (<see cref="ErrorClass"/> is QEMU's "class") or a transport failure.</summary>
public sealed class QmpException(string errorClass, string message) : Exception(message)
{
    /// <summary>QEMU's error class (GenericError, CommandNotFound, ...) or Timeout, Disconnected, ProtocolError, or Refused
    /// (the socket path is not the socket QEMU made: a link or a second hard link; <see cref="HostAccess.NotAVmmSocketException"/>).</summary>
    public string ErrorClass { get; } = errorClass;
}
