using Microsoft.Extensions.Options;

namespace Hypercore.Api;

/// <summary>Settings of the gRPC / HTTP facade (section "Api").</summary>
public sealed class HypercoreApiOptions
{
    public const string Section = "Api";

    /// <summary>
    /// Where named boot images live: <c>&lt;ImageDirectory&gt;/&lt;name&gt;/{vmlinuz, initrd.img?, rootfs.img?}</c>.
    /// A kernel.image that is not an absolute path is looked up here. Default /var/lib/hypercore/images.
    /// </summary>
    public string ImageDirectory { get; set; } = "/var/lib/hypercore/images";

    /// <summary>How often a followed console log is checked for new output. Default 250 ms.</summary>
    public TimeSpan LogPollInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// How many times Start/Stop/Pause/Resume re-read and retry when the record changed under them (the reconciler
    /// writes status concurrently). Default 5.
    /// </summary>
    public int LifecycleRetries { get; set; } = 5;

    /// <summary>Largest chunk of console output sent in one Logs message. Default 32 KiB.</summary>
    public int LogChunkBytes { get; set; } = 32 * 1024;
}

internal sealed class HypercoreApiOptionsValidator : IValidateOptions<HypercoreApiOptions>
{
    public ValidateOptionsResult Validate(string? name, HypercoreApiOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.ImageDirectory) || !Path.IsPathFullyQualified(o.ImageDirectory))
        {
            errors.Add($"Api:ImageDirectory must be an absolute path, got \"{o.ImageDirectory}\"");
        }

        if (o.LogPollInterval <= TimeSpan.Zero)
        {
            errors.Add($"Api:LogPollInterval must be positive, got {o.LogPollInterval}");
        }

        if (o.LifecycleRetries is < 1 or > 100)
        {
            errors.Add($"Api:LifecycleRetries must be between 1 and 100, got {o.LifecycleRetries}");
        }

        if (o.LogChunkBytes is < 512 or > 4 * 1024 * 1024)
        {
            errors.Add($"Api:LogChunkBytes must be between 512 and 4194304, got {o.LogChunkBytes}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
