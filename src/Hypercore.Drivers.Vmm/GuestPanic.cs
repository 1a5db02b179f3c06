namespace Hypercore.Drivers.Vmm;

/// <summary>
/// Tells a guest kernel panic from a power-off by the guest's serial console. A panicking guest booted with
/// <c>panic=N</c> reboots, and every driver turns a guest reboot into the end of the VM (QEMU <c>-no-reboot</c>,
/// firecracker and cloud-hypervisor exit), which looks exactly like a power-off or, from outside, like the process
/// dying; only the console says "Kernel panic - not syncing: ...". Used by every driver on the console log it keeps.
/// </summary>
public static class GuestPanic
{
    /// <summary>What Linux prints when it panics (the rest of the line says why).</summary>
    public const string Marker = "Kernel panic - not syncing";

    /// <summary>Where a boot begins on the console: the log is appended across restarts, only the last boot counts.</summary>
    public const string BootMarker = "Linux version";

    /// <summary>How much of the log's end is read: a panic is among the last lines a guest prints.</summary>
    public const int TailBytes = 64 * 1024;

    /// <summary>
    /// "guest kernel panic: Kernel panic - not syncing: …" when the last boot in <paramref name="consoleLog"/> panicked,
    /// else null (also when the file is missing or unreadable).
    /// </summary>
    public static string? FromConsole(string consoleLog)
    {
        string tail;
        try
        {
            // Never through a link, never a FIFO (ConsoleLogFiles.OpenRead): the VM's directory may hold files of the VMM's user.
            using var stream = Hypercore.Consoles.ConsoleLogFiles.OpenRead(consoleLog);
            if (stream is null)
            {
                return null;
            }

            stream.Seek(Math.Max(0, stream.Length - TailBytes), SeekOrigin.Begin);
            using var reader = new StreamReader(stream);
            tail = reader.ReadToEnd();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        return FromText(tail);
    }

    /// <summary>The panic line of the last boot in <paramref name="console"/>, as <see cref="FromConsole"/> words it.</summary>
    public static string? FromText(string console)
    {
        var boot = console.LastIndexOf(BootMarker, StringComparison.Ordinal);
        var current = boot < 0 ? console : console[boot..];
        var at = current.IndexOf(Marker, StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        var end = current.IndexOfAny(['\r', '\n'], at);
        return "guest kernel panic: " + (end < 0 ? current[at..] : current[at..end]).Trim();
    }
}
