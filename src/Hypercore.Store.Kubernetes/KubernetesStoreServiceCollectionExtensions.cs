using Hypercore.Store;
using Hypercore.Store.Kubernetes.Client;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Hypercore.Store.Kubernetes;

public static class KubernetesStoreServiceCollectionExtensions
{
    /// <summary>
    /// Registers <see cref="KubernetesMicroVmStore"/> as the <see cref="IMicroVmStore"/> singleton, with
    /// <see cref="KubernetesStoreOptions"/> validated at start. The daemon's <c>--store kubernetes</c> calls this and
    /// should set <see cref="KubernetesStoreOptions.NodeName"/> to the same value as the reconciler's node name.
    /// </summary>
    public static IServiceCollection AddKubernetesStore(this IServiceCollection services, Action<KubernetesStoreOptions>? configure = null)
    {
        var builder = services.AddOptions<KubernetesStoreOptions>();
        if (configure is not null)
        {
            builder.Configure(configure);
        }

        builder.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KubernetesStoreOptions>, KubernetesStoreOptionsValidator>());
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<KubernetesStoreOptions>>();
            var client = new KubernetesApiClient(KubernetesConfig.Build(options.Value));
            return new KubernetesMicroVmStore(client, options, sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<KubernetesMicroVmStore>>(), Random.Shared, ownsClient: true);
        });
        services.TryAddSingleton<IMicroVmStore>(sp => sp.GetRequiredService<KubernetesMicroVmStore>());
        services.TryAddSingleton<Reconciliation.IMovedAwayLookup>(sp => sp.GetRequiredService<KubernetesMicroVmStore>()); // issue 13
        return services;
    }
}

/// <summary>Where the API server and credentials come from.</summary>
public static class KubernetesConfig
{
    /// <summary>
    /// An explicit kubeconfig wins; in a pod the service account is used; otherwise <c>$KUBECONFIG</c> or
    /// <c>~/.kube/config</c>. No silent fallback to localhost:8080: without any of these it fails with a clear message.
    /// </summary>
    public static KubernetesApiConfig Build(KubernetesStoreOptions options)
    {
        var context = options.Context.Length > 0 ? options.Context : null;
        if (options.Kubeconfig.Length > 0)
        {
            return KubernetesApiConfig.FromKubeconfig(options.Kubeconfig, context);
        }

        if (KubernetesApiConfig.IsInCluster())
        {
            return KubernetesApiConfig.InCluster();
        }

        var env = Environment.GetEnvironmentVariable("KUBECONFIG");
        var path = !string.IsNullOrEmpty(env)
            ? env.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(File.Exists)
            : File.Exists(KubernetesApiConfig.DefaultKubeconfigPath) ? KubernetesApiConfig.DefaultKubeconfigPath : null;
        return path is not null
            ? KubernetesApiConfig.FromKubeconfig(path, context)
            : throw new InvalidOperationException(
                "no Kubernetes API configuration: set Kubernetes:Kubeconfig, KUBECONFIG or ~/.kube/config, or run in a pod with a service account");
    }
}
