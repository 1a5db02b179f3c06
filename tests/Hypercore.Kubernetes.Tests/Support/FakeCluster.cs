using Hypercore.Kubernetes.TestServer;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Kubernetes.Client;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Hypercore.Kubernetes.Tests.Support;

/// <summary>A fake API server serving the repository's CRD, a kubeconfig for it, and stores and kubectl bound to it.</summary>
public sealed class FakeCluster : IAsyncDisposable
{
    private readonly List<IDisposable> _owned = [];

    private FakeCluster(FakeKubeApiServer server, DirectoryInfo dir)
    {
        Server = server;
        Directory = dir;
        KubeconfigPath = server.WriteKubeconfig(Path.Combine(dir.FullName, "kubeconfig"));
    }

    public FakeKubeApiServer Server { get; }

    public DirectoryInfo Directory { get; }

    public string KubeconfigPath { get; }

    public static async Task<FakeCluster> StartAsync(TimeSpan? bookmarkInterval = null)
    {
        var options = new FakeKubeApiServerOptions { BookmarkInterval = bookmarkInterval ?? TimeSpan.FromSeconds(1) };
        options.CrdFiles.Add(Repo.CrdFile);
        options.CrdFiles.Add(Repo.SnapshotCrdFile); // snapshots (issue 14)
        var server = await FakeKubeApiServer.StartAsync(options);
        return new FakeCluster(server, System.IO.Directory.CreateTempSubdirectory("hc-k8s-"));
    }

    public static KubernetesStoreOptions TestOptions(string node) => new()
    {
        NodeName = node,
        RequestTimeout = TimeSpan.FromSeconds(20),
        MaxRetries = 3,
        RetryBaseDelay = TimeSpan.FromMilliseconds(20),
        ReconnectBaseDelay = TimeSpan.FromMilliseconds(50),
        ReconnectMaxDelay = TimeSpan.FromSeconds(1),
        WatchTimeout = TimeSpan.FromMinutes(5),
    };

    public KubernetesMicroVmStore NewStore(string node = "node-1", Action<KubernetesStoreOptions>? configure = null)
    {
        var options = TestOptions(node);
        configure?.Invoke(options);
        var client = new KubernetesApiClient(KubernetesApiConfig.FromKubeconfig(KubeconfigFor(node)));
        var store = new KubernetesMicroVmStore(client, Options.Create(options), TimeProvider.System,
            new TestLogger<KubernetesMicroVmStore>(), new Random(7), ownsClient: true);
        lock (_owned)
        {
            _owned.Add(store);
        }

        return store;
    }

    /// <summary>A kubeconfig whose token is the node's name, so the server's request log tells nodes apart.</summary>
    public string KubeconfigFor(string node)
    {
        var path = Path.Combine(Directory.FullName, $"kubeconfig-{node}");
        return File.Exists(path) ? path : Server.WriteKubeconfig(path, token: node);
    }

    public KubectlRunner Kubectl() => new(KubeconfigPath, Path.Combine(Directory.FullName, "kubectl-cache"));

    public async ValueTask DisposeAsync()
    {
        try
        {
            lock (_owned)
            {
                foreach (var d in _owned)
                {
                    d.Dispose();
                }
            }

            await Server.DisposeAsync();
        }
        finally
        {
            Directory.Delete(recursive: true);
        }
    }
}
