using Microsoft.Extensions.Options;

namespace Hypercore.Operations;

/// <summary>Settings of the application layer (section "Operations").</summary>
public sealed class MicroVmOperationsOptions
{
    public const string Section = "Operations";

    /// <summary>
    /// Where named boot images live: <c>&lt;ImageDirectory&gt;/&lt;name&gt;/{vmlinuz, initrd.img?, rootfs.img?}</c>.
    /// A kernel.image that is not an absolute path is looked up here. Default /var/lib/hypercore/images.
    /// </summary>
    public string ImageDirectory { get; set; } = "/var/lib/hypercore/images";

    /// <summary>
    /// How many times Start/Stop/Pause/Resume re-read and retry when the record changed under them (the reconciler
    /// writes status concurrently). Default 5.
    /// </summary>
    public int LifecycleRetries { get; set; } = 5;
}

internal sealed class MicroVmOperationsOptionsValidator : IValidateOptions<MicroVmOperationsOptions>
{
    public ValidateOptionsResult Validate(string? name, MicroVmOperationsOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.ImageDirectory) || !Path.IsPathFullyQualified(o.ImageDirectory))
        {
            errors.Add($"Operations:ImageDirectory must be an absolute path, got \"{o.ImageDirectory}\"");
        }

        if (o.LifecycleRetries is < 1 or > 100)
        {
            errors.Add($"Operations:LifecycleRetries must be between 1 and 100, got {o.LifecycleRetries}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
