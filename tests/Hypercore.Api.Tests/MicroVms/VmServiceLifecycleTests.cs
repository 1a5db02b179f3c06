using Grpc.Core;
using Hypercore.Api.Tests.Hosting;
using Hypercore.Contracts.VmApi;
using Hypercore.MicroVms;

namespace Hypercore.Api.Tests.MicroVms;

public sealed class VmServiceLifecycleTests
{
    private ApiTestServer _server = null!;

    [SetUp]
    public async Task SetUp() => _server = await ApiTestServer.StartAsync(o => o.LifecycleRetries = 3);

    [TearDown]
    public async Task TearDown()
    {
        try
        {
            _server.Drivers.Sum(d => d.Operations).Should().Be(0, "the API never calls a driver");
        }
        finally
        {
            await _server.DisposeAsync();
        }
    }

    private async Task<MicroVM> CreateAsync(string id, string ns = "demo", string provider = "qemu", string state = "")
    {
        var reply = await _server.Vms.CreateAsync(new CreateMicroVMRequest
        {
            Microvm = new MicroVMSpec
            {
                Id = id, Namespace = ns, Vcpu = 1, MemoryInMb = 128, Provider = provider, State = state,
                Kernel = new Kernel { Image = "/boot/vmlinuz" },
            },
        });
        return reply.Microvm;
    }

    private async Task<MicroVm> StoredAsync(string id, string ns = "demo") =>
        (await _server.Store.Inner.GetAsync(new VmKey(ns, id)))!;

    private static async Task<RpcException> FailsAsync(Func<Task> act) =>
        (await act.Should().ThrowAsync<RpcException>()).Which;

    [Test]
    public async Task Get_ById_ReturnsSpecAndStatusAsWrittenByTheReconciler()
    {
        await CreateAsync("web1");
        var vm = await StoredAsync("web1");
        var boot = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);
        await _server.Store.Inner.UpdateStatusAsync(vm.Key, vm.Status with
        {
            Phase = Phase.Running,
            Pid = 4242,
            Node = "node-a",
            BootTime = boot,
            ConsoleLogPath = "/var/lib/hypercore/run/qemu/x/console.log",
            ObservedGeneration = 1,
            Runtime = "accel=tcg",
            Conditions = [new Hypercore.MicroVms.Condition(Conditions.Ready, ConditionStatus.True, "Running", "the VM is running", boot, 1)],
        }, vm.ResourceVersion);

        var reply = await _server.Vms.GetAsync(new GetMicroVMRequest { Id = "web1", Namespace = "demo" });

        var status = reply.Microvm.Status;
        status.Phase.Should().Be("Running");
        status.Pid.Should().Be(4242);
        status.Node.Should().Be("node-a");
        status.BootTime.ToDateTimeOffset().Should().Be(boot);
        status.Runtime.Should().Be("accel=tcg");
        status.ObservedGeneration.Should().Be(1);
        status.Conditions.Should().ContainSingle().Which.Status.Should().Be("True");
        reply.Microvm.Spec.Uid.Should().Be(vm.Uid);
    }

    [Test]
    public async Task Get_ByUid_FindsTheRecord()
    {
        var created = await CreateAsync("web1");

        var reply = await _server.Vms.GetAsync(new GetMicroVMRequest { Uid = created.Spec.Uid });

        reply.Microvm.Spec.Id.Should().Be("web1");
    }

    [Test]
    public async Task Get_IdWithoutNamespace_FindsItWhenUnique()
    {
        await CreateAsync("web1");

        var reply = await _server.Vms.GetAsync(new GetMicroVMRequest { Id = "web1" });

        reply.Microvm.Spec.Namespace.Should().Be("demo");
    }

    [Test]
    public async Task Get_IdInTwoNamespacesWithoutNamespace_ReturnsFailedPreconditionNamingThem()
    {
        await CreateAsync("web1", "demo");
        await CreateAsync("web1", "prod");

        var ex = await FailsAsync(() => _server.Vms.GetAsync(new GetMicroVMRequest { Id = "web1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain("demo, prod").And.Contain("namespace");
        (await _server.Vms.GetAsync(new GetMicroVMRequest { Id = "web1", Namespace = "prod" })).Microvm.Spec.Namespace.Should().Be("prod");
    }

    [TestCase("nope", "demo", "")]
    [TestCase("nope", "", "")]
    [TestCase("", "", "no-such-uid")]
    public async Task Get_Missing_ReturnsNotFound(string id, string ns, string uid)
    {
        await CreateAsync("web1");

        var ex = await FailsAsync(() => _server.Vms.GetAsync(new GetMicroVMRequest { Id = id, Namespace = ns, Uid = uid }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.NotFound);
    }

    [Test]
    public async Task Get_NeitherIdNorUid_ReturnsInvalidArgument()
    {
        var ex = await FailsAsync(() => _server.Vms.GetAsync(new GetMicroVMRequest()).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.InvalidArgument);
    }

    [Test]
    public async Task List_FiltersByNamespaceAndName()
    {
        await CreateAsync("a", "demo");
        await CreateAsync("b", "demo");
        await CreateAsync("a", "prod");

        var all = await _server.Vms.ListAsync(new ListMicroVMsRequest());
        var demo = await _server.Vms.ListAsync(new ListMicroVMsRequest { Namespace = "demo" });
        var named = await _server.Vms.ListAsync(new ListMicroVMsRequest { Name = "a" });
        var none = await _server.Vms.ListAsync(new ListMicroVMsRequest { Namespace = "empty" });

        all.Microvm.Select(v => $"{v.Spec.Namespace}/{v.Spec.Id}").Should().Equal("demo/a", "demo/b", "prod/a");
        demo.Microvm.Select(v => v.Spec.Id).Should().Equal("a", "b");
        named.Microvm.Select(v => v.Spec.Namespace).Should().Equal("demo", "prod");
        none.Microvm.Should().BeEmpty();
    }

    [Test]
    public async Task Stop_Running_SetsDesiredStoppedAndBumpsGeneration()
    {
        await CreateAsync("web1");

        var reply = await _server.Vms.StopAsync(new LifecycleRequest { Id = "web1", Namespace = "demo" });

        reply.Microvm.Spec.State.Should().Be("Stopped");
        reply.Microvm.Spec.Generation.Should().Be(2);
        (await StoredAsync("web1")).Spec.State.Should().Be(DesiredState.Stopped);
    }

    [Test]
    public async Task StopThenStart_SetsDesiredRunningAgain()
    {
        await CreateAsync("web1");
        await _server.Vms.StopAsync(new LifecycleRequest { Id = "web1" });

        var reply = await _server.Vms.StartAsync(new LifecycleRequest { Id = "web1" });

        reply.Microvm.Spec.State.Should().Be("Running");
        (await StoredAsync("web1")).Spec.State.Should().Be(DesiredState.Running);
    }

    [Test]
    public async Task PauseThenResume_SetsPausedThenRunning()
    {
        var created = await CreateAsync("web1");

        var paused = await _server.Vms.PauseAsync(new LifecycleRequest { Uid = created.Spec.Uid });
        var pausedState = (await StoredAsync("web1")).Spec.State;
        var resumed = await _server.Vms.ResumeAsync(new LifecycleRequest { Uid = created.Spec.Uid });

        paused.Microvm.Spec.State.Should().Be("Paused");
        pausedState.Should().Be(DesiredState.Paused);
        resumed.Microvm.Spec.State.Should().Be("Running");
        (await StoredAsync("web1")).Spec.State.Should().Be(DesiredState.Running);
    }

    [Test]
    public async Task Start_AlreadyRunning_SucceedsWithoutWriting()
    {
        await CreateAsync("web1");
        var before = await StoredAsync("web1");

        var reply = await _server.Vms.StartAsync(new LifecycleRequest { Id = "web1" });

        reply.Microvm.Spec.State.Should().Be("Running");
        (await StoredAsync("web1")).ResourceVersion.Should().Be(before.ResourceVersion);
    }

    [Test]
    public async Task Resume_Running_IsANoOp()
    {
        await CreateAsync("web1");
        var before = await StoredAsync("web1");

        var reply = await _server.Vms.ResumeAsync(new LifecycleRequest { Id = "web1" });

        reply.Microvm.Spec.State.Should().Be("Running");
        (await StoredAsync("web1")).ResourceVersion.Should().Be(before.ResourceVersion);
    }

    [Test]
    public async Task Pause_StoppedVm_ReturnsFailedPreconditionAndWritesNothing()
    {
        await CreateAsync("web1", state: "Stopped");
        var before = await StoredAsync("web1");

        var ex = await FailsAsync(() => _server.Vms.PauseAsync(new LifecycleRequest { Id = "web1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain("start it first");
        (await StoredAsync("web1")).Should().Be(before);
    }

    [Test]
    public async Task Resume_StoppedVm_ReturnsFailedPreconditionAndWritesNothing()
    {
        await CreateAsync("web1", state: "Stopped");
        var before = await StoredAsync("web1");

        var ex = await FailsAsync(() => _server.Vms.ResumeAsync(new LifecycleRequest { Id = "web1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain("use Start");
        (await StoredAsync("web1")).Should().Be(before);
    }

    [Test]
    public async Task Pause_ProviderThatCannotPause_ReturnsFailedPrecondition()
    {
        await CreateAsync("uk1", provider: "unikernel");

        var ex = await FailsAsync(() => _server.Vms.PauseAsync(new LifecycleRequest { Id = "uk1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain("\"unikernel\" cannot pause");
        (await StoredAsync("uk1")).Spec.State.Should().Be(DesiredState.Running);
    }

    [TestCase("Start")]
    [TestCase("Stop")]
    [TestCase("Pause")]
    [TestCase("Resume")]
    public async Task Lifecycle_VmBeingDeleted_ReturnsFailedPrecondition(string action)
    {
        await CreateAsync("web1");
        await _server.Vms.DeleteAsync(new DeleteMicroVMRequest { Id = "web1", Namespace = "demo" });
        var before = await StoredAsync("web1");
        var request = new LifecycleRequest { Id = "web1", Namespace = "demo" };

        var ex = await FailsAsync(() => (action switch
        {
            "Start" => _server.Vms.StartAsync(request),
            "Stop" => _server.Vms.StopAsync(request),
            "Pause" => _server.Vms.PauseAsync(request),
            _ => _server.Vms.ResumeAsync(request),
        }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.FailedPrecondition);
        ex.Status.Detail.Should().Contain("being deleted");
        (await StoredAsync("web1")).Should().Be(before);
    }

    [Test]
    public async Task Lifecycle_Missing_ReturnsNotFound()
    {
        var ex = await FailsAsync(() => _server.Vms.StopAsync(new LifecycleRequest { Id = "ghost", Namespace = "demo" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.NotFound);
    }

    [Test]
    public async Task Stop_RecordChangedConcurrently_ReReadsAndRetries()
    {
        await CreateAsync("web1");
        _server.Store.ConflictNextUpdateSpecs(2);

        var reply = await _server.Vms.StopAsync(new LifecycleRequest { Id = "web1" });

        reply.Microvm.Spec.State.Should().Be("Stopped");
        _server.Store.UpdateSpecCalls.Should().Be(3);
        var stored = await StoredAsync("web1");
        stored.Spec.State.Should().Be(DesiredState.Stopped);
        stored.Status.RestartCount.Should().Be(2, "the concurrent status writes are kept, not overwritten");
    }

    [Test]
    public async Task Stop_KeepsConflictingBeyondRetries_ReturnsAborted()
    {
        await CreateAsync("web1");
        _server.Store.ConflictNextUpdateSpecs(10);

        var ex = await FailsAsync(() => _server.Vms.StopAsync(new LifecycleRequest { Id = "web1" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.Aborted);
        _server.Store.UpdateSpecCalls.Should().Be(3, "LifecycleRetries is 3");
        (await StoredAsync("web1")).Spec.State.Should().Be(DesiredState.Running);
    }

    [Test]
    public async Task Delete_MarksForDeletionAndReturnsAtOnce()
    {
        await CreateAsync("web1");

        await _server.Vms.DeleteAsync(new DeleteMicroVMRequest { Id = "web1" });

        var stored = await StoredAsync("web1");
        stored.IsDeleting.Should().BeTrue("the reconciler removes the record after cleanup");
        var reply = await _server.Vms.GetAsync(new GetMicroVMRequest { Id = "web1", Namespace = "demo" });
        reply.Microvm.Status.Deleting.Should().BeTrue();
        reply.Microvm.Spec.DeletedAt.Should().NotBeNull();
    }

    [Test]
    public async Task Delete_Twice_IsIdempotent()
    {
        await CreateAsync("web1");
        await _server.Vms.DeleteAsync(new DeleteMicroVMRequest { Id = "web1" });

        await _server.Vms.DeleteAsync(new DeleteMicroVMRequest { Id = "web1" });

        (await StoredAsync("web1")).IsDeleting.Should().BeTrue();
    }

    [Test]
    public async Task Delete_Missing_ReturnsNotFound()
    {
        await CreateAsync("web1");

        var ex = await FailsAsync(() => _server.Vms.DeleteAsync(new DeleteMicroVMRequest { Id = "web2", Namespace = "demo" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.NotFound);
        (await StoredAsync("web1")).IsDeleting.Should().BeFalse();
    }

    [Test]
    public async Task Get_StoreUnavailable_ReturnsUnavailable()
    {
        await CreateAsync("web1");
        _server.Store.Outage = new Hypercore.Store.StoreException("disk I/O error");

        var ex = await FailsAsync(() => _server.Vms.GetAsync(new GetMicroVMRequest { Id = "web1", Namespace = "demo" }).ResponseAsync);

        ex.StatusCode.Should().Be(StatusCode.Unavailable);
        _server.Store.Outage = null;
    }
}
