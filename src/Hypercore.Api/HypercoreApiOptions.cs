using Microsoft.Extensions.Options;

namespace Hypercore.Api;

/// <summary>Settings of the gRPC / HTTP facade (section "Api").</summary>
public sealed class HypercoreApiOptions
{
    public const string Section = "Api";

    /// <summary>How often a followed console log is checked for new output. Default 250 ms.</summary>
    public TimeSpan LogPollInterval { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Events a Watch stream may leave unread before it is ended with ResourceExhausted (the client should list and
    /// watch again): one slow client must never hold up the daemon or other watchers. Default 1000.
    /// </summary>
    public int WatchBufferEvents { get; set; } = 1000;

    /// <summary>Largest chunk of console output sent in one Logs message. Default 32 KiB.</summary>
    public int LogChunkBytes { get; set; } = 32 * 1024;
}

internal sealed class HypercoreApiOptionsValidator : IValidateOptions<HypercoreApiOptions>
{
    public ValidateOptionsResult Validate(string? name, HypercoreApiOptions o)
    {
        var errors = new List<string>();
        if (o.LogPollInterval <= TimeSpan.Zero)
        {
            errors.Add($"Api:LogPollInterval must be positive, got {o.LogPollInterval}");
        }

        if (o.WatchBufferEvents is < 1 or > 1_000_000)
        {
            errors.Add($"Api:WatchBufferEvents must be between 1 and 1000000, got {o.WatchBufferEvents}");
        }

        if (o.LogChunkBytes is < 512 or > 4 * 1024 * 1024)
        {
            errors.Add($"Api:LogChunkBytes must be between 512 and 4194304, got {o.LogChunkBytes}");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
