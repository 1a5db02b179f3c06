using Hypercore.MicroVms;
using Hypercore.Reconciliation;
using Hypercore.Testing;
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
    public async Task IsCurrent_ManyChecksWithWritesBetween_EachReadsTheLatestCommit()
    {
        // The check's statement is kept with its reader connection across reads: each check must start a new read of the
        // database, not keep the snapshot of the one before.
        var vm = await Store.CreateAsync(Spec("a"));
        for (var i = 0; i < 20; i++)
        {
            (await Store.IsCurrentAsync(vm.Key, vm.ResourceVersion)).Should().BeTrue();
            var next = await Store.UpdateStatusAsync(vm.Key, vm.Status with { ObservedGeneration = i + 1 }, vm.ResourceVersion);
            (await Store.IsCurrentAsync(vm.Key, vm.ResourceVersion)).Should().BeFalse("a write committed after the last check");
            vm = next;
        }
    }

    [Test]
    public async Task IsCurrent_LeavesNoReadOpen_TheWalCanBeCheckpointedAndTruncated()
    {
        var vm = await Store.CreateAsync(Spec("a"));
        (await Store.IsCurrentAsync(vm.Key, vm.ResourceVersion)).Should().BeTrue();

        // A statement left stepped would hold its read transaction, and the checkpoint could not truncate the WAL past it.
        using var connection = Database.OpenConnection();
        using var checkpoint = connection.CreateCommand();
        checkpoint.CommandText = "PRAGMA wal_checkpoint(TRUNCATE);";
        using var reader = checkpoint.ExecuteReader();
        reader.Read().Should().BeTrue();
        reader.GetInt64(0).Should().Be(0, "no reader of the store blocks the checkpoint");
    }

    [Test]
    public async Task IsCurrent_DisposedStore_ThrowsObjectDisposed()
    {
        var vm = await Store.CreateAsync(Spec("a"));
        (await Store.IsCurrentAsync(vm.Key, vm.ResourceVersion)).Should().BeTrue();
        await Store.DisposeAsync();

        var act = async () => await Store.IsCurrentAsync(vm.Key, vm.ResourceVersion);

        await act.Should().ThrowAsync<ObjectDisposedException>();
    }

    [Test]
    public async Task IsCurrent_CancelledToken_ThrowsBeforeReading()
    {
        var vm = await Store.CreateAsync(Spec("a"));
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        var act = () => Store.IsCurrentAsync(vm.Key, vm.ResourceVersion, cancelled.Token);

        act.Should().Throw<OperationCanceledException>();
    }

    [Test]
    public async Task IsCurrent_ConcurrentChecksThenDispose_LeaveNoFileOfTheDatabaseOpen()
    {
        // More concurrent readers than the pool keeps: the pool closes the surplus connections, and disposing the store the
        // rest. A statement left unfinalized would keep its closed connection (and its files) open in SQLite.
        var vm = await Store.CreateAsync(Spec("a"));
        var checks = Enumerable.Range(0, 32).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < 200; i++)
            {
                (await Store.IsCurrentAsync(vm.Key, vm.ResourceVersion)).Should().BeTrue();
            }
        }));
        await Task.WhenAll(checks);
        OpenFilesOf(Database.Path).Should().BeGreaterThan(0, "the store is open");

        await Store.DisposeAsync();

        OpenFilesOf(Database.Path).Should().Be(0);
    }

    [Test]
    public async Task IsCurrent_Warm_AllocatesNothingPerCall()
    {
        for (var i = 0; i < 50; i++)
        {
            await Store.CreateAsync(Spec($"vm-{i}"));
        }

        var vm = await Store.CreateAsync(Spec("a"));
        var missing = new VmKey("default", "missing");
        Check(100); // the connection and its statement made, the pool's per-thread list too

        const int calls = 10_000;
        var before = GC.GetAllocatedBytesForCurrentThread();
        Check(calls);
        var perCall = (double)(GC.GetAllocatedBytesForCurrentThread() - before) / calls;

        // The ADO.NET read it replaces allocated a data reader and two boxed values per call (~0.3 KB).
        perCall.Should().BeLessThan(8, "a warm check makes no object");

        void Check(int n)
        {
            for (var i = 0; i < n; i++)
            {
                // Runs on this thread and completes at once: its allocations are this thread's.
                var current = Store.IsCurrentAsync(vm.Key, vm.ResourceVersion);
                var absent = Store.IsCurrentAsync(missing, "1");
                if (!current.IsCompletedSuccessfully || !current.Result || !absent.IsCompletedSuccessfully || absent.Result)
                {
                    throw new InvalidOperationException("the check did not complete at once with the expected answer");
                }
            }
        }
    }

    /// <summary>File descriptors of this process open on the database or its WAL and shared-memory files.</summary>
    private static int OpenFilesOf(string path)
    {
        var names = new[] { path, path + "-wal", path + "-shm" };
        return ProcFs.OpenDescriptors(names.Contains);
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
