using Hypercore.Api.Tests.Fakes;
using Hypercore.Store;

namespace Hypercore.Api.Tests.Hosting;

/// <summary>The store the API tests run against.</summary>
public static class TestStores
{
    public static Task<(IMicroVmStore Store, IAsyncDisposable? Owner)> CreateAsync(string directory)
    {
        _ = directory;
        return Task.FromResult<(IMicroVmStore, IAsyncDisposable?)>((new InMemoryMicroVmStore(), null));
    }
}
