using Microsoft.Extensions.Options;

namespace Hypercore.Drivers.Qemu;

/// <summary>Fails the daemon at start with a message naming the bad setting (rule 4).</summary>
public sealed class QemuOptionsValidator : IValidateOptions<QemuOptions>
{
    /// <summary>sun_path holds 108 bytes; leave room for "/&lt;uid&gt;/qmp.sock" with a 36-character uid.</summary>
    internal const int MaxRuntimeDirectoryLength = 107 - 47;

    public ValidateOptionsResult Validate(string? name, QemuOptions options)
    {
        var errors = options.QmpProblems(QemuOptions.SectionName);
        if (string.IsNullOrWhiteSpace(options.BinaryPath))
        {
            errors.Add("Qemu:BinaryPath must name the QEMU binary (e.g. qemu-system-x86_64 or /usr/bin/qemu-system-x86_64)");
        }

        if (Path.IsPathRooted(options.RuntimeDirectory) && options.RuntimeDirectory.Length > MaxRuntimeDirectoryLength)
        {
            errors.Add($"Qemu:RuntimeDirectory is {options.RuntimeDirectory.Length} characters; at most {MaxRuntimeDirectoryLength} keep the QMP socket path under the 108-byte Unix socket limit");
        }

        if (options.KvmProbeTimeout <= TimeSpan.Zero)
        {
            errors.Add("Qemu:KvmProbeTimeout must be positive");
        }

        if (options.TcgTscKhz is < 0)
        {
            errors.Add("Qemu:TcgTscKhz must be 0 (off), a frequency in kHz, or unset (auto)");
        }

        if (!string.IsNullOrEmpty(options.RunAs) && QemuUser.TryResolve(options.RunAs, out _) is { } bad)
        {
            errors.Add($"Qemu:RunAs {bad}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
