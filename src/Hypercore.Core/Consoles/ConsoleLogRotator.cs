using Hypercore.Drivers;
using Hypercore.Informers;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Hypercore.Composition;

namespace Hypercore.Consoles;

/// <summary>Console log settings (section "Consoles").</summary>
public sealed class ConsoleLogOptions
{
    public const string Section = "Consoles";

    /// <summary>Smallest cap accepted: below this a boot log would not even fit.</summary>
    public const long MinMaxBytes = 4096;

    /// <summary>
    /// The drivers' runtime directories live under this one: <c>RunDirectory/&lt;provider&gt;/&lt;uid&gt;/console.log</c>
    /// (the daemon's <c>&lt;state-dir&gt;/run</c>).
    /// </summary>
    public string RunDirectory { get; set; } = "";

    /// <summary>A console log larger than this is rotated to console.log.1 (one part kept). Default 16 MiB.</summary>
    public long MaxBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>How often the logs are measured. A guest may overshoot the cap by what it writes in one interval. Default 1 s.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Issue 15: how often every VM directory is walked. In between, each <see cref="CheckInterval"/> measures only the
    /// logs of VMs the store shows with a hypervisor that may be writing (not Stopped or Failed); the walk also caps logs of
    /// processes no record accounts for, which may overshoot by what they write in this interval. Default 1 minute.
    /// </summary>
    public TimeSpan FullScanInterval { get; set; } = TimeSpan.FromMinutes(1);
}

internal sealed class ConsoleLogOptionsValidator : IValidateOptions<ConsoleLogOptions>
{
    public ValidateOptionsResult Validate(string? name, ConsoleLogOptions o)
    {
        var errors = new List<string>();
        if (string.IsNullOrWhiteSpace(o.RunDirectory) || !Path.IsPathFullyQualified(o.RunDirectory))
        {
            errors.Add($"Consoles:RunDirectory must be an absolute path, got \"{o.RunDirectory}\"");
        }

        if (o.MaxBytes < ConsoleLogOptions.MinMaxBytes)
        {
            errors.Add($"Consoles:MaxBytes must be at least {ConsoleLogOptions.MinMaxBytes}, got {o.MaxBytes}");
        }

        if (o.CheckInterval <= TimeSpan.Zero)
        {
            errors.Add("Consoles:CheckInterval must be positive");
        }

        if (o.FullScanInterval <= TimeSpan.Zero)
        {
            errors.Add("Consoles:FullScanInterval must be positive");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// Keeps every VM's console log under <see cref="ConsoleLogOptions.MaxBytes"/> by copy-truncate into one rotated part
/// (<see cref="ConsoleLogFiles.RotateIfOver"/>). It only measures and rotates files the hypervisors write themselves,
/// so VMs keep logging while the daemon is down (and rotation resumes when it is back). It walks the runtime
/// directories, <c>RunDirectory/&lt;provider&gt;/&lt;uid&gt;/console.log</c>, which is where every driver's
/// <see cref="IHypervisorDriver.ConsoleLogPath"/> points (a path derived from the uid, never from stored status):
/// a local directory listing each second, instead of a store list (a Kubernetes API call) each second, and VMs a
/// store no longer knows are capped too.
/// </summary>
public sealed partial class ConsoleLogRotator(
    IOptions<ConsoleLogOptions> options,
    TimeProvider time,
    ILogger<ConsoleLogRotator> log,
    MicroVmInformer? informer = null) : BackgroundService
{
    /// <summary>One pass over every VM directory; returns how many logs were rotated.</summary>
    public int RotateAll()
    {
        var o = options.Value;
        var rotated = 0;
        foreach (var provider in RealDirectories(o.RunDirectory))
        {
            foreach (var vm in RealDirectories(provider))
            {
                rotated += RotateOne(Path.Combine(vm, "console.log"), o.MaxBytes);
            }
        }

        ConsoleLogFiles.ForgetRemovedLogs(); // the rotation counts of deleted VMs
        return rotated;
    }

    private int RotateOne(string path, long maxBytes)
    {
        try
        {
            var bytes = ConsoleLogFiles.RotateIfOver(path, maxBytes);
            if (bytes > 0)
            {
                LogRotated(path, bytes);
                return 1;
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            LogRotateFailed(path, ex.Message);
        }

        return 0;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.CheckInterval, time);
        using var active = informer is null ? null : new ActiveConsoles(informer); // issue 15, idle4: ConsoleLogRotator.Active.cs
        var fullScanDue = DateTimeOffset.MinValue;
        do
        {
            try
            {
                fullScanDue = Pass(active, fullScanDue);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                LogPassFailed(ex.Message); // e.g. the run directory is not there yet; try again next tick
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <summary>Subdirectories that are not symbolic links (a link planted in a VM directory is never followed).</summary>
    private static IEnumerable<string> RealDirectories(string path) =>
        Directory.Exists(path)
            ? new DirectoryInfo(path).EnumerateDirectories().Where(IsRealDirectory).Select(d => d.FullName)
            : [];

    // A symlinked directory is never followed: it could point anywhere on the host.
    private static bool IsRealDirectory(DirectoryInfo d) => (d.Attributes & FileAttributes.ReparsePoint) == 0;

    [LoggerMessage(1270, LogLevel.Information, "console log {Path} rotated ({Bytes} bytes to .1)")]
    private partial void LogRotated(string path, long bytes);

    [LoggerMessage(1271, LogLevel.Warning, "cannot rotate console log {Path}: {Message}")]
    private partial void LogRotateFailed(string path, string message);

    [LoggerMessage(1272, LogLevel.Warning, "console log rotation pass failed: {Message}")]
    private partial void LogPassFailed(string message);
}

public static class ConsoleLogServiceCollectionExtensions
{
    /// <summary>Caps every VM's console log under <see cref="ConsoleLogOptions.RunDirectory"/>.</summary>
    public static IServiceCollection AddConsoleLogRotation(this IServiceCollection services, Action<ConsoleLogOptions>? configure = null)
    {
        services.AddValidatedOptions<ConsoleLogOptions, ConsoleLogOptionsValidator>(configure);
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new ConsoleLogRotator( // a factory: Composition/ServiceFactories says why
            sp.GetRequiredService<IOptions<ConsoleLogOptions>>(), sp.GetRequiredService<TimeProvider>(), sp.LoggerFor<ConsoleLogRotator>(),
            sp.GetService<MicroVmInformer>()));
        services.AddHostedService(sp => sp.GetRequiredService<ConsoleLogRotator>());
        return services;
    }
}
