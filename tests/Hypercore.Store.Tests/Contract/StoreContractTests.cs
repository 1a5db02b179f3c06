using Hypercore.MicroVms;

namespace Hypercore.Store.Tests.Contract;

/// <summary>
/// What every <see cref="IMicroVmStore"/> must do, whatever holds the data (SQLite file, Kubernetes custom
/// resources). Uses only the port. A subclass provides the store and a way to reopen it over the same data.
/// </summary>
/// <remarks>
/// Each test works in two fresh namespaces (<see cref="Namespace"/>, <see cref="OtherNamespace"/>), chosen
/// before <see cref="CreateStoreAsync"/> runs, so a shared backend (a cluster) can create them there and tests
/// never see each other's records. The subclass disposes its stores and removes their data in its own [TearDown].
/// </remarks>
public abstract class StoreContractTests
{
    protected IMicroVmStore Store { get; private set; } = null!;

    protected string Namespace { get; private set; } = null!;

    protected string OtherNamespace { get; private set; } = null!;

    /// <summary>How long to wait for a watch event. Generous: the machine is shared and a cluster may be slow.</summary>
    protected virtual TimeSpan EventTimeout => TimeSpan.FromSeconds(30);

    /// <summary>Creates the store under test (empty, or at least without records in this test's namespaces).</summary>
    protected abstract Task<IMicroVmStore> CreateStoreAsync();

    /// <summary>
    /// Closes the current store and opens a new one over the same data (SQLite: the same file), as after a
    /// daemon restart. The returned store becomes <see cref="Store"/>.
    /// </summary>
    protected abstract Task<IMicroVmStore> ReopenAsync();

    /// <summary>A namespace name no other test uses.</summary>
    protected virtual string NewNamespaceName() => "t-" + Guid.NewGuid().ToString("N")[..12];

    [SetUp]
    public async Task SetUpStoreAsync()
    {
        Namespace = NewNamespaceName();
        OtherNamespace = NewNamespaceName();
        Store = await CreateStoreAsync();
    }

    // ------------------------------------------------------------------ create, get, list

    [Test]
    public async Task Create_NewSpec_ReturnsRecordWithUidGenerationOneAndInitialStatus()
    {
        var spec = Spec("vm-1");

        var created = await Store.CreateAsync(spec);

        created.Spec.Should().Be(spec);
        created.Key.Should().Be(new VmKey(Namespace, "vm-1"));
        created.Uid.Should().NotBeNullOrWhiteSpace();
        created.Generation.Should().Be(1);
        created.ResourceVersion.Should().NotBeNullOrWhiteSpace();
        created.Status.Phase.Should().Be(Phase.Pending);
        created.Claimed.Should().BeFalse();
        created.IsDeleting.Should().BeFalse();
    }

    [Test]
    public async Task Create_TwoRecords_GetDistinctUids()
    {
        var a = await Store.CreateAsync(Spec("vm-a"));
        var b = await Store.CreateAsync(Spec("vm-b"));

        a.Uid.Should().NotBe(b.Uid);
    }

    [Test]
    public async Task Get_AfterCreate_ReturnsTheCreatedRecord()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));

        var read = await Store.GetAsync(created.Key);

        read.Should().Be(created);
    }

    [Test]
    public async Task Get_Missing_ReturnsNull()
    {
        (await Store.GetAsync(new VmKey(Namespace, "nope"))).Should().BeNull();
    }

    [Test]
    public async Task GetByUid_AfterCreate_ReturnsTheRecord_AndNullForUnknownUid()
    {
        await Store.CreateAsync(Spec("vm-0"));
        var created = await Store.CreateAsync(Spec("vm-1"));

        (await Store.GetByUidAsync(created.Uid)).Should().Be(created);
        (await Store.GetByUidAsync(Guid.NewGuid().ToString("N"))).Should().BeNull();
    }

    [Test]
    public async Task List_OneNamespace_ReturnsOnlyItsRecordsOrderedById()
    {
        foreach (var id in new[] { "vm-c", "vm-a", "vm-b" })
        {
            await Store.CreateAsync(Spec(id));
        }

        await Store.CreateAsync(Spec("vm-0", OtherNamespace));

        var listed = await Store.ListAsync(Namespace);

        listed.Select(v => v.Spec.Id).Should().Equal("vm-a", "vm-b", "vm-c");
        listed.Should().OnlyContain(v => v.Spec.Namespace == Namespace);
    }

    [Test]
    public async Task List_AllNamespaces_OrdersByNamespaceThenId()
    {
        await Store.CreateAsync(Spec("vm-b", OtherNamespace));
        await Store.CreateAsync(Spec("vm-b"));
        await Store.CreateAsync(Spec("vm-a", OtherNamespace));
        await Store.CreateAsync(Spec("vm-a"));

        var ours = (await Store.ListAsync())
            .Where(v => v.Spec.Namespace == Namespace || v.Spec.Namespace == OtherNamespace)
            .Select(v => v.Key.ToString())
            .ToList();

        var (first, second) = string.CompareOrdinal(Namespace, OtherNamespace) < 0 ? (Namespace, OtherNamespace) : (OtherNamespace, Namespace);
        ours.Should().Equal($"{first}/vm-a", $"{first}/vm-b", $"{second}/vm-a", $"{second}/vm-b");
    }

    [Test]
    public async Task List_EmptyNamespace_ReturnsEmpty()
    {
        (await Store.ListAsync(Namespace)).Should().BeEmpty();
    }

    [Test]
    public async Task Create_DuplicateId_ReturnsAlreadyExists_AndChangesNothing()
    {
        var original = await Store.CreateAsync(Spec("vm-1"));

        var act = () => Store.CreateAsync(Spec("vm-1") with { Vcpu = 4 });

        (await act.Should().ThrowAsync<AlreadyExistsException>()).Which.Key.Should().Be(original.Key);
        (await Store.GetAsync(original.Key)).Should().Be(original);
        (await Store.ListAsync(Namespace)).Should().ContainSingle();
    }

    [Test]
    public async Task Create_SameIdInAnotherNamespace_Succeeds()
    {
        var a = await Store.CreateAsync(Spec("vm-1"));
        var b = await Store.CreateAsync(Spec("vm-1", OtherNamespace));

        a.Key.Should().NotBe(b.Key);
        (await Store.GetAsync(b.Key)).Should().Be(b);
    }

    [Test]
    public async Task Create_ConcurrentSameId_ExactlyOneSucceeds()
    {
        var attempts = Enumerable.Range(0, 8).Select(i => Store.CreateAsync(Spec("vm-1") with { Vcpu = i + 1 })).ToList();

        var outcomes = await Outcomes(attempts);

        outcomes.Count(o => o is null).Should().Be(1);
        outcomes.Where(o => o is not null).Should().AllBeOfType<AlreadyExistsException>();
        var winner = attempts.Single(t => t.IsCompletedSuccessfully).Result;
        (await Store.GetAsync(winner.Key)).Should().Be(winner);
    }

    [Test]
    public async Task Create_RichSpec_RoundTripsEqual_AfterReopen()
    {
        var spec = RichSpec("vm-rich");
        await Store.CreateAsync(spec);

        await ReopenStoreAsync();
        var read = await Store.GetAsync(new VmKey(Namespace, "vm-rich"));

        read.Should().NotBeNull();
        read!.Spec.Should().Be(spec);
        read.Spec.Should().BeEquivalentTo(spec);
    }

    // Guest health (issue 14).
    [Test]
    public async Task Probes_AndGuestReadyStatus_RoundTripEqual_AfterReopen()
    {
        var spec = Spec("vm-probes") with
        {
            Interfaces = [new NetworkInterfaceSpec { DeviceId = "eth0", Address = "10.0.0.2/24" }],
            ReadinessProbe = new ProbeSpec { Console = new ConsoleProbe("HYPERCORE-GUEST-READY"), PeriodSeconds = 1, FailureThreshold = 1 },
            LivenessProbe = new ProbeSpec { HttpGet = new HttpGetProbe(8080, "/healthz"), InitialDelaySeconds = 30, TimeoutSeconds = 2 },
            StartupProbe = new ProbeSpec { TcpSocket = new TcpSocketProbe(22), PeriodSeconds = 5, FailureThreshold = 60 },
        };
        var created = await Store.CreateAsync(spec);
        var status = RunningStatus() with
        {
            GuestReadyTime = new DateTimeOffset(2026, 11, 29, 20, 0, 5, TimeSpan.Zero),
            GuestReadySeconds = 8.375,
            ConsoleBootOffset = 12345,
        };
        await Store.UpdateStatusAsync(created.Key, status, created.ResourceVersion);

        await ReopenStoreAsync();
        var read = await Store.GetAsync(created.Key);

        read!.Spec.Should().Be(spec);
        read.Status.GuestReadyTime.Should().Be(status.GuestReadyTime);
        read.Status.GuestReadySeconds.Should().Be(8.375);
        read.Status.ConsoleBootOffset.Should().Be(12345);
        read.Status.Should().Be(status);
    }

    // snapshots (issue 14)
    [Test]
    public async Task SnapshotStatus_RoundTripsEqual_AfterReopen()
    {
        var created = await Store.CreateAsync(Spec("vm-snap") with { RestoreFrom = "snap1" });
        var status = RunningStatus() with
        {
            RestoredFrom = "snap1",
            LastSnapshot = "snap2",
            LastSnapshotTime = new DateTimeOffset(2026, 11, 29, 23, 40, 1, 250, TimeSpan.Zero),
        };
        await Store.UpdateStatusAsync(created.Key, status, created.ResourceVersion);

        await ReopenStoreAsync();
        var read = await Store.GetAsync(created.Key);

        read!.Spec.RestoreFrom.Should().Be("snap1");
        read.Status.RestoredFrom.Should().Be("snap1");
        read.Status.LastSnapshot.Should().Be("snap2");
        read.Status.LastSnapshotTime.Should().Be(status.LastSnapshotTime);
        read.Status.Should().Be(status);
    }

    // ------------------------------------------------------------------ updates

    [Test]
    public async Task UpdateSpec_ChangedSpec_BumpsGenerationAndResourceVersion()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));

        var updated = await Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = 2 }, created.ResourceVersion);

        updated.Generation.Should().Be(2);
        updated.Spec.Vcpu.Should().Be(2);
        updated.ResourceVersion.Should().NotBe(created.ResourceVersion);
        updated.Uid.Should().Be(created.Uid);
        (await Store.GetAsync(created.Key)).Should().Be(updated);
    }

    [Test]
    public async Task UpdateSpec_EqualSpec_KeepsGeneration()
    {
        var created = await Store.CreateAsync(RichSpec("vm-1"));

        // A fresh but equal copy, with new collection instances: equality is by value.
        var updated = await Store.UpdateSpecAsync(created.Key, RichSpec("vm-1"), created.ResourceVersion);

        updated.Generation.Should().Be(1);
        (await Store.GetAsync(created.Key))!.Generation.Should().Be(1);
    }

    [Test]
    public async Task UpdateSpec_TwoChanges_GenerationCountsThem()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));

        var first = await Store.UpdateSpecAsync(created.Key, created.Spec with { State = DesiredState.Stopped }, created.ResourceVersion);
        var second = await Store.UpdateSpecAsync(created.Key, first.Spec with { State = DesiredState.Running }, first.ResourceVersion);

        second.Generation.Should().Be(3);
        second.Spec.State.Should().Be(DesiredState.Running);
    }

    [Test]
    public async Task UpdateSpec_StaleResourceVersion_ThrowsConflict_AndKeepsTheNewerSpec()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        var newer = await Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = 2 }, created.ResourceVersion);

        var act = () => Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = 3 }, created.ResourceVersion);

        (await act.Should().ThrowAsync<ConflictException>()).Which.Key.Should().Be(created.Key);
        (await Store.GetAsync(created.Key)).Should().Be(newer);
    }

    [Test]
    public async Task UpdateStatus_StaleResourceVersion_ThrowsConflict()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        var newer = await Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = 2 }, created.ResourceVersion);

        var act = () => Store.UpdateStatusAsync(created.Key, RunningStatus(), created.ResourceVersion);

        await act.Should().ThrowAsync<ConflictException>();
        (await Store.GetAsync(created.Key)).Should().Be(newer);
    }

    [Test]
    public async Task UpdateSpec_ConcurrentWithSameResourceVersion_ExactlyOneWins()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));

        var attempts = Enumerable.Range(0, 8)
            .Select(i => Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = i + 2 }, created.ResourceVersion))
            .ToList();
        var outcomes = await Outcomes(attempts);

        outcomes.Count(o => o is null).Should().Be(1);
        outcomes.Where(o => o is not null).Should().AllBeOfType<ConflictException>();
        var winner = attempts.Single(t => t.IsCompletedSuccessfully).Result;
        (await Store.GetAsync(created.Key)).Should().Be(winner);
        winner.Generation.Should().Be(2);
    }

    [Test]
    public async Task UpdateSpec_Missing_ThrowsNotFound()
    {
        var key = new VmKey(Namespace, "ghost");

        var act = () => Store.UpdateSpecAsync(key, Spec("ghost"), "1");

        (await act.Should().ThrowAsync<NotFoundException>()).Which.Key.Should().Be(key);
        (await Store.GetAsync(key)).Should().BeNull();
    }

    [Test]
    public async Task UpdateStatus_Missing_ThrowsNotFound()
    {
        var key = new VmKey(Namespace, "ghost");

        var act = () => Store.UpdateStatusAsync(key, RunningStatus(), "1");

        (await act.Should().ThrowAsync<NotFoundException>()).Which.Key.Should().Be(key);
    }

    [Test]
    public async Task UpdateStatus_KeepsSpecAndGeneration_AndStoresTheStatus()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        var changed = await Store.UpdateSpecAsync(created.Key, created.Spec with { MemoryInMb = 256 }, created.ResourceVersion);
        var status = RunningStatus();

        var updated = await Store.UpdateStatusAsync(created.Key, status, changed.ResourceVersion);

        updated.Generation.Should().Be(2);
        updated.Spec.Should().Be(changed.Spec);
        updated.Status.Should().Be(status);
        updated.ResourceVersion.Should().NotBe(changed.ResourceVersion);
        var read = await Store.GetAsync(created.Key);
        read.Should().Be(updated);
        read!.Status.Should().BeEquivalentTo(status);
    }

    [Test]
    public async Task UpdateSpec_AfterStatusWrite_KeepsTheStatus()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        var withStatus = await Store.UpdateStatusAsync(created.Key, RunningStatus(), created.ResourceVersion);

        var updated = await Store.UpdateSpecAsync(created.Key, created.Spec with { State = DesiredState.Paused }, withStatus.ResourceVersion);

        updated.Status.Should().Be(withStatus.Status);
        (await Store.GetAsync(created.Key))!.Status.Should().Be(withStatus.Status);
    }

    [Test]
    public async Task ResourceVersion_ChangesOnEveryWrite()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        var spec = await Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = 2 }, created.ResourceVersion);
        var status = await Store.UpdateStatusAsync(created.Key, RunningStatus(), spec.ResourceVersion);
        var claimed = await Store.ClaimAsync(created.Key);
        var marked = await Store.MarkForDeletionAsync(created.Key);

        new[] { created, spec, status, claimed, marked }.Select(v => v.ResourceVersion).Should().OnlyHaveUniqueItems();
        (await Store.GetAsync(created.Key))!.ResourceVersion.Should().Be(marked.ResourceVersion);
    }

    // ------------------------------------------------------------------ claim, delete

    [Test]
    public async Task Claim_MarksClaimed_AndIsIdempotent()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));

        var first = await Store.ClaimAsync(created.Key);
        var second = await Store.ClaimAsync(created.Key);

        first.Claimed.Should().BeTrue();
        second.Claimed.Should().BeTrue();
        first.Spec.Should().Be(created.Spec);
        first.Generation.Should().Be(1);
        (await Store.GetAsync(created.Key))!.Claimed.Should().BeTrue();
    }

    [Test]
    public async Task ClaimWithStatus_ClaimsAndWritesTheStatus_KeepingSpecAndGeneration()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        var status = new MicroVmStatus { Phase = Phase.Provisioning, ObservedGeneration = 1, Node = "n" };

        var claimed = await Store.ClaimWithStatusAsync(created.Key, status, created.ResourceVersion);

        claimed.Claimed.Should().BeTrue();
        claimed.Status.Should().Be(status);
        claimed.Spec.Should().Be(created.Spec);
        claimed.Generation.Should().Be(1);
        claimed.ResourceVersion.Should().NotBe(created.ResourceVersion);
        var read = (await Store.GetAsync(created.Key))!;
        read.Claimed.Should().BeTrue();
        read.Status.Should().Be(status);
        read.ResourceVersion.Should().Be(claimed.ResourceVersion);
    }

    [Test]
    public async Task ClaimWithStatus_StaleVersion_ThrowsConflict_AndWritesNothing()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        var changed = await Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = 2 }, created.ResourceVersion);

        var act = () => Store.ClaimWithStatusAsync(created.Key, new MicroVmStatus { Phase = Phase.Provisioning }, created.ResourceVersion);

        await act.Should().ThrowAsync<ConflictException>();
        var read = (await Store.GetAsync(created.Key))!;
        read.Claimed.Should().BeFalse();
        read.Status.Phase.Should().Be(Phase.Pending);
        read.ResourceVersion.Should().Be(changed.ResourceVersion);
    }

    [Test]
    public async Task ClaimWithStatus_Missing_ThrowsNotFound()
    {
        var act = () => Store.ClaimWithStatusAsync(new VmKey(MicroVmSpec.DefaultNamespace, "nope"), new MicroVmStatus { Phase = Phase.Provisioning }, "1");

        await act.Should().ThrowAsync<NotFoundException>();
    }

    [Test]
    public async Task MarkForDeletion_ThenRemove_RecordIsGone()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        await Store.ClaimAsync(created.Key);

        var marked = await Store.MarkForDeletionAsync(created.Key);

        marked.IsDeleting.Should().BeTrue();
        marked.DeletionRequestedAt.Should().NotBeNull();
        marked.Spec.Should().Be(created.Spec);
        var stillThere = await Store.GetAsync(created.Key);
        stillThere.Should().NotBeNull("the record stays until the reconciler has cleaned up");
        stillThere!.IsDeleting.Should().BeTrue();

        await Store.RemoveAsync(created.Key);

        (await Store.GetAsync(created.Key)).Should().BeNull();
        (await Store.GetByUidAsync(created.Uid)).Should().BeNull();
        (await Store.ListAsync(Namespace)).Should().BeEmpty();
    }

    [Test]
    public async Task MarkForDeletion_Twice_KeepsTheFirstRequestTime()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        var first = await Store.MarkForDeletionAsync(created.Key);

        var second = await Store.MarkForDeletionAsync(created.Key);

        second.IsDeleting.Should().BeTrue();
        second.DeletionRequestedAt.Should().Be(first.DeletionRequestedAt);
    }

    [Test]
    public async Task MarkForDeletion_Missing_ThrowsNotFound()
    {
        var act = () => Store.MarkForDeletionAsync(new VmKey(Namespace, "ghost"));

        await act.Should().ThrowAsync<NotFoundException>();
    }

    [Test]
    public async Task Remove_Missing_Succeeds()
    {
        var act = () => Store.RemoveAsync(new VmKey(Namespace, "ghost"));

        await act.Should().NotThrowAsync();
    }

    [Test]
    public async Task Create_AfterRemove_SameIdGetsNewUid()
    {
        var first = await Store.CreateAsync(Spec("vm-1"));
        await Store.MarkForDeletionAsync(first.Key);
        await Store.RemoveAsync(first.Key);

        var second = await Store.CreateAsync(Spec("vm-1"));

        second.Uid.Should().NotBe(first.Uid);
        second.Generation.Should().Be(1);
        second.IsDeleting.Should().BeFalse();
    }

    // ------------------------------------------------------------------ watch

    [Test]
    public async Task Watch_SeesAddedModifiedDeleted_InOrder()
    {
        using var timeout = new CancellationTokenSource(EventTimeout);
        await using var watch = Store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        var pending = watch.MoveNextAsync();

        var created = await Store.CreateAsync(Spec("vm-1"));
        var respecced = await Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = 2 }, created.ResourceVersion);
        var statused = await Store.UpdateStatusAsync(created.Key, RunningStatus(), respecced.ResourceVersion);
        await Store.MarkForDeletionAsync(created.Key);
        await Store.RemoveAsync(created.Key);

        var events = await CollectAsync(watch, pending, created.Key, ev => ev.Type == StoreEventType.Deleted);

        events[0].Type.Should().Be(StoreEventType.Added);
        events[0].MicroVm!.Uid.Should().Be(created.Uid);
        events[^1].Type.Should().Be(StoreEventType.Deleted);
        events[^1].MicroVm!.Uid.Should().Be(created.Uid);
        events[1..^1].Should().OnlyContain(ev => ev.Type == StoreEventType.Modified);

        // Every write shows up, in the order it was made (a store may add Modified events of its own).
        var vcpu = events.FindIndex(ev => ev.Type == StoreEventType.Modified && ev.MicroVm!.Spec.Vcpu == 2);
        var running = events.FindIndex(ev => ev.Type == StoreEventType.Modified && ev.MicroVm!.Status.Phase == Phase.Running);
        var deleting = events.FindIndex(ev => ev.Type == StoreEventType.Modified && ev.MicroVm!.IsDeleting);
        vcpu.Should().BePositive();
        running.Should().BeGreaterThan(vcpu);
        deleting.Should().BeGreaterThan(running);
        events[running].MicroVm!.Status.Should().Be(statused.Status);
    }

    [Test]
    public async Task Watch_ShowsOnlyChangesMadeAfterTheCall()
    {
        await Store.CreateAsync(Spec("vm-before"));
        using var timeout = new CancellationTokenSource(EventTimeout);
        await using var watch = Store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        var pending = watch.MoveNextAsync();

        var after = await Store.CreateAsync(Spec("vm-after"));

        var first = await NextInNamespaceAsync(watch, pending);
        first.Type.Should().Be(StoreEventType.Added);
        first.MicroVm!.Key.Should().Be(after.Key);
    }

    [Test]
    public async Task Watch_ManyRecords_AddedEventsArriveInWriteOrder()
    {
        using var timeout = new CancellationTokenSource(EventTimeout);
        await using var watch = Store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        var pending = watch.MoveNextAsync();

        var ids = Enumerable.Range(0, 20).Select(i => $"vm-{i:D2}").ToList();
        foreach (var id in ids)
        {
            await Store.CreateAsync(Spec(id));
        }

        var seen = new List<string>();
        while (seen.Count < ids.Count)
        {
            var ev = await NextInNamespaceAsync(watch, pending);
            ev.Type.Should().Be(StoreEventType.Added);
            seen.Add(ev.MicroVm!.Spec.Id);
            if (seen.Count < ids.Count)
            {
                pending = watch.MoveNextAsync(); // never leave a MoveNext pending at dispose
            }
        }

        seen.Should().Equal(ids);
    }

    [Test]
    public async Task Watch_TwoWatchers_BothSeeTheChange()
    {
        using var timeout = new CancellationTokenSource(EventTimeout);
        await using var one = Store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        await using var two = Store.WatchAsync(timeout.Token).GetAsyncEnumerator(timeout.Token);
        var pendingOne = one.MoveNextAsync();
        var pendingTwo = two.MoveNextAsync();

        var created = await Store.CreateAsync(Spec("vm-1"));

        (await NextInNamespaceAsync(one, pendingOne)).MicroVm!.Uid.Should().Be(created.Uid);
        (await NextInNamespaceAsync(two, pendingTwo)).MicroVm!.Uid.Should().Be(created.Uid);
    }

    [Test]
    public async Task Watch_Cancelled_EndsWithCancellation()
    {
        using var cts = new CancellationTokenSource();
        var watch = Store.WatchAsync(cts.Token).GetAsyncEnumerator(cts.Token);
        var pending = watch.MoveNextAsync().AsTask();

        await cts.CancelAsync();

        await FluentActions.Awaiting(() => pending).Should().ThrowAsync<OperationCanceledException>().WaitAsync(EventTimeout);
        await watch.DisposeAsync();
    }

    // ------------------------------------------------------------------ durability

    [Test]
    public async Task Reopen_KeepsEveryRecordAsLastWritten()
    {
        var a = await Store.CreateAsync(Spec("vm-a"));
        a = await Store.UpdateSpecAsync(a.Key, a.Spec with { Vcpu = 2 }, a.ResourceVersion);
        a = await Store.UpdateStatusAsync(a.Key, RunningStatus(), a.ResourceVersion);
        a = await Store.ClaimAsync(a.Key);
        var b = await Store.CreateAsync(Spec("vm-b"));
        b = await Store.MarkForDeletionAsync(b.Key);
        var c = await Store.CreateAsync(Spec("vm-c"));
        await Store.MarkForDeletionAsync(c.Key);
        await Store.RemoveAsync(c.Key);

        await ReopenStoreAsync();

        (await Store.GetAsync(a.Key)).Should().Be(a);
        (await Store.GetAsync(b.Key)).Should().Be(b);
        (await Store.GetAsync(c.Key)).Should().BeNull();
        (await Store.ListAsync(Namespace)).Select(v => v.Spec.Id).Should().Equal("vm-a", "vm-b");
    }

    [Test]
    public async Task Reopen_ResourceVersionReadBefore_StillGuardsUpdates()
    {
        var created = await Store.CreateAsync(Spec("vm-1"));
        var other = await Store.CreateAsync(Spec("vm-2"));

        await ReopenStoreAsync();
        var newer = await Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = 2 }, created.ResourceVersion);
        var stale = () => Store.UpdateSpecAsync(created.Key, created.Spec with { Vcpu = 3 }, created.ResourceVersion);

        newer.Generation.Should().Be(2);
        await stale.Should().ThrowAsync<ConflictException>();
        newer.ResourceVersion.Should().NotBe(created.ResourceVersion).And.NotBe(other.ResourceVersion);
    }

    // ------------------------------------------------------------------ helpers

    protected MicroVmSpec Spec(string id, string? @namespace = null) => new()
    {
        Id = id,
        Namespace = @namespace ?? Namespace,
        Kernel = new KernelSpec { Image = "/var/lib/hypercore/images/default/vmlinuz" },
    };

    /// <summary>Every field set, every collection non-empty: proves the whole spec survives storage.</summary>
    protected MicroVmSpec RichSpec(string id) => new()
    {
        Id = id,
        Namespace = Namespace,
        Labels = new Dictionary<string, string> { ["app"] = "web", ["tier"] = "front" },
        Vcpu = 3,
        MemoryInMb = 384,
        Kernel = new KernelSpec
        {
            Image = "/images/vmlinuz",
            Filename = "boot/vmlinuz",
            AddNetworkConfig = true,
            Cmdline = new Dictionary<string, string> { ["console"] = "ttyS0", ["quiet"] = "", ["reboot"] = "k" },
        },
        Initrd = new InitrdSpec { Image = "/images/initrd.img", Filename = "initrd" },
        RootVolume = new VolumeSpec { Id = "root", HostPath = "/images/root.img", IsReadOnly = true, MountPoint = "/", SizeInMb = 512, PartitionId = "6c2a6b1e-01" },
        AdditionalVolumes =
        [
            new VolumeSpec { Id = "data", HostPath = "/images/data.img", SizeInMb = 64 },
            new VolumeSpec { Id = "logs", HostPath = "/images/logs.img", MountPoint = "/var/log" },
            new VolumeSpec { Id = "oci", ContainerSource = "localhost:5000/hypercore/rootfs:1", IsReadOnly = true }, // images (issue 11)
        ],
        Interfaces =
        [
            new NetworkInterfaceSpec { DeviceId = "eth0", GuestMac = "02:00:00:00:00:01", Bridge = "br0", Address = "10.0.0.2/24", Gateway = "10.0.0.1", Nameservers = ["10.0.0.53", "10.0.0.54"] },
            new NetworkInterfaceSpec { DeviceId = "eth1", Type = InterfaceType.Macvtap, Parent = "eno1" },
            new NetworkInterfaceSpec { DeviceId = "eth2", Ports = [new PortForward(8080, 80), new PortForward(5353, 53, "udp")] }, // node networking
        ],
        Metadata = new Dictionary<string, string> { ["user-data"] = "#cloud-config\nhostname: a\n", ["meta-data"] = "{}" },
        Provider = "qemu",
        State = DesiredState.Paused,
        RestartPolicy = RestartPolicy.OnFailure,
        NodeName = "node-1",
        RestoreFrom = "snap-1", // snapshots
    };

    /// <summary>A full status; times are whole seconds so every backend can store them exactly.</summary>
    protected static MicroVmStatus RunningStatus()
    {
        var at = new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.Zero);
        return new MicroVmStatus
        {
            Phase = Phase.Running,
            ObservedGeneration = 1,
            Pid = 4242,
            Node = "node-1",
            ConsoleLogPath = "/var/lib/hypercore/run/qemu/x/console.log",
            BootTime = at,
            Addresses = ["10.0.0.2"],
            RestartCount = 1,
            Runtime = "tcg",
            Interfaces = [new InterfaceStatus("eth2", "hcabcdef01n2", "02:00:00:00:00:03", "10.200.0.7/24", "hcbr0"), new InterfaceStatus("eth1", "hcabcdef01m1", "02:00:00:00:00:02", null)], // node networking
            PortForwards = ["tcp 8080 -> 10.200.0.7:80"],
            Images = [new ImageStatus("localhost:5000/hypercore/rootfs:1", "Ready", "sha256:" + new string('a', 64), 4096, 4096, "a note"), new ImageStatus("localhost:5000/k:1", "Resolving", null, 0, -1)], // images (issue 11)
            Conditions =
            [
                new Condition(Conditions.Ready, ConditionStatus.True, Conditions.ReasonReconciled, "running", at, 1),
                new Condition(Conditions.Synchronized, ConditionStatus.True, Conditions.ReasonReconciled, "", at, 1),
            ],
        };
    }

    protected async Task ReopenStoreAsync() => Store = await ReopenAsync();

    /// <summary>Awaits every attempt; null for a success, else the exception it threw.</summary>
    private static async Task<List<Exception?>> Outcomes<T>(IEnumerable<Task<T>> attempts)
    {
        var outcomes = new List<Exception?>();
        foreach (var attempt in attempts)
        {
            try
            {
                await attempt;
                outcomes.Add(null);
            }
            catch (Exception ex)
            {
                outcomes.Add(ex);
            }
        }

        return outcomes;
    }

    /// <summary>The next event about this test's namespace (a shared backend may carry others), or Resync.</summary>
    private async Task<StoreEvent> NextInNamespaceAsync(IAsyncEnumerator<StoreEvent> watch, ValueTask<bool> pending)
    {
        while (true)
        {
            (await pending).Should().BeTrue("the watch must not end while the store is open");
            var ev = watch.Current;
            ev.Type.Should().NotBe(StoreEventType.Resync, "a watcher that keeps up must not be told to resync");
            if (ev.MicroVm!.Spec.Namespace == Namespace)
            {
                return ev;
            }

            pending = watch.MoveNextAsync();
        }
    }

    private async Task<List<StoreEvent>> CollectAsync(IAsyncEnumerator<StoreEvent> watch, ValueTask<bool> pending, VmKey key, Func<StoreEvent, bool> last)
    {
        var events = new List<StoreEvent>();
        try
        {
            while (true)
            {
                var ev = await NextInNamespaceAsync(watch, pending);
                if (ev.MicroVm!.Key == key)
                {
                    events.Add(ev);
                    if (last(ev))
                    {
                        return events;
                    }
                }

                pending = watch.MoveNextAsync();
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"watch timed out after {EventTimeout}; got: {string.Join(", ", events.Select(e => e.Type))}");
            throw;
        }
    }
}
