using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Microsoft.Extensions.DependencyInjection;

namespace Hypercore.Store.Tests.Sqlite;

/// <summary>Issue 15: the reconciler's version check, which lets it use the informer's parsed copy only when current.</summary>
[TestFixture]
public sealed class SqliteVersionCheckTests : OpenStoreTest
{
    private static MicroVmSpec Spec(string id) => new() { Id = id, Kernel = new KernelSpec { Image = "/images/vmlinuz" } };

    [Test]
    public async Task IsCurrent_StoredVersion_True_AnyOtherVersion_False()
    {
        var vm = await Store.CreateAsync(Spec("a"));

        (await Store.IsCurrentAsync(vm.Key, vm.ResourceVersion)).Should().BeTrue();
        (await Store.IsCurrentAsync(vm.Key, "0")).Should().BeFalse();
        (await Store.IsCurrentAsync(vm.Key, "not-a-number")).Should().BeFalse();
    }

    [Test]
    public async Task IsCurrent_AfterStatusSpecOrClaimWrite_OldVersionIsNotCurrent()
    {
        var v1 = await Store.CreateAsync(Spec("a"));
        var v2 = await Store.UpdateStatusAsync(v1.Key, v1.Status with { Phase = Phase.Running }, v1.ResourceVersion);
        (await Store.IsCurrentAsync(v1.Key, v1.ResourceVersion)).Should().BeFalse();

        var v3 = await Store.UpdateSpecAsync(v2.Key, v2.Spec with { Vcpu = 2 }, v2.ResourceVersion);
        (await Store.IsCurrentAsync(v2.Key, v2.ResourceVersion)).Should().BeFalse();

        var v4 = await Store.ClaimAsync(v3.Key);
        (await Store.IsCurrentAsync(v3.Key, v3.ResourceVersion)).Should().BeFalse();
        (await Store.IsCurrentAsync(v4.Key, v4.ResourceVersion)).Should().BeTrue();
    }

    [Test]
    public async Task IsCurrent_DeletedOrRecreatedRecord_False()
    {
        var old = await Store.CreateAsync(Spec("a"));
        await Store.RemoveAsync(old.Key);
        (await Store.IsCurrentAsync(old.Key, old.ResourceVersion)).Should().BeFalse();

        var fresh = await Store.CreateAsync(Spec("a"));
        (await Store.IsCurrentAsync(old.Key, old.ResourceVersion)).Should().BeFalse("a new record under the same key has a new version");
        (await Store.IsCurrentAsync(fresh.Key, fresh.ResourceVersion)).Should().BeTrue();
        (await Store.IsCurrentAsync(new VmKey("default", "missing"), "1")).Should().BeFalse();
    }

    [Test]
    public async Task Composition_SqliteStoreAndReconciler_ReconcilerReadsTheInformersCopyWhenCurrent()
    {
        using var database = new TempDatabase();
        var services = database.Services();
        services.AddSingleton(new Hypercore.Drivers.DriverRegistry([], "qemu"));
        services.AddReconciler(o => o.NodeName = "test-node");
        await using var provider = services.BuildServiceProvider();
        var store = provider.GetRequiredService<IMicroVmStore>();
        var informer = provider.GetRequiredService<Hypercore.Informers.MicroVmInformer>();
        var reconciler = provider.GetRequiredService<Reconciler>();
        await informer.StartAsync(CancellationToken.None);
        try
        {
            // Another node's VM: the reconcile reads the record and stops there, so the read is all it does.
            var vm = await store.CreateAsync(Spec("a") with { NodeName = "other-node" });
            var waited = System.Diagnostics.Stopwatch.StartNew();
            while (informer.Get(vm.Key)?.ResourceVersion != vm.ResourceVersion && waited.Elapsed < TimeSpan.FromSeconds(30))
            {
                await Task.Delay(10);
            }

            (await reconciler.ReconcileAsync(vm.Key, CancellationToken.None)).Outcome.Should().Be(ReconcileOutcome.Done);
            reconciler.CachedReads.Should().Be(1, "the informer's copy was current");

        }
        finally
        {
            await informer.StopAsync(CancellationToken.None);
        }
    }
}
