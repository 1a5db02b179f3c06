using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Store.Kubernetes.Snapshots;

/// <summary>Timing of the MicroVMSnapshot controller (section "Kubernetes:Snapshots").</summary>
public sealed class MicroVmSnapshotOptions
{
    public const string Section = "Kubernetes:Snapshots";

    /// <summary>How long one watch runs before the controller lists again (a full resync). Default 60 s.</summary>
    public TimeSpan ResyncInterval { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How soon a snapshot waiting for its MicroVM (or whose reconcile failed) is looked at again. Default 2 s.</summary>
    public TimeSpan RetryInterval { get; set; } = TimeSpan.FromSeconds(2);
}

internal sealed class MicroVmSnapshotOptionsValidator : IValidateOptions<MicroVmSnapshotOptions>
{
    public ValidateOptionsResult Validate(string? name, MicroVmSnapshotOptions o)
    {
        var errors = new List<string>();
        if (o.ResyncInterval < TimeSpan.FromSeconds(1))
        {
            errors.Add($"{MicroVmSnapshotOptions.Section}:ResyncInterval must be at least 1 s");
        }

        if (o.RetryInterval <= TimeSpan.Zero)
        {
            errors.Add($"{MicroVmSnapshotOptions.Section}:RetryInterval must be positive");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

public static class MicroVmSnapshotServiceCollectionExtensions
{
    /// <summary>
    /// Adds the MicroVMSnapshot controller (Kubernetes mode; needs <see cref="KubernetesStoreOptions"/>, the
    /// Kubernetes store as <see cref="IMicroVmStore"/> and the node's <see cref="Hypercore.Snapshots.SnapshotManager"/>).
    /// </summary>
    public static IServiceCollection AddMicroVmSnapshotController(this IServiceCollection services, Action<MicroVmSnapshotOptions>? configure = null)
    {
        var builder = services.AddOptions<MicroVmSnapshotOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        builder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<MicroVmSnapshotOptions>, MicroVmSnapshotOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp => new MicroVmSnapshotController(
            new Client.KubernetesApiClient(KubernetesConfig.Build(sp.GetRequiredService<IOptions<KubernetesStoreOptions>>().Value)),
            sp.GetRequiredService<IMicroVmStore>(), sp.GetRequiredService<Hypercore.Snapshots.SnapshotManager>(),
            sp.GetRequiredService<IOptions<KubernetesStoreOptions>>(), sp.GetRequiredService<IOptions<MicroVmSnapshotOptions>>(),
            sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<MicroVmSnapshotController>>()));
        services.AddHostedService(sp => sp.GetRequiredService<MicroVmSnapshotController>());
        return services;
    }
}
