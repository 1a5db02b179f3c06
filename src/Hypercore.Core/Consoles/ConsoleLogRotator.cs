using Hypercore.Drivers;
using Hypercore.Store;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Consoles;

/// <summary>Console log settings (section "Consoles").</summary>
public sealed class ConsoleLogOptions
{
    public const string Section = "Consoles";

    /// <summary>Smallest cap accepted: below this a boot log would not even fit.</summary>
    public const long MinMaxBytes = 4096;

    /// <summary>A console log larger than this is rotated to console.log.1 (one part kept). Default 16 MiB.</summary>
    public long MaxBytes { get; set; } = 16 * 1024 * 1024;

    /// <summary>How often the logs are measured. A guest may overshoot the cap by what it writes in one interval. Default 1 s.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromSeconds(1);
}

internal sealed class ConsoleLogOptionsValidator : IValidateOptions<ConsoleLogOptions>
{
    public ValidateOptionsResult Validate(string? name, ConsoleLogOptions o)
    {
        var errors = new List<string>();
        if (o.MaxBytes < ConsoleLogOptions.MinMaxBytes)
        {
            errors.Add($"Consoles:MaxBytes must be at least {ConsoleLogOptions.MinMaxBytes}, got {o.MaxBytes}");
        }

        if (o.CheckInterval <= TimeSpan.Zero)
        {
            errors.Add("Consoles:CheckInterval must be positive");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// Keeps every VM's console log under <see cref="ConsoleLogOptions.MaxBytes"/> by copy-truncate into one rotated part
/// (<see cref="ConsoleLogFiles.RotateIfOver"/>). It only measures and rotates files the hypervisors write themselves,
/// so VMs keep logging while the daemon is down (and rotation resumes when it is back). The paths come from the
/// drivers (<see cref="IHypervisorDriver.ConsoleLogPath"/>), never from stored status.
/// </summary>
public sealed partial class ConsoleLogRotator(
    IMicroVmStore store,
    DriverRegistry drivers,
    IOptions<ConsoleLogOptions> options,
    TimeProvider time,
    ILogger<ConsoleLogRotator> log) : BackgroundService
{
    /// <summary>One pass over every VM in the store; returns how many logs were rotated.</summary>
    public async Task<int> RotateAllAsync(CancellationToken ct)
    {
        var max = options.Value.MaxBytes;
        var rotated = 0;
        foreach (var vm in await store.ListAsync(null, ct))
        {
            if (!drivers.TryGet(vm.Spec.Provider, out var driver))
            {
                continue;
            }

            string path;
            try
            {
                path = driver.ConsoleLogPath(vm);
            }
            catch (Exception ex) when (ex is DriverException or ArgumentException)
            {
                continue; // a uid no driver can name a directory for has no console either
            }

            try
            {
                var bytes = ConsoleLogFiles.RotateIfOver(path, max);
                if (bytes > 0)
                {
                    rotated++;
                    LogRotated(vm.Key.ToString(), path, bytes);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                LogRotateFailed(vm.Key.ToString(), path, ex.Message);
            }
        }

        return rotated;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.CheckInterval, time);
        do
        {
            try
            {
                await RotateAllAsync(stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                LogPassFailed(ex.Message); // the store may be briefly unreachable; try again next tick
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    [LoggerMessage(1400, LogLevel.Information, "{Key}: console log {Path} rotated ({Bytes} bytes to .1)")]
    private partial void LogRotated(string key, string path, long bytes);

    [LoggerMessage(1401, LogLevel.Warning, "{Key}: cannot rotate console log {Path}: {Message}")]
    private partial void LogRotateFailed(string key, string path, string message);

    [LoggerMessage(1402, LogLevel.Warning, "console log rotation pass failed: {Message}")]
    private partial void LogPassFailed(string message);
}

public static class ConsoleLogServiceCollectionExtensions
{
    /// <summary>Caps every VM's console log (needs the store and the driver registry).</summary>
    public static IServiceCollection AddConsoleLogRotation(this IServiceCollection services, Action<ConsoleLogOptions>? configure = null)
    {
        var builder = services.AddOptions<ConsoleLogOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        builder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ConsoleLogOptions>, ConsoleLogOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<ConsoleLogRotator>();
        services.AddHostedService(sp => sp.GetRequiredService<ConsoleLogRotator>());
        return services;
    }
}
