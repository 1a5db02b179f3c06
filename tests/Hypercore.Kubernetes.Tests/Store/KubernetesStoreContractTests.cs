using Hypercore.Kubernetes.Tests.Support;
using Hypercore.Store;
using Hypercore.Store.Kubernetes;
using Hypercore.Store.Tests.Contract;

namespace Hypercore.Kubernetes.Tests.Store;

/// <summary>The shared store contract, against MicroVM custom resources on the fake API server.</summary>
[TestFixture]
public sealed class KubernetesStoreContractTests : StoreContractTests
{
    private FakeCluster? _cluster;
    private KubernetesMicroVmStore? _store;

    /// <summary>The contract's rich spec names node-1; this store is that node's.</summary>
    private const string Node = "node-1";

    protected override async Task<IMicroVmStore> CreateStoreAsync()
    {
        _cluster = await FakeCluster.StartAsync();
        try
        {
            _store = _cluster.NewStore(Node);
        }
        catch
        {
            // NUnit skips this level's TearDown when the base SetUp fails: clean up here.
            await _cluster.DisposeAsync();
            _cluster = null;
            throw;
        }

        return _store;
    }

    protected override Task<IMicroVmStore> ReopenAsync()
    {
        _store!.Dispose();
        _store = _cluster!.NewStore(Node);
        return Task.FromResult<IMicroVmStore>(_store);
    }

    [TearDown]
    public async Task TearDownClusterAsync()
    {
        _store?.Dispose(); // the cluster disposes it too; disposing twice is harmless
        _store = null;
        if (_cluster is not null)
        {
            var faults = _cluster.Server.Faults;
            await _cluster.DisposeAsync();
            _cluster = null;
            faults.Should().BeEmpty("the fake API server must not fail internally");
        }
    }
}
